"""Gradient checkpointing: activations recomputed in backward instead of kept, against the plain fp32
AdamW step. The extra compute is timed ABBA; the losses must match exactly (the gradients' equality is
in correctness/test_training.py). At 32 x 128 (`slow`) activations dominate and the memory saved shows;
the batch it buys is in test_train_batch_size.py."""

from __future__ import annotations

import pytest

from perfgate.plugin import Bench

RECIPE = "train-grad-checkpointing"


@pytest.mark.cpu
def test_checkpointing_against_the_plain_step(perfgate: Bench) -> None:
    # At 8 x 64 weights, gradients and AdamW's state dominate memory: measured where activations do.
    perfgate.gate("minilm", RECIPE, scenario="train-step", batch_size=8, memory=False)


@pytest.mark.cpu
@pytest.mark.slow  # 2.5-3.5 s steps
def test_checkpointing_where_activations_dominate_memory(perfgate: Bench) -> None:
    perfgate.gate("minilm", RECIPE, scenario="train-step", batch_size=32, seq_len=128)


@pytest.mark.gpu
def test_checkpointing_on_a_gpu(perfgate: Bench) -> None:
    perfgate.gate("bert-base-random", RECIPE, scenario="train-step", batch_size=16, device="cuda")
