"""Extension points, implemented in a ``conftest.py`` or a plugin of your own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy
import pytest

if TYPE_CHECKING:
    from perfgate.subjects.hardware import Hardware
    from perfgate.subjects.model import ModelRegistry
    from perfgate.verdicts.thresholds import Thresholds

hookspec = pluggy.HookspecMarker("pytest")


@hookspec
def pytest_perfgate_register_models(registry: ModelRegistry, config: pytest.Config) -> None:
    """Add models the suite can name. Called once, at configure time.

    Example::

        def pytest_perfgate_register_models(registry, config):
            registry.add(ModelSource("my-encoder", "feature-extraction", path=Path("/models/enc")))
    """


@hookspec(firstresult=True)
def pytest_perfgate_hardware_class(hardware: Hardware, device: str) -> str | None:
    """Name the hardware class results on ``device`` are keyed by; None keeps the detected one.

    Example (pool two runner types that measured alike)::

        def pytest_perfgate_hardware_class(hardware, device):
            if device == "cpu" and "EPYC" in hardware.cpu.model:
                return "cpu-epyc"
    """


@hookspec
def pytest_perfgate_hardware_classes() -> list[str]:
    """Declare the hardware class names your ``pytest_perfgate_hardware_class`` can return, so that
    thresholds sections naming them are accepted (a section naming no known class is a usage error).

    Example::

        def pytest_perfgate_hardware_classes():
            return ["cpu-epyc"]
    """
    return []


@hookspec
def pytest_perfgate_machine_info(info: dict[str, Any]) -> None:
    """Add fields to the run's fingerprint (stored in results.json).

    Example::

        def pytest_perfgate_machine_info(info):
            info["runner"] = os.environ.get("RUNNER_NAME", "local")
    """


@hookspec(firstresult=True)
def pytest_perfgate_thresholds(technique: str, hardware_class: str, thresholds: Thresholds) -> Thresholds | None:
    """Return replacement thresholds for one technique and class, or None to keep the file's.

    Example (gate a release branch more strictly)::

        def pytest_perfgate_thresholds(technique, hardware_class, thresholds):
            if technique == "onnxruntime-o2" and os.environ.get("RELEASE"):
                return dataclasses.replace(thresholds, values={**thresholds.values, "min_speedup": 1.5})
    """
