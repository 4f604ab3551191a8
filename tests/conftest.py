from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

# pytester's in-process runs restore sys.modules afterwards: a library first imported inside one (the
# plugin draws report.html with matplotlib) would be dropped half-way, and the next import would mix two
# copies of its classes. Imported here first, it stays.
with contextlib.suppress(ImportError):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot

from tests.micro_model import micro_bert
from tests.user_project import SENTENCES

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def micro_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return micro_bert(tmp_path_factory.mktemp("models") / "micro-bert")


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A user's project: an ini pointing at our sentences, and no PERFGATE_* leaking in from outside."""
    for name in [k for k in os.environ if k.startswith("PERFGATE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # No report.html: matplotlib's figures cost about 2 s a run, and only the tests of the report read it
    pytester.makeini(f"[pytest]\nperfgate_sentences = {SENTENCES}\nperfgate_cache_dir = cache\nperfgate_html = off\n")
    return pytester
