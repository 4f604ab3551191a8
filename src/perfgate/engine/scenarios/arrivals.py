"""Dynamic batching under arrivals: latency and throughput against the arrival rate, per (B, T).

Requests arrive as a seeded Poisson stream; a batcher takes up to ``B`` waiting requests, or fewer once
the oldest has waited ``T`` ms, and runs them as one padded batch. The run is trace-driven: arrival
times and waiting are on a virtual clock, and every batch is really run and timed, its measured time
advancing that clock. So the queueing is exact for the measured service times, and an hour of traffic
at a low rate does not take an hour. Rates are set relative to what batch 1 can serve (measured first),
from well below it to well above it: the point at which batching starts to pay, and what it costs in
latency below that point.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from perfgate.engine.scenarios.contract import Isolation, Scenario

if TYPE_CHECKING:
    from perfgate.engine.scenarios.contract import CaseContext, WorkerState

REQUESTS = 96
LOADS = (0.5, 0.9, 1.5, 3.0)  # arrival rate over batch 1's capacity
SETTINGS = ((1, 0.0), (4, 5.0), (8, 10.0), (16, 20.0))  # (largest batch B, longest wait T in ms)


@dataclass(frozen=True)
class Served:
    latencies: list[float]  # seconds from arrival to the end of its batch, in arrival order
    batch_sizes: list[int]
    span: float  # first arrival to last completion


def poisson_arrivals(rate: float, requests: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    now, times = 0.0, []
    for _ in range(requests):
        now += rng.expovariate(rate)
        times.append(now)
    return times


def serve(arrivals: Sequence[float], largest: int, wait: float, run_batch: Callable[[list[int]], float]) -> Served:
    """Replay ``arrivals`` through a batcher taking up to ``largest`` requests, or fewer once the oldest
    has waited ``wait`` seconds; ``run_batch(indices)`` serves one batch and returns its seconds."""
    clock, latencies, sizes = 0.0, [0.0] * len(arrivals), []
    next_up = 0
    while next_up < len(arrivals):
        clock = max(clock, arrivals[next_up])  # the server is free; the oldest waiting request is here
        deadline = arrivals[next_up] + wait
        full_at = arrivals[min(next_up + largest, len(arrivals)) - 1]
        # Leave when B requests are waiting or the oldest has waited T, whichever comes first (never
        # before now: a backlog leaves at once). Near the end of the stream fewer than B ever come.
        enough_left = len(arrivals) - next_up >= largest
        leave = max(clock, min(deadline, full_at) if enough_left else deadline)
        batch = [i for i in range(next_up, min(next_up + largest, len(arrivals))) if arrivals[i] <= leave]
        clock = leave + run_batch(batch)
        for i in batch:
            latencies[i] = clock - arrivals[i]
        sizes.append(len(batch))
        next_up += len(batch)
    return Served(latencies, sizes, clock - arrivals[0])


class Arrivals(Scenario):
    name = "arrivals"
    isolation = Isolation.SHARED

    def conduct(self, case: CaseContext) -> None:
        data = case.submit(self, case.payload(loads=list(LOADS), settings=[list(s) for s in SETTINGS]))
        if data is not None:
            case.result.metrics["arrivals"] = data

    def run(self, payload: dict[str, Any], state: WorkerState) -> dict[str, Any]:
        import numpy as np

        from perfgate.instruments.timing import Timer, cuda_synchronizer, torch_threads

        timer = Timer(synchronize=cuda_synchronizer(payload["model"]["device"]))
        seed = payload["policy"]["seed"]
        with torch_threads(payload["threads"]):
            model = state.model(payload["model"])
            variant = state.variant(model, payload["technique"], payload["workdir"], payload["threads"])
            pool = list(payload["eval_texts"])
            draw = random.Random(seed)
            texts = [draw.choice(pool) for _ in range(REQUESTS)]  # the real length distribution

            def run_batch(indices: list[int]) -> float:
                inputs = model.inputs([texts[i] for i in indices])
                return timer.time_block(lambda: variant.run(inputs))

            for text in pool:  # warm-up: every length once
                variant.run(model.inputs([text]))
            start = time.perf_counter()
            capacity = REQUESTS / sum(run_batch([i]) for i in range(REQUESTS))  # batch 1, back to back
            rows = []
            for load in payload["loads"]:
                arrivals = poisson_arrivals(load * capacity, REQUESTS, seed)
                for largest, wait_ms in payload["settings"]:
                    served = serve(arrivals, int(largest), wait_ms / 1000, run_batch)
                    latencies = np.asarray(served.latencies)
                    rows.append({
                        "load": load, "rate": load * capacity, "batch": int(largest), "wait_ms": wait_ms,
                        "latency_p50_ms": 1000 * float(np.percentile(latencies, 50)),
                        "latency_p99_ms": 1000 * float(np.percentile(latencies, 99)),
                        "throughput": REQUESTS / served.span,
                        "mean_batch": float(np.mean(served.batch_sizes)),
                    })  # fmt: skip
        return {
            "requests": REQUESTS, "capacity_b1": capacity, "rows": rows, "seconds": time.perf_counter() - start,
            "seed": seed,  # arrivals and texts: with the loads and settings, the workload can be replayed
        }  # fmt: skip
