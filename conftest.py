"""The project's own configuration of perfgate: its embedded default models, and the planted techniques
the perf suite measures to show that its own checks can fail (``perf/planted.py``; registered here, not in
``perf/``, so that the project's thresholds file may name them whichever folder a run selects)."""

from __future__ import annotations

import os

import pytest

from perfgate import register_technique
from perfgate.subjects.model import ModelRegistry

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # fixture models are local; never reach for a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

register_technique("planted-fp32-copy-leak", "perf.planted:LeaksAnFp32Copy")
register_technique("planted-half-cosine", "perf.planted:BendsOutputsToHalfCosine")
register_technique("planted-three-of-six-layers", "perf.planted:KeepsThreeOfSixLayers")
register_technique("planted-cuda-device-assert", "perf.planted:TriggersADeviceSideAssert")
register_technique("planted-offload-below-largest-layer", "perf.planted:OffloadBelowTheLargestLayer")
register_technique("planted-offload-unwritable-folder", "perf.planted:OffloadToAnUnwritableFolder")
register_technique("planted-zero1-whole-state", "perf.planted:Zero1KeepingTheWholeState")
register_technique("planted-onnxruntime-unoptimized", "perf.planted:OnnxRuntimeUnoptimized")


def pytest_perfgate_register_models(registry: ModelRegistry, config: pytest.Config) -> None:
    from fixtures.models import sources

    for source in sources():
        registry.add(source)
