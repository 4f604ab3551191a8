"""One object per pytest session: settings, hardware, thresholds, models, and the run's record.

Everything expensive (hardware probing, model loading, technique preparation) happens lazily on first
use and is cached for the rest of the session, so a model loads once however many cases use it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.metadata
import signal
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfgate.calibration import calibrate
from perfgate.comparison import ComparePolicy
from perfgate.errors import ConfigError
from perfgate.fidelity import LabelledSet, load_labelled_set
from perfgate.hardware import Hardware, detect
from perfgate.measurement import BASELINE, CaseInputs, CaseResult, CaseSpec, run_case
from perfgate.memory import MemoryRequest, Outcome, run_probe
from perfgate.model import LoadedModel, ModelRegistry, load_model
from perfgate.report import markdown_summary
from perfgate.results import RunRecord, write_atomically
from perfgate.technique import Variant, get_technique, import_path, technique_names
from perfgate.thresholds import Thresholds, ThresholdsFile, load_thresholds
from perfgate.timing import Timer, cuda_synchronizer, torch_threads

if TYPE_CHECKING:
    import pytest

    from perfgate.config import Settings

__all__ = ["PerfgateSession", "Unavailable"]


class Unavailable(Exception):
    """A case cannot run here (missing device, library or task support); the test is skipped with it."""


class PerfgateSession:
    def __init__(self, config: pytest.Config, settings: Settings, models: ModelRegistry) -> None:
        self.config = config
        self.settings = settings
        self.models = models
        self.skipped: list[tuple[str, str]] = []
        self.record: RunRecord | None = None
        self._loaded: dict[tuple[str, str], LoadedModel] = {}
        self._variants: dict[tuple[str, str, str], Variant] = {}
        self._memory: dict[tuple[str, ...], dict[str, Any]] = {}

    @functools.cached_property
    def hardware(self) -> Hardware:
        return detect(class_override=self.settings.hardware_class)

    def hardware_class(self, device: str) -> str:
        chosen = self.config.hook.pytest_perfgate_hardware_class(hardware=self.hardware, device=device)
        return str(chosen) if chosen else self.hardware.hardware_class(device)

    @functools.cached_property
    def thresholds(self) -> ThresholdsFile:
        return load_thresholds(self.settings.thresholds, technique_names())

    def thresholds_for(self, spec: CaseSpec) -> Thresholds:
        technique, hardware_class = spec.technique, self.hardware_class(spec.device)
        found = self.thresholds.lookup(technique, hardware_class, spec.model, spec.batch_size)
        override = self.config.hook.pytest_perfgate_thresholds(
            technique=technique, hardware_class=hardware_class, thresholds=found
        )
        return override or found

    @functools.cached_property
    def sentences(self) -> list[str]:
        path = self.settings.sentences
        if path is None:
            raise ConfigError(
                "no evaluation sentences: set perfgate_sentences (ini) or --perfgate-sentences to a text file"
            )
        try:
            lines = [line.strip() for line in path.read_text().splitlines()]
        except OSError as error:
            raise ConfigError(
                f"sentences file {str(path)!r} cannot be read ({error}); fix perfgate_sentences"
            ) from None
        sentences = [line for line in lines if line and not line.startswith("#")]
        if not sentences:
            raise ConfigError(f"sentences file {str(path)!r} holds no sentences")
        return sentences

    def labelled_set(self, model: str) -> LabelledSet | None:
        source = self.models.get(model)
        return load_labelled_set(source.eval_file) if source.eval_file else None

    def loaded(self, name: str, device: str) -> LoadedModel:
        key = (name, device)
        if key not in self._loaded:
            source = self.models.get(name)
            location = source.resolve(self.settings.cache_dir / "models")
            self._loaded[key] = load_model(name, source.task, location, device)
        return self._loaded[key]

    def variant(self, model: LoadedModel, technique: str, threads: int | None) -> Variant:
        key = (model.name, model.device, technique)
        if key not in self._variants:
            workdir = self.settings.cache_dir / "artifacts"
            self._variants[key] = get_technique(technique).apply(model, workdir, threads)
        return self._variants[key]

    def check_available(self, spec: CaseSpec) -> None:
        technique = get_technique(spec.technique)  # an unknown name raises UnknownTechniqueError here
        if spec.device.startswith("cuda") and not self.hardware.has_cuda:
            raise Unavailable(f"{spec.case_id}: no CUDA device here (torch.cuda.is_available() is False)")
        reason = technique.unavailable_reason(self.models.get(spec.model).task, spec.device)
        if reason:
            raise Unavailable(reason)

    def policy(self) -> ComparePolicy:
        s = self.settings
        return ComparePolicy(min_pairs=s.min_pairs, budget_seconds=s.budget, seed=s.seed)

    def run(self, spec: CaseSpec, nodeid: str, simulate_oom: bool = False) -> CaseResult:
        self.check_available(spec)
        result = CaseResult(spec=spec, hardware_class=self.hardware_class(spec.device), nodeid=nodeid)
        record = self._ensure_record()
        record.cases.append(result)
        try:
            model = self.loaded(spec.model, spec.device)
            prepared = CaseInputs(
                model=model,
                baseline=self.variant(model, BASELINE, spec.threads),
                candidate=self.variant(model, spec.technique, spec.threads),
                thresholds=self.thresholds_for(spec),
                timed_texts=self._timed_texts(spec.batch_size),
                eval_texts=self.sentences,
                labelled=self.labelled_set(spec.model),
                policy=self.policy(),
                memory=(lambda: self._memory_pair(spec, model, simulate_oom)) if self.settings.memory else None,
            )
            with deadline(self.settings.case_timeout):
                run_case(spec, prepared, result)
        except CaseTimeout as timeout:
            result.outcome, result.detail, result.verdict = Outcome.TIMEOUT, str(timeout), "fail"
        except Exception as error:
            result.outcome, result.detail = Outcome.ERROR, f"{type(error).__name__}: {error}"
            raise
        finally:
            self.save()  # after every case, so a crash later keeps this one
        return result

    def calibrate(self, spec: CaseSpec, fractions: Sequence[float]) -> dict[str, Any]:
        """A/A and planted slowdowns of ``spec``'s model in fp32 eager; stored under the run's calibration."""
        self.check_available(spec)
        loaded = self.loaded(spec.model, spec.device)
        inputs = loaded.inputs(self._timed_texts(spec.batch_size))
        timer = Timer(synchronize=cuda_synchronizer(spec.device))
        # The noise floor needs more than the 10 pairs an easy A/A would stop at: insist on 40, ±1%.
        policy = dataclasses.replace(self.policy(), min_pairs=40, ungated_halfwidth=0.01)
        with torch_threads(spec.threads):
            outcome = calibrate(lambda: loaded.run(inputs), timer, policy, fractions)
        entry = {"spec": spec.to_dict(), "hardware_class": self.hardware_class(spec.device), **outcome.to_dict()}
        self.record_calibration(spec.case_id, entry)
        return entry

    def _timed_texts(self, batch_size: int) -> list[str]:
        sentences = self.sentences
        return [sentences[i % len(sentences)] for i in range(batch_size)]

    def _memory_pair(self, spec: CaseSpec, model: LoadedModel, simulate_oom: bool) -> dict[str, Any]:
        baseline = self._probe(spec, model, BASELINE, simulate_oom=False)
        candidate = self._probe(spec, model, spec.technique, simulate_oom)
        ratio = None
        if baseline.get("outcome") == candidate.get("outcome") == Outcome.MEASURED and baseline["rss_growth"] > 0:
            ratio = candidate["rss_growth"] / baseline["rss_growth"]
        return {
            "baseline": baseline,
            "candidate": candidate,
            "ratio": ratio,
            "measure": "RSS growth, load to after forward",
        }

    def _probe(self, spec: CaseSpec, model: LoadedModel, technique: str, simulate_oom: bool) -> dict[str, Any]:
        key = (spec.model, technique, str(spec.batch_size), str(spec.seq_len), spec.device, str(spec.threads))
        if key in self._memory and not simulate_oom:
            return self._memory[key]
        request = MemoryRequest(
            model=model.name,
            task=model.task,
            location=str(model.location),
            technique=import_path(technique),
            texts=self._timed_texts(spec.batch_size),
            seq_len=spec.seq_len,
            device=spec.device,
            threads=spec.threads,
            workdir=str(self.settings.cache_dir / "artifacts"),
            simulate_oom=simulate_oom,
            extra_sys_path=[str(self.config.rootpath)],
        )
        result = run_probe(request, self.settings.memory_timeout)
        if not simulate_oom:
            self._memory[key] = result
        return result

    def _ensure_record(self) -> RunRecord:
        if self.record is None:
            fingerprint = self.hardware.fingerprint()
            self.config.hook.pytest_perfgate_machine_info(info=fingerprint)
            settings = {k: str(v) for k, v in asdict(self.settings).items() if k != "sources"}
            self.record = RunRecord(fingerprint=fingerprint, config=settings, perfgate_version=_version())
        return self.record

    def record_calibration(self, key: str, entry: dict[str, Any]) -> None:
        record = self._ensure_record()
        record.calibration = {**(record.calibration or {}), key: entry}
        self.save()

    @property
    def results_path(self) -> Path:
        return self.settings.report_dir / "results.json"

    def save(self) -> None:
        if self.record is not None:
            self.record.save(self.results_path)

    def write_summary(self) -> Path | None:
        if self.record is None:
            return None
        path = self.settings.report_dir / "summary.md"
        write_atomically(path, markdown_summary(self.record, self.skipped))
        return path


class CaseTimeout(Exception):
    """A case ran past --perfgate-case-timeout."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise CaseTimeout in the main thread after ``seconds`` (SIGALRM, as pytest-timeout's signal
    method does). Elsewhere (threads, Windows) the case runs unbounded and the budget limits timing."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise CaseTimeout(f"case ran past {seconds:g} s (--perfgate-case-timeout)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _version() -> str:
    try:
        return importlib.metadata.version("perfgate")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
