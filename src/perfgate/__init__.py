"""perfgate: does an inference optimization pay off for this model, on this hardware? Measured A/B."""

from __future__ import annotations

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
