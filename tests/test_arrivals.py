"""The trace-driven batcher: who rides in which batch, and what each request waits, on planted
arrival times and service times."""

from __future__ import annotations

import itertools

import pytest

from perfgate.engine.metrics.arrivals import DynamicBatching, pays_from
from perfgate.engine.scenarios.arrivals import poisson_arrivals, serve


def fixed_cost(per_batch: float = 0.010, per_item: float = 0.001):
    def run(indices: list[int]) -> float:
        return per_batch + per_item * len(indices)

    return run


def test_a_burst_leaves_in_full_batches_at_once():
    served = serve([0.0] * 10, largest=4, wait=0.5, run_batch=fixed_cost())
    assert served.batch_sizes == [4, 4, 2]
    assert served.latencies[0] == pytest.approx(0.014)  # full at t=0: no wait
    assert served.latencies[9] == pytest.approx(0.5 + 0.012), "the last two wait out T from their arrival"


def test_sparse_requests_wait_t_alone_under_a_batcher_and_not_at_all_at_batch_one():
    arrivals = [0.0, 1.0, 2.0]
    batched = serve(arrivals, largest=8, wait=0.020, run_batch=fixed_cost())
    assert batched.batch_sizes == [1, 1, 1]
    assert batched.latencies == pytest.approx([0.031] * 3)  # T, then a batch of one
    single = serve(arrivals, largest=1, wait=0.0, run_batch=fixed_cost())
    assert single.latencies == pytest.approx([0.011] * 3)


def test_a_backlog_leaves_at_once_with_whatever_has_arrived():
    arrivals = [0.0, 0.001, 0.002, 0.003, 0.004]
    served = serve(arrivals, largest=8, wait=0.0, run_batch=fixed_cost(per_batch=0.1))
    assert served.batch_sizes == [1, 4]  # the first alone (T=0); the rest queued behind it
    assert served.latencies[4] == pytest.approx(0.101 + 0.104 - 0.004)


def test_poisson_arrivals_come_at_the_asked_rate_and_are_seeded():
    times = poisson_arrivals(100.0, 5000, seed=1)
    assert len(times) / times[-1] == pytest.approx(100.0, rel=0.05)
    assert times == poisson_arrivals(100.0, 5000, seed=1)
    assert all(b > a for a, b in itertools.pairwise(times))


def row(load: float, batch: int, p99: float) -> dict:
    return {"load": load, "rate": load * 100, "batch": batch, "wait_ms": 10.0 if batch > 1 else 0.0,
            "latency_p50_ms": p99 / 2, "latency_p99_ms": p99, "throughput": 100.0, "mean_batch": 1.0}  # fmt: skip


def test_batching_pays_from_the_first_load_where_it_beats_batch_one_at_p99():
    figures = {"capacity_b1": 100.0, "rows": [row(0.5, 1, 12), row(0.5, 8, 25), row(1.5, 1, 900), row(1.5, 8, 60)]}
    assert pays_from(figures) == (1.5, 8, 10.0)
    assert DynamicBatching().cells(figures) == {"dynamic batching": "pays from 1.5x b1 capacity (B8, T10 ms)"}
    never = {"capacity_b1": 100.0, "rows": [row(0.5, 1, 12), row(0.5, 8, 25)]}
    assert pays_from(never) is None


def test_the_scenario_serves_every_load_and_setting_on_the_micro_model(micro_model_dir):
    from perfgate.engine.scenarios import WorkerState
    from perfgate.engine.scenarios.arrivals import REQUESTS, Arrivals
    from perfgate.subjects.catalogue import import_path

    payload = {
        "model": {"name": "micro", "task": "text-classification", "location": str(micro_model_dir), "device": "cpu"},
        "technique": import_path("fp32-eager"), "workdir": "/tmp", "threads": 1, "policy": {"seed": 0},
        "eval_texts": ["The train was late.", "Rain.", "A longer sentence that needs some padding in a batch."],
        "loads": [0.5, 3.0], "settings": [[1, 0.0], [8, 10.0]],
    }  # fmt: skip
    data = Arrivals().run(payload, WorkerState())
    assert data["capacity_b1"] > 0
    rows = {(row["load"], row["batch"]): row for row in data["rows"]}
    assert set(rows) == {(0.5, 1), (0.5, 8), (3.0, 1), (3.0, 8)}
    assert rows[(0.5, 1)]["mean_batch"] == 1.0
    assert rows[(3.0, 8)]["mean_batch"] > 1.5, "at three times batch 1's capacity requests queue and batch up"
    # The median, not p99: beside a CPU hog one 400 ms stall made the light load's p99 twice the overloaded
    # one's (CI, 2026-12-07); at three times batch 1's capacity half the 96 requests wait for ~30 services
    overloaded, light = rows[(3.0, 1)]["latency_p50_ms"], rows[(0.5, 1)]["latency_p50_ms"]
    assert overloaded > light, "batch 1 overloaded: its queue grows"
    assert data["requests"] == REQUESTS
