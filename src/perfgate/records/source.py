"""Which code a run measured: the project's git commit, and whether its tree held changes beyond it.
``perfgate compare --explain`` profiles a regression as this code against the good run's commit."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

__all__ = ["source_revision"]


def source_revision(directory: Path) -> dict[str, Any]:
    """``{"commit": SHA, "dirty": bool}`` for a git checkout; ``{"commit": None, "why": ...}`` where there
    is none (a copy of the tree without ``.git``, or no git installed): a run records what it can."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return {"commit": None, "why": f"git did not answer: {error}"}
    if head.returncode != 0:
        return {"commit": None, "why": f"{directory} is not a git checkout"}
    changes = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=directory, capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    return {"commit": head.stdout.strip(), "dirty": bool(changes.stdout.strip())}
