"""Dynamic int8 Linear quantization with torch.ao, per-tensor and per-channel, against fp32 eager."""

from __future__ import annotations

import pytest

from perfgate.plugin import Bench

pytestmark = pytest.mark.cpu

TECHNIQUES = ["torch-dynamic-int8-per-tensor", "torch-dynamic-int8-per-channel"]


@pytest.mark.parametrize(
    ("model", "technique"),
    [
        ("minilm", TECHNIQUES[0]),
        ("minilm", TECHNIQUES[1]),
        # tiny-bert per-tensor nightly: it made room in the default run for the training recipes
        pytest.param("tiny-bert", TECHNIQUES[0], marks=pytest.mark.slow),
        ("tiny-bert", TECHNIQUES[1]),
    ],
)
def test_dynamic_int8_pays_off_on_encoders(perfgate: Bench, model: str, technique: str) -> None:
    perfgate.gate(model, technique, batch_size=1)


# tiny-t5 nightly: it made room in the default run for the training recipes; tiny-gpt2 too (30 s on
# cpu-avx2): the main job on cpu-avx2 (28 min, 2026-12-02) must fit 15
@pytest.mark.parametrize(
    "model", [pytest.param("tiny-gpt2", marks=pytest.mark.slow), pytest.param("tiny-t5", marks=pytest.mark.slow)]
)
def test_per_channel_int8_holds_on_decoders(perfgate: Bench, model: str) -> None:
    """The causal LM and the seq2seq model: forward A/B, and per-token decoding against fp32 in the same
    ABBA rounds (``min_decode_speedup`` where measured)."""
    perfgate.gate(model, "torch-dynamic-int8-per-channel", batch_size=1)
