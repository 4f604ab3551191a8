"""A fake clock and seeded noisy work, so timing and statistics are tested without sleeping."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from perfgate.instruments.timing import Timer, TimerSettings


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def noisy_work(
    clock: FakeClock,
    seconds: float,
    rng: np.random.Generator,
    sigma: float = 0.05,
    drift: float = 0.0,
    period: float = 3.0,
) -> Callable[[], None]:
    """Work of ``seconds`` with lognormal noise and an optional slow drift shared by every arm
    (the machine getting slower and faster, as a neighbour's load comes and goes)."""

    def work() -> None:
        load = 1 + drift * math.sin(2 * math.pi * clock.now / period)
        clock.advance(seconds * load * float(rng.lognormal(0.0, sigma)))

    return work


def fake_timer(clock: FakeClock) -> Timer:
    # Blocks of one call: each fake call is already "long" relative to a fake clock's zero overhead.
    return Timer(clock=clock, settings=TimerSettings(min_block_seconds=0.0, warmup_max_seconds=0.5))
