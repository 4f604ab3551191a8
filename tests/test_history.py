"""The history store and the noise-aware comparison, on synthetic runs with planted changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from perfgate.case import CaseResult
from perfgate.cli import main
from perfgate.errors import ConfigError, ResultsFileError
from perfgate.history import Status, compare_run, incompatibility, load_history, store_run
from perfgate.outcome import Outcome
from perfgate.results import RunRecord
from perfgate.spec import CaseSpec

FINGERPRINT = {
    "hardware_class": {"cpu": "cpu-amx", "cuda": "gpu-none"},
    "libraries": {"torch": "2.13.0+cpu", "transformers": "4.57.6", "onnxruntime": "1.32.0"},
}
# Same-process ratios of five nights: within a few percent of each other, as measured on one class.
NIGHTS = [3.46, 3.71, 3.55, 3.62, 3.50]


def case(technique: str, speedup: float, cosine: float = 0.985, memory: float = 0.52, **extra) -> CaseResult:
    result = CaseResult(
        spec=CaseSpec("minilm", technique), hardware_class="cpu-amx", outcome=Outcome.MEASURED,
        nodeid=f"perf/test_x.py::test_x[{technique}]", **extra,
    )  # fmt: skip
    result.metrics = {
        "speed": {"estimate": {"speedup": speedup, "ci_low": speedup * 0.95, "ci_high": speedup * 1.05}},
        "fidelity": {"cosine_min": cosine},
        "memory": {"ratio": memory},
    }
    return result


def run(night: int, speedup: float, fingerprint: dict | None = None, **figures) -> RunRecord:
    return RunRecord(
        fingerprint=fingerprint or FINGERPRINT,
        config={},
        cases=[case("ort-int8", speedup, **figures), case("torch-int8", 2.2)],
        started=f"2026-11-{10 + night:02d}T02:00:00+00:00",
    )


@pytest.fixture
def history(tmp_path: Path) -> Path:
    directory = tmp_path / "history"
    directory.mkdir()
    for night, speedup in enumerate(NIGHTS):
        source = tmp_path / f"night{night}.json"
        run(night, speedup).save(source)
        store_run(source, directory)
    return directory


def statuses(current: RunRecord, history: Path) -> dict[str, Status]:
    return {c.case_id: c.status for c in compare_run(current, load_history(history)).cases}


def test_a_clean_night_is_unchanged_and_exits_zero(history):
    comparison = compare_run(run(9, 3.58), load_history(history))
    assert {c.status for c in comparison.cases} == {Status.UNCHANGED}
    assert comparison.exit_code() == 0


def test_a_planted_speed_regression_is_flagged_with_the_command_that_reproduces_it(history):
    comparison = compare_run(run(9, 2.9), load_history(history))  # 18% below the median of 3.55
    (flagged,) = comparison.regressions
    assert flagged.case_id == "minilm/ort-int8/b1/cpu"
    assert flagged.reproduce == "pytest 'perf/test_x.py::test_x[ort-int8]'"
    assert comparison.exit_code() == 1
    speed = next(f for f in flagged.figures if f.name == "speedup")
    assert speed.reference == pytest.approx(3.55)
    assert speed.runs == 5


def test_fidelity_and_memory_regress_on_their_own(history):
    assert statuses(run(9, 3.55, cosine=0.95), history)["minilm/ort-int8/b1/cpu"] == Status.REGRESSION
    assert statuses(run(9, 3.55, memory=0.70), history)["minilm/ort-int8/b1/cpu"] == Status.REGRESSION


def test_a_gain_beyond_the_band_says_the_baseline_is_stale(history):
    comparison = compare_run(run(9, 4.5), load_history(history))
    improved = next(c for c in comparison.cases if c.status == Status.IMPROVEMENT)
    assert "baseline is stale" in improved.detail
    assert comparison.exit_code() == 0


def test_new_and_missing_cases_are_listed_never_counted(history):
    current = run(9, 3.55)
    current.cases = [current.cases[0], case("bf16-cast", 1.5)]
    found = statuses(current, history)
    assert found["minilm/bf16-cast/b1/cpu"] == Status.NEW
    assert found["minilm/torch-int8/b1/cpu"] == Status.MISSING
    assert compare_run(current, load_history(history)).exit_code() == 0


def test_a_crash_where_the_history_measured_is_a_regression(history):
    current = run(9, 3.55)
    current.cases[0].outcome, current.cases[0].detail = Outcome.CRASHED, "SIGSEGV"
    assert statuses(current, history)["minilm/ort-int8/b1/cpu"] == Status.REGRESSION


def test_another_hardware_class_is_incomparable_not_a_regression(history):
    other = {**FINGERPRINT, "hardware_class": {"cpu": "cpu-avx2", "cuda": "gpu-none"}}
    comparison = compare_run(run(9, 1.0, fingerprint=other), load_history(history))
    assert {c.status for c in comparison.cases} == {Status.INCOMPARABLE}
    assert "hardware class" in comparison.cases[0].detail
    assert comparison.exit_code() == 0


def test_a_library_minor_version_change_is_incomparable():
    upgraded = {**FINGERPRINT, "libraries": {**FINGERPRINT["libraries"], "torch": "2.14.0"}}
    assert "torch 2.13.0+cpu differs" in incompatibility(upgraded, FINGERPRINT)
    patched = {**FINGERPRINT, "libraries": {**FINGERPRINT["libraries"], "torch": "2.13.1"}}
    assert incompatibility(patched, FINGERPRINT) is None


def test_a_baseline_placed_otherwise_is_incomparable_and_runs_before_the_record_served_it_mapped():
    copied = {**FINGERPRINT, "baseline_placement": {"weights": "copied"}}
    assert "were mapped there and are copied here" in incompatibility(copied, FINGERPRINT)
    assert incompatibility(copied, {**FINGERPRINT, "baseline_placement": {"weights": "copied"}}) is None


def test_the_band_widens_with_the_history_spread(tmp_path):
    directory = tmp_path / "noisy"
    directory.mkdir()
    for night, speedup in enumerate([3.0, 3.6, 2.7, 3.9, 3.3]):  # a noisy runner
        (tmp_path / "r.json").unlink(missing_ok=True)
        run(night, speedup).save(tmp_path / "r.json")
        store_run(tmp_path / "r.json", directory)
    # 2.9 would be a regression against a quiet history (see above); here it is inside the band.
    assert statuses(run(9, 2.9), directory)["minilm/ort-int8/b1/cpu"] == Status.UNCHANGED


def test_the_store_is_append_only(history, tmp_path):
    again = tmp_path / "night0.json"
    with pytest.raises(ConfigError, match="already exists"):
        store_run(again, history)


def test_a_corrupt_history_file_is_named_with_the_fix(history):
    (history / "zz-truncated.json").write_text('{"schema_version": 2, "cases": [')
    with pytest.raises(ResultsFileError, match=r"zz-truncated\.json.*move it out of the history"):
        load_history(history)


def test_the_console_script_exit_codes(history, tmp_path, capsys):
    clean, slow = tmp_path / "clean.json", tmp_path / "slow.json"
    run(9, 3.58).save(clean)
    run(9, 2.9).save(slow)
    assert main(["compare", str(clean), "--history", str(history)]) == 0
    summary = tmp_path / "summary.md"
    assert main(["compare", str(slow), "--history", str(history), "--markdown", str(summary)]) == 1
    assert "Reproduce locally" in summary.read_text()
    other_schema = tmp_path / "old.json"
    other_schema.write_text(json.dumps({"schema_version": 1}))
    assert main(["compare", str(other_schema), "--history", str(history)]) == 2
    assert "schema_version=1" in capsys.readouterr().err
    assert main(["compare", str(clean), "--history", str(tmp_path / "absent")]) == 2


def test_annotate_writes_each_case_s_status_into_the_results_file(history, tmp_path):
    slow = tmp_path / "slow.json"
    run(9, 2.9).save(slow)
    assert main(["compare", str(slow), "--history", str(history), "--annotate"]) == 1
    annotated = RunRecord.load(slow).against_history
    assert annotated is not None
    assert "regression" in {entry["status"] for entry in annotated.values()}
    assert "unchanged" in {entry["status"] for entry in annotated.values()}
    assert all(entry["confirmed"] is None for entry in annotated.values())  # not re-measured


def rerun_with(speedup: float):
    """A stand-in for re-running the suspects' tests: their record at this speedup, and the calls made."""
    calls: list[list[str]] = []

    def rerun(nodeids: list[str]) -> RunRecord:
        calls.append(nodeids)
        return run(10, speedup)

    return rerun, calls


def test_a_one_night_blip_is_not_confirmed(history):
    comparison = compare_run(run(9, 2.9), load_history(history))
    rerun, calls = rerun_with(3.6)  # re-measured: back in its band
    comparison.confirm(rerun, load_history(history))
    assert calls == [["perf/test_x.py::test_x[ort-int8]"]]  # the suspect alone
    (case,) = [c for c in comparison.cases if c.status == Status.REGRESSION]
    assert case.confirmed is False
    assert "blip" in case.detail
    assert comparison.exit_code() == 0


def test_a_regression_that_repeats_is_confirmed(history):
    comparison = compare_run(run(9, 2.9), load_history(history))
    rerun, _ = rerun_with(2.95)
    comparison.confirm(rerun, load_history(history))
    assert [c.confirmed for c in comparison.regressions] == [True]
    assert comparison.exit_code() == 1
    assert "(confirmed)" in comparison.markdown()


def test_nothing_is_re_measured_without_a_suspect(history):
    comparison = compare_run(run(9, 3.55), load_history(history))
    rerun, calls = rerun_with(1.0)
    comparison.confirm(rerun, load_history(history))
    assert calls == []


def test_an_empty_history_makes_every_case_new(tmp_path):
    comparison = compare_run(run(9, 3.5), [])
    assert {c.status for c in comparison.cases} == {Status.NEW}
    assert comparison.exit_code() == 0
