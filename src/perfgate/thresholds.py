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

Each field says whether it depends on the hardware (``FIELDS``). Hardware-independent fields — fidelity
of exact rewrites, sizes, graph counts, state prediction — belong in ``default`` and judge on every class,
including one nobody measured. Hardware-dependent ones — speed, memory, gains, fits — belong in a family,
capability or class section: on a class without one they are measured and recorded, and the case's
verdict says UNGATED (``case.judge``).

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
from perfgate.technique import STACK_SEPARATOR

__all__ = [
    "FIELDS",
    "HARDWARE_FIELDS",
    "SHIPPED",
    "TASK_FIELDS",
    "Check",
    "CheckResult",
    "Field",
    "Rule",
    "Thresholds",
    "ThresholdsFile",
    "class_files_dir",
    "layers",
    "load_thresholds",
    "project_ini_thresholds",
]

SHIPPED = Path(__file__).with_name("shipped.toml")
CLASS_FILES = "thresholds.d"  # beside the ini file: one file per hardware class, as `derive` writes them


NO_EFFECT = 1.0  # the line of no effect of every ratio against fp32 eager: same speed, same memory
PROMISE_KEEP = 0.5  # the share of the smallest effect every run showed that a derived bound keeps
NO_EFFECT_HALF_WIDTH = 0.03  # the interval a no-effect run reaches in the nightly's budget (README: ±3% in 16 of 17)


@dataclass(frozen=True)
class Rule:
    """How ``perfgate thresholds derive`` turns one field's values over several runs into a threshold: a
    floor is ``factor`` x the lowest value; a ceiling the larger of ``factor`` x the highest and the
    highest + ``margin``. The margins are the ones the project's own thresholds were written by.

    ``keep`` is the technique's promise: where every value shows the effect (a floor: the lowest above
    1; a ceiling: the highest below 1), the bound keeps at least that share of the smallest effect seen,
    so a run whose effect is gone (1.00x ±3%, a memory ratio of 1.00) fails instead of passing on the
    slack a margin gives. Fields whose no-effect line is not 1 (load peaks over the stored bytes, the
    loader's efficiency against its prediction) have none."""

    factor: float
    margin: float = 0.0
    keep: float = 0.0

    def apply(self, values: list[float], floor: bool) -> float:
        if floor:
            bound = self.factor * min(values)
            return max(bound, self.promise(values, floor)) if self.shows_effect(values, floor) else bound
        bound = max(self.factor * max(values), max(values) + self.margin)
        return min(bound, self.promise(values, floor)) if self.shows_effect(values, floor) else bound

    def shows_effect(self, values: list[float], floor: bool) -> bool:
        """Every value on the technique's side of the no-effect line (only for a rule with a promise)."""
        if not self.keep or not values:
            return False
        return min(values) > NO_EFFECT if floor else max(values) < NO_EFFECT

    def promise(self, values: list[float], floor: bool) -> float:
        """The bound that keeps ``keep`` of the smallest effect in ``values``."""
        if floor:
            return NO_EFFECT + self.keep * (min(values) - NO_EFFECT)
        return NO_EFFECT - self.keep * (NO_EFFECT - max(values))

    def describe(self, floor: bool) -> str:
        kept = ""
        if self.keep:
            smallest = "the lowest - 1" if floor else "1 - the highest"
            side = "above" if floor else "below"
            kept = f"; where every value is {side} 1, at least {self.keep:g} x ({smallest}) from 1"
        if floor:
            return f"{self.factor:g} x the lowest{kept}"
        return f"max(highest x {self.factor:g}, highest + {self.margin:g}){kept}"


def no_effect_fails(bound: float, floor: bool) -> bool:
    """Whether a run with no effect FAILS ``bound``: a floor needs the whole ±3% interval of a 1.00x run
    below it; a ceiling (a ratio with no interval) needs 1.00 above it. Otherwise the effect is marginal:
    a floor above 1 keeps a no-effect run INCONCLUSIVE (never PASS); a ceiling of 1.00 lets it pass."""
    if floor:
        return bound > NO_EFFECT * (1 + NO_EFFECT_HALF_WIDTH)
    return bound < NO_EFFECT


@dataclass(frozen=True)
class Field:
    """One threshold field: its range, what it bounds, whether it depends on the hardware, and the rule
    ``perfgate thresholds derive`` writes it by (hardware-dependent fields only)."""

    low: float
    high: float
    meaning: str
    hardware: bool  # True: speed, memory, gains, fits; False: exact or library-fixed (fidelity, sizes, graphs)
    rule: Rule | None = None


SPEED_RULE = Rule(0.75, keep=PROMISE_KEEP)  # of the lowest lower CI bound: a runner 20% slower passes
GAIN_RULE = Rule(0.75, keep=PROMISE_KEEP)  # batching and sorting gains: ratios of medians, speed's margin
EFFICIENCY_RULE = Rule(0.75)  # the loader's measured speedup over its prediction: 1 is the prediction, not no effect
FIT_RULE = Rule(0.85, keep=PROMISE_KEEP)  # largest batch under a cap: exact for a cap, the fp32 arm moves 3-4%
MEMORY_RULE = Rule(1.15, 0.10, keep=PROMISE_KEEP)  # serving and training memory: a few MB move a small fp32 side
LOAD_RULE = Rule(1.15, 0.05)  # load peaks and offload residency over stored bytes (hundreds of MB)
FIELDS: Mapping[str, Field] = {
    "min_speedup": Field(0.0, math.inf, "lower CI bound of baseline/candidate time must reach it", True, SPEED_RULE),
    "max_slowdown": Field(
        0.0, math.inf, "candidate may be this fraction slower (0.1 = 10%), judged on the CI", True, SPEED_RULE
    ),
    "max_memory_ratio": Field(
        0.0, math.inf, "candidate/baseline serving memory attributable to the model", True, MEMORY_RULE
    ),
    "min_decode_speedup": Field(
        0.0,
        math.inf,
        "generation: lower CI bound of fp32's per-token decode time over the candidate's",
        True,
        SPEED_RULE,
    ),
    "max_size_ratio": Field(0.0, math.inf, "candidate/baseline bytes of weights", False),
    "min_cosine": Field(-1.0, 1.0, "lowest row cosine to fp32 outputs", False),
    "min_top1": Field(0.0, 1.0, "share of rows whose argmax agrees with fp32", False),
    "min_task_ratio": Field(0.0, math.inf, "task score relative to fp32 (0.99 = 99% of fp32)", False),
    "max_task_loss": Field(
        0.0, 1.0, "task accuracy the candidate may lose to fp32 (0.02 = 2 points), judged on the paired interval", False
    ),
    "max_compile_graphs": Field(1.0, math.inf, "graphs torch.compile builds over the fixed length sweep", False),
    "max_graph_breaks": Field(0.0, math.inf, "graph breaks while tracing", False),
    "max_energy_ratio": Field(0.0, math.inf, "candidate/baseline GPU energy per inference (NVML)", True, MEMORY_RULE),
    "min_batching_gain": Field(
        0.0,
        math.inf,
        "batch sweep: best length-sorted throughput over batch-1 throughput",
        True,
        GAIN_RULE,
    ),
    "min_sorting_gain": Field(
        0.0, math.inf, "batch sweep: length-sorted over random-order throughput at the largest batch", True, GAIN_RULE
    ),
    "min_cache_gain": Field(
        0.0, math.inf, "result cache: lower CI bound of the stream's speedup with the cache", True, SPEED_RULE
    ),
    "max_cache_prediction_error": Field(
        0.0, 1.0, "result cache: relative distance of the measured gain's interval from the hit-rate prediction", False
    ),
    "min_batch_fit_ratio": Field(
        0.0,
        math.inf,
        "largest batch that fits under the same memory cap, over fp32's",
        True,
        FIT_RULE,
    ),
    "max_load_anon_ratio": Field(
        0.0,
        math.inf,
        "load: anonymous peak beyond the runtime's, over the stored weights",
        True,
        LOAD_RULE,
    ),
    "max_load_output_diff": Field(
        0.0, math.inf, "load: largest absolute output difference to the plain fp32 load", False
    ),
    "max_loss_diff": Field(
        0.0, math.inf, "training: largest loss difference to fp32 AdamW over the first steps", False
    ),
    "min_train_batch_fit_ratio": Field(
        0.0,
        math.inf,
        "training: largest batch that fits under the cap, over fp32 AdamW's",
        True,
        FIT_RULE,
    ),
    "min_prefetch_efficiency": Field(
        0.0,
        math.inf,
        "training: loader workers' measured speedup over the predicted one",
        True,
        EFFICIENCY_RULE,
    ),
    "max_train_memory_ratio": Field(
        0.0, math.inf, "training: anonymous peak over the steps, over fp32 AdamW's", True, MEMORY_RULE
    ),
    "max_state_prediction_error": Field(
        0.0, math.inf, "training: optimizer state measured against its rule, relative", False
    ),
    "max_shard_prediction_error": Field(
        0.0,
        math.inf,
        "distributed: parameters, gradients or state a rank holds against the recipe's prediction",
        False,
    ),
    "max_communication_error": Field(
        0.0, math.inf, "distributed: bytes a rank's collectives move per step against the recipe's prediction", False
    ),
    "max_parameter_peak_ratio": Field(
        0.0,
        math.inf,
        "distributed: FSDP full shard's most parameter bytes held at once, over its shards plus the two largest units",
        False,
    ),
    "min_saving_ratio": Field(
        0.0,
        math.inf,
        "distributed: saving per rank against DDP's peak, over the saving the recipe's partition predicts",
        False,
    ),
    "max_saving_ratio": Field(
        0.0,
        math.inf,
        "distributed: saving per rank against DDP's peak, over the saving the recipe's partition predicts",
        False,
    ),
    "max_unexplained_share": Field(
        0.0,
        1.0,
        "distributed: the part of a rank's peak left out by its measured parts (tensors, buffers, activations)",
        False,
    ),
    "max_rank_memory_ratio": Field(
        0.0, math.inf, "distributed: largest per-rank anonymous peak over DDP's", True, MEMORY_RULE
    ),
    "max_offload_resident_ratio": Field(
        0.0,
        math.inf,
        "offload: RAM held after the first forward, over max_memory cpu",
        True,
        LOAD_RULE,
    ),
}
HARDWARE_FIELDS = frozenset(name for name, spec in FIELDS.items() if spec.hardware)
SPEED_FIELDS = frozenset({"min_speedup", "max_slowdown"})  # two spellings of one rule
TASK_FIELDS = frozenset({"min_task_ratio", "max_task_loss"})  # a case scores its labelled set only for these


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
