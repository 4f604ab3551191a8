"""The history store and the noise-aware comparison, on synthetic runs with planted changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from perfgate.cli import main
from perfgate.engine.record import CaseResult
from perfgate.engine.spec import CaseSpec
from perfgate.errors import ConfigError
from perfgate.instruments.outcome import Outcome
from perfgate.records.history import incompatibility, load_history, store_run
from perfgate.records.regressions import Status, compare_run
from perfgate.records.results import RunRecord

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


def test_a_case_without_a_result_is_failed_and_counts_with_or_without_history(history, tmp_path):
    current = run(9, 3.55)
    current.cases[0].outcome, current.cases[0].detail = Outcome.CRASHED, "SIGSEGV"
    comparison = compare_run(current, load_history(history))
    (failed,) = [c for c in comparison.cases if c.status == Status.FAILED]
    assert "crashed" in failed.detail
    assert "SIGSEGV" in failed.detail
    assert comparison.exit_code() == 1
    current.cases[1].outcome = Outcome.TIMEOUT  # never measured anywhere: still not "unchanged"
    assert {c.status for c in compare_run(current, []).cases} == {Status.FAILED}


def test_a_crashed_night_is_never_part_of_a_reference(history, tmp_path):
    crashed = run(5, 3.55)
    crashed.cases[0].outcome = Outcome.OOM
    crashed.save(tmp_path / "crashed.json")
    store_run(tmp_path / "crashed.json", history)
    (case,) = [
        c for c in compare_run(run(9, 3.55), load_history(history)).cases if c.case_id.endswith("ort-int8/b1/cpu")
    ]
    assert case.status == Status.UNCHANGED
    assert case.figures[0].runs == 5  # the five measured nights, not the crashed one


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


def test_a_file_that_does_not_load_is_skipped_and_named_once(history):
    (history / "zz-truncated.json").write_text('{"schema_version": 2, "cases": [')
    (history / "old.json").write_text(json.dumps({"schema_version": 1, "cases": []}))
    loaded = load_history(history)
    assert len(loaded) == 5
    assert [line.split(":")[0] for line in loaded.skipped] == ["old.json", "zz-truncated.json"]
    assert "schema_version=1" in loaded.skipped[0]
    comparison = compare_run(run(9, 3.58), loaded)
    assert comparison.exit_code() == 0
    notes = comparison.markdown()
    assert notes.count("zz-truncated.json") == 1
    assert "delete it or rerun" not in notes  # the advice for a results file of one's own, not a history's


def test_a_night_s_other_json_is_ignored_with_one_note(history, tmp_path):
    """An artifact as the nightly uploads it: results.json beside compare.json and the reports."""
    night = history / "12345"
    night.mkdir()
    run(6, 3.6).save(night / "results.json")
    comparison = compare_run(run(9, 3.58), load_history(history))
    (night / "compare.json").write_text(json.dumps(comparison.to_dict()))
    (night / "summary.md").write_text("# perfgate\n")
    loaded = load_history(history)
    assert len(loaded) == 6
    assert loaded.ignored == ["12345/compare.json"]
    again = compare_run(run(9, 3.58), loaded)
    assert again.exit_code() == 0
    assert "ignored 1 JSON file(s) that are not results: 12345/compare.json" in again.markdown()


def test_other_measurement_settings_are_incomparable(history):
    current = run(9, 3.58)
    current.config = {"threads": "2"}
    comparison = compare_run(current, load_history(history))
    assert {c.status for c in comparison.cases} == {Status.INCOMPARABLE}
    assert "threads=None there, 2 here" in comparison.cases[0].detail


def test_a_case_at_another_thread_count_is_not_compared_with_this_one(history):
    current = run(9, 1.0)
    current.cases[0].threads = 4
    assert statuses(current, history)["minilm/ort-int8/b1/cpu"] == Status.NEW


def test_an_absolute_latency_is_shown_but_never_alerts_alone(history, tmp_path):
    def with_latency(night: int, seconds: float) -> RunRecord:
        record = run(night, 3.55)
        record.cases[0].metrics["speed"]["latency"] = {"candidate": {"p50": seconds}}
        return record

    directory = tmp_path / "latencies"
    directory.mkdir()
    for night in range(5):
        with_latency(night, 0.010).save(tmp_path / "l.json")
        store_run(tmp_path / "l.json", directory)
    comparison = compare_run(with_latency(9, 0.015), load_history(directory))
    case = comparison.cases[0]
    assert case.status == Status.UNCHANGED
    assert [(f.name, f.status) for f in case.figures if f.name == "latency_p50"] == [("latency_p50", Status.REGRESSION)]
    assert "(shown, not alerting)" in comparison.markdown()


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


def test_a_missing_run_is_named_with_its_fix_before_the_history_is_read(tmp_path, capsys, monkeypatch):
    from perfgate.cli import compare

    def walked(directory):
        raise AssertionError(f"walked {directory} before checking the run")

    monkeypatch.setattr(compare, "load_history", walked)
    assert main(["compare", str(tmp_path / "missing.json"), "--history", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("missing.json") == 1
    assert "does not exist; check the path" in err
    assert "delete it" not in err


def test_the_version_is_printed(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("perfgate ")


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


def store(record: RunRecord, directory: Path, scratch: Path) -> Path:
    source = scratch / f"{record.started[:10]}.json"
    record.save(source)
    return store_run(source, directory)


def regressed_night(night: int) -> RunRecord:
    """A night whose comparison confirmed ort-int8's drop (compare --confirm --annotate wrote it in)."""
    record = run(night, 2.9)
    record.against_history = {
        "minilm/ort-int8/b1/cpu": {"status": "regression", "confirmed": True},
        "minilm/torch-int8/b1/cpu": {"status": "unchanged", "confirmed": None},
    }
    return record


def test_a_confirmed_regression_stays_out_of_the_reference_until_it_is_accepted(history, tmp_path, capsys):
    store(regressed_night(6), history, tmp_path)
    # The night after: still compared with the five good nights, so it still regresses.
    assert statuses(run(7, 2.92), history)["minilm/ort-int8/b1/cpu"] == Status.REGRESSION
    assert main(["accept", "minilm/ort-int8/b1/cpu", "--history", str(history), "--reason", "new ORT kernel",
                 "--who", "maintainer"]) == 0  # fmt: skip
    assert "accept-" in capsys.readouterr().out
    loaded = load_history(history)
    assert [(a.cases, a.reason, a.who) for a in loaded.acceptances] == [
        (("minilm/ort-int8/b1/cpu",), "new ORT kernel", "maintainer")
    ]
    comparison = compare_run(run(7, 2.92), loaded)
    found = {c.case_id: c for c in comparison.cases}
    assert found["minilm/ort-int8/b1/cpu"].status == Status.UNCHANGED  # against the accepted night alone
    assert found["minilm/ort-int8/b1/cpu"].figures[0].runs == 1
    assert found["minilm/torch-int8/b1/cpu"].figures[0].runs == 5  # other cases keep their history
    assert "new ORT kernel" in comparison.markdown()
    assert comparison.to_dict()["acceptances"][0]["reason"] == "new ORT kernel"


def test_an_acceptance_copied_into_several_artifacts_counts_once(history, tmp_path):
    store(regressed_night(6), history, tmp_path)
    main(["accept", "minilm/ort-int8/b1/cpu", "--history", str(history), "--reason", "r", "--who", "w"])
    (marker,) = history.glob("accept-*.json")
    (history / "night7").mkdir()
    (history / "night7" / marker.name).write_text(marker.read_text())
    assert len(load_history(history).acceptances) == 1


def test_accepting_an_unknown_case_or_without_a_reason_is_refused(history, capsys):
    assert main(["accept", "minilm/no-such/b1/cpu", "--history", str(history), "--reason", "r"]) == 2
    err = capsys.readouterr().err
    assert "'minilm/no-such/b1/cpu' are not in run" in err
    assert "minilm/ort-int8/b1/cpu" in err
    assert main(["accept", "minilm/ort-int8/b1/cpu", "--history", str(history), "--reason", " "]) == 2
    assert "--reason is empty" in capsys.readouterr().err
    assert list(history.glob("accept-*.json")) == []


def test_confirm_re_measures_with_the_original_run_s_settings(history, tmp_path, monkeypatch):
    from perfgate.records import regressions

    seen = []

    def fake_rerun(nodeids, settings, markexpr):
        seen.append((settings, markexpr))
        again = run(10, 2.95)
        again.config = settings
        return again

    monkeypatch.setattr(regressions, "rerun_tests", fake_rerun)
    settings = {"budget": "60.0", "min_pairs": "80", "threads": "None", "seed": "0", "markexpr": "gpu and slow"}
    directory = tmp_path / "precise"
    directory.mkdir()
    for night, speedup in enumerate(NIGHTS):
        record = run(night, speedup)
        record.config = settings
        store(record, directory, tmp_path)
    slow = run(9, 2.9)
    slow.config = settings
    slow.save(tmp_path / "slow.json")
    assert main(["compare", str(tmp_path / "slow.json"), "--history", str(directory), "--confirm"]) == 1
    assert seen == [({"budget": "60.0", "min_pairs": "80", "seed": "0", "threads": "None", "precision": None,
                      "hardware_class": None}, "gpu and slow")]  # fmt: skip
    seen.clear()
    del slow.config["markexpr"]  # written before the expression was recorded: every marker selected
    slow.save(tmp_path / "slow.json")
    main(["compare", str(tmp_path / "slow.json"), "--history", str(directory), "--confirm"])
    assert seen[0][1] == "slow or not slow"


SLOW_TEST = """
import shutil
from pathlib import Path

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("technique", ["ort-int8"])
def test_x(technique, request):
    shutil.copy("remeasured.json", Path(request.config.getoption("perfgate_report_dir")) / "results.json")
"""


@pytest.mark.parametrize("markexpr", ["slow or not slow", ""])
def test_a_slow_case_is_re_measured_under_the_run_s_own_marker_expression(tmp_path, monkeypatch, capsys, markexpr):
    """A real pytest re-run: the plugin skips a `slow` test unless -m names it. Recorded with the nightly's
    expression, the suspect is re-measured and confirmed; recorded as a default run (no -m), nothing is."""
    project = tmp_path / "project"
    (project / "perf").mkdir(parents=True)
    (project / "perf" / "test_x.py").write_text(SLOW_TEST)
    directory = tmp_path / "history"
    directory.mkdir()
    for night, speedup in enumerate(NIGHTS):
        store(run(night, speedup), directory, tmp_path)
    regressed = run(9, 2.5)
    regressed.config = {"markexpr": markexpr}
    regressed.save(project / "remeasured.json")
    regressed.save(tmp_path / "night.json")
    monkeypatch.chdir(project)
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:cacheprovider")
    code = main(["compare", str(tmp_path / "night.json"), "--history", str(directory), "--confirm",
                 "--json", str(tmp_path / "compare.json")])  # fmt: skip
    if markexpr:
        assert code == 1
        case = next(c for c in json.loads((tmp_path / "compare.json").read_text())["cases"] if "ort" in c["case_id"])
        assert (case["status"], case["confirmed"]) == ("regression", True)
    else:
        assert code == 2
        assert "recorded no results" in capsys.readouterr().err


def test_confirm_on_a_pytest_benchmark_run_is_a_clear_refusal(tmp_path, capsys):
    from tests.test_pytest_benchmark import saved_run

    benchmarks = tmp_path / "benchmarks"
    for number in range(3):
        saved_run(benchmarks, number, 1.0e-5)
    current = saved_run(tmp_path / "now", 9, 1.6e-5)
    assert main(["compare", str(current), "--history", str(benchmarks), "--confirm"]) == 2
    assert "pytest-benchmark run" in capsys.readouterr().err


def test_the_band_holds_the_run_s_own_interval_as_well_as_the_nights_spread(history):
    """-14 % with an interval of ±3 % is a regression; the same figure measured to ±25 % cannot show it."""
    precise, loose = run(9, 3.05), run(9, 3.05)
    loose.cases[0].metrics["speed"]["estimate"].update(ci_low=3.05 * 0.78, ci_high=3.05 * 1.28)
    precise.cases[0].metrics["speed"]["estimate"].update(ci_low=3.05 * 0.97, ci_high=3.05 * 1.03)
    assert statuses(precise, history)["minilm/ort-int8/b1/cpu"] == Status.REGRESSION
    (figure, *_) = next(c for c in compare_run(loose, load_history(history)).cases if "ort" in c.case_id).figures
    assert figure.status == Status.UNCHANGED
    assert figure.low < 3.05 * 0.99


def test_a_run_measured_to_a_wide_interval_still_shows_a_hundredfold_regression(history):
    """The band is a half-width in log space, as the interval is: an interval spanning 34x (0.62x-21.45x,
    three xdist workers on two cores) widens it both ways alike and never takes its floor down to 0."""
    slow = 3.55 / 100
    wide = run(9, slow)
    wide.cases[0].metrics["speed"]["estimate"].update(ci_low=slow * 0.62, ci_high=slow * 21.45)
    (figure, *_) = next(c for c in compare_run(wide, load_history(history)).cases if "ort" in c.case_id).figures
    assert figure.status == Status.REGRESSION
    assert 0 < figure.low < figure.reference / 5  # widened by the interval, still above 0
    assert figure.high / figure.reference == pytest.approx(figure.reference / figure.low)


def test_the_batch_sweep_s_gains_are_compared_with_their_intervals(tmp_path):
    def sweep(night: int, gain: float, half: float) -> RunRecord:
        result = CaseResult(spec=CaseSpec("minilm", "fp32-eager", 16), hardware_class="cpu-amx",
                            outcome=Outcome.MEASURED)  # fmt: skip
        estimate = {"speedup": gain, "ci_low": gain * (1 - half), "ci_high": gain * (1 + half), "batch_size": 8}
        result.metrics = {"batch_sweep": {"gains": {"batching": estimate}}}
        return RunRecord(fingerprint=FINGERPRINT, config={}, cases=[result], started=f"2026-11-{10 + night:02d}")

    history = [(tmp_path / f"{n}.json", sweep(n, g, 0.02)) for n, g in enumerate([2.0, 2.05, 1.97, 2.02, 1.99])]
    (case,) = compare_run(sweep(9, 1.6, 0.02), history).cases
    assert case.status == Status.REGRESSION
    assert [f.name for f in case.figures] == ["batching_gain"]
    (loose,) = compare_run(sweep(9, 1.75, 0.2), history).cases  # measured to ±20%: cannot show -12%
    assert loose.status == Status.UNCHANGED
