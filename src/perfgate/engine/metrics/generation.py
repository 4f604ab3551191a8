"""Generative models: time to first token and per-token decoding, both arms interleaved (greedy, fixed
new tokens); the decode speedup's interval judged against ``min_decode_speedup`` (``generation.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from perfgate.engine.metrics.contract import Metric, interval_phrase
from perfgate.verdicts.thresholds import Check, CheckResult

if TYPE_CHECKING:
    from perfgate.engine.record import CaseResult
    from perfgate.verdicts.thresholds import Thresholds


class GenerationLatency(Metric):
    name = "generation"

    def checks(self, figures: dict[str, Any], thresholds: Thresholds, context: str) -> list[CheckResult]:
        decode = figures.get("decode") or {}
        estimate = decode.get("estimate")
        if not estimate or decode.get("bound") is None:
            return []
        base, cand = figures["baseline"], figures["candidate"]
        message = (
            f"{context}: decoding per token {interval_phrase(estimate)}; fp32 {base['per_token'] * 1e3:.3f} ms, "
            f"candidate {cand['per_token'] * 1e3:.3f} ms per token; CI must clear "
            f"{thresholds.describe('min_decode_speedup')} -> {decode['verdict'].upper()} ({decode['stop_reason']})"
        )
        return [CheckResult("min_decode_speedup", decode["verdict"], message)]

    def measured(self, figures: dict[str, Any]) -> list[Check]:
        """For the ungated accounting and ``thresholds derive``: the verdict comes from the interval."""
        estimate = (figures.get("decode") or {}).get("estimate")
        return [Check("min_decode_speedup", estimate["ci_low"], higher_is_better=True)] if estimate else []

    def section(self, cases: Sequence[CaseResult]) -> list[str]:
        rows = [case for case in cases if self.name in case.metrics]
        if not rows:
            return []
        out = [
            "## Generation (greedy, fixed number of new tokens)",
            "",
            "| model | technique | new tokens | time to first token, fp32 → candidate | per token, fp32 → candidate "
            "| decode speedup [95% CI] |",
            "|---|---|---|---|---|---|",
        ]
        for case in rows:
            figures = case.metrics[self.name]
            base, cand = figures["baseline"], figures["candidate"]
            estimate = (figures.get("decode") or {}).get("estimate")
            speedup = (
                f"{estimate['speedup']:.2f}x [{estimate['ci_low']:.2f}, {estimate['ci_high']:.2f}]" if estimate else "-"
            )
            out.append(
                f"| {case.spec.model} | {case.spec.technique} | {base['new_tokens']} | "
                f"{base['time_to_first_token'] * 1e3:.2f} → {cand['time_to_first_token'] * 1e3:.2f} ms | "
                f"{base['per_token'] * 1e3:.3f} → {cand['per_token'] * 1e3:.3f} ms | {speedup} |"
            )
        return out
