"""GPU sized models: fp32 eager A/A on CUDA with allocator and NVML memory (the catalogue adds fp16,
SDPA, FlashAttention-2 and friends here)."""

from __future__ import annotations

import pytest

from perfgate.plugin import Bench

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


@pytest.mark.parametrize("model", ["bert-base-random", "gpt2-medium-random"])
def test_fp32_eager_against_itself_on_cuda_is_within_noise(perfgate: Bench, model: str) -> None:
    result = perfgate.measure(model, "fp32-eager", device="cuda", batch_size=8)
    assert result.outcome == "measured", result.detail
    estimate = result.comparison["estimate"]  # type: ignore[index]
    assert estimate["ci_low"] <= 1.0 <= estimate["ci_high"] or abs(estimate["speedup"] - 1) < 0.03
    assert result.memory["candidate"]["cuda_peak_allocated"] > 0  # type: ignore[index]
