"""Gradient accumulation: the same samples per optimizer step in 4 micro-batches, against one large
batch with fp32 AdamW. The throughput cost is timed ABBA; the first steps' losses must match (the
gradients' equality is checked in correctness/test_training.py, with a wrong accumulation failing). At
batch 8 x 64 the weights, gradients and AdamW state dominate memory; at 32 x 128 (`slow`) activations
do, and accumulation's saving shows."""

from __future__ import annotations

import pytest

from perfgate.plugin import Bench

RECIPE = "train-grad-accumulation-4"


@pytest.mark.cpu
def test_accumulation_against_one_large_batch(perfgate: Bench) -> None:
    # At 8 x 64 weights, gradients and AdamW's state dominate memory: measured where activations do.
    perfgate.gate("minilm", RECIPE, scenario="train-step", batch_size=8, memory=False)


@pytest.mark.cpu
@pytest.mark.slow  # 2.5 s steps
def test_accumulation_where_activations_dominate_memory(perfgate: Bench) -> None:
    perfgate.gate("minilm", RECIPE, scenario="train-step", batch_size=32, seq_len=128)


@pytest.mark.gpu
def test_accumulation_on_a_gpu(perfgate: Bench) -> None:
    perfgate.gate("bert-base-random", RECIPE, scenario="train-step", batch_size=32, device="cuda")
