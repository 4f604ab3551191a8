"""The batch sweep: how batches are formed per order, what padding costs, the metric's gain and cells,
and one real run on the micro model in this process."""

from __future__ import annotations

import pytest

from perfgate.engine.metrics.batch_sweep import BatchSweep as BatchSweepMetric
from perfgate.engine.metrics.batch_sweep import batching_gain
from perfgate.engine.scenarios.batch_sweep import BatchSweep, _batches

TEXTS = ["a b c d e f", "a", "a b c", "a b", "a b c d", "a b c d e"]
LENGTHS = [6, 1, 3, 2, 4, 5]


def test_sorted_batches_group_similar_lengths_and_random_ones_do_not():
    assert _batches(TEXTS, LENGTHS, "sorted", 2, seed=0) == [
        ["a", "a b"],
        ["a b c", "a b c d"],
        ["a b c d e", "a b c d e f"],
    ]
    shuffled = _batches(TEXTS, LENGTHS, "random", 2, seed=0)
    assert sorted(t for batch in shuffled for t in batch) == sorted(TEXTS)
    assert shuffled != _batches(TEXTS, LENGTHS, "sorted", 2, seed=0)
    assert [len(b) for b in _batches(TEXTS, LENGTHS, "sorted", 4, seed=0)] == [4, 2]


def row(order: str, size: int, items_per_second: float, padding: float) -> dict:
    return {"order": order, "batch_size": size, "items_per_second": items_per_second, "latency_p99_ms": 10.0 * size,
            "padding_share": padding}  # fmt: skip


def figures(single: float, best: float, at: int) -> dict:
    rows = [row("sorted", 1, single, 0.0), row("sorted", at, best, 0.1), row("random", at, best * 3, 0.5)]
    return {"items": 48, "rows": rows}


def test_the_gain_is_the_sorted_order_s_best_over_its_batch_one():
    assert batching_gain(figures(100.0, 190.0, 8)) == (pytest.approx(1.9), 8)
    assert batching_gain(figures(100.0, 60.0, 8)) == (1.0, 1), "batch 1 itself is the best: no gain"
    metric = BatchSweepMetric()
    # the random order is 3x the sorted one at b8 here: sorting's own gain is shown and bounded apart
    assert metric.cells(figures(100.0, 190.0, 8)) == {"batching": "1.90x at b8 (sorted); sorting 0.33x at b8"}
    batching, sorting = metric.measured(figures(100.0, 190.0, 8))
    assert (batching.name, batching.measured) == ("min_batching_gain", pytest.approx(1.9))
    assert (sorting.name, sorting.measured) == ("min_sorting_gain", pytest.approx(1 / 3))


def test_a_sweep_up_to_b8_runs_every_order_at_1_2_4_8_on_the_micro_model(micro_model_dir):
    from perfgate.engine.scenarios import WorkerState
    from perfgate.subjects.catalogue import import_path

    payload = {
        "model": {"name": "micro", "task": "text-classification", "location": str(micro_model_dir), "device": "cpu"},
        "technique": import_path("fp32-eager"), "workdir": "/tmp", "threads": 1,
        "eval_texts": ["The train was late this morning.", "Rain.", "Where did I put my keys?",
                       "A much longer sentence that needs far more padding than the others do."] * 3,
        "batch_sizes": [1, 2, 4, 8], "orders": ["random", "sorted", "fixed-128"],
        "policy": {"seed": 0, "budget_seconds": 0.5},
    }  # fmt: skip
    data = BatchSweep().run(payload, WorkerState())
    assert {(row["order"], row["batch_size"]) for row in data["rows"]} == {
        (order, size) for order in ("random", "sorted", "fixed-128") for size in (1, 2, 4, 8)
    }
    rows = {(row["order"], row["batch_size"]): row for row in data["rows"]}
    assert all(row["passes"] >= 3 and row["items_per_second"] > 0 for row in data["rows"])
    assert rows[("random", 1)]["padding_share"] == 0.0
    assert rows[("fixed-128", 1)]["padding_share"] > 0.8
    assert rows[("sorted", 4)]["padding_share"] < rows[("random", 4)]["padding_share"]
    assert rows[("sorted", 8)]["latency_p99_ms"] >= rows[("sorted", 8)]["latency_p50_ms"]
    gains = data["gains"]
    assert gains["batching"]["ci_low"] <= gains["batching"]["speedup"] <= gains["batching"]["ci_high"]
    assert gains["sorting"]["batch_size"] == 8
    assert data["stop_reason"] == "0.25 s spent"  # no precision asked: half the budget, as an ungated case


def planted_passes(spread: float, count: int) -> dict[tuple[str, int], list[float]]:
    """Pass times where batch 8 sorted runs twice as fast as batch 1, with seeded relative noise."""
    import random

    rng = random.Random(0)
    base = {("sorted", 1): 1.0, ("sorted", 8): 0.5, ("random", 8): 0.8}
    return {key: [t * (1 + rng.uniform(-spread, spread)) for _ in range(count)] for key, t in base.items()}


def test_the_gains_carry_paired_intervals_and_precision_is_met_only_by_enough_quiet_passes():
    from perfgate.engine.scenarios.batch_sweep import gain_estimates, within

    quiet = gain_estimates(planted_passes(0.01, 20))
    assert quiet["batching"]["speedup"] == pytest.approx(2.0, rel=0.03)
    assert quiet["batching"]["batch_size"] == 8
    assert quiet["sorting"]["speedup"] == pytest.approx(1.6, rel=0.03)
    assert within(quiet, 0.03)
    noisy = gain_estimates(planted_passes(0.3, 4))
    assert not within(noisy, 0.03)  # four noisy passes cannot claim ±3%
    assert not within({}, 0.03)


def test_the_sweep_measures_on_to_the_precision_asked(micro_model_dir):
    from perfgate.engine.scenarios import WorkerState
    from perfgate.subjects.catalogue import import_path

    payload = {
        "model": {"name": "micro", "task": "text-classification", "location": str(micro_model_dir), "device": "cpu"},
        "technique": import_path("fp32-eager"), "workdir": "/tmp", "threads": 1,
        "eval_texts": ["The train was late this morning.", "Rain.", "Where did I put my keys?"] * 2,
        "batch_sizes": [1, 2], "orders": ["random", "sorted", "fixed-128"],
        "policy": {"seed": 0, "budget_seconds": 0.6, "precision": 0.0001},
    }  # fmt: skip
    data = BatchSweep().run(payload, WorkerState())
    assert data["stop_reason"] == "budget spent before ±0.01%"  # the whole budget, not half of it
    assert data["seconds"] >= 0.6
