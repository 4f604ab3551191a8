from __future__ import annotations

import contextlib
import json
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

SLOWEST = Path(__file__).with_name("slowest.json")  # measured call seconds of the slowest tests


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, the slowest tests first, dealt round-robin over the workers' shares: worksteal gives
    each worker one contiguous share of the collection and steals from their ends, so each worker
    starts with its heaviest tests and ends with short ones, and the run never waits on a two-minute
    test that began last (the longest-first rule of scheduling). Alone, the collection's own order."""
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    if workers < 2 or not SLOWEST.is_file():
        return
    seconds = json.loads(SLOWEST.read_text())["seconds"]
    ranked = sorted(items, key=lambda item: -seconds.get(item.nodeid, 0.0))  # stable: the rest keep their order
    items[:] = [item for share in range(workers) for item in ranked[share::workers]]


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
