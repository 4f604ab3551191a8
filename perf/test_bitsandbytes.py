"""bitsandbytes 8-bit and 4-bit (NF4, FP4 with bf16 compute) against fp32 eager, through
BitsAndBytesConfig. Besides speed and fidelity, the weights held must match what bytes per parameter
predict for the layers bitsandbytes quantized (computed from the module, in the variant's details)."""

from __future__ import annotations

import pytest

from perfgate.plugin import Bench

pytestmark = pytest.mark.requires("bitsandbytes", "accelerate", fix="pip install bitsandbytes==0.50.2 accelerate")


def assert_matches_prediction(variant: dict[str, int]) -> None:
    assert variant["quantized_layers"] > 0
    assert abs(variant["held_bytes"] - variant["predicted_bytes"]) <= 0.01 * variant["predicted_bytes"], variant


@pytest.mark.cpu
@pytest.mark.parametrize(
    "technique",
    # All nightly: on CPUs a memory technique (nf4 0.32x, 67 s on cpu-avx2 with its task scoring; 8-bit 45 s),
    # and the clean-clone main job on cpu-avx2 took 15m34s on 2026-12-03 with nf4 in it: it must fit 15
    [
        pytest.param("bitsandbytes-int8", marks=pytest.mark.slow),
        pytest.param("bitsandbytes-nf4", marks=pytest.mark.slow),
        pytest.param("bitsandbytes-fp4", marks=pytest.mark.slow),
    ],
)
def test_bitsandbytes_on_an_encoder(perfgate: Bench, technique: str) -> None:
    result = perfgate.gate("minilm", technique, batch_size=1)
    assert_matches_prediction(result.variant)


@pytest.mark.gpu
@pytest.mark.parametrize("technique", ["bitsandbytes-int8", "bitsandbytes-nf4", "bitsandbytes-fp4"])
def test_bitsandbytes_on_a_gpu_decoder(perfgate: Bench, technique: str) -> None:
    result = perfgate.gate("gpt2-medium-random", technique, device="cuda", batch_size=8, memory=False)
    assert_matches_prediction(result.variant)
