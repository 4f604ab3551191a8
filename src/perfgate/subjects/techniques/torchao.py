"""torchao quantization: the successor that ``torch.ao.quantization.quantize_dynamic`` names in its
deprecation. ``quantize_`` swaps Linear weights for quantized tensor subclasses on a copy of the module.

- int8 dynamic activation, int8 weight: on CPU its fast path is a compiled one (VNNI/AMX int8 GEMMs
  under ``torch.compile``); in eager mode it is slower than fp32. Measure it alone and as the stack
  ``torchao-int8-dynamic+torch-compile``. Its thresholds follow the detected int8 capability
  (``cpu-int8-native`` where the CPU has VNNI or AMX, ``cpu-int8-emulated`` where there is no fast int8
  kernel at all, which the report then gives as the reason for the slowdown);
- int8 weight-only: smaller weights, fp32 math (a memory technique on CPU);
- int4 weight-only (CUDA, tinygemm) and float8 dynamic (CUDA sm89+): GPU only.
Quantized tensors report their unpacked dtype through ``element_size``: ``model.tensor_bytes`` sizes
them by the tensors each subclass holds (``__tensor_flatten__``).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, ClassVar

from perfgate.subjects.model import LoadedModel
from perfgate.subjects.technique import Requirement, Technique, Variant, matmul_layers, quantized_variant


class _TorchAo(Technique):
    role: ClassVar[str] = "quantizer"
    requires = (Requirement("torchao", "pip install torchao==0.18.0"),)
    devices = frozenset({"cpu", "cuda"})
    config_name: ClassVar[str]
    options: ClassVar[dict[str, Any]] = {}

    def config(self) -> Any:
        """The torchao config object ``quantize_`` is given (``options`` are its arguments)."""
        from torchao import quantization

        return getattr(quantization, self.config_name)(**self.options)

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:

        start = time.perf_counter()
        before = matmul_layers(model.module)
        module = copy.deepcopy(model.module)
        from torchao.quantization import quantize_

        quantize_(module, self.config())
        details = {"config": self.config_name, **self.options}
        return quantized_variant(self.name, model, before, module, start, details)


class Int8Dynamic(_TorchAo):
    name = "torchao-int8-dynamic"
    summary = "torchao int8 dynamic activations, int8 weights (per channel), eager"
    config_name = "Int8DynamicActivationInt8WeightConfig"
    native_math: ClassVar[str | None] = "int8"


class Int8WeightOnly(_TorchAo):
    name = "torchao-int8-weight-only"
    summary = "torchao int8 weights, activations in the model's dtype"
    config_name = "Int8WeightOnlyConfig"


class Int4WeightOnly(_TorchAo):
    name = "torchao-int4-weight-only"
    summary = "torchao int4 weights (groups of 128), bf16 activations, CUDA tinygemm kernels"
    config_name = "Int4WeightOnlyConfig"
    # The tinygemm layout: torchao 0.18's default (PLAIN) packing imports mslk, which no pin set has.
    options: ClassVar[dict[str, Any]] = {"group_size": 128, "int4_packing_format": "tile_packed_to_4d"}
    devices = frozenset({"cuda"})
    needs_math = frozenset({"bf16"})  # tinygemm packs bf16 weights

    def config(self) -> Any:
        from torchao.quantization import Int4WeightOnlyConfig
        from torchao.quantization.quantize_.workflows import Int4PackingFormat

        return Int4WeightOnlyConfig(
            group_size=self.options["group_size"],
            int4_packing_format=Int4PackingFormat(self.options["int4_packing_format"]),
        )


class Float8Dynamic(_TorchAo):
    name = "torchao-float8-dynamic"
    summary = "torchao float8 dynamic activations and weights (CUDA, compute capability 8.9+)"
    config_name = "Float8DynamicActivationFloat8WeightConfig"
    devices = frozenset({"cuda"})
    native_math: ClassVar[str | None] = "fp8"
    min_compute_capability = (8, 9)  # Ada and Hopper: float8 tensor cores
