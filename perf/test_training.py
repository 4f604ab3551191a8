"""Training recipes against plain fp32 AdamW on MiniLM as a two-label classifier, batch 8 x 64 tokens:
speed (steps timed ABBA in one worker), equivalence of the first steps' losses, peak memory over a few
steps, and the optimizer state against its rule."""

from __future__ import annotations

import pytest

from perfgate.plugin import Bench


@pytest.mark.cpu
@pytest.mark.slow  # ~45 s a recipe (two fresh workers for memory, steps timed for up to 20 s): nightly for now
@pytest.mark.parametrize(
    "recipe",
    ["train-grad-accumulation-4", "train-grad-checkpointing", "train-bf16-autocast", "train-adafactor",
     "train-adamw-8bit"],
)  # fmt: skip
def test_a_training_recipe_against_fp32_adamw(perfgate: Bench, recipe: str) -> None:
    perfgate.gate("minilm", recipe, scenario="train-step", batch_size=8)


@pytest.mark.gpu
@pytest.mark.parametrize("recipe", ["train-fp16-autocast", "train-bf16-autocast", "train-grad-checkpointing"])
def test_a_training_recipe_on_a_gpu(perfgate: Bench, recipe: str) -> None:
    perfgate.gate("bert-base-random", recipe, scenario="train-step", batch_size=16, device="cuda")
