"""The pytest plugin: options, markers, the ``perfgate`` fixture, and the end-of-run report.

Hooks and fixtures only; the work lives in ``session.PerfgateSession``'s three parts (``machine.py``,
``runner.py``, ``recorder.py``). Nothing heavy is imported here at plugin load: torch and friends load
when the first case runs.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from perfgate.engine.config import add_options, read_settings, user_models
from perfgate.engine.record import CaseResult
from perfgate.engine.spec import BASELINE, CaseSpec
from perfgate.errors import ConfigError, PerfgateError
from perfgate.instruments.outcome import Outcome, Verdict
from perfgate.plugin import hookspecs
from perfgate.plugin.session import PerfgateSession, Unavailable
from perfgate.records.export import junit_properties
from perfgate.records.regressions import Comparison, compare_run
from perfgate.records.results import write_atomically
from perfgate.reports.progress import Progress, load_durations
from perfgate.reports.report import TERMINAL_WIDTH, clip, terminal_summary
from perfgate.reports.sections import isolation_line
from perfgate.subjects.model import ModelRegistry
from perfgate.subjects.technique import Requirement

if TYPE_CHECKING:
    from perfgate.answers.upgrade import GateResult

__all__ = ["MARKERS", "Bench", "InconclusiveWarning", "session_key"]

session_key = pytest.StashKey[PerfgateSession]()

MARKERS = {
    "gpu": "gpu: needs a CUDA device; skipped elsewhere with the reason",
    "cpu": "cpu: measures on the CPU; select with -m cpu",
    "slow": "slow: the nightly selection (minutes each); skipped unless -m names it: -m slow, -m 'slow or not slow'",
    "requires": "requires(*modules): needs these optional libraries; skipped with the install hint when missing",
}
NO_CUDA_REASON = "no CUDA device: torch.cuda.is_available() is False on this machine"


class InconclusiveWarning(UserWarning):
    """A speed verdict the time budget could not decide; recorded, not failed."""


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS.values():
        config.addinivalue_line("markers", line)
    try:
        settings = read_settings(config)
        registry = ModelRegistry()
        config.hook.pytest_perfgate_register_models(registry=registry, config=config)
        for source in user_models(config):
            registry.add(source)
        session = PerfgateSession(config, settings, registry)
        session.validate()  # once, before any case: exit code 4 with one message, not a failure per test
    except PerfgateError as error:
        raise pytest.UsageError(f"perfgate: {error}") from None
    config.stash[session_key] = session
    config.pluginmanager.register(SessionReporter(session), "perfgate-session-reporter")
    if config.get_verbosity() >= 0 and session.recorder.xdist_worker is None:
        workers = session.recorder.xdist_workers() if session.recorder.xdist_controller else 1
        session.runner.progress = Progress(load_durations(settings.durations), _progress_writer(config),
                                    lambda item: marker_skip(item) is not None, workers=workers)  # fmt: skip
        config.pluginmanager.register(session.runner.progress, "perfgate-progress")


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[session_key].start()


def pytest_unconfigure(config: pytest.Config) -> None:
    if session_key in config.stash:
        config.stash[session_key].close()


def pytest_report_header(config: pytest.Config) -> list[str]:
    session = config.stash[session_key]
    return [
        f"perfgate: hardware {session.machine.hardware.describe()}",
        f"perfgate: {session.settings.describe()}, thresholds "
        + (", ".join(str(p) for p in session.settings.thresholds) or "none"),
        f"perfgate: {session.machine.coverage()}",
    ]


SLOW_REASON = "slow: part of the nightly selection; run it with -m slow (or -m 'slow or not slow' for everything)"


def marker_skip(item: pytest.Item) -> str | None:
    """Why ``item`` will be skipped before it runs (its markers against this run), or None."""
    # The default run must stay short; a -m expression that names "slow" decides for itself.
    if item.get_closest_marker("slow") is not None and "slow" not in (item.config.getoption("markexpr") or ""):
        return SLOW_REASON
    if item.get_closest_marker("gpu") is not None and not item.config.stash[session_key].machine.hardware.has_cuda:
        return NO_CUDA_REASON
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    reason = marker_skip(item)
    if reason:
        pytest.skip(reason)
    for marker in item.iter_markers("requires"):
        for module in marker.args:
            requirement = Requirement(module, marker.kwargs.get("fix", f"pip install {module.split('.')[0]}"))
            if requirement.missing():
                pytest.skip(f"optional library {module} is not installed ({requirement.fix})")


class SessionReporter:
    """Registered as a plugin at configure time: collects skip reasons and prints the summary."""

    def __init__(self, session: PerfgateSession) -> None:
        self.session = session
        self.comparison: Comparison | None = None
        self.test_outcomes: dict[str, tuple[str, str]] = {}  # nodeid -> (outcome, failure message)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """With --perfgate-history: compare the run with its history; a regression makes the exit status 1."""
        history, record = self.session.recorder.history, self.session.recorder.record
        if (
            history is None
            or record is None
            or self.session.recorder.xdist_worker
            or self.session.recorder.xdist_controller
        ):
            return  # under xdist the record is merged later: run `perfgate compare` on results.json
        self.comparison = compare_run(record, history, current_path=self.session.recorder.results_path)
        write_atomically(self.session.settings.report_dir / "compare.md", self.comparison.markdown())
        if self.comparison.regressions and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and isinstance(report.longrepr, tuple):
            self.session.recorder.skipped.append((report.nodeid, str(report.longrepr[2]).removeprefix("Skipped: ")))
        if report.failed:
            self.test_outcomes[report.nodeid] = ("failed", failure_message(report))
        elif report.when == "call" and report.nodeid not in self.test_outcomes:
            self.test_outcomes[report.nodeid] = ("passed", "")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        session = self.session
        session.close()  # workers exit before the report is written
        if session.recorder.xdist_controller:
            session.recorder.merge_parts()
        session.recorder.record_test_outcomes(self.test_outcomes)
        explained = []
        if session.settings.explain and not session.recorder.xdist_worker:
            from perfgate.answers.explain import explain_failed_gates  # numpy and the profiler only when asked for

            explained = explain_failed_gates(session)
        summary = session.recorder.write_summary(self.comparison, session.recorder.history or [])
        if session.recorder.record is None:
            return
        write = terminalreporter.write_line
        terminalreporter.section("perfgate summary")
        for line in terminal_summary(session.recorder.record, session.recorder.skipped):
            write(line, red=line.startswith("needs attention ("))
        if session.recorder.record.cases:
            write(clip(isolation_line(session.recorder.record.cases), TERMINAL_WIDTH))
        for key, entry in (session.recorder.record.calibration or {}).items():
            write(clip(f"calibration {key}: {entry['summary']}", TERMINAL_WIDTH))
        for gate in session.recorder.record.gates or []:
            arms = gate["arms"]
            checks = ", ".join(f"{c['name']} {c['verdict']}" for c in gate["checks"]) or gate["detail"]
            line = (f"upgrade gate {gate['technique']}: {arms['current']['model']} → {arms['candidate']['model']}: "
                    f"{gate['verdict']} ({checks})")  # fmt: skip
            write(clip(line, TERMINAL_WIDTH), red=gate["verdict"] == "fail")
        for line in explained:
            write(clip(f"explain {line}", TERMINAL_WIDTH))
        write(f"results: {_shown_path(session.recorder.results_path)}")
        write(f"summary with every column and section: {_shown_path(summary)}")
        if self.comparison is not None:
            write(f"against the history ({self.comparison.history_runs} comparable runs): {self.comparison.counts()}")
            for case in self.comparison.regressions:
                write(f"REGRESSION {case.case_id}: reproduce with {case.reproduce}", red=True)
            write(f"comparison: {_shown_path(session.settings.report_dir / 'compare.md')}")


def _deadline(value: Any, model: str, technique: str) -> float | None:
    """A case's own ``timeout=``: seconds above zero, or None for the run's ``--perfgate-case-timeout``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(
            f"perfgate.measure/gate({model!r}, {technique!r}, timeout={value!r}): a case's deadline is seconds "
            "above zero per worker job (e.g. timeout=120), or left out for --perfgate-case-timeout"
        )
    return float(value)


class Bench:
    """The ``perfgate`` fixture: measure a technique against fp32 eager and gate it on thresholds."""

    def __init__(self, session: PerfgateSession, request: pytest.FixtureRequest) -> None:
        self.session = session
        self.nodeid = request.node.nodeid
        self.node = request.node

    def measure(self, model: str, technique: str, **spec: Any) -> CaseResult:
        """Measure and record one case in worker processes; skips the test when it cannot run here.

        ``spec`` holds the other ``CaseSpec`` fields: batch_size, seq_len, device, threads, scenario;
        ``memory=False`` leaves serving memory out of this case (where another case measures it); and
        ``timeout=SECONDS`` is this case's own deadline per worker job (``--perfgate-case-timeout`` otherwise)."""
        memory = spec.pop("memory", None)
        timeout = _deadline(spec.pop("timeout", None), model, technique)
        case = CaseSpec(
            model=model, technique=technique, threads=spec.pop("threads", self.session.settings.threads), **spec
        )
        try:
            result = self.session.runner.run(case, self.nodeid, memory=memory, timeout=timeout)
            self.node.user_properties.extend(junit_properties(result))  # --junitxml writes them per test
            return result
        except Unavailable as reason:
            pytest.skip(str(reason))

    def gate(self, model: str, technique: str, **spec: Any) -> CaseResult:
        """Measure, then fail the test on a failed threshold or an outcome that is not a result."""
        result = self.measure(model, technique, **spec)
        self.enforce(result)
        return result

    def upgrade(
        self,
        current: str,
        candidate: str | None = None,
        technique: str = "fp32-eager",
        candidate_python: str | None = None,
        memory: bool | None = None,
        eval_file: Path | None = None,
        enforce: bool = True,
        device: str = "cpu",
        **policy: Any,
    ) -> GateResult:
        """May ``candidate`` (a model, or ``current`` under another environment's interpreter) replace
        ``current``? Speed, task accuracy and memory, each non-inferior within its margin (``policy``:
        ``GatePolicy`` fields; ``eval_file``: the labelled set, else the candidate's or the current
        model's). Fails the test on a failed check and warns when one is inconclusive, unless ``enforce`` is
        False (a measurement to report, such as a distilled student's cost in accuracy)."""
        from perfgate.answers.upgrade import GatePolicy

        settings = self.session.settings
        if settings.sources.get("budget", "default") != "default":  # --perfgate-budget given: it applies here too
            policy.setdefault("budget_seconds", settings.budget)
        result = self.session.runner.upgrade_gate(
            current,
            candidate or current,
            technique,
            candidate_python,
            GatePolicy(**policy),
            memory,
            device=device,
            eval_file=eval_file,
        )
        if not enforce:
            return result
        if result.verdict == Verdict.FAIL:
            from perfgate.reports.gates import gate_markdown

            pytest.fail(gate_markdown([result.to_dict()], title=""), pytrace=False)
        if result.verdict == Verdict.INCONCLUSIVE:
            undecided = [f"{c.name}: {c.detail}" for c in result.checks if c.verdict == Verdict.INCONCLUSIVE]
            warnings.warn(InconclusiveWarning("; ".join(undecided)), stacklevel=2)
        return result

    def enforce(self, result: CaseResult) -> None:
        if result.outcome != Outcome.MEASURED:
            log = f"\n--- worker log (last lines) ---\n{result.log}" if result.log else ""
            pytest.fail(f"{result.context}: outcome {result.outcome}: {result.detail}{log}", pytrace=False)
        failures = result.failures()
        if failures:
            pytest.fail("\n".join(check.message for check in failures), pytrace=False)
        if result.verdict == Verdict.UNGATED and self.session.settings.require_gated:
            pytest.fail(self.session.machine.ungated_message(result), pytrace=False)
        if result.verdict == Verdict.INCONCLUSIVE:
            undecided = [c.message for c in result.checks if c.verdict == Verdict.INCONCLUSIVE]
            warnings.warn(InconclusiveWarning("; ".join(undecided)), stacklevel=2)

    def calibrate(
        self, model: str, device: str = "cpu", batch_size: int = 1, fractions: Sequence[float] = (0.05, 0.10, 0.20)
    ) -> dict[str, Any]:
        """A/A and planted slowdowns of fp32 eager on ``model``; stored under the run's calibration."""
        spec = CaseSpec(
            model=model,
            technique=BASELINE,
            batch_size=batch_size,
            device=device,
            threads=self.session.settings.threads,
            scenario="calibration",
        )
        try:
            return self.session.runner.calibrate(spec, fractions)
        except Unavailable as reason:
            pytest.skip(str(reason))


def _progress_writer(config: pytest.Config) -> Callable[[str], None]:
    """Lines on the terminal, also from inside a test (past pytest's output capture), cut to its width."""

    def write(line: str) -> None:
        reporter = config.pluginmanager.getplugin("terminalreporter")
        capture = config.pluginmanager.getplugin("capturemanager")
        if reporter is None:
            return
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            writer = getattr(reporter, "_tw", None)  # pytest's TerminalWriter: after xdist's dots, a new line first
            if writer is not None and writer.width_of_current_line:
                writer.line()
            reporter.write_line(clip(line, TERMINAL_WIDTH))

    return write


def _shown_path(path: Path | None) -> str:
    """A path as the user typed it: relative to where pytest runs when it lies below."""
    if path is None:
        return "-"
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def failure_message(report: pytest.TestReport) -> str:
    """A failed test's message in one line: pytest's crash line where it has one."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = str(getattr(crash, "message", "") or report.longreprtext or "failed")
    return " ".join(text.split())[:300]


@pytest.fixture
def perfgate(request: pytest.FixtureRequest) -> Bench:
    """Measure techniques against the fp32 eager baseline; see ``Bench``."""
    return Bench(request.config.stash[session_key], request)
