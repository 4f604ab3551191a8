"""Dynamic int8 quantization of Linear layers with PyTorch (weights int8 ahead of time, activations
quantized per batch at run time). CPU only: the quantized kernels are fbgemm/x86 ones."""

from __future__ import annotations

import copy
import time
import warnings
from pathlib import Path
from typing import ClassVar

from perfgate.subjects.model import LoadedModel
from perfgate.subjects.technique import Technique, Variant, matmul_layers, quantized_variant


class _DynamicInt8(Technique):
    role: ClassVar[str] = "quantizer"
    needs_fp32_weights: ClassVar[bool] = True  # "expected scalar type Float but found BFloat16" after a cast
    per_channel: bool
    devices = frozenset({"cpu"})

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        import torch
        from torch.ao import quantization

        start = time.perf_counter()
        qconfig = quantization.per_channel_dynamic_qconfig if self.per_channel else quantization.default_dynamic_qconfig
        with warnings.catch_warnings():
            # torch.ao.quantization announces its move to torchao; the API still works in this pin set.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            module = quantization.quantize_dynamic(  # type: ignore[no-untyped-call]  # untyped in torch
                copy.deepcopy(model.module), {torch.nn.Linear: qconfig}, dtype=torch.qint8
            )

        details = {
            "qconfig": "per-channel" if self.per_channel else "per-tensor",
            "engine": torch.backends.quantized.engine,
        }
        return quantized_variant(self.name, model, matmul_layers(model.module), module, start, details)


class PerTensor(_DynamicInt8):
    name = "torch-dynamic-int8-per-tensor"
    summary = "torch.ao quantize_dynamic, qint8 Linear weights, one scale per tensor"
    per_channel = False


class PerChannel(_DynamicInt8):
    name = "torch-dynamic-int8-per-channel"
    summary = "torch.ao quantize_dynamic, qint8 Linear weights, one scale per output channel"
    per_channel = True
