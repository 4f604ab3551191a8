"""Options: one table, each with a command-line flag, an environment variable and an ini key.

Precedence, highest first: command line > environment > ini (pytest.ini / [tool.pytest.ini_options])
> default. Thresholds are layered instead of replaced: the ini file is the base and a file from the
command line or environment overrides it field by field, over the thresholds shipped with perfgate and
under the per-class files of ``thresholds.d/`` (``thresholds.layers``). A bad value raises ``pytest.UsageError``
naming where it came from.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from perfgate.engine.placement import parse_gpu_list
from perfgate.errors import ConfigError
from perfgate.subjects.model import TASKS, ModelSource
from perfgate.verdicts.thresholds import layers

__all__ = ["OPTIONS", "Option", "Settings", "add_options", "read_settings", "user_models"]


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be > 0")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be >= 1")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def _switch(text: str) -> bool:
    return {"on": True, "off": False, "true": True, "false": False, "1": True, "0": False}[text.lower()]


@dataclass(frozen=True)
class Option:
    name: str  # Settings attribute; flag --perfgate-<name>, env PERFGATE_<NAME>, ini perfgate_<name>
    help: str
    parse: Callable[[str], Any] = str
    default: Any = None
    switch: bool = False  # the flag takes no value and means "on"; env and ini say on/off

    @property
    def flag(self) -> str:
        return "--perfgate-" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "PERFGATE_" + self.name.upper()

    @property
    def ini(self) -> str:
        return "perfgate_" + self.name


OPTIONS = (
    Option("budget", "seconds of A/B timing per case before the verdict is INCONCLUSIVE", _positive_float, 20.0),
    Option("min_pairs", "A/B pairs before the first look at the interval", _positive_int, 10),
    Option("seed", "seed of the bootstrap resampling", int, 0),
    Option(
        "precision",
        "measure each A/B case until its speedup interval is within ±this fraction (0.03: ±3%), within the "
        "budget, whatever the verdict: figures for the nightly history (default: stop once the verdict is decided)",
        _positive_float,
        None,
    ),
    Option("threads", "torch/onnxruntime intra-op threads (default: torch's choice)", _positive_int, None),
    Option("thresholds", "thresholds TOML; the ini file is the base, the flag/env file overrides it", str, None),
    Option("report_dir", "directory for results.json and summary.md", str, "reports/latest"),
    Option("cache_dir", "cache for built fixture models and exported artifacts", str, "~/.cache/perfgate"),
    Option("hardware_class", "use this hardware class instead of the detected one", str, None),
    Option("sentences", "text file of evaluation sentences, one per line", str, None),
    Option("memory_timeout", "seconds a serving-memory worker may run before it is killed", _positive_float, 600.0),
    Option(
        "case_timeout",
        "seconds a case's worker job may run before the worker is killed (timeout)",
        _positive_float,
        900.0,
    ),
    Option("kill_grace", "seconds between SIGTERM and SIGKILL when a worker is killed", _positive_float, 5.0),
    Option(
        "explain",
        "after the run, profile the N slowest cases that failed a speed gate against fp32 eager, op by op "
        "(perfgate explain), and put each diff in the summary; 0: none",
        _count,
        0,
    ),
    Option(
        "history",
        "directory of past results files: compare this run with it at the end (exit status 1 on a regression)",
        str,
        None,
    ),
    Option(
        "gpus",
        "GPUs to measure on, as CUDA_VISIBLE_DEVICES names them (e.g. 0,1): xdist worker gwK takes the K-th "
        "in turn; default all visible",
        parse_gpu_list,
        None,
    ),
    Option(
        "memory",
        "measure serving memory per arm in fresh workers: on or off",
        lambda t: {"on": True, "off": False}[t],
        True,
    ),
    Option(
        "html",
        "write report.html (matplotlib's figures, about 2 s a run): on or off; a re-measurement "
        "(compare --confirm, bisect steps) writes none",
        lambda t: {"on": True, "off": False}[t],
        True,
    ),
    Option(
        "recommend_min_cosine",
        "the Recommendation section's fidelity floor: output cosine against fp32 (perfgate recommend --min-cosine)",
        _positive_float,
        0.99,
    ),
    Option(
        "recommend_max_memory_ratio",
        "the Recommendation section's serving-memory ceiling over fp32's (default: none)",
        _positive_float,
        None,
    ),
    Option(
        "recommend_min_task_delta",
        "the Recommendation section's task-accuracy limit as a delta, on the interval's low end (-0.02: 2 points; "
        "default: none)",
        float,
        None,
    ),
    Option(
        "gpu_budget_gib",
        "device memory a GPU batch search may use, in GiB: torch's allocator is capped there, so out-of-memory "
        "is reached on any GPU size (default: 4 serving, 8 training)",
        _positive_float,
        None,
    ),
    Option(
        "durations",
        "JSON of recorded test durations (nodeid -> seconds, pytest-split's format): the progress line's estimates",
        str,
        None,
    ),
    Option(
        "require_gated",
        "fail a case whose speed, memory and other hardware-dependent figures have no threshold on this class "
        "(a runner that should be gated but is not); RECORDED scenarios are exempt",
        _switch,
        False,
        switch=True,
    ),
)


@dataclass(frozen=True)
class Settings:
    budget: float
    min_pairs: int
    seed: int
    precision: float | None
    threads: int | None
    thresholds: list[Path]
    report_dir: Path
    cache_dir: Path
    hardware_class: str | None
    sentences: Path | None
    memory_timeout: float
    case_timeout: float
    kill_grace: float
    memory: bool
    html: bool = True
    require_gated: bool = False
    history: Path | None = None
    explain: int = 0
    gpus: list[str] | None = None
    durations: Path | None = None
    gpu_budget_gib: float | None = None
    recommend_min_cosine: float | None = 0.99
    recommend_max_memory_ratio: float | None = None
    recommend_min_task_delta: float | None = None
    sources: dict[str, str] = field(default_factory=dict)  # option -> where its value came from

    def describe(self) -> str:
        return ", ".join(
            f"{name}={getattr(self, name)!s} ({self.sources[name]})" for name in ("budget", "threads", "report_dir")
        )


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("perfgate", "perfgate: A/B performance gates for model optimizations")
    for option in OPTIONS:
        shape: dict[str, Any] = {"action": "store_const", "const": "on"} if option.switch else {}
        group.addoption(
            option.flag,
            dest=f"perfgate_{option.name}",
            default=None,
            help=f"{option.help} [env {option.env}]",
            **shape,
        )
        parser.addini(option.ini, option.help, default=None)
    group.addoption(
        "--perfgate-model",
        dest="perfgate_model",
        action="append",
        default=[],
        metavar="NAME=PATH[:TASK]",
        help="add a model from a local directory (task defaults to feature-extraction)",
    )


def read_settings(config: pytest.Config) -> Settings:
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    root = config.rootpath
    for option in OPTIONS:
        raw, source = _raw_value(config, option)
        try:
            values[option.name] = option.default if raw is None else option.parse(raw)
        except (ValueError, KeyError) as error:
            raise pytest.UsageError(
                f"perfgate: {source} {option.name}={raw!r} is invalid ({error}); {option.help}"
            ) from None
        sources[option.name] = source
    ini_thresholds = config.getini("perfgate_thresholds")
    override = config.getoption("perfgate_thresholds") or os.environ.get("PERFGATE_THRESHOLDS")
    thresholds = layers(
        root / str(ini_thresholds) if ini_thresholds else None,
        root,
        Path(override).expanduser().resolve() if override else None,
    )
    values["thresholds"] = thresholds
    values["report_dir"] = root / Path(values["report_dir"]).expanduser()
    values["cache_dir"] = root / Path(values["cache_dir"]).expanduser()  # absolute: exporters chdir
    if values["history"] is not None:
        values["history"] = root / Path(values["history"]).expanduser()
    if values["sentences"] is not None:
        values["sentences"] = root / values["sentences"]
    if values["durations"] is not None:
        values["durations"] = root / Path(values["durations"]).expanduser()
    return Settings(**values, sources=sources)


def _raw_value(config: pytest.Config, option: Option) -> tuple[str | None, str]:
    cli = config.getoption(f"perfgate_{option.name}")
    if cli is not None:
        return str(cli), f"command line {option.flag}"
    if option.env in os.environ:
        return os.environ[option.env], f"environment {option.env}"
    ini = config.getini(option.ini)
    if ini:
        return str(ini), f"ini {option.ini}"
    return None, "default"


def user_models(config: pytest.Config) -> list[ModelSource]:
    """Models from ``[tool.perfgate.models.NAME]`` in the rootdir's pyproject and ``--perfgate-model``."""
    sources = []
    pyproject = config.rootpath / "pyproject.toml"
    if pyproject.is_file():
        try:
            table = tomllib.loads(pyproject.read_text()).get("tool", {}).get("perfgate", {}).get("models", {})
        except tomllib.TOMLDecodeError as error:
            raise pytest.UsageError(f"perfgate: {pyproject} is not valid TOML: {error}") from None
        for name, entry in table.items():
            origin = f"{pyproject} [tool.perfgate.models.{name}]"
            sources.append(_source(name, entry, origin, config.rootpath))
    for text in config.getoption("perfgate_model"):
        name, sep, rest = text.partition("=")
        if not sep or not name:
            raise pytest.UsageError(f"perfgate: --perfgate-model {text!r} must look like NAME=PATH[:TASK]")
        path, _, task = rest.partition(":") if rest.rpartition(":")[2] in TASKS else (rest, "", "")
        sources.append(
            _source(name, {"path": path, "task": task or "feature-extraction"}, f"--perfgate-model {text}", Path.cwd())
        )
    return sources


def _source(name: str, entry: dict[str, Any], origin: str, root: Path) -> ModelSource:
    try:
        path = entry.get("path")
        eval_file = entry.get("eval_file")
        source = ModelSource(
            name=name,
            task=entry.get("task", "feature-extraction"),
            path=(root / Path(path).expanduser()) if path else None,
            hub_id=entry.get("hub_id"),
            eval_file=(root / eval_file) if eval_file else None,
            origin=origin,
            tags=frozenset({"default", "user"}),
        )
    except ConfigError as error:
        raise pytest.UsageError(f"perfgate: {error}") from None
    return source
