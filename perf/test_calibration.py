"""Runner calibration: run it on a new runner to learn its noise floor and the smallest effect resolved.

A/A must find no difference that matters (within 3%: a bias of the harness or a badly drifting runner
shows up here), and a planted 20% slowdown must be resolved and sized within 10% of its true value.
Whether 5% and 10% are resolved in the budget is recorded, not asserted: that is the runner's property.
"""

from __future__ import annotations

from typing import Any

import pytest

from perfgate.instruments.calibration import AA_TOLERANCE
from perfgate.plugin import Bench

# Spinning to plant the delay overshoots a little on a 2-core machine (one run measured 0.789x for an
# expected 0.833x, 5.4% off); the check is that the effect is found and roughly sized.
SIZE_TOLERANCE = 0.10


def check_calibration(calibration: dict[str, Any]) -> None:
    aa = calibration["aa"]["estimate"]
    assert abs(aa["speedup"] - 1) <= AA_TOLERANCE, f"A/A is not ~1.0: {calibration['summary']}"
    planted = calibration["planted"]["0.2"]
    estimate = planted["estimate"]
    assert estimate["ci_high"] < 1.0, f"a planted 20% slowdown was not resolved: {calibration['summary']}"
    assert abs(estimate["speedup"] / planted["expected_speedup"] - 1) < SIZE_TOLERANCE, (
        f"planted 20% measured as {estimate['speedup']:.3f}x, expected {planted['expected_speedup']:.3f}x"
    )


@pytest.mark.cpu
def test_cpu_runner_calibration(perfgate: Bench) -> None:
    check_calibration(perfgate.calibrate("minilm", device="cpu"))


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_runner_calibration(perfgate: Bench) -> None:
    check_calibration(perfgate.calibrate("bert-base-random", device="cuda", batch_size=8))
