"""The technique contract (its registry of names is ``catalogue.py``).

A technique turns the fp32 eager ``LoadedModel`` into a ``Variant``: a callable that maps the same
tokenized inputs to the same primary output, plus what it costs in memory and on disk. Adding a
technique is one module under ``perfgate/subjects/techniques/`` with a ``Technique`` subclass (found there by its
``name``: no list to edit) and one test module under ``perf/``. Techniques combine into *stacks* named by
their parts joined with ``+`` (``bf16-cast+torch-compile``): each part is applied to the module the one
before it produced (``techniques/stack.py``).
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import torch

    from perfgate.subjects.hardware import GpuInfo
    from perfgate.subjects.model import LoadedModel

__all__ = [
    "RUNTIME_PROFILE_ENV",
    "STACK_SEPARATOR",
    "Requirement",
    "Technique",
    "Variant",
    "cast_inputs",
    "compute_capability_reason",
    "matmul_layers",
    "module_variant",
    "quantized_variant",
]


@dataclass(frozen=True)
class Requirement:
    module: str
    fix: str

    def missing(self) -> bool:
        try:
            return importlib.util.find_spec(self.module) is None
        except (ImportError, ValueError):  # a parent package is missing or broken
            return True


@dataclass
class Variant:
    technique: str
    run: Callable[[Mapping[str, torch.Tensor]], torch.Tensor]
    memory_bytes: int  # parameters and buffers the variant holds (model size in memory)
    disk_bytes: int | None = None  # size of the exported artifact, where there is one
    prepare_seconds: float = 0.0
    independent_of_source: bool = True  # False when ``run`` still uses the fp32 module it was built from
    module: Any = None  # the torch module behind ``run``, where there is one (enables generation metrics)
    details: dict[str, Any] = field(default_factory=dict)
    # Figures only this technique has (compile time, graph counts), by metric name: merged into the case's.
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    input_dtype: Any = None  # floating-point inputs are cast to this dtype before ``module`` sees them
    # Called once with the timed inputs before timing starts: what a variant does once per new shape
    # (a recompile, a CUDA graph's recording) happens there, not in the timed warm-up; returns its figures.
    prime: Callable[[Mapping[str, torch.Tensor]], dict[str, Any]] | None = None
    # Each runtime setting this variant sets away from the runtime's default (``changed_setting``): said
    # in results.json, the summary and the report, since a user who deploys at the defaults sees otherwise.
    settings: list[dict[str, Any]] = field(default_factory=list)
    # Where the runtime profiles its own operators (ONNX Runtime, when ``RUNTIME_PROFILE_ENV`` names a
    # file prefix as the variant is built): ends that profile and returns its file (``perfgate explain``).
    end_profiling: Callable[[], str] | None = None


def changed_setting(name: str, value: object, default: object, why: str) -> dict[str, Any]:
    """A runtime setting the harness or a variant set away from its default, and why."""
    return {"name": name, "value": str(value), "default": str(default), "why": why}


def cast_inputs(inputs: Mapping[str, torch.Tensor], dtype: Any) -> dict[str, torch.Tensor]:
    """Floating-point inputs cast to ``dtype`` (None: unchanged); token ids and masks stay integers."""
    return {k: v.to(dtype) if dtype is not None and v.is_floating_point() else v for k, v in inputs.items()}


MATMUL_LAYER_TYPES = ("Linear", "Conv1D")  # torch's nn.Linear; transformers' Conv1D (GPT-2's blocks)


def _layer_signature(layer: Any) -> tuple[str, str, str]:
    weight = getattr(layer, "weight", None)
    if callable(weight):  # torch.ao's dynamic quantized Linear: weight() unpacks it
        weight = weight()
    return type(layer).__name__, type(weight).__name__, str(getattr(weight, "dtype", None))


def matmul_layers(module: Any) -> dict[str, tuple[str, str, str]]:
    """Each matmul layer of ``module`` (``nn.Linear``, transformers' ``Conv1D``) by name: its class, its
    weight's class and dtype, so that a quantized copy shows which layers changed."""
    import torch

    return {
        name: _layer_signature(layer)
        for name, layer in module.named_modules()
        if isinstance(layer, torch.nn.Linear) or any(c.__name__ in MATMUL_LAYER_TYPES for c in type(layer).__mro__)
    }


def quantized_variant(
    technique: str, model: LoadedModel, before: dict[str, tuple[str, str, str]], module: Any, started: float,
    details: dict[str, Any],
) -> Variant:  # fmt: skip
    """``module_variant`` for a quantizer, with how many of the source's matmul layers (``before``, from
    ``matmul_layers``) it changed as the ``quantization`` metric; none changed raises NothingQuantizedError."""
    from perfgate.errors import NothingQuantizedError

    after = dict(module.named_modules())
    changed = {name for name, signature in before.items()
               if name not in after or _layer_signature(after[name]) != signature}  # fmt: skip
    kinds: dict[str, int] = {}
    left: dict[str, int] = {}  # layer types of the source left as they were
    for name, signature in before.items():
        kinds[signature[0]] = kinds.get(signature[0], 0) + 1
        if name not in changed:
            left[signature[0]] = left.get(signature[0], 0) + 1
    if before and not changed:
        raise NothingQuantizedError(technique, model.name, len(before), kinds)
    variant = module_variant(technique, model, module, started, details)
    variant.metrics["quantization"] = {"changed": len(changed), "total": len(before), "left": left}
    return variant


def module_variant(
    technique: str,
    model: LoadedModel,
    module: Any,
    started: float,
    details: dict[str, Any],
    input_dtype: torch.dtype | None = None,
) -> Variant:
    """A variant serving from a torch module derived from the fp32 one (a quantized or cast copy);
    ``started`` is the ``time.perf_counter()`` at which building it began. Floating-point inputs are cast
    to ``input_dtype`` where given (token ids stay integers)."""
    import torch

    from perfgate.subjects.model import module_bytes

    input_dtype = input_dtype or model.input_dtype

    def run(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        inputs = cast_inputs(inputs, input_dtype)
        with torch.inference_mode():
            return model.primary_output(module(**inputs), inputs)

    return Variant(
        technique,
        run,
        memory_bytes=module_bytes(module),
        prepare_seconds=time.perf_counter() - started,
        module=module,
        details=details,
        input_dtype=input_dtype,
    )


class Technique(ABC):
    name: ClassVar[str]
    summary: ClassVar[str]
    requires: ClassVar[tuple[Requirement, ...]] = ()
    devices: ClassVar[frozenset[str]] = frozenset({"cpu"})
    tasks: ClassVar[frozenset[str] | None] = None  # None: every task
    # True when applying leaves process-wide state behind (compiled-graph caches, global backend
    # flags): the case then runs in a worker of its own, retired after it.
    fresh_worker: ClassVar[bool] = False
    # True when apply() serves from files it builds once (an ONNX graph): prepare() builds them in
    # another worker first, so a memory measurement holds only what the variant serves from.
    builds_artifacts: ClassVar[bool] = False
    # The reduced-precision math the variant relies on ("bf16", "fp16", "int8", "fp8"), or None: its
    # thresholds are then looked up under the detected capability (cpu-bf16-native, cpu-int8-emulated...).
    native_math: ClassVar[str | None] = None
    # False for a variant whose thresholds state a promise it is there to break (an anti-pattern, a
    # planted fault): `perfgate thresholds derive` must not turn what it measured into its bound.
    derive_thresholds: ClassVar[bool] = True
    # Reduced-precision dtypes the variant's kernels need ("bf16", "fp16"), or None when fp32 runs too: a
    # technique that needs one runs only stacked on a part whose ``native_math`` provides it.
    needs_math: ClassVar[frozenset[str] | None] = None
    # The CUDA compute capability the variant's kernels need (float8: 8.9, Ada and Hopper), or None.
    min_compute_capability: ClassVar[tuple[int, int] | None] = None
    # False for kernels that take no padding mask (SDPA's flash backend): only unpadded batches run.
    takes_padding_mask: ClassVar[bool] = True
    # What the technique does to the model, for the stack rules (``techniques/stack.py``): "dtype" (a cast
    # or autocast), "quantizer" (int8/int4/fp8/nf4 weights), "attention" (an attention implementation),
    # "compile" (torch.compile), "rewrite" (the same weights served another way: padding, a cache).
    role: ClassVar[str] = "rewrite"
    # True when apply() loads the weights itself (another attention implementation, bitsandbytes): it
    # cannot take a module a part before it produced, so it comes first in a stack.
    loads_weights: ClassVar[bool] = False
    # False when the variant serves through a wrapper with no torch module for a next part (a compiled
    # graph, a pinned SDPA backend): it comes last in a stack. Artifact builders hand on none either.
    hands_on_module: ClassVar[bool] = True
    # True when apply() takes fp32 weights only (torch's dynamic int8 quantizes fp32 Linear layers).
    needs_fp32_weights: ClassVar[bool] = False

    def runtime_modules(self) -> tuple[str, ...]:
        """Libraries a process serving this variant imports; the runtime-overhead worker imports the
        same ones, so their fixed cost is not counted as the model's memory."""
        return ("torch", "transformers", *(r.module for r in self.requires), type(self).__module__)

    def unavailable_reason(self, task: str, device: str) -> str | None:
        """Why this technique cannot run here (a missing library, device or task), or None."""
        for requirement in self.requires:
            if requirement.missing():
                return f"{self.name} needs {requirement.module}, which is not installed: {requirement.fix}"
        if device.partition(":")[0] not in self.devices:
            return f"{self.name} runs on {', '.join(sorted(self.devices))}, not {device}"
        if self.tasks is not None and task not in self.tasks:
            return f"{self.name} supports tasks {', '.join(sorted(self.tasks))}, not {task}"
        return None

    def input_reason(self, batch_size: int, seq_len: int | None, before: tuple[Technique, ...] = ()) -> str | None:
        """Why this technique's kernels cannot take the case's inputs, or None: its dtype rule
        (``needs_math``, met by a part ``before`` it in a stack) and its padding rule."""
        provided = {part.native_math for part in before}
        if self.needs_math is not None and not provided & self.needs_math:
            dtypes = " or ".join(sorted(self.needs_math))
            example = STACK_SEPARATOR.join([f"{sorted(self.needs_math)[0]}-cast", self.name])
            return f"{self.name} has kernels for {dtypes} only, not fp32: stack it on a cast, e.g. {example}"
        if not self.takes_padding_mask and (batch_size > 1 or seq_len):
            padded = f"pads to {seq_len} tokens" if seq_len else f"pads batch {batch_size} to its longest text"
            return f"{self.name} takes no padding mask, and this case {padded}: measure it at batch 1"
        return None

    def model_reason(self, model_class: type) -> str | None:
        """Why this technique cannot run on models of ``model_class`` (the transformers class the task
        loads), or None. Asked only of techniques that override it, before any worker starts."""
        return None

    def prepare(self, model: LoadedModel, workdir: Path) -> None:  # noqa: B027  # optional: most build nothing
        """Build and cache on-disk artifacts ahead of ``apply`` (only when ``builds_artifacts``)."""

    @abstractmethod
    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        """Build the variant; ``workdir`` is a cache directory for artifacts, kept between runs."""


def compute_capability_reason(technique: Technique, gpu: GpuInfo) -> str | None:
    """Why ``technique`` cannot run on ``gpu`` (the GPU the case is placed on, as detected: no CUDA call
    in the pytest process), or None."""
    needed = technique.min_compute_capability
    if needed is None or gpu.compute_capability >= needed:
        return None
    have = ".".join(map(str, gpu.compute_capability))
    return f"{technique.name} needs compute capability {needed[0]}.{needed[1]}+; {gpu.name} has {have}"


STACK_SEPARATOR = "+"
# A file prefix: a runtime that can profile its own operators (ONNX Runtime) does so into it.
RUNTIME_PROFILE_ENV = "PERFGATE_RUNTIME_PROFILE"
