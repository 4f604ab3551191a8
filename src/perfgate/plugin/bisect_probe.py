"""A pytest plugin ``perfgate bisect`` loads into a ``--collect-only`` run of the project's suite
(``-p perfgate.plugin.bisect_probe``): it writes how that suite resolves the case named in ``PERFGATE_PROBE``
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

    request = json.loads(os.environ["PERFGATE_PROBE"])
    answer: dict[str, Any]
    try:
        perfgate = session.config.stash[session_key]
        answer = perfgate.runner.probe(request["model"], request["technique"], request["batch_size"])
        answer["rootdir"] = str(session.config.rootpath)
    except (PerfgateError, KeyError) as error:
        answer = {"error": str(error)}
    Path(request["out"]).write_text(json.dumps(answer))
