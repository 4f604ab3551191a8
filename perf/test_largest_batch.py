"""The largest batch that fits under the same memory headroom, for a technique and for fp32 eager
(see scenarios/largest_batch.py for what the CPU cap counts and what it does not)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow  # ~30 fresh workers: one per try


def check_search(perfgate, model: str, technique: str, device: str) -> None:
    result = perfgate.gate(model, technique, scenario="largest-batch", device=device)
    figures = result.metrics["largest_batch"]
    for arm in ("baseline", "candidate"):
        tries = dict(figures[arm]["tries"])
        largest = figures[arm]["largest"]
        assert largest > 0, "batch 1 fits under the headroom"
        assert tries[largest] is True, "the reported size fitted"
        assert tries.get(largest + 1) is False or tries.get(2 * largest) is False, "and the next size tried did not"


@pytest.mark.cpu
@pytest.mark.parametrize("technique", ["torch-dynamic-int8-per-channel", "bf16-cast"])
def test_the_largest_batch_under_a_memory_cap(perfgate, technique):
    check_search(perfgate, "minilm", technique, "cpu")


@pytest.mark.gpu
def test_the_largest_batch_before_cuda_runs_out_of_memory(perfgate):
    """Real CUDA OOM ends each search; every try is a fresh worker, so nothing cached survives it."""
    check_search(perfgate, "gpt2-medium-random", "fp16-cast", "cuda")
