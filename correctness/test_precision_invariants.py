"""Precision techniques do what they claim, layer by layer: a cast stores every Linear layer in half
the bytes of fp32 and leaves the fp32 baseline it was built from untouched; autocast keeps fp32
weights and runs its matmuls in the lower precision. Checked on the modules, not on whole-model sizes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from fixtures.models import sources
from perfgate.subjects.catalogue import get_technique
from perfgate.subjects.model import LoadedModel, load_model

pytestmark = pytest.mark.cpu
SOURCE = next(s for s in sources() if s.name == "tiny-bert")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    return load_model("tiny-bert", SOURCE.task, SOURCE.resolve(tmp_path_factory.getbasetemp() / "models"))


def linear_bytes(module: Any) -> dict[str, int]:
    return {
        name: sub.weight.numel() * sub.weight.element_size()
        for name, sub in module.named_modules()
        if isinstance(sub, torch.nn.Linear)
    }


def layers_not_halved(fp32: Any, cast: Any) -> list[str]:
    """Names of Linear layers whose cast weights are not exactly half the fp32 bytes."""
    before, after = linear_bytes(fp32), linear_bytes(cast)
    return [name for name in before if before[name] != 2 * after.get(name, 0)]


@pytest.mark.parametrize("technique", ["bf16-cast", "fp16-cast"])
def test_a_cast_halves_every_linear_layer_and_leaves_the_fp32_source_alone(tiny_bert, technique):
    variant = get_technique(technique).apply(tiny_bert, Path("unused"), threads=None)
    assert layers_not_halved(tiny_bert.module, variant.module) == []
    assert {p.dtype for p in tiny_bert.module.parameters()} == {torch.float32}

    def parameter_bytes(module: Any) -> int:  # integer buffers (position ids) are not cast, and not counted
        return sum(p.numel() * p.element_size() for p in module.parameters())

    assert parameter_bytes(variant.module) * 2 == parameter_bytes(tiny_bert.module)


def test_the_layer_check_names_a_layer_a_faulty_cast_skipped(tiny_bert):
    variant = get_technique("bf16-cast").apply(tiny_bert, Path("unused"), threads=None)
    skipped = "bert.encoder.layer.0.attention.self.query"
    variant.module.get_submodule(skipped).float()  # a cast that forgot one layer
    assert layers_not_halved(tiny_bert.module, variant.module) == [skipped]


@pytest.mark.parametrize("technique", ["bf16-autocast", "fp16-autocast"])
def test_autocast_keeps_fp32_weights_and_runs_matmuls_in_the_lower_precision(tiny_bert, technique):
    variant = get_technique(technique).apply(tiny_bert, Path("unused"), threads=None)
    seen: list[torch.dtype] = []
    layer = tiny_bert.module.get_submodule("bert.encoder.layer.0.intermediate.dense")
    handle = layer.register_forward_hook(lambda module, args, output: seen.append(output.dtype))
    try:
        variant.run(tiny_bert.inputs(["a sentence to run"]))
    finally:
        handle.remove()
    expected = torch.bfloat16 if technique.startswith("bf16") else torch.float16
    assert seen == [expected]
    assert layer.weight.dtype == torch.float32
