"""The A/B forward scenario: a technique against fp32 eager on the same inputs, in one worker.

In the device's shared worker: fidelity on the evaluation sentences, the task metric where the model
has a labelled set, interleaved ABBA timing, generation latency for causal LMs, and weight sizes. Then,
when memory is on, each arm's serving memory in a fresh worker of its own (``serving_memory``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfgate.engine.scenarios.contract import Isolation, Scenario

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from perfgate.engine.scenarios.contract import CaseContext, WorkerState
    from perfgate.instruments.comparison import ComparePolicy, Comparison
    from perfgate.instruments.timing import Timer
    from perfgate.subjects.model import LoadedModel
    from perfgate.subjects.technique import Variant

GENERATION_TOKENS = 16
SCORING_BATCH = 32  # the labelled set is ~1,400 texts: scored in batches, as the upgrade gate scores it
DECODE_BUDGET_SHARE = 0.5  # of the case's timing budget, for the interleaved per-token decoding


class ABForward(Scenario):
    name = "ab-forward"
    isolation = Isolation.SHARED

    def conduct(self, case: CaseContext) -> None:
        from perfgate.engine.scenarios.serving_memory import measure_serving_memory

        data = case.submit(self, case.payload())
        if data is None:
            return
        case.result.metrics.update(data["metrics"])
        case.result.variant = data["variant"]
        case.result.threads = data["threads"]
        if case.memory:
            measure_serving_memory(case)

    def run(self, payload: dict[str, Any], state: WorkerState) -> dict[str, Any]:
        import torch

        from perfgate.instruments.comparison import ComparePolicy
        from perfgate.instruments.fidelity import compare_outputs
        from perfgate.instruments.timing import Timer, cuda_synchronizer, torch_threads
        from perfgate.subjects.model import directory_bytes, weight_placement

        device, batch_size, seq_len = payload["model"]["device"], payload["batch_size"], payload["seq_len"]
        timer = Timer(synchronize=cuda_synchronizer(device))
        policy = replace(ComparePolicy(), **payload["policy"])
        metrics: dict[str, Any] = {}
        default_threads = torch.get_num_threads()  # torch's own choice: torch_threads restores it after each job
        with torch_threads(payload["threads"]) as threads:
            start = time.perf_counter()
            model = state.model(payload["model"])
            baseline = state.variant(model, payload["baseline"], payload["workdir"], payload["threads"])
            load_seconds = time.perf_counter() - start
            candidate = state.variant(model, payload["technique"], payload["workdir"], payload["threads"])
            outputs = functools.partial(variant_outputs, model=model, batch_size=batch_size, seq_len=seq_len)
            reference, produced = outputs(baseline, payload["eval_texts"]), outputs(candidate, payload["eval_texts"])
            logits = model.task != "feature-extraction"
            metrics["fidelity"] = compare_outputs(reference, produced, logits=logits).to_dict()
            if payload["labelled"] and payload.get("score_task", True):
                scoring = functools.partial(variant_outputs, model=model, batch_size=SCORING_BATCH, seq_len=seq_len)
                metrics["task"] = _task(payload, state, baseline, candidate, scoring)
            inputs = model.inputs(payload["timed_texts"], seq_len)
            primed = candidate.prime(inputs) if candidate.prime is not None else None
            turns = late_baseline_copy(payload, model, baseline, candidate)
            comparison, spin, settle = _compare_settled(baseline, candidate, turns, inputs, timer, payload, policy)
            timed_copies = 1 + len(turns)
            del turns  # the late copy's memory goes back before the next job
            if device.startswith("cuda"):
                metrics["energy"] = _energy(device, baseline, candidate, inputs, timer)
            generative = model.task in ("text-generation", "text2text-generation")
            if generative and baseline.module is not None and candidate.module is not None:
                decode_policy = replace(policy, budget_seconds=policy.budget_seconds * DECODE_BUDGET_SHARE)
                metrics["generation"] = _generation(model, baseline, candidate, inputs, timer, payload, decode_policy)
        speed = comparison.to_dict()
        speed["spin_after_call_seconds"] = spin  # other threads busy after a call returned (None: not measured)
        speed["settle_seconds"] = settle
        speed["throughput_items_per_second"] = {
            arm: batch_size / comparison.latency(arm).p50 for arm in ("baseline", "candidate")
        }
        metrics["speed"] = speed
        metrics.update(candidate.metrics)  # figures only this technique has (compile time, graph counts)
        if primed is not None:
            metrics["compile"] = {**metrics.get("compile", {}), "timed_shape": primed}
        metrics["size"] = {
            "baseline_bytes": baseline.memory_bytes,
            "candidate_bytes": candidate.memory_bytes,
            "baseline_disk_bytes": directory_bytes(model.location) if isinstance(model.location, Path) else None,
            "candidate_disk_bytes": candidate.disk_bytes,
            "ratio": candidate.memory_bytes / baseline.memory_bytes,
        }
        variant = {"prepare_seconds": candidate.prepare_seconds, **candidate.details}
        variant["settings"] = harness_settings(payload, default_threads, threads) + candidate.settings
        if model.module_loaded:
            variant["baseline_weights"] = {**weight_placement(model.module), "timed_copies": timed_copies}
        else:
            variant["baseline_weights"] = None
        return {
            "metrics": metrics,
            "variant": variant,
            "threads": threads,
            "load_seconds": load_seconds,
        }


def harness_settings(payload: dict[str, Any], default_threads: int, threads: int) -> list[dict[str, Any]]:
    """The settings this scenario sets away from the runtimes' defaults for both arms, and why."""
    from perfgate.subjects.technique import changed_setting

    settings = []
    if threads != default_threads:
        settings.append(changed_setting("torch threads (torch.set_num_threads)", threads, default_threads,
                                        "--perfgate-threads: both arms run with it"))  # fmt: skip
    if payload["model"].get("placement") == "copied" and payload["model"]["device"] == "cpu":
        settings.append(changed_setting(
            "fp32 baseline's weights", "copied into torch's allocator", "mapped from the safetensors file",
            "a candidate's weights are torch allocations too: placement alone moved fp32 by 2-3 %",
        ))  # fmt: skip
    settings.append(changed_setting(
        "Python's garbage collector while timing", "off (one collection before)", "on",
        "a collection every k calls would land on one position of every ABBA round",
    ))  # fmt: skip
    return settings


def _compare_settled(
    baseline: Variant, candidate: Variant, turns: list[LoadedModel], inputs: Any, timer: Timer,
    payload: dict[str, Any], policy: ComparePolicy,
) -> tuple[Comparison, dict[str, float | None], dict[str, float]]:  # fmt: skip
    """The ABBA comparison with each runtime at its defaults: an arm whose pool spins after a call (ONNX
    Runtime's, OpenMP's) gets a settle gap before the other arm's block, measured on its own calls,
    instead of being told not to spin; on CUDA the host threads do not spin into the other arm."""
    from perfgate.instruments.comparison import compare
    from perfgate.instruments.timing import busy_after, settle_seconds

    on_cpu, arms = not payload["model"]["device"].startswith("cuda"), {"baseline": baseline, "candidate": candidate}
    spin = {arm: busy_after(functools.partial(v.run, inputs)) if on_cpu else None for arm, v in arms.items()}
    settle = {arm: settle_seconds(busy) if on_cpu else 0.0 for arm, busy in spin.items()}
    comparison = compare(
        lambda: baseline.run(inputs), lambda: candidate.run(inputs), timer, payload["bound"], policy,
        baseline_turns=[functools.partial(late.run, inputs) for late in turns], settle=settle,
    )  # fmt: skip
    return comparison, spin, settle


def late_baseline_copy(
    payload: dict[str, Any], model: LoadedModel, baseline: Variant, candidate: Variant
) -> list[LoadedModel]:
    """A copy of the baseline's weights made after the candidate's, for the baseline to be timed from in
    turn with its own: on CPU, weights allocated later ran about half a percent faster than the same
    weights allocated earlier (README, "The baseline's weights"), and a candidate's are always allocated
    after the baseline's. Timing the baseline from one copy older and one younger than the candidate's
    cancels that order. Only where the two arms' weights differ (the candidate holds its own) and the
    baseline serves the loaded, copied fp32 module; no copy on CUDA, where it was not measured."""
    import copy

    import psutil

    serves_loaded = model.module_loaded and baseline.module is model.module
    copied = payload["model"].get("placement") == "copied"
    if not (candidate.independent_of_source and serves_loaded and copied and model.device == "cpu"):
        return []
    if model.parameter_bytes() > psutil.virtual_memory().available / 4:  # a large model: no room to spare
        return []
    late = model.with_module(copy.deepcopy(model.module))
    late.stacked = False  # the same fp32 model, not a stack's part
    return [late]


def variant_outputs(
    variant: Variant, texts: Sequence[str], *, model: LoadedModel, batch_size: int, seq_len: int | None
) -> npt.NDArray[np.float64]:
    """``variant``'s primary outputs on ``texts``, run in batches of ``batch_size``, as float64 rows."""
    import numpy as np

    rows = []
    step = max(batch_size, 1)
    for start in range(0, len(texts), step):
        inputs = model.inputs(texts[start : start + step], seq_len)
        rows.append(variant.run(inputs).detach().float().cpu().numpy())
    return np.concatenate(rows).astype(np.float64)


def _task(
    payload: dict[str, Any], state: WorkerState, baseline: Variant, candidate: Variant, outputs: Any
) -> dict[str, Any]:
    """Both arms scored per example on the model's labelled set; fp32's outcomes once per worker (the
    shared worker lives the whole run, so once per run unless a crash replaced it)."""
    from perfgate.instruments.fidelity import load_labelled_set, task_comparison, task_outcomes

    labelled = load_labelled_set(Path(payload["labelled"]))
    model = payload["model"]
    key = (model["name"], model["location"], model["device"], payload["baseline"], payload["labelled"],
           payload["seq_len"])  # fmt: skip
    start = time.perf_counter()
    if key not in state.baseline_outcomes:
        state.baseline_outcomes[key] = task_outcomes(labelled, functools.partial(outputs, baseline))
    baseline_seconds = time.perf_counter() - start
    produced = task_outcomes(labelled, functools.partial(outputs, candidate))
    figures = task_comparison(labelled, state.baseline_outcomes[key], produced, seed=payload["policy"].get("seed", 0))
    figures["seconds"] = {"baseline": baseline_seconds, "candidate": time.perf_counter() - start - baseline_seconds}
    return figures


def _energy(device: str, baseline: Variant, candidate: Variant, inputs: dict[str, Any], timer: Any) -> dict[str, Any]:
    from perfgate.instruments.energy import interleaved_energy, nvml_energy_counter

    counter, reason = nvml_energy_counter(device)
    if counter is None:
        return {"unavailable": reason, "ratio": None}
    return interleaved_energy(
        lambda: baseline.run(inputs), lambda: candidate.run(inputs), counter, synchronize=timer.synchronize
    )


def _generation(
    model: LoadedModel, baseline: Variant, candidate: Variant, inputs: dict[str, Any], timer: Any,
    payload: dict[str, Any], policy: Any,
) -> dict[str, Any]:  # fmt: skip
    from perfgate.instruments.generation import compare_decoding, module_generator

    pad = model.tokenizer.pad_token_id
    return compare_decoding(
        module_generator(baseline.module, inputs, pad),
        module_generator(candidate.module, inputs, pad),
        timer,
        payload.get("decode_bound"),
        policy,
        GENERATION_TOKENS,
    )
