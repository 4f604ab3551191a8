"""``perfgate thresholds derive``: the hardware-dependent thresholds of one class, from stored runs.

A team gates a new runner by running the suite nightly for a few nights (``perfgate store`` fills a
history directory), then deriving that class's file, reviewing the diff and committing it. Each value
follows its field's rule (``fields.FIELDS[...].rule``, the rules the project's own file was written
by) over every comparable run that measured it, and carries a comment naming the values and runs; the
header names each run's file, date and fingerprint. Hardware-independent fields (fidelity, sizes, graph
counts) are not derived: they hold on every class and live in ``default`` sections.

Sections are keyed by model and batch (``models."minilm/b8"``), the most specific level, so a derived
value never leaks to a batch size it was not measured at. Runs are comparable when their hardware class
matches and the kernel libraries agree in major.minor with the newest run (``history.incompatibility``).
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from perfgate.engine.metrics import all_metrics
from perfgate.engine.record import CaseResult
from perfgate.errors import PerfgateError
from perfgate.instruments.outcome import Outcome
from perfgate.records.results import RunRecord
from perfgate.verdicts.fields import FIELDS, HARDWARE_FIELDS, Rule, no_effect_fails

__all__ = ["DerivedFile", "derive", "observations"]

DECIMALS = 2


PROMISE_HEADER = [
    "# Why a bound keeps half the smallest effect: a gate's first job is to fail when the technique stops",
    "# doing what it is for. Where every run showed the effect (a speedup's lower bound above 1x, a memory",
    "# ratio below 1), the margin rule alone could let a run with no effect pass; the bound keeps half",
    "# of the smallest effect seen, so a 1.00x run with a ±3% interval, or a ratio of 1.00, FAILS. A",
    "# marginal effect (half of it inside ±3% of 1, or a saving under what two decimals resolve) cannot be",
    "# failed that way: its speed bound stays above 1x, so no effect is INCONCLUSIVE, never PASS; its",
    "# memory bound is 1.00, no growth. Such bounds say so in their comment.",
]


class TooFewRuns(PerfgateError, ValueError):
    """Fewer comparable runs than the rules need."""


@dataclass
class Derived:
    section: str  # techniques."T".CLASS.models."MODEL/bN"
    name: str
    value: float
    values: list[tuple[int, float]]  # (run number, measured value)
    note: str = ""


@dataclass
class DerivedFile:
    hardware_class: str
    runs: list[tuple[Path, RunRecord]]
    values: list[Derived] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # "section field: why" for values not derived

    def toml(self) -> str:
        today = datetime.date.today().isoformat()
        lines = [
            f"# Thresholds for hardware class {self.hardware_class}: written by `perfgate thresholds derive` on "
            f"{today} from {len(self.runs)} comparable runs.",
            "# Review the diff before committing it; rerun derive after more nights to tighten or loosen it.",
            "# Runs:",
        ]
        for number, (path, record) in enumerate(self.runs, 1):
            lines.append(f"#   run {number}: {path.name}, started {record.started}, {_fingerprint(record)}")
        lines.append("# Rules, per field (speed's bound below 1x is written as max_slowdown = 1/bound - 1):")
        for name in sorted({d.name for d in self.values}):
            rule = FIELDS[name].rule
            assert rule is not None  # derived fields have rules
            described = rule.describe(floor=_floor(name))
            if name == "max_slowdown":  # min_speedup's rule, written as a slowdown
                described = "the min_speedup rule; a bound below 1x written as 1/bound - 1"
            lines.append(f"#   {name}: {described}, rounded outward to {DECIMALS} decimals")
        if any(d.note.startswith(("keeps", "marginal")) for d in self.values):
            lines += PROMISE_HEADER
        if self.left_out:
            lines.append("# Not derived (measured in too few of the runs):")
            lines += [f"#   {line}" for line in self.left_out]
        lines += ["schema = 1"]
        current = None
        for derived in sorted(self.values, key=lambda d: (d.section, d.name)):
            if derived.section != current:
                lines += ["", f"[{derived.section}]"]
                current = derived.section
            measured = ", ".join(f"{value:.4g} (run {number})" for number, value in derived.values)
            note = f"; {derived.note}" if derived.note else ""
            lines.append(f"{derived.name} = {derived.value:g}  # {measured}{note}")
        return "\n".join(lines) + "\n"


def observations(case: CaseResult) -> dict[str, float]:
    """The hardware-dependent figures a measured case carries, by the threshold field they feed."""
    if case.outcome != Outcome.MEASURED:
        return {}
    found: dict[str, float] = {}
    for metric in all_metrics():
        if metric.name in case.metrics:
            for check in metric.measured(case.metrics[metric.name]):
                if check.name in HARDWARE_FIELDS and math.isfinite(check.measured):
                    found[check.name] = check.measured
    return found


def comparable_runs(runs: Sequence[tuple[Path, RunRecord]], hardware_class: str) -> list[tuple[Path, RunRecord]]:
    """The runs with cases of ``hardware_class`` whose kernel libraries match the newest such run's."""
    from perfgate.records.history import incompatibility

    of_class = [(path, run) for path, run in runs if any(c.hardware_class == hardware_class for c in run.cases)]
    if not of_class:
        return []
    newest = of_class[-1][1].fingerprint
    return [(path, run) for path, run in of_class if incompatibility(newest, run.fingerprint) is None]


def derive(runs: Sequence[tuple[Path, RunRecord]], hardware_class: str, min_runs: int = 3) -> DerivedFile:
    """Every hardware-dependent field measured on ``hardware_class`` in at least ``min_runs`` comparable runs."""
    chosen = comparable_runs(runs, hardware_class)
    if len(chosen) < min_runs:
        raise TooFewRuns(
            f"{len(chosen)} comparable run(s) of hardware class {hardware_class!r} in the history, fewer than "
            f"--min-runs={min_runs}: store more nightly runs of that class (perfgate store) and derive again"
        )
    measured: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for number, (_, record) in enumerate(chosen, 1):
        for case in record.cases:
            if case.hardware_class != hardware_class or not case.thresholds.get("derivable", True):
                continue
            spec = case.spec
            section = f'techniques."{spec.technique}".{hardware_class}.models."{spec.model}/b{spec.batch_size}"'
            for name, value in observations(case).items():
                measured.setdefault((section, name), []).append((number, value))
    result = DerivedFile(hardware_class, list(chosen))
    for (section, name), values in sorted(measured.items()):
        runs_seen = len({number for number, _ in values})
        if runs_seen < min_runs:
            result.left_out.append(f"{section} {name}: in {runs_seen} of the {len(chosen)} runs")
            continue
        result.values.append(_apply(section, name, values))
    return result


def _apply(section: str, name: str, values: list[tuple[int, float]]) -> Derived:
    rule = FIELDS[name].rule
    assert rule is not None, f"{name} depends on the hardware and has a rule"
    floor = _floor(name)
    measured = [value for _, value in values]
    bound = rule.apply(measured, floor)
    if name == "min_speedup" and bound < 1:  # the project's spelling of a bound below 1x
        slowdown = _outward(1 / bound - 1, floor=False)
        return Derived(section, "max_slowdown", slowdown, values, f"bound {bound:.3f}x")
    written = _outward(bound, floor)
    return Derived(section, name, written, values, promise_note(rule, measured, floor, written))


def promise_note(rule: Rule, measured: list[float], floor: bool, written: float) -> str:
    """What the bound says about a run whose effect is gone, where every run showed the effect."""
    if not rule.shows_effect(measured, floor):
        return ""
    if no_effect_fails(written, floor):
        return f"keeps {rule.keep:g} of the smallest effect: no effect fails"
    if floor:
        return "marginal effect (within the no-effect interval of 1): no effect stays inconclusive, never passes"
    return "marginal saving (under what two decimals resolve): bound at no growth, the saving not claimed"


def _floor(name: str) -> bool:
    return name.startswith("min_")


def _outward(value: float, floor: bool) -> float:
    """Rounded away from the measurements: floors down, ceilings up."""
    scale = 10.0**DECIMALS
    scaled = round(value * scale, 6)  # 1.15 x 0.2 is 0.22999...: not a reason to round it down
    return float(math.floor(scaled) if floor else math.ceil(scaled)) / scale


def _fingerprint(record: RunRecord) -> str:
    cpu = record.fingerprint.get("cpu", {})
    libraries = record.fingerprint.get("libraries", {})
    versions = ", ".join(
        f"{name} {libraries[name]}" for name in ("torch", "transformers", "onnxruntime") if name in libraries
    )
    return f"{cpu.get('model', 'unknown CPU')} ({cpu.get('logical_cores', '?')} cores), {versions}"


BOUND_LINE = re.compile(r"^(?P<name>\w+)(?P<gap>\s*=\s*)(?P<value>[0-9.]+)(?P<space>\s*)#\s*(?P<comment>.*)$")
PARENTHESIZED_ARITHMETIC = re.compile(r"\([^()]*(?: x |=)[^()]*\)")  # "(0.75 x 1.29 = 0.97)": not a run's value
# What a rule wrote, not a run: "keeps 0.5 of the smallest effect", "0.75 x 2.45", "(was min_speedup 1.45)".
RULE_TEXT = re.compile(r"keeps \d+(?:\.\d+)? of the smallest effect|\d+(?:\.\d+)? x \d+(?:\.\d+)?|\(was [^()]*\)")
# A bare decimal: not part of a range (1.18-1.21), a name (d1, b16) or a figure with a unit (15.6 MB, 1.4 s, 1.56x).
RECORDED_VALUE = re.compile(r"(?<![\w.-])(\d+\.\d+)(?![\w.%-])(?!\s*(?:MB|MiB|GB|KB|ms|s\b|tokens))")


@dataclass(frozen=True)
class KeptPromise:
    path: Path
    line: int
    section: str
    before: str  # "max_slowdown = 0.19"
    after: str  # "min_speedup = 1.06"
    values: list[float]
    note: str


def recorded_values(comment: str) -> list[float]:
    """The values a bound's comment records (the runs it came from): every bare decimal, figures with a
    unit, ranges and the arithmetic of a rule left out. `derive` writes them as ``1.127 (run 1), ...``."""
    runs = RULE_TEXT.sub(" ", PARENTHESIZED_ARITHMETIC.sub(" ", comment))
    return [float(found) for found in RECORDED_VALUE.findall(runs)]


def keep_promises(path: Path, text: str, today: str | None = None) -> tuple[str, list[KeptPromise]]:
    """``text`` with every hardware bound that lets a no-effect run pass, where every value its comment
    records shows the effect, moved to the bound its rule's promise gives; and each move. Bounds whose
    values do not all show the effect, and fields without a promise, stay as they are."""
    today = today or datetime.date.today().isoformat()
    lines = text.splitlines(keepends=True)
    moved: list[KeptPromise] = []
    section = ""
    for number, line in enumerate(lines):
        if line.startswith("["):
            section = line.split("]")[0].lstrip("[")
        match = BOUND_LINE.match(line.rstrip("\n"))
        if not match or match["name"] not in FIELDS or not FIELDS[match["name"]].hardware:
            continue
        name, written = match["name"], float(match["value"])
        rule = FIELDS[name].rule
        values = recorded_values(match["comment"])
        floor = name == "max_slowdown" or _floor(name)
        if rule is None or not rule.shows_effect(values, floor):
            continue
        current = 1 / (1 + written) if name == "max_slowdown" else written
        promised = _outward(rule.promise(values, floor), floor)
        if (promised <= current) if floor else (promised >= current):
            continue
        field_name = "min_speedup" if name == "max_slowdown" else name
        note = promise_note(rule, values, floor, promised)
        comment = f"{match['comment']}; {today}: {note} (was {name} {written:g})"
        bound = f"{field_name}{match['gap']}{promised:g}"
        column = match.start("comment") - 2  # where the comment's "#" stood: kept, so the column stays aligned
        lines[number] = f"{bound.ljust(max(column, len(bound) + 2))}# {comment}\n"
        moved.append(KeptPromise(path, number + 1, section, f"{name} = {written:g}", f"{field_name} = {promised:g}",
                                 values, note))  # fmt: skip
    return "".join(lines), moved
