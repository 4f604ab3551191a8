"""Generation latency: time to first token and per-token decoding, both arms interleaved.

Prefill (prompt plus the first token) and decoding cost differently, and techniques move them
differently (int8 helps the weight-bound decode steps more than the compute-bound prefill; a static KV
cache changes decoding only), so both are reported. ``generate`` is forced to produce exactly
``new_tokens`` (min = max, greedy). One timing block of an arm is ``generate(new_tokens)`` then
``generate(1)``; its per-token figure is ``(t(new_tokens) - t(1)) / (new_tokens - 1)``: the prefill
cancels. Blocks of both arms run in the same ABBA rounds as forward timing (``comparison.compare_blocks``),
so the decode speedup has an interval and a verdict against ``min_decode_speedup``.
"""

from __future__ import annotations

import gc
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from perfgate.instruments.comparison import COLLECT_EVERY_ROUNDS, ComparePolicy, Comparison, compare_blocks
from perfgate.instruments.timing import Timer, WarmUp

__all__ = ["DecodeArms", "GenerationLatency", "compare_decoding", "module_generator"]

Generate = Callable[[int], object]  # produce exactly this many new tokens
SMALLEST_PER_TOKEN = 1e-9  # seconds: a block whose noise swallowed the decoding still has a ratio


@dataclass(frozen=True)
class GenerationLatency:
    new_tokens: int
    samples: int
    time_to_first_token: float  # seconds, median
    per_token: float  # seconds per decoded token after the first, median
    tokens_per_second: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DecodeArms:
    """Both arms' decoding as the ABBA loop sees it (``comparison.BlockTimer``): a block is one
    ``generate(new_tokens)`` and one ``generate(1)`` of an arm, timed as seconds per decoded token."""

    generators: dict[str, Generate]
    timer: Timer
    new_tokens: int
    first_token: dict[str, list[float]] = field(default_factory=dict)  # generate(1) per block, by arm

    def __post_init__(self) -> None:
        if self.new_tokens < 2:
            raise ValueError(f"new_tokens={self.new_tokens!r}: at least 2, so decoding is measured apart from prefill")

    def warm_up(self, arm: str) -> WarmUp:
        generate = self.generators[arm]
        self.timer.warm_up(lambda: generate(self.new_tokens))
        warm = self.timer.warm_up(lambda: generate(1))  # a static cache sized by the token count compiles per count
        return WarmUp(warm.calls, warm.seconds, self.time_block(arm, 1), warm.stable)

    def time_block(self, arm: str, calls: int) -> float:
        generate = self.generators[arm]
        full = self.timer.time_block(lambda: generate(self.new_tokens))
        first = self.timer.time_block(lambda: generate(1))
        self.first_token.setdefault(arm, []).append(first)
        return max(full - first, SMALLEST_PER_TOKEN) / (self.new_tokens - 1)

    def calls_per_block(self, per_call_seconds: float) -> int:
        return 1  # a block already spans new_tokens + 1 generated tokens

    def between_rounds(self, rounds: int) -> None:
        if rounds % COLLECT_EVERY_ROUNDS == 0:
            gc.collect(0)

    def latency(self, comparison: Comparison, arm: str) -> GenerationLatency:
        per_token = statistics.median(
            comparison.baseline_seconds if arm == "baseline" else comparison.candidate_seconds
        )
        return GenerationLatency(
            new_tokens=self.new_tokens,
            samples=len(self.first_token[arm]),
            time_to_first_token=statistics.median(self.first_token[arm]),
            per_token=per_token,
            tokens_per_second=1 / per_token,
        )


def compare_decoding(
    baseline: Generate, candidate: Generate, timer: Timer, bound: float | None, policy: ComparePolicy, new_tokens: int
) -> dict[str, Any]:
    """Per-token decoding of both arms in ABBA rounds until ``bound`` (a decode speedup) is decided or the
    budget is spent; each arm's medians, and the comparison (samples, interval, verdict) under ``decode``."""
    arms = DecodeArms({"baseline": baseline, "candidate": candidate}, timer, new_tokens)
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        comparison = compare_blocks(arms, timer.clock, bound, policy)
    finally:
        if enabled:
            gc.enable()
    figures = {arm: arms.latency(comparison, arm).to_dict() for arm in ("baseline", "candidate")}
    decode = comparison.to_dict()
    decode["samples"]["unit"] = "seconds per decoded token"
    decode["samples"]["order"] = "ABBA rounds; each block generate(new_tokens) then generate(1)"
    return {**figures, "decode": decode}


def module_generator(module: Any, inputs: dict[str, Any], pad_token_id: int) -> Generate:
    """Greedy ``generate`` of exactly ``n`` new tokens for a transformers causal LM."""

    def generate(n: int) -> object:
        import torch

        with torch.inference_mode():
            return module.generate(
                **inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=pad_token_id
            )

    return generate
