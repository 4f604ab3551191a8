"""`perfgate thresholds derive`: one class's hardware-dependent thresholds from stored runs, by the rules."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from perfgate.answers.derive import BOUND_LINE, TooFewRuns, derive, keep_promises, observations, recorded_values
from perfgate.cli import BAD_INPUT, main
from perfgate.engine.record import CaseResult
from perfgate.engine.spec import CaseSpec
from perfgate.instruments.comparison import SpeedEstimate, decide
from perfgate.instruments.outcome import Outcome, Verdict
from perfgate.records.history import load_history
from perfgate.records.results import RunRecord
from perfgate.subjects import catalogue
from perfgate.subjects.catalogue import technique_names
from perfgate.verdicts.fields import FIELDS
from perfgate.verdicts.thresholds import load_thresholds

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
    # speed: 0.75 x the lowest lower CI bound (1.9 x 0.97 = 1.843), and, since every run was faster than
    # fp32, at least half the smallest effect: 1 + 0.5 x 0.843 = 1.42, the larger, rounded down
    assert values[(ort, "min_speedup")] == math.floor((1 + 0.5 * (1.9 * 0.97 - 1)) * 100) / 100 == 1.42
    # memory: max(1.90 x 1.15, 1.90 + 0.10) = 2.185, rounded up
    assert values[(ort, "max_memory_ratio")] == 2.19
    # a bound below 1x is spelled as the slowdown it allows: 0.75 x 0.95 x 0.97 = 0.691 -> 1/0.691 - 1
    eager = 'techniques."attention-eager".cpu-test.models."minilm/b8"'
    assert values[(eager, "max_slowdown")] == math.ceil((1 / (0.75 * 0.95 * 0.97) - 1) * 100) / 100
    text = derived.toml()
    assert "min_speedup = 1.42  # 1.94 (run 1), 2.134 (run 2), 1.843 (run 3); keeps 0.5 of the smallest effect" in text
    assert "run 1: run0.json, started 2026-12-01T00:00:00+00:00, Test CPU (2 cores), torch 2.13.0" in text
    assert f"max_memory_ratio: {FIELDS['max_memory_ratio'].rule.describe(floor=False)}" in text
    assert "max_slowdown: the min_speedup rule; a bound below 1x written as 1/bound - 1, rounded outward" in text


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


def planted(speedups: list[float], ratios: list[float]) -> list[RunRecord]:
    return [run(f"2026-12-0{day}T00:00:00+00:00", ort=speedup, memory=ratio)
            for day, (speedup, ratio) in enumerate(zip(speedups, ratios, strict=True), start=1)]  # fmt: skip


def no_effect(bound: float) -> Verdict | None:
    return decide(SpeedEstimate(1.0, 0.97, 1.03, 40, 0.05, noisy=False), bound)


def test_where_every_run_showed_the_effect_a_run_without_it_fails(tmp_path):
    # ORT O2 at batch 8 on cpu-avx2: lower bounds 1.13-1.15x; the 0.75 rule alone allowed 0.84x
    records = planted([1.165, 1.17, 1.185], [0.91, 0.90, 0.905])
    path = tmp_path / "thresholds.d" / f"{CLASS}.toml"
    path.parent.mkdir()
    path.write_text(derive(load_history(history(tmp_path, records)), CLASS).toml())
    gate = load_thresholds([path], technique_names()).lookup("onnxruntime-o2", CLASS, "minilm", 1)
    bound = gate.speed_bound()
    assert no_effect(0.75 * 1.165 * 0.97) == Verdict.PASS  # the 0.75 rule alone let a 1.00x run pass
    assert bound is not None
    assert no_effect(bound) == Verdict.FAIL
    assert [decide(SpeedEstimate(s, s * 0.97, s * 1.03, 40, 0.05, False), bound) for s in (1.165, 1.17)] == [
        Verdict.PASS
    ] * 2  # the runs it came from still pass
    # memory: every ratio below 1, so 1.00 (the saving gone) is above the bound
    assert gate.values["max_memory_ratio"] == math.ceil((1 - 0.5 * (1 - 0.91)) * 100) / 100 == 0.96
    assert "max_memory_ratio = 0.96" in path.read_text()


def test_a_marginal_effect_keeps_a_no_effect_run_from_passing_and_says_so(tmp_path):
    derived = derive(load_history(history(tmp_path, planted([1.06, 1.07, 1.08], [0.99, 0.995, 0.99]))), CLASS)
    values = {d.name: d for d in derived.values if '"onnxruntime-o2"' in d.section}
    speed_bound = values["min_speedup"]
    assert speed_bound.value == 1.01
    assert no_effect(speed_bound.value) is None
    assert speed_bound.note.startswith("marginal effect")
    assert values["max_memory_ratio"].value == 1.0
    assert values["max_memory_ratio"].note.startswith("marginal saving")


def test_an_effect_not_every_run_showed_keeps_the_margin_rule(tmp_path):
    derived = derive(load_history(history(tmp_path, planted([1.02, 1.2, 1.3], [0.95, 1.02, 0.97]))), CLASS)
    values = {d.name: d for d in derived.values if '"onnxruntime-o2"' in d.section}
    assert values["max_slowdown"].value == math.ceil((1 / (0.75 * 1.02 * 0.97) - 1) * 100) / 100  # one run 0.99x
    assert values["max_memory_ratio"].value == math.ceil(1.02 * 1.15 * 100) / 100
    assert not values["max_memory_ratio"].note


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
    monkeypatch.setattr(catalogue, "_registered", dict(catalogue._registered))
    assert main(["thresholds", "show", "--class", CLASS]) == 0
    assert "ours: fidelity and sizes only" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("comment", "values"),
    [
        ("0.3777 (run 1), 0.4253 (run 2); bound 0.275x", [0.3777, 0.4253]),
        ("lower CI bounds 1.57, 1.49, 1.29 (0.75 x 1.29 = 0.97)", [1.57, 1.49, 1.29]),
        ("0.734, 0.780 earlier: 0.4 MB of state against AdamW's 173 MB", [0.734, 0.78]),
        ("b59 vs fp32 b100 (0.59), b63 vs b103 (0.61)", [0.59, 0.61]),
        ("1.17, 1.13 (medians 1.18-1.21x; 4-6 pairs: 1.4 s steps, 15.6 MB)", [1.17, 1.13]),
        ("1 in each of runs d1-d3", []),
    ],
)
def test_the_values_a_bound_s_comment_records_leave_out_units_ranges_and_arithmetic(comment, values):
    assert recorded_values(comment) == values


PROMISED_FILE = """[techniques."t".cpu-x.models."m/b8"]
max_slowdown = 0.19  # 1.127 (run 1), 1.129 (run 2), 1.149 (run 3); bound 0.845x
max_memory_ratio = 1.12  # 0.9654 (run 1), 0.972 (run 2)
max_load_anon_ratio = 0.21  # 0.1574 (run 1), 0.1539 (run 2)
min_speedup = 2.17  # 2.904 (run 1), 3.336 (run 2)
[techniques."t".cpu-x.models."m/b1"]
max_slowdown = 0.41  # lower CI bounds 0.98, 1.03
"""


def test_keep_promise_moves_only_bounds_that_let_no_effect_pass_where_every_value_shows_it(tmp_path, capsys):
    path = tmp_path / "thresholds.toml"
    path.write_text(PROMISED_FILE)
    text, moved = keep_promises(path, PROMISED_FILE, today="2026-12-07")
    assert [(m.line, m.before, m.after) for m in moved] == [
        (2, "max_slowdown = 0.19", "min_speedup = 1.06"),  # 1 + 0.5 x 0.127, rounded down
        (3, "max_memory_ratio = 1.12", "max_memory_ratio = 0.99"),  # 1 - 0.5 x 0.028, rounded up
    ]  # load peaks have no promise; 2.17 already keeps half of 1.904; 0.98 is no effect
    assert "min_speedup = 1.06   # 1.127 (run 1), 1.129 (run 2), 1.149 (run 3); bound 0.845x; 2026-12-07: keeps" in text
    assert keep_promises(path, text)[1] == []  # applied again, nothing moves
    assert main(["thresholds", "keep-promise", str(path)]) == 1  # a check: it would move two
    assert path.read_text() == PROMISED_FILE
    assert main(["thresholds", "keep-promise", str(path), "--write"]) == 0
    assert "2 bound(s) moved" in capsys.readouterr().out
    assert main(["thresholds", "keep-promise", str(path)]) == 0
    assert main(["thresholds", "keep-promise", str(tmp_path / "missing.toml")]) == BAD_INPUT
    assert "missing.toml: no such thresholds file" in capsys.readouterr().err


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SHIPPED_FILES = sorted([FIXTURES / "thresholds.toml", *(FIXTURES / "thresholds.d").glob("*.toml")])


@pytest.mark.parametrize("path", SHIPPED_FILES, ids=lambda path: path.name)
def test_no_shipped_bound_lets_a_no_effect_run_pass_where_every_run_showed_the_effect(path):
    """Each bound is read back as written (not through keep_promises): a 1.00x run with a ±3% interval
    and a memory ratio of 1.00 against every section whose recorded values all show the effect."""
    judged = 0
    for line in path.read_text().splitlines():
        match = BOUND_LINE.match(line)
        if not match or match["name"] not in FIELDS or not FIELDS[match["name"]].hardware:
            continue
        name, written = match["name"], float(match["value"])
        rule = FIELDS[name].rule
        floor = name in ("max_slowdown", "min_speedup") or name.startswith("min_")
        if rule is None or not rule.shows_effect(recorded_values(match["comment"]), floor):
            continue
        judged += 1
        if floor:
            bound = 1 / (1 + written) if name == "max_slowdown" else written
            assert no_effect(bound) != Verdict.PASS, line
            assert no_effect(bound) == Verdict.FAIL or "marginal effect" in line, line
        else:
            assert written < 1.0 or (written == 1.0 and "marginal saving" in line), line
    assert judged, f"{path}: no bound with values that all show an effect"
