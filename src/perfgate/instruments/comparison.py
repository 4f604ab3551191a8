"""Paired, interleaved A/B timing and the verdict drawn from it.

Baseline (A) and candidate (B) run in ABBA rounds inside one process, so drift (thermal, other tenants,
frequency) hits both arms alike. Each round gives two adjacent pairs; the speedup is
``exp(median(log(A/B)))`` with a seeded percentile-bootstrap confidence interval. The run is
sequential: after ``min_pairs`` it looks again each time the pair count doubles (few looks keep the
error rate near nominal) and stops when the interval decides, or when the time budget is spent.

    PASS          the interval's lower end clears the bound
    FAIL          the whole interval lies below the bound
    INCONCLUSIVE  the budget ran out first
    UNGATED       no bound for this hardware class: measured and recorded only
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from perfgate.instruments.outcome import Verdict
from perfgate.instruments.timing import Timer, WarmUp

__all__ = [
    "COLLECT_EVERY_ROUNDS",
    "BlockTimer",
    "ComparePolicy",
    "Comparison",
    "LatencyStats",
    "LocalArms",
    "SpeedEstimate",
    "Verdict",
    "compare",
    "compare_blocks",
    "decide",
    "estimate_replicated",
    "estimate_speedup",
]


@dataclass(frozen=True)
class ComparePolicy:
    min_pairs: int = 10
    max_pairs: int = 640
    budget_seconds: float = 20.0
    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0
    noisy_spread: float = 0.20  # IQR of the pair log-ratios; 0.2 is about ±10% pair to pair
    # With no bound nothing is decided: the estimate feeds the history (bands of at least 10%) and
    # `thresholds derive` (0.75 x the lowest lower bound). About ±5% serves both; ±3% cost ungated cases
    # the whole budget (bitsandbytes int8 on cpu-avx2: 22 s for a 0.39x that 5 s measured as well).
    ungated_halfwidth: float = 0.05  # with no bound, stop once the interval is within about ±5%...
    ungated_budget_share: float = 0.5  # ...or once this share of the budget is spent
    # For history (the nightly): measure every case to this relative half-width (0.03: ±3%) within the
    # whole budget, whatever the verdict. A verdict's early stop is for gating: 10 pairs that clear a bound
    # leave an interval too wide to see a 15% drop between nights.
    precision: float | None = None


# How many times its budget a measurement with long pairs (a training step or epoch) gets when a precision
# is asked. At a forward's 15 s a MiniLM training step stopped at 6-14 pairs, ±1-22 % (cpu-avx2); with 45 s
# it reached ±3 % in 16 of 17 runs (a median 20 pairs in ~30 s), where an fp16-autocast forward took 40 pairs in
# ~5 s (cpu-avx512-bf16, scripts/detection_power.py, 2026-12-07).
LONG_PAIRS_HISTORY_BUDGET = 3.0


def for_history(policy: ComparePolicy, factor: float = LONG_PAIRS_HISTORY_BUDGET) -> ComparePolicy:
    """``policy`` with ``factor`` times its budget when a precision is asked (the nightly), for measurements
    whose pairs are long; a verdict's own stop, with no precision, is unchanged."""
    return replace(policy, budget_seconds=policy.budget_seconds * factor) if policy.precision else policy


@dataclass(frozen=True)
class SpeedEstimate:
    speedup: float
    ci_low: float
    ci_high: float
    pairs: int
    spread: float  # IQR of per-pair log ratios
    noisy: bool

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("speedup", "ci_low", "ci_high", "pairs", "spread", "noisy")}


@dataclass(frozen=True)
class LatencyStats:
    p50: float
    p90: float
    p99: float
    mean: float

    @classmethod
    def of(cls, seconds: list[float]) -> LatencyStats:
        p50, p90, p99 = np.percentile(seconds, [50, 90, 99])
        return cls(float(p50), float(p90), float(p99), float(np.mean(seconds)))


def estimate_speedup(
    baseline: list[float], candidate: list[float], policy: ComparePolicy = ComparePolicy()
) -> SpeedEstimate:
    """Speedup of candidate over baseline from paired per-call times (>1 means candidate is faster)."""
    if len(baseline) != len(candidate) or len(baseline) < 2:
        raise ValueError(f"need at least two pairs of equal length, got {len(baseline)} and {len(candidate)}")
    log_ratios = np.log(np.asarray(baseline)) - np.log(np.asarray(candidate))
    rng = np.random.default_rng(policy.seed)
    draws = rng.integers(0, len(log_ratios), size=(policy.resamples, len(log_ratios)))
    medians = np.median(log_ratios[draws], axis=1)
    tail = (1 - policy.confidence) / 2 * 100
    low, high = np.percentile(medians, [tail, 100 - tail])
    q1, q3 = np.percentile(log_ratios, [25, 75])
    spread = float(q3 - q1)
    return SpeedEstimate(
        speedup=math.exp(float(np.median(log_ratios))),
        ci_low=math.exp(float(low)),
        ci_high=math.exp(float(high)),
        pairs=len(log_ratios),
        spread=spread,
        noisy=spread > policy.noisy_spread,
    )


def estimate_replicated(
    replicates: list[tuple[list[float], list[float]]], policy: ComparePolicy = ComparePolicy()
) -> SpeedEstimate:
    """Speedup from ABBA pairs timed in several pairs of processes (the unit a library upgrade varies).

    Two identical processes differ by themselves (memory layout, allocator state): an A/A between two
    workers came out 1.12x [1.06, 1.21] on one pair of processes here, 1.03x [1.00, 1.08] on the next.
    Pairs within one process cannot show that, so the interval comes from a two-stage bootstrap:
    resample the process pairs, then the pairs within each, and take the pooled median each time.
    """
    ratios = [np.log(np.asarray(a)) - np.log(np.asarray(b)) for a, b in replicates]
    if not ratios or any(len(r) < 2 for r in ratios):
        raise ValueError("need at least two pairs in every replicate")
    rng = np.random.default_rng(policy.seed)
    medians = np.empty(policy.resamples)
    for i in range(policy.resamples):
        chosen = rng.integers(0, len(ratios), size=len(ratios))
        medians[i] = np.median(
            np.concatenate([ratios[k][rng.integers(0, len(ratios[k]), len(ratios[k]))] for k in chosen])
        )
    tail = (1 - policy.confidence) / 2 * 100
    low, high = np.percentile(medians, [tail, 100 - tail])
    pooled = np.concatenate(ratios)
    q1, q3 = np.percentile(pooled, [25, 75])
    return SpeedEstimate(
        speedup=math.exp(float(np.median(pooled))),
        ci_low=math.exp(float(low)),
        ci_high=math.exp(float(high)),
        pairs=len(pooled),
        spread=float(q3 - q1),
        noisy=float(q3 - q1) > policy.noisy_spread,
    )


def decide(estimate: SpeedEstimate, bound: float | None) -> Verdict | None:
    """The verdict the interval supports now, or None while it straddles the bound."""
    if bound is None:
        return Verdict.UNGATED
    if estimate.ci_low >= bound:
        return Verdict.PASS
    if estimate.ci_high < bound:
        return Verdict.FAIL
    return None


@dataclass
class Comparison:
    baseline_seconds: list[float] = field(default_factory=list)
    candidate_seconds: list[float] = field(default_factory=list)
    calls_per_block: int = 1
    warmup_calls: dict[str, int] = field(default_factory=dict)
    warmup_stable: dict[str, bool] = field(default_factory=dict)
    estimate: SpeedEstimate | None = None
    verdict: Verdict = Verdict.INCONCLUSIVE
    bound: float | None = None
    stop_reason: str = ""
    elapsed_seconds: float = 0.0

    def latency(self, arm: str) -> LatencyStats:
        return LatencyStats.of(self.baseline_seconds if arm == "baseline" else self.candidate_seconds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": {
                "unit": "seconds per call",
                "calls_per_block": self.calls_per_block,
                "order": "ABBA rounds; pair i is (baseline[i], candidate[i])",
                "baseline": self.baseline_seconds,
                "candidate": self.candidate_seconds,
            },
            "warmup": {"calls": self.warmup_calls, "stable": self.warmup_stable},
            "estimate": self.estimate.to_dict() if self.estimate else None,
            "latency": {arm: vars(self.latency(arm)) for arm in ("baseline", "candidate")}
            if self.baseline_seconds
            else None,
            "bound": self.bound,
            "verdict": self.verdict.value,
            "stop_reason": self.stop_reason,
            "elapsed_seconds": self.elapsed_seconds,
        }


def compare(
    baseline: Callable[[], object],
    candidate: Callable[[], object],
    timer: Timer,
    bound: float | None,
    policy: ComparePolicy = ComparePolicy(),
    *,
    baseline_turns: Sequence[Callable[[], object]] = (),
    settle: Mapping[str, float] | None = None,
) -> Comparison:
    """Time both arms in ABBA rounds until the verdict is decided or the budget is spent.

    ``baseline_turns``: more callables of the same baseline (its weights at other addresses), timed in
    turn with ``baseline`` block by block, so each ABBA round times the baseline from each of them.

    The garbage collector is off while timing, as timeit does: a collection triggered every k calls
    would land on the same position of every ABBA round and bias one arm. One full collection runs
    before timing; between rounds only the youngest generation is collected (cheap: a full pass over a
    heap holding torch and transformers costs tens of milliseconds of the budget).

    ``settle``: seconds after an arm's block before the other arm's is timed (``timing.busy_after``: a
    runtime left at its defaults spins its threads for tens of milliseconds after each call, which would
    take the cores from the next block of the other arm); the next arm spends them in untimed calls, so
    it starts its block warm. Blocks then last at least twice the longest gap, so settling costs at most
    a fifth of the time."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        work: dict[str, Sequence[Callable[[], object]]] = {
            "baseline": [baseline, *baseline_turns],
            "candidate": [candidate],
        }
        arms = LocalArms(work, timer, settle=dict(settle or {}))
        return compare_blocks(arms, timer.clock, bound, policy)
    finally:
        if enabled:
            gc.enable()


COLLECT_EVERY_ROUNDS = 8


class BlockTimer(Protocol):
    """Two arms as the ABBA loop sees them: warm each up, then time blocks of calls of either."""

    def warm_up(self, arm: str) -> WarmUp: ...

    def time_block(self, arm: str, calls: int) -> float: ...

    def calls_per_block(self, per_call_seconds: float) -> int: ...

    def between_rounds(self, rounds: int) -> None: ...


@dataclass
class LocalArms:
    """Both arms in this process: the timer times the callables directly. An arm given several callables
    times them in turn, one per block (the first's warm-up sizes the blocks; each is warmed)."""

    work: dict[str, Sequence[Callable[[], object]]]
    timer: Timer
    blocks: dict[str, int] = field(default_factory=dict)
    settle: dict[str, float] = field(default_factory=dict)  # seconds after an arm's block before the other's
    last: str | None = None  # the arm whose block ran last
    settle_calls: int = 0  # untimed calls made while an arm settled

    def warm_up(self, arm: str) -> WarmUp:
        warmed = [self.timer.warm_up(work) for work in self.work[arm]]
        return warmed[0]

    def time_block(self, arm: str, calls: int) -> float:
        turn = self.blocks.get(arm, 0)
        self.blocks[arm] = turn + 1
        work = self.work[arm][turn % len(self.work[arm])]
        if self.last is not None and self.last != arm and self.settle.get(self.last, 0.0) > 0:
            # Untimed calls of this arm while the other's pool spins down, not a sleep: after a sleep the
            # first calls run cold (MiniLM on a 2-core guest: 28 ms after 0.3 s asleep, 12-13 ms warm).
            deadline = self.timer.clock() + self.settle[self.last]
            while self.timer.clock() < deadline:
                work()
                self.settle_calls += 1
        self.last = arm
        return self.timer.time_block(work, calls)

    def calls_per_block(self, per_call_seconds: float) -> int:
        calls = self.timer.calls_per_block(per_call_seconds)
        longest = max(self.settle.values(), default=0.0)
        if longest > 0 and per_call_seconds > 0:  # a block at least twice the gap: waiting is at most a fifth
            calls = max(calls, min(math.ceil(2 * longest / per_call_seconds), self.timer.settings.max_calls_per_block))
        return calls

    def between_rounds(self, rounds: int) -> None:
        if rounds % COLLECT_EVERY_ROUNDS == 0:
            gc.collect(0)


def compare_blocks(
    arms: BlockTimer, clock: Callable[[], float], bound: float | None, policy: ComparePolicy
) -> Comparison:
    """The ABBA loop over ``arms`` ("baseline", "candidate"): blocks until the verdict is decided or the
    budget is spent. The arms may live in this process (``LocalArms``) or in worker processes that time
    their own blocks (``arms.py``: two models, or two environments)."""
    start = clock()
    share = policy.ungated_budget_share if bound is None and policy.precision is None else 1.0
    budget = policy.budget_seconds * share
    result = Comparison(bound=bound)
    per_call = {}
    for arm in ("baseline", "candidate"):
        warm = arms.warm_up(arm)
        result.warmup_calls[arm], result.warmup_stable[arm] = warm.calls, warm.stable
        per_call[arm] = warm.per_call_seconds
    # One block size for both arms keeps the pairs comparable; size it by the faster arm.
    calls = result.calls_per_block = arms.calls_per_block(min(per_call.values()))
    next_look = policy.min_pairs
    a, b = result.baseline_seconds, result.candidate_seconds
    while True:
        arms.between_rounds(len(a) // 2)
        a.append(arms.time_block("baseline", calls))
        b.append(arms.time_block("candidate", calls))
        b.append(arms.time_block("candidate", calls))
        a.append(arms.time_block("baseline", calls))
        out_of_time = clock() - start >= budget
        at_cap = len(a) >= policy.max_pairs
        if len(a) < next_look and not (out_of_time and len(a) >= 2) and not at_cap:
            continue
        next_look = 2 * len(a)
        result.estimate = estimate_speedup(a, b, policy)
        if _stopped(result, bound, policy, out_of_time, at_cap):
            break
    result.elapsed_seconds = clock() - start
    return result


def _stopped(result: Comparison, bound: float | None, policy: ComparePolicy, out_of_time: bool, at_cap: bool) -> bool:
    """At a look: whether the loop stops here, with the verdict and the reason set on ``result``."""
    assert result.estimate is not None
    verdict = decide(result.estimate, bound)
    halfwidth = math.log(result.estimate.ci_high / result.estimate.ci_low) / 2
    exhausted = out_of_time or at_cap
    if policy.precision is not None:
        if halfwidth <= policy.precision:
            result.stop_reason = f"interval within ±{policy.precision * 100:g}%"
        elif exhausted:
            result.stop_reason = f"budget spent before ±{policy.precision * 100:g}%"
        else:
            return False
        result.verdict = Verdict.INCONCLUSIVE if verdict is None else verdict
        return True
    if verdict is Verdict.UNGATED:
        if halfwidth <= policy.ungated_halfwidth:
            result.stop_reason = "interval narrow enough"
        elif exhausted:
            result.stop_reason = "budget spent"
        else:
            return False
        result.verdict = Verdict.UNGATED
        return True
    if verdict is not None:
        result.verdict, result.stop_reason = verdict, "decided"
        return True
    if exhausted:
        result.verdict = Verdict.INCONCLUSIVE
        result.stop_reason = "time budget spent" if out_of_time else "pair cap reached"
        return True
    return False
