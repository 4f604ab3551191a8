"""The timer: warm-up until stable, blocks long enough to drown timer overhead, device sync.

The clock is injectable so the statistics above it can be tested with a fake clock and seeded noise.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["Clock", "Timer", "TimerSettings", "WarmUp", "busy_wait", "torch_threads"]

Clock = Callable[[], float]
Work = Callable[[], object]


@dataclass(frozen=True)
class TimerSettings:
    min_block_seconds: float = 0.02  # perf_counter costs ~100 ns: 0.02 s blocks make it <0.001%
    max_calls_per_block: int = 1000
    warmup_min_calls: int = 3
    warmup_window: int = 3
    warmup_tolerance: float = 0.10  # the last window's times agree within 10% of their median
    warmup_max_seconds: float = 15.0  # torch.compile's cold compile fits; a slower warm-up is reported


@dataclass(frozen=True)
class WarmUp:
    calls: int
    seconds: float
    per_call_seconds: float
    stable: bool


class Timer:
    def __init__(
        self,
        clock: Clock = time.perf_counter,
        synchronize: Callable[[], None] | None = None,
        settings: TimerSettings | None = None,
    ) -> None:
        self.clock = clock
        self.synchronize = synchronize or (lambda: None)
        self.settings = settings or TimerSettings()

    def time_block(self, work: Work, calls: int = 1) -> float:
        """Seconds per call, averaged over one block of ``calls`` back-to-back calls."""
        self.synchronize()
        start = self.clock()
        for _ in range(calls):
            work()
        self.synchronize()
        return (self.clock() - start) / calls

    def warm_up(self, work: Work) -> WarmUp:
        """Call ``work`` until its single-call times settle (caches, allocators, lazy init, JIT)."""
        s = self.settings
        start = self.clock()
        times: list[float] = []
        while True:
            times.append(self.time_block(work))
            window = times[-s.warmup_window :]
            if len(times) >= max(s.warmup_min_calls, s.warmup_window):
                middle = statistics.median(window)
                if middle > 0 and (max(window) - min(window)) <= s.warmup_tolerance * middle:
                    return WarmUp(len(times), self.clock() - start, middle, stable=True)
            if self.clock() - start >= s.warmup_max_seconds:
                return WarmUp(len(times), self.clock() - start, statistics.median(window), stable=False)

    def calls_per_block(self, per_call_seconds: float) -> int:
        if per_call_seconds <= 0:
            return self.settings.max_calls_per_block
        calls = math.ceil(self.settings.min_block_seconds / per_call_seconds)
        return max(1, min(calls, self.settings.max_calls_per_block))


def busy_wait(seconds: float, clock: Clock = time.perf_counter) -> None:
    """Spin (not sleep) so a planted slowdown costs CPU time like real work does."""
    deadline = clock() + seconds
    while clock() < deadline:
        pass


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run with ``threads`` intra-op threads (None keeps torch's choice); yields the count in effect."""
    import torch

    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def synchronizer(device: str) -> Callable[[], None]:
    """Waits for the device's queued work (CUDA), or does nothing (CPU runs synchronously)."""
    return cuda_synchronizer(device) or (lambda: None)


def cuda_synchronizer(device: str) -> Callable[[], None] | None:
    if not device.startswith("cuda"):
        return None
    import torch

    return lambda: torch.cuda.synchronize(device)
