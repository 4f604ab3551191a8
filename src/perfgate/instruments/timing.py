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

__all__ = [
    "Clock",
    "Timer",
    "TimerSettings",
    "WarmUp",
    "busy_after",
    "busy_wait",
    "other_threads_cpu_seconds",
    "settle_seconds",
    "torch_threads",
]

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


QUIET_WINDOW_SECONDS = 0.005  # no other thread on a CPU for this long: the runtime's pool has gone to sleep
BUSY_CPU_SECONDS = 0.0001  # what a window may hold and still count as quiet (a timer tick, a stray wake-up)
SETTLE_LIMIT_SECONDS = 0.25  # the longest gap between two arms' blocks; a longer spin is capped and said


def other_threads_cpu_seconds() -> float | None:
    """CPU time every thread of this process but the calling one has used (Linux: ``schedstat``, in
    nanoseconds); None where the kernel does not say."""
    import os
    import threading

    me = threading.get_native_id()
    total = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    for task in tasks:
        if int(task) == me:
            continue
        try:
            with open(f"/proc/self/task/{task}/schedstat", encoding="ascii") as stat:
                total += int(stat.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return total / 1e9


def busy_after(
    work: Work,
    repeats: int = 5,
    clock: Clock = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
    cpu: Callable[[], float | None] = other_threads_cpu_seconds,
) -> float | None:
    """How long the process's other threads keep a CPU busy after ``work`` returns: a runtime's thread
    pool spinning for its next call (ONNX Runtime's by default, OpenMP's for a while). The longest of
    ``repeats`` calls, capped at ``SETTLE_LIMIT_SECONDS``; None where per-thread CPU time is unknown."""
    longest = 0.0
    for _ in range(repeats):
        work()
        start = last_busy = clock()
        before = cpu()
        if before is None:
            return None
        while clock() - last_busy < QUIET_WINDOW_SECONDS and clock() - start < SETTLE_LIMIT_SECONDS:
            sleep(QUIET_WINDOW_SECONDS / 10)
            now = cpu()
            if now is None:
                return None
            if now - before > BUSY_CPU_SECONDS:
                last_busy = clock()
            before = now
        longest = max(longest, last_busy - start)
    return min(longest, SETTLE_LIMIT_SECONDS)


def settle_seconds(busy: float | None) -> float:
    """The gap before the other arm's block: twice the measured spin (a spin stretches when the machine
    is busy), or the cap where the spin could not be measured."""
    if busy is None:
        return SETTLE_LIMIT_SECONDS
    return 0.0 if busy == 0 else min(2 * busy, SETTLE_LIMIT_SECONDS)


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
