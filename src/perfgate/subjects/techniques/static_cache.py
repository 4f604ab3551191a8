"""The static KV cache for generation (``cache_implementation="static"``), alone and with torch.compile.

A dynamic cache grows every decoding step, so each step has a new shape; a static cache is allocated
at its full length once, so a compiled decoding step keeps one shape and compiles once. Each variant is
a copy of the fp32 module whose generation config asks for the static cache (and, for
``static-cache-compile``, whose ``forward`` is compiled): the A/B times its forward, and the generation
metric (time to first token, per-token latency) shows what it does to decoding. Both are measured so
the report separates the cache's own cost from what compiling wins back: on tiny-gpt2 on CPU the static
cache alone made a 16-token ``generate`` 2.3x slower (83.8 against 35.8 ms), and compiling did not win
it back. Compiled graphs are process-wide state: a worker per case.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

from perfgate.subjects.model import LoadedModel
from perfgate.subjects.technique import Technique, Variant, module_variant


class StaticCache(Technique):
    name = "static-cache"
    summary = "generate() with cache_implementation='static', eager"
    devices = frozenset({"cpu", "cuda"})
    tasks = frozenset({"text-generation"})
    compiled: bool = False

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        import torch

        start = time.perf_counter()
        module = copy.deepcopy(model.module)
        module.generation_config.cache_implementation = "static"
        # transformers compiles the decoding step by itself when the cache is static and the device CUDA:
        # `static-cache` is measured eager, as named; `static-cache-compile` compiles its forward itself.
        module.generation_config.disable_compile = True
        if self.compiled:
            module.forward = torch.compile(module.forward)
        details = {"cache_implementation": "static", "compiled": "forward" if self.compiled else "no",
                   "transformers_auto_compile": "disabled"}  # fmt: skip
        return module_variant(self.name, model, module, start, details)


class StaticCacheCompile(StaticCache):
    name = "static-cache-compile"
    summary = "generate() with cache_implementation='static' and a torch.compile'd forward"
    fresh_worker = True
    compiled = True
