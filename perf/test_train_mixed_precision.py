"""Mixed precision: the step under bf16 autocast (fp32 weights and optimizer) on CPU, where the
hardware class says whether the CPU has native bf16 (cpu-amx and cpu-avx512-bf16 do; on cpu-avx2 the
speed is recorded, not gated, as bf16 is emulated there); fp16 autocast with a gradient scaler and bf16
on a GPU. The losses over the first steps stay within the recipe's measured tolerance of fp32."""

from __future__ import annotations

import pytest

from perfgate.plugin import Bench


@pytest.mark.cpu
@pytest.mark.slow  # 72 s on cpu-avx2 (emulated bf16): the main job on cpu-avx2 (2026-12-02, 28 min) must fit 15
def test_bf16_autocast_on_cpu(perfgate: Bench) -> None:
    perfgate.gate("minilm", "train-bf16-autocast", scenario="train-step", batch_size=8, memory=False)


@pytest.mark.cpu
@pytest.mark.slow
def test_bf16_autocast_memory_where_activations_dominate(perfgate: Bench) -> None:
    """fp32 weights and optimizer state stay; the activations kept for backward are bf16."""
    perfgate.gate("minilm", "train-bf16-autocast", scenario="train-step", batch_size=32, seq_len=128)


@pytest.mark.gpu
@pytest.mark.parametrize("recipe", ["train-fp16-autocast", "train-bf16-autocast"])
def test_mixed_precision_on_a_gpu(perfgate: Bench, recipe: str) -> None:
    perfgate.gate("bert-base-random", recipe, scenario="train-step", batch_size=16, device="cuda")
