"""One case's record as the pytest process keeps it (``CaseResult``): its spec, outcome, metrics, checks
and verdict, and how it travels to and from JSON."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from perfgate.engine.spec import CaseSpec
from perfgate.instruments.outcome import Outcome, Verdict
from perfgate.verdicts.thresholds import CheckResult

__all__ = ["MEMORY_JOBS", "CaseResult"]

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
