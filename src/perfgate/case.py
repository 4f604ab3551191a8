"""One case as the pytest process sees it: its record (``CaseResult``), the context a scenario conducts
it through (``CaseContext``), and the judge that turns its metrics into one verdict."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from perfgate.metrics import all_metrics
from perfgate.outcome import Outcome, Verdict
from perfgate.spec import CaseSpec
from perfgate.thresholds import HARDWARE_FIELDS, SPEED_FIELDS, CheckResult

if TYPE_CHECKING:
    from perfgate.launcher import Launcher
    from perfgate.scenarios import Scenario
    from perfgate.thresholds import Thresholds

__all__ = ["CaseContext", "CaseResult", "judge"]

MEMORY_JOBS = frozenset({"serving-memory", "runtime-overhead"})  # the jobs a memory pass adds to a case


@dataclass
class CaseResult:
    spec: CaseSpec
    hardware_class: str
    outcome: Outcome = Outcome.STARTED
    detail: str = ""
    log: str = ""  # the worker's traceback or last stderr lines, for outcomes that are not results
    nodeid: str = ""
    threads: int = 0
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # metric name -> its figures
    variant: dict[str, Any] = field(default_factory=dict)
    worker: dict[str, Any] = field(default_factory=dict)  # jobs: pid, fresh, start and load seconds
    thresholds: dict[str, Any] = field(default_factory=dict)
    checks: list[CheckResult] = field(default_factory=list)
    ungated: list[str] = field(default_factory=list)  # hardware-dependent fields measured here without a bound
    verdict: Verdict = Verdict.INCONCLUSIVE
    wall_seconds: float = 0.0  # from the case's start to its verdict, in the pytest process
    # Its pytest test's outcome ("passed", "failed") and the failure's message; "" where not known (a
    # record from an aborted run, or built outside pytest). A FAIL whose test passed was expected by it.
    test_outcome: str = ""
    test_failure: str = ""

    @property
    def expected_failure(self) -> bool:
        """A FAIL its own test asserted (a planted fault, a bad checkpoint), so the test passed."""
        return self.verdict == Verdict.FAIL and self.test_outcome == "passed"

    @property
    def context(self) -> str:
        s = self.spec
        return f"{s.technique} on {s.model} (batch {s.batch_size}, {s.device}, {self.hardware_class})"

    @property
    def setup_seconds(self) -> float:
        """What isolation cost this case outside the timed blocks: worker starts and model loads."""
        jobs = self.worker.get("jobs", [])
        return float(sum(job.get("start_seconds", 0.0) + job.get("load_seconds", 0.0) for job in jobs))

    def time_split(self) -> dict[str, float]:
        """Where the case's wall time went: worker starts and model loads (setup), serving-memory jobs
        (memory), and the rest — timing, fidelity, the scenario's own work (measurement)."""
        jobs = self.worker.get("jobs", [])
        memory = sum(
            job.get("wall_seconds", 0.0) - job.get("start_seconds", 0.0) - job.get("load_seconds", 0.0)
            for job in jobs
            if job.get("scenario") in MEMORY_JOBS
        )
        setup = self.setup_seconds
        return {"setup": setup, "memory": memory, "measurement": max(self.wall_seconds - setup - memory, 0.0)}

    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if c.verdict == Verdict.FAIL]

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["spec"] = self.spec.to_dict()
        data["checks"] = [c.to_dict() for c in self.checks]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseResult:
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["spec"] = CaseSpec.from_dict(data["spec"])
        values["checks"] = [CheckResult(**c) for c in data.get("checks", [])]
        values["outcome"] = Outcome(data.get("outcome", Outcome.STARTED))
        values["verdict"] = Verdict(data.get("verdict", Verdict.INCONCLUSIVE))
        return cls(**values)


def judge(result: CaseResult, thresholds: Thresholds) -> None:
    """Every metric's checks, then one verdict, the first that applies:

    FAIL          an outcome that is not a result, or any check fails
    INCONCLUSIVE  a check could not decide (the speed interval straddles its bound)
    RECORDED      the case measured no threshold field at all (arrivals, calibration)
    UNGATED       no hardware-dependent field it measured has a bound here (fidelity and sizes still judged)
    PASS          at least one hardware-dependent field was judged, and every check holds
    """
    checks: list[CheckResult] = []
    measured: list[str] = []
    for metric in all_metrics():
        if metric.name in result.metrics:
            figures = result.metrics[metric.name]
            checks += metric.checks(figures, thresholds, result.context)
            measured += [c.name for c in metric.measured(figures)]
    hardware = [name for name in measured if name in HARDWARE_FIELDS]
    result.checks = checks
    result.ungated = [name for name in hardware if not _bounded(name, thresholds)]
    verdicts = {c.verdict for c in checks}
    if result.outcome != Outcome.MEASURED or Verdict.FAIL in verdicts:
        result.verdict = Verdict.FAIL
    elif Verdict.INCONCLUSIVE in verdicts:
        result.verdict = Verdict.INCONCLUSIVE
    elif not measured:
        result.verdict = Verdict.RECORDED
    elif len(result.ungated) == len(hardware):
        result.verdict = Verdict.UNGATED
    else:
        result.verdict = Verdict.PASS


def _bounded(name: str, thresholds: Thresholds) -> bool:
    if name in SPEED_FIELDS:  # two spellings of one rule
        return bool(SPEED_FIELDS & thresholds.values.keys())
    return name in thresholds.values


@dataclass
class CaseContext:
    """What a scenario's ``conduct`` works with: the spec, the record it fills, the thresholds, the
    common job payload, and ``submit`` to run a job in a worker."""

    spec: CaseSpec
    result: CaseResult
    thresholds: Thresholds
    launcher: Launcher
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
        from perfgate.scenarios import Isolation

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
