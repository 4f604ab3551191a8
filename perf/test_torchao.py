"""torchao against fp32 eager. On CPU int8 dynamic is a compile-time technique: eager it is slower,
compiled (the stack in test_stacks.py) it is the fast path where the CPU has VNNI or AMX int8 dot
products; its thresholds follow that capability (cpu-int8-native / cpu-int8-emulated)."""

from __future__ import annotations

import pytest

from perfgate.plugin import Bench

pytestmark = pytest.mark.requires("torchao", fix="pip install torchao==0.18.0")


@pytest.mark.cpu
@pytest.mark.parametrize(
    ("technique", "batch_size"),
    [
        pytest.param(
            "torchao-int8-dynamic", 1, marks=pytest.mark.slow
        ),  # 48 s on cpu-avx2: the main job on cpu-avx2 (28 min, 2026-12-02) must fit 15
        pytest.param("torchao-int8-dynamic", 8, marks=pytest.mark.slow),
        pytest.param("torchao-int8-weight-only", 1, marks=pytest.mark.slow),
    ],
)
def test_torchao_on_an_encoder(perfgate: Bench, technique: str, batch_size: int) -> None:
    perfgate.gate("minilm", technique, batch_size=batch_size)


@pytest.mark.gpu
@pytest.mark.parametrize(
    "technique",
    [
        "torchao-int8-dynamic",
        "torchao-int8-weight-only",
        "bf16-cast+torchao-int4-weight-only",  # tinygemm packs bf16 weights
        "torchao-float8-dynamic",  # compute capability 8.9+
    ],
)
def test_torchao_on_a_gpu(perfgate: Bench, technique: str) -> None:
    """On BERT, whose matmuls are nn.Linear: GPT-2's blocks are transformers' Conv1D, which torchao does
    not quantize (int8 there changes 1 of 97 matmul layers, lm_head), and float8 needs dimensions that
    are multiples of 16."""
    perfgate.gate("bert-base-random", technique, device="cuda", batch_size=8, memory=False)
