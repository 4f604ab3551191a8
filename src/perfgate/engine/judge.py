"""The judge: every metric a case carries asked for its checks against the thresholds, then one verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perfgate.engine.metrics import all_metrics
from perfgate.instruments.outcome import Outcome, Verdict
from perfgate.verdicts.fields import HARDWARE_FIELDS, SPEED_FIELDS
from perfgate.verdicts.thresholds import CheckResult

if TYPE_CHECKING:
    from perfgate.engine.record import CaseResult
    from perfgate.verdicts.thresholds import Thresholds

__all__ = ["judge"]


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
