"""ruff and mypy (strict on src/) run as part of the tests, so the README's test command covers them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
CHECKED = ["src", "tests", "perf", "correctness", "fixtures", "conftest.py"]


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("command", [("ruff", "check", *CHECKED), ("ruff", "format", "--check", *CHECKED)])
def test_ruff_is_clean(command):
    result = run(*command)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean_on_the_harness():
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
