"""``perfgate recommend``: which technique or stack to ship, per model and batch size, under stated limits.

A candidate qualifies only where every limit is met *with confidence*: fidelity measured at or above the
cosine floor, serving memory measured at or below the ratio, and the task-accuracy interval's low end at
or above the allowed loss. Among those, the fastest by its speedup interval against fp32 eager leads; a
leader whose interval does not clear 1.0 leaves fp32 eager in place. Candidates whose intervals overlap
the leader's are a tie the data cannot break: they are named with the simpler first (fewer parts, then
less memory), and the reason. Every measured candidate left out is listed with the limit it missed.
The Pareto front over speedup, fidelity and memory is given whole, each point with its interval.

The rules are written here rather than taken from a library: they are a few comparisons of recorded
intervals, and the point is to say which comparison decided.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from perfgate.instruments.outcome import Outcome

if TYPE_CHECKING:
    from perfgate.engine.record import CaseResult
    from perfgate.records.results import RunRecord

__all__ = ["Candidate", "Choice", "Limits", "recommend"]

BASELINE = "fp32-eager"


@dataclass(frozen=True)
class Limits:
    min_cosine: float | None = None
    min_task_delta: float | None = None  # e.g. -0.02: at most 2 points lost, judged on the interval's low end
    max_memory_ratio: float | None = None

    def describe(self) -> str:
        parts = []
        if self.min_cosine is not None:
            parts.append(f"cosine ≥ {self.min_cosine:g}")
        if self.min_task_delta is not None:
            parts.append(f"task accuracy Δ ≥ {self.min_task_delta:+g} (interval's low end)")
        if self.max_memory_ratio is not None:
            parts.append(f"memory ≤ {self.max_memory_ratio:g}x fp32")
        return ", ".join(parts) or "no limits"


@dataclass(frozen=True)
class Candidate:
    technique: str
    speedup: float
    ci_low: float
    ci_high: float
    cosine: float | None
    memory_ratio: float | None
    task_low: float | None
    missed: tuple[str, ...] = ()  # the limits it did not meet with confidence, each with its figure

    @property
    def parts(self) -> int:
        return len(self.technique.split("+"))

    def evidence(self) -> str:
        figures = [f"{self.speedup:.2f}x [{self.ci_low:.2f}, {self.ci_high:.2f}]"]
        if self.cosine is not None:
            figures.append(f"cosine {self.cosine:.4f}")
        if self.memory_ratio is not None:
            figures.append(f"memory {self.memory_ratio:.2f}x")
        if self.task_low is not None:
            figures.append(f"task Δ low end {self.task_low:+.3f}")
        return ", ".join(figures)


@dataclass
class Choice:
    """The answer for one model, batch size and device."""

    model: str
    batch_size: int
    device: str
    chosen: Candidate | None  # None: fp32 eager stays
    reason: str
    tied: list[Candidate] = field(default_factory=list)  # others the data cannot tell from the chosen one
    qualified: list[Candidate] = field(default_factory=list)
    left_out: list[Candidate] = field(default_factory=list)
    front: list[Candidate] = field(default_factory=list)
    next_stacks: list[str] = field(default_factory=list)  # stacks of parts that each paid off, not yet measured

    def head_to_head(self) -> str | None:
        """The line that measures the chosen technique and the first tied one against each other in one
        worker (ab-forward with another baseline), where their intervals against fp32 cannot rank them."""
        if self.chosen is None or not self.tied:
            return None
        return (f'perfgate.measure("{self.model}", "{self.tied[0].technique}", baseline="{self.chosen.technique}", '
                f'batch_size={self.batch_size}, device="{self.device}")')  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "model": self.model, "batch_size": self.batch_size, "device": self.device,
            "chosen": None if self.chosen is None else self.chosen.technique, "reason": self.reason,
            "tied": [c.technique for c in self.tied],
            "qualified": [asdict(c) for c in self.qualified], "left_out": [asdict(c) for c in self.left_out],
            "pareto_front": [c.technique for c in self.front], "head_to_head": self.head_to_head(),
            "worth_measuring_next": self.next_stacks,
        }  # fmt: skip


def candidate(case: CaseResult, limits: Limits) -> Candidate | None:
    """A measured ab-forward case as a candidate, with the limits it misses; None without a speed interval."""
    metrics = case.metrics
    estimate = (metrics.get("speed") or {}).get("estimate")
    if case.outcome != Outcome.MEASURED or not estimate:
        return None
    cosine = (metrics.get("fidelity") or {}).get("cosine_min")
    memory = (metrics.get("memory") or {}).get("ratio")
    task = (metrics.get("task") or {}).get("ci_low")
    missed = []
    if limits.min_cosine is not None:
        if cosine is None:
            missed.append("cosine not measured")
        elif cosine < limits.min_cosine:
            missed.append(f"cosine {cosine:.4f} < {limits.min_cosine:g}")
    if limits.max_memory_ratio is not None:
        if memory is None:
            missed.append("memory not measured")
        elif memory > limits.max_memory_ratio:
            missed.append(f"memory {memory:.2f}x > {limits.max_memory_ratio:g}x")
    if limits.min_task_delta is not None:
        if task is None:
            missed.append("task accuracy not measured")
        elif task < limits.min_task_delta:
            missed.append(f"task Δ low end {task:+.3f} < {limits.min_task_delta:+g}")
    return Candidate(case.spec.technique, estimate["speedup"], estimate["ci_low"], estimate["ci_high"], cosine,
                     memory, task, tuple(missed))  # fmt: skip


def pareto_front(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Candidates no other beats on speedup, cosine and memory at once (missing figures count as worst)."""

    def key(c: Candidate) -> tuple[float, float, float]:
        return (c.speedup, c.cosine if c.cosine is not None else -1.0,
                -(c.memory_ratio if c.memory_ratio is not None else float("inf")))  # fmt: skip

    def dominated(c: Candidate) -> bool:
        mine = key(c)
        return any(all(o >= m for o, m in zip(key(other), mine, strict=True)) and key(other) != mine
                   for other in candidates)  # fmt: skip

    return sorted((c for c in candidates if not dominated(c)), key=lambda c: -c.speedup)


def choose(model: str, batch_size: int, device: str, cases: Sequence[CaseResult], limits: Limits) -> Choice:
    # A planted fault whose own test asserted its FAIL (a three-layer model, a half-cosine variant) is a
    # check of the suite, not a candidate.
    shippable = [case for case in cases if case.spec.technique != BASELINE and not case.expected_failure]
    found = [c for case in shippable if (c := candidate(case, limits))]
    qualified = sorted((c for c in found if not c.missed), key=lambda c: -c.speedup)
    left_out = sorted((c for c in found if c.missed), key=lambda c: -c.speedup)
    choice = Choice(model, batch_size, device, None, "", qualified=qualified, left_out=left_out,
                    front=pareto_front(found))  # fmt: skip
    faster = [c for c in qualified if c.ci_low > 1.0]
    if not qualified:
        choice.reason = "fp32 eager stays: no candidate meets every limit"
        return choice
    if not faster:
        best = qualified[0]
        choice.reason = (f"fp32 eager stays: no candidate that meets the limits is faster with confidence (the best, "
                         f"{best.technique}, {best.evidence()})")  # fmt: skip
        return choice
    leader = max(faster, key=lambda c: c.ci_low)
    overlapping = [c for c in faster if c.ci_high >= leader.ci_low and leader.ci_high >= c.ci_low]
    simplest = sorted(overlapping, key=lambda c: (c.parts, c.memory_ratio if c.memory_ratio is not None else 1.0))
    choice.chosen, choice.tied = simplest[0], simplest[1:]
    if choice.tied:
        chosen, others = choice.chosen, ", ".join(c.technique for c in choice.tied)
        choice.reason = (f"the speedup intervals of {chosen.technique} and {others} overlap, so the data cannot rank "
                         f"them; {chosen.technique} is named first as the simpler (fewer parts, then less memory: "
                         f"{chosen.parts} part{'s' if chosen.parts > 1 else ''})")  # fmt: skip
    else:
        choice.reason = "the fastest that meets every limit with confidence; no other interval overlaps its own"
    return choice


# Within the parts that hand on a module and load no weights: cast, then quantize, then the rest.
ROLE_ORDER = {"dtype": 0, "quantizer": 1}


def stacks_worth_measuring(choice: Choice, measured: set[str]) -> list[str]:
    """Two-part stacks of techniques that each met the limits and ran faster than fp32 with confidence,
    not in the run: parts put in the order the stack rules ask (weights loaded first, then dtype,
    quantizer, rewrites; wrappers and artifact builders last), kept when the rules and this device allow."""
    from itertools import combinations

    from perfgate.errors import UnknownTechniqueError
    from perfgate.subjects.catalogue import get_technique
    from perfgate.subjects.techniques.stack import Stack, stack_rule_violation

    paid = [c.technique for c in choice.qualified if c.parts == 1 and c.ci_low > 1.0]
    parts = {}
    for name in paid:
        try:
            parts[name] = get_technique(name)
        except UnknownTechniqueError:  # a project's own technique not registered here
            continue
    found = []
    for first, second in combinations(parts.values(), 2):
        ordered = sorted([first, second], key=lambda t: (t.builds_artifacts, not t.hands_on_module,
                                                          not t.loads_weights, ROLE_ORDER.get(t.role, 2)))  # fmt: skip
        stack = Stack(ordered)
        if stack.name in measured or stack_rule_violation(ordered) is not None:
            continue
        runs_here = choice.device.partition(":")[0] in stack.devices
        if runs_here and stack.input_reason(choice.batch_size, None) is None:
            found.append(stack.name)
    return found


def recommend(
    record: RunRecord, limits: Limits, batch_size: int | None = None, device: str | None = None
) -> list[Choice]:
    """One choice per model, batch size and device among the run's ab-forward cases."""
    groups: dict[tuple[str, int, str], list[CaseResult]] = {}
    for case in record.cases:
        spec = case.spec
        if spec.scenario != "ab-forward" or (batch_size is not None and spec.batch_size != batch_size):
            continue
        if device is not None and spec.device != device:
            continue
        groups.setdefault((spec.model, spec.batch_size, spec.device), []).append(case)
    choices = []
    for (model, size, where), cases in sorted(groups.items()):
        choice = choose(model, size, where, cases, limits)
        choice.next_stacks = stacks_worth_measuring(choice, {case.spec.technique for case in cases})
        choices.append(choice)
    return choices


def most_excluding_limit(choices: Sequence[Choice]) -> str | None:
    """The limit that left out the most candidates (its kind: cosine, memory, task), for the exit message."""
    counts: dict[str, int] = {}
    for choice in choices:
        for left in choice.left_out:
            for missed in left.missed:
                kind = missed.split()[0]
                counts[kind] = counts.get(kind, 0) + 1
    return max(counts, key=lambda k: counts[k]) if counts else None


def markdown(choices: Sequence[Choice], limits: Limits) -> str:
    lines = ["## Recommendation", "", f"Limits: {limits.describe()}. Speedups against fp32 eager, 95% intervals.",
             ""]  # fmt: skip
    for choice in choices:
        title = f"### {choice.model}, batch {choice.batch_size}, {choice.device}"
        lines += [title, ""]
        if choice.chosen is None:
            lines.append(f"**{choice.reason}.**")
        else:
            lines.append(f"**Ship {choice.chosen.technique}** ({choice.chosen.evidence()}): {choice.reason}.")
        if (command := choice.head_to_head()) is not None:
            lines += ["", f"Measure the two head to head (one worker, one interval): `{command}`"]
        lines.append("")
        if choice.front:
            lines += [
                "Pareto front (speedup, cosine, memory):",
                "",
                "| technique | evidence | limits |",
                "|---|---|---|",
            ]
            for c in choice.front:
                lines.append(f"| {c.technique} | {c.evidence()} | {'; '.join(c.missed) or 'met'} |")
            lines.append("")
        if choice.next_stacks:
            lines += ["Worth measuring next (stacks of parts that each paid off here, in the order the stack rules "
                      "allow):", ""]  # fmt: skip
            lines += [f'- `perfgate.measure("{choice.model}", "{stack}", batch_size={choice.batch_size}, '
                      f'device="{choice.device}")`' for stack in choice.next_stacks]  # fmt: skip
            lines.append("")
        if choice.left_out:
            lines += ["Left out:", ""]
            lines += [f"- {c.technique} ({c.speedup:.2f}x): {'; '.join(c.missed)}" for c in choice.left_out]
            lines.append("")
    return "\n".join(lines)


def limits_from_config(config: dict[str, Any]) -> Limits:
    """The run's own limits, from the settings its results file records (``recommend_*`` options)."""

    def number(name: str, default: float | None) -> float | None:
        text = config.get(name)
        return default if text is None else None if text == "None" else float(text)

    return Limits(number("recommend_min_cosine", 0.99), number("recommend_min_task_delta", None),
                  number("recommend_max_memory_ratio", None))  # fmt: skip


def recommendation_section(record: RunRecord) -> list[str]:
    """summary.md's (and the HTML overview's) Recommendation for the run's own ab-forward cases."""
    limits = limits_from_config(record.config)
    choices = recommend(record, limits)
    if not choices:
        return []
    lines = markdown(choices, limits).splitlines()
    lines[2] += " Limits from the perfgate_recommend_* options; `perfgate recommend results.json` takes others."
    return lines
