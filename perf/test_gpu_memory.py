"""GPU-sized models on CUDA: fp32 eager against itself, with the allocator's and NVML's memory figures.
The catalogue's GPU techniques (fp16/bf16, SDPA, FlashAttention-2) add their modules beside this one."""

from __future__ import annotations

import pytest

from perfgate.instruments.calibration import AA_TOLERANCE
from perfgate.plugin import Bench

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


@pytest.mark.parametrize("model", ["bert-base-random", "gpt2-medium-random"])
def test_fp32_eager_against_itself_on_cuda_is_within_noise(perfgate: Bench, model: str) -> None:
    result = perfgate.measure(model, "fp32-eager", device="cuda", batch_size=8)
    assert result.outcome == "measured", result.detail
    speed, memory = result.metrics["speed"], result.metrics["memory"]
    assert abs(speed["estimate"]["speedup"] - 1) <= AA_TOLERANCE, speed["estimate"]
    assert memory["candidate"]["cuda_peak_allocated"] > 0
