"""Data preloading: DataLoader workers 0 against 2 over a dataset whose every item costs a fixed wait
(set so loading a batch costs what its step computes). Epochs are timed ABBA; the speedup is measured
against what the step's compute time and the per-item cost predict (``min_prefetch_efficiency``), and
the losses must be identical: the workers deliver the same batches in the same order."""

from __future__ import annotations

import pytest

from perfgate.plugin import Bench


@pytest.mark.cpu
def test_loader_workers_against_loading_in_the_training_process(perfgate: Bench) -> None:
    # tiny-bert: the loader's effect does not depend on the model, and its short steps make epochs short
    # enough for ten ABBA pairs in the default budget (MiniLM's optimizer step alone takes ~0.2 s here)
    result = perfgate.gate("tiny-bert", "train-dataloader-workers-2", scenario="train-dataloader", batch_size=8)
    assert result.metrics["training"]["max_loss_diff"] == 0.0, "the same batches in the same order"


@pytest.mark.gpu
def test_loader_workers_on_a_gpu(perfgate: Bench) -> None:
    perfgate.gate("bert-base-random", "train-dataloader-workers-2", scenario="train-dataloader", batch_size=16,
                  device="cuda")  # fmt: skip
