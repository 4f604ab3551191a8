"""Serving memory answers "how much must I provision?": ONNX Runtime int8 needs less than fp32 and than
ONNX Runtime fp32, and a variant that leaks an fp32 copy of its weights shows about their size more."""

from __future__ import annotations

import pytest

from perfgate.plugin import Bench

pytestmark = pytest.mark.cpu

# The planted copy is anonymous memory of exactly the weights' size: the anonymous pages at the peak
# must exceed fp32's by that much, within this fraction (sampling and allocator slack move a few MB).
# Cloning also reads every mapped weight page, so the total grows by more than the copy (measured on
# MiniLM: +86 MiB anonymous, +37 MiB file-backed for embedding rows one sentence never touches).
LEAK_TOLERANCE = 0.15


def test_a_leaked_fp32_copy_shows_as_the_weights_size(perfgate: Bench) -> None:
    result = perfgate.measure("minilm", "planted-fp32-copy-leak", scenario="serving-memory")
    assert result.outcome == "measured", result.detail
    memory = result.metrics["memory"]
    leaked = memory["candidate"]["variant"]["leaked_bytes"]
    anonymous = {arm: memory[arm]["sampled"]["at_peak"]["anon"] for arm in ("baseline", "candidate")}
    extra_anonymous = anonymous["candidate"] - anonymous["baseline"]
    extra = memory["candidate"]["attributable"] - memory["baseline"]["attributable"]
    mb = 2**20
    assert abs(extra_anonymous / leaked - 1) <= LEAK_TOLERANCE, (
        f"a leak of {leaked / mb:.0f} MiB shows as {extra_anonymous / mb:.0f} MiB more anonymous memory than fp32"
    )
    assert extra >= leaked * (1 - LEAK_TOLERANCE), f"attributable memory grew by only {extra / mb:.0f} MiB"


@pytest.mark.requires("onnxruntime", "onnx")
def test_onnxruntime_int8_needs_less_memory_than_fp32_and_onnxruntime_fp32(perfgate: Bench) -> None:
    int8 = perfgate.measure("minilm", "onnxruntime-o2-int8-dynamic", scenario="serving-memory").metrics["memory"]
    fp32_ort = perfgate.measure("minilm", "onnxruntime-o2", scenario="serving-memory").metrics["memory"]
    assert int8["candidate"]["attributable"] < int8["baseline"]["attributable"], int8
    assert int8["candidate"]["attributable"] < fp32_ort["candidate"]["attributable"], (int8, fp32_ort)
