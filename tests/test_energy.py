"""Energy per inference on a fake clock and a fake energy counter (NVML's is a GPU's)."""

from __future__ import annotations

from perfgate.instruments.energy import energy_per_call, interleaved_energy, nvml_energy_counter


class FakeGpu:
    """A clock and an energy counter that advance together: each call costs its seconds and joules."""

    def __init__(self) -> None:
        self.now = self.joules = 0.0

    def work(self, seconds: float, watts: float):
        def call() -> None:
            self.now += seconds
            self.joules += seconds * watts

        return call


def test_joules_per_call_is_the_counter_delta_over_the_calls():
    gpu = FakeGpu()
    per_call = energy_per_call(gpu.work(0.01, 300.0), lambda: gpu.joules, clock=lambda: gpu.now, min_seconds=0.5)
    assert abs(per_call - 3.0) < 1e-9


def test_a_faster_arm_that_draws_more_power_shows_it():
    gpu = FakeGpu()
    figures = interleaved_energy(
        gpu.work(0.010, 200.0), gpu.work(0.008, 400.0), lambda: gpu.joules, clock=lambda: gpu.now, min_seconds=0.2
    )
    assert abs(figures["baseline"] - 2.0) < 1e-9
    assert abs(figures["candidate"] - 3.2) < 1e-9
    assert abs(figures["ratio"] - 1.6) < 1e-9


def test_the_counter_comes_with_a_reason_exactly_when_there_is_none():
    counter, reason = nvml_energy_counter()
    assert (counter is None) == bool(reason), reason
