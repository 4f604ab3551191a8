"""The technique interface and its registry.

A technique turns the fp32 eager ``LoadedModel`` into a ``Variant``: a callable that maps the same
tokenized inputs to the same primary output, plus what it costs in memory and on disk. Adding a
technique is one module under ``perfgate/techniques/`` with a ``Technique`` subclass, one line in
``BUILT_IN`` below, and one test module under ``perf/``.
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

from perfgate.errors import UnknownTechniqueError

if TYPE_CHECKING:
    import torch

    from perfgate.model import LoadedModel

__all__ = [
    "BUILT_IN",
    "Requirement",
    "Technique",
    "Variant",
    "get_technique",
    "module_variant",
    "register_technique",
    "technique_names",
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

    from perfgate.model import module_bytes

    def run(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if input_dtype is not None:
            inputs = {k: v.to(input_dtype) if v.is_floating_point() else v for k, v in inputs.items()}
        with torch.inference_mode():
            return model.primary_output(module(**inputs), inputs)

    return Variant(
        technique,
        run,
        memory_bytes=module_bytes(module),
        prepare_seconds=time.perf_counter() - started,
        module=module,
        details=details,
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
    # The reduced-precision math the variant relies on ("bf16", "fp16"), or None: its thresholds are
    # then looked up under the detected capability (cpu-bf16-native, gpu-fp16-native, cpu-fp16-emulated).
    native_math: ClassVar[str | None] = None

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

    def prepare(self, model: LoadedModel, workdir: Path) -> None:  # noqa: B027  # optional: most build nothing
        """Build and cache on-disk artifacts ahead of ``apply`` (only when ``builds_artifacts``)."""

    @abstractmethod
    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        """Build the variant; ``workdir`` is a cache directory for artifacts, kept between runs."""


BUILT_IN: dict[str, str] = {
    "fp32-eager": "perfgate.techniques.eager:Fp32Eager",
    "torch-dynamic-int8-per-tensor": "perfgate.techniques.torch_dynamic_int8:PerTensor",
    "torch-dynamic-int8-per-channel": "perfgate.techniques.torch_dynamic_int8:PerChannel",
    "onnxruntime-o2": "perfgate.techniques.onnxruntime:OptimizedO2",
    "onnxruntime-o2-int8-dynamic": "perfgate.techniques.onnxruntime:DynamicInt8",
    "bf16-cast": "perfgate.techniques.precision:Bf16Cast",
    "fp16-cast": "perfgate.techniques.precision:Fp16Cast",
    "bf16-autocast": "perfgate.techniques.precision:Bf16Autocast",
    "fp16-autocast": "perfgate.techniques.precision:Fp16Autocast",
}
_registry: dict[str, str] = dict(BUILT_IN)


def register_technique(name: str, import_path: str) -> None:
    """Make ``name`` resolve to ``"package.module:Class"`` (imported lazily, also in subprocesses)."""
    _registry[name] = import_path


def technique_names() -> list[str]:
    return sorted(_registry)


def import_path(name: str) -> str:
    try:
        return _registry[name]
    except KeyError:
        raise UnknownTechniqueError(name, list(_registry)) from None


def get_technique(name: str) -> Technique:
    return load_technique(import_path(name))


def load_technique(path: str) -> Technique:
    module_name, _, class_name = path.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Technique)):
        raise TypeError(f"{path!r} is not a perfgate Technique subclass")
    return cls()
