"""ONNX Runtime against fp32 eager: levels O1-O3 (O4 and the CUDA provider on GPUs), dynamic int8
per channel and per tensor, static int8 calibrated on the evaluation sentences."""

from __future__ import annotations

import pytest

from perfgate.plugin import Bench

pytestmark = pytest.mark.requires("onnxruntime", "onnx")


@pytest.mark.cpu
@pytest.mark.parametrize(
    ("model", "technique"),
    [
        ("minilm", "onnxruntime-o2"),
        ("minilm", "onnxruntime-o2-int8-dynamic"),
        pytest.param(
            "tiny-bert", "onnxruntime-o2", marks=pytest.mark.slow
        ),  # 51 s on cpu-avx2: the main job on cpu-avx2 (28 min, 2026-12-02) must fit 15
        ("tiny-bert", "onnxruntime-o2-int8-dynamic"),
    ],
)
def test_onnxruntime_pays_off_for_single_sequences(perfgate: Bench, model: str, technique: str) -> None:
    result = perfgate.gate(model, technique, batch_size=1)
    if (model, technique) == ("minilm", "onnxruntime-o2-int8-dynamic"):  # task accuracy judged on the hard set
        assert "max_task_loss" in {check.name for check in result.checks}, result.checks


@pytest.mark.cpu
@pytest.mark.parametrize(
    "technique",
    # int8 at batch 8 nightly: it made room in the default run for the training recipes (batch 1 stays)
    ["onnxruntime-o2", pytest.param("onnxruntime-o2-int8-dynamic", marks=pytest.mark.slow)],
)
def test_onnxruntime_on_a_padded_batch(perfgate: Bench, technique: str) -> None:
    perfgate.gate("minilm", technique, batch_size=8)


@pytest.mark.cpu
@pytest.mark.parametrize(
    "technique",
    [
        pytest.param("onnxruntime-o1", marks=pytest.mark.slow),
        # the GELU approximation (fidelity shows its cost); nightly to make room for the training recipes
        pytest.param("onnxruntime-o3", marks=pytest.mark.slow),
        # per-tensor nightly: it made room in the default run for the training recipes
        pytest.param("onnxruntime-o2-int8-dynamic-per-tensor", marks=pytest.mark.slow),
        pytest.param(
            "onnxruntime-o1-int8-static", marks=pytest.mark.slow
        ),  # 35 s on cpu-avx2: the main job on cpu-avx2 (28 min, 2026-12-02) must fit 15
        # ORT's pool told not to spin after a run: what a service sharing its cores deploys; the default
        # cases above spin, as ORT does unless told otherwise
        pytest.param("onnxruntime-o2-nospin", marks=pytest.mark.slow),
        pytest.param("onnxruntime-o2-int8-dynamic-nospin", marks=pytest.mark.slow),
    ],
)
def test_onnxruntime_levels_and_int8_schemes(perfgate: Bench, technique: str) -> None:
    perfgate.gate("minilm", technique, batch_size=1)


@pytest.mark.gpu
@pytest.mark.parametrize("technique", ["onnxruntime-cuda-o2", "onnxruntime-o4"])
def test_onnxruntime_on_a_gpu(perfgate: Bench, technique: str) -> None:
    perfgate.gate("bert-base-random", technique, device="cuda", batch_size=8, memory=False)
