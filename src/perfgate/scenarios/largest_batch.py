"""The largest batch that fits: doubling, then bisection, each try in a fresh worker under a memory cap.

Running out of memory is the expected end of the search, not an error. On CUDA a try is a real
allocation failure (each try is its own process, so nothing cached survives it). On CPU the worker
caps its own address space (``RLIMIT_AS``) after loading, one warm forward pass and tokenizing the
batch, at what it holds then plus ``headroom`` bytes: torch's allocator then fails inside that worker
alone, as a ``RuntimeError`` the worker reports as ``oom``, and the machine (which has no swap) never
sees pressure. The tokenizer runs before the cap because it aborts the process on a failed allocation.

What this measures on CPU: how far a batch can grow *beyond what the loaded variant holds* — the
activations' share. Weights are below the cap's base, so a technique that only shrinks weights fits
the same batch (measured: MiniLM at 128 tokens, 512 MiB headroom: fp32 b237, torch int8 b240, bf16
b247). An address-space cap also counts reserved, untouched pages (allocator arenas, thread stacks),
so it is a coarse proxy for resident memory. A fixed budget that counts the weights needs a memory
cgroup for the worker (root, cgroup v1 here); ``min_batch_fit_ratio`` is therefore measured and not
gated yet.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfgate.scenarios import Isolation, Scenario

if TYPE_CHECKING:
    from perfgate.case import CaseContext
    from perfgate.worker import WorkerState

HEADROOM_BYTES = 512 * 2**20  # beyond the loaded, warmed-up worker (CPU)
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

        from perfgate.memory import process_memory
        from perfgate.technique import load_technique
        from perfgate.timing import torch_threads

        with torch_threads(payload["threads"]):
            model = state.model(payload["model"])
            variant = load_technique(payload["technique"]).apply(model, Path(payload["workdir"]), payload["threads"])
            text = payload["timed_texts"][0]
            variant.run(model.inputs([text], SEQ_LEN))  # threads, arenas and lazy state exist before the cap
            # Tokenized before the cap: the tokenizer (Rust) aborts the process on an allocation failure,
            # where torch's allocator raises. Only the forward pass runs under the cap.
            inputs = model.inputs([text] * payload["batch_size"], SEQ_LEN)
            if not payload["model"]["device"].startswith("cuda"):
                held = _virtual_bytes()
                resource.setrlimit(resource.RLIMIT_AS, (held + payload["headroom_bytes"], resource.RLIM_INFINITY))
            start = time.perf_counter()
            variant.run(inputs)
        return {"batch_size": payload["batch_size"], "seconds": time.perf_counter() - start, "after": process_memory()}


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
    high = low * 2  # does not fit
    while high - low > 1:
        middle = (low + high) // 2
        if attempt(middle):
            low = middle
        else:
            high = middle
    return low, tries


class LargestBatch(Scenario):
    name = "largest-batch"
    isolation = Isolation.SHARED

    def conduct(self, case: CaseContext) -> None:
        from perfgate.outcome import Outcome
        from perfgate.spec import BASELINE
        from perfgate.technique import import_path

        figures: dict[str, Any] = {"seq_len": SEQ_LEN, "headroom_bytes": HEADROOM_BYTES}
        for arm, name in (("baseline", BASELINE), ("candidate", case.spec.technique)):

            def fits(size: int, name: str = name) -> bool:
                payload = case.payload(technique=import_path(name), batch_size=size, headroom_bytes=HEADROOM_BYTES)
                reply = case.launcher.submit(case.spec.device, BatchFits(), payload, fresh=True, timeout=case.timeout)
                case.result.worker.setdefault("jobs", []).append({"scenario": BatchFits.name, **reply.worker})
                if reply.outcome == Outcome.OOM:
                    return False
                if reply.outcome != Outcome.MEASURED:
                    case.result.outcome, case.result.detail, case.result.log = reply.outcome, reply.detail, reply.log
                    raise TryFailed(reply.detail)
                return True

            try:
                largest, tries = search(fits)
            except TryFailed:
                return
            figures[arm] = {"technique": name, "largest": largest, "tries": tries}
        base, cand = figures["baseline"]["largest"], figures["candidate"]["largest"]
        figures["ratio"] = cand / base if base else None
        case.result.metrics["largest_batch"] = figures

    def run(self, payload: dict[str, Any], state: WorkerState) -> dict[str, Any]:
        raise NotImplementedError("largest-batch runs its tries as batch-fits jobs")
