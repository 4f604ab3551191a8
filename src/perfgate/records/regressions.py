"""The noise-aware comparison of a run against the history (``history.py`` reads and stores it), and
the re-run that confirms a suspect alone.

What is compared is what stays stable across processes: each case's same-process *ratio* against fp32
(speedup: both arms shared that night's noise), its fidelity and its memory ratio. Per case and figure
the reference is the median of the last ``last`` comparable runs that measured it, and the band comes
from their spread: ``max(floor, 3 x robust sigma)`` (sigma from the median absolute deviation, which
one wild night does not inflate). The floors are measured: the same-process MiniLM ratios moved 7%
between runs days apart on one CPU class (ONNX Runtime O2+int8 3.46x -> 3.71x), so a speedup must
move more than 10% before it is called a change.

Runs compare only within one hardware class, compatible library versions (same major.minor of the
libraries that decide kernels) and the same measurement settings (threads, budget, stopping policy); a
run that is not comparable is reported as *incomparable* with the reason, never as a regression. Cases
only in the run are *new*; cases only in the history are *missing*; neither counts as a regression. A
case that did not produce a result (a crash, an OOM, a timeout, an error) is *failed*, and counts.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from perfgate.engine.record import CaseResult
from perfgate.instruments.outcome import Outcome
from perfgate.records.history import (
    Acceptance,
    History,
    incompatibility,
    run_instant,
    runner_class,
    settings_difference,
)
from perfgate.records.results import RunRecord

__all__ = [
    "COUNTED",
    "TRACKED",
    "CaseComparison",
    "Comparison",
    "FigureComparison",
    "Status",
    "Tracked",
    "compare_run",
    "rerun_tests",
]


class Status(StrEnum):
    REGRESSION = "regression"
    IMPROVEMENT = "improvement"
    UNCHANGED = "unchanged"
    NEW = "new"
    MISSING = "missing"
    INCOMPARABLE = "incomparable"
    FAILED = "failed"  # no result: crashed, OOM, timed out, raised, or never finished


# Statuses that make the comparison fail and, once a re-measurement confirms them, raise an alert.
COUNTED = (Status.REGRESSION, Status.FAILED)


@dataclass(frozen=True)
class Tracked:
    """A figure compared across runs: how to read it, which way is better, and its band floor."""

    name: str
    read: Callable[[CaseResult], float | None]
    higher_is_better: bool
    floor: float  # the narrowest band: relative (0.10 = 10%) or, when ``absolute``, in the figure's units
    absolute: bool = False
    alerts: bool = True  # False: shown with its band, but a move alone never makes the case regress
    # The run's own confidence interval for the figure, where it has one: the band also holds that.
    interval: Callable[[CaseResult], tuple[float, float] | None] | None = None


def _path(*keys: str) -> Callable[[CaseResult], float | None]:
    def read(case: CaseResult) -> float | None:
        value: Any = case.metrics
        for key in keys:
            if not isinstance(value, dict) or value.get(key) is None:
                return None
            value = value[key]
        return float(value)

    return read


def _interval(*keys: str) -> Callable[[CaseResult], tuple[float, float] | None]:
    def read(case: CaseResult) -> tuple[float, float] | None:
        low, high = _path(*keys, "ci_low")(case), _path(*keys, "ci_high")(case)
        return None if low is None or high is None or low <= 0 else (low, high)

    return read


_speed_interval = _interval("speed", "estimate")


TRACKED = (
    Tracked("speedup", _path("speed", "estimate", "speedup"), True, floor=0.10, interval=_speed_interval),
    Tracked("cosine_min", _path("fidelity", "cosine_min"), higher_is_better=True, floor=0.005, absolute=True),
    Tracked("memory_ratio", _path("memory", "ratio"), higher_is_better=False, floor=0.10),
    # The batch sweep's gains, paired within its passes: measured to the nightly's precision like a speedup.
    *(
        Tracked(
            f"{gain}_gain",
            _path("batch_sweep", "gains", gain, "speedup"),
            higher_is_better=True,
            floor=0.10,
            interval=_interval("batch_sweep", "gains", gain),
        )
        for gain in ("batching", "sorting")
    ),
    # Absolute times cross processes: ±15-20% measured between back-to-back runs on one machine, so a
    # latency is context for the ratio beside it, not evidence on its own.
    Tracked("latency_p50", _path("speed", "latency", "candidate", "p50"), False, floor=0.20, alerts=False),
    # pytest-benchmark's own figure, all such a run has: its band comes from its own history's spread.
    Tracked("benchmark_p50", _path("latency", "p50"), higher_is_better=False, floor=0.02),
)


@dataclass
class FigureComparison:
    name: str
    current: float
    reference: float  # median of the history's values
    low: float  # the band: values inside [low, high] are unchanged
    high: float
    runs: int  # history values the reference and band come from
    status: Status
    alerts: bool = True
    past_low: float | None = None  # the history's lowest and highest values: how far the figure moved
    past_high: float | None = None  # between processes (runs), where its interval says within one


@dataclass
class CaseComparison:
    case_id: str
    status: Status
    figures: list[FigureComparison] = field(default_factory=list)
    detail: str = ""
    nodeid: str = ""
    confirmed: bool | None = None  # None: not re-measured; False: the re-measurement was back in its band
    # The latest run it was compared with (``compare --explain`` profiles against its code)
    good_run: RunRecord | None = field(default=None, repr=False, compare=False)
    explanation: dict[str, Any] | None = None  # ``compare --explain``: the op-by-op diff, or why there is none

    @property
    def reproduce(self) -> str:
        """The command that re-runs this case locally."""
        return f"pytest '{self.nodeid}'" if self.nodeid else ""


@dataclass
class Comparison:
    current: Path | None
    history_runs: int  # comparable runs used
    excluded: list[str]  # "file: reason" for history runs that were not comparable
    cases: list[CaseComparison]
    last: int = 5
    notes: list[str] = field(default_factory=list)  # skipped and ignored files of the history directory
    acceptances: list[Acceptance] = field(default_factory=list)  # those that apply to this run
    hardware_class: dict[str, str] = field(default_factory=dict)  # the compared run's: {"cpu": ..., "cuda": ...}

    @property
    def regressions(self) -> list[CaseComparison]:
        """Regressions and failures that count: confirmed ones, or every one where nothing was re-measured."""
        return [c for c in self.cases if c.status in COUNTED and c.confirmed is not False]

    def exit_code(self) -> int:
        """0: nothing regressed or failed; 1: at least one did (new, missing, incomparable never count)."""
        return 1 if self.regressions else 0

    def confirm(self, rerun: Callable[[list[str]], RunRecord], history: Sequence[tuple[Path, RunRecord]]) -> None:
        """Re-measure the suspects, regressed or failed (``rerun`` runs those tests alone, with the run's
        own settings, and returns their record), and keep one only if the re-measurement regresses or
        fails too: one noisy night or one flaky crash never raises an alert."""
        suspects = [c for c in self.cases if c.status in COUNTED and c.nodeid]
        if not suspects:
            return
        repeated = compare_run(rerun(sorted({c.nodeid for c in suspects})), history, self.last).cases
        again = {c.case_id: c for c in repeated}
        for case in suspects:
            repeat = again.get(case.case_id)
            case.confirmed = repeat is not None and repeat.status in COUNTED
            again_failed = repeat is not None and repeat.status == Status.FAILED
            case.detail = (
                f"confirmed: the re-measurement {'failed' if again_failed else 'regressed'} too"
                if case.confirmed
                else f"not confirmed: re-measured as {repeat.status if repeat else 'not measured'} (a one-run blip)"
            )

    def counts(self) -> str:
        """How many cases have each status, e.g. "1 regression, 11 unchanged, 2 missing"."""
        found = {s: sum(c.status == s for c in self.cases) for s in Status}
        return ", ".join(f"{n} {s}" for s, n in found.items() if n)

    def to_dict(self) -> dict[str, Any]:
        """The comparison as data, for scripts that act on it (alerting)."""
        return {
            "hardware_class": self.hardware_class,
            "runner_class": runner_class(self.hardware_class),
            "history_runs": self.history_runs,
            "excluded": self.excluded,
            "notes": self.notes,
            "acceptances": [a.to_dict() for a in self.acceptances],
            "cases": [
                {
                    "case_id": c.case_id, "status": str(c.status), "confirmed": c.confirmed, "detail": c.detail,
                    "reproduce": c.reproduce, "figures": [{**vars(f), "status": str(f.status)} for f in c.figures],
                    **({"explain": c.explanation} if c.explanation is not None else {}),
                }
                for c in self.cases
            ],
        }  # fmt: skip

    def markdown(self) -> str:
        out = [
            "# perfgate compare",
            "",
            f"Each case against the median of up to the last {self.last} comparable runs in the history "
            f"({self.history_runs} used); bands from their spread, at least 10% for speed and memory ratios. "
            "Absolute latencies are shown, never an alert on their own.",
            f"Hardware class {runner_class(self.hardware_class)}: {self.counts()}"
            if self.hardware_class
            else self.counts(),
        ]
        if self.excluded:
            out += ["", "Not comparable (left out):", *[f"- {line}" for line in self.excluded]]
        if self.notes:
            out += ["", "History directory:", *[f"- {line}" for line in self.notes]]
        if self.acceptances:
            out += ["", "Accepted as the new baseline:"]
            out += [f"- {', '.join(f'`{c}`' for c in a.cases)} from {a.run} on, by {a.who} ({a.when}): {a.reason}"
                    for a in self.acceptances]  # fmt: skip
        out += [
            "",
            "| case | status | figure | figure status | now | reference [band] | runs | detail |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for case in sorted(self.cases, key=lambda c: (list(Status).index(c.status), c.case_id)):
            rows: list[FigureComparison | None] = [*case.figures] or [None]
            for figure in rows:
                cells = (
                    ["-", "-", "-", "-", "-"]
                    if figure is None
                    else [
                        figure.name,
                        str(figure.status) + ("" if figure.alerts else " (shown, not alerting)"),
                        f"{figure.current:.4g}",
                        f"{figure.reference:.4g} [{figure.low:.4g}, {figure.high:.4g}]",
                        str(figure.runs),
                    ]
                )
                status = f"{case.status}" + {None: "", True: " (confirmed)", False: " (not confirmed)"}[case.confirmed]
                out.append(f"| `{case.case_id}` | {status} | " + " | ".join(cells) + f" | {case.detail} |")
        flagged = [c for c in self.cases if c.reproduce and c.status in (Status.REGRESSION, Status.IMPROVEMENT)]
        if flagged:
            out += ["", "Reproduce locally:", ""]
            out += [f"- `{c.case_id}` ({c.status}): `{c.reproduce}`" for c in flagged]
        explained = [(c.case_id, c.explanation) for c in self.cases if c.explanation is not None]
        if explained:
            out += ["", "## Where the time went (`--explain`)", ""]
            out += [note.get("markdown") or f"- `{name}`: not explained: {note['why']}\n" for name, note in explained]
        return "\n".join(out) + "\n"


def compare_run(
    current: RunRecord, history: Sequence[tuple[Path, RunRecord]], last: int = 5, current_path: Path | None = None,
    *, report_missing: bool = True,
) -> Comparison:  # fmt: skip
    """Each case of ``current`` against its reference in the comparable runs of ``history``. A shard of a
    night (``report_missing=False``) measured only part of the selection: what it lacks is not missing."""
    if not isinstance(history, History):
        history = History(list(history))
    excluded, usable = [], []
    for path, run in history.runs:
        reason = incompatibility(current.fingerprint, run.fingerprint) or settings_difference(current, run)
        if reason:
            excluded.append(f"{path.name}: {reason}")
        else:
            usable.append(run)
    now = run_instant(current.started)
    acceptances = [a for a in history.acceptances if run_instant(a.since) <= now]
    classes = {k: str(v) for k, v in current.fingerprint.get("hardware_class", {}).items()}
    if not usable:
        status = Status.INCOMPARABLE if excluded else Status.NEW
        reason = f"no comparable run in the history ({excluded[-1]})" if excluded else "the history is empty"
        cases = [
            _failed(case)
            if case.outcome != Outcome.MEASURED
            else CaseComparison(case.spec.case_id, status, detail=reason)
            for case in current.cases
        ]
        return Comparison(current_path, 0, excluded, cases, last, history.notes(), acceptances, classes)
    compared: list[CaseComparison] = []
    used: set[int] = set()
    for case in current.cases:
        reference = _reference(case, usable, acceptances, last)
        used.update(id(run) for run, _ in reference)
        compared.append(_compare_case(case, [found for _, found in reference]))
        compared[-1].good_run = reference[-1][0] if reference else None
    if report_missing:
        seen = {case.spec.case_id for case in current.cases}
        latest = {case.spec.case_id for case in usable[-1].cases}
        compared += [
            CaseComparison(case_id, Status.MISSING, detail="in the latest comparable run, not in this one")
            for case_id in sorted(latest - seen)
        ]
    return Comparison(current_path, len(used), excluded, compared, last, history.notes(), acceptances, classes)


def _reference(
    case: CaseResult, usable: list[RunRecord], acceptances: list[Acceptance], last: int
) -> list[tuple[RunRecord, CaseResult]]:
    """The runs a case compares with: the latest ``last`` that measured it at the same thread count, after
    its latest acceptance, leaving out the nights its comparison counted as regressed or failed (the
    accepted run itself stays)."""
    case_id = case.spec.case_id
    accepted = [a.since for a in acceptances if case_id in a.cases]
    since = max(accepted, key=run_instant) if accepted else None
    chosen = []
    for run in usable:
        if since is not None and run_instant(run.started) < run_instant(since):
            continue
        found = next((c for c in run.cases if c.spec.case_id == case_id), None)
        if found is None or found.outcome != Outcome.MEASURED or found.threads != case.threads:
            continue
        mark = (run.against_history or {}).get(case_id) or {}
        counted = mark.get("status") in COUNTED and mark.get("confirmed") is not False
        if counted and run.started != since:
            continue
        chosen.append((run, found))
    return chosen[-last:]


def _failed(case: CaseResult) -> CaseComparison:
    detail = f"no result: outcome {case.outcome}" + (f" ({case.detail[:120]})" if case.detail else "")
    return CaseComparison(case.spec.case_id, Status.FAILED, detail=detail, nodeid=case.nodeid)


def _compare_case(case: CaseResult, past: list[CaseResult]) -> CaseComparison:
    if case.outcome != Outcome.MEASURED:
        return _failed(case)
    measured = past
    if not measured:
        detail = "not measured in the comparable history (at this thread count, since its acceptance)"
        return CaseComparison(case.spec.case_id, Status.NEW, detail=detail, nodeid=case.nodeid)
    figures = []
    for tracked in TRACKED:
        value = tracked.read(case)
        values = [v for p in measured if (v := tracked.read(p)) is not None]
        if value is None or not values:
            continue
        own = tracked.interval(case) if tracked.interval else None
        figures.append(_compare_figure(tracked, value, values, own))
    statuses = {f.status for f in figures if f.alerts}
    status = next((s for s in (Status.REGRESSION, Status.IMPROVEMENT) if s in statuses), Status.UNCHANGED)
    detail = ""
    if status == Status.IMPROVEMENT:
        detail = "improved beyond its band: the baseline is stale; store this run once the gain is confirmed"
    return CaseComparison(case.spec.case_id, status, figures, detail, case.nodeid)


def _compare_figure(
    tracked: Tracked, value: float, values: list[float], own: tuple[float, float] | None = None
) -> FigureComparison:
    """The band around the history's median: 3 robust sigmas of the runs' spread (between-run variation,
    as the nights measured it) combined in quadrature with this run's own relative half-width (a run
    measured to ±15% cannot show a 12% move), never narrower than the figure's floor."""
    reference = statistics.median(values)
    sigma = 1.4826 * statistics.median([abs(v - reference) for v in values])  # robust: one wild night
    if tracked.absolute:
        half = max(tracked.floor, 3 * sigma)
        low, high = reference - half, reference + half
    else:
        # A ratio's band is a half-width in log space, as its interval's is: a run measured to 0.5x-2x
        # spreads as far below as above, and no half-width takes the band down to 0 (a linear one did at
        # an interval spanning 7.4x, where then no regression could show).
        between = math.log1p(3 * sigma / reference) if reference else 0.0
        within = math.log(own[1] / own[0]) / 2 if own else 0.0
        half = max(math.log1p(tracked.floor), math.hypot(between, within))
        low, high = reference * math.exp(-half), reference * math.exp(half)
    if low <= value <= high:
        status = Status.UNCHANGED
    else:
        better = value > high if tracked.higher_is_better else value < low
        status = Status.IMPROVEMENT if better else Status.REGRESSION
    return FigureComparison(
        tracked.name, value, reference, low, high, len(values), status, tracked.alerts, min(values), max(values)
    )


def rerun_tests(
    nodeids: list[str], settings: dict[str, Any] | None = None, *, cwd: Path | None = None,
    python: str | None = None, quiet: bool = False, markexpr: str = "",
) -> RunRecord:  # fmt: skip
    """Run these tests alone in a fresh pytest process (``python``, default this interpreter, in ``cwd``),
    with the given perfgate settings, and return their record: the re-measurement a suspected regression
    needs before it is believed (``compare --confirm``), and each step of ``perfgate bisect --git``.
    ``markexpr`` is the original run's ``-m``: the plugin skips a ``slow`` test unless the expression
    names it, so a nightly case is re-run under the nightly's expression. ``quiet`` keeps pytest's
    output, which then only names the cause when no record was written. Its report folder is scratch:
    no report.html is drawn there."""
    import subprocess
    import sys
    import tempfile

    from perfgate.errors import PerfgateError

    flags = [
        f"--perfgate-{name.replace('_', '-')}={value}"
        for name, value in (settings or {}).items()
        if value is not None and str(value) != "None"
    ]
    with tempfile.TemporaryDirectory(prefix="perfgate-confirm-") as scratch:
        command = [python or sys.executable, "-m", "pytest", *nodeids, *flags, f"--perfgate-report-dir={scratch}",
                   "--perfgate-html=off", "-q", "-p", "no:randomly",
                   *(["-m", markexpr] if markexpr else [])]  # fmt: skip
        if not quiet:
            print("re-measuring:", " ".join(command), file=sys.stderr)
        # A failing gate is expected here: the record is what counts.
        done = subprocess.run(command, cwd=cwd, check=False, capture_output=quiet, text=True)
        results = Path(scratch) / "results.json"
        if not results.is_file():
            tail = " ".join(((done.stdout or "") + (done.stderr or "")).strip().splitlines()[-3:])
            raise PerfgateError(
                f"pytest {' '.join(nodeids)} recorded no results (exit {done.returncode}) {tail}".strip()
            )
        return RunRecord.load(results)
