"""Overlay environments and pip's list of releases, on wheels written here (no network)."""

from __future__ import annotations

import subprocess

import pytest

from perfgate.errors import PerfgateError
from perfgate.subjects.environments import install_into, overlay_environment, released_versions

from .test_bisect import write_wheel


@pytest.fixture
def wheels(tmp_path):
    directory = tmp_path / "wheels"
    directory.mkdir()
    for version in ("1.10", "1.2", "1.9"):
        write_wheel(directory, "overlaidlib", version, f"VERSION = {version!r}\n")
    return directory


def test_releases_come_oldest_first_as_pip_lists_them(wheels):
    assert released_versions("overlaidlib", ["--no-index", f"--find-links={wheels}"]) == ["1.2", "1.9", "1.10"]
    with pytest.raises(PerfgateError, match="pip lists no versions of 'no-such-lib'"):
        released_versions("no-such-lib", ["--no-index", f"--find-links={wheels}"])


def test_an_overlay_serves_its_own_release_and_the_current_environments_libraries(tmp_path, wheels):
    python = overlay_environment(tmp_path / "overlay")
    install_into(python, "overlaidlib==1.9", ["--no-index", f"--find-links={wheels}"])
    code = "import overlaidlib, numpy; print(overlaidlib.VERSION)"
    assert subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "1.9"
    with pytest.raises(PerfgateError, match=r"pip could not install overlaidlib==3\.0"):
        install_into(python, "overlaidlib==3.0", ["--no-index", f"--find-links={wheels}"])
