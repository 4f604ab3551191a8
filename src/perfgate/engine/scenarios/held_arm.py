"""One arm held in a worker, timed block by block at the parent's request (``arms.py``).

The upgrade gates compare two arms that cannot be built side by side by one ``ab-forward`` job: two
models (a model upgrade) or two environments (a library upgrade, one worker per interpreter). Each
arm is prepared once (model loaded, technique applied, outputs and task outcomes computed), then the
parent asks for warm-up and for timed blocks, alternating arms in ABBA order, so both arms share the
same moment's noise. A worker may hold several arms; each block times only the arm it names. For
``perfgate compare --explain`` a block is profiled op by op instead of timed.
"""

from __future__ import annotations

import functools
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfgate.engine.scenarios.contract import Isolation, Scenario

if TYPE_CHECKING:
    from perfgate.engine.scenarios.contract import WorkerState


class HeldArm(Scenario):
    name = "held-arm"
    isolation = Isolation.SHARED

    def run(self, payload: dict[str, Any], state: WorkerState) -> dict[str, Any]:
        action = payload["action"]
        if action == "prepare":
            return self._prepare(payload, state)
        work, timer = state.held[payload["arm"]]
        if action == "warm-up":
            return asdict(timer.warm_up(work))
        if action == "time":
            return {"seconds": timer.time_block(work, int(payload["calls"]))}
        if action == "profile":
            return self._profile(work, payload)
        if action == "end-profile":
            return self._end_profile(payload, state)
        raise ValueError(f"unknown held-arm action {action!r} (prepare, warm-up, time, profile, end-profile)")

    @staticmethod
    def _profile(work: Callable[[], object], payload: dict[str, Any]) -> dict[str, Any]:
        """One block op by op (``perfgate compare --explain``): each op's self seconds per call."""
        import torch

        from perfgate.instruments.profiling import as_json, profile_block

        def call() -> object:
            with torch.inference_mode():
                return work()

        trace = Path(payload["trace"]) if payload.get("trace") else None
        found = profile_block(call, int(payload["calls"]), trace, payload.get("device", "cpu"))
        return {"ops": as_json([found])[0]}

    @staticmethod
    def _end_profile(payload: dict[str, Any], state: WorkerState) -> dict[str, Any]:
        """The arm's runtime's own nodes (ONNX Runtime's profiler) per profiled round, or none."""
        import json

        from perfgate.instruments.profiling import as_json, runtime_op_rounds

        end = state.runtime_profiles.pop(payload["arm"], None)
        if end is None:
            return {"rounds": None}
        events = json.loads(Path(end()).read_text())
        return {"rounds": as_json(runtime_op_rounds(events, int(payload["rounds"]), int(payload["calls"])))}

    def _prepare(self, payload: dict[str, Any], state: WorkerState) -> dict[str, Any]:
        import torch

        from perfgate.engine.scenarios.ab_forward import SCORING_BATCH, variant_outputs
        from perfgate.instruments.fidelity import load_labelled_set, task_outcomes
        from perfgate.instruments.timing import Timer, cuda_synchronizer
        from perfgate.subjects.catalogue import load_technique
        from perfgate.subjects.hardware import library_versions
        from perfgate.subjects.model import load_model
        from perfgate.subjects.technique import RUNTIME_PROFILE_ENV

        ref = payload["model"]
        if payload["threads"]:
            torch.set_num_threads(payload["threads"])  # for the worker's life: every block uses it
        threads = torch.get_num_threads()
        start = time.perf_counter()
        placement = ref.get("placement", "mapped")
        model = load_model(ref["name"], ref["task"], Path(ref["location"]), ref["device"], placement)
        profile = payload.get("runtime_profile")  # a file prefix: the runtime profiles its own nodes there
        if profile:
            os.environ[RUNTIME_PROFILE_ENV] = profile
        try:
            variant = load_technique(payload["technique"]).apply(model, Path(payload["workdir"]), payload["threads"])
        finally:
            os.environ.pop(RUNTIME_PROFILE_ENV, None)
        if profile and variant.end_profiling is not None:
            state.runtime_profiles[payload["arm"]] = variant.end_profiling
        load_seconds = time.perf_counter() - start

        outputs = functools.partial(
            variant_outputs, variant, model=model, batch_size=SCORING_BATCH, seq_len=payload["seq_len"]
        )

        score = payload.get("score", True)
        labelled = load_labelled_set(Path(payload["labelled"])) if score and payload.get("labelled") else None
        outcomes = task_outcomes(labelled, outputs).tolist() if labelled is not None else None
        inputs = model.inputs(payload["timed_texts"], payload["seq_len"])
        state.held[payload["arm"]] = (lambda: variant.run(inputs), Timer(synchronize=cuda_synchronizer(ref["device"])))
        return {
            "load_seconds": load_seconds,
            "task_outcomes": outcomes,
            "outputs": outputs(payload["eval_texts"]).tolist() if score else None,
            "memory_bytes": variant.memory_bytes,
            "threads": threads,
            "python": platform.python_version(),
            "libraries": library_versions(),
        }
