"""What is measured (``CaseSpec``), what came out (``CaseResult``), and the run of one case.

A case compares one technique with the fp32 eager baseline on one model, batch and device, in the same
process: fidelity on the evaluation sentences, the task metric where the model has a labelled set,
interleaved A/B timing, and memory in fresh subprocesses. Failures that are outcomes (OOM, timeout, a
crashed probe) are recorded instead of raised.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfgate.comparison import ComparePolicy, Comparison, Verdict, compare
from perfgate.fidelity import LabelledSet, compare_outputs, task_score
from perfgate.generation import measure_generation, module_generator
from perfgate.memory import Outcome, is_out_of_memory, process_memory
from perfgate.model import directory_bytes
from perfgate.thresholds import Check, CheckResult, Thresholds
from perfgate.timing import Timer, cuda_synchronizer, torch_threads

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from perfgate.model import LoadedModel
    from perfgate.technique import Variant

__all__ = ["BASELINE", "CaseResult", "CaseSpec", "run_case"]

BASELINE = "fp32-eager"
GENERATION_TOKENS = 16


@dataclass(frozen=True)
class CaseSpec:
    model: str
    technique: str
    batch_size: int = 1
    seq_len: int | None = None  # None: pad each batch to its longest sentence
    device: str = "cpu"
    threads: int | None = None  # None: torch's default; the count in effect is recorded

    @property
    def case_id(self) -> str:
        length = f"-s{self.seq_len}" if self.seq_len else ""
        return f"{self.model}/{self.technique}/b{self.batch_size}{length}/{self.device}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseSpec:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass
class CaseResult:
    spec: CaseSpec
    hardware_class: str
    outcome: str = Outcome.MEASURED
    detail: str = ""
    nodeid: str = ""
    threads: int = 0
    comparison: dict[str, Any] | None = None
    fidelity: dict[str, Any] | None = None
    task: dict[str, Any] | None = None
    memory: dict[str, Any] | None = None
    size: dict[str, Any] | None = None
    variant: dict[str, Any] = field(default_factory=dict)
    generation: dict[str, Any] | None = None  # causal LMs: time to first token and per-token, both arms
    thresholds: dict[str, Any] = field(default_factory=dict)
    checks: list[CheckResult] = field(default_factory=list)
    verdict: str = Verdict.INCONCLUSIVE.value

    @property
    def context(self) -> str:
        s = self.spec
        return f"{s.technique} on {s.model} (batch {s.batch_size}, {s.device}, {self.hardware_class})"

    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if c.verdict == Verdict.FAIL.value]

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["spec"] = self.spec.to_dict()
        data["checks"] = [c.to_dict() for c in self.checks]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseResult:
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["spec"] = CaseSpec.from_dict(data["spec"])
        values["checks"] = [CheckResult(**c) for c in data.get("checks", [])]
        return cls(**values)


@dataclass
class CaseInputs:
    """Everything a case needs that the session prepares (and caches across cases)."""

    model: LoadedModel
    baseline: Variant
    candidate: Variant
    thresholds: Thresholds
    timed_texts: Sequence[str]
    eval_texts: Sequence[str]
    labelled: LabelledSet | None
    policy: ComparePolicy
    memory: Callable[[], dict[str, Any]] | None = None  # runs the subprocess probes of both arms


def run_case(spec: CaseSpec, prepared: CaseInputs, result: CaseResult, timer: Timer | None = None) -> CaseResult:
    """Fill ``result`` in place, so a crash halfway keeps what was measured before it."""
    model, baseline, candidate, thresholds = prepared.model, prepared.baseline, prepared.candidate, prepared.thresholds
    timer = timer or Timer(synchronize=cuda_synchronizer(spec.device))
    result.variant = {"prepare_seconds": candidate.prepare_seconds, **candidate.details}
    result.thresholds = {
        "gated": thresholds.gated,
        "values": dict(thresholds.values),
        "origins": dict(thresholds.origins),
    }
    with torch_threads(spec.threads) as threads:
        result.threads = threads
        try:
            reference = _outputs(baseline, model, prepared.eval_texts, spec)
            outputs = _outputs(candidate, model, prepared.eval_texts, spec)
            result.fidelity = compare_outputs(reference, outputs, logits=model.task != "feature-extraction").to_dict()
            if prepared.labelled is not None:
                result.task = _task(prepared.labelled, model, baseline, candidate, spec)
            inputs = model.inputs(prepared.timed_texts, spec.seq_len)
            comparison = compare(
                lambda: baseline.run(inputs),
                lambda: candidate.run(inputs),
                timer,
                bound=thresholds.speed_bound(),
                policy=prepared.policy,
            )
            if model.task == "text-generation" and baseline.module is not None and candidate.module is not None:
                result.generation = _generation(model, baseline, candidate, inputs, timer)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            _free_memory(spec.device)
            result.outcome = Outcome.OOM
            result.detail = f"out of memory at batch_size={spec.batch_size}: {str(error)[:200]}"
            result.memory = {"at_failure": process_memory()}
            result.verdict = Verdict.FAIL.value
            return result
    result.comparison = comparison.to_dict()
    result.comparison["throughput_items_per_second"] = {
        arm: spec.batch_size / comparison.latency(arm).p50 for arm in ("baseline", "candidate")
    }
    result.size = {
        "baseline_bytes": baseline.memory_bytes,
        "candidate_bytes": candidate.memory_bytes,
        "baseline_disk_bytes": directory_bytes(model.location) if isinstance(model.location, Path) else None,
        "candidate_disk_bytes": candidate.disk_bytes,
        "ratio": candidate.memory_bytes / baseline.memory_bytes,
    }
    if prepared.memory is not None:
        result.memory = prepared.memory()
        candidate_probe = result.memory["candidate"]
        if candidate_probe["outcome"] != Outcome.MEASURED:
            result.outcome, result.detail = (
                candidate_probe["outcome"],
                f"memory probe: {candidate_probe.get('detail', '')}",
            )
    judge(result, comparison, thresholds)
    if result.outcome != Outcome.MEASURED:
        result.verdict = Verdict.FAIL.value
    return result


def judge(result: CaseResult, comparison: Comparison, thresholds: Thresholds) -> None:
    """Turn measurements into checks and one verdict: any FAIL fails; an undecided speed is INCONCLUSIVE."""
    checks: list[CheckResult] = []
    if comparison.estimate is not None:
        checks.append(_speed_check(result, comparison, thresholds))
    measured: list[Check] = []
    if result.fidelity:
        measured += [
            Check("min_cosine", result.fidelity["cosine_min"], higher_is_better=True),
        ]
        if result.fidelity["top1_agreement"] is not None:
            measured.append(Check("min_top1", result.fidelity["top1_agreement"], higher_is_better=True))
    if result.task and result.task["ratio"] is not None:
        measured.append(Check("min_task_ratio", result.task["ratio"], higher_is_better=True))
    if result.memory and result.memory.get("ratio") is not None:
        measured.append(Check("max_memory_ratio", result.memory["ratio"], higher_is_better=False))
    if result.size:
        measured.append(Check("max_size_ratio", result.size["ratio"], higher_is_better=False))
    checks += [c for c in (m.judge(thresholds, result.context) for m in measured) if c is not None]
    result.checks = checks
    verdicts = {c.verdict for c in checks}
    if not thresholds.gated:
        result.verdict = Verdict.UNGATED.value
    elif Verdict.FAIL.value in verdicts:
        result.verdict = Verdict.FAIL.value
    elif Verdict.INCONCLUSIVE.value in verdicts:
        result.verdict = Verdict.INCONCLUSIVE.value
    else:
        result.verdict = Verdict.PASS.value


def _speed_check(result: CaseResult, comparison: Comparison, thresholds: Thresholds) -> CheckResult:
    estimate = comparison.estimate
    assert estimate is not None
    base, cand = comparison.latency("baseline"), comparison.latency("candidate")
    bound = comparison.bound
    if bound is None:
        rule = "no speed threshold" + ("" if thresholds.gated else f" for hardware class {thresholds.hardware_class}")
    else:
        names = [n for n in ("min_speedup", "max_slowdown") if n in thresholds.values]
        rule = f"CI must clear {bound:.3g}x from " + "; ".join(thresholds.describe(n) for n in names)
    noisy = f" (noisy: pair spread {estimate.spread:.2f})" if estimate.noisy else ""
    message = (
        f"{result.context}: speedup {estimate.speedup:.3f}x, 95% CI [{estimate.ci_low:.3f}, {estimate.ci_high:.3f}] "
        f"over {estimate.pairs} pairs{noisy}; baseline p50 {base.p50 * 1e3:.3f} ms, candidate p50 "
        f"{cand.p50 * 1e3:.3f} ms; {rule} -> {comparison.verdict.value.upper()} ({comparison.stop_reason})"
    )
    return CheckResult("speed", comparison.verdict.value, message)


def _outputs(variant: Variant, model: LoadedModel, texts: Sequence[str], spec: CaseSpec) -> npt.NDArray[np.float64]:
    import numpy as np

    rows = []
    step = max(spec.batch_size, 1)
    for start in range(0, len(texts), step):
        inputs = model.inputs(texts[start : start + step], spec.seq_len)
        rows.append(variant.run(inputs).detach().float().cpu().numpy())
    return np.concatenate(rows).astype(np.float64)


def _task(
    labelled: LabelledSet, model: LoadedModel, baseline: Variant, candidate: Variant, spec: CaseSpec
) -> dict[str, Any]:
    scores = {
        arm: task_score(labelled, functools.partial(_outputs, variant, model, spec=spec))
        for arm, variant in (("baseline", baseline), ("candidate", candidate))
    }
    ratio = scores["candidate"] / scores["baseline"] if scores["baseline"] > 0 else None
    return {"metric": f"{labelled.kind} accuracy", "source": labelled.source, **scores, "ratio": ratio}


def _generation(
    model: LoadedModel, baseline: Variant, candidate: Variant, inputs: dict[str, Any], timer: Timer
) -> dict[str, Any]:
    pad = model.tokenizer.pad_token_id
    return {
        arm: measure_generation(module_generator(variant.module, inputs, pad), timer, GENERATION_TOKENS).to_dict()
        for arm, variant in (("baseline", baseline), ("candidate", candidate))
    }


def _free_memory(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
