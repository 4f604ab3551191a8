"""Quantizing techniques store what their scheme says, layer by layer, and their fidelity orders as the
schemes predict. Sizes are read from each quantized layer's own tensors against the fp32 layer it
replaced (whole-model sizes would mix in the embeddings every scheme leaves in fp32):

    fp32 bytes == 2 x fp16/bf16 bytes == 4 x int8 bytes == 8 x packed 4-bit bytes   (weights alone)

plus the scales the scheme declares (one per output row for int8; one per block of ``blocksize``
weights for 4-bit). Fidelity: 8-bit at least as close to fp32 as 4-bit, per-channel at least as close as
per-tensor within one back-end, within ``ORDER_TOLERANCE`` of cosine (both are deterministic here).
"""

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
ORDER_TOLERANCE = 0.002  # cosine: ties between schemes are not an inversion
TEXTS = [
    "the cat sat on the mat", "quantization trades accuracy for speed and memory",
    "a third sentence, longer than the others, to fill a small batch with real tokens", "short",
]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    return load_model("tiny-bert", SOURCE.task, SOURCE.resolve(tmp_path_factory.getbasetemp() / "models"))


def fp32_linears(module: Any) -> dict[str, torch.nn.Linear]:
    return {name: sub for name, sub in module.named_modules() if type(sub) is torch.nn.Linear}


def weight_storage(layer: Any) -> tuple[int, int, int]:
    """(weight bytes, scale count, scale bytes) a quantized Linear holds, from its own tensors."""
    import bitsandbytes as bnb

    weight = layer.weight
    if isinstance(layer, bnb.nn.Linear8bitLt):
        scales = weight.SCB
    elif isinstance(layer, bnb.nn.Linear4bit):
        scales = weight.quant_state.absmax
    elif hasattr(weight, "qdata"):  # torchao's Int8Tensor
        weight, scales = weight.qdata, weight.scale
    else:
        return weight.numel() * weight.element_size(), 0, 0
    return weight.numel() * weight.element_size(), scales.numel(), scales.numel() * scales.element_size()


def layers_off_scheme(fp32: Any, quantized: Any, divisor: int, scales_per_layer: Any) -> list[str]:
    """Names of layers whose weight bytes are not fp32/divisor or whose scale count is not the scheme's."""
    wrong = []
    for name, before in fp32_linears(fp32).items():
        after = quantized.get_submodule(name)
        weight_bytes, scale_count, _ = weight_storage(after)
        if weight_bytes * divisor != before.weight.numel() * 4 or scale_count != scales_per_layer(before, after):
            wrong.append(name)
    return wrong


def one_per_row(before: Any, after: Any) -> int:
    return int(before.weight.shape[0])


def one_per_block(before: Any, after: Any) -> int:
    return -(-before.weight.numel() // after.weight.quant_state.blocksize)


OUTPUT_HEAD = "classifier"  # the bitsandbytes techniques keep output heads in full precision
POOLER = "bert.pooler.dense"  # named too; transformers 4.57 matches it, 5.x quantizes it regardless


@pytest.mark.requires("torchao", fix="pip install torchao==0.18.0")
@pytest.mark.parametrize("technique", ["torchao-int8-weight-only", "torchao-int8-dynamic"])
def test_torchao_int8_stores_a_quarter_of_the_fp32_bytes_and_a_scale_per_row(tiny_bert, technique):
    variant = get_technique(technique).apply(tiny_bert, Path("unused"), threads=None)
    assert layers_off_scheme(tiny_bert.module, variant.module, 4, one_per_row) == []


@pytest.mark.requires("bitsandbytes", "accelerate", fix="pip install bitsandbytes==0.50.2 accelerate")
@pytest.mark.parametrize(
    ("technique", "divisor", "scales"),
    [
        ("bitsandbytes-int8", 4, one_per_row),
        ("bitsandbytes-nf4", 8, one_per_block),
        ("bitsandbytes-fp4", 8, one_per_block),
    ],
)
def test_bitsandbytes_stores_what_its_bits_per_weight_say(tiny_bert, technique, divisor, scales):
    variant = get_technique(technique).apply(tiny_bert, Path("unused"), threads=None)
    fp32 = fp32_linears(tiny_bert.module)
    kept = {n for n in fp32 if type(variant.module.get_submodule(n)) is torch.nn.Linear}
    assert OUTPUT_HEAD in kept
    assert kept <= {OUTPUT_HEAD, POOLER}  # nothing else stays in full precision
    wrong = [n for n in layers_off_scheme(tiny_bert.module, variant.module, divisor, scales) if n not in kept]
    assert wrong == []
    assert variant.details["quantized_layers"] == len(fp32) - len(kept)


@pytest.mark.requires("torchao", fix="pip install torchao==0.18.0")
def test_the_layer_check_names_a_layer_a_faulty_quantizer_left_in_fp32(tiny_bert):
    import copy

    variant = get_technique("torchao-int8-weight-only").apply(tiny_bert, Path("unused"), threads=None)
    skipped = "bert.encoder.layer.0.attention.self.query"
    faulty = copy.deepcopy(variant.module)
    faulty.get_submodule(skipped).weight = torch.nn.Parameter(tiny_bert.module.get_submodule(skipped).weight.clone())
    assert layers_off_scheme(tiny_bert.module, faulty, 4, one_per_row) == [skipped]


def cosine(model: LoadedModel, technique: str) -> float:
    variant = get_technique(technique).apply(model, Path("unused"), threads=None)
    inputs = model.inputs(TEXTS)
    produced, reference = variant.run(inputs).float(), model.run(inputs)
    return float(torch.nn.functional.cosine_similarity(produced, reference).min())


def out_of_order(closer: float, coarser: float) -> bool:
    return closer < coarser - ORDER_TOLERANCE


@pytest.mark.requires("bitsandbytes", "accelerate", fix="pip install bitsandbytes==0.50.2 accelerate")
def test_bitsandbytes_8bit_is_at_least_as_close_as_4bit(tiny_bert):
    eight = cosine(tiny_bert, "bitsandbytes-int8")
    assert not out_of_order(eight, cosine(tiny_bert, "bitsandbytes-nf4"))
    assert not out_of_order(eight, cosine(tiny_bert, "bitsandbytes-fp4"))


def test_per_channel_int8_is_at_least_as_close_as_per_tensor(tiny_bert):
    per_channel = cosine(tiny_bert, "torch-dynamic-int8-per-channel")
    per_tensor = cosine(tiny_bert, "torch-dynamic-int8-per-tensor")
    assert not out_of_order(per_channel, per_tensor)
    assert out_of_order(0.90, 0.95)
    assert not out_of_order(0.949, 0.95)
