"""bitsandbytes through transformers' ``BitsAndBytesConfig``: LLM.int8 (8-bit) and 4-bit NF4/FP4 with a
compute dtype. bitsandbytes 0.50 has a CPU backend, so these run on CPU and CUDA.

The weights are loaded quantized (``from_pretrained(quantization_config=...)``); transformers 5 removed
the ``load_in_8bit=`` keyword, so only the config object is used, which both pin sets accept.
``memory_bytes`` is what the quantized module holds, and ``details["predicted_bytes"]`` what bytes per
parameter predict from the module's own layers (which Linear layers were quantized, which stayed):
8-bit keeps one int8 per weight and one fp32 scale per output row; 4-bit packs two weights per byte and
keeps one absmax per block of ``blocksize`` weights. The perf tests hold the two within a tolerance.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

from perfgate.subjects.model import LoadedModel, load_module, model_class
from perfgate.subjects.technique import Requirement, Technique, Variant, matmul_layers, quantized_variant

# Output heads stay in full precision, named explicitly: transformers 4.57 infers that on its own and 5.x
# does not, and bitsandbytes' CPU 4-bit kernel fails on a head of 4 outputs ("N must be divisible by
# block_n"). Named here, both pin sets quantize the same layers.
OUTPUT_MODULES = ["classifier", "lm_head", "pooler"]


class _BitsAndBytes(Technique):
    role: ClassVar[str] = "quantizer"
    loads_weights: ClassVar[bool] = True  # from_pretrained with a quantization config
    requires = (
        Requirement("bitsandbytes", "pip install bitsandbytes==0.50.2"),
        Requirement("accelerate", "pip install accelerate"),
    )
    devices = frozenset({"cpu", "cuda"})
    bits: ClassVar[int]
    quant_type: ClassVar[str | None] = None

    def config(self) -> Any:
        import torch
        from transformers import BitsAndBytesConfig

        if self.bits == 8:
            return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=OUTPUT_MODULES)
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=self.quant_type, bnb_4bit_compute_dtype=torch.bfloat16,
            llm_int8_skip_modules=OUTPUT_MODULES,
        )  # fmt: skip

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        if model.stacked:
            raise TypeError(f"{self.name} loads the weights quantized, so it must come first in a stack")
        start = time.perf_counter()
        module = load_module(model.task, model.location, model.device, quantization_config=self.config(),
                             device_map=model.device)  # fmt: skip
        details = {"bits": self.bits, "quant_type": self.quant_type or "llm.int8", **quantized_layout(module)}
        variant = quantized_variant(self.name, model, source_layers(model), module, start, details)
        variant.memory_bytes = details["held_bytes"]
        return variant


def source_layers(model: LoadedModel) -> dict[str, tuple[str, str, str]]:
    """The fp32 model's matmul layers, from a skeleton on the meta device: bitsandbytes loads the weights
    quantized, and loading the fp32 module only to count its layers would charge its memory to this arm."""
    import torch

    with torch.device("meta"):
        skeleton = model_class(model.task, model.location)(model.config)
    return matmul_layers(skeleton)


def quantized_layout(module: Any) -> dict[str, Any]:
    """What the module holds and what bytes per parameter predict for it, layer by layer."""
    import bitsandbytes as bnb
    import torch

    held = predicted = quantized_layers = 0
    quantized_params: set[int] = set()
    for layer in module.modules():
        if isinstance(layer, bnb.nn.Linear8bitLt):
            weight = layer.weight
            rows, cols = weight.shape
            predicted += rows * cols + rows * 4  # int8 weights, one fp32 scale per output row
            held += weight.numel() * weight.element_size() + _tensor_bytes(getattr(weight, "SCB", None))
        elif isinstance(layer, bnb.nn.Linear4bit):
            weight, state = layer.weight, layer.weight.quant_state
            count = int(torch.Size(state.shape).numel())
            predicted += count // 2 + -(-count // state.blocksize) * 4  # two weights a byte, fp32 absmax a block
            held += weight.numel() * weight.element_size() + _tensor_bytes(state.absmax)
        else:
            continue
        quantized_layers += 1
        quantized_params.add(id(layer.weight))
    rest = sum(
        t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()] if id(t) not in quantized_params
    )
    return {"quantized_layers": quantized_layers, "held_bytes": held + rest, "predicted_bytes": predicted + rest}


def _tensor_bytes(tensor: Any) -> int:
    return 0 if tensor is None else int(tensor.numel() * tensor.element_size())


class Int8(_BitsAndBytes):
    name = "bitsandbytes-int8"
    summary = "bitsandbytes LLM.int8(): int8 weights, outlier columns in higher precision"
    bits = 8


class Nf4(_BitsAndBytes):
    name = "bitsandbytes-nf4"
    summary = "bitsandbytes 4-bit NormalFloat weights, bf16 compute"
    bits = 4
    quant_type = "nf4"


class Fp4(_BitsAndBytes):
    name = "bitsandbytes-fp4"
    summary = "bitsandbytes 4-bit float weights, bf16 compute"
    bits = 4
    quant_type = "fp4"
