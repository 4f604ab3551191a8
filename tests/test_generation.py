"""Per-token decoding in interleaved ABBA blocks, on a fake clock: the prefill cancels, the decode
speedup gets an interval, and a bound decides it either way."""

from __future__ import annotations

import numpy as np
import pytest

from perfgate.instruments.comparison import ComparePolicy
from perfgate.instruments.generation import DecodeArms, compare_decoding
from perfgate.instruments.outcome import Verdict
from tests.fakes import FakeClock, fake_timer

POLICY = ComparePolicy(budget_seconds=30.0, resamples=500)


def generator(clock: FakeClock, prefill: float, per_token: float, rng: np.random.Generator, sigma: float = 0.02):
    """Prefill yields the first token; each further token decodes; 2% noise on each call."""

    def generate(new_tokens: int) -> None:
        clock.advance((prefill + per_token * (new_tokens - 1)) * float(np.exp(sigma * rng.standard_normal())))

    return generate


def test_each_arm_s_prefill_cancels_and_its_per_token_time_is_what_decoding_costs():
    clock, rng = FakeClock(), np.random.default_rng(0)
    figures = compare_decoding(
        generator(clock, 0.050, 0.004, rng, sigma=0.0), generator(clock, 0.200, 0.004, rng, sigma=0.0),
        fake_timer(clock), None, POLICY, new_tokens=16,
    )  # fmt: skip
    assert figures["baseline"]["time_to_first_token"] == pytest.approx(0.050)
    assert figures["candidate"]["time_to_first_token"] == pytest.approx(0.200)
    assert figures["baseline"]["per_token"] == pytest.approx(0.004)
    assert figures["candidate"]["tokens_per_second"] == pytest.approx(250)
    assert figures["decode"]["estimate"]["speedup"] == pytest.approx(1.0), "a slower prefill is not slower decoding"
    assert figures["decode"]["verdict"] == Verdict.UNGATED


@pytest.mark.parametrize(("bound", "verdict"), [(0.75, Verdict.FAIL), (0.4, Verdict.PASS)])
def test_a_static_cache_twice_as_slow_per_token_is_decided_against_its_bound(bound, verdict):
    clock, rng = FakeClock(), np.random.default_rng(1)
    figures = compare_decoding(
        generator(clock, 0.050, 0.004, rng), generator(clock, 0.040, 0.008, rng), fake_timer(clock), bound, POLICY, 16
    )
    decode = figures["decode"]
    assert decode["estimate"]["speedup"] == pytest.approx(0.5, rel=0.03)
    assert decode["verdict"] == verdict
    assert decode["samples"]["unit"] == "seconds per decoded token"


def test_decoding_needs_at_least_two_tokens():
    with pytest.raises(ValueError, match="new_tokens=1"):
        DecodeArms({}, fake_timer(FakeClock()), new_tokens=1)
