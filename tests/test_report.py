"""Markdown for GitHub job summaries: cut to fit at a line boundary, saying so."""

from __future__ import annotations

from perfgate.report import JOB_SUMMARY_LIMIT, fit_job_summary


def test_a_summary_that_fits_is_unchanged():
    text = "# perfgate\n\n| case | verdict |\n|---|---|\n| a | pass |\n"
    assert fit_job_summary(text) == text


def test_a_summary_too_big_for_github_is_cut_at_a_line_and_says_how_much_is_left_out():
    lines = [f"| minilm/case-{i}/b1/cpu | 1.23x [1.20, 1.26] | pass | ✓ |" for i in range(30_000)]
    text = "\n".join(lines) + "\n"
    assert len(text.encode()) > JOB_SUMMARY_LIMIT
    cut = fit_job_summary(text)
    assert len(cut.encode()) <= JOB_SUMMARY_LIMIT
    kept = cut.split("\n\n**Cut")[0].splitlines()
    assert kept == lines[: len(kept)], "whole lines only"
    assert f"{len(lines) - len(kept)} more lines are in the full report file" in cut


def measured_case(technique: str, speedup: float, baseline_p50: float = 0.010, scenario: str = "ab-forward"):
    from perfgate.case import CaseResult
    from perfgate.outcome import Outcome
    from perfgate.spec import CaseSpec

    case = CaseResult(spec=CaseSpec("minilm", technique, scenario=scenario), hardware_class="cpu-amx",
                      outcome=Outcome.MEASURED)  # fmt: skip
    case.metrics["speed"] = {
        "estimate": {"speedup": speedup, "ci_low": speedup * 0.95, "ci_high": speedup * 1.05},
        "latency": {"baseline": {"p50": baseline_p50}, "candidate": {"p50": baseline_p50 / speedup}},
    }
    return case


def test_the_ladder_chains_each_step_s_gain_from_the_run_s_cases():
    from perfgate.report import ladder_section

    cases = [measured_case("pad-to-128", 0.4), measured_case("torch-dynamic-int8-per-channel", 2.5),
             measured_case("onnxruntime-o2-int8-dynamic", 5.0)]  # fmt: skip
    cache = measured_case("onnxruntime-o2-int8-dynamic", 1.0, scenario="result-cache")
    measured = {"speedup": 1.6, "ci_low": 1.5, "ci_high": 1.7}
    cache.metrics = {"result_cache": {"repeat_rate": 0.4, "hit_rate": 0.39, "model_ms_per_request": 2.0,
                                      "predicted_gain": 1.62, "measured": measured}}  # fmt: skip
    text = "\n".join(ladder_section([*cases, cache]))
    assert "| padded to 128 tokens (fp32 eager) | 25.0 ms | — |" in text
    assert "| dynamic shapes: no padding | 10.0 ms | 2.50x |" in text
    assert "| dynamic int8 (torch, per channel) | 4.0 ms | 2.50x |" in text
    assert "| ONNX Runtime O2 + dynamic int8 | 2.0 ms | 2.00x (ratio of two cases) |" in text
    assert "| result cache, 40% repeats (39% hits) | 1.2 ms per request | 1.60x [1.50, 1.70] (predicted 1.62x)" in text
    assert ladder_section(cases[:2]) == [], "a step missing from the run: no ladder"
