"""Scenarios plan worker jobs; tested here with a fake launcher, so no process is started."""

from __future__ import annotations

from typing import Any

import pytest

from perfgate.engine.launcher import JobReply
from perfgate.engine.record import CaseResult
from perfgate.engine.scenarios import BUILT_IN, CaseContext, get_scenario
from perfgate.engine.scenarios.serving_memory import measure_serving_memory
from perfgate.engine.spec import CaseSpec
from perfgate.instruments.outcome import Outcome
from perfgate.verdicts.thresholds import Thresholds

MB = 2**20


class FakeLauncher:
    """Answers serving-memory jobs with (anonymous, model-file) bytes per technique; records the jobs."""

    def __init__(self, peaks: dict[str, tuple[int, int]], fail: str | None = None) -> None:
        self.peaks, self.fail, self.jobs = peaks, fail, []

    def submit(self, device: str, scenario: Any, payload: dict[str, Any], *, fresh: bool, timeout: float) -> JobReply:
        self.jobs.append((scenario.name, payload.get("technique"), fresh))
        technique = payload["technique"].rpartition(":")[2]
        if scenario.name == "build-artifacts":
            return JobReply(Outcome.MEASURED, {}, worker={"pid": 1})
        if scenario.name == "runtime-overhead":
            return JobReply(Outcome.MEASURED, {"peak_rss": 400 * MB, "after": {"anon": 250 * MB}}, worker={"pid": 2})
        if technique == self.fail:
            return JobReply(Outcome.OOM, detail="out of memory at batch_size=1", worker={"pid": 7})
        anonymous, files = self.peaks[technique]
        data = {"peak_rss": anonymous + files + 150 * MB, "after": {"anon": anonymous}, "model_file_rss": files}
        return JobReply(Outcome.MEASURED, data, worker={"pid": len(self.jobs)})


def context(launcher: FakeLauncher) -> CaseContext:
    spec = CaseSpec("m", "torch-dynamic-int8-per-channel")
    result = CaseResult(spec, "cpu-test")
    ctx = CaseContext(spec, result, Thresholds("t", "c", False), launcher, {"model": {}}, timeout=10)  # type: ignore[arg-type]
    return ctx


def test_memory_is_compared_on_what_each_arm_holds_beyond_the_runtime_overhead():
    # fp32: 30 MiB anonymous beyond the runtime's and 50 MiB of mapped weights; int8: 40 MiB anonymous.
    launcher = FakeLauncher({"Fp32Eager": (280 * MB, 50 * MB), "PerChannel": (290 * MB, 0)})
    ctx = context(launcher)
    measure_serving_memory(ctx)
    memory = ctx.result.metrics["memory"]
    assert memory["baseline"]["attributable"] == 80 * MB
    assert memory["candidate"]["attributable"] == 40 * MB
    assert memory["ratio"] == pytest.approx(0.5)  # not 440/480 of the totals: the runtime is not the model's
    assert [(name, fresh) for name, _, fresh in launcher.jobs] == [
        ("serving-memory", True), ("runtime-overhead", True), ("serving-memory", True), ("runtime-overhead", True)
    ]  # fmt: skip  # one overhead per import set: each arm imports its own technique module


def test_fp32_memory_is_measured_once_per_model_and_shape():
    launcher = FakeLauncher({"Fp32Eager": (280 * MB, 50 * MB), "PerChannel": (290 * MB, 0)})
    first, second = context(launcher), context(launcher)
    second.memo = first.memo
    measure_serving_memory(first)
    measure_serving_memory(second)
    assert [technique.rpartition(":")[2] for name, technique, _ in launcher.jobs if name == "serving-memory"] == [
        "Fp32Eager", "PerChannel", "PerChannel"
    ]  # fmt: skip
    assert [name for name, _, _ in launcher.jobs].count("runtime-overhead") == 2  # once per import set


def test_an_arm_that_runs_out_of_memory_is_the_case_outcome():
    ctx = context(FakeLauncher({"Fp32Eager": (280 * MB, 50 * MB)}, fail="PerChannel"))
    measure_serving_memory(ctx)
    assert ctx.result.outcome == Outcome.OOM
    assert ctx.result.detail == "serving-memory: out of memory at batch_size=1"
    assert "ratio" not in ctx.result.metrics["memory"]


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_every_built_in_scenario_resolves_to_its_name(name):
    assert get_scenario(name).name == name


def test_an_unknown_scenario_lists_the_known_ones():
    with pytest.raises(LookupError, match="unknown scenario name='sweep'; known scenarios: ab-forward"):
        get_scenario("sweep")


def test_a_variant_served_from_built_files_has_them_built_elsewhere_before_its_memory_is_measured():
    launcher = FakeLauncher({"Fp32Eager": (280 * MB, 50 * MB), "OptimizedO2": (350 * MB, 0)})
    ctx = context(launcher)
    ctx.spec = ctx.result.spec = CaseSpec("m", "onnxruntime-o2")
    measure_serving_memory(ctx)
    jobs = [(name, technique.rpartition(":")[2], fresh) for name, technique, fresh in launcher.jobs]
    assert [job for job in jobs if job[0] != "runtime-overhead"] == [
        ("serving-memory", "Fp32Eager", True),
        ("build-artifacts", "OptimizedO2", False),
        ("serving-memory", "OptimizedO2", True),
    ]


def test_fp32_task_outcomes_are_scored_once_per_worker_and_each_candidate_every_case(tmp_path):
    import json

    import numpy as np

    from perfgate.engine.scenarios import WorkerState
    from perfgate.engine.scenarios.ab_forward import _task

    labelled = tmp_path / "set.jsonl"
    labelled.write_text("\n".join(json.dumps({"text": f"t{i}", "label": i % 2}) for i in range(8)) + "\n")
    scored: list[str] = []

    def outputs(variant: str, texts) -> np.ndarray:  # logits: fp32 right on every text, the candidate on half
        scored.append(variant)
        right = [[1.0, 0.0] if int(t[1:]) % 2 == 0 else [0.0, 1.0] for t in texts]
        return np.array(right if variant == "fp32" else [[1.0, 0.0]] * len(texts))

    payload = {"model": {"name": "m", "location": "m", "device": "cpu"}, "baseline": "fp32", "labelled": str(labelled),
               "seq_len": None, "policy": {"seed": 0}}  # fmt: skip
    state = WorkerState()
    first = _task(payload, state, "fp32", "candidate", outputs)
    second = _task(payload, state, "fp32", "candidate", outputs)
    assert scored == ["fp32", "candidate", "candidate"]
    assert first["baseline"] == 1.0
    assert first["candidate"] == 0.5
    assert first["difference"] == -0.5
    assert first["examples"] == 8
    assert second["difference"] == first["difference"]


def test_the_baseline_is_timed_also_from_a_copy_made_after_a_candidate_holding_its_own_weights(tmp_path):
    import torch

    from perfgate.engine.scenarios.ab_forward import late_baseline_copy
    from perfgate.subjects.model import load_model
    from perfgate.subjects.technique import Variant
    from perfgate.subjects.techniques.eager import Fp32Eager
    from tests.micro_model import micro_bert

    model = load_model("micro", "text-classification", micro_bert(tmp_path / "m"), "cpu", "copied")
    baseline = Fp32Eager().apply(model, tmp_path, None)
    own = Variant("own-weights", model.run, memory_bytes=0, independent_of_source=True)
    shared = Variant("reads-fp32", model.run, memory_bytes=0, independent_of_source=False)
    copied = {"model": {"placement": "copied"}}
    [late] = late_baseline_copy(copied, model, baseline, own)
    inputs = model.inputs(["a sentence", "another, longer sentence"], None)
    assert torch.equal(late.run(inputs), model.run(inputs))
    addresses = {p.data_ptr() for p in model.module.parameters()}
    assert addresses.isdisjoint(p.data_ptr() for p in late.module.parameters())
    assert not late.stacked
    # arms reading the same weights, or a baseline served from the mapped file, get no second copy
    assert late_baseline_copy(copied, model, baseline, shared) == []
    assert late_baseline_copy({"model": {"placement": "mapped"}}, model, baseline, own) == []
