"""Generation latency: time to first token and per-token latency with a fixed number of new tokens.

Prefill (prompt plus the first token) and decoding cost differently, and techniques move them
differently (int8 helps the weight-bound decode steps more than the compute-bound prefill), so both are
reported. ``generate`` is forced to produce exactly ``new_tokens`` (min = max, greedy), and the
per-token figure is ``(t(new_tokens) - t(1)) / (new_tokens - 1)``: the prefill cancels.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from perfgate.timing import Timer

__all__ = ["GenerationLatency", "measure_generation"]

Generate = Callable[[int], object]  # produce exactly this many new tokens


@dataclass(frozen=True)
class GenerationLatency:
    new_tokens: int
    samples: int
    time_to_first_token: float  # seconds, median
    per_token: float  # seconds per decoded token after the first, median
    tokens_per_second: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_generation(generate: Generate, timer: Timer, new_tokens: int = 16, samples: int = 5) -> GenerationLatency:
    if new_tokens < 2:
        raise ValueError(f"new_tokens={new_tokens!r}: at least 2, so decoding is measured apart from prefill")
    timer.warm_up(lambda: generate(new_tokens))
    timer.warm_up(lambda: generate(1))  # a static cache sized by the token count compiles per count
    first, full = [], []
    for _ in range(samples):  # alternate, so drift hits both figures alike
        first.append(timer.time_block(lambda: generate(1)))
        full.append(timer.time_block(lambda: generate(new_tokens)))
    ttft, total = statistics.median(first), statistics.median(full)
    per_token = max(total - ttft, 0.0) / (new_tokens - 1)
    return GenerationLatency(
        new_tokens=new_tokens,
        samples=samples,
        time_to_first_token=ttft,
        per_token=per_token,
        tokens_per_second=1 / per_token if per_token > 0 else float("inf"),
    )


def module_generator(module: Any, inputs: dict[str, Any], pad_token_id: int) -> Generate:
    """Greedy ``generate`` of exactly ``n`` new tokens for a transformers causal LM."""

    def generate(n: int) -> object:
        import torch

        with torch.inference_mode():
            return module.generate(
                **inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=pad_token_id
            )

    return generate
