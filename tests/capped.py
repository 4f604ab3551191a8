"""Helpers for tests that run a real worker inside a memory cgroup of its own (skipped, with the
reason, where this machine cannot make one)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from perfgate.engine.launcher import JobReply
from perfgate.engine.scenarios import Scenario
from perfgate.instruments.cgroup import CgroupUnavailable, MemoryCgroup


def real_cgroup() -> MemoryCgroup:
    try:
        return MemoryCgroup.create()
    except CgroupUnavailable as error:
        pytest.skip(f"no memory cgroup for a worker here: {error}")


def submit_in_cgroup(tmp_path: Path, scenario: Scenario, payload: dict[str, Any]) -> JobReply:
    """One job in a fresh worker moved into a new cgroup, which ``payload`` names for the worker."""
    from perfgate.engine.launcher import Launcher

    group = real_cgroup()
    launcher = Launcher(sys.path, tmp_path / "locks")
    try:
        return launcher.submit("cpu", scenario, {**payload, "cgroup": group.named()}, fresh=True, timeout=120,
                               cgroup=group)  # fmt: skip
    finally:
        launcher.close()
        group.remove()
