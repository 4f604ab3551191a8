"""scripts/bootstrap.sh: the pin set is chosen by name, and a name with no file is refused up front."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from tests.user_project import ROOT

# The lent GPU image: CPython 3.12 on x86-64 Linux (../shared/FIELD-NOTES.md).
GPU_PYTHON = "3.12"
GPU_MARKERS = {"python_version": GPU_PYTHON, "python_full_version": f"{GPU_PYTHON}.3", "sys_platform": "linux",
               "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
               "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}  # fmt: skip
MANYLINUX = ["manylinux2010_x86_64", "manylinux2014_x86_64", "linux_x86_64"] + [
    f"manylinux_2_{minor}_x86_64" for minor in (12, 17, 24, 27, 28, 34)
]


def test_an_unknown_pin_set_is_named_with_the_choices():
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "bootstrap.sh")], env={**os.environ, "PINS": "no-such-pins"},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "requirements/no-such-pins.txt does not exist (use one of: cpu gpu transformers5)" in result.stderr


def test_every_pin_set_pins_torch_first():
    """Anything installed before a pinned torch may pull an unpinned one: several GB of CUDA wheels."""
    for name, torch_pin in (("cpu", "torch==2.13.0"), ("transformers5", "torch==2.13.0"), ("gpu", "torch==2.11.0")):
        assert pinned_lines(ROOT / "requirements" / f"{name}.txt")[0] == torch_pin, name


def pinned_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def pin_conflicts(report: dict[str, Any], python_version: str, markers: dict[str, str]) -> list[str]:
    """What in a `pip install --dry-run --report` of pinned packages contradicts itself on the target.

    Each package's Requires-Python must admit the target, and each dependency it declares on another
    package of the set must admit that package's pinned version. Dependencies outside the set (torch's
    CUDA libraries, which the GPU image provides) are not judged here.
    """
    pinned = {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"] for item in report["install"]}
    conflicts = []
    for item in report["install"]:
        name, metadata = item["metadata"]["name"], item["metadata"]
        if metadata.get("requires_python") and python_version not in SpecifierSet(metadata["requires_python"]):
            conflicts.append(f"{name} requires Python {metadata['requires_python']}, the target has {python_version}")
        for line in metadata.get("requires_dist") or []:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate(markers):
                continue
            version = pinned.get(canonicalize_name(requirement.name))
            if version is not None and not requirement.specifier.contains(version, prereleases=True):
                conflicts.append(f"{name} requires {requirement}, the set pins {version}")
    return conflicts


def test_pin_conflicts_names_a_dependency_the_set_contradicts():
    report = {"install": [
        {"metadata": {"name": "transformers", "version": "5.17.0", "requires_python": ">=3.10",
                      "requires_dist": ["tokenizers<0.24,>=0.23.1", "tomli; python_version < '3.11'"]}},
        {"metadata": {"name": "tokenizers", "version": "0.24.0", "requires_python": ">=3.13"}},
        {"metadata": {"name": "tomli", "version": "0.1"}},
    ]}  # fmt: skip
    assert pin_conflicts(report, "3.12", GPU_MARKERS) == [
        "transformers requires tokenizers<0.24,>=0.23.1, the set pins 0.24.0",
        "tokenizers requires Python >=3.13, the target has 3.12",
    ]
    assert Marker("python_version < '3.11'").evaluate(GPU_MARKERS) is False


def test_the_gpu_pin_set_resolves_for_the_gpu_image(tmp_path):
    """Every pin exists as a wheel for CPython 3.12 on x86-64 Linux, and the pins agree with each other.

    The dry run resolves each pin without its dependencies: torch's CUDA libraries are the image's own
    (and not every one of them is on this machine's package mirror); `pin_conflicts` then checks what
    the pinned packages declare about each other.
    """
    requirements = ROOT / "requirements" / "gpu.txt"
    platforms = [argument for platform in MANYLINUX for argument in ("--platform", platform)]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-requires-python",
         "--only-binary=:all:", "--python-version", GPU_PYTHON, *platforms, "--target", str(tmp_path / "target"),
         "--quiet", "--report", str(tmp_path / "report.json"), "-r", str(requirements)],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    resolved = {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"] for item in report["install"]}
    for line in pinned_lines(requirements):
        requirement = Requirement(line)
        assert resolved[canonicalize_name(requirement.name)] in requirement.specifier, line
    assert pin_conflicts(report, GPU_PYTHON, GPU_MARKERS) == []
