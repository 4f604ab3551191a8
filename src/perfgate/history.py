"""History: past runs in an append-only directory, and the noise-aware comparison of a run against it.

What is compared is what stays stable across processes: each case's same-process *ratio* against fp32
(speedup: both arms shared that night's noise), its fidelity and its memory ratio. Per case and figure
the reference is the median of the last ``last`` comparable runs that measured it, and the band comes
from their spread: ``max(floor, 3 x robust sigma)`` (sigma from the median absolute deviation, which
one wild night does not inflate). The floors are measured: the same-process MiniLM ratios moved 7%
between runs days apart on one CPU class (ONNX Runtime O2+int8 3.46x -> 3.71x), so a speedup must
move more than 10% before it is called a change.

Runs compare only within one hardware class and compatible library versions (same major.minor of the
libraries that decide kernels); a run that is not comparable is reported as *incomparable* with the
reason, never as a regression. Cases only in the run are *new*; cases only in the history are
*missing*; neither counts as a regression.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from perfgate.case import CaseResult
from perfgate.errors import ConfigError, ResultsFileError
from perfgate.outcome import Outcome
from perfgate.results import RunRecord, write_atomically

__all__ = [
    "TRACKED",
    "CaseComparison",
    "Comparison",
    "Status",
    "Tracked",
    "compare_run",
    "incompatibility",
    "load_history",
    "load_run",
    "store_run",
]

# Libraries whose major.minor decides which kernels run: a change makes runs incomparable.
KERNEL_LIBRARIES = ("torch", "transformers", "onnxruntime", "optimum", "bitsandbytes", "torchao")


class Status(StrEnum):
    REGRESSION = "regression"
    IMPROVEMENT = "improvement"
    UNCHANGED = "unchanged"
    NEW = "new"
    MISSING = "missing"
    INCOMPARABLE = "incomparable"


@dataclass(frozen=True)
class Tracked:
    """A figure compared across runs: how to read it, which way is better, and its band floor."""

    name: str
    read: Callable[[CaseResult], float | None]
    higher_is_better: bool
    floor: float  # the narrowest band: relative (0.10 = 10%) or, when ``absolute``, in the figure's units
    absolute: bool = False


def _path(*keys: str) -> Callable[[CaseResult], float | None]:
    def read(case: CaseResult) -> float | None:
        value: Any = case.metrics
        for key in keys:
            if not isinstance(value, dict) or value.get(key) is None:
                return None
            value = value[key]
        return float(value)

    return read


TRACKED = (
    Tracked("speedup", _path("speed", "estimate", "speedup"), higher_is_better=True, floor=0.10),
    Tracked("cosine_min", _path("fidelity", "cosine_min"), higher_is_better=True, floor=0.005, absolute=True),
    Tracked("memory_ratio", _path("memory", "ratio"), higher_is_better=False, floor=0.10),
    # Absolute times cross processes: ±15-20% measured between back-to-back runs on one machine.
    Tracked("latency_p50", _path("speed", "latency", "candidate", "p50"), higher_is_better=False, floor=0.20),
    Tracked("benchmark_p50", _path("latency", "p50"), higher_is_better=False, floor=0.20),  # pytest-benchmark
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


@dataclass
class CaseComparison:
    case_id: str
    status: Status
    figures: list[FigureComparison] = field(default_factory=list)
    detail: str = ""
    nodeid: str = ""
    confirmed: bool | None = None  # None: not re-measured; False: the re-measurement was back in its band

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

    @property
    def regressions(self) -> list[CaseComparison]:
        """Regressions that count: confirmed ones, or every one where nothing was re-measured."""
        return [c for c in self.cases if c.status == Status.REGRESSION and c.confirmed is not False]

    def exit_code(self) -> int:
        """0: nothing regressed; 1: at least one regression (new, missing, incomparable never count)."""
        return 1 if self.regressions else 0

    def confirm(self, rerun: Callable[[list[str]], RunRecord], history: Sequence[tuple[Path, RunRecord]]) -> None:
        """Re-measure the suspected regressions (``rerun`` runs those tests alone and returns their
        record) and keep a regression only if the re-measurement regresses too: one noisy night never
        raises an alert."""
        suspects = [c for c in self.cases if c.status == Status.REGRESSION and c.nodeid]
        if not suspects:
            return
        again = {
            c.case_id: c for c in compare_run(rerun(sorted({c.nodeid for c in suspects})), history, self.last).cases
        }
        for case in suspects:
            repeat = again.get(case.case_id)
            case.confirmed = repeat is not None and repeat.status == Status.REGRESSION
            case.detail = (
                "confirmed: the re-measurement regressed too"
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
            "history_runs": self.history_runs,
            "excluded": self.excluded,
            "cases": [
                {
                    "case_id": c.case_id, "status": str(c.status), "confirmed": c.confirmed, "detail": c.detail,
                    "reproduce": c.reproduce, "figures": [{**vars(f), "status": str(f.status)} for f in c.figures],
                }
                for c in self.cases
            ],
        }  # fmt: skip

    def markdown(self) -> str:
        out = [
            "# perfgate compare",
            "",
            f"Each case against the median of up to the last {self.last} comparable runs in the history "
            f"({self.history_runs} used); bands from their spread, at least 10% for speed and memory ratios.",
            self.counts(),
        ]
        if self.excluded:
            out += ["", "Not comparable (left out):", *[f"- {line}" for line in self.excluded]]
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
                        str(figure.status),
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
        return "\n".join(out) + "\n"


def incompatibility(current: dict[str, Any], other: dict[str, Any]) -> str | None:
    """Why two runs' fingerprints cannot be compared (hardware class, kernel library versions), or None."""
    mine, theirs = current.get("hardware_class", {}), other.get("hardware_class", {})
    if mine.get("cpu") != theirs.get("cpu") or mine.get("cuda") != theirs.get("cuda"):
        return f"hardware class {theirs} differs from this run's {mine}"
    libraries, others = current.get("libraries", {}), other.get("libraries", {})
    for name in KERNEL_LIBRARIES:
        if _major_minor(libraries.get(name)) != _major_minor(others.get(name)):
            return f"{name} {others.get(name)} differs from this run's {libraries.get(name)}"
    if _placement(current) != _placement(other):
        return (
            f"the fp32 baseline's weights were {_placement(other)} there and are {_placement(current)} here "
            "(placement alone moves every speedup by a few percent)"
        )
    return None


def _placement(fingerprint: dict[str, Any]) -> str:
    """How the timed baseline's weights lived; runs recorded before it was recorded served them mapped."""
    return str(fingerprint.get("baseline_placement", {}).get("weights", "mapped"))


def _major_minor(version: str | None) -> tuple[str, ...] | None:
    return None if version is None else tuple(re.split(r"[.+]", version)[:2])


def load_run(path: Path) -> RunRecord:
    """A perfgate results file, or a pytest-benchmark saved run (recognised by its keys)."""
    import json

    from perfgate.pytest_benchmark import is_benchmark_run, load_benchmark_run

    try:
        if is_benchmark_run(json.loads(path.read_text())):
            return load_benchmark_run(path)
    except (OSError, UnicodeDecodeError, ValueError):
        pass  # RunRecord.load names the problem
    return RunRecord.load(path)


def load_history(directory: Path) -> list[tuple[Path, RunRecord]]:
    """Every results file in ``directory`` (perfgate's or pytest-benchmark's, in subdirectories too, as
    ``.benchmarks/<machine>/`` keeps them), oldest first. A corrupt file is an error naming it: the
    history is not silently thinned."""
    if not directory.is_dir():
        raise ConfigError(f"history directory {str(directory)!r} does not exist; create it or store a run first")
    runs = []
    for path in sorted(directory.rglob("*.json")):
        try:
            runs.append((path, load_run(path)))
        except ResultsFileError as error:
            raise ResultsFileError(path, f"{error}; move it out of the history directory {str(directory)!r}") from None
    return sorted(runs, key=lambda run: run[1].started)


def store_run(results: Path, directory: Path) -> Path:
    """Add a results file to the history (validated first; never overwrites: the store is append-only)."""
    record = RunRecord.load(results)
    hardware = record.fingerprint.get("hardware_class", {}).get("cpu", "unknown")
    stamp = re.sub(r"[^0-9A-Za-z]+", "", record.started)
    target = directory / f"{stamp}-{hardware}.json"
    if target.exists():
        raise ConfigError(f"history file {str(target)!r} already exists: this run was stored before")
    write_atomically(target, results.read_text())
    return target


def compare_run(
    current: RunRecord, history: Sequence[tuple[Path, RunRecord]], last: int = 5, current_path: Path | None = None
) -> Comparison:
    excluded, usable = [], []
    for path, run in history:
        reason = incompatibility(current.fingerprint, run.fingerprint)
        if reason:
            excluded.append(f"{path.name}: {reason}")
        else:
            usable.append(run)
    usable = usable[-last:]
    if not usable:
        status = Status.INCOMPARABLE if excluded else Status.NEW
        reason = f"no comparable run in the history ({excluded[-1]})" if excluded else "the history is empty"
        cases = [CaseComparison(c.spec.case_id, status, detail=reason) for c in current.cases]
        return Comparison(current_path, 0, excluded, cases, last)
    past: dict[str, list[CaseResult]] = {}
    for run in usable:
        for case in run.cases:
            past.setdefault(case.spec.case_id, []).append(case)
    compared = [_compare_case(case, past.get(case.spec.case_id, [])) for case in current.cases]
    seen = {case.spec.case_id for case in current.cases}
    latest = {case.spec.case_id for case in usable[-1].cases}
    compared += [
        CaseComparison(case_id, Status.MISSING, detail="in the latest comparable run, not in this one")
        for case_id in sorted(latest - seen)
    ]
    return Comparison(current_path, len(usable), excluded, compared, last)


def _compare_case(case: CaseResult, past: list[CaseResult]) -> CaseComparison:
    measured = [p for p in past if p.outcome == Outcome.MEASURED]
    if not past:
        return CaseComparison(case.spec.case_id, Status.NEW, detail="not in the history", nodeid=case.nodeid)
    if case.outcome != Outcome.MEASURED:
        status = Status.REGRESSION if measured else Status.UNCHANGED
        detail = f"outcome {case.outcome}: {case.detail[:120]}"
        return CaseComparison(case.spec.case_id, status, detail=detail, nodeid=case.nodeid)
    figures = []
    for tracked in TRACKED:
        value = tracked.read(case)
        values = [v for p in measured if (v := tracked.read(p)) is not None]
        if value is None or not values:
            continue
        figures.append(_compare_figure(tracked, value, values))
    statuses = {f.status for f in figures}
    status = next((s for s in (Status.REGRESSION, Status.IMPROVEMENT) if s in statuses), Status.UNCHANGED)
    detail = ""
    if status == Status.IMPROVEMENT:
        detail = "improved beyond its band: the baseline is stale; store this run once the gain is confirmed"
    return CaseComparison(case.spec.case_id, status, figures, detail, case.nodeid)


def _compare_figure(tracked: Tracked, value: float, values: list[float]) -> FigureComparison:
    reference = statistics.median(values)
    sigma = 1.4826 * statistics.median([abs(v - reference) for v in values])  # robust: one wild night
    if tracked.absolute:
        half = max(tracked.floor, 3 * sigma)
        low, high = reference - half, reference + half
    else:
        half = max(tracked.floor, 3 * sigma / reference if reference else tracked.floor)
        low, high = reference * (1 - half), reference * (1 + half)
    if low <= value <= high:
        status = Status.UNCHANGED
    else:
        better = value > high if tracked.higher_is_better else value < low
        status = Status.IMPROVEMENT if better else Status.REGRESSION
    return FigureComparison(tracked.name, value, reference, low, high, len(values), status)
