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


@pytest.mark.cpu
@pytest.mark.parametrize(
    ("model", "strategy", "message"),
    [
        ("gpt2-missing-shard", "load-sharded", "names shard 'model-00002-of-00002.safetensors', which is missing"),
        ("gpt2-truncated", "load-safetensors", "model.safetensors': truncated: its header describes"),
        ("gpt2-124m-random", "planted-offload-below-largest-layer",
         "max_memory cpu=64 MB is smaller than its largest layer, transformer.wte (147 MB)"),
        ("gpt2-124m-random", "planted-offload-unwritable-folder", "the offload folder cannot be written"),
    ],
)  # fmt: skip
def test_a_bad_checkpoint_or_setting_is_an_outcome_with_its_message(perfgate, model, strategy, message):
    """Recorded as an error outcome naming the file or value and the fix; the cases after it still run."""
    result = perfgate.measure(model, strategy, scenario="load")
    assert result.outcome == "error", (result.outcome, result.detail)
    assert message in result.detail, result.detail
    assert "fix: " in result.detail
