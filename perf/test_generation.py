"""Generation on the causal LM and the seq2seq model: time to first token, per-token latency and
tokens/s with a fixed number of new tokens, for techniques that serve from a torch module (int8 on both
decoders runs in the default selection from test_torch_dynamic_int8.py); and the static KV cache with
a compiled forward as a technique of its own."""

from __future__ import annotations

import pytest

from perfgate.plugin import Bench


@pytest.mark.cpu
@pytest.mark.slow
@pytest.mark.parametrize("technique", ["bf16-cast", "torchao-int8-weight-only", "bitsandbytes-nf4"])
@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-t5"])
def test_generation_latency(perfgate: Bench, model: str, technique: str) -> None:
    """Forward A/B and per-token decoding in the same ABBA rounds (``min_decode_speedup`` where measured)."""
    perfgate.gate(model, technique, batch_size=1)


@pytest.mark.cpu
# The compiled one is nightly: 71 s of compiling on cpu-avx2, and the main job (28 min there) must fit 15.
@pytest.mark.parametrize("technique", ["static-cache", pytest.param("static-cache-compile", marks=pytest.mark.slow)])
def test_the_static_cache_alone_and_compiled(perfgate: Bench, technique: str) -> None:
    """A static cache changes decoding, not the forward pass: its per-token decode time against the dynamic
    cache's is what is gated (``min_decode_speedup``; on CPU it measured slower per token)."""
    result = perfgate.gate("tiny-gpt2", technique, batch_size=1, memory=False)
    assert result.metrics["generation"]["decode"]["estimate"], "decoding was timed against the dynamic cache's"


@pytest.mark.gpu
@pytest.mark.parametrize("technique", ["static-cache", "static-cache-compile", "bf16-cast", "torchao-int8-weight-only"])
def test_generation_on_a_gpu(perfgate: Bench, technique: str) -> None:
    perfgate.gate("gpt2-medium-random", technique, device="cuda", batch_size=1, memory=False)
