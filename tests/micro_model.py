"""A micro BERT classifier (one layer, 32 wide) for plugin tests that need a real model quickly."""

from __future__ import annotations

from pathlib import Path

from fixtures.models import _builder

build_micro_bert = _builder(
    "BertConfig",
    "AutoModelForSequenceClassification",
    vocab_size=30522,
    hidden_size=32,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=64,
    num_labels=3,
)


def micro_bert(directory: Path) -> Path:
    if not (directory / "config.json").is_file():
        build_micro_bert(directory)
    return directory
