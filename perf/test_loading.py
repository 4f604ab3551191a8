"""Loading big models: each strategy in a fresh worker on a seeded GPT-2 of 124 M parameters (498 MB
fp32), with load time, anonymous and file-backed peaks, placement, and outputs against the plain load."""

from __future__ import annotations

import pytest

STRATEGIES = ["load-safetensors", "load-sharded", "load-bin", "load-bf16", "load-offload", "load-dispatch"]


@pytest.mark.cpu
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_load_strategy_keeps_its_promise(perfgate, strategy):
    perfgate.gate("gpt2-124m-random", strategy, scenario="load")


@pytest.mark.cpu
def test_the_random_init_anti_pattern_fails_the_anonymous_peak_check(perfgate):
    result = perfgate.measure("gpt2-124m-random", "load-state-dict", scenario="load")
    failed = {check.name for check in result.failures()}
    assert "max_load_anon_ratio" in failed, result.checks
