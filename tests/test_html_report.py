"""The HTML report: self-contained, with its figures, the summary table and the history when given."""

from __future__ import annotations

import base64
import re

import pytest

from perfgate.engine.record import CaseResult
from perfgate.engine.spec import CaseSpec
from perfgate.instruments.outcome import Outcome, Verdict
from perfgate.records.regressions import compare_run
from perfgate.records.results import RunRecord

pytest.importorskip("matplotlib")

from perfgate.reports.figures import history_points, pareto_front
from perfgate.reports.html_report import html_report  # needs matplotlib


def case(technique: str, speedup: float, cosine: float, memory: float = 1.0) -> CaseResult:
    result = CaseResult(spec=CaseSpec("minilm", technique), hardware_class="cpu-amx", outcome=Outcome.MEASURED,
                        verdict=Verdict.PASS, nodeid=f"perf/t.py::t[{technique}]")  # fmt: skip
    result.metrics = {
        "speed": {
            "estimate": {"speedup": speedup, "ci_low": speedup * 0.95, "ci_high": speedup * 1.05, "noisy": False},
            "verdict": "pass",
        },
        "fidelity": {"cosine_min": cosine},
        "memory": {"ratio": memory},
    }
    return result


def run(day: int, factor: float = 1.0) -> RunRecord:
    cases = [case("ort-int8", 3.6 * factor, 0.985, 0.5), case("bf16", 1.6, 0.9999, 0.9), case("slow", 0.5, 0.99)]
    fingerprint = {"hardware_class": {"cpu": "cpu-amx", "cuda": "gpu-none"}, "libraries": {}}
    return RunRecord(fingerprint=fingerprint, config={}, cases=cases, started=f"2026-11-{day:02d}T02:00:00+00:00")


def images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)]


def test_the_pareto_front_keeps_only_points_nothing_beats_on_both():
    points = [(3.6, 0.985), (1.6, 0.9999), (0.5, 0.99), (3.0, 0.98)]
    assert pareto_front(points) == [0, 1]  # 0.5x and the slower, less faithful 3.0x are dominated


def test_the_report_is_self_contained_with_figures_and_the_table():
    page = html_report(run(20))
    found = images(page)
    assert len(found) == 3  # speedup, accuracy against speed, memory
    assert all(png.startswith(b"\x89PNG") for png in found)
    assert "<table>" in page
    assert "ort-int8" in page
    assert "PASS" in page
    assert "http" not in page.replace("charset", "")  # nothing fetched from elsewhere


def test_with_a_history_the_report_draws_each_case_against_its_band():
    history = [(None, run(day)) for day in range(10, 15)]
    current = run(20, factor=0.7)  # ort-int8 regressed
    page = html_report(current, compare_run(current, history), history)
    assert len(images(page)) == 4


def test_the_history_marks_the_nights_that_confirmed_a_regression():
    history = [(None, run(day)) for day in range(10, 14)]
    case_id = history[0][1].cases[0].spec.case_id
    history[1][1].against_history = {case_id: {"status": "regression", "confirmed": True}}
    history[2][1].against_history = {case_id: {"status": "regression", "confirmed": False}}  # a blip
    history[3][1].against_history = {case_id: {"status": "unchanged", "confirmed": None}}
    points = history_points(case_id, history)
    assert [confirmed for _, _, confirmed in points] == [False, True, False, False]
    assert points[0][:2] == ("2026-11-10", pytest.approx(3.6))
    current = run(20, factor=0.7)
    assert len(images(html_report(current, compare_run(current, history), history))) == 4


def test_upgrade_gates_get_a_table_each_with_their_checks():
    from pathlib import Path

    from perfgate.answers.arms import Arm
    from perfgate.answers.upgrade import Check, GateResult
    from perfgate.instruments.outcome import Verdict

    gate = GateResult("fp32-eager", Arm("current", "minilm", Path("m"), "feature-extraction"),
                      Arm("candidate", "minilm-wide-ffn", Path("w"), "feature-extraction"))  # fmt: skip
    gate.checks = [Check("speed", Verdict.FAIL, 0.68, 0.66, 0.70, rule="speedup ≥ 0.909", detail="40 ABBA pairs")]
    record = run(20)
    record.gates = [gate.to_dict()]
    page = html_report(record)
    assert "<h2>Upgrade gates</h2>" in page
    assert "minilm → minilm-wide-ffn" in page
    assert "<td>0.68x [0.66, 0.70]</td>" in page
    assert "FAIL" in page.split("Upgrade gates")[1]


def test_the_ladder_is_a_table_in_the_html_report_too():
    from tests.test_report import measured_case

    record = run(20)
    record.cases += [measured_case("pad-to-128", 0.4), measured_case("torch-dynamic-int8-per-channel", 2.5),
                     measured_case("onnxruntime-o2-int8-dynamic", 5.0)]  # fmt: skip
    page = html_report(record)
    assert "<h2>The production ladder</h2>" in page
    assert (
        "<tr><td>dynamic shapes: no padding</td><td>10.0 ms</td><td>2.50x</td><td>69 ms (no padding)</td></tr>" in page
    )
    assert "<th>the write-up</th>" in page


def test_the_loading_tables_are_in_the_html_report():
    from perfgate.engine.scenarios.load import load_figures
    from tests.test_load import worker_data

    record = run(20)
    loaded = CaseResult(
        spec=CaseSpec("gpt2", "load-offload", scenario="load"), hardware_class="c", outcome=Outcome.MEASURED
    )
    loaded.metrics["load"] = load_figures(worker_data(peak_anon=345 * 2**20), {"after": {"anon": 260 * 2**20}})
    capped = CaseResult(
        spec=CaseSpec("gpt2", "load-state-dict", scenario="load-under-cap"),
        hardware_class="c",
        outcome=Outcome.MEASURED,
    )
    capped.metrics["load_under_cap"] = {"cap_bytes": 256 * 2**20, "outcome": "oom", "fits": False}
    record.cases += [loaded, capped]
    page = html_report(record)
    assert "<h2>Loading</h2>" in page
    assert "<td>cpu 150, disk 336</td>" in page
    assert "<h2>Loading under a memory cap</h2>" in page
    assert "<td>no: killed inside its cgroup</td>" in page


def test_the_training_tables_and_figure_are_in_the_html_report():
    from tests.test_training import MB, batch_figures, loader_figures, training_figures

    record = run(20)
    steps = CaseResult(spec=CaseSpec("minilm", "train-adafactor", scenario="train-step"), hardware_class="c",
                       outcome=Outcome.MEASURED, verdict=Verdict.PASS)  # fmt: skip
    steps.metrics["training"] = training_figures(0.001, 750 * MB, 0.4 * MB, 0.4 * MB)
    steps.metrics["speed"] = {"estimate": {"speedup": 0.9, "ci_low": 0.85, "ci_high": 0.95, "noisy": False}}
    loader = CaseResult(spec=CaseSpec("minilm", "train-dataloader-workers-2", scenario="train-dataloader"),
                        hardware_class="c", outcome=Outcome.MEASURED)  # fmt: skip
    loader.metrics["training"] = loader_figures(0.97)
    sized = CaseResult(spec=CaseSpec("minilm", "train-grad-checkpointing", scenario="train-batch"),
                       hardware_class="c", outcome=Outcome.MEASURED)  # fmt: skip
    sized.metrics["train_batch"] = batch_figures(8, 32)
    record.cases += [steps, loader, sized]
    page = html_report(record)
    assert "<h2>Training</h2>" in page
    assert page.count("<table>") >= 4, "the summary, the recipes, the loader workers, the batch search"
    assert "<td>1.78x</td><td>0.97</td>" in page, "the loader table after the recipes' table"
    assert "<h2>Training batch size</h2>" in page
    assert "<h2>Training: speed and memory per recipe; throughput over batch sizes</h2>" in page
    assert len(images(page)) == 4  # speedup, accuracy against speed, memory, training


def overview_run() -> RunRecord:
    """A run with a planted FAIL its test asserts, an unexpected FAIL, and a loading case."""
    from perfgate.verdicts.thresholds import CheckResult

    planted, slow = case("planted-half-cosine", 0.9, 0.5), case("ort-int8", 0.8, 0.985, 0.5)
    planted.verdict, planted.test_outcome = Verdict.FAIL, "passed"
    slow.verdict, slow.test_outcome = Verdict.FAIL, "failed"
    slow.checks = [CheckResult("speed", "fail", "speedup 0.80x [0.76, 0.84] below 1.0")]
    load = CaseResult(spec=CaseSpec("gpt2", "load-safetensors", scenario="load"), hardware_class="cpu-amx",
                      outcome=Outcome.MEASURED, verdict=Verdict.PASS)  # fmt: skip
    record = run(20)
    record.cases = [planted, slow, case("bf16", 1.6, 0.9999, 0.9), load]
    return record


def test_the_overview_leads_with_counts_what_needs_attention_and_the_skips():
    skipped = [("t.py::a", "slow: the nightly selection"), ("t.py::b", "slow: the nightly selection")]
    page = html_report(overview_run(), skipped=skipped)
    overview = page[: page.index("<h2>Techniques against fp32 eager")]
    assert ">2 FAIL (1 expected)</span>" in overview
    assert ">2 PASS</span>" in overview  # bf16 and the load
    assert "<h2>Needs attention (1)</h2>" in overview
    assert "<b>minilm/ort-int8/b1/cpu</b> (FAIL): speedup 0.80x [0.76, 0.84] below 1.0" in overview
    assert "Expected failures — their tests assert them, and passed: minilm/planted-half-cosine/b1/cpu" in overview
    assert "Skipped 2 tests: 2 slow" in overview


def test_each_family_has_its_own_table_with_only_the_columns_it_fills():
    page = html_report(overview_run())
    tables = re.findall(r"<h2>([^<]+)</h2><table><tr>(.*?)</tr>", page)
    headers = {title: re.findall(r"<th>([^<]+)</th>", row) for title, row in tables}
    forward = headers["Techniques against fp32 eager: speed, fidelity, memory, size (3)"]
    assert {"speedup [95% CI]", "cos min", "memory"} <= set(forward)
    assert "load s" not in forward  # no case of this family has it
    loading = headers["Loading a checkpoint (1)"]
    assert loading[:4] == ["model", "technique", "batch", "verdict"]
    assert "cos min" not in loading


def test_memory_is_coloured_by_the_memory_check_not_the_verdict():
    from perfgate.reports.figures import MEMORY_CHECKS, SPEED_CHECKS, check_verdict
    from perfgate.verdicts.thresholds import CheckResult

    fast_but_heavy = case("onnxruntime-o2", 2.2, 1.0, 1.8)
    fast_but_heavy.verdict = Verdict.FAIL
    fast_but_heavy.checks = [CheckResult("speed", "pass", "fast"), CheckResult("max_memory_ratio", "fail", "1.80x")]
    assert check_verdict(fast_but_heavy, MEMORY_CHECKS) == Verdict.FAIL
    assert check_verdict(fast_but_heavy, SPEED_CHECKS) == Verdict.PASS
    assert check_verdict(case("bf16", 1.6, 0.9999), MEMORY_CHECKS) == Verdict.UNGATED  # no memory bound judged


def test_the_distributed_table_and_figure_are_in_the_html_report():
    from perfgate.subjects.distributed.figures import distributed_figures
    from tests.test_train_distributed import rank_report

    record = run(20)
    sharded = CaseResult(spec=CaseSpec("minilm", "train-zero1", scenario="train-distributed"), hardware_class="c",
                         outcome=Outcome.MEASURED, verdict=Verdict.PASS)  # fmt: skip
    sharded.metrics["distributed"] = distributed_figures("zero1", [rank_report(0, 320), rank_report(1, 104)])
    record.cases.append(sharded)
    page = html_report(record)
    assert "<h2>Distributed training, per rank</h2>" in page
    assert "<h2>Distributed training: bytes per rank, measured against predicted</h2>" in page
    assert len(images(page)) == 4  # speedup, accuracy against speed, memory, bytes per rank
