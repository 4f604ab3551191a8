"""Two arms held in live worker processes and timed in ABBA blocks from here: the upgrade gates' engine.

A model upgrade holds both models in one worker (as ``ab-forward`` holds fp32 and its variant); a
library upgrade holds one arm in a worker of each environment's interpreter. Either way the parent
alternates ``time`` requests A B B A through ``comparison.compare_blocks``, each worker timing its own
block with its own clock, so both arms share the same moment's noise and the pipe's latency stays
outside every timed block. Two runs compared afterwards would carry the ±15-20% that separate
processes on a shared machine differ by.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfgate.engine.launcher import WorkerGone, WorkerLate, WorkerProcess
from perfgate.errors import ArmFailed, ConfigError
from perfgate.instruments.timing import Timer, WarmUp
from perfgate.subjects.model import BASELINE_PLACEMENT

__all__ = [
    "ARMS", "QUIET_WHILE_IDLE", "QUIET_WHILE_IDLE_SETTING", "Arm", "ArmWorkers", "check_interpreter", "worker_sys_path"
]  # fmt: skip

QUIET_WHILE_IDLE = {"OMP_WAIT_POLICY": "PASSIVE"}
# Said in every gate's results: the one runtime setting the two live workers change from its default.
QUIET_WHILE_IDLE_SETTING = {
    "name": "OMP_WAIT_POLICY (both arms' workers)", "value": "PASSIVE",
    "default": "unset (libgomp: its threads spin a while after each parallel region, then sleep)",
    "why": "two live workers share the cores: the idle arm's OpenMP threads must not spin into the other's block",
}  # fmt: skip
ARMS = ("baseline", "candidate")  # the comparison's names: baseline is the current model or environment


@dataclass(frozen=True)
class Arm:
    """What one side of a gate serves: a model directory, a technique, and the interpreter running it."""

    label: str  # "current" or "candidate"
    model: str  # a name for reports
    location: Path
    task: str
    technique: str = "fp32-eager"  # a registered name, or an import path (``module:Class``)
    python: str = sys.executable
    # Where its worker imports from, when not this project's own path (``compare --explain``: the good
    # run's commit checked out beside this one)
    sys_path: tuple[str, ...] | None = None
    cwd: Path | None = None  # where its worker runs (``python -m`` imports from there first)


def check_interpreter(python: str, option: str) -> None:
    """A missing second environment is one clear error, before any worker starts."""
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise ConfigError(
            f"{option} {python!r} is not an executable interpreter; create the environment "
            f"(python -m venv DIR && DIR/bin/pip install -r requirements/...) and pass DIR/bin/python"
        )


SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds the perfgate package


def worker_sys_path(python: str, rootdir: Path) -> list[str]:
    """What a worker under ``python`` imports perfgate from. Our own interpreter: our whole path. Another
    environment's: the rootdir and perfgate's source only, so its own site-packages (the libraries
    being compared) are not shadowed by ours."""
    if python == sys.executable:
        return [str(rootdir), *sys.path]
    return [str(rootdir), str(SOURCE_ROOT)]


@dataclass
class ArmWorkers:
    """Both arms prepared in workers (one per interpreter); a ``comparison.BlockTimer`` over them."""

    arms: Mapping[str, Arm]  # "baseline", "candidate"
    rootdir: Path
    timeout: float = 900.0
    grace: float = 5.0
    # An idle worker's OpenMP threads spin-wait for their next parallel region by default, stealing the
    # cores of the worker timing its block; passive waiting keeps the idle one off them.
    environment: Mapping[str, str] = field(default_factory=lambda: dict(QUIET_WHILE_IDLE))
    _workers: dict[tuple[str, tuple[str, ...] | None, Path | None], WorkerProcess] = field(
        default_factory=dict, init=False
    )
    _timer: Timer = field(default_factory=Timer, init=False)

    def prepare(self, payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Load and apply each arm in its worker; per arm: task outcomes, outputs, sizes, versions."""
        prepared = {}
        for name in ARMS:
            arm = self.arms[name]
            if _worker_key(arm) not in self._workers:
                sys_path = list(arm.sys_path) if arm.sys_path is not None else worker_sys_path(arm.python, self.rootdir)
                try:
                    self._workers[_worker_key(arm)] = WorkerProcess(
                        sys_path, 120.0, self.grace, dict(self.environment), arm.python, arm.cwd
                    )
                except (WorkerGone, WorkerLate) as error:
                    raise ArmFailed(f"{arm.label}: the worker under {arm.python} did not start: {error}") from None
            model = {
                "name": arm.model, "task": arm.task, "location": str(arm.location), "device": payload["device"],
                "placement": BASELINE_PLACEMENT,  # both arms' weights in torch's allocator, wherever each file put them
            }  # fmt: skip
            workdir = str(Path(payload["workdir"]) / arm.label)  # artifacts of one library version stay its own
            # with ``runtime_profile`` set, a runtime that profiles its own nodes (ONNX Runtime) writes them here
            profile = str(Path(payload["workdir"]) / f"{arm.label}-runtime") if payload.get("runtime_profile") else None
            prepared[name] = self._ask(name, {
                **payload, "action": "prepare", "arm": name, "model": model, "technique": arm_technique(arm),
                "workdir": workdir, "runtime_profile": profile,
            })  # fmt: skip
        return prepared

    def warm_up(self, arm: str) -> WarmUp:
        return WarmUp(**self._ask(arm, {"action": "warm-up", "arm": arm}))

    def time_block(self, arm: str, calls: int) -> float:
        return float(self._ask(arm, {"action": "time", "arm": arm, "calls": calls})["seconds"])

    def profile_block(self, arm: str, calls: int, trace: Path | None = None, device: str = "cpu") -> dict[str, float]:
        """One block of the arm op by op: each op's self seconds per call (``name<TAB>shapes`` keys)."""
        request = {"action": "profile", "arm": arm, "calls": calls, "trace": str(trace) if trace else None,
                   "device": device}  # fmt: skip
        reply = self._ask(arm, request)
        ops: dict[str, float] = reply["ops"]
        return ops

    def end_profile(self, arm: str, rounds: int, calls: int) -> list[dict[str, float]] | None:
        """The arm's runtime's own nodes per profiled round (ONNX Runtime), or None where it has none."""
        found: list[dict[str, float]] | None = self._ask(
            arm, {"action": "end-profile", "arm": arm, "rounds": rounds, "calls": calls}
        )["rounds"]
        return found

    def calls_per_block(self, per_call_seconds: float) -> int:
        return self._timer.calls_per_block(per_call_seconds)

    def between_rounds(self, rounds: int) -> None:
        """Each worker collects its own garbage outside its blocks (``gc`` stays on there)."""

    def _ask(self, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        arm = self.arms[name]
        worker = self._workers[_worker_key(arm)]
        try:
            worker.send({"kind": "job", "scenario": "held-arm", "payload": payload})
            reply = worker.receive(self.timeout)
        except WorkerLate:
            worker.kill()
            raise ArmFailed(f"{arm.label}: no reply within {self.timeout:g} s; {worker.log_tail()}") from None
        except WorkerGone:
            raise ArmFailed(f"{arm.label}: the worker died ({worker.exit_status()}); {worker.log_tail()}") from None
        if reply.get("outcome") != "measured":
            raise ArmFailed(f"{arm.label} ({payload['action']}): {reply.get('outcome')}: {reply.get('detail')}")
        data: dict[str, Any] = reply["data"]
        return data

    def close(self) -> None:
        for worker in self._workers.values():
            worker.close()
        self._workers.clear()


def _worker_key(arm: Arm) -> tuple[str, tuple[str, ...] | None, Path | None]:
    return arm.python, arm.sys_path, arm.cwd


def arm_technique(arm: Arm) -> str:
    from perfgate.subjects.catalogue import import_path

    return arm.technique if ":" in arm.technique else import_path(arm.technique)
