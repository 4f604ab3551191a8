"""The contract between a scenario's two halves: ``Scenario`` itself, the ``CaseContext`` a case is
conducted through in the pytest process (submitting jobs through a ``JobSubmitter``, the launcher's
shape, and getting a ``JobReply``), and the ``WorkerState`` a worker keeps between jobs. The launcher,
the worker and every scenario import it; it imports none of them."""

from __future__ import annotations

import enum
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from perfgate.engine.record import CaseResult
from perfgate.engine.spec import CaseSpec
from perfgate.instruments.memory import release_freed_memory
from perfgate.instruments.outcome import Outcome

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfgate.instruments.cgroup import MemoryCgroup
    from perfgate.instruments.timing import Timer
    from perfgate.subjects.model import LoadedModel
    from perfgate.subjects.technique import Variant
    from perfgate.verdicts.thresholds import Thresholds

__all__ = ["CaseContext", "Isolation", "JobReply", "JobSubmitter", "Scenario", "WorkerState"]


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


@dataclass
class JobReply:
    outcome: Outcome
    data: dict[str, Any] = field(default_factory=dict)
    detail: str = ""
    log: str = ""
    worker: dict[str, Any] = field(default_factory=dict)  # pid, fresh, start_seconds, load_seconds


class JobSubmitter(Protocol):
    """What a case submits its jobs through: the launcher's ``submit`` (``launcher.Launcher``)."""

    def submit(
        self, device: str, scenario: Scenario, payload: dict[str, Any], *, fresh: bool, timeout: float,
        cgroup: MemoryCgroup | None = None,
    ) -> JobReply: ...  # fmt: skip


@dataclass
class CaseContext:
    """What a scenario's ``conduct`` works with: the spec, the record it fills, the thresholds, the
    common job payload, and ``submit`` to run a job in a worker."""

    spec: CaseSpec
    result: CaseResult
    thresholds: Thresholds
    launcher: JobSubmitter
    base_payload: dict[str, Any]
    timeout: float
    memory_timeout: float = 600.0  # for serving-memory and runtime-overhead jobs
    memory: bool = True
    fresh_worker: bool = False  # the technique leaves process-wide state behind
    memo: dict[tuple[Any, ...], Any] = field(default_factory=dict)  # the session's, shared across cases

    def payload(self, **changes: Any) -> dict[str, Any]:
        return {**self.base_payload, **changes}

    def submit(
        self, scenario: Scenario, payload: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any] | None:
        """Run one job; its reply's data, or None after recording the outcome (oom, timeout, crashed,
        error) on the result — the caller then stops, and the worker has been replaced."""
        fresh = scenario.isolation is Isolation.FRESH or self.fresh_worker
        started = time.perf_counter()
        reply = self.launcher.submit(self.spec.device, scenario, payload, fresh=fresh, timeout=timeout or self.timeout)
        wall = time.perf_counter() - started
        self.result.worker.setdefault("jobs", []).append(
            {"scenario": scenario.name, **reply.worker, "wall_seconds": wall}
        )
        if reply.outcome != Outcome.MEASURED:
            self.result.outcome = reply.outcome
            prefix = "" if scenario.name == self.spec.scenario else f"{scenario.name}: "
            self.result.detail = prefix + reply.detail
            self.result.log = reply.log
            if reply.outcome == Outcome.OOM:
                self.result.metrics.setdefault("memory", {})["at_failure"] = reply.data.get("at_failure")
            return None
        return reply.data


class WorkerState:
    """What a worker keeps between jobs: one model at a time and the variants built from it."""

    def __init__(self) -> None:
        self._key: tuple[str, ...] | None = None
        self._model: LoadedModel | None = None
        self._variants: dict[tuple[str, int | None], Variant] = {}
        self.held: dict[str, tuple[Callable[[], object], Timer]] = {}  # arms the parent times (held_arm.py)
        self.runtime_profiles: dict[str, Callable[[], str]] = {}  # a held arm's runtime profiler's end, by arm
        # fp32's per-example task outcomes by model, baseline, labelled set and shape: scored once per worker
        # (the shared worker lives the whole run), kept across model swaps, so each case scores its candidate only
        self.baseline_outcomes: dict[tuple[Any, ...], Any] = {}

    def model(self, ref: dict[str, Any]) -> LoadedModel:
        """The model ``ref`` names (name, task, location, device), loaded unless it is the current one."""
        from perfgate.subjects.model import load_model

        placement = ref.get("placement", "mapped")
        key = (ref["name"], ref["task"], ref["location"], ref["device"], placement)
        if key != self._key or self._model is None:
            self._model, self._variants, self._key = None, {}, None
            release_freed_memory()
            location = Path(ref["location"]) if Path(ref["location"]).exists() else ref["location"]
            self._model = load_model(ref["name"], ref["task"], location, ref["device"], placement)
            self._key = key
        self._model.calibration_texts = list(ref.get("calibration_texts", []))
        return self._model

    def variant(self, model: LoadedModel, technique: str, workdir: str, threads: int | None) -> Variant:
        """The technique (``"package.module:Class"``) applied to ``model``, built once per worker."""
        from perfgate.subjects.catalogue import load_technique

        key = (technique, threads)
        if key not in self._variants:
            self._variants[key] = load_technique(technique).apply(model, Path(workdir), threads)
        return self._variants[key]
