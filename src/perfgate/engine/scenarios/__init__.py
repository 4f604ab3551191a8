"""Scenarios: *what* is measured, beside the technique (what is applied) and the metrics (what is recorded).

A scenario has two halves. ``conduct`` runs in the pytest process: it plans the worker jobs of one
case, submits them through the ``CaseContext`` and records what came back as metrics. ``run`` runs in
a worker process: it loads, measures and returns plain JSON data. Each job declares its isolation:
``SHARED`` jobs run in the device's reusable worker (imports and model loads paid once), ``FRESH`` jobs
in a worker of their own that exits after them (memory peaks, state that leaks).

The contract between the two halves is ``contract.py`` (``Scenario``, ``CaseContext``, ``WorkerState``);
this module holds the registry, so a scenario module imports the contract and only the registry names
the scenario modules.

Adding a scenario is one module in this folder with a ``Scenario`` subclass, one line in ``BUILT_IN``, and one
test module under ``tests/scenarios/``.
"""

from __future__ import annotations

import importlib

from perfgate.engine.scenarios.contract import (
    CaseContext,
    Isolation,
    JobReply,
    JobSubmitter,
    Scenario,
    WorkerState,
)

__all__ = [
    "BUILT_IN",
    "CaseContext",
    "Isolation",
    "JobReply",
    "JobSubmitter",
    "Scenario",
    "WorkerState",
    "get_scenario",
]


BUILT_IN: dict[str, str] = {
    "ab-forward": "perfgate.engine.scenarios.ab_forward:ABForward",
    "arrivals": "perfgate.engine.scenarios.arrivals:Arrivals",
    "batch-fits": "perfgate.engine.scenarios.largest_batch:BatchFits",
    "batch-sweep": "perfgate.engine.scenarios.batch_sweep:BatchSweep",
    "build-artifacts": "perfgate.engine.scenarios.serving_memory:BuildArtifacts",
    "calibration": "perfgate.engine.scenarios.calibration:RunnerCalibration",
    "held-arm": "perfgate.engine.scenarios.held_arm:HeldArm",
    "largest-batch": "perfgate.engine.scenarios.largest_batch:LargestBatch",
    "load": "perfgate.engine.scenarios.load:Load",
    "load-under-cap": "perfgate.engine.scenarios.load:LoadUnderCap",
    "result-cache": "perfgate.engine.scenarios.result_cache:ResultCache",
    "serving-memory": "perfgate.engine.scenarios.serving_memory:ServingMemory",
    "train-batch": "perfgate.engine.scenarios.train_batch:TrainLargestBatch",
    "train-dataloader": "perfgate.engine.scenarios.train_data:TrainDataLoader",
    "train-distributed": "perfgate.engine.scenarios.train_distributed:TrainDistributed",
    "train-fits": "perfgate.engine.scenarios.train_batch:TrainFits",
    "train-memory": "perfgate.engine.scenarios.train_step:TrainMemory",
    "train-step": "perfgate.engine.scenarios.train_step:TrainStep",
    "runtime-overhead": "perfgate.engine.scenarios.serving_memory:RuntimeOverhead",
}


def get_scenario(name: str) -> Scenario:
    try:
        path = BUILT_IN[name]
    except KeyError:
        raise LookupError(f"unknown scenario name={name!r}; known scenarios: {', '.join(sorted(BUILT_IN))}") from None
    module_name, _, class_name = path.partition(":")
    scenario: Scenario = getattr(importlib.import_module(module_name), class_name)()
    return scenario
