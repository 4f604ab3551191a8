"""torch.compile (TorchInductor) of the fp32 module, with what compiling costs as figures of its own.

Besides the A/B, ``apply`` measures (metric ``compile``):
- ``cold_seconds``: the first call into a fresh inductor cache directory (tracing, code generation and
  the C++/Triton build, as on a new runner);
- ``warm_seconds``: the first call after ``torch._dynamo.reset()`` with that cache filled (a restart);
- ``graphs``: distinct graphs compiled over a fixed set of sequence lengths (``SWEEP_LENGTHS``) at batch
  1. With automatic dynamic shapes the default mode compiles a static graph for the first length and a
  dynamic one at the second; ``dynamic=True`` compiles one. A change in either count is a change in
  recompilation behaviour, which the perf tests assert;
- ``graph_breaks``: how often dynamo fell back to Python while tracing (each break splits the graph);
- ``timed_shape``: the timed inputs' shape primed before timing (``Variant.prime``): the graphs it
  compiled (batch 8 is a new shape after the batch-1 sweep) and its first calls' seconds, so neither a
  recompile nor a CUDA graph's recording falls inside the timed warm-up.
Compiled graphs and the inductor cache are process-wide state: every case gets a worker of its own.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from perfgate.subjects.model import LoadedModel, module_bytes
from perfgate.subjects.technique import Technique, Variant, cast_inputs

if TYPE_CHECKING:
    import torch

SWEEP_LENGTHS = (8, 16, 24, 32, 48)
PRIME_CALLS = 3  # CUDA graphs (reduce-overhead, max-autotune): warm-up, recording, then a replay
SWEEP_TEXT = "perfgate measures what compiling costs and what it pays back on real inputs " * 8


def missing_compiler(name: str, device: str) -> str | None:
    """Why ``name`` cannot compile here: inductor builds C++ kernels on CPU."""
    if device == "cpu" and not (shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")):
        return f"{name} on CPU builds C++ kernels and no C++ compiler was found: install g++"
    return None


def compile_counters() -> dict[str, Any]:
    """Graphs dynamo compiled in this process since its counters were last cleared, and its graph breaks."""
    import torch

    counters = torch._dynamo.utils.counters
    return {
        "graphs": int(counters["stats"]["unique_graphs"]),
        "graph_breaks": int(sum(counters["graph_break"].values())),
        "break_reasons": sorted(counters["graph_break"])[:5],
    }


def new_inductor_cache(workdir: Path) -> Path:
    """An empty inductor cache directory under ``workdir``: compiling into it is an honest cold compile,
    and a warm one (after ``torch._dynamo.reset()``) reads only what this case wrote."""
    (workdir / "inductor").mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="cold-", dir=workdir / "inductor"))


class _TorchCompile(Technique):
    role: ClassVar[str] = "compile"
    hands_on_module: ClassVar[bool] = False  # generate() would run the uncompiled module
    devices = frozenset({"cpu", "cuda"})
    fresh_worker = True
    mode: ClassVar[str | None] = None  # torch.compile's default mode
    dynamic: ClassVar[bool | None] = None  # None: automatic dynamic shapes after a recompile

    def unavailable_reason(self, task: str, device: str) -> str | None:
        return missing_compiler(self.name, device) or super().unavailable_reason(task, device)

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        import torch

        start = time.perf_counter()
        cache = new_inductor_cache(workdir)
        atexit.register(shutil.rmtree, cache, True)  # the loaded kernels stay mapped; the files can go
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache)
        module = model.module
        input_dtype = model.input_dtype
        sweep = [cast_inputs(model.inputs([SWEEP_TEXT], length), input_dtype) for length in SWEEP_LENGTHS]

        def call(compiled: Any, inputs: Mapping[str, torch.Tensor]) -> float:
            began = time.perf_counter()
            with torch.inference_mode():
                compiled(**inputs)
            if model.device.startswith("cuda"):
                torch.cuda.synchronize()
            return time.perf_counter() - began

        torch._dynamo.reset()
        cold = call(self._compile(module), sweep[0])
        torch._dynamo.reset()  # graphs gone, cache directory kept: what a restarted server pays
        torch._dynamo.utils.counters.clear()  # compile_counters() then counts the sweep alone
        compiled = self._compile(module)
        warm = call(compiled, sweep[0])
        for inputs in sweep[1:]:
            call(compiled, inputs)
        figures = {
            "cold_seconds": cold,
            "warm_seconds": warm,
            "sweep_lengths": list(SWEEP_LENGTHS),
            **compile_counters(),
            "mode": self.mode or "default",
            "dynamic": self.dynamic,
        }

        def run(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
            with torch.inference_mode():
                return model.primary_output(compiled(**cast_inputs(inputs, input_dtype)), inputs)

        def prime(inputs: Mapping[str, torch.Tensor]) -> dict[str, Any]:
            """The timed shape's own compile (batch 8 is a new shape after the batch-1 sweep) and, in the
            CUDA-graph modes, its graph's warm-up, recording and first replay: before timing, counted."""
            before = compile_counters()["graphs"]
            seconds = [call(compiled, cast_inputs(inputs, input_dtype)) for _ in range(PRIME_CALLS)]
            after = compile_counters()
            shape = list(next(iter(inputs.values())).shape)
            return {"shape": shape, "call_seconds": seconds, "graphs": after["graphs"] - before,
                    "graphs_in_all": after["graphs"], "graph_breaks_in_all": after["graph_breaks"]}  # fmt: skip

        return Variant(
            self.name,
            run,
            memory_bytes=module_bytes(module),
            prepare_seconds=time.perf_counter() - start,
            independent_of_source=False,  # the compiled graphs read the module's own parameters
            module=None,  # generate() would run the uncompiled module: no generation figures from it
            details={"mode": figures["mode"], "dynamic": self.dynamic, "inductor_cache": str(cache)},
            metrics={"compile": figures},
            prime=prime,
        )

    def _compile(self, module: Any) -> Any:
        import torch

        return torch.compile(module, mode=self.mode, dynamic=self.dynamic)


class TorchCompile(_TorchCompile):
    name = "torch-compile"
    summary = "torch.compile, default mode (inductor), automatic dynamic shapes"


class TorchCompileDynamic(_TorchCompile):
    name = "torch-compile-dynamic"
    summary = "torch.compile with dynamic=True: one graph for every sequence length"
    dynamic = True


class TorchCompileReduceOverhead(_TorchCompile):
    name = "torch-compile-reduce-overhead"
    summary = "torch.compile mode='reduce-overhead' (CUDA graphs)"
    devices = frozenset({"cuda"})
    mode = "reduce-overhead"


class TorchCompileMaxAutotune(_TorchCompile):
    name = "torch-compile-max-autotune"
    summary = "torch.compile mode='max-autotune' (kernel autotuning, CUDA graphs)"
    devices = frozenset({"cuda"})
    mode = "max-autotune"
