"""ONNX Runtime: O2-optimized export and its dynamic int8 (per-channel weights) against fp32 eager."""

from __future__ import annotations

import pytest

from perfgate.plugin import Bench

pytestmark = [pytest.mark.cpu, pytest.mark.requires("onnxruntime", "onnx")]


@pytest.mark.parametrize("technique", ["onnxruntime-o2", "onnxruntime-o2-int8-dynamic"])
@pytest.mark.parametrize("model", ["minilm", "tiny-bert"])
def test_onnxruntime_pays_off_for_single_sequences(perfgate: Bench, model: str, technique: str) -> None:
    perfgate.gate(model, technique, batch_size=1)


@pytest.mark.parametrize("technique", ["onnxruntime-o2", "onnxruntime-o2-int8-dynamic"])
def test_onnxruntime_on_a_padded_batch(perfgate: Bench, technique: str) -> None:
    perfgate.gate("minilm", technique, batch_size=8)
