"""Progress lines: the count of tests that will run, each case's jobs, the time so far and what recorded
durations say is left (a fake clock), the xdist controller's lines, and a malformed durations file."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from perfgate.engine.record import CaseResult
from perfgate.engine.spec import CaseSpec
from perfgate.errors import ConfigError
from perfgate.instruments.outcome import Outcome, Verdict
from perfgate.reports.progress import Progress, load_durations
from tests.user_project import micro_run, plant

DURATIONS = {"t.py::a": 60.0, "t.py::slow": 600.0, "t.py::b": 120.0, "t.py::c": 180.0}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def progress(workers: int = 1) -> tuple[Progress, list[str], FakeClock]:
    lines: list[str] = []
    clock = FakeClock()
    shown = Progress(DURATIONS, lines.append, lambda item: "slow" in item.nodeid, clock=clock, workers=workers)
    items = [SimpleNamespace(nodeid=n) for n in ("t.py::a", "t.py::slow", "t.py::b", "t.py::c")]
    shown.pytest_collection_finish(SimpleNamespace(items=items))
    return shown, lines, clock


def finished(technique: str, seconds: float, jobs: list[tuple[str, float]], outcome=Outcome.MEASURED) -> CaseResult:
    case = CaseResult(spec=CaseSpec("minilm", technique), hardware_class="cpu-avx2", outcome=outcome,
                      verdict=Verdict.PASS, wall_seconds=seconds)  # fmt: skip
    case.worker = {"jobs": [{"scenario": name, "wall_seconds": wall} for name, wall in jobs]}
    return case


def test_a_line_per_case_counts_the_tests_that_will_run_and_estimates_what_is_left():
    shown, lines, clock = progress()
    assert shown.planned == ["t.py::a", "t.py::b", "t.py::c"]  # the slow test will skip: not counted
    shown.pytest_runtest_logstart("t.py::a")
    clock.now += 75
    shown.case_finished(finished("onnxruntime-o2", 74.6, [("ab-forward", 50.2), ("serving-memory", 20.0)]))
    assert lines == [
        "perfgate [1/3] 1:15 elapsed, ~5 min left · "  # b and c: 120 + 180 s recorded
        "minilm onnxruntime-o2 b1: PASS in 75 s (ab-forward 50 s, serving-memory 20 s)"
    ]
    shown.pytest_runtest_logstart("t.py::c")
    clock.now += 200
    shown.case_finished(finished("bf16-cast", 3, [], outcome=Outcome.CRASHED))
    assert lines[-1] == "perfgate [3/3] 4:35 elapsed, ~2 min left · minilm bf16-cast b1: crashed in 3 s"


def test_without_recorded_durations_it_says_only_the_time_so_far():
    lines: list[str] = []
    shown = Progress({}, lines.append, lambda item: False, clock=FakeClock())
    shown.pytest_collection_finish(SimpleNamespace(items=[SimpleNamespace(nodeid="t.py::a")]))
    shown.pytest_runtest_logstart("t.py::a")
    shown.case_finished(finished("fp32-eager", 1, []))
    assert lines == ["perfgate [1/1] 0:00 elapsed · minilm fp32-eager b1: PASS in 1 s"]


def test_the_xdist_controller_prints_a_line_per_finished_test_and_shares_the_estimate():
    shown, lines, clock = progress(workers=2)
    shown.planned = []
    shown.pytest_xdist_node_collection_finished(node=None, ids=list(DURATIONS))
    clock.now += 61

    def report(nodeid: str, when: str, outcome: str) -> None:
        shown.pytest_runtest_logreport(SimpleNamespace(nodeid=nodeid, when=when, outcome=outcome))

    for when, outcome in (("setup", "skipped"), ("teardown", "passed")):
        report("t.py::slow", when, outcome)
    for when, outcome in (("setup", "passed"), ("call", "failed"), ("teardown", "passed")):
        report("t.py::a", when, outcome)
    assert lines == ["perfgate [2/4] 1:01 elapsed, ~2 min left · failed t.py::a"]  # (120 + 180) / 2 workers


def test_recorded_durations_load_and_a_malformed_file_is_named_with_the_fix(tmp_path):
    good, bad = tmp_path / "durations.json", tmp_path / "bad.json"
    good.write_text(json.dumps({"t.py::a": 1.5}))
    assert load_durations(good) == {"t.py::a": 1.5}
    assert load_durations(tmp_path / "absent.json") == {}
    bad.write_text('["t.py::a", 1.5]')
    with pytest.raises(ConfigError, match=r"bad\.json: the recorded durations .* fix: regenerate it"):
        load_durations(bad)


# A user's test module: a slow test (skipped unless -m slow: not counted), then what runs.
A_SLOW_TEST = """
import pytest

@pytest.mark.slow
def test_slow(perfgate):
    perfgate.measure("micro", "fp32-eager", batch_size=2)
"""


def test_progress_lines_show_in_a_run_and_not_under_q(project, micro_model_dir):
    plant(project)
    project.makepyfile(
        A_SLOW_TEST
        + """
def test_int8(perfgate):
    perfgate.measure("micro", "torch-dynamic-int8-per-channel", batch_size=2)
"""
    )
    options = [*micro_run(micro_model_dir), "--perfgate-memory=off"]
    shown = project.runpytest_subprocess(*options)
    shown.stdout.fnmatch_lines(
        ["perfgate [[]1/1[]] * elapsed* · micro torch-dynamic-int8-per-channel b2: * in * s (ab-forward * s)"]
    )
    quiet = project.runpytest_subprocess(*options, "-q")
    assert not [line for line in quiet.outlines if line.startswith("perfgate [")]


def test_under_xdist_the_controller_counts_every_test_once(project, micro_model_dir):
    plant(project)
    project.makepyfile(
        A_SLOW_TEST
        + """
@pytest.mark.parametrize("technique", ["fp32-eager", "torch-dynamic-int8-per-channel"])
def test_case(perfgate, technique):
    perfgate.measure("micro", technique, batch_size=2)
"""
    )
    result = project.runpytest_subprocess(*micro_run(micro_model_dir), "--perfgate-memory=off", "-n", "2")
    result.assert_outcomes(passed=2, skipped=1)
    lines = sorted(line for line in result.outlines if line.startswith("perfgate ["))
    assert len(lines) == 2, result.outlines  # the skipped test counts, but prints nothing
    printed = "\n".join(lines)  # in the order the workers finish
    assert all(" elapsed · passed test_under_xdist" in line for line in lines)  # a long nodeid is cut at its end
    assert "::test_case[fp32-eager]" in printed
    assert "::test_case[torch-dynam" in printed
    assert all(line.startswith(("perfgate [2/3]", "perfgate [3/3]", "perfgate [1/3]")) for line in lines)
