"""Scenarios: *what* is measured, beside the technique (what is applied) and the metrics (what is recorded).

A scenario has two halves. ``conduct`` runs in the pytest process: it plans the worker jobs of one
case, submits them through the ``CaseContext`` and records what came back as metrics. ``run`` runs in
a worker process: it loads, measures and returns plain JSON data. Each job declares its isolation:
``SHARED`` jobs run in the device's reusable worker (imports and model loads paid once), ``FRESH`` jobs
in a worker of their own that exits after them (memory peaks, state that leaks).

Adding a scenario is one module here with a ``Scenario`` subclass, one line in ``BUILT_IN``, and one
test module under ``tests/scenarios/``.
"""

from __future__ import annotations

import enum
import importlib
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from perfgate.case import CaseContext
    from perfgate.worker import WorkerState

__all__ = ["BUILT_IN", "Isolation", "Scenario", "get_scenario"]


class Isolation(enum.StrEnum):
    SHARED = "shared"  # the device's reusable worker
    FRESH = "fresh"  # a worker of its own, retired after the job


class Scenario(ABC):
    name: ClassVar[str]
    isolation: ClassVar[Isolation] = Isolation.SHARED
    samples_memory: ClassVar[bool] = False  # the parent samples the worker's /proc status during the job

    def conduct(self, case: CaseContext) -> None:
        """In the pytest process: submit this scenario's jobs and record metrics on ``case.result``.
        The default submits one job with ``case.payload`` and stores the reply's metrics."""
        reply = case.submit(self, case.payload())
        if reply is not None:
            case.result.metrics.update(reply.get("metrics", {}))

    @abstractmethod
    def run(self, payload: dict[str, Any], state: WorkerState) -> dict[str, Any]:
        """In a worker: measure and return JSON-serializable data (``{"metrics": {...}, ...}``)."""


BUILT_IN: dict[str, str] = {
    "ab-forward": "perfgate.scenarios.ab_forward:ABForward",
    "arrivals": "perfgate.scenarios.arrivals:Arrivals",
    "batch-fits": "perfgate.scenarios.largest_batch:BatchFits",
    "batch-sweep": "perfgate.scenarios.batch_sweep:BatchSweep",
    "build-artifacts": "perfgate.scenarios.serving_memory:BuildArtifacts",
    "calibration": "perfgate.scenarios.calibration:RunnerCalibration",
    "held-arm": "perfgate.scenarios.held_arm:HeldArm",
    "largest-batch": "perfgate.scenarios.largest_batch:LargestBatch",
    "load": "perfgate.scenarios.load:Load",
    "load-under-cap": "perfgate.scenarios.load:LoadUnderCap",
    "result-cache": "perfgate.scenarios.result_cache:ResultCache",
    "serving-memory": "perfgate.scenarios.serving_memory:ServingMemory",
    "train-batch": "perfgate.scenarios.train_batch:TrainLargestBatch",
    "train-dataloader": "perfgate.scenarios.train_data:TrainDataLoader",
    "train-distributed": "perfgate.scenarios.train_distributed:TrainDistributed",
    "train-fits": "perfgate.scenarios.train_batch:TrainFits",
    "train-memory": "perfgate.scenarios.train_step:TrainMemory",
    "train-step": "perfgate.scenarios.train_step:TrainStep",
    "runtime-overhead": "perfgate.scenarios.serving_memory:RuntimeOverhead",
}


def get_scenario(name: str) -> Scenario:
    try:
        path = BUILT_IN[name]
    except KeyError:
        raise LookupError(f"unknown scenario name={name!r}; known scenarios: {', '.join(sorted(BUILT_IN))}") from None
    module_name, _, class_name = path.partition(":")
    scenario: Scenario = getattr(importlib.import_module(module_name), class_name)()
    return scenario
