"""A real CUDA error on the GPU costs its own case only: the worker that saw it is replaced, and the
next GPU case runs in a fresh process and passes."""

from __future__ import annotations

import pytest

from perfgate.plugin import Bench

pytestmark = pytest.mark.gpu


def test_a_device_side_assert_is_an_error_and_the_next_gpu_case_passes(perfgate: Bench) -> None:
    failed = perfgate.measure("tiny-bert", "planted-cuda-device-assert", device="cuda", batch_size=2)
    assert failed.outcome == "error", failed.detail
    assert "CUDA error" in failed.detail
    after = perfgate.measure("tiny-bert", "fp32-eager", device="cuda", batch_size=2)
    assert after.outcome == "measured", after.detail
    assert after.worker["jobs"][0]["pid"] != failed.worker["jobs"][0]["pid"]
