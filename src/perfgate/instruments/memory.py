"""Memory as a user must provision it: resident memory read from ``/proc``, its peak, and its split.

Resident memory has two kinds that matter here. Safetensors weights are memory-mapped, so an fp32
model's weights are *file-backed* pages, touched (and counted) only as a forward pass reads them;
quantized copies, ONNX Runtime's initializers and activations are *anonymous*. ``VmHWM`` is the peak
of the total; the kernel keeps no peak per kind, so the split at the peak comes from sampling the
worker's ``/proc/PID/status`` from the parent (``MemorySampler``), at an interval that is reported.

``reset_peak`` rewinds ``VmHWM`` to the current RSS (writing ``5`` to ``/proc/self/clear_refs``), so a
peak can be taken over one phase (serving) and not include an earlier one (importing, building).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CPU_ALLOCATION_FAILURE",
    "MemorySampler",
    "evict_from_page_cache",
    "is_cuda_error",
    "is_out_of_memory",
    "mapped_file_bytes",
    "memory_ratio",
    "process_memory",
    "release_freed_memory",
    "reset_peak",
]

CPU_ALLOCATION_FAILURE = "can't allocate memory"  # the CPU allocator's RuntimeError text
# cuBLAS and cuDNN report a failed allocation of their own (handles, workspaces) as a status, not as
# torch's OutOfMemoryError: the device is as full, so a batch search counts them as out of memory too.
LIBRARY_ALLOCATION_FAILURES = ("CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED")
STATUS_FIELDS = {"VmRSS": "rss", "VmHWM": "peak_rss", "RssAnon": "anon", "RssFile": "file", "RssShmem": "shmem"}


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA raises torch.OutOfMemoryError; the CPU allocator a plain RuntimeError; Python MemoryError."""
    if isinstance(error, MemoryError):
        return True
    if type(error).__name__ == "OutOfMemoryError":
        return True
    if any(status in str(error) for status in LIBRARY_ALLOCATION_FAILURES):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and (CPU_ALLOCATION_FAILURE in text or "out of memory" in text)


def is_cuda_error(error: BaseException) -> bool:
    """An error after which the process's CUDA context may be unusable (illegal access, device assert).

    torch raises ``torch.AcceleratorError`` for these (older releases: a RuntimeError that says
    "CUDA error"); the worker that saw one is replaced, since every later CUDA call in it may fail."""
    return type(error).__name__ in ("AcceleratorError", "CudaError") or "CUDA error" in str(error)


def process_memory(pid: int | str = "self") -> dict[str, int]:
    """Resident memory of a process now, in bytes: rss, peak_rss (VmHWM), anon, file, shmem."""
    figures: dict[str, int] = {}
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # not Linux, or the process is gone
        return figures
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in STATUS_FIELDS:
            figures[STATUS_FIELDS[key]] = int(value.split()[0]) * 1024
    return figures


def mapped_file_bytes(roots: list[str], pid: int | str = "self") -> int:
    """Resident bytes of file mappings under ``roots`` (a model's safetensors, an artifact directory),
    from ``/proc/PID/smaps``: the model's own file-backed pages, without the libraries' code pages."""
    prefixes = tuple(str(Path(root).resolve()) + os.sep for root in roots)
    total, inside = 0, False
    try:
        lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5 and fields[0][0] in "0123456789abcdef":
            inside = len(fields) >= 6 and fields[5].startswith(prefixes)  # a mapping's header line
        elif inside and fields[:1] == ["Rss:"]:
            total += int(fields[1]) * 1024
    return total


def reset_peak() -> bool:
    """Rewind this process's VmHWM to its current RSS; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def evict_from_page_cache(location: Path) -> int:
    """Drop the clean, unmapped page-cache pages of the files under ``location``; the bytes of files
    advised. Then the next process to read them is charged for them (a memory cgroup counts the page
    cache its processes read in), whoever read them before."""
    files = [location] if location.is_file() else [p for p in location.rglob("*") if p.is_file()]
    advised = 0
    for path in files:
        with contextlib.suppress(OSError, AttributeError):  # AttributeError: no posix_fadvise here
            descriptor = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
                advised += os.fstat(descriptor).st_size
            finally:
                os.close(descriptor)
    return advised


def release_freed_memory() -> None:
    """Collect garbage and hand freed heap back to the OS, so RSS shows what the variant holds rather
    than what glibc kept from transient copies (quantize_dynamic copies the fp32 model first)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: figures include retained heap
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@dataclass
class MemorySampler:
    """Samples another process's ``/proc/PID/status`` every ``interval`` seconds on a thread.

    Timestamps are ``time.monotonic()`` (CLOCK_MONOTONIC, shared by every process on the machine), so
    the worker can name a phase by its start and end and ``peak_in`` reads the samples inside it."""

    pid: int
    interval: float = 0.005
    samples: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> MemorySampler:
        self._thread = threading.Thread(target=self._run, name=f"perfgate-memory-{self.pid}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            figures = process_memory(self.pid)
            if not figures:
                return  # the process is gone
            self.samples.append((time.monotonic(), figures))
            self._stop.wait(self.interval)

    def peak_in(self, start: float, end: float) -> dict[str, Any]:
        """The sample with the largest RSS between ``start`` and ``end``, and each kind's own maximum."""
        window = [figures for stamp, figures in self.samples if start <= stamp <= end]
        if not window:
            return {"samples": 0, "interval_seconds": self.interval}
        top = max(window, key=lambda f: f.get("rss", 0))
        return {
            "samples": len(window),
            "interval_seconds": self.interval,
            "at_peak": {k: top.get(k, 0) for k in ("rss", "anon", "file", "shmem")},
            "max": {k: max(f.get(k, 0) for f in window) for k in ("rss", "anon", "file", "shmem")},
        }


DEVICE_MEMORY = "cuda_peak_allocated"  # what a memory check judges on CUDA


def memory_ratio(baseline: dict[str, Any], candidate: dict[str, Any], host_field: str, device: str) -> dict[str, Any]:
    """The candidate's memory over fp32's as a check judges it, and which figure that is: on CUDA the
    device's peak allocated by torch over the same window (what decides whether it fits the GPU), with
    the host figure's ratio kept beside it; elsewhere ``host_field``."""

    def ratio(field: str) -> float | None:
        base, cand = baseline.get(field), candidate.get(field)
        return cand / base if base and cand is not None and base > 0 else None

    if not device.startswith("cuda"):
        return {"ratio": ratio(host_field), "judged": host_field}
    return {"ratio": ratio(DEVICE_MEMORY), "judged": DEVICE_MEMORY, "host_ratio": ratio(host_field)}
