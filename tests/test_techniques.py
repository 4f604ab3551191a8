"""Technique modules' own logic on the micro model (their speed and fidelity are the perf suite's)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from perfgate.subjects.catalogue import get_technique
from perfgate.subjects.model import load_model, model_class
from perfgate.subjects.techniques.padding import _pad


@pytest.fixture(scope="module")
def micro(micro_model_dir: Path):
    return load_model("micro", "text-classification", micro_model_dir)


def test_padding_appends_the_pad_value_on_the_right():
    padded = _pad(torch.tensor([[5, 6, 7]]), 6, 0)
    assert padded.tolist() == [[5, 6, 7, 0, 0, 0]]
    assert _pad(torch.tensor([[5, 6]]), 1, 0).tolist() == [[5, 6]]  # never truncates


def test_padding_keeps_the_primary_output(micro, tmp_path):
    variant = get_technique("pad-to-128").apply(micro, tmp_path, 1)
    inputs = micro.inputs(["a short sentence", "and a somewhat longer second one"])
    torch.testing.assert_close(variant.run(inputs), micro.run(inputs), atol=1e-5, rtol=1e-4)


def test_a_stack_applies_each_part_to_the_module_before_it(micro, tmp_path):
    variant = get_technique("bf16-cast+torch-dynamic-int8-per-channel").apply(micro, tmp_path, 1)
    assert [step["technique"] for step in variant.details["parts"]] == ["bf16-cast", "torch-dynamic-int8-per-channel"]
    assert variant.technique == "bf16-cast+torch-dynamic-int8-per-channel"
    assert variant.module is not micro.module


def test_a_stack_refuses_a_part_that_reloads_the_weights(micro, tmp_path):
    with pytest.raises(TypeError, match="must come first in a stack"):
        get_technique("bf16-cast+attention-eager").apply(micro, tmp_path, 1)
    with pytest.raises(TypeError, match="must come first in a stack"):  # no dtype change to give it away
        get_technique("torch-dynamic-int8-per-channel+attention-eager").apply(micro, tmp_path, 1)


def test_attention_support_is_read_from_the_model_class(micro_model_dir):
    bert = model_class("text-classification", micro_model_dir)
    assert get_technique("attention-eager").model_reason(bert) is None
    flex = get_technique("attention-flex").model_reason(bert)
    if getattr(bert, "_supports_flex_attn", False):
        assert flex is None
    else:
        assert flex is not None
        assert "_supports_flex_attn is False" in flex


def test_an_attention_implementation_is_the_one_loaded(micro, tmp_path):
    variant = get_technique("attention-eager").apply(micro, tmp_path, 1)
    assert variant.details["attn_implementation"] == "eager"
    inputs = micro.inputs(["one sentence", "another sentence here"])
    torch.testing.assert_close(variant.run(inputs), micro.run(inputs), atol=1e-5, rtol=1e-4)


def test_bettertransformer_says_sdpa_superseded_it_where_it_cannot_install():
    technique = get_technique("bettertransformer")
    reason = technique.unavailable_reason("feature-extraction", "cpu")
    if reason is None:
        pytest.skip("optimum.bettertransformer is installed here: nothing to explain")
    assert "SDPA" in reason
    assert "optimum < 2" in reason


def test_the_hub_kernel_skips_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    reason = get_technique("attention-hub-flash-attn2").unavailable_reason("feature-extraction", "cuda")
    assert reason is not None
    assert "HF_HUB_OFFLINE" in reason or "kernels" in reason


def test_an_onnxruntime_provider_this_build_lacks_is_a_skip_with_the_fix():
    pytest.importorskip("onnxruntime")
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    reason = get_technique("onnxruntime-cuda-o2").unavailable_reason("feature-extraction", "cuda")
    assert reason is not None
    assert "onnxruntime-gpu" in reason


def test_torchao_sizes_count_the_int8_data_and_scales(micro, tmp_path):
    pytest.importorskip("torchao")
    from perfgate.subjects.model import module_bytes

    variant = get_technique("torchao-int8-weight-only").apply(micro, tmp_path, 1)
    linears = [m for m in micro.module.modules() if isinstance(m, torch.nn.Linear)]
    fp32_linear = sum(m.weight.numel() * 4 for m in linears)
    # int8 weights, and per output row one fp32 scale and one int8 zero point
    int8_linear = sum(m.weight.numel() + m.weight.shape[0] * (4 + 1) for m in linears)
    assert variant.memory_bytes == module_bytes(micro.module) - fp32_linear + int8_linear


def test_bitsandbytes_layout_matches_bytes_per_parameter(micro, tmp_path):
    pytest.importorskip("bitsandbytes")
    variant = get_technique("bitsandbytes-nf4").apply(micro, tmp_path, 1)
    assert variant.details["quantized_layers"] > 0
    assert variant.details["held_bytes"] == variant.details["predicted_bytes"]


def test_the_bitsandbytes_prediction_fails_on_a_layout_it_does_not_describe(micro, tmp_path):
    """Double quantization stores the block scales as 8-bit codes, not fp32: held < predicted."""
    pytest.importorskip("bitsandbytes")
    from perfgate.subjects.techniques.bitsandbytes import Nf4

    class DoubleQuantNf4(Nf4):
        def config(self):
            config = super().config()
            config.bnb_4bit_use_double_quant = True
            return config

    details = DoubleQuantNf4().apply(micro, tmp_path, 1).details
    assert details["held_bytes"] != details["predicted_bytes"]


def test_a_backend_with_half_precision_kernels_is_skipped_on_fp32_with_the_stack_to_use():
    reason = get_technique("attention-sdpa-flash").input_reason(1, None)
    assert reason is not None
    assert "not fp32" in reason
    assert "bf16-cast+attention-sdpa-flash" in reason
    assert get_technique("bf16-cast+attention-sdpa-flash").input_reason(1, None) is None
    assert get_technique("fp16-autocast+attention-sdpa-cudnn").input_reason(8, None) is None
    assert get_technique("attention-sdpa-efficient").input_reason(8, None) is None  # fp32 kernels too


def test_the_flash_backend_is_skipped_where_the_case_pads():
    assert "takes no padding mask" in get_technique("bf16-cast+attention-sdpa-flash").input_reason(8, None)
    assert "pads to 128 tokens" in get_technique("bf16-cast+attention-sdpa-flash").input_reason(1, 128)
    assert get_technique("bf16-cast+attention-sdpa-cudnn").input_reason(8, 128) is None


def test_a_pinned_backend_stacks_on_a_cast_without_reloading(micro, tmp_path):
    variant = get_technique("bf16-cast+attention-sdpa-math").apply(micro, tmp_path, 1)
    pinned = variant.details["parts"][1]
    assert pinned["sdpa_backend"] == "MATH"
    assert pinned["attn_implementation"] == "sdpa"
    inputs = micro.inputs(["one sentence", "another sentence here"])
    output = variant.run(inputs)
    assert output.dtype == torch.bfloat16  # the cast's module served it, not a reloaded fp32 one
    torch.testing.assert_close(output.float(), micro.run(inputs), atol=0.1, rtol=0.1)


def test_compile_primes_the_timed_shape_before_timing_and_counts_its_graphs(micro, tmp_path, monkeypatch):
    """The sweep compiles at batch 1; batch 8 is a new shape: its compile happens in ``prime``, counted,
    and a second prime of the same shape compiles nothing. Dynamo's graphs are counted as with inductor;
    its eager backend spares the C++ build (a minute here)."""
    from perfgate.subjects.techniques.compile import PRIME_CALLS, TorchCompile

    monkeypatch.setattr(TorchCompile, "_compile", lambda self, module: torch.compile(module, backend="eager"))
    variant = get_technique("torch-compile").apply(micro, tmp_path, 1)
    batch = micro.inputs(["a sentence of some length"] * 8)
    primed = variant.prime(batch)
    assert primed["shape"] == list(batch["input_ids"].shape)
    assert primed["graphs"] >= 1
    assert len(primed["call_seconds"]) == PRIME_CALLS
    assert primed["graphs_in_all"] == variant.metrics["compile"]["graphs"] + primed["graphs"]
    assert variant.prime(batch)["graphs"] == 0


def test_an_io_bound_onnxruntime_session_gives_what_the_copying_one_gives(micro, tmp_path):
    """The IO binding the CUDA provider runs with, exercised here on the CPU provider: the same graph, the
    tensors bound in place instead of copied to numpy, the same output."""
    pytest.importorskip("onnxruntime")
    import onnxruntime

    from perfgate.subjects.techniques.onnxruntime import host_runner, io_bound_runner

    technique = get_technique("onnxruntime-o1")
    variant = technique.apply(micro, tmp_path, 1)
    session = onnxruntime.InferenceSession(variant.details["artifact"], providers=["CPUExecutionProvider"])
    inputs = micro.inputs(["a short one", "and a second, longer sentence to pad against"])
    bound = io_bound_runner(session, "cpu", 0)(inputs)
    torch.testing.assert_close(bound, host_runner(session)(inputs))
    assert bound.shape[0] == 2


def test_an_output_shape_takes_the_batch_and_length_for_its_symbolic_dimensions():
    from perfgate.subjects.techniques.onnxruntime import output_shape

    assert output_shape(["batch", "sequence", 384], 8, 24) == (8, 24, 384)
    assert output_shape(["Addoutput_dim_0", 2], 8, 24) == (8, 2)
    with pytest.raises(ValueError, match="dimension 2 is symbolic"):
        output_shape(["batch", "sequence", "hidden"], 8, 24)


def test_the_static_cache_is_measured_eager_as_named_and_compiled_by_its_compile_variant(micro_model_dir, tmp_path):
    """transformers compiles the decoding step of a static cache by itself on CUDA: both variants turn that
    off, and `static-cache-compile` compiles its forward itself."""
    import shutil

    import transformers

    decoder = tmp_path / "tiny-decoder"
    transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_head=2, n_embd=16)).save_pretrained(decoder)
    for name in micro_model_dir.iterdir():
        if "token" in name.name or name.name == "vocab.txt":
            shutil.copy(name, decoder / name.name)
    model = load_model("tiny-decoder", "text-generation", decoder)
    eager = get_technique("static-cache").apply(model, tmp_path, 1)
    compiled = get_technique("static-cache-compile").apply(model, tmp_path, 1)
    for variant in (eager, compiled):
        config = variant.module.generation_config
        assert (config.cache_implementation, config.disable_compile) == ("static", True)
        assert variant.details["transformers_auto_compile"] == "disabled"
    assert eager.details["compiled"] == "no"
    assert compiled.details["compiled"] == "forward"


def test_onnxruntime_runs_at_its_defaults_and_the_nospin_variant_says_what_it_changed(micro, tmp_path):
    pytest.importorskip("onnxruntime")
    spinning = get_technique("onnxruntime-o1").apply(micro, tmp_path, 2)
    assert [s["name"] for s in spinning.settings] == ["onnxruntime intra_op_num_threads"]  # both arms' count
    quiet = get_technique("onnxruntime-o2-nospin").apply(micro, tmp_path, None)
    assert [(s["name"], s["value"], s["default"]) for s in quiet.settings] == [
        ("onnxruntime session.intra_op.allow_spinning", "0", "1"),
        ("onnxruntime inter_op_num_threads", "1", "0 (ORT's choice)"),
    ]
