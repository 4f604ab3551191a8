from __future__ import annotations

import numpy as np

from perfgate.calibration import calibrate, with_planted_slowdown
from perfgate.comparison import ComparePolicy
from perfgate.timing import Timer, TimerSettings
from tests.fakes import FakeClock, fake_timer, noisy_work


def test_warm_up_runs_until_call_times_settle():
    clock = FakeClock()
    durations = iter([0.5, 0.2, 0.05, 0.011, 0.010, 0.0102, 0.0101] + [0.01] * 100)
    timer = Timer(clock=clock, settings=TimerSettings(warmup_max_seconds=10))
    warm = timer.warm_up(lambda: clock.advance(next(durations)))
    assert warm.stable
    assert warm.calls == 6
    assert abs(warm.per_call_seconds - 0.0102) < 1e-9


def test_warm_up_gives_up_at_its_time_limit_and_says_so():
    clock = FakeClock()
    rng = np.random.default_rng(0)
    timer = Timer(clock=clock, settings=TimerSettings(warmup_max_seconds=1.0))
    warm = timer.warm_up(noisy_work(clock, 0.01, rng, sigma=1.0))
    assert not warm.stable
    assert 1.0 <= warm.seconds < 1.5


def test_blocks_are_long_enough_to_drown_timer_overhead():
    timer = Timer(settings=TimerSettings(min_block_seconds=0.02, max_calls_per_block=1000))
    assert timer.calls_per_block(0.001) == 20
    assert timer.calls_per_block(0.5) == 1
    assert timer.calls_per_block(1e-9) == 1000


def test_a_block_reports_seconds_per_call_and_synchronizes_around_it():
    clock = FakeClock()
    events = []
    timer = Timer(clock=clock, synchronize=lambda: events.append(clock.now))
    per_call = timer.time_block(lambda: clock.advance(0.25), calls=4)
    assert per_call == 0.25
    assert events == [0.0, 1.0]  # before the first call and after the last


def test_a_planted_slowdown_adds_its_fraction_of_each_call():
    clock = FakeClock()
    timer = fake_timer(clock)
    planted = with_planted_slowdown(lambda: clock.advance(0.1), 0.2, timer, spin=clock.advance)
    planted()
    assert abs(clock.now - 0.12) < 1e-12


def test_calibration_finds_the_noise_floor_and_the_smallest_resolved_effect():
    clock = FakeClock()
    rng = np.random.default_rng(5)
    outcome = calibrate(
        noisy_work(clock, 0.01, rng, sigma=0.03),
        fake_timer(clock),
        ComparePolicy(budget_seconds=3.0, resamples=500),
        fractions=(0.005, 0.2),
        spin=clock.advance,
    )
    assert outcome.noise_floor < 0.03
    assert outcome.resolved(0.2)
    assert outcome.smallest_resolved in (0.005, 0.2)
    assert "noise floor" in outcome.to_dict()["summary"]
