"""Every error perfgate raises on purpose.

    PerfgateError
    ├── ConfigError (ValueError)          bad user input: options, pyproject, thresholds
    │   ├── ThresholdsError               a malformed thresholds file (file, key, value)
    │   ├── UnknownTechniqueError (LookupError)
    │   └── UnknownModelError (LookupError)
    ├── ModelNotFoundError (FileNotFoundError)   a model directory that does not exist
    ├── ResultsFileError (ValueError)     an unreadable or corrupt results file
    ├── CheckpointError (ValueError)      a checkpoint or load setting that cannot load (file, value, fix)
    ├── ArmFailed                         an upgrade gate's worker crashed, timed out or raised
    └── JobOutcome                        a worker job's own processes timed out or died (distributed ranks)

A missing optional library is not an error: the case is skipped with the install hint.

Messages show ``name=value!r`` and say how to fix the problem.
"""

from __future__ import annotations

__all__ = [
    "ArmFailed",
    "CheckpointError",
    "ConfigError",
    "JobOutcome",
    "ModelNotFoundError",
    "PerfgateError",
    "ResultsFileError",
    "ThresholdsError",
    "UnknownModelError",
    "UnknownTechniqueError",
]


class PerfgateError(Exception):
    """Root of perfgate's own errors."""


class ConfigError(PerfgateError, ValueError):
    """A configuration value is invalid; the message names where it came from."""


class ThresholdsError(ConfigError):
    """A thresholds file cannot be used."""

    def __init__(self, path: object, key: str, value: object, fix: str) -> None:
        self.path, self.key, self.value = path, key, value
        super().__init__(f"thresholds file {str(path)!r}: {key}={value!r}: {fix}")


class UnknownTechniqueError(ConfigError, LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        super().__init__(f"unknown technique name={name!r}; known techniques: {', '.join(sorted(known))}")


class UnknownModelError(ConfigError, LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        super().__init__(
            f"unknown model name={name!r}; known models: {', '.join(sorted(known))}. "
            "Declare it under [tool.perfgate.models] in pyproject.toml or with --perfgate-model NAME=PATH"
        )


class ModelNotFoundError(PerfgateError, FileNotFoundError):
    def __init__(self, name: str, path: object, origin: str) -> None:
        self.path = path
        super().__init__(
            f"model {name!r}: path={str(path)!r} (from {origin}) is not a directory with a config.json; "
            "point it at a directory written by save_pretrained()"
        )


class ResultsFileError(PerfgateError, ValueError):
    def __init__(self, path: object, problem: str, fix: str = "delete it or rerun the suite to rewrite it") -> None:
        self.path, self.problem = path, problem
        super().__init__(f"results file {str(path)!r}: {problem}; {fix}")


class CheckpointError(PerfgateError, ValueError):
    """A checkpoint that cannot load as it is (a missing shard, a truncated file), or a load setting that
    cannot work with it (a memory budget below its largest layer, an offload folder that cannot be written)."""

    def __init__(self, path: object, problem: str, fix: str) -> None:
        self.path = path
        super().__init__(f"checkpoint {str(path)!r}: {problem}; {fix}")


class ArmFailed(PerfgateError):
    """A worker holding one arm of an upgrade gate crashed, timed out or raised: no verdict."""


class NothingQuantizedError(PerfgateError, ValueError):
    """A quantizing technique changed none of the model's matmul layers: its case would be an A/A."""

    def __init__(self, technique: str, model: str, total: int, kinds: dict[str, int]) -> None:
        found = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())) or "none"
        super().__init__(
            f"{technique} on {model} changed 0 of its {total} matmul layers ({found}): the case would time fp32 "
            "against itself; fix: a technique that quantizes these layer types, or another model"
        )


class JobOutcome(PerfgateError):
    """Raised in a worker when processes its job started (a distributed case's ranks) timed out or died:
    the job's outcome is ``outcome`` (an ``Outcome`` value: "timeout", "crashed"), not an error."""

    def __init__(self, outcome: str, detail: str, log: str = "") -> None:
        self.outcome, self.log = outcome, log
        super().__init__(detail)
