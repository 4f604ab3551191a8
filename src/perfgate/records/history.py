"""History: past runs in an append-only directory, read back, stored and accepted.

A history directory is what CI leaves: each night's artifact holds its ``results.json`` beside
``compare.json``, ``summary.md`` and the report. Only results-shaped JSON is read as a run (perfgate's:
``schema_version`` and ``cases``; pytest-benchmark's: ``machine_info`` and ``benchmarks``); other JSON
is ignored with one note, and a results-shaped file that does not load is skipped with a warning naming
it: one bad artifact never stops every later night. Cases a night's comparison confirmed as regressed
stay out of the reference until the team accepts them (``perfgate accept``: a marker file in the
history), from which run on they compare with their new figures. The comparison of a run against
the history is ``regressions.py``.
"""

from __future__ import annotations

import datetime
import getpass
import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfgate.errors import ConfigError, ResultsFileError
from perfgate.records.results import RunRecord, write_atomically

__all__ = [
    "Acceptance",
    "History",
    "accept_cases",
    "incompatibility",
    "load_history",
    "load_run",
    "run_instant",
    "runner_class",
    "store_run",
]

# Libraries whose major.minor decides which kernels run: a change makes runs incomparable.


KERNEL_LIBRARIES = ("torch", "transformers", "onnxruntime", "optimum", "bitsandbytes", "torchao")


# Settings that decide what a figure is: another thread count or stopping policy measures something else.
MEASUREMENT_SETTINGS = ("threads", "budget", "min_pairs", "precision")


HISTORY_FIX = "move it out of the history directory, or leave it: it is skipped"


@dataclass(frozen=True)
class Acceptance:
    """The team's decision that some cases' new figures are their baseline, from one run on."""

    cases: tuple[str, ...]
    since: str  # the accepted run's ``started``: from that run on, these cases compare with newer runs only
    run: str  # the accepted run's file name, for the record
    reason: str
    who: str
    when: str

    MARK = "perfgate_acceptance"  # the key that makes a JSON file in the history an acceptance

    def to_dict(self) -> dict[str, Any]:
        return {self.MARK: 1, "cases": list(self.cases), "since": self.since, "run": self.run,
                "reason": self.reason, "who": self.who, "when": self.when}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Acceptance:
        return cls(tuple(data["cases"]), data["since"], data["run"], data["reason"], data["who"], data["when"])

    @property
    def key(self) -> str:
        """The same acceptance copied into several nights' artifacts is one acceptance."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class History(Sequence[tuple[Path, RunRecord]]):
    """The runs of a history directory, oldest first, and what else it held."""

    runs: list[tuple[Path, RunRecord]]
    skipped: list[str] = field(default_factory=list)  # "file: problem": results-shaped, did not load
    ignored: list[str] = field(default_factory=list)  # other JSON (a night's compare.json, ...)
    acceptances: list[Acceptance] = field(default_factory=list)

    def __getitem__(self, index: Any) -> Any:
        return self.runs[index]

    def __len__(self) -> int:
        return len(self.runs)

    def without(self, path: Path) -> History:
        """This history less one file: the run being compared may sit in it (a .benchmarks directory)."""
        runs = [(p, run) for p, run in self.runs if p.resolve() != path.resolve()]
        return History(runs, self.skipped, self.ignored, self.acceptances)

    def notes(self) -> list[str]:
        """What a reader of the comparison must know about the directory, one line each."""
        lines = [f"skipped (did not load): {problem}" for problem in self.skipped]
        if self.ignored:
            names = ", ".join(self.ignored[:5]) + (
                f" and {len(self.ignored) - 5} more" if len(self.ignored) > 5 else ""
            )
            lines.append(f"ignored {len(self.ignored)} JSON file(s) that are not results: {names}")
        return lines


def runner_class(hardware_class: dict[str, str]) -> str:
    """The class that names a runner in issues and summaries: its GPU's where it has one, else its CPU's."""
    cuda = hardware_class.get("cuda")
    return cuda if cuda and cuda != "gpu-none" else hardware_class.get("cpu", "unknown")


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


def settings_difference(current: RunRecord, other: RunRecord) -> str | None:
    """Which measurement setting two runs differ in (threads, budget, stopping policy), or None."""
    for name in MEASUREMENT_SETTINGS:
        mine, theirs = current.config.get(name, "None"), other.config.get(name, "None")
        if str(mine) != str(theirs):
            return f"{name}={theirs} there, {mine} here (another setting measures another figure)"
    return None


def _placement(fingerprint: dict[str, Any]) -> str:
    """How the timed baseline's weights lived; runs recorded before it was recorded served them mapped."""
    return str(fingerprint.get("baseline_placement", {}).get("weights", "mapped"))


def _major_minor(version: str | None) -> tuple[str, ...] | None:
    return None if version is None else tuple(re.split(r"[.+]", version)[:2])


def load_run(path: Path) -> RunRecord:
    """A perfgate results file, or a pytest-benchmark saved run (recognised by its keys)."""
    from perfgate.records.pytest_benchmark import is_benchmark_run, load_benchmark_run

    try:
        if is_benchmark_run(json.loads(path.read_text())):
            return load_benchmark_run(path)
    except (OSError, UnicodeDecodeError, ValueError):
        pass  # RunRecord.load names the problem
    return RunRecord.load(path)


def _kind(data: Any) -> str:
    """What a parsed JSON file of a history directory is: "results", "acceptance" or "other"."""
    from perfgate.records.pytest_benchmark import is_benchmark_run

    if not isinstance(data, dict):
        return "other"
    if Acceptance.MARK in data:
        return "acceptance"
    if ("schema_version" in data and "cases" in data) or is_benchmark_run(data):
        return "results"
    return "other"


def load_history(directory: Path) -> History:
    """Every results file in ``directory`` (perfgate's or pytest-benchmark's, in subdirectories too, as
    ``.benchmarks/<machine>/`` and downloaded artifacts keep them), oldest first, with the acceptances
    kept there. Other JSON is ignored; a file that does not load is skipped and named in ``skipped``."""
    if not directory.is_dir():
        raise ConfigError(f"history directory {str(directory)!r} does not exist; create it or store a run first")
    history = History([])
    seen: set[str] = set()
    for path in sorted(directory.rglob("*.json")):
        name = str(path.relative_to(directory))
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as error:
            history.skipped.append(f"{name}: not readable JSON ({error})")
            continue
        kind = _kind(data)
        if kind == "other":
            history.ignored.append(name)
        elif kind == "acceptance":
            try:
                acceptance = Acceptance.from_dict(data)
            except (KeyError, TypeError) as error:
                history.skipped.append(f"{name}: an acceptance missing {error}")
                continue
            if acceptance.key not in seen:
                seen.add(acceptance.key)
                history.acceptances.append(acceptance)
        else:
            try:
                history.runs.append((path, load_run(path)))
            except ResultsFileError as error:
                history.skipped.append(f"{name}: {error.problem}")
    history.runs.sort(key=lambda run: run_instant(run[1].started))
    return history


def run_instant(stamp: str) -> datetime.datetime:
    """A run's start as an aware datetime (stamps without a zone are UTC), for ordering runs; a saved
    pytest-benchmark run without a readable ``datetime`` sorts first rather than failing the history."""
    try:
        parsed = datetime.datetime.fromisoformat(stamp)
    except ValueError:
        return datetime.datetime.min.replace(tzinfo=datetime.UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


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


def accept_cases(
    case_ids: Sequence[str], history: History, reason: str, who: str | None = None, run: Path | None = None
) -> Acceptance:
    """An acceptance of these cases' figures in ``run`` (default: the newest run of the history that has
    them all) as their baseline from then on. Unknown case ids are an error listing the run's cases."""
    if not reason.strip():
        raise ConfigError("--reason is empty: say why the new figures are accepted (it is quoted in the alert)")
    if run is not None:
        chosen: tuple[Path, RunRecord] | None = (run, load_run(run))
    else:
        wanted = set(case_ids)
        having = [entry for entry in history.runs if wanted <= {c.spec.case_id for c in entry[1].cases}]
        chosen = having[-1] if having else (history.runs[-1] if history.runs else None)
    if chosen is None:
        raise ConfigError("the history holds no run to accept: store or fetch the regressed night's results first")
    path, record = chosen
    known = sorted({case.spec.case_id for case in record.cases})
    unknown = [case_id for case_id in case_ids if case_id not in known]
    if unknown:
        raise ConfigError(
            f"case id(s) {', '.join(map(repr, unknown))} are not in run {str(path)!r}; its cases: {', '.join(known)}"
        )
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return Acceptance(tuple(case_ids), record.started, path.name, reason.strip(), who or _who(), now)


def _who() -> str:
    """Who accepts: the GitHub actor in a workflow, else git's user name, else the login."""
    if os.environ.get("GITHUB_ACTOR"):
        return os.environ["GITHUB_ACTOR"]
    import subprocess

    try:
        name = subprocess.run(["git", "config", "user.name"], capture_output=True, text=True, check=False).stdout
    except OSError:
        name = ""
    return name.strip() or getpass.getuser()
