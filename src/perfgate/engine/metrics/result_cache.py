"""Result cache: the measured gain of an LRU cache under a stream with repeats, beside the prediction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from perfgate.engine.metrics.contract import Metric
from perfgate.instruments.outcome import Verdict
from perfgate.verdicts.thresholds import Check, CheckResult

if TYPE_CHECKING:
    from perfgate.engine.record import CaseResult
    from perfgate.verdicts.thresholds import Thresholds


class ResultCacheGain(Metric):
    name = "result_cache"
    columns = ("cache",)

    def checks(self, figures: dict[str, Any], thresholds: Thresholds, context: str) -> list[CheckResult]:
        """``min_cache_gain`` on the interval's low end; ``max_cache_prediction_error``: the interval of the
        measured gain over the predicted one must lie within ``1 ± error`` (PASS), FAIL when it lies wholly
        outside (a cache that does not hit, or hits that cost more than a lookup), else INCONCLUSIVE."""
        results = super().checks(figures, thresholds, context)
        if "max_cache_prediction_error" in thresholds.values:
            error, predicted, m = (
                thresholds.values["max_cache_prediction_error"],
                figures["predicted_gain"],
                figures["measured"],
            )
            low, high = m["ci_low"] / predicted, m["ci_high"] / predicted
            if 1 - error <= low and high <= 1 + error:
                verdict = Verdict.PASS
            elif high < 1 - error or low > 1 + error:
                verdict = Verdict.FAIL
            else:
                verdict = Verdict.INCONCLUSIVE
            message = (
                f"{context}: cache gain {m['speedup']:.2f}x [{m['ci_low']:.2f}, {m['ci_high']:.2f}] at "
                f"{figures['hit_rate']:.0%} hits, predicted {predicted:.2f}x: measured/predicted "
                f"[{low:.2f}, {high:.2f}] "
                f"must lie within 1 ± {thresholds.describe('max_cache_prediction_error')} -> {verdict.value.upper()}"
            )
            results.append(CheckResult("max_cache_prediction_error", verdict.value, message))
        return results

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
