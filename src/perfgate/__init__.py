"""perfgate: does an inference optimization pay off for this model, on this hardware? Measured A/B."""

from __future__ import annotations

import logging

from perfgate.engine.record import CaseResult
from perfgate.engine.scenarios import Scenario
from perfgate.engine.spec import CaseSpec
from perfgate.errors import (
    ConfigError,
    ModelNotFoundError,
    PerfgateError,
    ResultsFileError,
    ThresholdsError,
    UnknownModelError,
    UnknownTechniqueError,
)
from perfgate.instruments.comparison import ComparePolicy, Comparison, SpeedEstimate, compare, estimate_speedup
from perfgate.instruments.outcome import Outcome, Verdict
from perfgate.instruments.timing import Timer, TimerSettings
from perfgate.records.results import RunRecord
from perfgate.subjects.catalogue import register_technique
from perfgate.subjects.model import LoadedModel, ModelRegistry, ModelSource
from perfgate.subjects.technique import Requirement, Technique, Variant
from perfgate.verdicts.thresholds import Thresholds, load_thresholds

# transformers imports torchao where it is installed; torchao then warns about each CUDA kernel library
# a CPU build cannot load, and torch about enum registrations: noise in every run that says nothing of it.
for _noisy in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_noisy).setLevel(logging.ERROR)

__all__ = [
    "CaseResult",
    "CaseSpec",
    "ComparePolicy",
    "Comparison",
    "ConfigError",
    "LoadedModel",
    "ModelNotFoundError",
    "ModelRegistry",
    "ModelSource",
    "Outcome",
    "PerfgateError",
    "Requirement",
    "ResultsFileError",
    "RunRecord",
    "Scenario",
    "SpeedEstimate",
    "Technique",
    "Thresholds",
    "ThresholdsError",
    "Timer",
    "TimerSettings",
    "UnknownModelError",
    "UnknownTechniqueError",
    "Variant",
    "Verdict",
    "compare",
    "estimate_speedup",
    "load_thresholds",
    "register_technique",
]
