"""The A/B statistics, driven by a fake clock and seeded noise: error rates, power, and budgets."""

from __future__ import annotations

import gc
import math

import numpy as np
import pytest

from perfgate.instruments.comparison import ComparePolicy, Verdict, compare, decide, estimate_speedup
from tests.fakes import FakeClock, fake_timer, noisy_work

SEEDS = range(100)


@pytest.fixture(autouse=True, scope="module")
def heap_frozen():
    """``compare`` runs a full collection before it times (a worker's heap holds torch): in the test
    process, which earlier tests filled, each of these hundreds of fake-clock comparisons paid ~0.1 s
    scanning their objects (98 s for this module in a full run). Frozen, they are not scanned: the
    statistics are what is tested here, not the collector."""
    gc.freeze()
    yield
    gc.unfreeze()


POLICY = ComparePolicy(min_pairs=10, budget_seconds=2.0, resamples=1000)


def run(seed: int, baseline_s: float, candidate_s: float, bound: float | None, precision=None, **noise: float):
    clock = FakeClock()
    rng = np.random.default_rng(seed)
    policy = ComparePolicy(**{**POLICY.__dict__, "seed": seed, "precision": precision})
    return compare(
        noisy_work(clock, baseline_s, rng, **noise),
        noisy_work(clock, candidate_s, rng, **noise),
        fake_timer(clock),
        bound=bound,
        policy=policy,
    )


def test_a_against_a_passes_a_ten_percent_slowdown_budget_at_the_expected_rate():
    verdicts = [run(seed, 0.01, 0.01, bound=1 / 1.1).verdict for seed in SEEDS]
    assert verdicts.count(Verdict.PASS) >= 95, verdicts


def test_a_against_a_interval_covers_one_at_about_the_nominal_rate():
    covered = 0
    for seed in SEEDS:
        estimate = run(seed, 0.01, 0.01, bound=None).estimate
        covered += estimate.ci_low <= 1.0 <= estimate.ci_high
    # nominal 95%; the percentile bootstrap of a median runs a little narrow at small n
    assert covered >= 88, covered


def test_a_known_twenty_percent_slowdown_is_detected_and_sized():
    results = [run(seed, 0.01, 0.012, bound=1.0) for seed in SEEDS]
    assert sum(r.verdict is Verdict.FAIL for r in results) >= 95
    medians = [r.estimate.speedup for r in results]
    assert abs(float(np.median(medians)) - 1 / 1.2) < 0.01


def test_a_real_speedup_clears_a_lower_threshold():
    results = [run(seed, 0.013, 0.01, bound=1.2) for seed in SEEDS]
    assert sum(r.verdict is Verdict.PASS for r in results) >= 95


def test_an_effect_at_the_threshold_with_a_small_budget_is_inconclusive():
    result = run(7, 0.01, 0.01, bound=1.0, sigma=0.3)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.stop_reason == "time budget spent"


def test_interleaving_cancels_a_drift_that_hits_both_arms():
    # A drift of ±40% would bias sequential A-then-B timing; ABBA pairs see it alike.
    covered = sum(
        (e := run(seed, 0.01, 0.01, bound=None, drift=0.4).estimate).ci_low <= 1.0 <= e.ci_high for seed in range(40)
    )
    assert covered >= 34


def test_large_pair_to_pair_spread_is_flagged_noisy():
    assert run(3, 0.01, 0.01, bound=None, sigma=0.4).estimate.noisy
    assert not run(3, 0.01, 0.01, bound=None, sigma=0.02).estimate.noisy


def test_the_run_stops_at_the_budget_even_when_undecided():
    result = run(1, 0.01, 0.01, bound=1.0, sigma=0.3)
    assert result.elapsed_seconds < POLICY.budget_seconds + 1.0  # warm-up plus one round past the budget


def test_estimate_is_the_exponentiated_median_log_ratio():
    baseline = [2.0, 2.0, 2.0, 2.0]
    candidate = [1.0, 1.0, 4.0, 1.0]
    estimate = estimate_speedup(baseline, candidate)
    assert estimate.speedup == pytest.approx(2.0)
    assert estimate.pairs == 4


def test_estimate_rejects_unpaired_samples():
    with pytest.raises(ValueError, match="at least two pairs"):
        estimate_speedup([1.0, 2.0], [1.0])


@pytest.mark.parametrize(
    ("low", "high", "bound", "expected"),
    [
        (1.3, 1.5, 1.2, Verdict.PASS),
        (0.8, 0.9, 1.0, Verdict.FAIL),
        (0.95, 1.05, 1.0, None),
        (0.95, 1.05, None, Verdict.UNGATED),
    ],
)
def test_decide_reads_the_interval_against_the_bound(low, high, bound, expected):
    estimate = estimate_speedup([1.0, 1.0], [1.0, 1.0])
    estimate = type(estimate)(math.sqrt(low * high), low, high, 10, 0.01, False)
    assert decide(estimate, bound) is expected


def test_an_ungated_comparison_stops_at_five_percent_or_half_the_budget():
    """Nothing is decided without a bound: ±5% (or half the budget when the noise is wide) is enough."""
    quiet = run(3, 0.01, 0.01, bound=None)
    assert quiet.stop_reason == "interval narrow enough"
    assert math.log(quiet.estimate.ci_high / quiet.estimate.ci_low) / 2 <= 0.05
    noisy = run(7, 0.01, 0.01, bound=None, sigma=0.3)
    assert noisy.stop_reason == "budget spent"
    assert POLICY.budget_seconds / 2 <= noisy.elapsed_seconds < POLICY.budget_seconds / 2 + 0.2
    gated = run(7, 0.01, 0.01, bound=1.0, sigma=0.3)
    assert gated.elapsed_seconds >= POLICY.budget_seconds  # a bound still gets the whole budget


def test_a_stated_precision_keeps_measuring_past_the_verdict_to_a_narrow_interval():
    """The nightly's figures: a clear PASS decided at 10 pairs, measured on to ±3% for the history."""
    gating = run(4, 0.02, 0.01, bound=1.2, sigma=0.05)
    assert (gating.verdict, gating.stop_reason, gating.estimate.pairs) == (Verdict.PASS, "decided", 10)
    precise = run(4, 0.02, 0.01, bound=1.2, precision=0.03, sigma=0.05)
    assert precise.verdict is Verdict.PASS
    assert precise.stop_reason == "interval within ±3%"
    assert precise.estimate.pairs > 10
    assert math.log(precise.estimate.ci_high / precise.estimate.ci_low) / 2 <= 0.03
    ungated = run(4, 0.02, 0.01, bound=None, precision=0.03, sigma=0.05)
    assert ungated.verdict is Verdict.UNGATED
    assert ungated.stop_reason == "interval within ±3%"


def test_a_precision_the_budget_cannot_reach_stops_at_the_budget_and_says_so():
    tight = run(5, 0.01, 0.01, bound=None, precision=0.001, sigma=0.3)
    assert tight.stop_reason == "budget spent before ±0.1%"
    assert tight.elapsed_seconds >= POLICY.budget_seconds  # the whole budget, not the ungated half


def test_a_baseline_timed_in_turns_from_two_copies_averages_their_placement():
    """The baseline's early copy 1% slower than the candidate, its late copy 1% faster: timed in turns,
    block by block, the A/A centres on 1.0; from the early copy alone it shows the 1%."""
    clock = FakeClock()
    rng = np.random.default_rng(3)
    policy = ComparePolicy(**{**POLICY.__dict__, "seed": 3, "precision": 0.002, "budget_seconds": 20.0})
    calls = {"early": 0, "late": 0}

    def counted(name: str, seconds: float):
        work = noisy_work(clock, seconds, rng, sigma=0.01)

        def run() -> None:
            calls[name] += 1
            work()

        return run

    early, late = counted("early", 0.0101), counted("late", 0.0099)
    candidate = noisy_work(clock, 0.01, rng, sigma=0.01)
    alone = compare(early, candidate, fake_timer(clock), bound=None, policy=policy)
    calls.update(early=0, late=0)
    turns = compare(early, candidate, fake_timer(clock), bound=None, policy=policy, baseline_turns=[late])
    assert alone.estimate.speedup == pytest.approx(1.01, abs=0.003)
    assert turns.estimate.speedup == pytest.approx(1.0, abs=0.003)
    # every round times the baseline once from each copy (plus each copy's warm-up)
    timed_blocks = len(turns.baseline_seconds)
    assert abs(calls["early"] - calls["late"]) <= max(calls.values()) - timed_blocks // 2
    assert calls["late"] >= timed_blocks // 2


def test_a_long_pair_gets_more_budget_only_when_a_precision_is_asked():
    from perfgate.instruments.comparison import for_history

    gating = ComparePolicy(budget_seconds=20.0)
    assert for_history(gating, 3.0) == gating  # a verdict's own budget is unchanged
    nightly = ComparePolicy(budget_seconds=20.0, precision=0.03)
    assert for_history(nightly, 3.0).budget_seconds == 60.0


def test_an_arm_that_spins_gets_its_settle_gap_before_the_other_arm_s_block_and_longer_blocks():
    from perfgate.instruments.comparison import LocalArms, compare_blocks

    clock = FakeClock()
    calls = {"baseline": 0, "candidate": 0}

    def work(arm: str):
        def call() -> None:
            calls[arm] += 1
            clock.advance(0.01)

        return call

    arms = LocalArms({"baseline": [work("baseline")], "candidate": [work("candidate")]}, fake_timer(clock),
                     settle={"candidate": 0.1})  # fmt: skip
    result = compare_blocks(arms, clock, None, ComparePolicy(min_pairs=4, max_pairs=4))
    assert result.calls_per_block >= 20  # a block of at least twice the gap: 0.2 s of 0.01 s calls
    rounds = len(result.baseline_seconds) // 2
    # ABBA: only a baseline block that follows the candidate's settles, once per round, in its own untimed
    # calls (10 of 0.01 s), so it starts warm; the candidate never waits for the baseline (no gap asked)
    assert arms.settle_calls == 10 * rounds
    timed = result.calls_per_block * len(result.baseline_seconds)
    assert calls["baseline"] == timed + arms.settle_calls + result.warmup_calls["baseline"]
    assert calls["candidate"] == timed + result.warmup_calls["candidate"]
