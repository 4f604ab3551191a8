"""One vocabulary for what became of a case (``Outcome``) and what its checks concluded (``Verdict``).

Both are ``StrEnum``s: they compare equal to their values, so they travel through JSON (worker replies,
``results.json``) as plain strings and come back as members with ``Outcome(text)``.
"""

from __future__ import annotations

import enum

__all__ = ["Outcome", "Verdict"]


class Outcome(enum.StrEnum):
    STARTED = "started"  # recorded before the case runs; left as is only if the orchestrator itself died
    MEASURED = "measured"
    OOM = "oom"  # the allocator (CPU or CUDA) refused; carries the batch size
    TIMEOUT = "timeout"  # the worker was killed past its deadline, whatever it was doing
    CRASHED = "crashed"  # the worker died: a signal (abort, segfault) or a non-zero exit
    ERROR = "error"  # an exception in the worker (a CUDA error among them)


class Verdict(enum.StrEnum):
    """Most severe first: a case's verdict is the first that applies (``judge.judge``)."""

    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    UNGATED = "ungated"  # no hardware-dependent bound here: measured and recorded; fidelity still judged
    RECORDED = "recorded"  # the scenario has no threshold field at all: a measurement to read
    PASS = "pass"
