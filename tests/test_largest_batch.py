"""The largest-batch search: doubling then bisection on planted limits, and a real try under an
address-space cap that runs out of memory inside its own worker."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perfgate.engine.scenarios.largest_batch import guided_search, search

MIB = 2**20


def planted_peaks(base: int, per_item: float, budget: int, rounding: int = 1, bump: int = 0):
    """A try's peak as a GPU reports it: weights plus activations per item, rounded up to the allocator's
    blocks, with an extra workspace from batch 64 on (a kernel that switches algorithm); None over budget."""

    def peak_at(size: int) -> int | None:
        peak = base + int(size * per_item) + (bump if size >= 64 else 0)
        peak = -(-peak // rounding) * rounding
        return peak if peak <= budget else None

    return peak_at


@pytest.mark.parametrize("limit", [0, 1, 2, 3, 37, 64, 100])
def test_the_search_finds_the_planted_limit_with_few_tries(limit):
    largest, tries = search(lambda size: size <= limit, largest_tried=4096)
    assert largest == limit
    assert len(tries) <= 2 * max(limit, 1).bit_length() + 2
    assert all(ok == (size <= limit) for size, ok in tries)


def test_the_search_stops_at_the_largest_size_it_may_try():
    largest, tries = search(lambda size: True, largest_tried=16)
    assert largest == 16
    assert [size for size, _ in tries] == [1, 2, 4, 8, 16]


def test_under_a_cap_a_big_batch_is_an_oom_outcome_and_a_small_one_fits(micro_model_dir, tmp_path):
    from perfgate.engine.launcher import Launcher
    from perfgate.engine.scenarios.largest_batch import BatchFits
    from perfgate.instruments.outcome import Outcome
    from perfgate.subjects.catalogue import import_path

    launcher = Launcher([str(tmp_path)], tmp_path / "locks")
    payload = {
        "model": {"name": "micro", "task": "text-classification", "location": str(micro_model_dir), "device": "cpu"},
        "technique": import_path("fp32-eager"), "workdir": str(tmp_path), "threads": 1,
        "timed_texts": ["The train was late."], "headroom_bytes": 64 * 2**20,
    }  # fmt: skip
    import sys

    launcher.sys_path = sys.path
    try:
        small = launcher.submit("cpu", BatchFits(), {**payload, "batch_size": 2}, fresh=True, timeout=120)
        big = launcher.submit("cpu", BatchFits(), {**payload, "batch_size": 4096}, fresh=True, timeout=120)
    finally:
        launcher.close()
    assert small.outcome == Outcome.MEASURED, small.detail
    assert big.outcome == Outcome.OOM, (big.outcome, big.detail)
    assert "out of memory at batch_size=4096" in big.detail


def test_on_cuda_the_search_runs_under_a_stated_budget_of_device_memory():
    from perfgate.engine.metrics.largest_batch import describe_cap
    from perfgate.engine.scenarios.largest_batch import GPU_BUDGET_BYTES, memory_cap, memory_fraction
    from perfgate.engine.scenarios.train_batch import training_cap

    cap = memory_cap("cuda")
    assert cap == {
        "kind": "cuda",
        "budget_bytes": GPU_BUDGET_BYTES,
        "how": "torch.cuda.set_per_process_memory_fraction",
    }
    assert describe_cap(cap) == "GPU allocator capped at 4 GiB"
    assert training_cap("cuda:0")["budget_bytes"] == 8 * 2**30
    h200, t4 = 141 * 2**30, 15 * 2**30
    assert memory_fraction(4 * 2**30, h200) == 4 / 141
    assert memory_fraction(32 * 2**30, t4) == 1.0  # the device is smaller than the budget: it is the cap


def test_a_guided_search_on_linear_memory_takes_a_handful_of_tries():
    budget = 4096 * MIB
    largest, tries = guided_search(planted_peaks(440 * MIB, 3 * MIB, budget), budget)
    assert largest == (budget - 440 * MIB) // (3 * MIB)
    assert len(tries) <= 6, tries
    plain = search(lambda size: planted_peaks(440 * MIB, 3 * MIB, budget)(size) is not None)
    assert plain[0] == largest
    assert len(plain[1]) >= 3 * len(tries) // 2  # doubling then bisection: what each fresh worker cost before


@given(
    base=st.integers(1 * MIB, 2048 * MIB),
    per_item=st.floats(0.01 * MIB, 64 * MIB),
    budget=st.integers(64 * MIB, 8192 * MIB),
    rounding=st.sampled_from([1, 512, 2 * MIB, 20 * MIB]),
    bump=st.sampled_from([0, 8 * MIB, 256 * MIB]),
)
def test_a_guided_search_ends_on_the_true_edge_whatever_the_memory_curve(base, per_item, budget, rounding, bump):
    peak_at = planted_peaks(base, per_item, budget, rounding, bump)
    truth = max((size for size in range(0, 4097) if size == 0 or peak_at(size) is not None), default=0)
    largest, tries = guided_search(peak_at, budget, largest_tried=4096)
    assert largest == truth
    assert all(ok == (peak_at(size) is not None) for size, ok in tries)
    assert len(tries) <= 30


class PlantedAllocator:
    """torch.cuda's peak statistics over a planted allocation history (bytes in use, and their peak)."""

    def __init__(self) -> None:
        self.in_use = self.peak = 0

    def allocate(self, size: int) -> None:
        self.in_use += size
        self.peak = max(self.peak, self.in_use)

    def free(self, size: int) -> None:
        self.in_use -= size

    def max_memory_allocated(self, device: str) -> int:
        return self.peak

    def reset_peak_memory_stats(self, device: str) -> None:
        self.peak = self.in_use


def built_then_forward(weights: int, build_extra: int, per_item: float, size: int) -> tuple[PlantedAllocator, object]:
    """A variant built as a cast is: the fp32 original and its copy held at once, the original then freed."""
    cuda = PlantedAllocator()
    cuda.allocate(weights + build_extra)
    cuda.free(build_extra)

    def forward() -> None:
        activations = int(size * per_item)
        cuda.allocate(activations)
        cuda.free(activations)

    return cuda, forward


def test_a_try_records_its_forward_s_peak_not_the_build_s():
    from perfgate.engine.scenarios.largest_batch import forward_peak

    cuda, forward = built_then_forward(440 * MIB, 880 * MIB, 1 * MIB, size=8)
    peak = forward_peak(forward, "cuda:0", cuda)
    assert peak == {"before": 1320 * MIB, "forward": 448 * MIB}
    # What a try read before: the allocator's peak since the worker started, the build's.
    cuda, forward = built_then_forward(440 * MIB, 880 * MIB, 1 * MIB, size=8)
    forward()
    assert cuda.max_memory_allocated("cuda:0") == 1320 * MIB != peak["forward"]
    assert forward_peak(lambda: None, "cpu") == {"before": None, "forward": None}


@given(
    weights=st.integers(64 * MIB, 1024 * MIB),
    build_extra=st.integers(0, 2048 * MIB),
    per_item=st.floats(0.05 * MIB, 16 * MIB),
    budget=st.integers(2048 * MIB, 8192 * MIB),
)
def test_a_guided_search_ends_on_the_true_edge_when_building_held_more_than_a_forward(
    weights, build_extra, per_item, budget
):
    from perfgate.engine.scenarios.largest_batch import forward_peak

    def peak_at(size: int) -> int | None:  # one fresh worker per try: build, then the forward at this size
        cuda, forward = built_then_forward(weights, build_extra, per_item, size)
        recorded = forward_peak(forward, "cuda:0", cuda)["forward"]
        return recorded if recorded is not None and recorded <= budget else None

    truth = max(size for size in range(0, 4097) if size == 0 or weights + int(size * per_item) <= budget)
    largest, tries = guided_search(peak_at, budget, largest_tried=4096)
    assert largest == truth
    assert len(tries) <= 12, tries  # the GPU visit's plan counts ~12 tries
