"""Runner calibration: how much noise this machine has, and the smallest effect the harness resolves.

A/A times the same variant against itself: its interval should contain 1.0, and its half-width is the
noise floor. Planted slowdowns run the same work and then spin for a fixed extra fraction of the time
that call took, so the true speedup is known (``1 / (1 + fraction)``); the smallest fraction whose
interval excludes 1.0 within the budget is the smallest resolvable effect.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from perfgate.instruments.comparison import ComparePolicy, Comparison, compare
from perfgate.instruments.timing import Timer, busy_wait

__all__ = ["AA_TOLERANCE", "Calibration", "calibrate", "with_planted_slowdown"]

# How far an A/A speedup may sit from 1.0 before the harness or the runner is suspect. Measured A/As
# here: 0.996-1.014 (±0.6-0.9% noise floor); the one at 0.967 exposed GC landing in one arm.
AA_TOLERANCE = 0.03


def with_planted_slowdown(
    work: Callable[[], object], fraction: float, timer: Timer, spin: Callable[[float], None] | None = None
) -> Callable[[], None]:
    """``work`` followed by ``fraction`` times its own duration of busy CPU."""
    clock = timer.clock
    wait = spin or (lambda seconds: busy_wait(seconds, clock))

    def planted() -> None:
        timer.synchronize()
        start = clock()
        work()
        timer.synchronize()
        wait(fraction * (clock() - start))

    return planted


@dataclass
class Calibration:
    aa: Comparison
    planted: dict[float, Comparison] = field(default_factory=dict)

    @property
    def noise_floor(self) -> float:
        """Half-width of the A/A interval, as a fraction (0.02 = ±2%)."""
        assert self.aa.estimate is not None
        return math.log(self.aa.estimate.ci_high / self.aa.estimate.ci_low) / 2

    def resolved(self, fraction: float) -> bool:
        estimate = self.planted[fraction].estimate
        return estimate is not None and estimate.ci_high < 1.0

    @property
    def smallest_resolved(self) -> float | None:
        found = [f for f in sorted(self.planted) if self.resolved(f)]
        return found[0] if found else None

    def to_dict(self) -> dict[str, Any]:
        aa = self.aa.estimate
        assert aa is not None
        smallest = self.smallest_resolved
        summary = (
            f"A/A {aa.speedup:.3f}x [{aa.ci_low:.3f}, {aa.ci_high:.3f}] over {aa.pairs} pairs, noise floor "
            f"±{self.noise_floor:.1%}; smallest planted slowdown resolved: "
            + (f"{smallest:.0%}" if smallest is not None else "none of " + ", ".join(f"{f:.0%}" for f in self.planted))
        )
        return {
            "summary": summary,
            "noise_floor": self.noise_floor,
            "smallest_resolved_fraction": smallest,
            "aa": self.aa.to_dict(),
            "planted": {f"{f:g}": {"expected_speedup": 1 / (1 + f), **c.to_dict()} for f, c in self.planted.items()},
        }


def calibrate(
    work: Callable[[], object],
    timer: Timer,
    policy: ComparePolicy,
    fractions: Sequence[float] = (0.05, 0.10, 0.20),
    spin: Callable[[float], None] | None = None,
) -> Calibration:
    result = Calibration(aa=compare(work, work, timer, bound=None, policy=policy))
    for fraction in fractions:
        slowed = with_planted_slowdown(work, fraction, timer, spin)
        # bound 1.0: FAIL means the interval lies wholly below 1, i.e. the slowdown was resolved
        result.planted[fraction] = compare(work, slowed, timer, bound=1.0, policy=policy)
    return result
