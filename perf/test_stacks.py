"""Stacks: techniques users combine, named by their parts and built from the registered techniques.
The report's "Stacks" section says whether each stack beats its best part measured in the same run."""

from __future__ import annotations

import pytest

from perfgate.plugin import Bench


@pytest.mark.cpu
@pytest.mark.slow  # ~60 s (a compile): nightly, to keep the default run under 15 min with loading in it
def test_bf16_and_compile(perfgate: Bench) -> None:
    perfgate.gate("minilm", "bf16-cast+torch-compile", batch_size=1, memory=False)


@pytest.mark.cpu
@pytest.mark.slow  # ~70 s (two compiles and torchao's quantization): nightly, to keep the default run under 15 min
@pytest.mark.requires("torchao", fix="pip install torchao==0.18.0")
def test_torchao_int8_and_compile(perfgate: Bench) -> None:
    perfgate.gate("minilm", "torchao-int8-dynamic+torch-compile", batch_size=1, memory=False)


@pytest.mark.gpu
@pytest.mark.parametrize("stack", ["bf16-cast+torch-compile", "fp16-cast+torch-compile"])
def test_stacks_on_a_gpu(perfgate: Bench, stack: str) -> None:
    perfgate.gate("bert-base-random", stack, device="cuda", batch_size=8, memory=False)
