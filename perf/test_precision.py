"""fp16 and bf16, cast and autocast, against fp32 eager. The thresholds each case is held to are
looked up under the detected capability (native bf16/fp16 math or not) before the exact class."""

from __future__ import annotations

import pytest

from perfgate.plugin import Bench

TECHNIQUES = ["bf16-cast", "fp16-cast", "bf16-autocast", "fp16-autocast"]


@pytest.mark.cpu
# batch 8 nightly (`slow`): it made room in the default run for the training recipes
@pytest.mark.parametrize("batch_size", [1, pytest.param(8, marks=pytest.mark.slow)])
@pytest.mark.parametrize("technique", TECHNIQUES)
def test_precision_on_an_encoder(perfgate: Bench, technique: str, batch_size: int) -> None:
    perfgate.gate("minilm", technique, batch_size=batch_size)


@pytest.mark.cpu
@pytest.mark.slow  # 47 s on cpu-avx2: the main job on cpu-avx2 (28 min, 2026-12-02) must fit 15
def test_a_bf16_decoder_generates(perfgate: Bench) -> None:
    """Forward A/B and per-token decoding against fp32 (``min_decode_speedup`` where measured)."""
    perfgate.gate("tiny-gpt2", "bf16-cast", batch_size=1)


@pytest.mark.gpu
@pytest.mark.parametrize("technique", TECHNIQUES)
def test_precision_on_a_gpu(perfgate: Bench, technique: str) -> None:
    perfgate.gate("bert-base-random", technique, device="cuda", batch_size=8)
