"""Each metric's checks and table cells, and the report built from whatever metrics a case carries."""

from __future__ import annotations

from perfgate.engine.metrics import Metric, all_metrics
from perfgate.engine.metrics.batch_sweep import BatchSweep
from perfgate.engine.metrics.generation import GenerationLatency
from perfgate.engine.metrics.memory import ServingMemory
from perfgate.engine.metrics.result_cache import ResultCacheGain
from perfgate.engine.metrics.speed import Speed
from perfgate.engine.metrics.task import TaskScore
from perfgate.engine.record import CaseResult
from perfgate.engine.spec import CaseSpec
from perfgate.instruments.outcome import Outcome
from perfgate.reports.report import columns, summary_rows
from perfgate.verdicts.thresholds import Thresholds

MB = 2**20


def speed_figures(verdict: str = "pass", bound: float | None = 1.5) -> dict:
    return {
        "estimate": {"speedup": 2.0, "ci_low": 1.8, "ci_high": 2.2, "pairs": 20, "spread": 0.05, "noisy": False},
        "latency": {"baseline": {"p50": 0.010}, "candidate": {"p50": 0.005}},
        "bound": bound,
        "verdict": verdict,
        "stop_reason": "interval decided",
    }


def test_the_speed_message_carries_both_latencies_the_interval_and_the_rule():
    thresholds = Thresholds("t", "cpu-test", True, {"min_speedup": 1.5}, {"min_speedup": "f.toml [t.cpu-test]"})
    (check,) = Speed().checks(speed_figures(), thresholds, "t on m")
    assert check.verdict == "pass"
    for text in ("2.000x", "[1.800, 2.200]", "10.000 ms", "5.000 ms", "min_speedup 1.5 (f.toml [t.cpu-test])"):
        assert text in check.message


def test_memory_is_judged_on_the_attributable_ratio_and_shows_both_arms():
    figures = {"ratio": 0.5, "baseline": {"attributable": 80 * MB}, "candidate": {"attributable": 40 * MB}}
    thresholds = Thresholds("t", "c", True, {"max_memory_ratio": 0.4}, {"max_memory_ratio": "f"})
    (check,) = ServingMemory().checks(figures, thresholds, "t on m")
    assert check.verdict == "fail"
    assert ServingMemory().cells(figures) == {"memory": "0.50x", "attrib MiB": "40/80"}


def test_a_new_metric_reaches_the_table_without_an_edit_to_the_report(monkeypatch):
    class Joules(Metric):
        name = "energy"
        columns = ("joules",)

        def cells(self, figures):
            return {"joules": f"{figures['joules']:.1f}"}

    monkeypatch.setattr("perfgate.reports.report.all_metrics", lambda: (*all_metrics(), Joules()))
    result = CaseResult(CaseSpec("m", "t"), "c", outcome=Outcome.MEASURED, metrics={"energy": {"joules": 3.25}})
    (row,) = summary_rows([result])
    assert dict(zip(columns(), row, strict=True))["joules"] == "3.2"


def test_the_summary_names_figures_measured_without_a_threshold_on_a_gated_class():
    from perfgate.engine.judge import judge
    from perfgate.records.results import RunRecord
    from perfgate.reports.report import markdown_summary

    result = CaseResult(
        CaseSpec("m", "t"), "cpu-avx2", outcome=Outcome.MEASURED,
        metrics={"memory": {"ratio": 1.3}, "speed": {
            "estimate": {"speedup": 1.3, "ci_low": 1.2, "ci_high": 1.4, "pairs": 10, "spread": 0.01, "noisy": False},
            "latency": {"baseline": {"p50": 0.002}, "candidate": {"p50": 0.0015}},
            "bound": 1.1, "verdict": "pass", "stop_reason": "decided",
        }},
    )  # fmt: skip
    judge(result, Thresholds("t", "cpu-avx2", True, {"min_speedup": 1.1}, {"min_speedup": "f"}))
    assert result.verdict == "pass"
    summary = markdown_summary(RunRecord(fingerprint={}, config={}, cases=[result]))
    assert "- max_memory_ratio is measured but not gated on cpu-avx2 (1 cases)" in summary


def test_compile_checks_catch_an_extra_graph_and_a_graph_break():
    from perfgate.engine.metrics.compile import CompileCost

    figures = {"graphs": 3, "graph_breaks": 1, "cold_seconds": 9.5, "warm_seconds": 1.2, "sweep_lengths": [8, 16]}
    limits = {"max_compile_graphs": 2, "max_graph_breaks": 0}
    thresholds = Thresholds("t", "c", True, limits, dict.fromkeys(limits, "f"))
    verdicts = {c.name: c.verdict for c in CompileCost().checks(figures, thresholds, "t on m")}
    assert verdicts == {"max_compile_graphs": "fail", "max_graph_breaks": "fail"}
    within = {**figures, "graphs": 2, "graph_breaks": 0}
    assert {c.verdict for c in CompileCost().checks(within, thresholds, "t on m")} == {"pass"}
    assert CompileCost().cells(figures) == {"compile s": "9.5 cold / 1.2 warm"}


def stack_case(technique: str, speedup: float, low: float, high: float) -> CaseResult:
    case = CaseResult(spec=CaseSpec("m", technique), hardware_class="c", outcome=Outcome.MEASURED)
    case.metrics["speed"] = {"estimate": {"speedup": speedup, "ci_low": low, "ci_high": high}}
    return case


def test_a_stack_is_reported_against_its_best_part():
    from perfgate.reports.sections import stack_lines

    parts = [stack_case("a", 1.6, 1.5, 1.7), stack_case("b", 1.2, 1.1, 1.3)]
    (beats,) = stack_lines([*parts, stack_case("a+b", 2.0, 1.9, 2.1)])
    assert "beats its best part, a" in beats
    assert "a 1.60x, b 1.20x" in beats
    (noise,) = stack_lines([*parts, stack_case("a+b", 1.65, 1.55, 1.75)])
    assert "within noise of its best part, a" in noise
    (slower,) = stack_lines([*parts, stack_case("a+b", 1.3, 1.25, 1.35)])
    assert "slower than its best part, a" in slower
    (alone,) = stack_lines([parts[0], stack_case("a+b", 2.0, 1.9, 2.1)])
    assert "not every part was measured" in alone


def test_the_energy_check_fails_a_technique_that_costs_more_joules():
    from perfgate.engine.metrics.energy import EnergyPerInference

    figures = {"baseline": 0.002, "candidate": 0.0032, "ratio": 1.6, "rounds": 2}
    thresholds = Thresholds("t", "gpu-sm90", True, {"max_energy_ratio": 1.2}, {"max_energy_ratio": "f"})
    (check,) = EnergyPerInference().checks(figures, thresholds, "t on m")
    assert check.verdict == "fail"
    assert EnergyPerInference().cells(figures) == {"energy": "1.60x (3.20/2.00 mJ)"}
    assert EnergyPerInference().checks({"unavailable": "no NVML", "ratio": None}, thresholds, "t on m") == []


def largest_batch_figures(cap: dict | None, fp32: int = 100, technique: int = 150) -> dict:
    figures = {
        "seq_len": 128,
        "headroom_bytes": 512 * MB,
        "baseline": {"technique": "fp32-eager", "largest": fp32, "tries": [[fp32, True], [fp32 + 1, False]]},
        "candidate": {"technique": "t", "largest": technique, "tries": [[technique, True], [technique + 1, False]]},
        "ratio": technique / fp32,
    }
    if cap is not None:
        figures["cap"] = cap
    return figures


def test_the_largest_batch_is_gated_only_under_a_budget_that_counts_the_weights():
    from perfgate.engine.metrics.largest_batch import LargestBatch

    thresholds = Thresholds("t", "c", True, {"min_batch_fit_ratio": 1.2}, {"min_batch_fit_ratio": "f"})
    budget = {"kind": "cgroup", "version": 1, "budget_bytes": 384 * MB}
    (check,) = LargestBatch().checks(largest_batch_figures(budget, technique=110), thresholds, "t on m")
    assert check.verdict == "fail", "1.10x under a cgroup budget fails a 1.2x floor"
    (check,) = LargestBatch().checks(largest_batch_figures(budget, technique=150), thresholds, "t on m")
    assert check.verdict == "pass"
    headroom = {"kind": "address-space", "headroom_bytes": 512 * MB, "why_not_cgroup": "no permission"}
    assert LargestBatch().checks(largest_batch_figures(headroom, technique=110), thresholds, "t on m") == []
    assert LargestBatch().checks(largest_batch_figures(None, technique=110), thresholds, "t on m") == []


def test_the_largest_batch_section_names_each_cap():
    from perfgate.engine.metrics.largest_batch import LargestBatch

    caps = [
        {"kind": "cgroup", "version": 1, "budget_bytes": 384 * MB},
        {"kind": "address-space", "headroom_bytes": 512 * MB, "why_not_cgroup": "cannot make a memory cgroup"},
        None,
    ]
    cases = []
    for cap in caps:
        case = CaseResult(CaseSpec("minilm", "t"), "c", outcome=Outcome.MEASURED)
        case.metrics["largest_batch"] = largest_batch_figures(cap)
        cases.append(case)
    text = "\n".join(LargestBatch().section(cases))
    assert "cgroup v1, 384 MiB budget" in text
    assert "address space +512 MiB (no cgroup: cannot make a memory cgroup)" in text
    assert text.count("| b150 | b100 | 1.50x |") == 3


def task_figures(baseline: float, candidate: float, low: float, high: float) -> dict:
    return {
        "metric": "retrieval accuracy", "source": "data/paraphrases-hard.jsonl", "examples": 272,
        "baseline": baseline, "candidate": candidate, "ratio": candidate / baseline,
        "difference": candidate - baseline, "ci_low": low, "ci_high": high, "confidence": 0.9,
    }  # fmt: skip


def test_task_loss_is_judged_on_the_paired_interval_against_the_margin():
    thresholds = Thresholds("t", "c", False, {"max_task_loss": 0.03}, {"max_task_loss": "shipped.toml [t.default]"})
    verdicts = {
        name: TaskScore().checks(figures, thresholds, "t on m")[0]
        for name, figures in {
            "same": task_figures(0.801, 0.798, -0.018, 0.011),
            "cut": task_figures(0.801, 0.449, -0.40, -0.30),  # three of six layers
            "straddles": task_figures(0.801, 0.780, -0.045, 0.002),
        }.items()
    }
    assert {name: check.verdict for name, check in verdicts.items()} == {
        "same": "pass",
        "cut": "fail",
        "straddles": "inconclusive",
    }
    for text in ("0.449 against fp32's 0.801", "paraphrases-hard.jsonl (272 examples)", "[-0.400, -0.300]",
                 "max_task_loss 0.03 (shipped.toml [t.default])", "-> FAIL"):  # fmt: skip
        assert text in verdicts["cut"].message
    assert TaskScore().cells(task_figures(0.801, 0.449, -0.40, -0.30)) == {
        "task": "0.449/0.801 -0.352 [-0.400, -0.300]"
    }


def test_without_a_margin_task_accuracy_is_listed_not_judged():
    assert TaskScore().checks(task_figures(0.801, 0.449, -0.40, -0.30), Thresholds("t", "c", False), "t on m") == []


def test_the_task_section_lists_each_case_s_interval_and_verdict():
    result = CaseResult(spec=CaseSpec("minilm", "cut"), hardware_class="c", outcome=Outcome.MEASURED)
    result.metrics["task"] = task_figures(0.801, 0.449, -0.40, -0.30)
    thresholds = Thresholds("cut", "c", False, {"max_task_loss": 0.03}, {"max_task_loss": "f"})
    result.checks = TaskScore().checks(result.metrics["task"], thresholds, "cut on minilm")
    lines = TaskScore().section([result])
    assert lines[0] == "## Task accuracy against fp32"
    assert "| minilm/cut/b1 | paraphrases-hard.jsonl (272) | 0.801 | 0.449 | -0.352 [-0.400, -0.300] | FAIL |" in lines


def sweep_figures(sorted_per_second: float, random_per_second: float) -> dict:
    rows = [
        {"order": order, "batch_size": size, "items_per_second": per_second * (size / 16) ** 0.5,
         "latency_p99_ms": 1.0, "padding_share": share}
        for order, per_second, share in (("sorted", sorted_per_second, 0.05), ("random", random_per_second, 0.40))
        for size in (1, 2, 4, 8, 16)
    ]  # fmt: skip
    return {"items": 64, "rows": rows}


def test_the_sweep_gates_what_sorting_by_length_is_worth_at_the_largest_batch():
    thresholds = Thresholds("t", "c", True, {"min_sorting_gain": 1.1}, {"min_sorting_gain": "f"})
    checks = {c.name: c for c in BatchSweep().checks(sweep_figures(300.0, 200.0), thresholds, "t on m")}
    assert checks["min_sorting_gain"].verdict == "pass", checks
    planted = {c.name: c for c in BatchSweep().checks(sweep_figures(180.0, 200.0), thresholds, "t on m")}
    assert planted["min_sorting_gain"].verdict == "fail", "sorting that does not pay must fail its bound"
    assert "sorting 1.50x at b16" in BatchSweep().cells(sweep_figures(300.0, 200.0))["batching"]


def cache_figures(low: float, high: float, predicted: float = 1.6) -> dict:
    return {"measured": {"speedup": (low + high) / 2, "ci_low": low, "ci_high": high}, "predicted_gain": predicted,
            "hit_rate": 0.39}  # fmt: skip


def test_the_cache_gain_is_judged_against_what_its_hit_rate_predicts():
    thresholds = Thresholds("t", "c", False, {"max_cache_prediction_error": 0.2}, {"max_cache_prediction_error": "f"})

    def verdict(figures: dict) -> str:
        (check,) = ResultCacheGain().checks(figures, thresholds, "t on m")
        return check.verdict

    assert verdict(cache_figures(1.5, 1.7)) == "pass"
    assert verdict(cache_figures(0.98, 1.02)) == "fail", "a cache that never hits gains nothing"
    assert verdict(cache_figures(1.1, 1.6)) == "inconclusive"


def test_decoding_is_judged_on_its_interval_where_a_decode_bound_exists():
    decode = {"estimate": {"speedup": 0.4, "ci_low": 0.38, "ci_high": 0.42, "pairs": 20}, "bound": 0.75,
              "verdict": "fail", "stop_reason": "decided"}  # fmt: skip
    arm = {"new_tokens": 16, "time_to_first_token": 0.01, "per_token": 0.002}
    figures = {"baseline": arm, "candidate": {**arm, "per_token": 0.005}, "decode": decode}
    thresholds = Thresholds("t", "c", True, {"min_decode_speedup": 0.75}, {"min_decode_speedup": "f"})
    (check,) = GenerationLatency().checks(figures, thresholds, "t on m")
    assert check.verdict == "fail"
    assert "decoding per token 0.400x, 95% CI [0.380, 0.420] over 20 pairs" in check.message
    assert "2.000 ms, candidate 5.000 ms" in check.message
    assert GenerationLatency().measured(figures)[0].measured == 0.38
    assert GenerationLatency().checks({**figures, "decode": {**decode, "bound": None}}, thresholds, "t on m") == []
