"""Attention implementations: the same fp32 weights loaded with another ``attn_implementation``, and
PyTorch's SDPA with one backend pinned at a time.

The fp32 eager baseline loads with transformers' default implementation (SDPA wherever the model class
supports it), recorded in each variant's details as ``baseline_attention``. A model class that does not
support an implementation (BERT and GPT-2 have no flex attention on transformers 4.57, T5 no SDPA) is a
skip with that reason, read from the class before any worker starts. FlashAttention-2/3 need CUDA and
their packages; hub kernels need the ``kernels`` package and a hub; BetterTransformer needs optimum < 2
with transformers < 4.49 — SDPA, the default attention in transformers since, superseded it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from perfgate.subjects.model import LoadedModel, load_module, module_bytes
from perfgate.subjects.technique import Requirement, Technique, Variant, cast_inputs

if TYPE_CHECKING:
    import torch

# attn_implementation -> the class attribute that says a model class supports it
SUPPORT_FLAGS = {
    "sdpa": "_supports_sdpa",
    "flex_attention": "_supports_flex_attn",
    "flash_attention_2": "_supports_flash_attn",
    "flash_attention_3": "_supports_flash_attn",
}


class _Implementation(Technique):
    implementation: ClassVar[str]
    devices = frozenset({"cpu", "cuda"})
    sdpa_backend: ClassVar[str | None] = None  # a torch.nn.attention.SDPBackend member pinned while serving
    role: ClassVar[str] = "attention"
    loads_weights: ClassVar[bool] = True  # a pinned SDPA backend after a cast pins the cast's module instead

    def model_reason(self, model_class: type) -> str | None:
        flag = SUPPORT_FLAGS.get(self.implementation)
        if flag is not None and not getattr(model_class, flag, False):
            implementation = f"attn_implementation={self.implementation!r}"
            return f"{model_class.__name__} does not support {implementation} ({flag} is False)"
        return None

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        import torch

        start = time.perf_counter()
        baseline = getattr(model.module.config, "_attn_implementation", None)
        if model.stacked and self.sdpa_backend is not None and baseline == "sdpa":
            module = model.module  # a cast before this part: pin a backend on its SDPA module, no reload
        elif model.stacked:
            raise TypeError(f"{self.name} reloads the weights, so it must come first in a stack")
        else:
            module = load_module(model.task, model.location, model.device, attn_implementation=self.implementation)
        pinned = self._pinned()
        input_dtype = model.input_dtype

        def run(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
            inputs = cast_inputs(inputs, input_dtype)
            with torch.inference_mode(), pinned():
                return model.primary_output(module(**inputs), inputs)

        return Variant(
            self.name,
            run,
            memory_bytes=module_bytes(module),
            prepare_seconds=time.perf_counter() - start,
            module=module if self.sdpa_backend is None else None,  # generate() would not pin the backend
            details={
                "attn_implementation": module.config._attn_implementation,
                "baseline_attention": baseline,
                "sdpa_backend": self.sdpa_backend,
            },
            input_dtype=input_dtype,
        )

    def _pinned(self) -> Any:
        if self.sdpa_backend is None:
            return contextlib.nullcontext
        from torch.nn.attention import SDPBackend, sdpa_kernel

        backend = getattr(SDPBackend, self.sdpa_backend)
        return lambda: sdpa_kernel(backend)


class EagerAttention(_Implementation):
    name = "attention-eager"
    summary = "attn_implementation='eager': the model's own matmul-softmax-matmul attention"
    implementation = "eager"


class SdpaAttention(_Implementation):
    name = "attention-sdpa"
    summary = "attn_implementation='sdpa': torch.nn.functional.scaled_dot_product_attention, backend by PyTorch"
    implementation = "sdpa"


class FlexAttention(_Implementation):
    name = "attention-flex"
    summary = "attn_implementation='flex_attention': torch's FlexAttention (compiled attention kernels)"
    implementation = "flex_attention"
    fresh_worker = True  # it compiles its kernels: process-wide graph caches


class SdpaMath(_Implementation):
    name = "attention-sdpa-math"
    summary = "SDPA pinned to the math backend (the reference composite implementation)"
    implementation = "sdpa"
    sdpa_backend = "MATH"
    loads_weights = False
    hands_on_module = False  # the backend is pinned around the call, not in the module


class SdpaFlash(_Implementation):
    name = "attention-sdpa-flash"
    summary = "SDPA pinned to the flash backend (FlashAttention-2 built into PyTorch on CUDA)"
    implementation = "sdpa"
    sdpa_backend = "FLASH_ATTENTION"
    loads_weights = False
    hands_on_module = False
    devices = frozenset({"cuda"})
    needs_math = frozenset({"bf16", "fp16"})  # "No available kernel" on fp32
    takes_padding_mask = False  # the flash kernel has no attn_mask argument


class SdpaEfficient(_Implementation):
    name = "attention-sdpa-efficient"
    summary = "SDPA pinned to the memory-efficient backend (xFormers-style kernels)"
    implementation = "sdpa"
    sdpa_backend = "EFFICIENT_ATTENTION"
    loads_weights = False
    hands_on_module = False
    devices = frozenset({"cuda"})


class SdpaCudnn(_Implementation):
    name = "attention-sdpa-cudnn"
    summary = "SDPA pinned to the cuDNN attention backend"
    implementation = "sdpa"
    sdpa_backend = "CUDNN_ATTENTION"
    loads_weights = False
    hands_on_module = False
    devices = frozenset({"cuda"})
    needs_math = frozenset({"bf16", "fp16"})


class FlashAttention2(_Implementation):
    name = "attention-flash-attention-2"
    summary = "attn_implementation='flash_attention_2' (the flash_attn package)"
    implementation = "flash_attention_2"
    devices = frozenset({"cuda"})
    requires = (Requirement("flash_attn", "pip install flash-attn (CUDA builds only)"),)


class FlashAttention3(_Implementation):
    name = "attention-flash-attention-3"
    summary = "attn_implementation='flash_attention_3' (FlashAttention-3, Hopper GPUs)"
    implementation = "flash_attention_3"
    devices = frozenset({"cuda"})
    requires = (Requirement("flash_attn_interface", "build FlashAttention-3 from its hopper/ directory"),)


class HubFlashKernel(_Implementation):
    name = "attention-hub-flash-attn2"
    summary = "attn_implementation='kernels-community/flash-attn2': a hub kernel (transformers 5)"
    implementation = "kernels-community/flash-attn2"
    devices = frozenset({"cuda"})
    requires = (Requirement("kernels", "pip install kernels (and allow hub access)"),)

    def unavailable_reason(self, task: str, device: str) -> str | None:
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            return f"{self.name} downloads its kernel from the hub, and HF_HUB_OFFLINE=1 here"
        return super().unavailable_reason(task, device)


class BetterTransformer(Technique):
    name = "bettertransformer"
    role = "attention"
    summary = "optimum's BetterTransformer (nested tensors for padded batches); superseded by SDPA"
    requires = (
        Requirement(
            "optimum.bettertransformer",
            "it exists only in optimum < 2 with transformers < 4.49; SDPA (the default attention in "
            "transformers since) superseded it",
        ),
    )

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        import copy

        from optimum.bettertransformer import BetterTransformer as Converter

        from perfgate.subjects.technique import module_variant

        start = time.perf_counter()
        module = Converter.transform(copy.deepcopy(model.module))
        return module_variant(self.name, model, module, start, {"converter": "optimum.bettertransformer"})
