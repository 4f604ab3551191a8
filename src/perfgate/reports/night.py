"""``perfgate join-night``: one nightly run from its shards, when the shards may have run on machines of
different hardware classes (hosted runner pools mix AMD EPYC with AVX2 and Intel Xeon with AVX-512).

Each shard compared its own cases with the history of its own class, and re-measured its suspects on
the machine that measured them, before it uploaded (``perfgate compare --shard --confirm --annotate``):
confirmation never crosses classes. The join then

- groups the shards by hardware class and joins each group into ``OUTPUT/<class>/results.json``, with
  the shards' verdicts against history kept, so each class's night enters that class's history; a
  shard that was not compared (its history could not be fetched, its compare step did not finish)
  stays out of the history, where its uncompared figures could hide a regression from later nights;
- puts the shards' comparisons side by side in ``OUTPUT/compare.json`` (each case with its class, for
  the alerting script) and a Markdown summary with a section per class;
- names the cases of the latest night of each class that no shard measured tonight (*missing*: never a
  regression, never a clean night), the shards that uploaded nothing, and every reason the night is
  red, so a red night always says why.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfgate.errors import ResultsFileError
from perfgate.instruments.outcome import Outcome
from perfgate.records.history import History, runner_class
from perfgate.records.regressions import COUNTED
from perfgate.records.results import RunRecord, write_atomically
from perfgate.reports.merge import join_shards

__all__ = ["Night", "ShardUpload", "join_night", "read_shard"]

RESULTS, COMPARISON = "results.json", "compare.json"
FETCH_FAILED = "FAILED: "  # scripts/fetch_history.sh's mark on a line that says why no history was fetched


@dataclass
class ShardUpload:
    """What one shard's job uploaded: its results (annotated when compared) and its comparison."""

    name: str
    folder: Path
    record: RunRecord | None
    comparison: dict[str, Any] | None
    problem: str = ""  # why it holds no usable results or comparison

    @property
    def runner_class(self) -> str:
        assert self.record is not None
        return runner_class(self.record.fingerprint.get("hardware_class", {}))


def read_shard(folder: Path) -> ShardUpload:
    """A shard's artifact folder; a file that does not load is a named problem, never an exception."""
    record: RunRecord | None = None
    comparison: dict[str, Any] | None = None
    problem = ""
    if (folder / RESULTS).is_file():
        try:
            record = RunRecord.load(folder / RESULTS)
        except ResultsFileError as error:
            problem = f"its {RESULTS} does not load ({error.problem})"
    else:
        problem = f"it holds no {RESULTS}: pytest ended before its first case"
    if record is not None:
        try:
            loaded = json.loads((folder / COMPARISON).read_text())
            comparison = loaded if isinstance(loaded, dict) and "cases" in loaded else None
        except FileNotFoundError:
            problem = "it was not compared with its class's history (no compare.json: see that job's log)"
        except (OSError, ValueError) as error:
            problem = f"its {COMPARISON} is not readable JSON ({error})"
        if comparison is None and not problem:
            problem = f"its {COMPARISON} is not a comparison"
    return ShardUpload(folder.name, folder, record, comparison, problem)


@dataclass
class Night:
    classes: dict[str, RunRecord]  # runner class -> the compared shards of that class, joined
    cases: list[dict[str, Any]]  # every compared case, with its runner class, then the missing ones
    acceptances: list[dict[str, Any]]
    red: list[str]  # why the night is red, one line each; empty: nothing in the results makes it red
    notes: list[str] = field(default_factory=list)  # shards left out, the history fetch
    uncompared: dict[str, str] = field(default_factory=dict)  # shard name -> why it stays out of history

    def to_dict(self) -> dict[str, Any]:
        return {"classes": sorted(self.classes), "red": self.red, "notes": self.notes,
                "uncompared": self.uncompared, "acceptances": self.acceptances, "cases": self.cases}  # fmt: skip

    def markdown(self) -> str:
        out = ["# perfgate nightly", ""]
        if self.red:
            out += ["**This night is red because:**", "", *[f"- {line}" for line in self.red], ""]
        else:
            out += ["Nothing in tonight's results makes the night red.", ""]
        if self.notes:
            out += [*[f"- {line}" for line in self.notes], ""]
        by_class: dict[str, list[dict[str, Any]]] = {}
        for case in self.cases:
            by_class.setdefault(case["runner_class"], []).append(case)
        for name in sorted(by_class):
            cases = by_class[name]
            counts: dict[str, int] = {}
            for case in cases:
                counts[case["status"]] = counts.get(case["status"], 0) + 1
            out += [f"## {name}", "", ", ".join(f"{n} {status}" for status, n in sorted(counts.items())), ""]
            flagged = [c for c in cases if c["status"] not in ("unchanged", "new")]
            if flagged:
                out += ["| case | status | detail |", "|---|---|---|"]
                for case in sorted(flagged, key=lambda c: (c["status"], c["case_id"])):
                    confirmed = {None: "", True: " (confirmed)", False: " (not confirmed)"}[case.get("confirmed")]
                    out.append(f"| `{case['case_id']}` | {case['status']}{confirmed} | {case.get('detail', '')} |")
                out.append("")
        return "\n".join(out) + "\n"

    def write(self, output: Path) -> None:
        for name, record in self.classes.items():
            record.save(output / name / RESULTS)
        write_atomically(output / COMPARISON, json.dumps(self.to_dict(), indent=1))


def _shard_number(name: str) -> int | None:
    found = re.search(r"(\d+)$", name)
    return int(found.group(1)) if found else None


def _gate_failures(record: RunRecord) -> list[str]:
    """Cases that did not measure or failed their gate unexpectedly: the shard's pytest run was red."""
    lines = []
    for case in record.cases:
        if case.outcome != Outcome.MEASURED or (str(case.verdict) == "fail" and not case.expected_failure):
            lines.append(f"`{case.spec.case_id}`: {case.outcome}, verdict {case.verdict}")
    return lines


def _latest_cases(history: History) -> dict[str, str]:
    """Case id -> runner class, from the latest run of each class in the history."""
    latest: dict[str, RunRecord] = {}
    for _, run in history.runs:  # oldest first: the last one of a class wins
        latest[runner_class(run.fingerprint.get("hardware_class", {}))] = run
    found: dict[str, str] = {}
    for name, run in latest.items():
        for case in run.cases:
            found.setdefault(case.spec.case_id, name)
    return found


def join_night(shards: Sequence[ShardUpload], expected: int, history: History | None, fetch_note: str = "") -> Night:
    """The night from its shards' uploads; ``expected`` is how many shards the matrix started."""
    red: list[str] = []
    notes: list[str] = []
    for line in fetch_note.splitlines():
        if line.startswith(FETCH_FAILED):
            red.append(f"the history could not be fetched: {line.removeprefix(FETCH_FAILED)}")
        elif line.strip():
            notes.append(f"history: {line}")
    present = {n for s in shards if (n := _shard_number(s.name)) is not None}
    absent = [number for number in range(1, expected + 1) if number not in present]
    for number in absent:
        red.append(f"shard {number} of {expected} uploaded nothing: its job died or was stopped before the upload")
    uncompared: dict[str, str] = {}
    groups: dict[str, list[ShardUpload]] = {}
    measured: set[str] = set()
    for shard in shards:
        if shard.record is None:
            red.append(f"shard {shard.name}: {shard.problem}")
            continue
        measured |= {case.spec.case_id for case in shard.record.cases}
        red += [f"{shard.runner_class}: {line} (shard {shard.name})" for line in _gate_failures(shard.record)]
        if shard.comparison is None:
            uncompared[shard.name] = shard.problem
            red.append(
                f"shard {shard.name} ({shard.runner_class}): {shard.problem}; its results stay out of the history"
            )
            continue
        groups.setdefault(shard.runner_class, []).append(shard)
    classes: dict[str, RunRecord] = {}
    cases: list[dict[str, Any]] = []
    acceptances: dict[str, dict[str, Any]] = {}
    for name, group in sorted(groups.items()):
        classes[name] = join_shards([(s.folder / RESULTS, s.record) for s in group if s.record is not None])
        for shard in group:
            assert shard.comparison is not None
            for acceptance in shard.comparison.get("acceptances", []):
                acceptances.setdefault(json.dumps(acceptance, sort_keys=True), acceptance)
            for case in shard.comparison["cases"]:
                entry = {**case, "runner_class": name, "shard": shard.name}
                cases.append(entry)
                if case["status"] in COUNTED and case.get("confirmed") is not False:
                    detail = str(case.get("detail", "")).removeprefix("confirmed: ")
                    how = ", confirmed on the machine that measured it" if case.get("confirmed") else ""
                    said = f" ({detail})" if detail else ""
                    red.append(f"{name}: `{case['case_id']}` {case['status']}{how}{said}")
    if len(groups) > 1:
        notes.append(
            f"the shards ran on {len(groups)} hardware classes ({', '.join(sorted(groups))}): each case was "
            "compared with the history of its own class"
        )
    if history is not None:
        for case_id, name in sorted(_latest_cases(history).items()):
            if case_id not in measured:
                cases.append({"case_id": case_id, "status": "missing", "confirmed": None, "runner_class": name,
                              "detail": f"measured in {name}'s latest night, by no shard tonight",
                              "reproduce": "", "figures": []})  # fmt: skip
    return Night(classes, cases, list(acceptances.values()), red, notes, uncompared)
