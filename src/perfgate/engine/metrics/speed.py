"""Speed: the interleaved A/B comparison (speedup with its interval) and throughput, both arms."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from perfgate.engine.metrics.contract import Metric, interval_phrase
from perfgate.verdicts.thresholds import Check, CheckResult

if TYPE_CHECKING:
    from perfgate.verdicts.thresholds import Thresholds


class Speed(Metric):
    name = "speed"
    columns: ClassVar[tuple[str, ...]] = ("speedup [95% CI]",)

    def checks(self, figures: dict[str, Any], thresholds: Thresholds, context: str) -> list[CheckResult]:
        estimate = figures.get("estimate")
        if not estimate:
            return []
        latency, bound = figures["latency"], figures["bound"]
        if bound is None:
            rule = "no speed threshold" + (
                "" if thresholds.gated else f" for hardware class {thresholds.hardware_class}"
            )
        else:
            names = [n for n in ("min_speedup", "max_slowdown") if n in thresholds.values]
            rule = f"CI must clear {bound:.3g}x from " + "; ".join(thresholds.describe(n) for n in names)
        noisy = f" (noisy: pair spread {estimate['spread']:.2f})" if estimate["noisy"] else ""
        message = (
            f"{context}: speedup {interval_phrase(estimate)}{noisy}; baseline p50 "
            f"{latency['baseline']['p50'] * 1e3:.3f} ms, candidate p50 {latency['candidate']['p50'] * 1e3:.3f} ms; "
            f"{rule} -> {figures['verdict'].upper()} ({figures['stop_reason']})"
        )
        return [CheckResult("speed", figures["verdict"], message)]

    def measured(self, figures: dict[str, Any]) -> list[Check]:
        """For the not-gated accounting only: the verdict itself comes from the interval in checks()."""
        estimate = figures.get("estimate")
        return [Check("min_speedup", estimate["ci_low"], higher_is_better=True)] if estimate else []

    def cells(self, figures: dict[str, Any]) -> dict[str, str]:
        estimate = figures.get("estimate")
        if not estimate:
            return {}
        cell = f"{estimate['speedup']:.2f}x [{estimate['ci_low']:.2f}, {estimate['ci_high']:.2f}]"
        return {self.columns[0]: cell + (" noisy" if estimate.get("noisy") else "")}
