"""Runner calibration: run it on a new runner to learn its noise floor and the smallest effect resolved.

A/A must find no difference (its interval contains 1.0), and a planted 20% slowdown must be found and
measured close to its true size; the resolution for 5% and 10% is recorded, not asserted, because it
is a property of the runner.
"""

from __future__ import annotations

import pytest

from perfgate.plugin import Bench


def _check(calibration: dict[str, object]) -> None:
    aa = calibration["aa"]["estimate"]  # type: ignore[index]
    assert aa["ci_low"] <= 1.0 <= aa["ci_high"], f"A/A interval excludes 1.0: {calibration['summary']}"
    planted = calibration["planted"]["0.2"]  # type: ignore[index]
    estimate = planted["estimate"]
    assert estimate["ci_high"] < 1.0, f"a planted 20% slowdown was not resolved: {calibration['summary']}"
    assert abs(estimate["speedup"] / planted["expected_speedup"] - 1) < 0.05, (
        f"planted 20% measured as {estimate['speedup']:.3f}x, expected {planted['expected_speedup']:.3f}x"
    )


@pytest.mark.cpu
def test_cpu_runner_calibration(perfgate: Bench) -> None:
    _check(perfgate.calibrate("minilm", device="cpu"))


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_runner_calibration(perfgate: Bench) -> None:
    _check(perfgate.calibrate("bert-base-random", device="cuda", batch_size=8))
