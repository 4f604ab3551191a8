"""The op-by-op instrument: torch.profiler's averages read as self seconds per call, a CUDA block's
kernel time beside its host time, and the rounds alternating between sides."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from perfgate.instruments.profiling import alternate_rounds, as_json, from_json, op_times


def event(key: str, shapes: list, cpu_us: float, device_us: float = 0.0) -> SimpleNamespace:
    return SimpleNamespace(key=key, input_shapes=shapes, self_cpu_time_total=cpu_us, self_device_time_total=device_us)


def test_a_cuda_block_keeps_each_op_s_kernel_time_apart_from_its_launch():
    """On CUDA the host's self time of an op is its launch; its kernels' time is the work (device::)."""
    events = [event("aten::mm", [[512, 512], [512, 512]], 40.0, 900.0), event("aten::view", [[2, 20]], 10.0)]
    on_gpu = op_times(events, calls=10, device=True)
    assert on_gpu[("aten::mm", "[[512, 512], [512, 512]]")] == pytest.approx(4e-6)
    assert on_gpu[("device::aten::mm", "[[512, 512], [512, 512]]")] == pytest.approx(90e-6)
    assert ("device::aten::view", "[[2, 20]]") not in on_gpu  # no kernel: no device row
    on_cpu = op_times(events, calls=10)
    assert set(on_cpu) == {("aten::mm", "[[512, 512], [512, 512]]"), ("aten::view", "[[2, 20]]")}


def test_the_same_op_and_shapes_listed_twice_add_up():
    found = op_times([event("aten::add", [[4]], 6.0), event("aten::add", [[4]], 4.0)], calls=2)
    assert found == {("aten::add", "[[4]]"): pytest.approx(5e-6)}


def test_sides_alternate_which_goes_first_and_the_last_round_is_told():
    order: list[tuple[str, bool]] = []

    def block(side: str):
        def profiled(last: bool) -> dict:
            order.append((side, last))
            return {(side, ""): float(len(order))}

        return profiled

    found = alternate_rounds({"baseline": block("baseline"), "candidate": block("candidate")}, rounds=3)
    assert order == [("baseline", False), ("candidate", False), ("candidate", False), ("baseline", False),
                     ("baseline", True), ("candidate", True)]  # fmt: skip
    assert len(found["baseline"]) == len(found["candidate"]) == 3
    assert from_json(as_json(found["baseline"])) == found["baseline"]
