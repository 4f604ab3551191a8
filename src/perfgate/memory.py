"""Memory of a variant, measured in a fresh subprocess per case, and the outcomes that are not results.

Safetensors weights are memory-mapped, so RSS right after loading is tiny; the probe loads the model,
applies the technique, drops the fp32 source when the variant no longer needs it, runs a forward
pass, and reports RSS growth (and USS, RssAnon) since before the load. On CUDA it adds the allocator's peak
and NVML's figure for the process. A subprocess also contains the failures: allocation failure becomes
outcome ``oom`` (with the batch size), a hang ``timeout``, a dead interpreter ``crashed``.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MemoryRequest", "Outcome", "is_out_of_memory", "process_memory", "run_probe"]

CPU_ALLOCATION_FAILURE = "can't allocate memory"  # the CPU allocator's RuntimeError text


class Outcome:
    MEASURED = "measured"
    OOM = "oom"
    TIMEOUT = "timeout"
    CRASHED = "crashed"
    ERROR = "error"


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA raises torch.OutOfMemoryError; the CPU allocator a plain RuntimeError; Python MemoryError."""
    if isinstance(error, MemoryError):
        return True
    if type(error).__name__ == "OutOfMemoryError":
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and (CPU_ALLOCATION_FAILURE in text or "out of memory" in text)


def process_memory() -> dict[str, int]:
    """This process's memory now, in bytes: USS, RssAnon, RSS and its high-water mark."""
    import psutil

    figures = {"uss": int(psutil.Process().memory_full_info().uss)}
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return figures
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "VmRSS", "VmHWM"):
            figures[key.lower()] = int(value.split()[0]) * 1024
    return figures


@dataclass(frozen=True)
class MemoryRequest:
    model: str
    task: str
    location: str
    technique: str  # "package.module:Class", importable in the subprocess
    texts: list[str]
    seq_len: int | None
    device: str
    threads: int | None
    workdir: str
    memory_headroom_bytes: int | None = None  # cap the forward pass's address space at (in use + this): a safe CPU OOM
    simulate_oom: bool = False  # raise the CPU allocator's error at the forward pass (harness tests)
    extra_sys_path: list[str] = field(default_factory=list)


def run_probe(request: MemoryRequest, timeout_seconds: float) -> dict[str, Any]:
    """Run the probe in a fresh interpreter; always returns a dict with an ``outcome``."""
    with tempfile.TemporaryDirectory(prefix="perfgate-memory-") as scratch:
        request_file, output_file = Path(scratch) / "request.json", Path(scratch) / "result.json"
        request_file.write_text(json.dumps(asdict(request)))
        command = [sys.executable, "-m", "perfgate.memory", str(request_file), str(output_file)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([*request.extra_sys_path, *sys.path])}
        try:
            completed = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout_seconds, env=env, check=False
            )
        except subprocess.TimeoutExpired:
            return {"outcome": Outcome.TIMEOUT, "detail": f"memory probe ran past {timeout_seconds:.0f} s"}
        if output_file.is_file():
            result: dict[str, Any] = json.loads(output_file.read_text())
            return result
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-5:]
        return {
            "outcome": Outcome.CRASHED,
            "detail": f"memory probe exited with code {completed.returncode}: " + " | ".join(tail),
        }


def _probe(request: MemoryRequest) -> dict[str, Any]:
    import torch

    from perfgate.model import load_model
    from perfgate.technique import load_technique
    from perfgate.timing import torch_threads

    technique = load_technique(request.technique)
    cuda = request.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats(request.device)
    before = process_memory()
    batch = len(request.texts)
    try:
        with torch_threads(request.threads):
            model = load_model(request.model, request.task, _location(request.location), request.device)
            variant = technique.apply(model, Path(request.workdir), request.threads)
            inputs = model.inputs(request.texts, request.seq_len)
            if variant.independent_of_source:
                model.module = None
            _release_freed_memory()
            if request.memory_headroom_bytes:  # after every import and load: only the forward pass is capped
                import resource

                limit = _address_space_bytes() + request.memory_headroom_bytes
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            if request.simulate_oom:
                raise RuntimeError(
                    f"[enforce fail at alloc_cpu.cpp:117] . DefaultCPUAllocator: {CPU_ALLOCATION_FAILURE}"
                )
            variant.run(inputs)
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        return {
            "outcome": Outcome.OOM,
            "batch_size": batch,
            "detail": str(error)[:300],
            "before": before,
            "at_failure": process_memory(),
        }
    _release_freed_memory()
    after = process_memory()
    result: dict[str, Any] = {
        "outcome": Outcome.MEASURED,
        "batch_size": batch,
        "before": before,
        "after": after,
        # RSS counts weights whether memory-mapped (fp32 safetensors) or anonymous (int8 copies); USS
        # would miss mapped pages the parent process shares, favouring the fp32 baseline.
        "rss_growth": after.get("vmrss", 0) - before.get("vmrss", 0),
        "uss_growth": after["uss"] - before["uss"],
        "anon_growth": after.get("rssanon", 0) - before.get("rssanon", 0),
        "peak_rss": after.get("vmhwm", 0),
    }
    if cuda:
        result["cuda_peak_allocated"] = int(torch.cuda.max_memory_allocated(request.device))
        result["cuda_peak_reserved"] = int(torch.cuda.max_memory_reserved(request.device))
        result["nvml_process_bytes"] = _nvml_process_bytes()
    return result


def _release_freed_memory() -> None:
    """Collect garbage and hand freed heap back to the OS, so RSS shows what the variant holds rather
    than what glibc kept from transient copies (quantize_dynamic copies the fp32 model first)."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: figures include retained heap, as RSS does elsewhere
        pass


def _address_space_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise OSError("VmSize not found in /proc/self/status")


def _location(location: str) -> Path | str:
    return Path(location) if Path(location).exists() else location


def _nvml_process_bytes() -> int | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            for process in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if process.pid == os.getpid():
                    return int(process.usedGpuMemory)
            return None
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # NVML missing or no driver: the allocator's figures still stand
        return None


def _main(request_path: str, output_path: str) -> None:
    request = MemoryRequest(**json.loads(Path(request_path).read_text()))
    result = _probe(request)
    staging = Path(output_path + ".tmp")
    staging.write_text(json.dumps(result))
    os.replace(staging, output_path)


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2])
