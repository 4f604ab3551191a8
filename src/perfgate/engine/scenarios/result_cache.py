"""A bounded result cache in front of the model, under a request stream with repeats.

The stream is seeded: each request repeats an earlier one with probability ``repeat_rate`` (uniformly
among those seen), else it is a text not seen before. The cache is ``functools.lru_cache`` around the
model call, bounded in entries. Both arms replay the same stream in ABBA blocks in one worker (the
cached arm starts each block empty, so every block sees the same hits), and the measured gain is set
beside what the observed hit rate predicts: a fraction ``h`` of requests costs only a lookup, so the
stream takes ``(1 - h) * t_model + t_lookup`` per request instead of ``t_model``.
"""

from __future__ import annotations

import functools
import random
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from perfgate.engine.scenarios.contract import Isolation, Scenario

if TYPE_CHECKING:
    from perfgate.engine.scenarios.contract import CaseContext, WorkerState

REQUESTS = 64
REPEAT_RATE = 0.4
CACHE_ENTRIES = 1024


def request_stream(pool: list[str], requests: int, repeat_rate: float, seed: int) -> list[str]:
    """``requests`` texts: a repeat of an earlier request with probability ``repeat_rate``, else the next
    unseen text of ``pool`` (which must hold enough of them)."""
    rng = random.Random(seed)
    fresh = iter(dict.fromkeys(pool))
    stream: list[str] = []
    for _ in range(requests):
        if stream and rng.random() < repeat_rate:
            stream.append(rng.choice(stream))
        else:
            try:
                stream.append(next(fresh))
            except StopIteration:
                raise ValueError(f"the pool holds too few distinct texts for {requests} requests") from None
    return stream


def predicted_gain(hit_rate: float, model_seconds: float, lookup_seconds: float) -> float:
    """Uncached time over cached time per request, if a hit costs only the lookup."""
    return model_seconds / ((1 - hit_rate) * model_seconds + lookup_seconds)


class ResultCache(Scenario):
    name = "result-cache"
    isolation = Isolation.SHARED

    def conduct(self, case: CaseContext) -> None:
        from pathlib import Path

        from perfgate.instruments.fidelity import load_labelled_set

        source = case.payload()
        pool = list(source["eval_texts"])
        if source.get("labelled"):  # more distinct texts for a longer stream
            labelled = load_labelled_set(Path(source["labelled"]))
            pool += [*labelled.texts, *labelled.targets]
        payload = case.payload(
            stream=request_stream(pool, REQUESTS, REPEAT_RATE, source["policy"]["seed"]),
            cache_entries=CACHE_ENTRIES,
            repeat_rate=REPEAT_RATE,
        )
        data = case.submit(self, payload)
        if data is not None:
            case.result.metrics["result_cache"] = data

    def run(self, payload: dict[str, Any], state: WorkerState) -> dict[str, Any]:
        from perfgate.instruments.comparison import ComparePolicy, compare
        from perfgate.instruments.timing import Timer, cuda_synchronizer, torch_threads

        stream = payload["stream"]
        timer = Timer(synchronize=cuda_synchronizer(payload["model"]["device"]))
        policy = replace(ComparePolicy(), **payload["policy"])
        with torch_threads(payload["threads"]):
            model = state.model(payload["model"])
            variant = state.variant(model, payload["technique"], payload["workdir"], payload["threads"])
            inputs = {text: model.inputs([text]) for text in dict.fromkeys(stream)}  # tokenized once, outside

            def infer(text: str) -> Any:
                return variant.run(inputs[text])

            cached = functools.lru_cache(maxsize=payload["cache_entries"])(infer)

            def uncached_stream() -> None:
                for text in stream:
                    infer(text)

            def cached_stream() -> None:
                cached.cache_clear()  # every block replays the stream from an empty cache
                for text in stream:
                    cached(text)

            cached_stream()
            info = cached.cache_info()
            hit_rate = info.hits / len(stream)
            comparison = compare(uncached_stream, cached_stream, timer, None, policy)
            # One lookup's cost, from a warm cache: what a hit costs instead of the model.
            lookups = time.perf_counter()
            for text in stream:
                cached(text)
            lookup_seconds = (time.perf_counter() - lookups) / len(stream)
        model_seconds = comparison.latency("baseline").p50 / len(stream)
        assert comparison.estimate is not None
        return {
            "requests": len(stream),
            "seed": payload["policy"]["seed"],  # with requests and repeat_rate, the stream can be replayed
            "distinct": len(inputs),
            "repeat_rate": payload["repeat_rate"],
            "cache_entries": payload["cache_entries"],
            "hits": info.hits,
            "hit_rate": hit_rate,
            "model_ms_per_request": 1000 * model_seconds,
            "lookup_us": 1e6 * lookup_seconds,
            "predicted_gain": predicted_gain(hit_rate, model_seconds, lookup_seconds),
            "measured": comparison.estimate.to_dict(),
            "pairs": len(comparison.baseline_seconds),
        }
