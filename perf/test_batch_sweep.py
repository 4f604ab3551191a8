"""Batching on this machine: throughput and per-item latency over batch sizes 1..16 (1..64 `slow`) in
three input orders, for fp32 eager and the fastest CPU variant. The gain of length-sorted batching
over batch 1, and of sorting over a random order, are gated where the thresholds file measured them
(``min_batching_gain``, ``min_sorting_gain``)."""

from __future__ import annotations

import pytest


def sweep(perfgate, technique: str, largest: int, model: str = "minilm", device: str = "cpu") -> None:
    """Gated where measured: ``min_batching_gain`` and ``min_sorting_gain`` (what removing the random
    order's padding is worth at the largest batch; tests/test_metrics.py fails a planted sweep)."""
    perfgate.gate(model, technique, scenario="batch-sweep", batch_size=largest, device=device)


@pytest.mark.parametrize(
    "technique",
    [
        pytest.param(
            "fp32-eager", marks=pytest.mark.slow
        ),  # 52 s on cpu-avx2: the main job on cpu-avx2 (2026-12-02, 28 min) must fit 15
        pytest.param("onnxruntime-o2-int8-dynamic", marks=pytest.mark.slow),
    ],
)
def test_batch_sweep_up_to_16(perfgate, technique):
    sweep(perfgate, technique, 16)


@pytest.mark.cpu
@pytest.mark.slow
@pytest.mark.parametrize("technique", ["fp32-eager", "torch-dynamic-int8-per-channel", "onnxruntime-o2-int8-dynamic"])
def test_batch_sweep_up_to_64(perfgate, technique):
    sweep(perfgate, technique, 64)


@pytest.mark.gpu
@pytest.mark.parametrize("technique", ["fp32-eager", "fp16-cast"])
def test_batch_sweep_on_gpu(perfgate, technique):
    """On a GPU sized model: MiniLM-sized models measure launch overhead there, not kernels."""
    sweep(perfgate, technique, 64, model="bert-base-random", device="cuda")
