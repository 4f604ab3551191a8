"""The largest batch that fits under the same memory headroom, for a technique and for fp32 eager
(see scenarios/largest_batch.py for what the CPU cap counts and what it does not)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.cpu, pytest.mark.slow]  # ~30 fresh workers: one per try


@pytest.mark.parametrize("technique", ["torch-dynamic-int8-per-channel", "bf16-cast"])
def test_the_largest_batch_under_a_memory_cap(perfgate, technique):
    result = perfgate.gate("minilm", technique, scenario="largest-batch")
    figures = result.metrics["largest_batch"]
    for arm in ("baseline", "candidate"):
        tries = dict(figures[arm]["tries"])
        largest = figures[arm]["largest"]
        assert tries.get(largest, True), "the reported size fitted"
        assert tries.get(largest + 1) is False or tries.get(2 * largest) is False, "and the next size tried did not"
