"""Thresholds keyed by technique x hardware class, and the checks that judge a case against them.

File layout (TOML)::

    schema = 1
    [techniques."onnxruntime-o2".cpu-avx2]   # exact hardware class
    min_speedup = 1.3
    [techniques."onnxruntime-o2".cpu-avx2.models.minilm]   # one model on that class
    min_speedup = 1.8
    [techniques."onnxruntime-o2".cpu-avx2.models."minilm/b8"]   # one model and batch size
    min_speedup = 1.1
    [techniques."onnxruntime-o2".default]    # every class, known or not
    min_cosine = 0.999

Fields resolve level by level, ``default`` → family (``cpu``, ``gpu``) → capability (for a technique
that declares ``native_math``: ``cpu-bf16-native``, ``cpu-int8-emulated``, ``gpu-fp16-native``...) →
exact class, and within a level from the section to its ``models.NAME`` and ``models."NAME/bBATCH"``
tables, the later winning. Every value that resolves gates.

Each field says whether it depends on the hardware (``fields.FIELDS``). Hardware-independent fields — fidelity
of exact rewrites, sizes, graph counts, state prediction — belong in ``default`` and judge on every class,
including one nobody measured. Hardware-dependent ones — speed, memory, gains, fits — belong in a family,
capability or class section: on a class without one they are measured and recorded, and the case's
verdict says UNGATED (``judge.judge``).

Files layer, later ones overriding earlier ones field by field (``layers``): the defaults shipped inside
this package (``shipped.toml``: floors that catch breakage on any model), the ini file, the per-class files
in ``thresholds.d/`` beside it (what ``perfgate thresholds derive`` writes), then a
``--perfgate-thresholds`` file.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfgate.errors import ThresholdsError
from perfgate.subjects.technique import STACK_SEPARATOR
from perfgate.verdicts.fields import FIELDS, SPEED_FIELDS

__all__ = [
    "SHIPPED",
    "Check",
    "CheckResult",
    "Thresholds",
    "ThresholdsFile",
    "class_files_dir",
    "layers",
    "load_thresholds",
    "project_ini_thresholds",
]


SHIPPED = Path(__file__).with_name("shipped.toml")


CLASS_FILES = "thresholds.d"  # beside the ini file: one file per hardware class, as `derive` writes them


@dataclass(frozen=True)
class Thresholds:
    """What one case is judged against: every field that resolved for its technique, class and model.

    A value gates wherever it resolves; ``gated`` says whether any section beyond ``default`` (the family,
    the capability or the exact class) named the technique, i.e. whether anyone measured this hardware."""

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
        return max(bounds) if bounds else None

    def describe(self, name: str) -> str:
        return f"{name} {self.values[name]:g} ({self.origins[name]})"


class ThresholdsFile:
    def __init__(self, sections: Mapping[str, Mapping[str, Mapping[str, float]]], origins: Mapping[str, str]):
        self._sections = sections  # technique -> class -> field -> value
        self._origins = origins  # "technique/class" and "technique/class/field" -> the file it came from

    def techniques(self) -> list[str]:
        return sorted(self._sections)

    def class_sections(self) -> list[tuple[str, str, str]]:
        """(file, technique, hardware class or family) for every section, to check the names exist."""
        return [
            (self._origins[f"{technique}/{key}"], technique, key)
            for technique, classes in self._sections.items()
            for key in classes
            if ".models." not in key
        ]

    def applicable(
        self, technique: str, hardware_class: str, capability: str | None = None
    ) -> list[tuple[str, str, str, float]]:
        """(section, field, file, value) of every field that resolves on this class, model tables included,
        in resolution order (a later row for the same field and model wins)."""
        classes = self._sections.get(technique, {})
        rows = []
        for level in _levels(hardware_class, capability):
            for key in sorted(k for k in classes if k == level or k.startswith(f"{level}.models.")):
                rows += [
                    (key, name, self._origins[f"{technique}/{key}/{name}"], value)
                    for name, value in classes[key].items()
                ]
        return rows

    def lookup(
        self, technique: str, hardware_class: str, model: str = "", batch_size: int = 0, capability: str | None = None
    ) -> Thresholds:
        classes = self._sections.get(technique, {})
        levels = _levels(hardware_class, capability)
        gated = any(level in classes or any(k.startswith(f"{level}.models.") for k in classes) for level in levels[1:])
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
                origins[name] = f"{self._origins[f'{technique}/{key}/{name}']} [{technique}.{key}]"
        return Thresholds(technique, hardware_class, gated, values, origins)


def _levels(hardware_class: str, capability: str | None) -> tuple[str, ...]:
    family = hardware_class.split("-", maxsplit=1)[0]
    return ("default", family, *([capability] if capability else []), hardware_class)


def class_files_dir(ini_file: Path | None, rootdir: Path) -> Path:
    """Where the per-class files live: ``thresholds.d/`` beside the ini file, else in the rootdir."""
    return (ini_file.parent if ini_file is not None else rootdir) / CLASS_FILES


def project_ini_thresholds(rootdir: Path) -> Path | None:
    """The ``perfgate_thresholds`` ini value of a project's pyproject.toml, for commands outside pytest."""
    pyproject = rootdir / "pyproject.toml"
    if not pyproject.is_file():
        return None
    try:
        ini = tomllib.loads(pyproject.read_text()).get("tool", {}).get("pytest", {}).get("ini_options", {})
    except tomllib.TOMLDecodeError as error:
        raise ThresholdsError(pyproject, "syntax", str(error), "fix the TOML syntax") from None
    value = ini.get("perfgate_thresholds")
    return rootdir / str(value) if value else None


def layers(ini_file: Path | None, rootdir: Path, override: Path | None) -> list[Path]:
    """The files a run reads, in the order they override each other: shipped, ini, per class, flag."""
    class_files = sorted(class_files_dir(ini_file, rootdir).glob("*.toml"))
    return [SHIPPED, *([ini_file] if ini_file else []), *class_files, *([override] if override else [])]


def load_thresholds(paths: list[Path], known_techniques: list[str]) -> ThresholdsFile:
    """Merge thresholds files in order (later files override earlier ones field by field)."""
    sections: dict[str, dict[str, dict[str, float]]] = {}
    origins: dict[str, str] = {}
    for path in paths:
        for technique, classes in _parse(path, known_techniques).items():
            for hardware_class, values in classes.items():
                sections.setdefault(technique, {}).setdefault(hardware_class, {}).update(values)
                origins[f"{technique}/{hardware_class}"] = str(path)
                origins.update({f"{technique}/{hardware_class}/{name}": str(path) for name in values})
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
    low, high, meaning = FIELDS[name].low, FIELDS[name].high, FIELDS[name].meaning
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
        verdict = "pass" if ok else "fail"
        message = (
            f"{context}: {self.name.removeprefix('min_').removeprefix('max_')} {self.measured:.4g} "
            f"{'meets' if ok else 'misses'} {relation} {thresholds.describe(self.name)}"
        )
        return CheckResult(self.name, verdict, message)
