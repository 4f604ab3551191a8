"""How a run measures: the workers' launcher, whether a case can run here, one case conducted through its
scenario and judged (recorded as started before it runs), calibration, and the upgrade gates."""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfgate.engine.judge import judge
from perfgate.engine.launcher import Launcher
from perfgate.engine.record import CaseResult
from perfgate.engine.scenarios import CaseContext, get_scenario
from perfgate.engine.spec import BASELINE, CaseSpec
from perfgate.errors import ConfigError
from perfgate.instruments.outcome import Outcome
from perfgate.subjects.catalogue import get_technique, import_path
from perfgate.subjects.model import BASELINE_PLACEMENT, model_class
from perfgate.subjects.technique import STACK_SEPARATOR, Technique, compute_capability_reason
from perfgate.verdicts.fields import TASK_FIELDS
from perfgate.verdicts.thresholds import Thresholds

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pytest

    from perfgate.answers.upgrade import GatePolicy, GateResult
    from perfgate.engine.config import Settings
    from perfgate.plugin.machine import MachineView
    from perfgate.plugin.recorder import RunRecorder
    from perfgate.reports.progress import Progress
    from perfgate.subjects.model import ModelRegistry

__all__ = ["CaseRunner", "Unavailable"]


class Unavailable(Exception):
    """A case cannot run here (missing device, library or task support); the test is skipped with it."""


class CaseRunner:
    def __init__(
        self, config: pytest.Config, settings: Settings, models: ModelRegistry, machine: MachineView,
        recorder: RunRecorder,
    ) -> None:  # fmt: skip
        self.config = config
        self.settings = settings
        self.models = models
        self.machine = machine
        self.recorder = recorder
        self.progress: Progress | None = None  # the plugin's progress lines, where they are shown
        self._memo: dict[tuple[Any, ...], Any] = {}

    @functools.cached_property
    def launcher(self) -> Launcher:
        # The worker imports what this process can: the rootdir (conftest techniques) and our sys.path.
        paths = [str(self.config.rootpath), *sys.path]
        gpu = self.machine.gpu if self.machine.hardware.has_cuda else None
        return Launcher(paths, lock_dir=self.settings.cache_dir / "locks", grace=self.settings.kill_grace, gpu=gpu)

    def close(self) -> None:
        if "launcher" in self.__dict__:
            self.launcher.close()

    def check_available(self, spec: CaseSpec) -> None:
        technique = get_technique(spec.technique)  # an unknown name raises UnknownTechniqueError here
        get_scenario(spec.scenario)
        if spec.device.startswith("cuda") and not self.machine.hardware.has_cuda:
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
            reason = compute_capability_reason(technique, self.machine.hardware.gpu(self.machine.placed(spec.device)))
        if not reason and type(technique).model_reason is not Technique.model_reason:
            location = source.resolve(self.settings.cache_dir / "models")
            reason = technique.model_reason(model_class(source.task, location))
            reason = reason and f"{spec.technique} on {spec.model}: {reason}"
        if reason:
            raise Unavailable(reason)

    def run(self, spec: CaseSpec, nodeid: str, memory: bool | None = None, timeout: float | None = None) -> CaseResult:
        """Measure and record one case; ``memory`` False skips serving memory for it (None: the setting);
        ``timeout`` is its deadline per worker job (None: ``--perfgate-case-timeout``)."""
        self.check_available(spec)
        thresholds = self.machine.thresholds_for(spec)
        result = CaseResult(spec=spec, hardware_class=self.machine.hardware_class(spec.device), nodeid=nodeid)
        result.thresholds = {
            "capability": self.machine.capability(spec),
            "gated": thresholds.gated,
            "derivable": all(get_technique(part).derive_thresholds for part in spec.technique.split(STACK_SEPARATOR)),
            "values": dict(thresholds.values),
            "origins": dict(thresholds.origins),
        }
        self.recorder.ensure_record().cases.append(result)
        self.recorder.save()  # recorded as started before it runs
        started = time.perf_counter()
        try:
            context = self._context(spec, result, thresholds)
            if memory is False:
                context.memory = False
            if timeout is not None:
                context.timeout = timeout
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
            self.recorder.save()
            if self.progress is not None:
                self.progress.case_finished(result)
        return result

    def calibrate(self, spec: CaseSpec, fractions: Sequence[float]) -> dict[str, Any]:
        """A/A and planted slowdowns of ``spec``'s model in fp32 eager; stored under the run's calibration."""
        self.check_available(spec)
        result = CaseResult(spec=spec, hardware_class=self.machine.hardware_class(spec.device))
        thresholds = Thresholds(BASELINE, result.hardware_class, gated=False)
        context = self._context(spec, result, thresholds, fractions=list(fractions))
        get_scenario(spec.scenario).conduct(context)
        entry = result.metrics.get("calibration") or {"outcome": result.outcome, "detail": result.detail}
        self.recorder.record_calibration(
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
                "calibration_texts": self.machine.sentences,  # for techniques that calibrate (static int8)
                "placement": BASELINE_PLACEMENT,  # timed jobs; serving memory measures weights as loaded
            },
            "technique": import_path(spec.technique),
            "baseline": import_path(spec.baseline),
            "batch_size": spec.batch_size,
            "seq_len": spec.seq_len,
            "threads": spec.threads,
            "workdir": str(s.cache_dir / "artifacts"),
            "timed_texts": self._timed_texts(spec.batch_size),
            "eval_texts": self.machine.sentences,
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
        from perfgate.answers.arms import Arm, check_interpreter
        from perfgate.answers.upgrade import GateRun, run_gate

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
            eval_texts=self.machine.sentences, timed_texts=self._timed_texts(batch_size), labelled=labelled,
            device=device, threads=s.threads, memory=s.memory if memory is None else memory, timeout=s.case_timeout,
            grace=s.kill_grace, gpu=self.machine.gpu,
        )  # fmt: skip
        result = run_gate(arms[0], arms[1], run, policy)
        record = self.recorder.ensure_record()
        record.gates = [*(record.gates or []), result.to_dict()]
        self.recorder.save()
        return result

    def probe(self, model: str, technique: str, batch_size: int) -> dict[str, Any]:
        """How this session resolves a case's model and technique, for a command that measures it
        outside a worker job (``perfgate bisect``, ``explain``): the model's location and task, the
        technique's import path, the texts it times."""
        from perfgate.subjects.catalogue import import_path

        source = self.models.get(model)
        return {
            "location": str(source.resolve(self.settings.cache_dir / "models")), "task": source.task,
            "technique_path": import_path(technique), "sentences": list(self.machine.sentences),
            "timed_texts": self._timed_texts(batch_size),
        }  # fmt: skip

    def _timed_texts(self, batch_size: int) -> list[str]:
        sentences = self.machine.sentences
        return [sentences[i % len(sentences)] for i in range(batch_size)]
