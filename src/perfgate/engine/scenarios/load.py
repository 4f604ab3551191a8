"""Loading a checkpoint: time to a ready model and to the end of its first forward pass, and the peak of
resident memory across both, split into anonymous and file-backed, in a worker that has loaded nothing
else.

The kernel keeps one high-water mark per process (``VmHWM``), a total: the split comes from the parent
sampling the worker's ``/proc/PID/status`` during the load (``memory.MemorySampler``; its interval is
reported), and ``VmHWM`` checks the samples (a sampled peak above it would be wrong; far below it, too
coarse). Anonymous memory is counted beyond that of a worker with the same imports and no weights
(``serving_memory.RuntimeOverhead``): what the load itself costs. Memory-mapped weights are file-backed:
the page cache holds them, shareable and reclaimable, which is why "RSS after load" misleads both ways.

Each strategy's outputs on the run's sentences are compared with those of the plain fp32 load of the
single file (the reference, loaded once per model in a fresh worker of its own).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfgate.engine.scenarios.contract import Isolation, Scenario

if TYPE_CHECKING:
    from perfgate.engine.scenarios.contract import CaseContext, WorkerState

REFERENCE = "load-safetensors"
TEXTS = 4  # sentences in the first forward pass, padded to the longest
MIN_SAMPLED_SHARE = 0.9  # of VmHWM the largest sample must reach for the sampled split to be judged


class Load(Scenario):
    name = "load"
    isolation = Isolation.FRESH
    samples_memory = True

    def conduct(self, case: CaseContext) -> None:
        from perfgate.engine.scenarios.serving_memory import runtime_overhead

        reference_file = str(Path(load_payload(case, REFERENCE)["workdir"]) / "reference.npy")
        key = (self.name, REFERENCE, case.spec.model)
        if key not in case.memo:
            payload = load_payload(case, REFERENCE, write_reference=reference_file)
            reference = case.submit(self, payload, timeout=case.memory_timeout)
            if reference is None:
                return
            case.memo[key] = reference
        payload = load_payload(case, case.spec.technique, reference=reference_file)
        data = case.memo[key] if case.spec.technique == REFERENCE else None
        if data is None:
            data = case.submit(self, payload, timeout=case.memory_timeout)
            if data is None:
                return
        overhead = runtime_overhead(case, payload)
        if overhead is not None:
            case.result.metrics["load"] = load_figures(data, overhead)

    def run(self, payload: dict[str, Any], state: WorkerState) -> dict[str, Any]:
        import importlib

        import numpy as np
        import torch

        from perfgate.instruments.cgroup import join_in_worker
        from perfgate.instruments.memory import mapped_file_bytes, process_memory, reset_peak
        from perfgate.instruments.timing import torch_threads
        from perfgate.subjects.catalogue import load_technique
        from perfgate.subjects.model import load_model
        from perfgate.subjects.techniques.loading import LoadStrategy, placement

        for module_name in payload.get("imports", []):
            importlib.import_module(module_name)
        ref = payload["model"]
        location = Path(ref["location"])
        strategy = load_technique(payload["technique"])
        if not isinstance(strategy, LoadStrategy):
            raise TypeError(f"{strategy.name} is not a load strategy (techniques/loading.py): the load scenario "
                            f"measures how a checkpoint is loaded; give one of the load-* techniques")  # fmt: skip
        model = load_model(ref["name"], ref["task"], location, ref["device"])  # tokenizer and config only
        inputs = model.inputs(list(payload["eval_texts"])[: payload["texts"]], None)
        workdir = Path(payload["workdir"])
        joined = join_in_worker(payload.get("cgroup"), location)
        if joined is not None:  # capped from here, the weights' pages read in (and charged) afresh
            cgroup, cap_base = joined
            cgroup.cap(cap_base + payload["cap_bytes"])
        with torch_threads(payload["threads"]):
            peak_reset = reset_peak()
            start = time.monotonic()
            module, details = strategy.load(ref["task"], location, workdir, ref["device"])
            ready = time.monotonic()
            held = {**process_memory(), "model_file": mapped_file_bytes([str(location), str(workdir)])}
            with torch.inference_mode():
                outputs = model.primary_output(module(**inputs), inputs).float().cpu().numpy()  # from any device
            end = time.monotonic()
        after = {**process_memory(), "model_file": mapped_file_bytes([str(location), str(workdir)])}
        figures: dict[str, Any] = {
            "technique": strategy.name,
            "stored_bytes": stored_bytes(strategy.checkpoint(location)),
            "ready_seconds": ready - start,
            "first_forward_seconds": end - ready,
            "serve_window": [start, end],  # the parent's samples inside it: the load and the first forward
            "held": held,
            "after": after,
            "peak_rss": after.get("peak_rss") if peak_reset else None,
            "details": {**details, **placement(module)},
        }
        if ref["device"].startswith("cuda"):
            figures["cuda_peak_allocated"] = {
                f"cuda:{index}": int(torch.cuda.max_memory_allocated(index))
                for index in range(torch.cuda.device_count())
            }
        if joined is not None:
            figures["cgroup"] = {"base": cap_base, "peak": cgroup.peak(), "usage": cgroup.usage()}
        if "write_reference" in payload:
            Path(payload["write_reference"]).parent.mkdir(parents=True, exist_ok=True)
            np.save(payload["write_reference"], outputs)
        elif "reference" in payload:
            reference = np.load(payload["reference"], allow_pickle=False)
            difference = np.abs(outputs.astype(np.float64) - reference.astype(np.float64))
            figures["max_abs_diff"] = float(difference.max())
            figures["reference_scale"] = float(np.abs(reference).max())
        strategy.clean_up(workdir)
        return figures


def load_payload(case: CaseContext, strategy: str, **changes: Any) -> dict[str, Any]:
    """A load job's payload: the strategy, its imports, the model's own work directory, the sentences."""
    from perfgate.subjects.catalogue import get_technique, import_path

    workdir = Path(case.payload()["workdir"]) / "load" / case.spec.model
    imports = list(get_technique(strategy).runtime_modules())
    return case.payload(technique=import_path(strategy), imports=imports, workdir=str(workdir), texts=TEXTS, **changes)


def stored_bytes(checkpoint: Path) -> int:
    """Bytes of weight files in a checkpoint directory (safetensors, .bin), not counting subdirectories."""
    suffixes = (".safetensors", ".bin")
    return sum(p.stat().st_size for p in checkpoint.iterdir() if p.is_file() and p.name.endswith(suffixes))


def load_figures(data: dict[str, Any], overhead: dict[str, Any]) -> dict[str, Any]:
    """The worker's figures with the anonymous peak beyond the runtime's and the checks' ratios."""
    sampled = data.get("sampled") or {}
    runtime_anon = overhead.get("after", {}).get("anon")
    figures = {**data, "runtime_anon": runtime_anon}
    figures.pop("serve_window", None)
    budget = data["details"].get("max_memory_cpu")
    if budget and runtime_anon is not None:
        # What stays in RAM once the offloaded model has run: its mapped files and anonymous memory
        # beyond the runtime's (weights placed on the CPU, buffers, what the first forward kept).
        after = data["after"]
        figures["resident_after"] = after.get("model_file", 0) + max(0, after.get("anon", 0) - runtime_anon)
        figures["resident_ratio"] = figures["resident_after"] / budget
    top = sampled.get("at_peak", {}).get("rss")
    if top is not None and data.get("peak_rss"):
        figures["sampled_share_of_hwm"] = top / data["peak_rss"]  # near 1: the samples caught the peak
        if figures["sampled_share_of_hwm"] < MIN_SAMPLED_SHARE:
            # The split at the peak is the samples'; if they missed the peak, it is not judged.
            figures["sampling_missed_peak"] = True
            return figures
    peak_anon, peak_file = sampled.get("max", {}).get("anon"), sampled.get("max", {}).get("file")
    if peak_anon is not None and runtime_anon is not None:
        figures["anon_peak"] = max(0, peak_anon - runtime_anon)
        figures["anon_peak_ratio"] = figures["anon_peak"] / data["stored_bytes"]
    if peak_file is not None:
        figures["file_peak"] = peak_file
    return figures


CAP_BYTES = 256 * 2**20  # beyond the worker with its libraries imported: about half the 474 MiB model


class LoadUnderCap(Load):
    """Does the strategy still load and run with less memory than the model's size? The worker runs in a
    memory cgroup of its own capped at ``CAP_BYTES`` beyond its imported libraries; a kill by the kernel
    inside it is this case's answer ("does not fit"), not an error. Needs a memory cgroup for the worker
    (``cgroup.py``); where none can be made the case is an error saying why (the perf test skips first)."""

    name = "load-under-cap"

    def conduct(self, case: CaseContext) -> None:
        from perfgate.instruments.cgroup import CgroupUnavailable, MemoryCgroup
        from perfgate.instruments.outcome import Outcome

        try:
            cgroup = MemoryCgroup.create()
        except CgroupUnavailable as error:
            case.result.outcome, case.result.detail = Outcome.ERROR, f"no memory cap for the worker: {error}"
            return
        payload = load_payload(case, case.spec.technique, cap_bytes=CAP_BYTES, cgroup=cgroup.named())
        try:
            reply = case.launcher.submit(case.spec.device, self, payload, fresh=True, timeout=case.memory_timeout,
                                         cgroup=cgroup)  # fmt: skip
        finally:
            cgroup.remove()
        case.result.worker.setdefault("jobs", []).append({"scenario": self.name, **reply.worker})
        figures: dict[str, Any] = {"cap_bytes": CAP_BYTES, "outcome": str(reply.outcome), "fits": False}
        if reply.outcome == Outcome.MEASURED:
            data = reply.data
            figures.update(fits=True, ready_seconds=data["ready_seconds"], stored_bytes=data["stored_bytes"],
                           first_forward_seconds=data["first_forward_seconds"],
                           peak_charged=data["cgroup"]["peak"] - data["cgroup"]["base"])  # fmt: skip
        elif reply.outcome == Outcome.OOM:
            figures["detail"] = reply.detail
        else:  # crashed, timed out, raised: not an answer to "does it fit"
            case.result.outcome, case.result.detail, case.result.log = reply.outcome, reply.detail, reply.log
        case.result.metrics["load_under_cap"] = figures
