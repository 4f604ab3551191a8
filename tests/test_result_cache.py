"""The result-cache scenario: a seeded stream with the asked-for repeat rate, the predicted gain, and
one real run on the micro model in this process."""

from __future__ import annotations

import pytest

from perfgate.engine.metrics.result_cache import ResultCacheGain
from perfgate.engine.scenarios.result_cache import ResultCache, predicted_gain, request_stream

POOL = [f"sentence {i}" for i in range(2000)]


def test_the_stream_repeats_about_as_often_as_asked_and_is_seeded():
    stream = request_stream(POOL, 2000, 0.4, seed=3)
    repeats = len(stream) - len(set(stream))
    assert repeats / len(stream) == pytest.approx(0.4, abs=0.03)
    assert stream == request_stream(POOL, 2000, 0.4, seed=3)
    assert stream != request_stream(POOL, 2000, 0.4, seed=4)
    assert len(set(request_stream(POOL, 50, 0.0, seed=0))) == 50


def test_a_pool_too_small_for_the_stream_is_refused():
    with pytest.raises(ValueError, match="too few distinct texts for 20 requests"):
        request_stream(POOL[:5], 20, 0.0, seed=0)


def test_the_prediction_is_one_over_the_share_of_misses_plus_the_lookup():
    assert predicted_gain(0.4, 0.010, 0.0) == pytest.approx(1 / 0.6)
    assert predicted_gain(0.0, 0.010, 0.001) == pytest.approx(10 / 11)  # no hits: the cache only costs
    assert predicted_gain(0.5, 0.010, 0.001) == pytest.approx(10 / 6)


def test_a_cached_stream_of_the_micro_model_hits_what_the_stream_repeats(micro_model_dir):
    from perfgate.engine.scenarios import WorkerState
    from perfgate.subjects.catalogue import import_path

    stream = request_stream(POOL, 64, 0.4, seed=0)
    payload = {
        "model": {"name": "micro", "task": "text-classification", "location": str(micro_model_dir), "device": "cpu"},
        "technique": import_path("fp32-eager"), "workdir": "/tmp", "threads": 1, "stream": stream,
        "cache_entries": 1024, "repeat_rate": 0.4, "policy": {"seed": 0, "budget_seconds": 1.0, "min_pairs": 4},
    }  # fmt: skip
    data = ResultCache().run(payload, WorkerState())
    assert data["hits"] == len(stream) - len(set(stream))
    assert data["distinct"] == len(set(stream))
    assert data["predicted_gain"] > 1
    assert data["measured"]["ci_low"] <= data["measured"]["speedup"] <= data["measured"]["ci_high"]
    cell = ResultCacheGain().cells(data)["cache"]
    assert f"at {data['hit_rate']:.0%} hits" in cell
    small = ResultCache().run({**payload, "cache_entries": 2}, WorkerState())
    assert small["hits"] < data["hits"], "a two-entry LRU evicts most repeats before they come back"
