"""Helpers for tests that run pytest in a user's project (pytester): planted techniques and options."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.planted import PLANTED

ROOT = Path(__file__).parents[1]
SENTENCES = ROOT / "fixtures" / "data" / "sentences.txt"


def plant(project: pytest.Pytester, extra: str = "") -> None:
    """A conftest registering the planted fault techniques (importable from this repository)."""
    lines = [f"import sys\nsys.path.insert(0, {str(ROOT)!r})", "from perfgate import register_technique"]
    lines += [f"register_technique({name!r}, {path!r})" for name, path in PLANTED.items()]
    project.makeconftest("\n".join(lines) + "\n" + extra)


def micro_run(micro_model_dir: Path, budget: str = "1") -> list[str]:
    """Options for a quick run on the micro model, reports in ``out/``, a short kill grace."""
    return [f"--perfgate-model=micro={micro_model_dir}:text-classification", f"--perfgate-budget={budget}",
            "--perfgate-report-dir=out", "--perfgate-kill-grace=1"]  # fmt: skip


def perfgate_summary(outlines: list[str]) -> list[str]:
    """The lines pytest printed in the "perfgate summary" section (up to the next section)."""
    start = next(i for i, line in enumerate(outlines) if "perfgate summary" in line and line.startswith("="))
    end = next((i for i in range(start + 1, len(outlines)) if outlines[i].startswith("=")), len(outlines))
    return outlines[start + 1 : end]
