"""Energy per inference on NVIDIA GPUs, from NVML's total-energy counter (millijoules since the driver
loaded, Volta and later), beside latency: a technique that is faster but draws more power shows it.

The counter updates every few tens of milliseconds, so each arm runs for at least ``min_seconds`` per
round, and the rounds alternate arms (ABBA) as the timing does, so drift in clocks and temperature hits
both alike. The figure is joules per call, the median over rounds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

__all__ = ["energy_per_call", "interleaved_energy", "nvml_energy_counter"]

Counter = Callable[[], float]  # joules consumed so far, monotonic


def nvml_energy_counter(device: str = "cuda") -> tuple[Counter | None, str]:
    """A reader of the energy counter of torch's CUDA ``device`` in joules (found by UUID: ``nvml.py``),
    or None and the reason there is none."""
    try:
        import pynvml
    except ImportError:
        return None, "nvidia-ml-py is not installed"
    from perfgate.instruments.nvml import device_uuid, nvml_handle

    try:
        pynvml.nvmlInit()
        handle = nvml_handle(pynvml, device_uuid(device))
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # raises where the GPU lacks the counter
    except Exception as error:  # no driver, or NVMLError_NotSupported on pre-Volta GPUs
        return None, f"NVML energy counter unavailable: {type(error).__name__}: {error}"
    return (lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0), ""


def energy_per_call(
    work: Callable[[], object], counter: Counter, clock: Callable[[], float] = time.perf_counter,
    min_seconds: float = 1.0, synchronize: Callable[[], None] = lambda: None,
) -> float:  # fmt: skip
    """Joules per call of ``work``, over at least ``min_seconds`` of calls."""
    synchronize()
    start_energy, start, calls = counter(), clock(), 0
    while True:
        work()
        calls += 1
        if clock() - start >= min_seconds:
            break
    synchronize()
    return (counter() - start_energy) / calls


def interleaved_energy(
    baseline: Callable[[], object], candidate: Callable[[], object], counter: Counter, rounds: int = 2, **options: Any
) -> dict[str, Any]:
    """Both arms' joules per call (median over ABBA rounds) and candidate/baseline."""
    samples: dict[str, list[float]] = {"baseline": [], "candidate": []}
    for index in range(rounds):
        order = ("baseline", "candidate") if index % 2 == 0 else ("candidate", "baseline")
        for arm in order:
            samples[arm].append(energy_per_call(baseline if arm == "baseline" else candidate, counter, **options))
    figures: dict[str, Any] = {arm: statistics.median(values) for arm, values in samples.items()}
    figures["ratio"] = figures["candidate"] / figures["baseline"] if figures["baseline"] > 0 else None
    figures["rounds"] = rounds
    return figures
