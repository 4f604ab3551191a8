"""Batch-size sweep: throughput and per-item latency of one variant over batch sizes and input orders.

The same sentences served three ways: in a seeded random order, each batch padded to its longest
sentence; sorted by length (dynamic shapes, little padding); every batch padded to 128 tokens. Batching
is "either a 10x speedup or a 5x slowdown depending on hardware, data and model": the sweep measures
which, on this machine. All (order, batch size) combinations are timed in shuffled round-robin
passes over the whole set until the budget is spent, so drift reaches every combination alike; a
combination's throughput is items over the median pass time, and an item's latency is the time of
the batch it rode in (it waits for the whole batch), as p50 and p99 over batches.

The two gains (the sorted order's best batch over its batch 1; sorted over random at the largest batch)
come with intervals from the passes, paired within each pass as the A/B pairs are. With the nightly's
``--perfgate-precision`` the sweep measures on until both intervals are within it, or the whole budget
is spent; without it, it stops after half the budget, as an ungated A/B case does.
"""

from __future__ import annotations

import functools
import random
import time
from typing import TYPE_CHECKING, Any

from perfgate.engine.scenarios.contract import Isolation, Scenario

if TYPE_CHECKING:
    from perfgate.engine.scenarios.contract import CaseContext, WorkerState

ORDERS = ("random", "sorted", "fixed-128")
FIXED_LENGTH = 128
MIN_PASSES = 3


class BatchSweep(Scenario):
    name = "batch-sweep"
    isolation = Isolation.SHARED

    def conduct(self, case: CaseContext) -> None:
        """The case's ``batch_size`` is the largest of the sweep: 1, 2, 4, ... up to it."""
        sizes = [2**k for k in range(case.spec.batch_size.bit_length()) if 2**k <= case.spec.batch_size]
        data = case.submit(self, case.payload(batch_sizes=sizes, orders=list(ORDERS)))
        if data is not None:
            case.result.metrics["batch_sweep"] = data

    def run(self, payload: dict[str, Any], state: WorkerState) -> dict[str, Any]:
        import numpy as np

        from perfgate.instruments.timing import Timer, cuda_synchronizer, torch_threads

        timer = Timer(synchronize=cuda_synchronizer(payload["model"]["device"]))
        with torch_threads(payload["threads"]) as threads:
            model = state.model(payload["model"])
            variant = state.variant(model, payload["technique"], payload["workdir"], payload["threads"])
            texts = list(payload["eval_texts"])
            lengths = [len(model.tokenizer(text)["input_ids"]) for text in texts]
            plans = {
                (order, size): _batches(texts, lengths, order, size, payload["policy"]["seed"])
                for order in payload["orders"]
                for size in payload["batch_sizes"]
            }
            inputs = {
                key: [model.inputs(batch, FIXED_LENGTH if key[0] == "fixed-128" else None) for batch in batches]
                for key, batches in plans.items()
            }
            padded = {key: _padding_share(batches) for key, batches in inputs.items()}
            for batches in inputs.values():  # warm-up: every shape once
                for batch in batches:
                    variant.run(batch)
            passes: dict[tuple[str, int], list[float]] = {key: [] for key in inputs}
            per_batch: dict[tuple[str, int], list[float]] = {key: [] for key in inputs}
            rng = random.Random(payload["policy"]["seed"])
            start = time.perf_counter()
            precision = payload["policy"].get("precision")
            # 15 combinations share the budget, 3 passes each at least; half of it unless a precision is asked
            budget = payload["policy"]["budget_seconds"] / (1 if precision else 2)
            stop_reason = f"{budget:g} s spent"
            while min(map(len, passes.values())) < MIN_PASSES or time.perf_counter() - start < budget:
                keys = list(inputs)
                rng.shuffle(keys)
                for key in keys:
                    times = [timer.time_block(functools.partial(variant.run, batch)) for batch in inputs[key]]
                    passes[key].append(sum(times))
                    per_batch[key].extend(times)
                enough = min(map(len, passes.values())) >= MIN_PASSES
                if precision and enough and within(gain_estimates(passes, payload["policy"]["seed"]), precision):
                    stop_reason = f"both gains within ±{precision * 100:g}%"
                    break
            else:
                if precision:
                    stop_reason = f"budget spent before ±{precision * 100:g}%"
        rows = []
        for (order, size), seconds in passes.items():
            latencies = np.asarray(per_batch[(order, size)])
            rows.append({
                "order": order, "batch_size": size, "passes": len(seconds),
                "items_per_second": len(texts) / float(np.median(seconds)),
                "latency_p50_ms": 1000 * float(np.percentile(latencies, 50)),
                "latency_p99_ms": 1000 * float(np.percentile(latencies, 99)),
                "padding_share": padded[(order, size)],
            })  # fmt: skip
        return {
            "items": len(texts), "threads": threads, "rows": rows, "seconds": time.perf_counter() - start,
            "seed": payload["policy"]["seed"],  # the random order's shuffle: the run can be replayed
            "gains": gain_estimates(passes, payload["policy"]["seed"]), "stop_reason": stop_reason,
        }  # fmt: skip


def gain_estimates(passes: dict[tuple[str, int], list[float]], seed: int = 0) -> dict[str, dict[str, Any]]:
    """The batching gain (sorted order: batch 1's pass time over the best batch size's) and the sorting
    gain (random over sorted at the largest batch size), each a paired estimate over the passes with its
    interval, as ``estimate_speedup`` makes of A/B pairs."""
    import statistics

    from perfgate.instruments.comparison import ComparePolicy, estimate_speedup

    policy = ComparePolicy(seed=seed)
    gains: dict[str, dict[str, Any]] = {}
    sorted_sizes = sorted(size for order, size in passes if order == "sorted")
    if ("sorted", 1) in passes and sorted_sizes and len(passes[("sorted", 1)]) >= 2:
        best = min(sorted_sizes, key=lambda size: statistics.median(passes[("sorted", size)]))
        estimate = estimate_speedup(passes[("sorted", 1)], passes[("sorted", best)], policy).to_dict()
        gains["batching"] = {**estimate, "batch_size": best}
    largest = sorted_sizes[-1] if sorted_sizes else 0
    if largest >= 2 and ("random", largest) in passes and len(passes[("random", largest)]) >= 2:
        estimate = estimate_speedup(passes[("random", largest)], passes[("sorted", largest)], policy).to_dict()
        gains["sorting"] = {**estimate, "batch_size": largest}
    return gains


def within(gains: dict[str, dict[str, Any]], precision: float) -> bool:
    """Every gain's interval within ±precision of itself (the half-width of its log interval)."""
    import math

    return bool(gains) and all(math.log(g["ci_high"] / g["ci_low"]) / 2 <= precision for g in gains.values())


def _batches(texts: list[str], lengths: list[int], order: str, size: int, seed: int) -> list[list[str]]:
    indices = list(range(len(texts)))
    if order == "sorted":
        indices.sort(key=lambda i: lengths[i])
    else:
        random.Random(seed).shuffle(indices)
    return [[texts[i] for i in indices[start : start + size]] for start in range(0, len(indices), size)]


def _padding_share(batches: list[dict[str, Any]]) -> float:
    """Padded positions over all positions the model computes on."""
    total = real = 0
    for batch in batches:
        mask = batch["attention_mask"]
        total += int(mask.numel())
        real += int(mask.sum())
    return 1 - real / total if total else 0.0
