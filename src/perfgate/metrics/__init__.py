"""Metrics: what is recorded about a case, how it is judged, and how it is shown.

A scenario stores each metric's figures under its name in ``CaseResult.metrics``; the judge asks every
metric the case carries for its checks against the thresholds that name them, and the report asks for
its table cells and its own Markdown section. Adding a metric is one module here with a ``Metric``
subclass, one line in ``BUILT_IN``, its threshold field in ``thresholds.FIELDS`` (if it is gated), and
one test module under ``tests/metrics/``: nothing in the judge or the report changes.
"""

from __future__ import annotations

import functools
import importlib
from abc import ABC
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from perfgate.thresholds import Check

if TYPE_CHECKING:
    from perfgate.case import CaseResult
    from perfgate.thresholds import CheckResult, Thresholds

__all__ = ["BUILT_IN", "Metric", "all_metrics", "interval_phrase", "ratio_cell"]


class Metric(ABC):
    name: ClassVar[str]  # the key of its figures in CaseResult.metrics
    columns: ClassVar[tuple[str, ...]] = ()  # summary-table columns it fills, in order

    def checks(self, figures: dict[str, Any], thresholds: Thresholds, context: str) -> list[CheckResult]:
        """Judge the figures against the thresholds that name this metric's fields."""
        return [result for check in self.measured(figures) if (result := check.judge(thresholds, context)) is not None]

    def measured(self, figures: dict[str, Any]) -> list[Check]:
        """The measured values that threshold fields bound (none by default)."""
        return []

    def cells(self, figures: dict[str, Any]) -> dict[str, str]:
        """This metric's summary-table cells by column; missing columns show as '-'."""
        return {}

    def section(self, cases: Sequence[CaseResult]) -> list[str]:
        """Markdown lines of a section of its own in summary.md (none by default)."""
        return []


BUILT_IN: tuple[str, ...] = (
    "perfgate.metrics.speed:Speed",
    "perfgate.metrics.fidelity:OutputFidelity",
    "perfgate.metrics.task:TaskScore",
    "perfgate.metrics.memory:ServingMemory",
    "perfgate.metrics.size:WeightSize",
    "perfgate.metrics.quantization:QuantizedLayers",
    "perfgate.metrics.generation:GenerationLatency",
    "perfgate.metrics.compile:CompileCost",
    "perfgate.metrics.energy:EnergyPerInference",
    "perfgate.metrics.batch_sweep:BatchSweep",
    "perfgate.metrics.result_cache:ResultCacheGain",
    "perfgate.metrics.arrivals:DynamicBatching",
    "perfgate.metrics.largest_batch:LargestBatch",
    "perfgate.metrics.training:TrainingBatch",
    "perfgate.metrics.load:LoadMetric",
    "perfgate.metrics.load:LoadUnderCapMetric",
    "perfgate.metrics.training:Training",
    "perfgate.metrics.distributed:Distributed",
)


@functools.cache
def all_metrics() -> tuple[Metric, ...]:
    metrics = []
    for path in BUILT_IN:
        module_name, _, class_name = path.partition(":")
        metrics.append(getattr(importlib.import_module(module_name), class_name)())
    return tuple(metrics)


def ratio_cell(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}x"


def interval_phrase(estimate: dict[str, Any]) -> str:
    """A speed estimate as the messages say it: ``2.093x, 95% CI [1.930, 2.210] over 20 pairs``."""
    return (
        f"{estimate['speedup']:.3f}x, 95% CI [{estimate['ci_low']:.3f}, {estimate['ci_high']:.3f}] "
        f"over {estimate['pairs']} pairs"
    )
