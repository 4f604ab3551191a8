"""What each rank of a distributed training case runs, under ``torchrun`` (``scenarios/train_distributed``).

    python -m torch.distributed.run --standalone --nproc-per-node N -m perfgate.subjects.distributed.rank JOB_DIR

(started as ``python -m perfgate.subjects.distributed.rank --torchrun ARGS``: ``exec_torchrun``).

``JOB_DIR/job.json`` says the model, the recipe (``ddp``, ``zero1``, ``fsdp-shard-grad-op``,
``fsdp-full-shard``), the global batch and the timing policy; each rank writes ``JOB_DIR/rank-R.json``
(atomically) when it is done, so a rank that died is the one whose file is missing.

A rank, in order:

1. **State at rest**: the model wrapped by the recipe's engine (``DistributedDataParallel``,
   ``ZeroRedundancyOptimizer``, FSDP2 ``fully_shard`` on each layer, the embeddings, then the root); the
   bytes of parameters it holds, measured from local shards (a DTensor's ``numel()`` is global).
2. **Memory and equivalence**: ``EQUIVALENCE_STEPS`` steps on the rank's share of each global batch,
   its anonymous memory sampled from a thread of its own; the mean loss over ranks per step (equal shares:
   the global batch's loss); gradients and optimizer state held after the last step.
3. **Live tensors**: two more steps under torch's profiler, the second's phases measured: the most
   tensor bytes alive at once in each (``instruments.LiveTensorPeak``): what the anonymous peak is made of.
4. **Communication**: one more step under a dispatch mode that sees every c10d collective, bytes from
   the tensors' sizes (``instruments.CommunicationCounter``).
5. **Reference and speed** (rank 0 leads): fp32 AdamW in one process on the whole global batch — its
   first losses from the same weights, then its steps timed ABBA against the distributed step. Rank 0
   runs the single-process arm with ``threads_single`` threads while the others wait in a barrier;
   both arms end in a barrier, so a distributed step counts until its slowest rank is done. DDP also
   times its step under ``no_sync()`` against with sync: the all-reduce's share of a step.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

EQUIVALENCE_STEPS = 3
BATCHES = 8
PR_SET_PDEATHSIG = 1
COMMANDS = ("stop", "single", "sharded", "sharded-no-sync")


def main(job_dir: Path) -> None:
    _die_with_parent()  # first: importing torch takes seconds, and a rank orphaned meanwhile would linger
    import torch
    import torch.distributed as dist

    from perfgate.instruments.memory import process_memory

    job = json.loads((job_dir / "job.json").read_text())
    torch.set_num_threads(job["threads_per_rank"])
    before_group = process_memory()
    _planted_start_up_crash(job)
    dist.init_process_group("gloo", timeout=timedelta(seconds=job["collective_timeout"]))
    (job_dir / f"rank-{dist.get_rank()}.joined").touch()  # past start-up: a crash from here on is the case's
    try:
        # The baseline of a rank's memory: after the process group, whose store rank 0 may host
        before_model = process_memory()
        figures = run_rank(job, before_model)
        figures["memory"]["before_group"] = before_group
        out = job_dir / f"rank-{dist.get_rank()}.json"
        partial = out.with_suffix(".part")
        partial.write_text(json.dumps(figures))
        partial.replace(out)
    finally:
        dist.destroy_process_group()


def run_rank(job: dict[str, Any], before_model: dict[str, int]) -> dict[str, Any]:
    import torch.distributed as dist

    from perfgate.instruments.memory import process_memory
    from perfgate.subjects.distributed.engines import shard_model
    from perfgate.subjects.distributed.instruments import (
        CommunicationCounter,
        UnshardedParameters,
        engine_buffer_bytes,
        gradient_bytes,
        optimizer_state_local_bytes,
        parameter_local_bytes,
    )
    from perfgate.subjects.training import load_classifier, training_batches

    rank, world = dist.get_rank(), dist.get_world_size()
    location = job["location"]
    engine = job.get("engine") or job["recipe"]  # a planted recipe runs another engine than it predicts
    model = load_classifier(location, "cpu")
    shapes = [list(p.shape) for p in model.parameters()]
    sharded, optimizer = shard_model(model, engine, world)
    held = process_memory()
    at_rest = parameter_local_bytes(sharded)
    batches = training_batches(_tokenizer(location), job["texts"], job["batch_size"], job["seq_len"], BATCHES, "cpu")
    share = job["batch_size"] // world
    local = [{k: v[rank * share : (rank + 1) * share] for k, v in batch.items()} for batch in batches]

    step = Step(job, rank, sharded, optimizer, local)
    step.saving = True
    losses, peak, phase_peaks = _memory_steps(step, world, step.phases)
    step.saving = False
    held_after = {"gradients": gradient_bytes(sharded), "optimizer_state": optimizer_state_local_bytes(optimizer)}
    with step.live:  # two steps recorded, the second measured: its frees were all recorded
        step(EQUIVALENCE_STEPS)
        step.profiling = True
        step(EQUIVALENCE_STEPS + 1)
        step.profiling = False
    engine_buffers = engine_buffer_bytes(sharded)
    held_end = at_rest["storage_bytes"] + gradient_bytes(sharded) + optimizer_state_local_bytes(optimizer)
    held_end += 0 if engine_buffers["gradients_in_buckets"] else engine_buffers["buckets"]
    unsharded = UnshardedParameters(sharded) if engine.startswith("fsdp") else None
    with CommunicationCounter(after_op=unsharded.sample if unsharded else None) as counter:
        step(EQUIVALENCE_STEPS + 2)
    figures: dict[str, Any] = {
        "rank": rank,
        "world": world,
        "pid": os.getpid(),
        "memory": {"before_model": before_model, "held": held, "peak": peak, "phase_peaks": phase_peaks},
        "engine": {**engine_buffers, "name": engine},
        "activations": step.activations.peak_bytes,
        "live": step.live.summary(held_end),
        "parameters": at_rest,
        **held_after,
        "communication": counter.summary(),
        "unsharded": unsharded.summary() if unsharded else None,
        "losses": losses,
        "shapes": shapes,
        "owned": _owned_parameters(model, optimizer) if engine == "zero1" else None,
    }
    if job.get("timing", True):
        step.progress.mark(EQUIVALENCE_STEPS + 3, "timing", every_step=False)
        figures.update(_timed(job, rank, step, batches, location))
    return figures


class Step:
    """A rank's training step on its share of the global batch, with what a kind of step measures
    switched on around it: ``saving`` (the memory steps: each phase's start, the activations autograd
    saves) or ``profiling`` (one step under torch's memory profiler, its phases marked)."""

    def __init__(self, job: dict[str, Any], rank: int, sharded: Any, optimizer: Any, local: list[Any]) -> None:
        from perfgate.subjects.distributed.instruments import LiveTensorPeak, SavedActivations

        self.job, self.rank, self.sharded, self.optimizer, self.local = job, rank, sharded, optimizer, local
        self.progress = Progress(Path(job["job_dir"]), rank)
        self.activations = SavedActivations(sharded)
        self.live = LiveTensorPeak()
        self.phases: list[tuple[str, float]] = []  # while saving: each phase's start
        self.saving = self.profiling = False

    def __call__(self, index: int, sync: bool = True) -> float:
        self._mark(index, "start")
        _planted_fault(self.job, self.rank, index)
        self.optimizer.zero_grad(set_to_none=True)
        self._mark(index, "forward")
        context = self.sharded.no_sync() if not sync else _null()
        with context, self.activations.hooks() if self.saving else _null():
            with self._phase("forward"):
                loss = self.sharded(**self.local[index % BATCHES]).loss
            if self.saving:
                self.activations.forward_done()
            self._mark(index, "backward")
            with self._phase("backward"):
                loss.backward()
        self._mark(index, "optimizer step")
        with self._phase("optimizer step"):
            self.optimizer.step()
        self._mark(index, "done")
        return float(loss.detach())

    def _mark(self, index: int, phase: str) -> None:
        self.progress.mark(index, phase)
        if self.saving:
            self.phases.append((phase, time.monotonic()))

    def _phase(self, name: str) -> Any:
        return self.live.phase(name) if self.profiling else _null()


def _memory_steps(
    step: Any, world: int, phases: list[tuple[str, float]]
) -> tuple[list[float], dict[str, Any], dict[str, int]]:
    """The first steps with the rank's anonymous memory sampled: the mean loss over ranks per step, the
    peak, and each phase's own peak of anonymous memory (forward, backward, optimizer step: ``phases``
    holds each one's start, as ``step`` marks them), so a report can say where the peak sits."""
    import torch
    import torch.distributed as dist

    from perfgate.instruments.memory import MemorySampler

    losses = []
    with MemorySampler(os.getpid()) as sampler:
        start = time.monotonic()
        for index in range(EQUIVALENCE_STEPS):
            loss = torch.tensor([step(index)])
            dist.all_reduce(loss)
            losses.append(float(loss) / world)
        end = time.monotonic()
    phase_peaks: dict[str, int] = {}
    for (phase, begun), (_, ended) in zip(phases, [*phases[1:], ("end", end)], strict=True):
        anon = (sampler.peak_in(begun, ended).get("max") or {}).get("anon")
        if phase in ("forward", "backward", "optimizer step") and anon is not None:
            phase_peaks[phase] = max(phase_peaks.get(phase, 0), anon)
    return losses, sampler.peak_in(start, end), phase_peaks


def _timed(job: dict[str, Any], rank: int, step: Any, batches: list[Any], location: str) -> dict[str, Any]:
    """Rank 0 times both arms through commands the other ranks follow (module docstring, 4)."""
    import torch
    import torch.distributed as dist

    from perfgate.instruments.comparison import ComparePolicy, compare
    from perfgate.instruments.timing import Timer
    from perfgate.subjects.training import Recipe, StepRunner, load_classifier

    cursor = {"sharded": EQUIVALENCE_STEPS + 3, "single": 0}

    def sharded(sync: bool = True) -> None:
        cursor["sharded"] += 1
        step(cursor["sharded"], sync)

    if rank != 0:
        while (order := _receive()) != "stop":
            if order != "single":
                sharded(order == "sharded")
            dist.barrier()
        return {}
    single_runner = StepRunner(load_classifier(location, "cpu"), Recipe(), "cpu")
    threads = torch.get_num_threads()

    def single_step() -> float:
        cursor["single"] += 1
        torch.set_num_threads(job["threads_single"])
        try:
            return single_runner.step(batches[cursor["single"] % BATCHES])
        finally:
            torch.set_num_threads(threads)

    reference = [single_runner.step(batches[i]) for i in range(EQUIVALENCE_STEPS)]  # from the same weights

    def command(name: str) -> None:
        _send(name)
        if name == "single":
            single_step()
        else:
            sharded(name == "sharded")
        dist.barrier()

    policy = replace(ComparePolicy(), **job["policy"])
    timed: dict[str, Any] = {"reference_losses": reference}
    try:
        comparison = compare(lambda: command("single"), lambda: command("sharded"), Timer(), job["bound"], policy)
        timed["speed"] = comparison.to_dict()
        samples = job["batch_size"]
        timed["samples_per_second"] = {arm: samples / comparison.latency(arm).p50 for arm in ("baseline", "candidate")}
        if job.get("engine", job["recipe"]) in ("ddp", "ddp-grad-copy"):
            ungated = replace(policy, precision=None)
            sync = compare(lambda: command("sharded"), lambda: command("sharded-no-sync"), Timer(), None, ungated)
            timed["no_sync"] = sync.to_dict()
    finally:
        _send("stop")
    return timed


PHASES = ("start", "forward", "backward", "optimizer step", "done")


class Progress:
    """Where a rank is, in a file of its own (``rank-R.progress``): the step and its phase, so a case
    that times out can say which rank stalled. Marks stop while timing (``every_step=False``): a file
    write per step would be timed with the distributed arm alone."""

    def __init__(self, job_dir: Path, rank: int) -> None:
        self.path, self.on = job_dir / f"rank-{rank}.progress", True

    def mark(self, step: int, phase: str, every_step: bool = True) -> None:
        if self.on:
            self.path.write_text(f"{step} {phase}")
            self.on = every_step


def _send(command: str) -> None:
    import torch
    import torch.distributed as dist

    dist.broadcast(torch.tensor([COMMANDS.index(command)]), src=0)


def _receive() -> str:
    import torch
    import torch.distributed as dist

    code = torch.tensor([0])
    dist.broadcast(code, src=0)
    return COMMANDS[int(code)]


def _owned_parameters(model: Any, optimizer: Any) -> list[int]:
    """Indices of the parameters whose optimizer state this rank holds under ZeroRedundancyOptimizer."""
    mine = {id(p) for group in optimizer.optim.param_groups for p in group["params"]}
    return [i for i, p in enumerate(model.parameters()) if id(p) in mine]


def _planted_fault(job: dict[str, Any], rank: int, index: int) -> None:
    """A planted fault, for the tests that show a dead or silent rank becomes an outcome: ``kill`` (SIGKILL
    to itself) or ``hang`` (never joins the step's collectives) on one rank at one step."""
    fault = job.get("fault")
    if not fault or fault["rank"] != rank or fault.get("step") != index:
        return
    if fault["kind"] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault["kind"] == "hang":
        time.sleep(10**6)


def _planted_start_up_crash(job: dict[str, Any]) -> None:
    """``abort-at-start``: the rank aborts before it joins the process group, as a starved torchrun start
    can; with ``once`` (a file path) only the first start does."""
    fault = job.get("fault") or {}
    if fault.get("kind") != "abort-at-start" or int(os.environ.get("RANK", "0")) != fault["rank"]:
        return
    once = Path(fault["once"]) if fault.get("once") else None
    if once is not None and once.exists():
        return
    if once is not None:
        once.touch()
    os.abort()


def _die_with_parent() -> None:
    """SIGKILL when torchrun goes: a rank must never outlive the case that started it."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _null() -> Any:
    import contextlib

    return contextlib.nullcontext()


def _tokenizer(location: str) -> Any:
    import transformers

    return transformers.AutoTokenizer.from_pretrained(location)


def exec_torchrun(arguments: list[str]) -> None:
    """Become torchrun with ``arguments``, set to receive SIGTERM when the worker that started it goes
    (the setting survives exec; torchrun then stops its ranks). A ``preexec_fn`` would do the same in
    the worker, where it is unsafe with threads."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", *arguments])


if __name__ == "__main__":
    if sys.argv[1] == "--torchrun":
        exec_torchrun(sys.argv[2:])
    else:
        main(Path(sys.argv[1]))
