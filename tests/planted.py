"""Planted techniques that fail the way native code does, for the harness's isolation tests.

Each is registered by import path in a test project's conftest (``register_technique(name,
"tests.planted:Class")``); the worker imports it from the repository root on its path.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perfgate import LoadedModel, Technique, Variant


def _failing(name: str, fail: Callable[[], Any]) -> type[Technique]:
    class Failing(Technique):
        summary = f"fp32 eager whose forward pass {name.removeprefix('planted-')}"

        def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
            def run(inputs: Any) -> Any:
                fail()
                return model.run(inputs)

            return Variant(self.name, run, memory_bytes=1, independent_of_source=False)

    Failing.name = name
    return Failing


def _native_hang_ignoring_signals() -> None:
    """Block every catchable signal and wait in libc: only SIGKILL ends this."""
    signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP})
    ctypes.CDLL(None).pause()


def _cuda_error() -> None:
    import torch

    raise torch.AcceleratorError("CUDA error: an illegal memory access was encountered")


def _asks_for_a_tebibyte() -> None:
    import torch

    torch.empty(2**40, dtype=torch.uint8)


Aborts = _failing("planted-abort", os.abort)
Segfaults = _failing("planted-segfault", lambda: ctypes.string_at(0))
HangsInNativeCode = _failing("planted-native-hang", _native_hang_ignoring_signals)
RaisesCudaError = _failing("planted-cuda-error", _cuda_error)
AsksForATebibyte = _failing("planted-oom", _asks_for_a_tebibyte)

PLANTED = {
    "planted-abort": "tests.planted:Aborts",
    "planted-segfault": "tests.planted:Segfaults",
    "planted-native-hang": "tests.planted:HangsInNativeCode",
    "planted-cuda-error": "tests.planted:RaisesCudaError",
    "planted-oom": "tests.planted:AsksForATebibyte",
}


class ExtraMatmul(Technique):
    """fp32 eager, then a 768 x 768 matmul per forward that the model does not need: what
    ``perfgate explain`` must name first (``aten::mm``, appeared), with most of the change."""

    name = "planted-extra-matmul"
    summary = "fp32 eager plus an unneeded 768 x 768 matmul per forward"

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        import torch

        square = torch.randn(768, 768, generator=torch.Generator().manual_seed(0))

        def run(inputs: Any) -> Any:
            torch.mm(square, square)
            return model.run(inputs)

        return Variant(self.name, run, memory_bytes=model.parameter_bytes(), independent_of_source=False)


class DtypeRoundTrip(Technique):
    """fp32 eager, then a 512 x 512 activation sent to float64 and back four times per call: the casts
    ``perfgate explain`` must name (``aten::_to_copy``, appeared), large enough beside the micro model's
    forward that noise cannot hide them."""

    name = "planted-dtype-round-trip"
    summary = "fp32 eager plus a 512 x 512 tensor cast to float64 and back four times a call"

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        import torch

        activation = torch.randn(512, 512, generator=torch.Generator().manual_seed(0))

        def run(inputs: Any) -> Any:
            for _ in range(4):
                activation.to(torch.float64).to(torch.float32)
            return model.run(inputs)

        return Variant(self.name, run, memory_bytes=model.parameter_bytes(), independent_of_source=False)


class UnfusedLinear(Technique):
    """fp32 eager with every Linear computed unfused, ``x @ W.T`` then ``+ b``: ``perfgate explain`` must
    name the fused ``aten::addmm`` as vanished and the ``aten::mm`` and ``aten::add`` that replace it as
    appeared (a status no noise changes, whatever the two cost)."""

    name = "planted-unfused-linear"
    summary = "fp32 eager with each Linear as a matmul and a separate bias add"

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        import copy

        import torch

        module = copy.deepcopy(model.module)  # fp32 eager, beside it in the process, keeps its own
        for layer in module.modules():
            if isinstance(layer, torch.nn.Linear):
                layer.forward = _unfused(layer)  # type: ignore[method-assign]

        def run(inputs: Any) -> Any:
            return model.primary_output(module(**inputs), inputs)

        return Variant(self.name, run, memory_bytes=model.parameter_bytes(), independent_of_source=False)


def _unfused(layer: Any) -> Callable[[Any], Any]:
    import torch

    def forward(x: Any) -> Any:
        return torch.matmul(x, layer.weight.t()) + layer.bias

    return forward
