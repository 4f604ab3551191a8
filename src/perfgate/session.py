"""One object per pytest process: settings, hardware, thresholds, workers, and the run's record.

It holds configuration and results, never models: those live in worker processes (``launcher``). A
case is recorded as ``started`` before it runs and saved again when it ends, so even a crash of this
process leaves a trace. Under pytest-xdist each xdist worker writes its part of the record beside the
results file, and the controller merges the parts into one ``results.json`` and one summary.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfgate.case import CaseContext, CaseResult, judge
from perfgate.errors import ConfigError, ResultsFileError, ThresholdsError
from perfgate.hardware import Hardware, cuda_settings, detect, known_class
from perfgate.launcher import Launcher
from perfgate.model import BASELINE_PLACEMENT, model_class
from perfgate.nvml import clocks_and_power, read_nvml
from perfgate.outcome import Outcome
from perfgate.placement import GpuPlacement, choose_gpu, visible_gpu_ids
from perfgate.report import fit_job_summary, markdown_summary
from perfgate.results import RunRecord, merge_records, write_atomically
from perfgate.scenarios import get_scenario
from perfgate.spec import BASELINE, CaseSpec
from perfgate.technique import (
    STACK_SEPARATOR,
    Technique,
    compute_capability_reason,
    get_technique,
    import_path,
    technique_names,
)
from perfgate.thresholds import TASK_FIELDS, Thresholds, ThresholdsFile, class_files_dir, load_thresholds

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pytest

    from perfgate.config import Settings
    from perfgate.history import Comparison, History
    from perfgate.model import ModelRegistry
    from perfgate.progress import Progress
    from perfgate.upgrade import GatePolicy, GateResult

__all__ = ["PerfgateSession", "Unavailable"]

PARTS = ".parts"  # beside results.json: one record per pytest-xdist worker, merged by the controller


class Unavailable(Exception):
    """A case cannot run here (missing device, library or task support); the test is skipped with it."""


class PerfgateSession:
    def __init__(self, config: pytest.Config, settings: Settings, models: ModelRegistry) -> None:
        self.config = config
        self.settings = settings
        self.models = models
        self.skipped: list[tuple[str, str]] = []
        self.record: RunRecord | None = None
        self.history: History | None = None  # past runs, with --perfgate-history
        self._memo: dict[tuple[Any, ...], Any] = {}
        workerinput: dict[str, Any] = getattr(config, "workerinput", {})
        self.xdist_worker: str | None = workerinput.get("workerid")
        self.xdist_controller = self.xdist_worker is None and config.getoption("dist", "no") != "no"
        self.progress: Progress | None = None  # the plugin's progress lines, where they are shown

    # --- configuration, checked once before any case runs ------------------------------------------

    def validate(self) -> None:
        """Raise ConfigError for configuration that would otherwise fail every case, or gate nothing."""
        thresholds = self.thresholds
        known = self.known_hardware_classes()
        for path, technique, section in thresholds.class_sections():
            if not known_class(section, known):
                raise ThresholdsError(
                    path,
                    f"techniques.{technique}.{section}",
                    section,
                    f"names no known hardware class, so it would gate nothing; use one of {', '.join(known)} "
                    "(or gpu-smNN), or declare it with the pytest_perfgate_hardware_classes hook",
                )
        for name in self.models.names():
            source = self.models.get(name)
            if source.path is not None:
                source.resolve(self.settings.cache_dir / "models")  # a missing directory raises here
        if self.settings.sentences is not None and not self.settings.sentences.is_file():
            raise ConfigError(
                f"sentences file path={str(self.settings.sentences)!r} does not exist; fix perfgate_sentences "
                "(ini) or --perfgate-sentences"
            )
        if self.settings.history is not None:
            from perfgate.history import load_history

            # Read once, before any case: a missing directory or a corrupt file ends the run here.
            self.history = load_history(self.settings.history)

    def known_hardware_classes(self) -> list[str]:
        declared = [c for found in self.config.hook.pytest_perfgate_hardware_classes() for c in found]
        override = [self.settings.hardware_class] if self.settings.hardware_class else []
        from perfgate.hardware import DETECTED_CLASSES, FAMILIES

        return sorted({*FAMILIES, *DETECTED_CLASSES, *declared, *override})

    @functools.cached_property
    def hardware(self) -> Hardware:
        return detect(class_override=self.settings.hardware_class)

    @functools.cached_property
    def gpu(self) -> GpuPlacement | None:
        """This process's GPU on a multi-GPU host (``placement.py``); None without CUDA."""
        visible = visible_gpu_ids(os.environ, len(self.hardware.gpus))
        return choose_gpu(os.environ.get("PYTEST_XDIST_WORKER"), visible, self.settings.gpus)

    def placed(self, device: str) -> str:
        """``device`` as this process's hardware list indexes it: ``cuda`` is the GPU placed for it."""
        if device == "cuda" and self.gpu is not None:
            return f"cuda:{self.gpu.position}"
        return device

    def hardware_class(self, device: str) -> str:
        device = self.placed(device)
        chosen = self.config.hook.pytest_perfgate_hardware_class(hardware=self.hardware, device=device)
        return str(chosen) if chosen else self.hardware.hardware_class(device)

    @functools.cached_property
    def thresholds(self) -> ThresholdsFile:
        return load_thresholds(self.settings.thresholds, technique_names())

    def capability(self, spec: CaseSpec) -> str | None:
        """The native-math capability section a precision technique is judged under, or None."""
        dtype = get_technique(spec.technique).native_math
        return self.hardware.capability(dtype, self.placed(spec.device)) if dtype else None

    def thresholds_for(self, spec: CaseSpec) -> Thresholds:
        technique, hardware_class = spec.technique, self.hardware_class(spec.device)
        if spec.baseline != BASELINE:  # thresholds bound a technique against fp32 eager, not against another
            return Thresholds(technique, hardware_class, gated=False)
        found = self.thresholds.lookup(technique, hardware_class, spec.model, spec.batch_size, self.capability(spec))
        override = self.config.hook.pytest_perfgate_thresholds(
            technique=technique, hardware_class=hardware_class, thresholds=found
        )
        return override or found

    def capabilities(self, device: str = "cpu") -> list[str]:
        """The capability sections this machine is judged under, read from its CPU flags (or GPU)."""
        return [self.hardware.capability(dtype, self.placed(device)) for dtype in ("bf16", "fp16", "int8")]

    def coverage(self) -> str:
        """Which thresholds sections apply on this machine's CPU class, for the report header."""
        hardware_class = self.hardware_class("cpu")
        counts = dict.fromkeys((hardware_class, "cpu", *self.capabilities()), 0)
        for _, _, section in self.thresholds.class_sections():
            if section in counts:
                counts[section] += 1
        described = "; ".join(f"{level}: {count} techniques" for level, count in counts.items())
        note = "" if counts[hardware_class] else (
            f" ({hardware_class} has no sections: fidelity and sizes from 'default' judge, speed and memory "
            "are recorded UNGATED where no family or capability section applies)"
        )  # fmt: skip
        return f"thresholds sections for this CPU (capabilities from its flags) — {described}{note}"

    def ungated_message(self, result: CaseResult) -> str:
        """Why --perfgate-require-gated fails an UNGATED case, and how to gate it."""
        spec, hardware_class = result.spec, result.hardware_class
        files = ", ".join(str(p) for p in self.settings.thresholds)
        target = class_files_dir(self._ini_thresholds(), self.config.rootpath) / f"{hardware_class}.toml"
        return (
            f"{result.context}: {', '.join(sorted(set(result.ungated)))} measured with no threshold on "
            f'{hardware_class}, and --perfgate-require-gated is on: no section [techniques."{spec.technique}".'
            f"{hardware_class}] (nor its family or capability) in {files}. Gate this runner: store a few nightly "
            f"runs (perfgate store), then `perfgate thresholds derive --history HISTORY --class {hardware_class} "
            f"--output {target}`, review the diff and commit it"
        )

    def _ini_thresholds(self) -> Path | None:
        ini = self.config.getini("perfgate_thresholds")
        return self.config.rootpath / str(ini) if ini else None

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

    # --- running cases --------------------------------------------------------------------------------

    @functools.cached_property
    def launcher(self) -> Launcher:
        # The worker imports what this process can: the rootdir (conftest techniques) and our sys.path.
        paths = [str(self.config.rootpath), *sys.path]
        gpu = self.gpu if self.hardware.has_cuda else None
        return Launcher(paths, lock_dir=self.settings.cache_dir / "locks", grace=self.settings.kill_grace, gpu=gpu)

    def close(self) -> None:
        if "launcher" in self.__dict__:
            self.launcher.close()

    def check_available(self, spec: CaseSpec) -> None:
        technique = get_technique(spec.technique)  # an unknown name raises UnknownTechniqueError here
        get_scenario(spec.scenario)
        if spec.device.startswith("cuda") and not self.hardware.has_cuda:
            raise Unavailable(f"{spec.case_id}: no CUDA device here (torch.cuda.is_available() is False)")
        source = self.models.get(spec.model)
        if source.unavailable:
            raise Unavailable(f"{spec.model}: {source.unavailable}")
        reason = technique.unavailable_reason(source.task, spec.device)
        if not reason and spec.baseline != BASELINE:
            if spec.scenario != "ab-forward":
                raise ConfigError(f"{spec.case_id}: baseline={spec.baseline!r} is for scenario 'ab-forward' only")
            reason = get_technique(spec.baseline).unavailable_reason(source.task, spec.device)
        if spec.world is not None and (spec.scenario != "train-distributed" or spec.world < 1):
            raise ConfigError(f"{spec.case_id}: world={spec.world!r} is a rank count (at least 1) for scenario "
                              "'train-distributed' only")  # fmt: skip
        reason = reason or technique.input_reason(spec.batch_size, spec.seq_len)
        if not reason and spec.device.startswith("cuda"):
            reason = compute_capability_reason(technique, self.hardware.gpu(self.placed(spec.device)))
        if not reason and type(technique).model_reason is not Technique.model_reason:
            location = source.resolve(self.settings.cache_dir / "models")
            reason = technique.model_reason(model_class(source.task, location))
            reason = reason and f"{spec.technique} on {spec.model}: {reason}"
        if reason:
            raise Unavailable(reason)

    def run(self, spec: CaseSpec, nodeid: str, memory: bool | None = None) -> CaseResult:
        """Measure and record one case; ``memory`` False skips serving memory for it (None: the setting)."""
        self.check_available(spec)
        thresholds = self.thresholds_for(spec)
        result = CaseResult(spec=spec, hardware_class=self.hardware_class(spec.device), nodeid=nodeid)
        result.thresholds = {
            "capability": self.capability(spec),
            "gated": thresholds.gated,
            "derivable": all(get_technique(part).derive_thresholds for part in spec.technique.split(STACK_SEPARATOR)),
            "values": dict(thresholds.values),
            "origins": dict(thresholds.origins),
        }
        self._ensure_record().cases.append(result)
        self.save()  # recorded as started before it runs
        started = time.perf_counter()
        try:
            context = self._context(spec, result, thresholds)
            if memory is False:
                context.memory = False
            get_scenario(spec.scenario).conduct(context)
            if result.outcome == Outcome.STARTED:
                result.outcome = Outcome.MEASURED
        except BaseException as error:  # pytest-timeout's failure, Ctrl-C, or a bug here: keep the record
            timed_out = type(error).__name__ == "Failed" and str(error).startswith("Timeout")
            result.outcome = Outcome.TIMEOUT if timed_out else Outcome.ERROR
            result.detail = f"{type(error).__name__}: {error}"[:500]
            raise
        finally:
            result.wall_seconds = time.perf_counter() - started
            judge(result, thresholds)
            self.save()
            if self.progress is not None:
                self.progress.case_finished(result)
        return result

    def calibrate(self, spec: CaseSpec, fractions: Sequence[float]) -> dict[str, Any]:
        """A/A and planted slowdowns of ``spec``'s model in fp32 eager; stored under the run's calibration."""
        self.check_available(spec)
        result = CaseResult(spec=spec, hardware_class=self.hardware_class(spec.device))
        thresholds = Thresholds(BASELINE, result.hardware_class, gated=False)
        context = self._context(spec, result, thresholds, fractions=list(fractions))
        get_scenario(spec.scenario).conduct(context)
        entry = result.metrics.get("calibration") or {"outcome": result.outcome, "detail": result.detail}
        self.record_calibration(
            spec.case_id, {"spec": spec.to_dict(), "hardware_class": result.hardware_class, **entry}
        )
        return entry

    def _context(self, spec: CaseSpec, result: CaseResult, thresholds: Thresholds, **extra: Any) -> CaseContext:
        source = self.models.get(spec.model)
        location = source.resolve(self.settings.cache_dir / "models")
        s = self.settings
        payload = {
            "model": {
                "name": spec.model,
                "task": source.task,
                "location": str(location),
                "device": spec.device,
                "calibration_texts": self.sentences,  # for techniques that calibrate (static int8)
                "placement": BASELINE_PLACEMENT,  # timed jobs; serving memory measures weights as loaded
            },
            "technique": import_path(spec.technique),
            "baseline": import_path(spec.baseline),
            "batch_size": spec.batch_size,
            "seq_len": spec.seq_len,
            "threads": spec.threads,
            "workdir": str(s.cache_dir / "artifacts"),
            "timed_texts": self._timed_texts(spec.batch_size),
            "eval_texts": self.sentences,
            "labelled": str(source.eval_file) if source.eval_file else None,
            # scoring the labelled set costs seconds per arm: only where a task field judges it
            "score_task": bool(TASK_FIELDS & thresholds.values.keys()),
            "policy": {"min_pairs": s.min_pairs, "budget_seconds": s.budget, "seed": s.seed, "precision": s.precision},
            "bound": thresholds.speed_bound(),
            "decode_bound": thresholds.values.get("min_decode_speedup"),
            "gpu_budget_bytes": int(s.gpu_budget_gib * 2**30) if s.gpu_budget_gib else None,
            **extra,
        }
        context = CaseContext(
            spec=spec,
            result=result,
            thresholds=thresholds,
            launcher=self.launcher,
            base_payload=payload,
            timeout=s.case_timeout,
            memory_timeout=s.memory_timeout,
            memory=s.memory,
            fresh_worker=get_technique(spec.technique).fresh_worker,
            memo=self._memo,
        )
        return context

    def upgrade_gate(
        self, current: str, candidate: str, technique: str, candidate_python: str | None, policy: GatePolicy,
        memory: bool | None, batch_size: int = 1, device: str = "cpu", eval_file: Path | None = None,
    ) -> GateResult:  # fmt: skip
        """A model or library upgrade gate (``upgrade.py``) on registered models, recorded in the run."""
        from perfgate.arms import Arm, check_interpreter
        from perfgate.upgrade import GateRun, run_gate

        get_technique(technique)  # an unknown name raises here, with the known ones
        if candidate_python is not None:
            check_interpreter(candidate_python, "candidate_python")
        arms = []
        for label, name in (("current", current), ("candidate", candidate)):
            source = self.models.get(name)
            location = Path(source.resolve(self.settings.cache_dir / "models"))
            python = candidate_python if label == "candidate" and candidate_python else sys.executable
            arms.append(Arm(label, name, location, source.task, technique, python))
        labelled = eval_file or self.models.get(candidate).eval_file or self.models.get(current).eval_file
        s = self.settings
        run = GateRun(
            rootdir=self.config.rootpath, workdir=s.cache_dir / "artifacts" / "gates", lock_dir=s.cache_dir / "locks",
            eval_texts=self.sentences, timed_texts=self._timed_texts(batch_size), labelled=labelled, device=device,
            threads=s.threads, memory=s.memory if memory is None else memory, timeout=s.case_timeout,
            grace=s.kill_grace, gpu=self.gpu,
        )  # fmt: skip
        result = run_gate(arms[0], arms[1], run, policy)
        record = self._ensure_record()
        record.gates = [*(record.gates or []), result.to_dict()]
        self.save()
        return result

    def probe(self, model: str, technique: str, batch_size: int) -> dict[str, Any]:
        """How this session resolves a case's model and technique, for a command that measures it
        outside a worker job (``perfgate bisect``, ``explain``): the model's location and task, the
        technique's import path, the texts it times."""
        from perfgate.technique import import_path

        source = self.models.get(model)
        return {
            "location": str(source.resolve(self.settings.cache_dir / "models")), "task": source.task,
            "technique_path": import_path(technique), "sentences": list(self.sentences),
            "timed_texts": self._timed_texts(batch_size),
        }  # fmt: skip

    def _timed_texts(self, batch_size: int) -> list[str]:
        sentences = self.sentences
        return [sentences[i % len(sentences)] for i in range(batch_size)]

    # --- the record -----------------------------------------------------------------------------------

    def _ensure_record(self) -> RunRecord:
        if self.record is None:
            fingerprint = self.hardware.fingerprint()
            # timed jobs copy the fp32 weights into torch's allocator; serving memory keeps them mapped
            fingerprint["baseline_placement"] = {"weights": BASELINE_PLACEMENT, "serving_memory": "mapped"}
            if self.gpu is not None:
                fingerprint["gpu_placement"] = asdict(self.gpu)  # which GPU this process's CUDA cases ran on
                fingerprint["cuda_settings"] = cuda_settings()
                fingerprint["gpu_clocks"] = read_nvml(self.placed("cuda"), clocks_and_power)  # at the run's start
            self.config.hook.pytest_perfgate_machine_info(info=fingerprint)
            settings = {k: str(v) for k, v in asdict(self.settings).items() if k != "sources"}
            settings["markexpr"] = self.config.getoption("markexpr", "") or ""  # what a re-run must select again
            self.record = RunRecord(fingerprint=fingerprint, config=settings, perfgate_version=_version())
        return self.record

    def record_calibration(self, key: str, entry: dict[str, Any]) -> None:
        record = self._ensure_record()
        record.calibration = {**(record.calibration or {}), key: entry}
        self.save()

    @property
    def results_path(self) -> Path:
        return self.settings.report_dir / "results.json"

    @property
    def parts_dir(self) -> Path:
        return self.settings.report_dir / PARTS

    def save(self) -> None:
        if self.record is None:
            return
        path = self.parts_dir / f"{self.xdist_worker}.json" if self.xdist_worker else self.results_path
        self.record.save(path)

    def start(self) -> None:
        """At session start on the controller (or a plain run): clear the parts of an earlier xdist run."""
        if self.xdist_worker is None:
            shutil.rmtree(self.parts_dir, ignore_errors=True)

    def merge_parts(self) -> None:
        """On the xdist controller: one record from every worker's part, saved as results.json."""
        parts = sorted(self.parts_dir.glob("*.json"))
        if not parts:
            return
        records = []
        for part in parts:
            try:
                records.append(RunRecord.load(part))
            except ResultsFileError as error:  # a worker killed mid-write leaves no part, never half of one
                self.skipped.append((str(part), f"unreadable xdist part: {error}"))
        if not records:
            return
        merged = merge_records(records)
        merged.config["xdist_workers"] = str(len(records))
        self.record = merged
        merged.save(self.results_path)
        shutil.rmtree(self.parts_dir, ignore_errors=True)

    def xdist_workers(self) -> int:
        """How many pytest-xdist workers the controller started (-n N; 'auto' already resolved)."""
        try:
            return max(int(self.config.getoption("numprocesses", 1) or 1), 1)
        except (TypeError, ValueError):
            return 1

    def record_test_outcomes(self, outcomes: dict[str, tuple[str, str]]) -> None:
        """Each case's test outcome (nodeid -> (outcome, failure message)), saved with the record: a FAIL
        verdict whose test passed was expected by it."""
        if self.record is None or self.xdist_worker:
            return
        for case in self.record.cases:
            if case.nodeid in outcomes:
                case.test_outcome, case.test_failure = outcomes[case.nodeid]
        self.save()

    def write_summary(self, comparison: Comparison | None = None, history: Sequence[Any] = ()) -> Path | None:
        """summary.md, and report.html where matplotlib is installed (with the history's figure when the
        run was compared)."""
        if self.record is None or self.xdist_worker:
            return None
        path = self.settings.report_dir / "summary.md"
        summary = markdown_summary(self.record, self.skipped, comparison)
        write_atomically(path, summary)
        # What CI appends to $GITHUB_STEP_SUMMARY: the same, cut to fit its 1 MiB.
        write_atomically(self.settings.report_dir / "job-summary.md", fit_job_summary(summary))
        if importlib.util.find_spec("matplotlib") is not None:
            from perfgate.html_report import html_report

            write_atomically(
                self.settings.report_dir / "report.html", html_report(self.record, comparison, history, self.skipped)
            )
        return path


def _version() -> str:
    try:
        return importlib.metadata.version("perfgate")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
