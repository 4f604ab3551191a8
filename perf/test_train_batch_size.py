"""Training batch size: samples per second and peak memory over batch sizes up to the largest a
training step fits, each try a fresh worker in a memory cgroup of its own capped at a budget beyond its
libraries (scenarios/train_batch.py). For a recipe, its largest batch against fp32 AdamW's is gated
(``min_train_batch_fit_ratio``): what a recipe that saves memory buys in batch."""

from __future__ import annotations

import pytest

from perfgate.engine.scenarios.train_batch import training_cap
from perfgate.instruments.cgroup import CgroupUnavailable
from perfgate.plugin import Bench


def search(perfgate: Bench, model: str, recipe: str, device: str, **spec: object) -> dict:
    if device == "cpu":
        try:
            training_cap(device)
        except CgroupUnavailable as error:
            pytest.skip(str(error))
    figures = perfgate.gate(model, recipe, scenario="train-batch", device=device, **spec).metrics["train_batch"]
    for arm in ("baseline", "candidate"):
        tries, largest = dict(figures[arm]["tries"]), figures[arm]["largest"]
        assert largest > 0, "batch 1 fits"
        assert tries[largest] is True, "the reported size fitted"
        larger = [ok for size, ok in tries.items() if size > largest]
        assert larger, "a larger batch was tried"
        assert not any(larger), "and none fitted (an accumulating recipe tries whole micro-batches only)"
        sweep = figures[arm]["sweep"]
        assert [row["batch_size"] for row in sweep] == sorted(size for size, ok in tries.items() if ok)
        if figures["cap"]["kind"] == "cgroup":
            assert all(row["peak_bytes"] <= figures["cap"]["budget_bytes"] for row in sweep), "the cap held"
            assert sweep[0]["peak_bytes"] < sweep[-1]["peak_bytes"], "a larger batch holds more"
    return figures


@pytest.mark.cpu
@pytest.mark.slow  # ~8 fresh workers, 87 s on cpu-avx2: the main job on cpu-avx2 (2026-12-02, 28 min) must fit 15
def test_fp32_adamw_batch_sizes_up_to_the_largest_that_fits(perfgate: Bench) -> None:
    search(perfgate, "minilm", "train-adamw", "cpu")


@pytest.mark.cpu
@pytest.mark.slow  # two searches of ~8 fresh workers each
@pytest.mark.parametrize(
    "recipe", ["train-grad-checkpointing", "train-grad-accumulation-4", "train-adafactor", "train-adamw-8bit"]
)
def test_what_a_recipe_buys_in_batch_size(perfgate: Bench, recipe: str) -> None:
    search(perfgate, "minilm", recipe, "cpu")


@pytest.mark.gpu
@pytest.mark.parametrize("recipe", ["train-adamw", "train-grad-checkpointing"])
def test_training_batch_sizes_on_a_gpu(perfgate: Bench, recipe: str) -> None:
    """Real CUDA out-of-memory ends each search; every try is a fresh worker."""
    search(perfgate, "bert-base-random", recipe, "cuda")
