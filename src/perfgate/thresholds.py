"""Thresholds keyed by technique x hardware class, and the checks that judge a case against them.

File layout (TOML)::

    schema = 1
    [techniques."onnxruntime-o2".cpu-avx2]   # exact hardware class
    min_speedup = 1.3
    [techniques."onnxruntime-o2".cpu-avx2.models.minilm]   # one model on that class
    min_speedup = 1.8
    [techniques."onnxruntime-o2".cpu-avx2.models."minilm/b8"]   # one model and batch size
    min_speedup = 1.1
    [techniques."onnxruntime-o2".default]    # fields shared by every gated class
    min_cosine = 0.999

A technique is *gated* on a hardware class when the file has a section for that class, its family
(``cpu``, ``gpu``) or, for a technique that declares ``native_math``, the detected capability
(``cpu-bf16-native``, ``cpu-fp16-emulated``, ``gpu-bf16-native``...). Fields resolve level by level,
``default`` → family → capability → exact class, and within a level from the section to its
``models.NAME`` and ``models."NAME/bBATCH"`` tables, the later winning.
On a class with no section the case is measured and recorded but not gated, and the report says so. A
user file overrides the shipped one field by field.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfgate.errors import ThresholdsError
from perfgate.technique import STACK_SEPARATOR

__all__ = ["FIELDS", "Check", "CheckResult", "Thresholds", "ThresholdsFile", "load_thresholds"]

# field -> (lowest allowed value, highest allowed value, what it bounds)
FIELDS: Mapping[str, tuple[float, float, str]] = {
    "min_speedup": (0.0, math.inf, "lower CI bound of baseline/candidate time must reach it"),
    "max_slowdown": (0.0, math.inf, "candidate may be this fraction slower (0.1 = 10%), judged on the CI"),
    "max_memory_ratio": (0.0, math.inf, "candidate/baseline serving memory attributable to the model"),
    "max_size_ratio": (0.0, math.inf, "candidate/baseline bytes of weights"),
    "min_cosine": (-1.0, 1.0, "lowest row cosine to fp32 outputs"),
    "min_top1": (0.0, 1.0, "share of rows whose argmax agrees with fp32"),
    "min_task_ratio": (0.0, math.inf, "task score relative to fp32 (0.99 = 99% of fp32)"),
    "max_compile_graphs": (1.0, math.inf, "graphs torch.compile builds over the fixed length sweep"),
    "max_graph_breaks": (0.0, math.inf, "graph breaks while tracing"),
    "max_energy_ratio": (0.0, math.inf, "candidate/baseline GPU energy per inference (NVML)"),
    "min_batching_gain": (0.0, math.inf, "batch sweep: best length-sorted throughput over batch-1 throughput"),
    "min_cache_gain": (0.0, math.inf, "result cache: lower CI bound of the stream's speedup with the cache"),
    "min_batch_fit_ratio": (0.0, math.inf, "largest batch that fits under the same memory cap, over fp32's"),
    "max_load_anon_ratio": (0.0, math.inf, "load: anonymous peak beyond the runtime's, over the stored weights"),
    "max_load_output_diff": (0.0, math.inf, "load: largest absolute output difference to the plain fp32 load"),
    "max_loss_diff": (0.0, math.inf, "training: largest loss difference to fp32 AdamW over the first steps"),
    "min_train_batch_fit_ratio": (0.0, math.inf, "training: largest batch that fits under the cap, over fp32 AdamW's"),
    "min_prefetch_efficiency": (0.0, math.inf, "training: loader workers' measured speedup over the predicted one"),
    "max_train_memory_ratio": (0.0, math.inf, "training: anonymous peak over the steps, over fp32 AdamW's"),
    "max_state_prediction_error": (0.0, math.inf, "training: optimizer state measured against its rule, relative"),
    "max_offload_resident_ratio": (0.0, math.inf, "offload: RAM held after the first forward, over max_memory cpu"),
}
SPEED_FIELDS = frozenset({"min_speedup", "max_slowdown"})  # two spellings of one rule


@dataclass(frozen=True)
class Thresholds:
    technique: str
    hardware_class: str
    gated: bool
    values: Mapping[str, float] = field(default_factory=dict)
    origins: Mapping[str, str] = field(default_factory=dict)

    def speed_bound(self) -> float | None:
        """The speedup the CI must clear: min_speedup, or 1/(1+max_slowdown), the stricter one."""
        bounds = []
        if "min_speedup" in self.values:
            bounds.append(self.values["min_speedup"])
        if "max_slowdown" in self.values:
            bounds.append(1 / (1 + self.values["max_slowdown"]))
        return max(bounds) if self.gated and bounds else None

    def describe(self, name: str) -> str:
        return f"{name} {self.values[name]:g} ({self.origins[name]})"


class ThresholdsFile:
    def __init__(self, sections: Mapping[str, Mapping[str, Mapping[str, float]]], origins: Mapping[str, str]):
        self._sections = sections  # technique -> class -> field -> value
        self._origins = origins  # "technique/class" -> file it came from

    def class_sections(self) -> list[tuple[str, str, str]]:
        """(file, technique, hardware class or family) for every section, to check the names exist."""
        return [
            (self._origins[f"{technique}/{key}"], technique, key)
            for technique, classes in self._sections.items()
            for key in classes
            if ".models." not in key
        ]

    def lookup(
        self, technique: str, hardware_class: str, model: str = "", batch_size: int = 0, capability: str | None = None
    ) -> Thresholds:
        classes = self._sections.get(technique, {})
        family = hardware_class.split("-", maxsplit=1)[0]
        levels = ("default", family, *([capability] if capability else []), hardware_class)
        gated = any(level in classes for level in levels[1:])
        values: dict[str, float] = {}
        origins: dict[str, str] = {}
        chain = [
            key
            for level in levels
            for key in (level, f"{level}.models.{model}", f"{level}.models.{model}/b{batch_size}")
        ]
        for key in chain:  # later keys win
            section = classes.get(key, {})
            if SPEED_FIELDS & section.keys():  # a more specific speed rule replaces the whole rule
                for name in SPEED_FIELDS:
                    values.pop(name, None)
                    origins.pop(name, None)
            for name, value in section.items():
                values[name] = value
                origins[name] = f"{self._origins[f'{technique}/{key}']} [{technique}.{key}]"
        return Thresholds(technique, hardware_class, gated, values, origins)


def load_thresholds(paths: list[Path], known_techniques: list[str]) -> ThresholdsFile:
    """Merge thresholds files in order (later files override earlier ones field by field)."""
    sections: dict[str, dict[str, dict[str, float]]] = {}
    origins: dict[str, str] = {}
    for path in paths:
        for technique, classes in _parse(path, known_techniques).items():
            for hardware_class, values in classes.items():
                sections.setdefault(technique, {}).setdefault(hardware_class, {}).update(values)
                origins[f"{technique}/{hardware_class}"] = str(path)
    return ThresholdsFile(sections, origins)


def _parse(path: Path, known_techniques: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ThresholdsError(path, "path", str(path), "the file does not exist; fix --perfgate-thresholds") from None
    except tomllib.TOMLDecodeError as error:
        raise ThresholdsError(path, "syntax", str(error), "fix the TOML syntax") from None
    extra = set(document) - {"schema", "techniques"}
    if extra:
        raise ThresholdsError(path, "top-level", sorted(extra), "only 'schema' and 'techniques' are allowed")
    if document.get("schema", 1) != 1:
        raise ThresholdsError(path, "schema", document["schema"], "this perfgate reads schema 1")
    techniques = document.get("techniques", {})
    parsed: dict[str, dict[str, dict[str, float]]] = {}
    for technique, classes in techniques.items():
        if not all(part in known_techniques for part in technique.split(STACK_SEPARATOR)):  # a stack's parts
            raise ThresholdsError(
                path,
                f"techniques.{technique}",
                technique,
                f"not a known technique or stack of them (parts joined with '+'); use {', '.join(known_techniques)}",
            )
        if not isinstance(classes, dict):
            raise ThresholdsError(path, f"techniques.{technique}", classes, "must be a table of hardware classes")
        for hardware_class, values in classes.items():
            key = f"techniques.{technique}.{hardware_class}"
            if not isinstance(values, dict):
                raise ThresholdsError(path, key, values, "must be a table of threshold fields")
            models = values.get("models", {})
            if not isinstance(models, dict) or not all(isinstance(v, dict) for v in models.values()):
                raise ThresholdsError(path, f"{key}.models", models, "must hold one table of fields per model name")
            fields = {name: value for name, value in values.items() if name != "models"}
            parsed.setdefault(technique, {})[hardware_class] = _fields(path, key, fields)
            for model, model_fields in models.items():
                parsed[technique][f"{hardware_class}.models.{model}"] = _fields(
                    path, f"{key}.models.{model}", model_fields
                )
    return parsed


def _fields(path: Path, key: str, values: dict[str, Any]) -> dict[str, float]:
    return {name: _value(path, f"{key}.{name}", name, value) for name, value in values.items()}


def _value(path: Path, key: str, name: str, value: Any) -> float:
    if name not in FIELDS:
        raise ThresholdsError(path, key, value, f"unknown field {name!r}; fields are {', '.join(FIELDS)}")
    low, high, meaning = FIELDS[name]
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (low <= value <= high)
        or math.isnan(value)
    ):
        raise ThresholdsError(path, key, value, f"must be a number in [{low:g}, {high:g}]: {meaning}")
    return float(value)


@dataclass(frozen=True)
class CheckResult:
    name: str
    verdict: str  # a comparison.Verdict value
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "verdict": self.verdict, "message": self.message}


@dataclass(frozen=True)
class Check:
    """One threshold field against one measured value: ``passes`` says whether the value meets it."""

    name: str
    measured: float
    higher_is_better: bool

    def judge(self, thresholds: Thresholds, context: str) -> CheckResult | None:
        if self.name not in thresholds.values:
            return None
        limit = thresholds.values[self.name]
        ok = self.measured >= limit if self.higher_is_better else self.measured <= limit
        relation = ">=" if self.higher_is_better else "<="
        verdict = ("pass" if ok else "fail") if thresholds.gated else "ungated"
        message = (
            f"{context}: {self.name.removeprefix('min_').removeprefix('max_')} {self.measured:.4g} "
            f"{'meets' if ok else 'misses'} {relation} {thresholds.describe(self.name)}"
        )
        return CheckResult(self.name, verdict, message)
