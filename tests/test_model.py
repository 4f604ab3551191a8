"""Models load their tokenizer and config at once and their fp32 weights only when asked: a variant
serving from its own artifact is then measured without the weights it was built from."""

from __future__ import annotations

import pytest

from perfgate.subjects.model import copy_weights, load_model, weight_placement


def test_inputs_and_forward_arguments_need_no_weights(micro_model_dir):
    model = load_model("micro", "text-classification", micro_model_dir)
    inputs = model.inputs(["one sentence", "and a second, longer one"])
    assert set(inputs) == {"input_ids", "token_type_ids", "attention_mask"}
    assert model.forward_arguments()[:3] == ["input_ids", "attention_mask", "token_type_ids"]
    assert not model.module_loaded


def test_the_fp32_module_loads_on_first_use_and_stays_released_once_released(micro_model_dir):
    model = load_model("micro", "text-classification", micro_model_dir)
    output = model.run(model.inputs(["a sentence"]))
    assert model.module_loaded
    assert output.shape == (1, 3)
    model.release_module()
    with pytest.raises(RuntimeError, match="released"):
        _ = model.module


def test_a_copied_placement_moves_every_weight_into_torch_s_allocator_and_keeps_the_outputs(micro_model_dir):
    mapped = load_model("micro", "text-classification", micro_model_dir, placement="mapped")
    copied = load_model("micro", "text-classification", micro_model_dir, placement="copied")
    before = {name: p.data_ptr() for name, p in mapped.module.named_parameters()}
    after = {name: p.data_ptr() for name, p in copied.module.named_parameters()}
    assert not set(before.values()) & set(after.values())
    assert weight_placement(copied.module)["aligned_64"] == 1.0
    inputs = mapped.inputs(["a short sentence", "and a somewhat longer one"])
    assert mapped.run(inputs).tolist() == copied.run(inputs).tolist()


def test_copying_keeps_tied_weights_tied():
    import torch

    embedding = torch.nn.Embedding(10, 4)
    head = torch.nn.Linear(4, 10, bias=False)
    head.weight = embedding.weight  # tied, as a language model's output layer
    module = copy_weights(torch.nn.ModuleDict({"embedding": embedding, "head": head}))
    assert module["head"].weight is module["embedding"].weight
    old = module["embedding"].weight.data_ptr()
    copy_weights(module)
    assert module["head"].weight.data_ptr() == module["embedding"].weight.data_ptr() != old


def test_an_unknown_placement_is_refused_naming_the_choices(micro_model_dir):
    with pytest.raises(ValueError, match="placement 'pinned': one of copied, mapped"):
        load_model("micro", "text-classification", micro_model_dir, placement="pinned")


def test_a_released_module_names_the_flag_that_keeps_it():
    from perfgate.subjects.model import LoadedModel

    model = LoadedModel("mine", "feature-extraction", "models/mine", tokenizer=None, config=None, module=object())
    model.release_module()
    with pytest.raises(RuntimeError, match=r"return Variant\(\.\.\., independent_of_source=False\)"):
        _ = model.module
