"""Result cache: the measured gain of an LRU cache under a stream with repeats, beside the prediction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from perfgate.metrics import Metric
from perfgate.thresholds import Check

if TYPE_CHECKING:
    from perfgate.case import CaseResult


class ResultCacheGain(Metric):
    name = "result_cache"
    columns = ("cache",)

    def measured(self, figures: dict[str, Any]) -> list[Check]:
        return [Check("min_cache_gain", figures["measured"]["ci_low"], higher_is_better=True)]

    def cells(self, figures: dict[str, Any]) -> dict[str, str]:
        m = figures["measured"]
        return {
            "cache": f"{m['speedup']:.2f}x [{m['ci_low']:.2f}, {m['ci_high']:.2f}] at {figures['hit_rate']:.0%} hits "
            f"(predicted {figures['predicted_gain']:.2f}x)"
        }

    def section(self, cases: Sequence[CaseResult]) -> list[str]:
        rows = [case for case in cases if self.name in case.metrics]
        if not rows:
            return []
        out = [
            "## Result cache",
            "",
            "An LRU cache in front of the model, the same seeded request stream with and without it (ABBA). "
            "Predicted: 1 / ((1 - hit rate) + lookup / model time).",
            "",
            "| model | technique | requests | repeat rate | hit rate | model ms | lookup µs | predicted | measured |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for case in rows:
            f, m = case.metrics[self.name], case.metrics[self.name]["measured"]
            out.append(
                f"| {case.spec.model} | {case.spec.technique} | {f['requests']} | {f['repeat_rate']:.0%} | "
                f"{f['hit_rate']:.0%} | {f['model_ms_per_request']:.2f} | {f['lookup_us']:.1f} | "
                f"{f['predicted_gain']:.2f}x | {m['speedup']:.2f}x [{m['ci_low']:.2f}, {m['ci_high']:.2f}] |"
            )
        return out
