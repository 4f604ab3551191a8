"""Sharded and data-parallel training through torch.distributed: DDP, ZeRO-1 (ZeroRedundancyOptimizer)
and FSDP2 (shard-grad-op and full-shard), two ranks under torchrun on MiniLM, each against fp32 AdamW in
one process at the same global batch. What each rank holds and moves is checked against what the engine
predicts, to the percent; memory per rank against DDP's; the first losses against one process's."""

from __future__ import annotations

import pytest

from perfgate.plugin import Bench

RECIPES = [
    "train-ddp", "train-ddp-grad-copy", "train-zero1", "train-fsdp-shard-grad-op", "train-fsdp-full-shard",
    "train-fsdp-mixed-precision",
]  # fmt: skip


# Nightly: each case starts its ranks twice (the recipe, then DDP's memory once per model), a minute or more
# on 2 cores.
@pytest.mark.cpu
@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES)
def test_distributed_recipe_on_minilm(perfgate: Bench, recipe: str) -> None:
    result = perfgate.gate("minilm", recipe, scenario="train-distributed", batch_size=8)
    figures = result.metrics["distributed"]
    for row in figures["ranks"]:
        if recipe == "train-zero1":  # its own partition's AdamW state, uneven: the embeddings are 36% alone
            assert row["errors"]["optimizer_state"] <= 0.05, row
        if recipe in ("train-fsdp-full-shard", "train-fsdp-mixed-precision"):  # sum of ceil(dim0 / 2) rows
            assert row["errors"]["parameters"] <= 0.01, row
        assert row["communication_error"] <= 0.05, row
    if recipe not in ("train-ddp", "train-ddp-grad-copy"):
        assert figures["memory"]["saving"] > 0, "sharding held no fewer tensor bytes per rank than DDP"
        assert figures["memory"]["resolved"], figures["memory"]  # MiniLM's savings are tens of MiB
    if recipe not in ("train-ddp", "train-ddp-grad-copy", "train-fsdp-mixed-precision"):
        # FSDP2 with bf16 parameters saves tensor bytes but not anonymous memory on CPU: its peak came out
        # above DDP's (1.03x), the allocator keeping its casts' and all-gathers' buffers
        assert figures["memory"]["ratio"] < 1.0, "sharding held no less anonymous memory per rank than DDP"


# Nightly: the planted recipe promises ZeRO-1 and keeps AdamW's whole state on every rank (plain DDP).
@pytest.mark.cpu
@pytest.mark.slow
def test_a_recipe_that_keeps_the_whole_optimizer_state_fails_its_held_bytes_and_its_saving(perfgate: Bench) -> None:
    result = perfgate.measure("minilm", "planted-zero1-whole-state", scenario="train-distributed", batch_size=8)
    assert result.outcome == "measured", result.detail
    failed = {check.name for check in result.failures()}
    assert {"max_shard_prediction_error", "min_saving_ratio"} <= failed, result.checks


# Nightly: full sharding over 4 ranks on the runner's cores; what each rank holds and saves against DDP at 4
# ranks is judged, the speed and the memory ratio (measured at 2 ranks) are recorded.
@pytest.mark.cpu
@pytest.mark.slow
def test_full_shard_on_four_ranks(perfgate: Bench) -> None:
    result = perfgate.gate("minilm", "train-fsdp-full-shard", scenario="train-distributed", batch_size=8, world=4)
    figures = result.metrics["distributed"]
    assert len(figures["ranks"]) == 4
    assert all(row["errors"]["parameters"] <= 0.01 for row in figures["ranks"]), figures["ranks"]
    assert "recorded, not gated" in figures["world_note"]


# The default selection's one distributed case: ZeRO-1 on the smallest model, its memory against DDP's.
@pytest.mark.cpu
def test_zero1_against_ddp_on_tiny_bert(perfgate: Bench) -> None:
    result = perfgate.gate("tiny-bert", "train-zero1", scenario="train-distributed", batch_size=8)
    figures = result.metrics["distributed"]
    states = [row["measured"]["optimizer_state"] for row in figures["ranks"]]
    assert sum(states) == 2 * figures["parameter_bytes"]  # the ranks' partitions make AdamW's whole state once
    assert figures["memory"]["resolved"] is False, figures["memory"]  # a few MiB beside a peak of hundreds
