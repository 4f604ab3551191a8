"""The project's own configuration of perfgate: its embedded default models."""

from __future__ import annotations

import os

import pytest

from perfgate.model import ModelRegistry

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # fixture models are local; never reach for a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_perfgate_register_models(registry: ModelRegistry, config: pytest.Config) -> None:
    from fixtures.models import sources

    for source in sources():
        registry.add(source)
