"""NVML for the GPU a case runs on: found by its UUID, never by CUDA's ordinal.

CUDA numbers the GPUs a process sees (after ``CUDA_VISIBLE_DEVICES``, fastest first by default); NVML
numbers every GPU on the host in PCI order. ``cuda:0`` of a worker placed on the host's third GPU is
NVML's index 2, so reading NVML "index 0" would measure another GPU. torch gives each device's UUID,
which NVML takes as it is (``GPU-…``), whatever either side's numbering.

NVML lists a GPU's processes by host PID; inside a container the worker's own PID is another number, so
a process's device memory falls back to the device's used memory, said so in ``by``: the GPU is this
process's alone while a case holds its lock (``launcher.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "clocks_and_power",
    "device_uuid",
    "nvml_handle",
    "nvml_uuid",
    "process_device_memory",
    "read_nvml",
    "throttle_reasons",
]

T = TypeVar("T")


def read_nvml(device: str, read: Callable[[Any, str], T]) -> T | dict[str, str]:
    """``read(pynvml, uuid)`` for torch's CUDA ``device``, NVML initialised around it; where NVML is
    missing or fails, ``{"unavailable": reason}`` (NVML's figures are informative: the allocator's stand)."""
    try:
        import pynvml
    except ImportError:
        return {"unavailable": "nvidia-ml-py is not installed"}
    try:
        uuid = device_uuid(device)
        pynvml.nvmlInit()
    except Exception as error:  # no driver
        return {"unavailable": f"NVML: {type(error).__name__}: {error}"}
    try:
        return read(pynvml, uuid)
    except Exception as error:
        return {"unavailable": f"NVML: {type(error).__name__}: {error}"}
    finally:
        pynvml.nvmlShutdown()


def device_uuid(device: str) -> str:
    """NVML's UUID string of torch's CUDA ``device`` (``cuda``, ``cuda:1``)."""
    import torch

    index = int(device.partition(":")[2] or 0)
    return nvml_uuid(str(torch.cuda.get_device_properties(index).uuid))


def nvml_uuid(torch_uuid: str) -> str:
    """torch prints a UUID bare; NVML's has the ``GPU-`` prefix (``MIG-`` for a MIG instance)."""
    return torch_uuid if torch_uuid.startswith(("GPU-", "MIG-")) else f"GPU-{torch_uuid}"


def nvml_handle(pynvml: Any, uuid: str) -> Any:
    return pynvml.nvmlDeviceGetHandleByUUID(uuid)


def process_device_memory(pynvml: Any, uuid: str, pid: int | None = None) -> dict[str, Any]:
    """Device memory NVML attributes to process ``pid`` (this one) on the GPU ``uuid``; where NVML shows
    no such PID (a container's PID namespace), the device's used memory, with ``by`` saying which."""
    pid = os.getpid() if pid is None else pid
    handle = nvml_handle(pynvml, uuid)
    processes = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
    for process in processes:
        if process.pid == pid:
            return {"bytes": int(process.usedGpuMemory), "by": "process", "uuid": uuid}
    used = int(pynvml.nvmlDeviceGetMemoryInfo(handle).used)
    return {
        "bytes": used,
        "by": f"device used (NVML lists {len(processes)} process(es), none with PID {pid}: a container's PIDs)",
        "uuid": uuid,
    }


def clocks_and_power(pynvml: Any, uuid: str) -> dict[str, Any]:
    """What bounds the GPU's speed at this moment: SM and memory clocks, power limit, throttle reasons."""
    handle = nvml_handle(pynvml, uuid)
    figures: dict[str, Any] = {"uuid": uuid}
    readers: dict[str, Callable[[], Any]] = {
        "sm_clock_mhz": lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
        "memory_clock_mhz": lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM),
        "max_sm_clock_mhz": lambda: pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM),
        "power_limit_w": lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0,
        "throttle_reasons": lambda: throttle_reasons(pynvml, pynvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle)),
    }
    for name, read in readers.items():
        try:
            figures[name] = read()
        except Exception as error:  # a field this GPU or driver does not report: say so, keep the rest
            figures[name] = f"unavailable: {type(error).__name__}"
    return figures


def throttle_reasons(pynvml: Any, mask: int) -> list[str]:
    """The names of the throttle reasons set in NVML's bit mask (``GpuIdle``, ``SwPowerCap``, ...)."""
    prefix = "nvmlClocksThrottleReason"
    names = [
        name[len(prefix) :]
        for name in dir(pynvml)
        if name.startswith(prefix) and name not in (f"{prefix}All", f"{prefix}None", f"{prefix}Unknown")
    ]
    return sorted(name for name in names if mask & int(getattr(pynvml, f"{prefix}{name}")))
