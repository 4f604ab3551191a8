"""The upgrade gates: may the candidate (a new model, or new libraries) replace the current one?

One gate per technique, three checks, each a non-inferiority decision with a stated margin:

- **speed**: the same-moment ABBA speedup of candidate over current (``arms.py``): both models in one
  worker, or for two environments several fresh pairs of workers (two identical processes differ by
  themselves) with a two-stage bootstrap interval;
  PASS when its low end clears ``1 / (1 + max_slowdown)``, FAIL when its high end is below it;
- **accuracy**: task accuracy on a labelled set, current and candidate scored on the same examples;
  the difference's paired bootstrap interval over examples (two-sided ``confidence``, so its low end is
  a one-sided bound). PASS when the low end is above ``-margin``, FAIL when the high end is below it.
  Fidelity against fp32 means nothing across two models, so the task is the yardstick here;
- **memory**: serving memory attributable to each arm, each in a fresh worker of its interpreter;
  FAIL above ``1 + max_memory_growth`` (memory is not noisy the way time is: anonymous memory agreed
  within 1 MB between sessions).

Otherwise INCONCLUSIVE: the interval straddles the margin, and a longer run or a larger set decides.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perfgate.answers.arms import ARMS, QUIET_WHILE_IDLE, QUIET_WHILE_IDLE_SETTING, Arm, ArmWorkers
from perfgate.engine.launcher import Launcher
from perfgate.engine.placement import GpuPlacement
from perfgate.errors import ArmFailed
from perfgate.instruments.comparison import ComparePolicy, Comparison, compare_blocks, decide, estimate_replicated
from perfgate.instruments.fidelity import compare_outputs, non_inferiority, paired_difference
from perfgate.instruments.outcome import Outcome, Verdict

__all__ = [
    "Check",
    "GatePolicy",
    "GateResult",
    "GateRun",
    "exit_status",
    "plan_gate",
    "run_gate",
]


@dataclass(frozen=True)
class GatePolicy:
    accuracy_margin: float = 0.02  # the candidate may lose at most 2 points of task accuracy
    max_slowdown: float = 0.10  # ... be at most 10% slower (the speedup's bound is 1/1.10)
    max_memory_growth: float = 0.10  # ... and hold at most 10% more serving memory
    confidence: float = 0.90  # two-sided; its low end is a one-sided 95% bound
    resamples: int = 5000
    seed: int = 0
    budget_seconds: float = 20.0  # of timing, shared by the replicates
    min_pairs: int = 10
    # Fresh worker pairs for two environments (two identical processes differ by themselves: an A/A
    # across two workers came out 1.12x once); both models in one worker take one, as ab-forward does.
    replicates: int | None = None  # None: 3 across two interpreters, 1 in one

    @property
    def speed_bound(self) -> float:
        return 1 / (1 + self.max_slowdown)


@dataclass(frozen=True)
class Check:
    name: str  # speed, accuracy, memory
    verdict: Verdict
    estimate: float | None
    low: float | None = None
    high: float | None = None
    rule: str = ""
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": str(self.verdict)}


@dataclass
class GateResult:
    technique: str
    current: Arm
    candidate: Arm
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    outcome: Outcome = Outcome.MEASURED
    detail: str = ""

    @property
    def verdict(self) -> Verdict:
        verdicts = {check.verdict for check in self.checks}
        if self.outcome != Outcome.MEASURED or Verdict.FAIL in verdicts:
            return Verdict.FAIL
        if Verdict.INCONCLUSIVE in verdicts or not verdicts:
            return Verdict.INCONCLUSIVE
        return Verdict.PASS

    def check(self, name: str) -> Check | None:
        return next((check for check in self.checks if check.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        arms = {
            label: {**asdict(arm), "location": str(arm.location)}
            for label, arm in (("current", self.current), ("candidate", self.candidate))
        }
        return {
            "technique": self.technique,
            "verdict": str(self.verdict),
            "outcome": str(self.outcome),
            "detail": self.detail,
            "arms": arms,  # what each side served: model, location, technique, interpreter
            "checks": [check.to_dict() for check in self.checks],
            "figures": self.figures,
        }


def judge_accuracy(current: list[bool], candidate: list[bool], policy: GatePolicy, source: str) -> Check:
    difference, low, high = paired_difference(
        np.asarray(current), np.asarray(candidate), policy.confidence, policy.resamples, policy.seed
    )
    margin = policy.accuracy_margin
    verdict = non_inferiority(low, high, margin)
    return Check(
        "accuracy",
        verdict,
        difference,
        low,
        high,
        rule=f"difference ≥ -{margin:.3f} (paired bootstrap over {len(current)} examples, "
        f"{policy.confidence:.0%} two-sided)",
        detail=f"current {np.mean(current):.3f}, candidate {np.mean(candidate):.3f} on {source}",
    )


def judge_speed(replicates: list[Comparison], policy: GatePolicy) -> Check:
    rule = f"speedup ≥ {policy.speed_bound:.3f} (at most {policy.max_slowdown:.0%} slower)"
    blocks = [(c.baseline_seconds, c.candidate_seconds) for c in replicates if len(c.baseline_seconds) >= 2]
    if not blocks:
        return Check("speed", Verdict.INCONCLUSIVE, None, rule=rule, detail="no pairs timed")
    estimate = estimate_replicated(blocks, ComparePolicy(seed=policy.seed))
    verdict = decide(estimate, policy.speed_bound) or Verdict.INCONCLUSIVE
    each = ", ".join(f"{c.estimate.speedup:.2f}x" for c in replicates if c.estimate is not None)
    where = "one worker" if len(blocks) == 1 else f"{len(blocks)} pairs of workers ({each})"
    detail = f"{estimate.pairs} ABBA pairs in {where}" + (", noisy" if estimate.noisy else "")
    return Check("speed", verdict, estimate.speedup, estimate.ci_low, estimate.ci_high, rule=rule, detail=detail)


def judge_memory(current: int | None, candidate: int | None, policy: GatePolicy) -> Check:
    rule = f"candidate / current ≤ {1 + policy.max_memory_growth:.2f}"
    if not current or candidate is None:
        return Check("memory", Verdict.INCONCLUSIVE, None, rule=rule, detail="attributable memory not measured")
    ratio = candidate / current
    verdict = Verdict.PASS if ratio <= 1 + policy.max_memory_growth else Verdict.FAIL
    detail = f"attributable serving memory {current / 2**20:.1f} → {candidate / 2**20:.1f} MiB"
    return Check("memory", verdict, ratio, rule=rule, detail=detail)


@dataclass(frozen=True)
class GateRun:
    """Where and how a gate runs: the same settings a pytest session has."""

    rootdir: Path
    workdir: Path  # artifacts, one folder per arm
    lock_dir: Path
    eval_texts: list[str]
    timed_texts: list[str]
    labelled: Path | None
    device: str = "cpu"
    threads: int | None = None
    seq_len: int | None = None
    memory: bool = True
    timeout: float = 900.0
    grace: float = 5.0
    gpu: GpuPlacement | None = None  # on a multi-GPU host: the one GPU both arms run on, and its lock

    def launcher(self, python: str) -> Launcher:
        from perfgate.answers.arms import worker_sys_path

        return Launcher(
            worker_sys_path(python, self.rootdir), self.lock_dir, grace=self.grace, python=python, gpu=self.gpu
        )


def plan_gate(
    *, current: Path, candidate: Path, task: str, techniques: list[str], current_python: str, candidate_python: str,
    eval_file: Path | None, sentences: Path | None, batch_size: int, threads: int | None, device: str, memory: bool,
    cache_dir: Path, workdir: Path, rootdir: Path,
) -> tuple[list[tuple[Arm, Arm]], GateRun]:  # fmt: skip
    """Check every input before any worker starts: each a clear error naming the value and the fix."""
    from perfgate.answers.arms import check_interpreter
    from perfgate.errors import ConfigError
    from perfgate.instruments.fidelity import load_labelled_set
    from perfgate.subjects.catalogue import get_technique
    from perfgate.subjects.model import TASKS

    current, candidate = current.resolve(), candidate.resolve()
    for option, directory in (("--current", current), ("--candidate", candidate)):
        if not (directory / "config.json").is_file():
            raise ConfigError(
                f"{option} {str(directory)!r} is not a model directory (no config.json there); "
                "pass a directory written by save_pretrained()"
            )
    if task not in TASKS:
        raise ConfigError(f"--task {task!r} is not one of {', '.join(TASKS)}")
    for option, python in (("--current-python", current_python), ("--candidate-python", candidate_python)):
        check_interpreter(python, option)
    for name in techniques:
        get_technique(name)  # an unknown name raises UnknownTechniqueError with the known ones
    labelled = load_labelled_set(eval_file) if eval_file else None  # a malformed file fails here, named
    if sentences is not None:
        try:
            texts = [line for line in sentences.read_text().splitlines() if line.strip() and not line.startswith("#")]
        except OSError as error:
            raise ConfigError(f"--sentences {str(sentences)!r} cannot be read ({error})") from None
    elif labelled is not None:
        texts = list(labelled.texts[:64])
    else:
        raise ConfigError("nothing to run the models on: pass --sentences FILE or --eval-file FILE")
    if not texts:
        raise ConfigError(f"--sentences {str(sentences)!r} holds no sentences")
    gpu = None
    if device.startswith("cuda"):
        from perfgate.engine.placement import place_device, visible_gpu_ids
        from perfgate.subjects.hardware import detect_gpus

        device, gpu = place_device(device, visible_gpu_ids(os.environ, len(detect_gpus())))
    run = GateRun(
        rootdir=rootdir, workdir=workdir, lock_dir=cache_dir / "locks", eval_texts=texts,
        timed_texts=[texts[i % len(texts)] for i in range(batch_size)], labelled=eval_file, device=device,
        threads=threads, memory=memory, gpu=gpu,
    )  # fmt: skip
    pairs = [
        (Arm("current", current.name, current, task, name, current_python),
         Arm("candidate", candidate.name, candidate, task, name, candidate_python))
        for name in techniques
    ]  # fmt: skip
    return pairs, run


def run_gate(current: Arm, candidate: Arm, run: GateRun, policy: GatePolicy) -> GateResult:
    """Prepare both arms, time them ABBA under the device lock, score both, measure memory, judge."""
    result = GateResult(technique=current.technique, current=current, candidate=candidate)
    arms = dict(zip(ARMS, (current, candidate), strict=True))
    placed = Launcher([], run.lock_dir, gpu=run.gpu)
    lock = placed.device_lock(run.device)
    environment = {**QUIET_WHILE_IDLE, **placed.worker_environment(run.device)}
    started = time.monotonic()
    payload = {
        "device": run.device, "threads": run.threads, "seq_len": run.seq_len, "workdir": str(run.workdir),
        "timed_texts": run.timed_texts, "eval_texts": run.eval_texts,
        "labelled": str(run.labelled) if run.labelled else None,
    }  # fmt: skip
    count = policy.replicates or (1 if current.python == candidate.python else 3)
    share = ComparePolicy(min_pairs=policy.min_pairs, budget_seconds=policy.budget_seconds / count, seed=policy.seed)
    replicates: list[Comparison] = []
    prepared: dict[str, dict[str, Any]] = {}
    try:
        with lock:
            for replicate in range(count):
                workers = ArmWorkers(arms, run.rootdir, timeout=run.timeout, grace=run.grace, environment=environment)
                try:
                    # Outputs and task outcomes do not change between replicates: scored by the first.
                    ready = workers.prepare({**payload, "score": replicate == 0})
                    prepared = prepared or ready
                    replicates.append(compare_blocks(workers, time.perf_counter, None, share))
                finally:
                    workers.close()
    except ArmFailed as error:
        result.outcome, result.detail = Outcome.ERROR, str(error)
        return result
    result.checks.append(judge_speed(replicates, policy))
    result.figures["speed"] = [comparison.to_dict() for comparison in replicates]
    outcomes = [prepared[arm]["task_outcomes"] for arm in ARMS]
    if all(o is not None for o in outcomes):
        result.checks.append(judge_accuracy(outcomes[0], outcomes[1], policy, str(run.labelled)))
    else:
        reason = "no labelled set: pass one (--eval-file) to judge task accuracy across models"
        result.checks.append(Check("accuracy", Verdict.INCONCLUSIVE, None, detail=reason))
    result.figures["arms"] = {
        arm.label: {
            key: prepared[name][key] for key in ("libraries", "python", "memory_bytes", "threads", "load_seconds")
        }
        for name, arm in arms.items()
    }
    result.figures["outputs"] = _output_agreement(prepared)
    result.figures["settings"] = [dict(QUIET_WHILE_IDLE_SETTING)]
    if run.memory:
        memory = {arm.label: _serving_memory(arm, run) for arm in arms.values()}
        result.figures["memory"] = memory
        result.checks.append(
            judge_memory(memory["current"].get("attributable"), memory["candidate"].get("attributable"), policy)
        )
    result.figures["seconds"] = time.monotonic() - started
    return result


def _output_agreement(prepared: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How close the two arms' outputs are: a library upgrade should change them little or not at all."""
    current, candidate = (np.asarray(prepared[arm]["outputs"]) for arm in ARMS)
    if current.shape != candidate.shape:
        return {"comparable": False, "shapes": [list(current.shape), list(candidate.shape)]}
    return {"comparable": True, **compare_outputs(current, candidate, logits=False).to_dict()}


def _serving_memory(arm: Arm, run: GateRun) -> dict[str, Any]:
    """The arm's serving memory in a fresh worker of its interpreter, minus that runtime's overhead."""
    from perfgate.answers.arms import arm_technique
    from perfgate.engine.scenarios.serving_memory import RuntimeOverhead, ServingMemory, with_attributable
    from perfgate.subjects.catalogue import get_technique

    launcher = run.launcher(arm.python)
    payload = {
        "imports": list(get_technique(arm.technique).runtime_modules()),
        "model": {"name": arm.model, "task": arm.task, "location": str(arm.location), "device": run.device},
        "technique": arm_technique(arm),
        "threads": run.threads,
        "timed_texts": run.timed_texts,
        "seq_len": run.seq_len,
        "workdir": str(run.workdir / arm.label),
    }
    try:
        serving = launcher.submit(run.device, ServingMemory(), payload, fresh=True, timeout=run.timeout)
        overhead = launcher.submit(run.device, RuntimeOverhead(), payload, fresh=True, timeout=run.timeout)
    finally:
        launcher.close()
    if serving.outcome != Outcome.MEASURED or overhead.outcome != Outcome.MEASURED:
        failed = serving if serving.outcome != Outcome.MEASURED else overhead
        return {"outcome": str(failed.outcome), "detail": failed.detail}
    return with_attributable(serving.data, overhead.data)


def exit_status(results: list[GateResult]) -> int:
    """0: every gate passed; 1: one failed (or could not run); 3: none failed, one is inconclusive."""
    verdicts = {result.verdict for result in results}
    if Verdict.FAIL in verdicts:
        return 1
    return 3 if Verdict.INCONCLUSIVE in verdicts else 0
