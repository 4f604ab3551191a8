"""Lower precision: fp16 and bf16 casts of the whole model, and autocast around the fp32 model.

A cast copies the module and converts its weights (inputs that are floating point are cast to match;
token ids stay integers). Autocast keeps fp32 weights and runs eligible ops (matmuls, linear layers) in
the lower precision, keeping precision-sensitive ones (layer norm, softmax) in fp32. Both run on CPU
and CUDA. Whether they pay off depends on native math for the dtype: each declares ``native_math``, and
its thresholds are looked up under the capability (``cpu-bf16-native``, ``cpu-fp16-emulated``, ...)
before the exact hardware class, so the expectation follows the detected hardware.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from perfgate.subjects.model import LoadedModel, module_bytes
from perfgate.subjects.technique import Technique, Variant, module_variant

if TYPE_CHECKING:
    import torch


def _dtype(name: str) -> torch.dtype:
    import torch

    dtype: torch.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[name]
    return dtype


class _Cast(Technique):
    role: ClassVar[str] = "dtype"
    devices = frozenset({"cpu", "cuda"})

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:

        assert self.native_math is not None
        dtype = _dtype(self.native_math)
        start = time.perf_counter()
        module = copy.deepcopy(model.module).to(dtype)
        return module_variant(self.name, model, module, start, {"dtype": str(dtype), "mode": "cast"}, dtype)


class _Autocast(Technique):
    role: ClassVar[str] = "dtype"
    devices = frozenset({"cpu", "cuda"})

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        import torch

        assert self.native_math is not None
        dtype = _dtype(self.native_math)
        device_type = model.device.partition(":")[0]
        module = model.module

        def run(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
            with torch.inference_mode(), torch.autocast(device_type, dtype=dtype):
                return model.primary_output(module(**inputs), inputs)

        return Variant(
            self.name,
            run,
            memory_bytes=module_bytes(module),
            independent_of_source=False,  # runs the fp32 module itself
            details={"dtype": str(dtype), "mode": "autocast"},
        )


class Bf16Cast(_Cast):
    name = "bf16-cast"
    summary = "weights and floating-point inputs cast to bfloat16"
    native_math: ClassVar[str | None] = "bf16"


class Fp16Cast(_Cast):
    name = "fp16-cast"
    summary = "weights and floating-point inputs cast to float16"
    native_math: ClassVar[str | None] = "fp16"


class Bf16Autocast(_Autocast):
    name = "bf16-autocast"
    summary = "fp32 weights, eligible ops in bfloat16 under torch.autocast"
    native_math: ClassVar[str | None] = "bf16"


class Fp16Autocast(_Autocast):
    name = "fp16-autocast"
    summary = "fp32 weights, eligible ops in float16 under torch.autocast"
    native_math: ClassVar[str | None] = "fp16"
