"""Runner calibration: A/A and planted slowdowns of fp32 eager on one model, in the shared worker.

Its figures are not a case's: they go to the run's ``calibration`` section (noise floor, smallest
resolved effect), which later runs and the report read.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from perfgate.engine.scenarios.contract import Isolation, Scenario

if TYPE_CHECKING:
    from perfgate.engine.scenarios.contract import CaseContext, WorkerState


class RunnerCalibration(Scenario):
    name = "calibration"
    isolation = Isolation.SHARED

    def conduct(self, case: CaseContext) -> None:
        data = case.submit(self, case.payload())
        if data is not None:
            case.result.metrics["calibration"] = data

    def run(self, payload: dict[str, Any], state: WorkerState) -> dict[str, Any]:
        from perfgate.instruments.calibration import calibrate
        from perfgate.instruments.comparison import ComparePolicy
        from perfgate.instruments.timing import Timer, cuda_synchronizer, torch_threads

        model = state.model(payload["model"])
        inputs = model.inputs(payload["timed_texts"], payload["seq_len"])
        timer = Timer(synchronize=cuda_synchronizer(payload["model"]["device"]))
        # The noise floor needs more than the 10 pairs an easy A/A would stop at: insist on 40, ±1%.
        policy = replace(
            ComparePolicy(),
            **{**payload["policy"], "min_pairs": 40, "precision": None},
            ungated_halfwidth=0.01,
            ungated_budget_share=1.0,
        )
        with torch_threads(payload["threads"]):
            outcome = calibrate(lambda: model.run(inputs), timer, policy, payload["fractions"])
        return outcome.to_dict()
