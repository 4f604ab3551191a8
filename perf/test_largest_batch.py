"""The largest batch that fits under the same memory cap, for a technique and for fp32 eager: on CPU a
cgroup budget that counts weights and activations where one can be made (gated: `min_batch_fit_ratio`),
else an address-space headroom (measured only); see scenarios/largest_batch.py for what each counts.

Measured on cpu-amx, 384 MiB budget, 128 tokens: bf16 fits 1.51-1.55x fp32's batch (its activations
are half the size); torch dynamic int8 only 0.59-0.61x. Activations per sequence are the same for int8
and fp32 (3.4-3.6 MiB at b32: dynamic quantization keeps fp32 activations), and MiniLM's weights are
half embeddings, which int8 keeps as an anonymous fp32 copy, where fp32 eager serves memory-mapped
weights of which only touched pages are resident and which the kernel can drop under the cap."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow  # ~28 fresh workers per case, one per try: ~3 min per case


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
@pytest.mark.parametrize("model", ["bert-base-random", "gpt2-medium-random"])
def test_the_largest_batch_before_cuda_runs_out_of_memory(perfgate, model):
    """Real CUDA OOM under the device-memory budget ends each search (torch's allocator capped: any GPU
    size reaches it); every try is a fresh worker, so nothing cached survives it."""
    check_search(perfgate, model, "fp16-cast", "cuda")
