"""Loading big models: each strategy in a fresh worker on a seeded GPT-2 of 124 M parameters (474 MiB
fp32), with load time, anonymous and file-backed peaks, placement, and outputs against the plain load;
the same strategies under a memory cap of about half the model; bad checkpoints and settings as outcomes."""

from __future__ import annotations

import pytest

NIGHTLY = pytest.mark.slow  # kept out of the 15-minute main job
# Sharded, bf16 and offload nightly too (60 s on cpu-avx2): the main job on cpu-avx2 (28 min, 2026-12-02) must fit 15.
STRATEGIES = ["load-safetensors", *(pytest.param(s, marks=NIGHTLY) for s in ("load-sharded", "load-bin", "load-bf16",
              "load-offload", "load-dispatch"))]  # fmt: skip


@pytest.mark.cpu
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_load_strategy_keeps_its_promise(perfgate, strategy):
    perfgate.gate("gpt2-124m-random", strategy, scenario="load")


@pytest.mark.cpu
def test_the_random_init_anti_pattern_holds_a_second_full_copy_in_anonymous_memory(perfgate):
    """Random init allocates every weight in anonymous memory before the state dict is copied in: its
    anonymous peak is at least the stored bytes on any machine (memory-mapped loads stay near 0.15x).
    Where the class has a bound for the memory-mapped promise, the check against it fails too."""
    result = perfgate.measure("gpt2-124m-random", "load-state-dict", scenario="load")
    assert result.outcome == "measured", result.detail
    ratio = result.metrics["load"]["anon_peak_ratio"]
    assert ratio >= 1.0, f"anonymous peak {ratio:.2f}x the stored weights: the second full copy went unseen"
    if "max_load_anon_ratio" in result.thresholds["values"]:
        assert "max_load_anon_ratio" in {check.name for check in result.failures()}, result.checks


@pytest.mark.cpu
@pytest.mark.parametrize(
    ("model", "strategy", "message"),
    [
        ("gpt2-missing-shard", "load-sharded", "names shard 'model-00002-of-00002.safetensors', which is missing"),
        ("gpt2-truncated", "load-safetensors", "model.safetensors': truncated: its header describes"),
        ("gpt2-124m-random", "planted-offload-below-largest-layer",
         "max_memory cpu=64 MiB is smaller than its largest layer, transformer.wte (147 MiB)"),
        ("gpt2-124m-random", "planted-offload-unwritable-folder", "the offload folder cannot be written"),
    ],
)  # fmt: skip
def test_a_bad_checkpoint_or_setting_is_an_outcome_with_its_message(perfgate, model, strategy, message):
    """Recorded as an error outcome naming the file or value and the fix; the cases after it still run."""
    result = perfgate.measure(model, strategy, scenario="load")
    assert result.outcome == "error", (result.outcome, result.detail)
    assert message in result.detail, result.detail
    assert "fix: " in result.detail


def memory_cgroup_or_skip() -> None:
    from perfgate.instruments.cgroup import CgroupUnavailable, MemoryCgroup

    try:
        MemoryCgroup.create().remove()
    except CgroupUnavailable as error:
        pytest.skip(f"loading under a cap needs a memory cgroup for the worker: {error}")


@pytest.mark.cpu
@pytest.mark.slow  # 7 fresh workers, the mapped loads thrashing under the cap: ~1 min
@pytest.mark.parametrize(
    ("strategy", "fits"),
    [
        # Memory-mapped loads need ~70 MiB of anonymous memory: the kernel drops and rereads weight
        # pages to stay under the cap (measured: the first forward then takes 0.6-3.0 s instead of 0.2).
        ("load-safetensors", True), ("load-sharded", True), ("load-bin", True), ("load-offload", True),
        ("load-state-dict", False),  # every weight copied into anonymous memory, twice at its peak (~640 MiB)
        # Reported, not asserted: their anonymous peaks (bf16 ~280 MiB, dispatch 240-320 MiB) sit near the
        # 256 MiB cap (measured: bf16 killed, dispatch fitted).
        ("load-bf16", None), ("load-dispatch", None),
    ],
)  # fmt: skip
def test_which_strategies_load_in_about_half_the_models_size(perfgate, strategy, fits):
    memory_cgroup_or_skip()
    result = perfgate.measure("gpt2-124m-random", strategy, scenario="load-under-cap")
    assert result.outcome == "measured", result.detail
    figures = result.metrics["load_under_cap"]
    if fits is not None:
        assert figures["fits"] is fits, figures


@pytest.mark.cpu
@pytest.mark.slow  # ~45 s: 67 against 160 ms per forward pass
def test_what_an_offloaded_model_costs_per_forward_pass(perfgate):
    """Offload is a memory technique; its cost is time: the offloaded model (200 MiB in RAM, the rest read
    from the offload folder on every forward) timed ABBA against the in-memory fp32 model. Measured on
    cpu-amx, batch 1: 0.42-0.45x (67 ms against 160 ms)."""
    result = perfgate.gate("gpt2-124m-random", "load-offload", memory=False)
    assert result.variant["placement_bytes"]["disk"] > 0


@pytest.mark.gpu
@pytest.mark.parametrize("strategy", ["load-safetensors", "load-gpu-cpu-disk"])
def test_loading_onto_a_gpu(perfgate, strategy):
    """On a GPU: the plain load, and one split across GPU (150 MiB), CPU (150 MiB) and disk; peak allocated
    per device beside the placement. Not measured on a GPU yet: measured, not gated."""
    result = perfgate.gate("gpt2-124m-random", strategy, scenario="load", device="cuda")
    figures = result.metrics["load"]
    assert figures["cuda_peak_allocated"]["cuda:0"] > 0
    if strategy == "load-gpu-cpu-disk":
        assert set(figures["details"]["placement_bytes"]) >= {"cuda:0", "cpu", "disk"}
