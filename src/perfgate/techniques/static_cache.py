"""The static KV cache with torch.compile for generation (``cache_implementation="static"``).

A dynamic cache grows every decoding step, so each step has a new shape; a static cache is allocated
at its full length once, so the compiled decoding step keeps one shape and compiles once. The variant is
a copy of the fp32 module whose ``forward`` is compiled and whose generation config asks for the
static cache: the A/B times its forward, and the generation metric (time to first token, per-token
latency) shows what it does to decoding. Compiled graphs are process-wide state: a worker per case.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

from perfgate.model import LoadedModel
from perfgate.technique import Technique, Variant, module_variant


class StaticCacheCompile(Technique):
    name = "static-cache-compile"
    summary = "generate() with cache_implementation='static' and a torch.compile'd forward"
    devices = frozenset({"cpu", "cuda"})
    tasks = frozenset({"text-generation"})
    fresh_worker = True

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        import torch

        start = time.perf_counter()
        module = copy.deepcopy(model.module)
        module.generation_config.cache_implementation = "static"
        module.forward = torch.compile(module.forward)
        details = {"cache_implementation": "static", "compiled": "forward"}
        return module_variant(self.name, model, module, start, details)
