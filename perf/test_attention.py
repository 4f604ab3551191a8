"""Attention implementations against the fp32 baseline, which loads with transformers' default (SDPA
where the model class supports it; the variant's details record both). Flex attention, FlashAttention
and hub kernels skip with the reason where the model class, the device or a package rules them out;
BetterTransformer skips with the reason that SDPA superseded it."""

from __future__ import annotations

import pytest

from perfgate.plugin import Bench


@pytest.mark.cpu
@pytest.mark.parametrize(
    ("technique", "batch_size"),
    [
        pytest.param(
            "attention-eager", 1, marks=pytest.mark.slow
        ),  # 55 s on cpu-avx2: the main job on cpu-avx2 (2026-12-02, 28 min) must fit 15
        pytest.param("attention-eager", 8, marks=pytest.mark.slow),
        pytest.param("attention-sdpa-math", 8, marks=pytest.mark.slow),
        ("attention-flex", 1),  # BERT on transformers 4.57: a skip with the class's reason
        ("bettertransformer", 8),  # skips where optimum >= 2: SDPA superseded it
    ],
)
def test_attention_on_an_encoder(perfgate: Bench, technique: str, batch_size: int) -> None:
    perfgate.gate("minilm", technique, batch_size=batch_size)


@pytest.mark.cpu
def test_the_padding_caveat(perfgate: Bench) -> None:
    """One sentence padded to 128 tokens against the same sentence unpadded: what fixed shapes cost, gated
    where measured (cpu-avx2: 0.40x)."""
    perfgate.gate("minilm", "pad-to-128", batch_size=1)


@pytest.mark.gpu
def test_the_padding_caveat_on_a_gpu(perfgate: Bench) -> None:
    """Batch 1 on a GPU, where a padded sequence runs in the same few kernel launches: the cost of
    fixed shapes there is expected to be small, unlike on CPU (measured there: about 2.4x)."""
    perfgate.gate("bert-base-random", "pad-to-128", device="cuda", batch_size=1, memory=False)


@pytest.mark.gpu
@pytest.mark.parametrize(
    "technique",
    [
        "attention-eager", "attention-sdpa", "attention-sdpa-math", "attention-sdpa-efficient",
        "bf16-cast+attention-sdpa-efficient", "bf16-cast+attention-sdpa-cudnn", "attention-flash-attention-2",
        "attention-flash-attention-3", "attention-hub-flash-attn2", "bettertransformer", "pad-to-128",
    ],
)  # fmt: skip
def test_attention_on_a_gpu(perfgate: Bench, technique: str) -> None:
    """The flash and cuDNN backends have bf16/fp16 kernels only: they run stacked on bf16-cast (compare
    with bf16-cast alone for the backend's own share)."""
    perfgate.gate("bert-base-random", technique, device="cuda", batch_size=8, memory=False)


@pytest.mark.gpu
@pytest.mark.parametrize("model", ["bert-base-random", "gpt2-medium-random"])
@pytest.mark.parametrize("technique", ["bf16-cast+attention-sdpa-flash", "attention-flash-attention-2"])
def test_flash_attention_on_a_gpu(perfgate: Bench, model: str, technique: str) -> None:
    """Batch 1: SDPA's flash kernel takes no padding mask, so a padded batch cannot run on it."""
    perfgate.gate(model, technique, device="cuda", batch_size=1, memory=False)
