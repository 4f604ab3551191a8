"""`perfgate thresholds derive`: one class's hardware-dependent thresholds from stored runs, by the rules."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from perfgate import technique
from perfgate.case import CaseResult
from perfgate.cli import BAD_INPUT, main
from perfgate.comparison import SpeedEstimate, decide
from perfgate.derive import TooFewRuns, derive, observations
from perfgate.history import load_history
from perfgate.outcome import Outcome, Verdict
from perfgate.results import RunRecord
from perfgate.spec import CaseSpec
from perfgate.technique import technique_names
from perfgate.thresholds import FIELDS, load_thresholds

CLASS = "cpu-test"
FINGERPRINT = {
    "hardware_class": {"cpu": CLASS, "cuda": "gpu-none"},
    "cpu": {"model": "Test CPU", "logical_cores": 2},
    "libraries": {"torch": "2.13.0", "transformers": "4.57.6"},
}


def speed(median: float, halfwidth: float = 0.03) -> dict:
    return {
        "estimate": {
            "speedup": median, "ci_low": median * (1 - halfwidth), "ci_high": median * (1 + halfwidth),
            "pairs": 40, "spread": 0.05, "noisy": False,
        },
        "latency": {"baseline": {"p50": 0.01}, "candidate": {"p50": 0.01 / median}},
        "bound": None, "verdict": "ungated", "stop_reason": "interval narrow enough",
    }  # fmt: skip


def run(started: str, ort: float, memory: float, anon: float = 1.3, **fingerprint: object) -> RunRecord:
    cases = [
        CaseResult(CaseSpec("minilm", "onnxruntime-o2"), CLASS, Outcome.MEASURED,
                   metrics={"speed": speed(ort), "memory": {"ratio": memory}}),
        CaseResult(CaseSpec("minilm", "attention-eager", batch_size=8), CLASS, Outcome.MEASURED,
                   metrics={"speed": speed(0.95)}),
        CaseResult(CaseSpec("gpt2", "load-state-dict", scenario="load"), CLASS, Outcome.MEASURED,
                   metrics={"load": {"anon_peak_ratio": anon}}, thresholds={"derivable": False}),
        CaseResult(CaseSpec("minilm", "bf16-cast"), CLASS, Outcome.ERROR, detail="boom"),
    ]  # fmt: skip
    return RunRecord({**FINGERPRINT, **fingerprint}, {}, cases, started=started)


def history(tmp_path: Path, records: list[RunRecord]) -> Path:
    directory = tmp_path / "history"
    for number, record in enumerate(records):
        record.save(directory / f"run{number}.json")
    return directory


THREE = [
    run("2026-12-01T00:00:00+00:00", ort=2.0, memory=1.80),
    run("2026-12-02T00:00:00+00:00", ort=2.2, memory=1.90),
    run("2026-12-03T00:00:00+00:00", ort=1.9, memory=1.85),
]


def test_each_field_follows_its_rule_and_names_its_values_runs_and_fingerprints(tmp_path):
    derived = derive(load_history(history(tmp_path, THREE)), CLASS)
    values = {(d.section, d.name): d.value for d in derived.values}
    ort = 'techniques."onnxruntime-o2".cpu-test.models."minilm/b1"'
    # speed: 0.75 x the lowest lower CI bound (1.9 x 0.97), rounded down
    assert values[(ort, "min_speedup")] == math.floor(0.75 * 1.9 * 0.97 * 100) / 100 == 1.38
    # memory: max(1.90 x 1.15, 1.90 + 0.10) = 2.185, rounded up
    assert values[(ort, "max_memory_ratio")] == 2.19
    # a bound below 1x is spelled as the slowdown it allows: 0.75 x 0.95 x 0.97 = 0.691 -> 1/0.691 - 1
    eager = 'techniques."attention-eager".cpu-test.models."minilm/b8"'
    assert values[(eager, "max_slowdown")] == math.ceil((1 / (0.75 * 0.95 * 0.97) - 1) * 100) / 100
    text = derived.toml()
    assert "min_speedup = 1.38  # 1.94 (run 1), 2.134 (run 2), 1.843 (run 3)" in text
    assert "run 1: run0.json, started 2026-12-01T00:00:00+00:00, Test CPU (2 cores), torch 2.13.0" in text
    assert f"max_memory_ratio: {FIELDS['max_memory_ratio'].rule.describe(floor=False)}" in text
    assert "max_slowdown: 0.75 x the lowest speedup, as 1/bound - 1, rounded outward" in text


def test_an_anti_pattern_a_failed_case_and_hardware_independent_fields_are_not_derived(tmp_path):
    derived = derive(load_history(history(tmp_path, THREE)), CLASS)
    names = {(d.section.split(".")[1], d.name) for d in derived.values}
    assert not any(technique in ('"load-state-dict"', '"bf16-cast"') for technique, _ in names)
    assert all(FIELDS["min_speedup" if n == "max_slowdown" else n].hardware for _, n in names)


def test_the_derived_file_loaded_back_passes_its_runs_and_fails_a_planted_slowdown(tmp_path):
    path = tmp_path / "thresholds.d" / f"{CLASS}.toml"
    path.parent.mkdir()
    path.write_text(derive(load_history(history(tmp_path, THREE)), CLASS).toml())
    bound = load_thresholds([path], technique_names()).lookup("onnxruntime-o2", CLASS, "minilm", 1).speed_bound()
    assert bound is not None

    def verdict(median: float) -> Verdict | None:
        return decide(SpeedEstimate(median, median * 0.97, median * 1.03, 40, 0.05, noisy=False), bound)

    assert [verdict(r.cases[0].metrics["speed"]["estimate"]["speedup"]) for r in THREE] == [Verdict.PASS] * 3
    assert verdict(1.9 / 2) == Verdict.FAIL  # the slowest run, twice as slow
    assert verdict(1.9 * 0.7) != Verdict.PASS  # 30% less speed: FAIL or undecided, never PASS


def test_with_fewer_comparable_runs_than_min_runs_it_refuses_naming_the_count(tmp_path):
    other_torch = run("2026-12-04T00:00:00+00:00", ort=2.0, memory=1.8, libraries={"torch": "2.14.0"})
    with pytest.raises(TooFewRuns, match=r"1 comparable run"):
        derive(load_history(history(tmp_path, [*THREE[:2], other_torch])), CLASS)  # the newest decides
    with pytest.raises(TooFewRuns, match=r"0 comparable run.* 'cpu-other'"):
        derive(load_history(history(tmp_path, THREE)), "cpu-other")


def test_a_case_measured_in_too_few_runs_is_left_out_and_said(tmp_path):
    records = [run(f"2026-12-0{day}T00:00:00+00:00", ort=2.0, memory=1.8) for day in (1, 2, 3)]
    records[0].cases.append(
        CaseResult(CaseSpec("tiny", "onnxruntime-o3"), CLASS, Outcome.MEASURED, metrics={"speed": speed(3.0)})
    )
    derived = derive(load_history(history(tmp_path, records)), CLASS)
    section = 'techniques."onnxruntime-o3".cpu-test.models."tiny/b1"'
    assert derived.left_out == [f"{section} min_speedup: in 1 of the 3 runs"]
    assert "# Not derived (measured in too few of the runs):" in derived.toml()


def test_observations_are_the_hardware_dependent_figures_of_a_measured_case():
    metrics = {"speed": speed(1.5), "memory": {"ratio": 0.9}, "fidelity": {"cosine_min": 0.99}}
    case = CaseResult(CaseSpec("m", "t"), CLASS, Outcome.MEASURED, metrics=metrics)
    assert observations(case) == {"min_speedup": pytest.approx(1.455), "max_memory_ratio": 0.9}
    case.outcome = Outcome.CRASHED
    assert observations(case) == {}


def test_the_cli_writes_the_class_file_and_exits_2_with_too_few_runs(tmp_path, capsys):
    directory = history(tmp_path, THREE)
    output = tmp_path / "out" / f"{CLASS}.toml"
    assert main(["thresholds", "derive", "--history", str(directory), "--class", CLASS, "--output", str(output)]) == 0
    load_thresholds([output], technique_names())  # a valid thresholds file
    assert f"wrote {output}: 3 thresholds for {CLASS} from 3 runs" in capsys.readouterr().out
    code = main(["thresholds", "derive", "--history", str(directory), "--class", CLASS, "--min-runs", "4"])
    assert code == BAD_INPUT
    assert "3 comparable run(s) of hardware class 'cpu-test'" in capsys.readouterr().err


def test_show_lists_per_technique_the_fields_that_gate_on_a_class_with_section_and_file(tmp_path, capsys, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[tool.pytest.ini_options]\nperfgate_thresholds = "t.toml"\n')
    (tmp_path / "t.toml").write_text('[techniques."onnxruntime-o2".cpu-test.models.minilm]\nmin_speedup = 1.5\n')
    monkeypatch.chdir(tmp_path)
    assert main(["thresholds", "show", "--class", CLASS]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime-o2: speed/memory gated" in out
    assert f"min_speedup = 1.5  [cpu-test.models.minilm] {tmp_path / 't.toml'}" in out
    assert "bf16-cast: fidelity and sizes only (speed and memory UNGATED)" in out  # the shipped floors
    assert main(["thresholds", "show", "--class", CLASS, "--check"]) == 1
    (tmp_path / "thresholds.d").mkdir()
    (tmp_path / "thresholds.d" / f"{CLASS}.toml").write_text("schema = 1\n")
    assert main(["thresholds", "show", "--class", CLASS, "--check"]) == 0


def test_show_knows_the_techniques_a_project_registers_in_its_conftest(tmp_path, capsys, monkeypatch):
    (tmp_path / "conftest.py").write_text(
        "from perfgate import Technique, register_technique\n\n\n"
        "class Ours(Technique):\n"
        "    name = 'ours'\n"
        "    summary = 'a project technique'\n\n"
        "    def apply(self, model, workdir, threads):\n"
        "        raise NotImplementedError\n\n\n"
        "register_technique('ours', 'conftest:Ours')\n"
    )
    (tmp_path / "pyproject.toml").write_text('[tool.pytest.ini_options]\nperfgate_thresholds = "t.toml"\n')
    (tmp_path / "t.toml").write_text("[techniques.ours.default]\nmin_cosine = 0.5\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "conftest", raising=False)
    monkeypatch.setattr(technique, "_registered", dict(technique._registered))
    assert main(["thresholds", "show", "--class", CLASS]) == 0
    assert "ours: fidelity and sizes only" in capsys.readouterr().out
