"""The fp32 eager reference every technique is measured against."""

from __future__ import annotations

from pathlib import Path

from perfgate.subjects.model import LoadedModel
from perfgate.subjects.technique import Technique, Variant


class Fp32Eager(Technique):
    name = "fp32-eager"
    summary = "the model as loaded: fp32 weights, eager PyTorch"
    devices = frozenset({"cpu", "cuda"})

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        return Variant(
            self.name, model.run, memory_bytes=model.parameter_bytes(), independent_of_source=False, module=model.module
        )
