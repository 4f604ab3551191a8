"""torch.compile of the training step (the model compiled, forward and backward; the optimizer step
eager, as the Trainer's ``torch_compile``): what compiling costs (the first step into an empty inductor
cache, and the first step of a recompile with that cache filled), the graphs and graph breaks, the
steady step against eager, timed ABBA, and the losses against eager's."""

from __future__ import annotations

import pytest

from perfgate.plugin import Bench


@pytest.mark.cpu
def test_a_compiled_training_step(perfgate: Bench) -> None:
    result = perfgate.gate("minilm", "train-torch-compile", scenario="train-step", batch_size=8, memory=False)
    compiled = result.metrics["compile"]
    assert compiled["warm_seconds"] < compiled["cold_seconds"], "a filled cache spares the code generation"
    assert compiled["graph_breaks"] == 0, compiled["break_reasons"]


@pytest.mark.cpu
@pytest.mark.slow
def test_a_compiled_training_step_with_its_memory(perfgate: Bench) -> None:
    perfgate.gate("minilm", "train-torch-compile", scenario="train-step", batch_size=8)


@pytest.mark.gpu
def test_a_compiled_training_step_on_a_gpu(perfgate: Bench) -> None:
    perfgate.gate("bert-base-random", "train-torch-compile", scenario="train-step", batch_size=16, device="cuda")
