"""Progress while a run measures: one line per finished case (or, under pytest-xdist, per finished test).

pytest's own progress counts items, and half of a default run's items are instant skips (``slow``
without ``-m slow``, ``gpu`` without a GPU), so its percentage misleads and a minute-long case prints
nothing. Here the count is of the tests that will run, and each line says what the case was, where its
time went (its jobs: A/B timing, serving memory...), what the run has taken so far, and an estimate of
what is left from recorded durations (``--perfgate-durations``, pytest-split's JSON) where they exist:

    perfgate [7/41] 4:10 elapsed, ~12 min left · minilm onnxruntime-o2 b1: PASS in 32 s (ab-forward 21 s,
    serving-memory 9 s)

Quiet under ``-q``. Under xdist the workers' cases are not visible to the controller, which prints one
line per finished test instead, counting every collected test and sharing the estimate among workers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from perfgate.engine.record import CaseResult
from perfgate.errors import ConfigError
from perfgate.reports.report import case_label

__all__ = ["Progress", "load_durations"]


def load_durations(path: Path | None) -> dict[str, float]:
    """nodeid -> recorded seconds; an absent file gives no estimates, a malformed one is named."""
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        return {str(nodeid): float(seconds) for nodeid, seconds in data.items()}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, TypeError, ValueError) as error:
        raise ConfigError(
            f"{path}: the recorded durations (--perfgate-durations) are not a JSON object of nodeid -> seconds "
            f"({error}); fix: regenerate it with pytest-split's --store-durations, or unset perfgate_durations"
        ) from None


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}"


class Progress:
    """A pytest plugin object; ``case_finished`` is called by the session for every case it measured."""

    def __init__(
        self,
        durations: dict[str, float],
        write: Callable[[str], None],
        will_skip: Callable[[pytest.Item], bool],
        clock: Callable[[], float] = time.monotonic,
        workers: int = 1,
    ) -> None:
        self.durations = durations
        self.write = write
        self.will_skip = will_skip
        self.clock = clock
        self.workers = max(workers, 1)
        self.started = clock()
        self.planned: list[str] = []  # the nodeids that will run, in order
        self.done: set[str] = set()
        self.current = ""
        self.outcomes: dict[str, str] = {}  # xdist: a test's outcome until its teardown is reported

    # -- counting what will run ------------------------------------------------------------------------
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.planned = [item.nodeid for item in session.items if not self.will_skip(item)]

    @pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: absent without it
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        if not self.planned:  # every worker collects the same ids; markers are not visible here
            self.planned = list(ids)

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.current = nodeid

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Under xdist (the controller): one line per finished test that was not skipped."""
        if self.workers == 1:
            return
        if report.when == "call" or report.outcome != "passed":
            self.outcomes.setdefault(report.nodeid, report.outcome)
        if report.when != "teardown":
            return
        self.done.add(report.nodeid)
        outcome = self.outcomes.pop(report.nodeid, "passed")
        if outcome != "skipped":
            self.write(
                f"perfgate [{len(self.done)}/{len(self.planned)}] {self._time_left()} · {outcome} {report.nodeid}"
            )

    # -- the session's callback ------------------------------------------------------------------------
    def case_finished(self, case: CaseResult) -> None:
        jobs: dict[str, float] = {}
        for job in case.worker.get("jobs", []):
            jobs[job.get("scenario", "?")] = jobs.get(job.get("scenario", "?"), 0.0) + job.get("wall_seconds", 0.0)
        phases = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in jobs.items())
        label = f"{case.spec.model} {case_label(case)}"
        verdict = str(case.verdict).upper() if case.outcome == "measured" else f"{case.outcome}"
        self.done.add(self.current)
        # The run's clock first: a long line loses the jobs' detail at its end, never the time left.
        self.write(
            f"{self._position(self.current)} {self._time_left()} · {label}: {verdict} in {case.wall_seconds:.0f} s"
            + (f" ({phases})" if phases else "")
        )

    def _position(self, nodeid: str) -> str:
        if nodeid in self.planned:
            return f"perfgate [{self.planned.index(nodeid) + 1}/{len(self.planned)}]"
        return "perfgate"

    def _time_left(self) -> str:
        elapsed = self.clock() - self.started
        if not any(n in self.durations for n in self.planned):
            return f"{_clock(elapsed)} elapsed"
        left = sum(self.durations.get(n, 0.0) for n in self.planned if n not in self.done and n != self.current)
        minutes = left / self.workers / 60
        return f"{_clock(elapsed)} elapsed, " + ("<1 min left" if minutes < 1 else f"~{minutes:.0f} min left")
