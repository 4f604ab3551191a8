"""The run's record: created with the machine's fingerprint and the settings, saved after each change
(atomically; one part per pytest-xdist worker, merged by the controller into one ``results.json``), the
history it is compared with, the tests' outcomes, and the summary and HTML report at the end."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfgate.errors import ResultsFileError
from perfgate.instruments.nvml import clocks_and_power, read_nvml
from perfgate.records.results import RunRecord, merge_records, write_atomically
from perfgate.records.source import source_revision
from perfgate.reports.report import fit_job_summary, markdown_summary
from perfgate.subjects.hardware import cuda_settings
from perfgate.subjects.model import BASELINE_PLACEMENT

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pytest

    from perfgate.engine.config import Settings
    from perfgate.plugin.machine import MachineView
    from perfgate.records.history import History
    from perfgate.records.regressions import Comparison

__all__ = ["PARTS", "RunRecorder"]

PARTS = ".parts"  # beside results.json: one record per pytest-xdist worker, merged by the controller


class RunRecorder:
    def __init__(self, config: pytest.Config, settings: Settings, machine: MachineView) -> None:
        self.config = config
        self.settings = settings
        self.machine = machine
        self.record: RunRecord | None = None
        self.skipped: list[tuple[str, str]] = []
        self.history: History | None = None  # past runs, with --perfgate-history
        workerinput: dict[str, Any] = getattr(config, "workerinput", {})
        self.xdist_worker: str | None = workerinput.get("workerid")
        self.xdist_controller = self.xdist_worker is None and config.getoption("dist", "no") != "no"

    def load_history(self) -> None:
        """Read the history once, before any case: a missing directory or a corrupt file ends the run here."""
        if self.settings.history is not None:
            from perfgate.records.history import load_history

            self.history = load_history(self.settings.history)

    def ensure_record(self) -> RunRecord:
        if self.record is None:
            fingerprint = self.machine.hardware.fingerprint()
            # timed jobs copy the fp32 weights into torch's allocator; serving memory keeps them mapped
            fingerprint["baseline_placement"] = {"weights": BASELINE_PLACEMENT, "serving_memory": "mapped"}
            fingerprint["source"] = source_revision(self.config.rootpath)  # the code measured: explain's good side
            if self.machine.gpu is not None:
                fingerprint["gpu_placement"] = asdict(self.machine.gpu)  # which GPU this process's CUDA cases ran on
                fingerprint["cuda_settings"] = cuda_settings()
                fingerprint["gpu_clocks"] = read_nvml(
                    self.machine.placed("cuda"), clocks_and_power
                )  # at the run's start
            self.config.hook.pytest_perfgate_machine_info(info=fingerprint)
            settings = {k: str(v) for k, v in asdict(self.settings).items() if k != "sources"}
            settings["markexpr"] = self.config.getoption("markexpr", "") or ""  # what a re-run must select again
            self.record = RunRecord(fingerprint=fingerprint, config=settings, perfgate_version=_version())
        return self.record

    def record_calibration(self, key: str, entry: dict[str, Any]) -> None:
        record = self.ensure_record()
        record.calibration = {**(record.calibration or {}), key: entry}
        self.save()

    @property
    def results_path(self) -> Path:
        return self.settings.report_dir / "results.json"

    @property
    def parts_dir(self) -> Path:
        return self.settings.report_dir / PARTS

    def save(self) -> None:
        if self.record is None:
            return
        path = self.parts_dir / f"{self.xdist_worker}.json" if self.xdist_worker else self.results_path
        self.record.save(path)

    def start(self) -> None:
        """At session start on the controller (or a plain run): clear the parts of an earlier xdist run."""
        if self.xdist_worker is None:
            shutil.rmtree(self.parts_dir, ignore_errors=True)

    def merge_parts(self) -> None:
        """On the xdist controller: one record from every worker's part, saved as results.json."""
        parts = sorted(self.parts_dir.glob("*.json"))
        if not parts:
            return
        records = []
        for part in parts:
            try:
                records.append(RunRecord.load(part))
            except ResultsFileError as error:  # a worker killed mid-write leaves no part, never half of one
                self.skipped.append((str(part), f"unreadable xdist part: {error}"))
        if not records:
            return
        merged = merge_records(records)
        merged.config["xdist_workers"] = str(len(records))
        self.record = merged
        merged.save(self.results_path)
        shutil.rmtree(self.parts_dir, ignore_errors=True)

    def xdist_workers(self) -> int:
        """How many pytest-xdist workers the controller started (-n N; 'auto' already resolved)."""
        try:
            return max(int(self.config.getoption("numprocesses", 1) or 1), 1)
        except (TypeError, ValueError):
            return 1

    def record_test_outcomes(self, outcomes: dict[str, tuple[str, str]]) -> None:
        """Each case's test outcome (nodeid -> (outcome, failure message)), saved with the record: a FAIL
        verdict whose test passed was expected by it."""
        if self.record is None or self.xdist_worker:
            return
        for case in self.record.cases:
            if case.nodeid in outcomes:
                case.test_outcome, case.test_failure = outcomes[case.nodeid]
        self.save()

    def write_summary(self, comparison: Comparison | None = None, history: Sequence[Any] = ()) -> Path | None:
        """summary.md, and report.html where matplotlib is installed and ``--perfgate-html`` is on (with
        the history's figure when the run was compared)."""
        if self.record is None or self.xdist_worker:
            return None
        path = self.settings.report_dir / "summary.md"
        summary = markdown_summary(self.record, self.skipped, comparison)
        write_atomically(path, summary)
        # What CI appends to $GITHUB_STEP_SUMMARY: the same, cut to fit its 1 MiB.
        write_atomically(self.settings.report_dir / "job-summary.md", fit_job_summary(summary))
        if self.settings.html and importlib.util.find_spec("matplotlib") is not None:
            from perfgate.reports.html_report import html_report

            write_atomically(
                self.settings.report_dir / "report.html", html_report(self.record, comparison, history, self.skipped)
            )
        return path


def _version() -> str:
    try:
        return importlib.metadata.version("perfgate")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
