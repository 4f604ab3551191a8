"""Models load their tokenizer and config at once and their fp32 weights only when asked: a variant
serving from its own artifact is then measured without the weights it was built from."""

from __future__ import annotations

import pytest

from perfgate.model import load_model


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
