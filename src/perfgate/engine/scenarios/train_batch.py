"""Training batch size: samples per second and peak memory over batch sizes, up to the largest batch a
training step fits, for a recipe and for fp32 AdamW; the largest batches' ratio is gated.

The search is the inference one (``largest_batch.search``: doubling, then bisection; for an accumulating
recipe over whole numbers of its micro-batches), each try a fresh worker (``train-fits``) that runs two
training steps (the first allocates the optimizer's state, the second is timed) and reports its peak:

- **CPU**: a memory cgroup of the worker's own (``cgroup.py``), capped at ``BUDGET_BYTES`` beyond the
  worker with torch and transformers imported, before the model is loaded: the budget counts weights,
  gradients, optimizer state and activations, as a container with that limit would. The model's files
  are evicted from the page cache first, so the worker is charged for the weight pages it reads. A kill
  by the OOM killer inside the group is "does not fit" (the machine has no swap). Without a cgroup the
  case cannot run: an address-space cap would count reserved, untouched pages, not memory.
- **CUDA**: the device's own memory; a try that runs out raises inside its worker.

The tries that fit are the sweep: per batch size, samples per second of the timed step and the group's
(or the device's) peak. The tries near the cap run while the kernel reclaims clean file pages to stay
under it: their times are what a step costs at that edge, and where that reclaim succeeds moves the
largest batch between runs (b10-b16 for fp32 AdamW at 704 MiB), which the thresholds' margins carry.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfgate.engine.scenarios.contract import Isolation, Scenario
from perfgate.engine.scenarios.largest_batch import limit_device_memory, memory_cap
from perfgate.instruments.cgroup import CgroupUnavailable, join_in_worker

if TYPE_CHECKING:
    from perfgate.engine.scenarios.contract import CaseContext, WorkerState

# Beyond the libraries. Measured on MiniLM at 128 tokens: fp32 AdamW holds ~600 MiB at batch 1 (the
# weights' file pages and their anonymous copy, gradients, two AdamW states, the allocator's pools) and
# ~20 MiB more per sequence; 704 MiB leaves room for a few sequences, so the search takes about six
# tries (each a fresh worker, ~5 s), and a recipe that saves memory shows it as a multiple of that.
BUDGET_BYTES = 704 * 2**20
GPU_BUDGET_BYTES = 8 * 2**30  # torch's allocator capped on CUDA: weights, gradients, optimizer state, activations
SEQ_LEN = 128
LARGEST_TRIED = 1024


class TrainFits(Scenario):
    """One try: do two training steps at ``batch_size`` fit within the cap? (A fresh worker per try.)"""

    name = "train-fits"
    isolation = Isolation.FRESH

    def run(self, payload: dict[str, Any], state: WorkerState) -> dict[str, Any]:
        import torch
        import transformers  # noqa: F401  (the libraries are in a cgroup's base, not in its budget)

        from perfgate.engine.scenarios.train_step import recipe_of, tokenizer_of
        from perfgate.instruments.timing import synchronizer, torch_threads
        from perfgate.subjects.training import StepRunner, load_classifier, training_batches

        ref, device, size = payload["model"], payload["model"]["device"], payload["batch_size"]
        joined = join_in_worker(payload.get("cgroup"), Path(ref["location"]))
        if joined is not None:
            group, base = joined
            group.cap(base + payload["budget_bytes"])
        cuda = device.startswith("cuda")
        budget = limit_device_memory(device, payload["gpu_budget_bytes"]) if cuda else None
        with torch_threads(payload["threads"]):
            batches = training_batches(tokenizer_of(ref["location"]), list(payload["eval_texts"]), size,
                                       payload["seq_len"], 2, device)  # fmt: skip
            runner = StepRunner(load_classifier(ref["location"], device), recipe_of(payload["technique"]), device)
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            runner.step(batches[0])
            synchronize = synchronizer(device)
            synchronize()
            began = time.perf_counter()
            runner.step(batches[1])
            synchronize()
            seconds = time.perf_counter() - began
        figures: dict[str, Any] = {"batch_size": size, "step_seconds": seconds}
        if joined is not None:
            figures["peak_bytes"] = (joined[0].peak() or joined[0].usage()) - joined[1]
        elif cuda:
            figures["peak_bytes"] = torch.cuda.max_memory_allocated(device)
            figures["device_budget"] = budget
        return figures


def search_in_steps(fits: Any, step: int, largest_tried: int = LARGEST_TRIED) -> tuple[int, list[tuple[int, bool]]]:
    """``largest_batch.search`` over batches that are whole multiples of ``step`` (an accumulating
    recipe splits its batch into that many micro-batches); the sizes in batch units."""
    from perfgate.engine.scenarios.largest_batch import search

    units, tries = search(lambda count: fits(count * step), largest_tried // step)
    return units * step, [(count * step, ok) for count, ok in tries]


def training_cap(device: str, gpu_budget_bytes: int | None = None) -> dict[str, Any]:
    """The cap a try runs under: a device-memory budget, or a cgroup budget (raises where neither: an
    address-space cap would count reserved, untouched pages)."""
    cap = memory_cap(device, BUDGET_BYTES, gpu_budget_bytes or GPU_BUDGET_BYTES)
    if cap["kind"] == "address-space":
        raise CgroupUnavailable(f"the training batch search on CPU needs a memory cgroup: {cap['why_not_cgroup']}")
    return cap


class TrainLargestBatch(Scenario):
    name = "train-batch"
    isolation = Isolation.SHARED

    def conduct(self, case: CaseContext) -> None:
        from perfgate.engine.scenarios.largest_batch import TryFailed, try_under_cap
        from perfgate.engine.scenarios.train_step import in_memory_recipe, recipe_of
        from perfgate.subjects.catalogue import import_path
        from perfgate.subjects.techniques.training import TRAINING_BASELINE

        in_memory_recipe(case.spec.technique, self.name)
        cap = training_cap(case.spec.device, case.payload().get("gpu_budget_bytes"))
        seq_len = case.spec.seq_len or SEQ_LEN
        figures: dict[str, Any] = {"seq_len": seq_len, "cap": cap}
        for arm, name in (("baseline", TRAINING_BASELINE), ("candidate", case.spec.technique)):
            key = (self.name, case.spec.model, name, seq_len, case.spec.device)
            if key in case.memo:
                figures[arm] = case.memo[key]
                continue
            fitted: dict[int, dict[str, Any]] = {}

            def fits(size: int, name: str = name, fitted: dict[int, dict[str, Any]] = fitted) -> bool:
                payload = case.payload(
                    technique=import_path(name),
                    batch_size=size,
                    seq_len=seq_len,
                    gpu_budget_bytes=cap.get("budget_bytes"),
                )
                data = try_under_cap(case, TrainFits(), payload, cap)
                if data is not None:
                    fitted[size] = data
                return data is not None

            try:
                largest, tries = search_in_steps(fits, recipe_of(import_path(name)).gradient_accumulation_steps)
            except TryFailed:
                return
            sweep = [{"batch_size": size, "samples_per_second": size / data["step_seconds"],
                      "peak_bytes": data.get("peak_bytes")} for size, data in sorted(fitted.items())]  # fmt: skip
            figures[arm] = case.memo[key] = {"technique": name, "largest": largest, "tries": tries, "sweep": sweep}
        base, cand = figures["baseline"]["largest"], figures["candidate"]["largest"]
        figures["ratio"] = cand / base if base else None
        case.result.metrics["train_batch"] = figures

    def run(self, payload: dict[str, Any], state: WorkerState) -> dict[str, Any]:
        raise NotImplementedError("train-batch runs its tries as train-fits jobs")
