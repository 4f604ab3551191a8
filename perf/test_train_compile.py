"""torch.compile of the training step (the model compiled, forward and backward; the optimizer step
eager, as the Trainer's ``torch_compile``): what compiling costs (the first step into an empty inductor
cache, and the first step of a recompile with that cache filled), the graphs and graph breaks, the
steady step against eager, timed ABBA, and the losses against eager's."""

from __future__ import annotations

import pytest

from perfgate.plugin import Bench


@pytest.mark.cpu
def test_a_compiled_training_step(perfgate: Bench) -> None:
    # tiny-bert: a 2-layer graph compiles in a fraction of MiniLM's ~30 s (nightly, below)
    result = perfgate.gate("tiny-bert", "train-torch-compile", scenario="train-step", batch_size=8, memory=False)
    compiled = result.metrics["compile"]
    assert compiled["warm_seconds"] < compiled["cold_seconds"], "a filled cache spares the code generation"
    assert compiled["graph_breaks"] == 0, compiled["break_reasons"]


@pytest.mark.cpu
@pytest.mark.slow  # ~30 s of cold compile, and a warm compile in the memory worker
def test_a_compiled_minilm_training_step_with_its_memory(perfgate: Bench) -> None:
    result = perfgate.gate("minilm", "train-torch-compile", scenario="train-step", batch_size=8)
    assert result.metrics["compile"]["graph_breaks"] == 0, result.metrics["compile"]["break_reasons"]


@pytest.mark.gpu
def test_a_compiled_training_step_on_a_gpu(perfgate: Bench) -> None:
    perfgate.gate("bert-base-random", "train-torch-compile", scenario="train-step", batch_size=16, device="cuda")
