"""A pytest plugin ``perfgate bisect`` loads into a ``--collect-only`` run of the project's suite
(``-p perfgate.bisect_probe``): it writes how that suite resolves the case named in ``PERFGATE_PROBE``
(the model's location and task, the technique's import path, the texts it times), so a bisection
measures what the suite measures, with the models and techniques the project's conftest registers."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    from perfgate.errors import PerfgateError
    from perfgate.plugin import session_key
    from perfgate.technique import import_path

    request = json.loads(os.environ["PERFGATE_PROBE"])
    answer: dict[str, Any]
    try:
        perfgate = session.config.stash[session_key]
        source = perfgate.models.get(request["model"])
        location = source.resolve(perfgate.settings.cache_dir / "models")
        answer = {
            "location": str(location), "task": source.task, "technique_path": import_path(request["technique"]),
            "sentences": list(perfgate.sentences), "timed_texts": perfgate._timed_texts(request["batch_size"]),
            "rootdir": str(session.config.rootpath),
        }  # fmt: skip
    except (PerfgateError, KeyError) as error:
        answer = {"error": str(error)}
    Path(request["out"]).write_text(json.dumps(answer))
