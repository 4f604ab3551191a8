"""Op by op: one block of calls under ``torch.profiler`` (each op's self time per call, by name and input
shapes), and an ONNX Runtime session's own nodes from ORT's profile. ``answers/explain.py`` sets two
sides' blocks beside each other; a worker holding one side profiles its blocks here too.

Profiling costs time per op, so its figures read higher than a timed call: compare two sides profiled
alike, never a profiled figure with a timed one."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from perfgate.errors import PerfgateError

__all__ = ["OpTimes", "alternate_rounds", "as_json", "from_json", "op_times", "profile_block", "runtime_op_rounds"]

OpTimes = dict[tuple[str, str], float]  # (op name, input shapes) -> self seconds per call


def profile_block(call: Callable[[], object], calls: int, trace: Path | None = None, device: str = "cpu") -> OpTimes:
    """``calls`` calls of ``call`` under ``torch.profiler`` (input shapes recorded): each op's self seconds
    per call; on a CUDA device its kernels' time too, as ``device::<op>`` rows (the host's self time of an
    op is its launch, not its work). The block's Chrome trace written to ``trace`` when given."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    with profile(activities=activities, record_shapes=True) as profiled:
        for _ in range(calls):
            call()
        if cuda:
            torch.cuda.synchronize()  # every kernel of the block inside it
    if trace is not None:
        profiled.export_chrome_trace(str(trace))
    return op_times(profiled.key_averages(group_by_input_shape=True), calls, device=cuda)


def op_times(events: Iterable[Any], calls: int, device: bool = False) -> OpTimes:
    """Self seconds per call by (op, input shapes) from ``torch.profiler``'s averages; with ``device``,
    each op's kernel time under ``device::<op>``."""
    per_op: OpTimes = {}
    for event in events:
        shapes = str(event.input_shapes)
        key = (event.key, shapes)
        per_op[key] = per_op.get(key, 0.0) + event.self_cpu_time_total / 1e6 / calls
        kernels = getattr(event, "self_device_time_total", 0) if device else 0
        if kernels:
            key = (f"device::{event.key}", shapes)
            per_op[key] = per_op.get(key, 0.0) + kernels / 1e6 / calls
    return per_op


def alternate_rounds(blocks: Mapping[str, Callable[[bool], OpTimes]], rounds: int) -> dict[str, list[OpTimes]]:
    """Per side, per round, what its block found (``blocks[side](last)``, ``last`` true in the final
    round, where a side writes its trace): the sides alternate which goes first round by round, so a
    drift of the machine reaches both alike."""
    found: dict[str, list[OpTimes]] = {side: [] for side in blocks}
    names = list(blocks)
    for number in range(rounds):
        for side in names if number % 2 == 0 else reversed(names):
            found[side].append(blocks[side](number == rounds - 1))
    return found


def runtime_op_rounds(events: Sequence[dict[str, Any]], rounds: int, calls: int) -> list[OpTimes]:
    """Per round, each ONNX Runtime node type's seconds per call (``ort::MatMul`` and its input shapes),
    from ORT's own profile (``events``: its JSON): the last ``rounds x calls`` runs (``model_run``) are the
    profiled blocks, in round order (warm-up runs come before them); a node belongs to the run whose
    span holds its start."""
    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    if len(runs) < rounds * calls:
        raise PerfgateError(f"ONNX Runtime's profile holds {len(runs)} runs, fewer than the {rounds * calls} profiled")
    profiled = runs[len(runs) - rounds * calls :]
    starts = [run["ts"] for run in profiled]
    found: list[OpTimes] = [{} for _ in range(rounds)]
    for event in events:
        if event.get("cat") != "Node" or not str(event.get("name", "")).endswith("_kernel_time"):
            continue
        index = bisect.bisect_right(starts, event["ts"]) - 1
        if index < 0 or event["ts"] > profiled[index]["ts"] + profiled[index]["dur"]:
            continue  # a warm-up run's node
        arguments = event.get("args", {})
        key = (f"ort::{arguments.get('op_name', event['name'])}", str(arguments.get("input_type_shape", "")))
        per_op = found[index // calls]
        per_op[key] = per_op.get(key, 0.0) + event["dur"] / 1e6 / calls
    return found


def as_json(rounds: Sequence[OpTimes]) -> list[dict[str, float]]:
    """Rounds of op times as JSON can carry them (a key ``name<TAB>shapes``)."""
    return [{f"{name}\t{shapes}": value for (name, shapes), value in per_op.items()} for per_op in rounds]


def from_json(rounds: Sequence[Mapping[str, float]]) -> list[OpTimes]:
    found: list[OpTimes] = []
    for per_op in rounds:
        found.append({(key.split("\t", 1)[0], key.split("\t", 1)[1]): value for key, value in per_op.items()})
    return found
