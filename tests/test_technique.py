"""The technique registry: discovery by name, user registrations, stacks named by their parts."""

from __future__ import annotations

import copy

import pytest

from perfgate.errors import UnknownTechniqueError
from perfgate.subjects.catalogue import (
    built_in,
    get_technique,
    import_path,
    load_technique,
    register_technique,
    technique_names,
)
from perfgate.subjects.technique import STACK_SEPARATOR, Technique


def test_every_technique_module_is_found_without_a_list_to_edit():
    names = built_in()
    for expected in ("fp32-eager", "torch-compile", "attention-eager", "torchao-int8-dynamic", "bitsandbytes-nf4",
                     "onnxruntime-o1-int8-static", "static-cache", "static-cache-compile", "pad-to-128"):  # fmt: skip
        assert expected in names
    for name, path in names.items():
        technique = load_technique(path)
        assert technique.name == name
        assert isinstance(technique, Technique)


def test_a_stack_resolves_to_its_parts_in_order():
    stack = get_technique("bf16-cast+torch-compile")
    assert stack.name == "bf16-cast+torch-compile"
    assert [p.name for p in stack.parts] == ["bf16-cast", "torch-compile"]  # type: ignore[attr-defined]
    assert import_path("bf16-cast+torch-compile") == f"{built_in()['bf16-cast']}+{built_in()['torch-compile']}"
    assert stack.native_math == "bf16"
    assert stack.fresh_worker


def test_an_unknown_part_of_a_stack_is_named_in_the_error():
    with pytest.raises(UnknownTechniqueError) as raised:
        import_path("bf16-cast+no-such-part")
    assert raised.value.name == "no-such-part"


def test_a_part_that_serves_from_its_own_artifact_cannot_be_followed():
    reason = get_technique("onnxruntime-o2+torch-compile").unavailable_reason("feature-extraction", "cpu")
    assert reason is not None
    assert "onnxruntime-o2 serves from its own artifact" in reason
    assert get_technique("bf16-cast+onnxruntime-o2").unavailable_reason("feature-extraction", "cpu") is None


def test_a_stack_runs_only_where_every_part_runs():
    reason = get_technique("bf16-cast+torch-dynamic-int8-per-channel").unavailable_reason("feature-extraction", "cuda")
    assert reason is not None
    assert "runs on cpu, not cuda" in reason


def test_a_registered_name_may_not_contain_the_stack_separator():
    with pytest.raises(ValueError, match="joins the parts of a stack"):
        register_technique(f"a{STACK_SEPARATOR}b", "x:Y")


def test_user_registrations_join_the_built_in_names():
    register_technique("user-eager-copy", "perfgate.subjects.techniques.eager:Fp32Eager")
    assert "user-eager-copy" in technique_names()


def quantizable_module():
    """Two nn.Linear and one transformers Conv1D (GPT-2's block layer)."""
    import torch
    from transformers.pytorch_utils import Conv1D

    return torch.nn.Sequential(torch.nn.Linear(4, 4), Conv1D(4, 4), torch.nn.Sequential(torch.nn.Linear(4, 2)))


def test_matmul_layers_count_linear_and_conv1d_by_name():
    from perfgate.subjects.technique import matmul_layers

    layers = matmul_layers(quantizable_module())
    assert {name: signature[0] for name, signature in layers.items()} == {"0": "Linear", "1": "Conv1D", "2.0": "Linear"}
    assert layers["0"][1:] == ("Parameter", "torch.float32")


def test_a_quantizer_records_k_of_n_layers_and_changing_none_is_an_error():
    import torch

    from perfgate.errors import NothingQuantizedError
    from perfgate.subjects.model import LoadedModel
    from perfgate.subjects.technique import matmul_layers, quantized_variant

    source = quantizable_module()
    model = LoadedModel("gpt2ish", "feature-extraction", "models/gpt2ish", tokenizer=None, config=None, module=source)
    before = matmul_layers(source)
    quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(source), {torch.nn.Linear}, dtype=torch.qint8)
    variant = quantized_variant("int8", model, before, quantized, 0.0, {})
    assert variant.metrics["quantization"] == {"changed": 2, "total": 3, "left": {"Conv1D": 1}}  # Conv1D not Linear
    with pytest.raises(NothingQuantizedError, match=r"int8 on gpt2ish changed 0 of its 3 matmul layers "
                       r"\(1 Conv1D, 2 Linear\): the case would time fp32 against itself; fix: "):  # fmt: skip
        quantized_variant("int8", model, before, copy.deepcopy(source), 0.0, {})


def test_the_summary_shows_k_of_n_and_lists_what_was_left_in_fp32():
    from perfgate.engine.metrics.quantization import QuantizedLayers
    from perfgate.engine.record import CaseResult
    from perfgate.engine.spec import CaseSpec
    from perfgate.instruments.outcome import Outcome

    figures = {"changed": 1, "total": 9, "left": {"Conv1D": 8}}
    assert QuantizedLayers().cells(figures) == {"quantized": "1/9 layers"}
    case = CaseResult(CaseSpec("tiny-gpt2", "torch-dynamic-int8-per-tensor"), "cpu-avx2", outcome=Outcome.MEASURED)
    case.metrics["quantization"] = figures
    assert QuantizedLayers().section([case])[-1] == (
        "- `tiny-gpt2/torch-dynamic-int8-per-tensor/b1/cpu`: 1 of 9 changed; left: 8 Conv1D"
    )
