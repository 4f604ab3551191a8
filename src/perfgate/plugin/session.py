"""One object per pytest process, made of three parts with one job each:

- ``machine`` (``MachineView``): this machine, its hardware class and GPU, the thresholds that apply
  here, the evaluation sentences, and the configuration checked before any case;
- ``runner`` (``CaseRunner``): the workers' launcher and each case measured, judged and recorded;
- ``recorder`` (``RunRecorder``): the run's record, saved after each change, merged under
  pytest-xdist, and the summary and HTML report at the end.

It holds configuration and results, never models: those live in worker processes (``launcher``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perfgate.plugin.machine import MachineView
from perfgate.plugin.recorder import RunRecorder
from perfgate.plugin.runner import CaseRunner, Unavailable

if TYPE_CHECKING:
    import pytest

    from perfgate.engine.config import Settings
    from perfgate.subjects.model import ModelRegistry

__all__ = ["PerfgateSession", "Unavailable"]


class PerfgateSession:
    def __init__(self, config: pytest.Config, settings: Settings, models: ModelRegistry) -> None:
        self.config = config
        self.settings = settings
        self.models = models
        self.machine = MachineView(config, settings, models)
        self.recorder = RunRecorder(config, settings, self.machine)
        self.runner = CaseRunner(config, settings, models, self.machine, self.recorder)

    def validate(self) -> None:
        """Raise for configuration that would otherwise fail every case, or gate nothing; read the history."""
        self.machine.validate()
        self.recorder.load_history()

    def start(self) -> None:
        self.recorder.start()

    def close(self) -> None:
        self.runner.close()
