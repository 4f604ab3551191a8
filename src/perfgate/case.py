"""One case as the pytest process sees it: its record (``CaseResult``), the context a scenario conducts
it through (``CaseContext``), and the judge that turns its metrics into one verdict."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from perfgate.metrics import all_metrics
from perfgate.outcome import Outcome, Verdict
from perfgate.spec import CaseSpec
from perfgate.thresholds import SPEED_FIELDS, CheckResult

if TYPE_CHECKING:
    from perfgate.launcher import Launcher
    from perfgate.scenarios import Scenario
    from perfgate.thresholds import Thresholds

__all__ = ["CaseContext", "CaseResult", "judge"]


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
    ungated: list[str] = field(default_factory=list)  # threshold fields measured here but set for no class
    verdict: Verdict = Verdict.INCONCLUSIVE

    @property
    def context(self) -> str:
        s = self.spec
        return f"{s.technique} on {s.model} (batch {s.batch_size}, {s.device}, {self.hardware_class})"

    @property
    def setup_seconds(self) -> float:
        """What isolation cost this case outside the timed blocks: worker starts and model loads."""
        jobs = self.worker.get("jobs", [])
        return float(sum(job.get("start_seconds", 0.0) + job.get("load_seconds", 0.0) for job in jobs))

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
    """Every metric's checks, then one verdict: an outcome that is not a result fails; any FAIL fails;
    an undecided check is INCONCLUSIVE; a class without thresholds is UNGATED."""
    checks: list[CheckResult] = []
    ungated: list[str] = []
    for metric in all_metrics():
        if metric.name in result.metrics:
            figures = result.metrics[metric.name]
            checks += metric.checks(figures, thresholds, result.context)
            ungated += [c.name for c in metric.measured(figures) if not _bounded(c.name, thresholds)]
    result.checks, result.ungated = checks, ungated
    verdicts = {c.verdict for c in checks}
    if result.outcome != Outcome.MEASURED:
        result.verdict = Verdict.FAIL
    elif not thresholds.gated:
        result.verdict = Verdict.UNGATED
    elif Verdict.FAIL in verdicts:
        result.verdict = Verdict.FAIL
    elif Verdict.INCONCLUSIVE in verdicts:
        result.verdict = Verdict.INCONCLUSIVE
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
        reply = self.launcher.submit(self.spec.device, scenario, payload, fresh=fresh, timeout=timeout or self.timeout)
        self.result.worker.setdefault("jobs", []).append({"scenario": scenario.name, **reply.worker})
        if reply.outcome != Outcome.MEASURED:
            self.result.outcome = reply.outcome
            prefix = "" if scenario.name == self.spec.scenario else f"{scenario.name}: "
            self.result.detail = prefix + reply.detail
            self.result.log = reply.log
            if reply.outcome == Outcome.OOM:
                self.result.metrics.setdefault("memory", {})["at_failure"] = reply.data.get("at_failure")
            return None
        return reply.data
