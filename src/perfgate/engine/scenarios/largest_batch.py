"""The largest batch that fits: doubling, then bisection, each try in a fresh worker under a memory cap.

Running out of memory is the expected end of the search, not an error. On CUDA a try is a real
allocation failure (each try is its own process, so nothing cached survives it). On CPU the cap is
one of two, whichever this machine allows; the result names it:

- **A memory cgroup of the worker's own** (``cgroup.py``; needs root or a delegated hierarchy): a
  fixed *budget* beyond what the worker holds once torch and transformers are imported, so it counts
  the weights, the technique's own state and the activations. The model's files are evicted from the
  page cache first, so the worker is charged for the weight pages it reads, whoever read them before.
  Over the budget the kernel kills the worker inside its group: an ``oom`` outcome. Memory-mapped
  weights are clean file pages the kernel can drop and reread under pressure, so near the limit an
  fp32 model's weights yield to activations where a quantized copy (anonymous memory) cannot: what a
  container with that limit would see. ``min_batch_fit_ratio`` is gated only under this cap.
- **An address-space cap** (``RLIMIT_AS``), set after loading, one warm forward pass and tokenizing
  the batch, at what the worker holds then plus ``headroom``: torch's allocator fails inside the
  worker as a ``RuntimeError`` reported as ``oom``. This measures how far a batch can grow *beyond
  what the loaded variant holds*: weights are below the cap's base, so a technique that only shrinks
  weights fits the same batch (measured: MiniLM at 128 tokens, 512 MiB headroom: fp32 b237, torch int8
  b240, bf16 b247), and reserved, untouched pages count too. Measured, never gated.

The tokenizer runs before the forward pass that is tried: under an address-space cap it would abort
the process on a failed allocation (Rust), where torch's allocator raises.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfgate.engine.scenarios.contract import Isolation, Scenario
from perfgate.instruments.cgroup import CgroupUnavailable, MemoryCgroup, join_in_worker

if TYPE_CHECKING:
    from perfgate.engine.scenarios.contract import CaseContext, WorkerState

HEADROOM_BYTES = 512 * 2**20  # address-space cap: beyond the loaded, warmed-up worker (CPU)
# CUDA: torch's allocator capped at this many bytes of the device (weights, state and activations), so
# the search ends in out-of-memory on any GPU, a 16 GiB T4 as a 141 GiB H200; at the device's size the
# searches' caps (4096, 1024) were never reached and "a larger batch was tried" could not hold.
GPU_BUDGET_BYTES = 4 * 2**30
BUDGET_BYTES = 384 * 2**20  # cgroup cap: beyond the worker with its libraries imported (CPU)
SEQ_LEN = 128  # every sequence padded to it: the batch alone sets the memory
LARGEST_TRIED = 4096


class TryFailed(Exception):
    """A try ended neither fitting nor out of memory (crashed, timed out, raised): the search stops."""


class BatchFits(Scenario):
    """One try: does ``batch_size`` run a forward pass within the cap? (A fresh worker per try.)"""

    name = "batch-fits"
    isolation = Isolation.FRESH

    def run(self, payload: dict[str, Any], state: WorkerState) -> dict[str, Any]:
        import resource

        import torch  # noqa: F401 - the libraries are in a cgroup's base, not in its budget
        import transformers  # noqa: F401

        from perfgate.instruments.memory import process_memory, release_freed_memory
        from perfgate.instruments.timing import torch_threads
        from perfgate.subjects.catalogue import load_technique

        joined = join_in_worker(payload.get("cgroup"), Path(payload["model"]["location"]))
        device = payload["model"]["device"]
        budget = limit_device_memory(device, payload["gpu_budget_bytes"]) if device.startswith("cuda") else None
        with torch_threads(payload["threads"]):
            model = state.model(payload["model"])
            variant = load_technique(payload["technique"]).apply(model, Path(payload["workdir"]), payload["threads"])
            # Served alone, as a deployment would serve it: without the fp32 module it was built from
            # (unless it still runs it) and without what building it freed.
            if variant.independent_of_source:
                model.release_module()
            release_freed_memory()
            text = payload["timed_texts"][0]
            variant.run(model.inputs([text], SEQ_LEN))  # threads, arenas and lazy state exist before the try
            if joined is not None:
                _limit(*joined, payload["budget_bytes"])
            # Tokenized before an address-space cap: the tokenizer (Rust) aborts the process on an
            # allocation failure, where torch's allocator raises. Only the forward pass runs under it.
            inputs = model.inputs([text] * payload["batch_size"], SEQ_LEN)
            if joined is None and not payload["model"]["device"].startswith("cuda"):
                held = _virtual_bytes()
                resource.setrlimit(resource.RLIMIT_AS, (held + payload["headroom_bytes"], resource.RLIM_INFINITY))
            start = time.perf_counter()
            peak = forward_peak(lambda: variant.run(inputs), device)
        seconds = time.perf_counter() - start
        figures = {"batch_size": payload["batch_size"], "seconds": seconds, "after": process_memory()}
        if budget is not None:
            figures["device_budget"] = {**budget, "peak_allocated": peak["forward"], "build_peak": peak["before"]}
        if joined is not None:
            cgroup, base = joined
            figures["cgroup"] = {"base": base, "peak": cgroup.peak(), "usage": cgroup.usage()}
        return figures


def forward_peak(forward: Any, device: str, cuda: Any = None) -> dict[str, int | None]:
    """Device memory at the peak of ``forward`` alone: the allocator's peak is reset before it, so what
    building the variant held (a cast keeps the fp32 original and its copy: ~0.9 GB for bert-base, more
    than a forward at batch 8) never reads as the try's. ``before`` is the peak up to then. On CPU, runs
    ``forward`` and reads nothing. ``cuda`` stands in for ``torch.cuda`` in tests."""
    if not device.startswith("cuda"):
        forward()
        return {"before": None, "forward": None}
    if cuda is None:
        import torch

        cuda = torch.cuda
    before = int(cuda.max_memory_allocated(device))
    cuda.reset_peak_memory_stats(device)
    forward()
    return {"before": before, "forward": int(cuda.max_memory_allocated(device))}


def _peak_allocated(data: dict[str, Any] | None) -> int | None:
    return None if data is None else int(data["device_budget"]["peak_allocated"])


def memory_fraction(budget_bytes: int, device_bytes: int) -> float:
    """The share of the device ``set_per_process_memory_fraction`` is given for a budget: the whole
    device where the budget is larger (the device is then the cap, as the case's figures say)."""
    return min(1.0, budget_bytes / device_bytes)


def limit_device_memory(device: str, budget_bytes: int) -> dict[str, Any]:
    """Cap torch's caching allocator on ``device`` at ``budget_bytes``: beyond it an allocation raises
    torch's OutOfMemoryError, as on a device of that size."""
    import torch

    total = torch.cuda.get_device_properties(device).total_memory
    fraction = memory_fraction(budget_bytes, total)
    torch.cuda.set_per_process_memory_fraction(fraction, device)
    return {"budget_bytes": budget_bytes, "device_bytes": total, "fraction": fraction}


def _limit(cgroup: MemoryCgroup, base: int, budget: int) -> None:
    """Cap the group at its base plus the budget. Set once the variant is built, so building it (a
    quantized copy beside the fp32 one) is not what the budget measures; a variant that already holds
    more than the budget does not fit at any batch, which is an out-of-memory outcome."""
    held = cgroup.usage()
    if held > base + budget:
        raise MemoryError(f"the built variant holds {(held - base) / 2**20:.0f} MiB, over the budget of "
                          f"{budget / 2**20:.0f} MiB, before any batch")  # fmt: skip
    cgroup.cap(base + budget)


def _virtual_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status: the address-space cap needs Linux")


def search(fits: Any, largest_tried: int = LARGEST_TRIED) -> tuple[int, list[tuple[int, bool]]]:
    """The largest batch ``fits(size)`` accepts, by doubling then bisection; and every try in order.
    Assumes that a batch that fits means every smaller one fits (memory grows with the batch)."""
    tries: list[tuple[int, bool]] = []

    def attempt(size: int) -> bool:
        ok = bool(fits(size))
        tries.append((size, ok))
        return ok

    if not attempt(1):
        return 0, tries
    low = 1
    while low * 2 <= largest_tried and attempt(low * 2):
        low *= 2
    if low * 2 > largest_tried:
        return low, tries
    return _bisect(attempt, low, low * 2), tries  # low * 2 did not fit


PROBE = 8  # the second try of a guided search: with batch 1, the line memory = base + batch * per item


def guided_search(
    peak_at: Any, budget_bytes: int, largest_tried: int = LARGEST_TRIED, probe: int = PROBE
) -> tuple[int, list[tuple[int, bool]]]:
    """The largest batch that fits, where each try reports its peak memory (``peak_at(size)``: bytes, or
    None when out of memory): two tries (1 and ``probe``) draw the line base + batch x per item, the
    budget's crossing is tried next, then a gallop from there brackets the edge and bisection closes it.
    Where memory grows linearly that is about 4 tries (planted: 4 against 22) instead of doubling's
    2 log2(n), each a fresh worker (seconds on a GPU); where it does not, the gallop and bisection still
    end on the true edge."""
    tries: list[tuple[int, bool]] = []

    def fits(size: int) -> bool:
        return peak(size) is not None

    def peak(size: int) -> int | None:
        measured = peak_at(size)
        tries.append((size, measured is not None))
        return measured  # type: ignore[no-any-return]

    first = peak(1)
    if first is None:
        return 0, tries
    probe = min(probe, largest_tried)
    if probe == 1:
        return 1, tries
    second = peak(probe)
    if second is None:
        return _bisect(fits, 1, probe), tries
    per_item = (second - first) / (probe - 1)
    crossing = largest_tried if per_item <= 0 else probe + int((budget_bytes - second) / per_item)
    guess = min(largest_tried, max(probe, crossing))
    low, high = probe, None  # low fits; high, once known, does not
    if guess > low:
        if fits(guess):
            low = guess
        else:
            high = guess
    step = 1  # the line's crossing is usually exact: its neighbour decides; a curve costs a few doublings
    while high is None:  # gallop up from the last size that fitted
        if low >= largest_tried:
            return low, tries
        upper = min(largest_tried, low + step)
        if fits(upper):
            low, step = upper, step * 2
        else:
            high = upper
    while high - low > 1 and high - step > low:  # gallop down from the first size that did not
        lower = high - step
        if fits(lower):
            low = lower
            break
        high, step = lower, step * 2
    return _bisect(fits, low, high), tries


def _bisect(fits: Any, low: int, high: int) -> int:
    """The largest size in [low, high) that fits, ``low`` fitting and ``high`` not."""
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            low = middle
        else:
            high = middle
    return low


def try_under_cap(case: CaseContext, scenario: Scenario, payload: dict[str, Any], cap: dict[str, Any]) -> Any:
    """One try in a fresh worker under ``cap`` (a cgroup of its own where the cap is one): its data when it
    fitted, None when it ran out of memory; any other outcome is recorded on the case and ends the search
    (``TryFailed``)."""
    from perfgate.instruments.outcome import Outcome

    group = MemoryCgroup.create() if cap["kind"] == "cgroup" else None
    if group is not None:
        payload = {**payload, "cgroup": group.named(), "budget_bytes": cap["budget_bytes"]}
    try:
        reply = case.launcher.submit(
            case.spec.device, scenario, payload, fresh=True, timeout=case.timeout, cgroup=group
        )
    finally:
        if group is not None:
            group.remove()
    case.result.worker.setdefault("jobs", []).append({"scenario": scenario.name, **reply.worker})
    if reply.outcome == Outcome.OOM:
        return None
    if reply.outcome != Outcome.MEASURED:
        case.result.outcome, case.result.detail, case.result.log = reply.outcome, reply.detail, reply.log
        raise TryFailed(reply.detail)
    return reply.data


def memory_cap(
    device: str, budget_bytes: int = BUDGET_BYTES, gpu_budget_bytes: int = GPU_BUDGET_BYTES
) -> dict[str, Any]:
    """Which cap the tries run under: a device-memory budget on CUDA, a cgroup budget, or an address-space cap."""
    if device.startswith("cuda"):
        return {"kind": "cuda", "budget_bytes": gpu_budget_bytes, "how": "torch.cuda.set_per_process_memory_fraction"}
    try:
        probe = MemoryCgroup.create()
    except CgroupUnavailable as error:
        return {"kind": "address-space", "headroom_bytes": HEADROOM_BYTES, "why_not_cgroup": str(error)}
    probe.remove()
    return {"kind": "cgroup", "version": probe.version, "budget_bytes": budget_bytes}


class LargestBatch(Scenario):
    name = "largest-batch"
    isolation = Isolation.SHARED

    def conduct(self, case: CaseContext) -> None:
        from perfgate.engine.spec import BASELINE
        from perfgate.subjects.catalogue import import_path

        cap = memory_cap(case.spec.device, gpu_budget_bytes=case.payload().get("gpu_budget_bytes") or GPU_BUDGET_BYTES)
        figures: dict[str, Any] = {"seq_len": SEQ_LEN, "cap": cap, "headroom_bytes": HEADROOM_BYTES}
        for arm, name in (("baseline", BASELINE), ("candidate", case.spec.technique)):

            def tried(size: int, name: str = name) -> dict[str, Any] | None:
                payload = case.payload(
                    technique=import_path(name), batch_size=size, headroom_bytes=HEADROOM_BYTES,
                    gpu_budget_bytes=cap.get("budget_bytes"),
                )  # fmt: skip
                data: dict[str, Any] | None = try_under_cap(case, BatchFits(), payload, cap)
                return data

            try:
                if cap["kind"] == "cuda":  # each try reports torch's peak allocated: a guided search
                    largest, tries = guided_search(
                        lambda size, tried=tried: _peak_allocated(tried(size)), cap["budget_bytes"]
                    )
                else:
                    largest, tries = search(lambda size, tried=tried: tried(size) is not None)
            except TryFailed:
                return
            figures[arm] = {"technique": name, "largest": largest, "tries": tries}
        base, cand = figures["baseline"]["largest"], figures["candidate"]["largest"]
        figures["ratio"] = cand / base if base else None
        case.result.metrics["largest_batch"] = figures

    def run(self, payload: dict[str, Any], state: WorkerState) -> dict[str, Any]:
        raise NotImplementedError("largest-batch runs its tries as batch-fits jobs")
