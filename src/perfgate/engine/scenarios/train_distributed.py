"""Sharded and data-parallel training across processes: a recipe's ranks under ``torchrun`` against fp32
AdamW in one process on the same global batches.

The case's worker (a fresh one) starts ``python -m torch.distributed.run --standalone`` (torchrun: a free
port of its own, so xdist workers never collide), which starts the ranks (``perfgate.subjects.distributed.rank``,
``gloo`` on CPU, one thread each). The worker waits at most the case's timeout less a margin: past it,
torchrun is stopped (its ranks die with it) and the case is a ``timeout`` naming the ranks that never
reported, as when a collective never completes; a rank that died makes the case ``crashed``, naming the
rank and its exit. Either way the next case runs.

Memory per rank is judged against DDP's per rank (the same model and global batch: a second job, once per
model and shape, without timing). On a 2-core machine the throughput ratio measures the ranks' overhead
and traffic on shared cores, not scaling: memory per rank is the headline.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfgate.engine.scenarios.contract import Isolation, Scenario

if TYPE_CHECKING:
    from perfgate.engine.scenarios.contract import CaseContext, WorkerState

SEQ_LEN = 64
DEADLINE_MARGIN = 30.0  # seconds of the case's timeout kept for stopping torchrun and replying
STOP_GRACE = 10.0
LOG_TAIL = 6000


class TrainDistributed(Scenario):
    name = "train-distributed"
    isolation = Isolation.FRESH

    def conduct(self, case: CaseContext) -> None:
        from perfgate.subjects.distributed.figures import distributed_figures
        from perfgate.subjects.techniques.training import distributed_recipe

        technique = distributed_recipe(case.spec.technique)
        seq_len = case.spec.seq_len or SEQ_LEN
        world = case.spec.world or technique.world
        job = self.job(case, technique.sharding, world, seq_len, technique.fault, engine=technique.engine)
        data = case.submit(self, job)
        if data is None:
            return
        figures = distributed_figures(technique.sharding, data["ranks"])
        if data.get("restarted"):
            figures["restarted"] = data["restarted"]
        lead = next(report for report in data["ranks"] if report["rank"] == 0)
        speed = (
            {**lead["speed"], "throughput_items_per_second": lead["samples_per_second"]} if "speed" in lead else None
        )
        if world == technique.world and speed:
            case.result.metrics["speed"] = speed
        elif world != technique.world:
            # Thresholds of speed and memory ratios were measured at the recipe's own rank count: recorded here.
            figures["world_note"] = world_note(world, technique.world, os.cpu_count() or 1)
            figures["speed"] = speed
        case.result.threads = 1
        if case.memory:
            figures["memory"] = self._against_ddp(case, world, seq_len, figures)
        case.result.metrics["distributed"] = figures

    def job(
        self, case: CaseContext, recipe: str, world: int, seq_len: int, fault: Any, timing: bool = True,
        engine: str | None = None,
    ) -> Any:  # fmt: skip
        return case.payload(
            recipe=recipe, engine=engine or recipe, world=world, seq_len=seq_len, fault=fault, timing=timing,
            deadline=max(case.timeout - DEADLINE_MARGIN, 1.0),
        )  # fmt: skip

    def _against_ddp(self, case: CaseContext, world: int, seq_len: int, figures: dict[str, Any]) -> dict[str, Any]:
        """The recipe's peak and saving against DDP's (``figures.memory_against_ddp``), DDP measured once per
        model and shape."""
        from perfgate.subjects.distributed.figures import distributed_figures, memory_against_ddp

        if figures["recipe"] == "ddp":
            peaks = {"anon": figures["max_anon_peak"], "live": figures.get("max_live_peak")}
        else:
            key = (self.name, "ddp", case.spec.model, case.spec.batch_size, seq_len, world)
            if key not in case.memo:
                data = case.submit(self, self.job(case, "ddp", world, seq_len, None, timing=False))
                if data is None:
                    return {}
                ddp = distributed_figures("ddp", data["ranks"])
                case.memo[key] = {"anon": ddp["max_anon_peak"], "live": ddp.get("max_live_peak")}
            peaks = case.memo[key]
        return memory_against_ddp(figures, peaks)

    def run(self, payload: dict[str, Any], state: WorkerState) -> dict[str, Any]:
        job = {
            "recipe": payload["recipe"],
            "engine": payload.get("engine") or payload["recipe"],
            "location": payload["model"]["location"],
            "texts": list(payload["eval_texts"]),
            "batch_size": payload["batch_size"],
            "seq_len": payload["seq_len"],
            "threads_per_rank": 1,
            "threads_single": payload["world"],  # the same cores as the ranks together
            "policy": payload["policy"],
            "bound": payload["bound"],
            "timing": payload.get("timing", True),
            "fault": payload.get("fault"),
            # A collective's own timeout past the case's deadline: a rank that never joins is this job's
            # timeout, not another rank's gloo error.
            "collective_timeout": payload["deadline"] + 60,
        }
        if job["batch_size"] % payload["world"]:
            raise ValueError(f"batch_size={job['batch_size']} does not split evenly over {payload['world']} ranks")
        started = time.monotonic()
        try:
            return {"ranks": run_ranks(job, payload["world"], payload["deadline"])}
        except StartUpCrash as crash:
            # No rank joined the process group: torchrun's start on a starved machine (a rank's store client
            # aborting, "terminate called without an active exception"), not the recipe. Started once more,
            # and said; a second start-up crash is the case's outcome.
            left = payload["deadline"] - (time.monotonic() - started)
            if left < 1.0:
                raise crash.outcome from None
            restarted = f"the ranks' first start crashed before any joined the process group ({crash.outcome})"
            try:
                return {"ranks": run_ranks(job, payload["world"], left), "restarted": restarted}
            except StartUpCrash as again:
                raise again.outcome from None


def world_note(world: int, measured: int, cores: int) -> str:
    """What a case at another rank count says of its figures."""
    note = (f"{world} ranks, where the thresholds' speed and memory ratios were measured at {measured}: "
            "recorded, not gated; held bytes, traffic and the saving against their predictions are judged")  # fmt: skip
    if world > cores:
        note += f". {world} ranks on {cores} cores: the speed is the ranks' overhead on shared cores, not scaling"
    return note


def run_ranks(job: dict[str, Any], world: int, deadline: float) -> list[dict[str, Any]]:
    """Start ``world`` ranks under torchrun on ``job``; their reports, or ``JobOutcome`` (timeout, crashed)."""
    from perfgate.errors import JobOutcome

    job_dir = Path(tempfile.mkdtemp(prefix="perfgate-ranks-"))
    try:
        (job_dir / "job.json").write_text(json.dumps({**job, "job_dir": str(job_dir)}))
        # torchrun, started through distributed.rank's launcher: it dies with this worker however the worker goes
        command = [sys.executable, "-m", "perfgate.subjects.distributed.rank", "--torchrun", "--standalone",
                   f"--nproc-per-node={world}", "-m", "perfgate.subjects.distributed.rank", str(job_dir)]  # fmt: skip
        environment = {**os.environ, "OMP_NUM_THREADS": "1",
                       "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}  # fmt: skip
        process = subprocess.Popen(
            command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            output, _ = process.communicate(timeout=deadline)
        except subprocess.TimeoutExpired:
            output = _stop(process)
            raise JobOutcome("timeout", stall_detail(job_dir, world, deadline), output[-LOG_TAIL:]) from None
        if process.returncode != 0:
            outcome = JobOutcome("crashed", crash_detail(output, _missing(job_dir, world), world), output[-LOG_TAIL:])
            if not any(job_dir.glob("rank-*.joined")):
                raise StartUpCrash(outcome)
            raise outcome
        return [json.loads((job_dir / f"rank-{rank}.json").read_text()) for rank in range(world)]
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)


class StartUpCrash(Exception):
    """torchrun failed before any rank joined the process group (``outcome``: what it would record)."""

    def __init__(self, outcome: Any) -> None:
        super().__init__(str(outcome))
        self.outcome = outcome


def _stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM to torchrun (it stops its ranks), SIGKILL after a grace; what it printed."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        process.send_signal(sig)
        try:
            output, _ = process.communicate(timeout=STOP_GRACE)
            return output or ""
        except subprocess.TimeoutExpired:
            continue
    return ""


def _missing(job_dir: Path, world: int) -> list[int]:
    return [rank for rank in range(world) if not (job_dir / f"rank-{rank}.json").is_file()]


def stall_detail(job_dir: Path, world: int, deadline: float) -> str:
    """Which ranks had not finished, where each was last seen (``distributed.rank.Progress``), and the
    least advanced of them: the rank the others waited for in a collective."""
    from perfgate.subjects.distributed.rank import PHASES

    missing = _missing(job_dir, world)
    seen: dict[int, tuple[int, str]] = {}
    for rank in missing:
        with contextlib.suppress(OSError, ValueError):
            step, _, phase = (job_dir / f"rank-{rank}.progress").read_text().partition(" ")
            seen[rank] = (int(step), phase)
    detail = f"ranks {missing} of {world} had not finished after {deadline:g} s; torchrun stopped"
    if seen:
        where = "; ".join(f"rank {rank} at step {step}, {phase}" for rank, (step, phase) in sorted(seen.items()))
        order = {phase: i for i, phase in enumerate(PHASES)}
        position = {rank: (step, order.get(phase, len(PHASES))) for rank, (step, phase) in seen.items()}
        least = min(position.values())
        behind = [rank for rank in sorted(seen) if position[rank] == least]
        detail += f". Last seen: {where}"
        if len(behind) == 1 and len(seen) > 1:
            detail += f". Rank {behind[0]} is the furthest behind: the others wait for it in a collective"
        elif len(behind) > 1:  # while timing no rank marks its steps (Progress): stalled there, all read alike
            detail += f". Ranks {behind} were last seen at the same point: which one the others wait for is not known"
    return detail


FAILURE_ENTRY = re.compile(r"rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)", re.DOTALL)


def crash_detail(output: str, missing: list[int], world: int) -> str:
    """Which rank died and how, from torchrun's failure summary; else the ranks that never reported.

    torchrun's "Root Cause" is its first observed failure, ordered by whole-second timestamps: once a
    rank is killed its peer fails in the same second (a gloo error, exit code 1) and may be listed
    first. A rank ended by a signal is the cause, a rank that exited with an error a consequence: every
    entry of the summary is read, and the ones killed by a signal are named before the root cause."""
    _, found, summary = output.rpartition("Failures:")
    if not found:
        _, found, summary = output.rpartition("Root Cause")
    entries: dict[int, int] = {}
    for match in FAILURE_ENTRY.finditer(summary if found else ""):
        entries.setdefault(int(match.group(1)), int(match.group(2)))
    if not entries:
        return f"torchrun failed; ranks {missing} of {world} did not report"
    named = {rank: code for rank, code in entries.items() if code < 0}
    if not named:
        _, root, cause = summary.rpartition("Root Cause")
        first = FAILURE_ENTRY.search(cause) if root else None
        rank = int(first.group(1)) if first else next(iter(entries))
        named = {rank: entries[rank]}
    deaths = ", ".join(f"rank {rank} of {world} died ({_how(code)})" for rank, code in sorted(named.items()))
    return f"{deaths}; ranks {missing} did not report"


def _how(code: int) -> str:
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
