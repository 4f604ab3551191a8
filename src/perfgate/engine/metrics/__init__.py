"""Metrics: what is recorded about a case, how it is judged, and how it is shown.

A scenario stores each metric's figures under its name in ``CaseResult.metrics``; the judge asks every
metric the case carries for its checks against the thresholds that name them, and the report asks for
its table cells and its own Markdown section. Each implements ``contract.Metric``; this module is the
registry. Adding a metric is one module here with a ``Metric`` subclass, one line in ``BUILT_IN``, its
threshold field in ``fields.FIELDS`` (if it is gated), and one test module under ``tests/metrics/``:
nothing in the judge or the report changes.
"""

from __future__ import annotations

import functools
import importlib

from perfgate.engine.metrics.contract import Metric, interval_phrase, ratio_cell

__all__ = ["BUILT_IN", "Metric", "all_metrics", "interval_phrase", "ratio_cell"]


BUILT_IN: tuple[str, ...] = (
    "perfgate.engine.metrics.speed:Speed",
    "perfgate.engine.metrics.fidelity:OutputFidelity",
    "perfgate.engine.metrics.task:TaskScore",
    "perfgate.engine.metrics.memory:ServingMemory",
    "perfgate.engine.metrics.size:WeightSize",
    "perfgate.engine.metrics.quantization:QuantizedLayers",
    "perfgate.engine.metrics.generation:GenerationLatency",
    "perfgate.engine.metrics.compile:CompileCost",
    "perfgate.engine.metrics.energy:EnergyPerInference",
    "perfgate.engine.metrics.batch_sweep:BatchSweep",
    "perfgate.engine.metrics.result_cache:ResultCacheGain",
    "perfgate.engine.metrics.arrivals:DynamicBatching",
    "perfgate.engine.metrics.largest_batch:LargestBatch",
    "perfgate.engine.metrics.training:TrainingBatch",
    "perfgate.engine.metrics.load:LoadMetric",
    "perfgate.engine.metrics.load:LoadUnderCapMetric",
    "perfgate.engine.metrics.training:Training",
    "perfgate.engine.metrics.distributed:Distributed",
)


@functools.cache
def all_metrics() -> tuple[Metric, ...]:
    metrics = []
    for path in BUILT_IN:
        module_name, _, class_name = path.partition(":")
        metrics.append(getattr(importlib.import_module(module_name), class_name)())
    return tuple(metrics)
