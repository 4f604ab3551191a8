"""perfgate: does an inference optimization pay off for this model, on this hardware? Measured A/B."""

from __future__ import annotations

import logging

from perfgate.case import CaseResult
from perfgate.comparison import ComparePolicy, Comparison, SpeedEstimate, compare, estimate_speedup
from perfgate.errors import (
    ConfigError,
    ModelNotFoundError,
    PerfgateError,
    ResultsFileError,
    ThresholdsError,
    UnknownModelError,
    UnknownTechniqueError,
)
from perfgate.model import LoadedModel, ModelRegistry, ModelSource
from perfgate.outcome import Outcome, Verdict
from perfgate.results import RunRecord
from perfgate.scenarios import Scenario
from perfgate.spec import CaseSpec
from perfgate.technique import Requirement, Technique, Variant, register_technique
from perfgate.thresholds import Thresholds, load_thresholds
from perfgate.timing import Timer, TimerSettings

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
