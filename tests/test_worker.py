"""The worker's side of a job, run in this process: the reply it gives for each kind of failure, and
the model it keeps between jobs."""

from __future__ import annotations

from typing import Any

import pytest

from perfgate.engine.scenarios import Scenario, WorkerState
from perfgate.engine.worker import serve
from perfgate.instruments.outcome import Outcome


def failing_with(error: BaseException) -> Scenario:
    class Fails(Scenario):
        name = "fails"

        def run(self, payload: dict[str, Any], state: WorkerState) -> dict[str, Any]:
            raise error

    return Fails()


@pytest.mark.parametrize(
    ("error", "outcome", "detail"),
    [
        (RuntimeError("DefaultCPUAllocator: can't allocate memory"), Outcome.OOM, "out of memory at batch_size=8"),
        (RuntimeError("CUDA error: device-side assert triggered"), Outcome.ERROR, "CUDA error (the worker's CUDA"),
        (ValueError("bad shape"), Outcome.ERROR, "ValueError: bad shape"),
    ],
)
def test_a_failing_job_replies_with_its_outcome_and_traceback(monkeypatch, error, outcome, detail):
    monkeypatch.setattr("perfgate.engine.worker.get_scenario", lambda name: failing_with(error))
    reply = serve({"scenario": "fails", "payload": {"batch_size": 8}}, WorkerState())
    assert reply["outcome"] == outcome
    assert reply["detail"].startswith(detail)
    assert "Traceback" in reply["log"]
    if outcome == Outcome.OOM:
        assert reply["data"]["batch_size"] == 8


def test_the_worker_keeps_one_model_and_its_variants_until_another_is_asked_for(micro_model_dir):
    state = WorkerState()
    ref = {"name": "micro", "task": "text-classification", "location": str(micro_model_dir), "device": "cpu"}
    model = state.model(ref)
    eager = state.variant(model, "perfgate.subjects.techniques.eager:Fp32Eager", "unused", None)
    assert state.model(ref) is model
    assert state.variant(model, "perfgate.subjects.techniques.eager:Fp32Eager", "unused", None) is eager
    other = state.model({**ref, "name": "micro-again"})
    assert other is not model
    assert state.variant(other, "perfgate.subjects.techniques.eager:Fp32Eager", "unused", None) is not eager
