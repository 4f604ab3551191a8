"""Serving memory: what one arm needs resident while it is loaded and serving, in a worker of its own.

The worker loads the model (tokenizer and config; fp32 weights only if the technique touches them),
applies the technique, drops the fp32 module when the variant does not serve from it, returns freed
heap to the OS, and only then rewinds the high-water mark: what *building* needed (an export, a
quantized copy beside its fp32 source) is not what *serving* needs. It then runs a few forward passes
and reads the peak. The parent samples the worker's anonymous and file-backed pages meanwhile.

``RuntimeOverhead`` is the same worker with the same imports that loads no weights: the runtime's fixed
share (interpreter, libraries, allocator arenas, thread pools), measured once per session per import
set. The memory the model itself is responsible for (*attributable*) is the arm's anonymous memory at
its peak beyond the overhead's, plus the resident pages of the model's own files (safetensors mapped
from the model directory, artifacts), read from ``/proc/PID/smaps``. The libraries' code pages are
file-backed too, but their resident count follows the page cache (fault-around), not the model.
"""

from __future__ import annotations

import importlib
import time
from typing import TYPE_CHECKING, Any, ClassVar

from perfgate.engine.scenarios.contract import Isolation, Scenario

if TYPE_CHECKING:
    from perfgate.engine.scenarios.contract import CaseContext, WorkerState

FORWARD_PASSES = 3
MIN_SERVE_SECONDS = 0.5  # long enough for the parent's sampler to see the peak's split (every 5 ms)


class ServingMemory(Scenario):
    """As a case's scenario (``perfgate.measure(..., scenario="serving-memory")``): both arms' serving
    memory and nothing else; as a job: one arm, in a fresh worker."""

    name = "serving-memory"
    isolation = Isolation.FRESH
    samples_memory: ClassVar[bool] = True

    def conduct(self, case: CaseContext) -> None:
        measure_serving_memory(case)

    def run(self, payload: dict[str, Any], state: WorkerState) -> dict[str, Any]:
        from perfgate.instruments.memory import mapped_file_bytes, process_memory, release_freed_memory, reset_peak
        from perfgate.instruments.timing import torch_threads
        from perfgate.subjects.catalogue import load_technique

        for module in payload["imports"]:
            importlib.import_module(module)
        device = payload["model"]["device"]
        cuda = device.startswith("cuda")
        with torch_threads(payload["threads"]):
            start = time.perf_counter()
            # Weights as loaded: a server maps its safetensors file, and the resident share of those pages
            # is the model's (timed jobs copy them for a fair comparison, ``model.copy_weights``).
            model = state.model({**payload["model"], "placement": "mapped"})
            variant = load_technique(payload["technique"]).apply(model, _workdir(payload), payload["threads"])
            inputs = model.inputs(payload["timed_texts"], payload["seq_len"])
            build_seconds = time.perf_counter() - start
            if variant.independent_of_source:
                model.release_module()
            release_freed_memory()
            held = process_memory()
            if cuda:
                import torch

                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
            peak_reset = reset_peak()
            serve_start = time.monotonic()
            passes = 0
            while passes < FORWARD_PASSES or time.monotonic() - serve_start < MIN_SERVE_SECONDS:
                variant.run(inputs)
                passes += 1
            if cuda:
                torch.cuda.synchronize(device)
            serve_end = time.monotonic()
            after = process_memory()
            model_files = mapped_file_bytes([payload["model"]["location"], payload["workdir"]])
        figures: dict[str, Any] = {
            "held_rss": held.get("rss"),
            "held": held,
            "after": after,
            "peak_rss": after.get("peak_rss") if peak_reset else None,
            "peak_reset": peak_reset,
            "model_file_rss": model_files,
            "serve_window": [serve_start, serve_end],
            "forward_passes": passes,
            "fp32_module_resident": model.module_loaded,
            "load_seconds": build_seconds,  # isolation's cost, outside the timed blocks (reported as setup)
            "variant": variant.details,
        }
        if cuda:
            from perfgate.instruments.nvml import process_device_memory, read_nvml

            figures["cuda_peak_allocated"] = int(torch.cuda.max_memory_allocated(device))
            figures["cuda_peak_reserved"] = int(torch.cuda.max_memory_reserved(device))
            figures["nvml_memory"] = read_nvml(device, process_device_memory)
        return figures


class RuntimeOverhead(Scenario):
    name = "runtime-overhead"
    isolation = Isolation.FRESH

    def run(self, payload: dict[str, Any], state: WorkerState) -> dict[str, Any]:
        from perfgate.instruments.memory import process_memory, release_freed_memory, reset_peak
        from perfgate.instruments.timing import torch_threads

        for module in payload["imports"]:
            importlib.import_module(module)
        import torch
        import transformers

        from perfgate.subjects.model import TASKS

        # The model's own code and text front end, but none of its weights: import the architecture's
        # module (as from_pretrained would) and load the config and tokenizer.
        ref = payload["model"]
        config = transformers.AutoConfig.from_pretrained(ref["location"])
        getattr(transformers, TASKS[ref["task"]])._model_mapping[type(config)]
        transformers.AutoTokenizer.from_pretrained(ref["location"])
        with torch_threads(payload["threads"]):
            # Start the intra-op thread pool and the allocator as any forward pass would.
            tiny = torch.ones(64, 64, device=ref["device"])
            (tiny @ tiny).sum().item()
            release_freed_memory()
            reset_peak()
            (tiny @ tiny).sum().item()
            after = process_memory()
        return {"peak_rss": after.get("peak_rss"), "after": after, "imports": payload["imports"]}


class BuildArtifacts(Scenario):
    """Build a technique's on-disk artifacts in the shared worker, before its memory is measured."""

    name = "build-artifacts"
    isolation = Isolation.SHARED

    def run(self, payload: dict[str, Any], state: WorkerState) -> dict[str, Any]:
        from perfgate.subjects.catalogue import load_technique

        start = time.perf_counter()
        load_technique(payload["technique"]).prepare(state.model(payload["model"]), _workdir(payload))
        return {"load_seconds": time.perf_counter() - start}


def runtime_overhead(case: CaseContext, payload: dict[str, Any]) -> dict[str, Any] | None:
    """The overhead of ``payload``'s imports for this model, device and threads: once per session."""
    spec = case.spec
    key = (RuntimeOverhead.name, tuple(payload["imports"]), spec.model, spec.device, spec.threads)
    if key not in case.memo:
        data = case.submit(RuntimeOverhead(), payload, timeout=case.memory_timeout)
        if data is None:
            return None
        case.memo[key] = data
    overhead: dict[str, Any] = case.memo[key]
    return overhead


def _workdir(payload: dict[str, Any]) -> Any:
    from pathlib import Path

    return Path(payload["workdir"])


def measure_serving_memory(case: CaseContext) -> None:
    """Both arms' serving memory, each in a fresh worker, against the runtime overhead of its imports."""
    from perfgate.engine.spec import BASELINE
    from perfgate.instruments.memory import memory_ratio

    figures: dict[str, Any] = {"measure": "peak RSS while serving, minus the runtime overhead of the same imports"}
    for arm, name in (("baseline", case.spec.baseline), ("candidate", case.spec.technique)):
        data = _arm(case, name, memoize=name == BASELINE)
        if data is None:  # the outcome is on the result; keep what the failing job left there
            case.result.metrics["memory"] = {**figures, **case.result.metrics.get("memory", {})}
            return
        figures[arm] = data
    figures.update(memory_ratio(figures["baseline"], figures["candidate"], "attributable", case.spec.device))
    case.result.metrics["memory"] = figures


def _arm(case: CaseContext, name: str, memoize: bool) -> dict[str, Any] | None:
    """One arm's figures: artifacts built elsewhere first, then a fresh worker, minus the overhead."""
    from perfgate.subjects.catalogue import get_technique, import_path

    spec, technique = case.spec, get_technique(name)
    payload = case.payload(technique=import_path(name), imports=list(technique.runtime_modules()))
    # fp32's figures do not depend on the candidate: measured once per model and input shape.
    key = (ServingMemory.name, spec.model, name, spec.batch_size, spec.seq_len, spec.device, spec.threads)
    data = case.memo.get(key) if memoize else None
    if data is None:
        if technique.builds_artifacts and case.submit(BuildArtifacts(), payload) is None:
            return None
        data = case.submit(ServingMemory(), payload, timeout=case.memory_timeout)
        if data is None:
            return None
        if memoize:
            case.memo[key] = data
    overhead = runtime_overhead(case, payload)
    if overhead is None:
        return None
    return with_attributable({**data, "technique": name}, overhead)


def with_attributable(data: dict[str, Any], overhead: dict[str, Any]) -> dict[str, Any]:
    """An arm's serving figures with the runtime overhead and the memory attributable to the model."""
    data = {**data, "overhead_rss": overhead.get("peak_rss")}
    anonymous = (data.get("sampled") or {}).get("at_peak", {}).get("anon") or data.get("after", {}).get("anon")
    overhead_anonymous = overhead.get("after", {}).get("anon")
    if anonymous is not None and overhead_anonymous is not None:
        # Anonymous memory beyond the runtime's, plus the model's own mapped files. Library code pages
        # (file-backed too) are left out: their count moved by ~90 MiB between runs with the page cache.
        data["overhead_anon"] = overhead_anonymous
        data["attributable"] = max(0, anonymous - overhead_anonymous) + data.get("model_file_rss", 0)
    return data
