"""scripts/bootstrap.sh: the pin set is chosen by name, a name with no file is refused up front, and the CPU
pin sets resolve to torch's CPU build whatever index pip is given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
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
    pins = {"cpu": "torch==2.13.0+cpu", "transformers5": "torch==2.13.0+cpu", "gpu": "torch==2.11.0"}
    for name, torch_pin in pins.items():
        assert pinned_lines(ROOT / "requirements" / f"{name}.txt")[0] == torch_pin, name


TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# The variables that name a package source to pip; the rest of the environment is kept.
PIP_SOURCES = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX", "TORCH_INDEX_URL")


def stock_pip_environment(**variables: str) -> dict[str, str]:
    """This process's environment as on a stock machine (no pip config, no source variables), plus `variables`."""
    environment = {name: value for name, value in os.environ.items() if name not in PIP_SOURCES}
    return {**environment, "PIP_CONFIG_FILE": os.devnull, **variables}


def install_command(environment: dict[str, str], pins: str = "cpu") -> str:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "bootstrap.sh"), "--print-install"], env={**environment, "PINS": pins},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stdout.strip()


def test_the_cpu_index_is_added_only_when_pip_has_no_source(tmp_path):
    config = tmp_path / "pip.conf"
    config.write_text("[global]\nfind-links = /opt/mirror\n")
    stock = stock_pip_environment()
    assert install_command(stock) == (
        f"python -m pip install --progress-bar on --extra-index-url {TORCH_CPU_INDEX} -r requirements/cpu.txt"
    )
    assert TORCH_CPU_INDEX in install_command(stock, pins="transformers5")
    # A source of the user's own, from the environment or from pip's config, is left alone.
    assert "--extra-index-url" not in install_command({**stock, "PIP_INDEX_URL": "https://mirror.example/simple"})
    assert "--extra-index-url" not in install_command({**stock, "PIP_CONFIG_FILE": str(config)})
    # TORCH_INDEX_URL overrides either way; empty adds none.
    overridden = install_command({**stock, "PIP_CONFIG_FILE": str(config), "TORCH_INDEX_URL": "https://t.example"})
    assert "--extra-index-url https://t.example -r" in overridden
    assert "--extra-index-url" not in install_command({**stock, "TORCH_INDEX_URL": ""})
    # The GPU pin set wants PyPI's CUDA build: no CPU index.
    assert "--extra-index-url" not in install_command(stock, pins="gpu")


def fake_wheel(directory: Path, version: str) -> None:
    """An empty installable `torch` wheel of `version`: enough for pip to resolve against."""
    dist_info = f"torch-{version}.dist-info"
    files = {
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: perfgate-tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
        f"{dist_info}/RECORD": "",
    }
    with zipfile.ZipFile(directory / f"torch-{version}-py3-none-any.whl", "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)


def resolved_torch(pin: str, wheels: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`pip install --dry-run` of `pin`, offline, over the wheels in `wheels`; its report in tmp_path."""
    return subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed", "--no-index",
         "--find-links", str(wheels), "--report", str(tmp_path / "report.json"), "--quiet", pin],
        env=stock_pip_environment(), capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


def test_the_cpu_pin_sets_resolve_to_torchs_cpu_build_offline(tmp_path):
    """Given PyPI's build (2.13.0, the CUDA one) and the CPU index's (2.13.0+cpu), the pin picks +cpu; given
    PyPI's alone, it fails instead of installing the CUDA build, which the former pin `torch==2.13.0` took."""
    both, pypi_only = tmp_path / "both", tmp_path / "pypi"
    for directory, versions in ((both, ("2.13.0", "2.13.0+cpu")), (pypi_only, ("2.13.0",))):
        directory.mkdir()
        for version in versions:
            fake_wheel(directory, version)
    for name in ("cpu", "transformers5"):
        pin = pinned_lines(ROOT / "requirements" / f"{name}.txt")[0]
        result = resolved_torch(pin, both, tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        report = json.loads((tmp_path / "report.json").read_text())
        assert [item["metadata"]["version"] for item in report["install"]] == ["2.13.0+cpu"], name
        refused = resolved_torch(pin, pypi_only, tmp_path)
        assert refused.returncode != 0
        assert "No matching distribution found for torch==2.13.0+cpu" in refused.stderr
    former = resolved_torch("torch==2.13.0", pypi_only, tmp_path)
    assert former.returncode == 0
    assert json.loads((tmp_path / "report.json").read_text())["install"][0]["metadata"]["version"] == "2.13.0"


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
