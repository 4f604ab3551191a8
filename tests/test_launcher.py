"""The process boundary, as a user meets it: native faults in a technique are recorded outcomes, the
worker is replaced, and the cases after them run and pass."""

from __future__ import annotations

import json
import re
import signal

import pytest

from perfgate.engine.launcher import crash_cause, describe_exit
from perfgate.reports.report import TERMINAL_WIDTH
from tests.user_project import micro_run, perfgate_summary, plant


def test_an_abort_a_segfault_and_a_native_hang_are_outcomes_and_the_run_goes_on(project, micro_model_dir):
    plant(project)
    project.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("technique", [
            "fp32-eager", "planted-abort", "torch-dynamic-int8-per-channel", "planted-segfault",
            "fp32-eager", "planted-native-hang", "torch-dynamic-int8-per-channel",
        ])
        def test_case(perfgate, technique):
            # The hang's own deadline; the others keep the run's 900 s: the legitimate case after the hang
            # (a new worker, a model load, int8 quantization) takes 10 s quietly but once ran past 40 s
            # beside a CPU hog and three xdist workers on 2 cores, when one deadline served all.
            deadline = {"timeout": 15} if technique == "planted-native-hang" else {}
            perfgate.gate("micro", technique, batch_size=2, **deadline)
        """
    )
    # Serving memory off: outcomes are what this test is about, and its fresh workers cost half its time.
    result = project.runpytest_subprocess(*micro_run(micro_model_dir), "--perfgate-memory=off")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=3, passed=4)
    result.stdout.fnmatch_lines(
        [
            "*planted-abort on micro*outcome crashed: worker pid * killed by signal SIGABRT*",
            "*planted-segfault on micro*outcome crashed: worker pid * killed by signal SIGSEGV*",
            "*planted-native-hang on micro*outcome timeout: worker pid * killed after 15 s*",
            "*perfgate summary*",
        ]
    )
    cases = json.loads((project.path / "out" / "results.json").read_text())["cases"]
    outcomes = [c["outcome"] for c in cases]
    assert outcomes == ["measured", "crashed", "measured", "crashed", "measured", "timeout", "measured"]
    assert "Fatal Python error: Aborted" in cases[1]["log"]  # faulthandler's stack, from the worker's stderr
    assert "Fatal Python error: Aborted; crashing frame: File" in cases[1]["detail"]  # not the module list
    assert "Segmentation fault" in cases[3]["log"]
    # Which signal ended it (the blocked mask is per thread: another thread may still take SIGTERM).
    assert re.search(r"\((ab-forward); (SIGTERM ended it|it ignored SIGTERM for the 1 s grace period; SIGKILL "
                     r"ended it)\)$", cases[5]["detail"]), cases[5]["detail"]  # fmt: skip
    summary = (project.path / "out" / "summary.md").read_text()
    for outcome in ("crashed", "timeout"):
        assert f"**{outcome}**" in summary
    # The crash's cause survives into summary.md whole: the fatal error and the frame it names.
    assert f"**crashed**: {cases[1]['detail']}" in summary
    terminal = perfgate_summary(result.outlines)
    assert max(len(line) for line in terminal) <= TERMINAL_WIDTH
    assert any("(FAIL): crashed: worker pid" in line for line in terminal)


def test_a_cuda_error_replaces_the_worker_and_the_next_case_runs_in_a_new_one(project, micro_model_dir):
    plant(project)
    project.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("technique", ["fp32-eager", "planted-cuda-error", "fp32-eager"])
        def test_case(perfgate, technique):
            perfgate.gate("micro", technique, batch_size=2)
        """
    )
    result = project.runpytest_subprocess(*micro_run(micro_model_dir), "--perfgate-memory=off")
    result.assert_outcomes(failed=1, passed=2)
    result.stdout.fnmatch_lines(["*planted-cuda-error on micro*outcome error: CUDA error (the worker's CUDA context*"])
    cases = json.loads((project.path / "out" / "results.json").read_text())["cases"]
    before, failed, after = ([job["pid"] for job in c["worker"]["jobs"]] for c in cases)
    assert before == failed, "cases on one model share a worker until something goes wrong"
    assert after != failed, "the worker that saw a CUDA error must not run the next case"
    assert cases[2]["outcome"] == "measured"


def test_a_technique_that_needs_a_fresh_worker_gets_one(project, micro_model_dir):
    project.makeconftest(
        """
        from perfgate import register_technique
        from perfgate.subjects.techniques.eager import Fp32Eager

        class LeavesGlobalState(Fp32Eager):
            name = "leaves-global-state"
            fresh_worker = True

        register_technique("leaves-global-state", "conftest:LeavesGlobalState")
        """
    )
    project.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("technique", ["fp32-eager", "leaves-global-state", "fp32-eager"])
        def test_case(perfgate, technique):
            perfgate.gate("micro", technique, batch_size=2)
        """
    )
    result = project.runpytest_subprocess(*micro_run(micro_model_dir), "--perfgate-memory=off")
    result.assert_outcomes(passed=3)
    cases = json.loads((project.path / "out" / "results.json").read_text())["cases"]
    pids = [c["worker"]["jobs"][0]["pid"] for c in cases]
    assert pids[1] not in (pids[0], pids[2])
    assert cases[1]["worker"]["jobs"][0]["fresh"] is True


@pytest.mark.parametrize(
    ("code", "text"),
    [(-signal.SIGABRT, "killed by signal SIGABRT"), (-signal.SIGSEGV, "killed by signal SIGSEGV"),
     (3, "exited with code 3"), (None, "still running")],
)  # fmt: skip
def test_an_exit_status_is_described_by_its_signal_name(code, text):
    assert describe_exit(code) == text


def test_a_worker_that_does_not_start_in_time_is_killed_and_leaves_nothing_behind():
    import sys

    import psutil

    from perfgate.engine.launcher import WorkerLate, WorkerProcess

    with pytest.raises(WorkerLate, match="no reply within"):
        WorkerProcess(sys.path, start_timeout=0.001, grace=1)
    alive = [p for p in psutil.Process().children() if "perfgate.engine.worker" in " ".join(p.cmdline())]
    assert alive == []


FAULTHANDLER = """Fatal Python error: Aborted

Current thread 0x00007f (most recent call first):
  File "/src/tests/planted.py", line 36 in _abort
  File "/src/perfgate/worker.py", line 120 in serve

Extension modules: numpy._core._multiarray_umath, torch._C, yaml._yaml (total: 3)"""


def test_the_crash_cause_is_the_fatal_error_and_its_frame_not_the_module_list():
    assert crash_cause(FAULTHANDLER) == (
        'Fatal Python error: Aborted; crashing frame: File "/src/tests/planted.py", line 36 in _abort'
    )
    traceback = 'Traceback (most recent call last):\n  File "w.py", line 3, in run\nRuntimeError: CUDA error\n'
    assert crash_cause(traceback) == "last exception: RuntimeError: CUDA error"
    assert crash_cause("loading\nExtension modules: numpy (total: 1)") == "last stderr line: loading"
    assert crash_cause("") == ""


def test_a_failed_worker_s_whole_log_is_kept_where_asked(project, micro_model_dir, monkeypatch, tmp_path):
    """A GPU visit packs them: the case's record holds only the log's tail."""
    from perfgate.engine.launcher import KEEP_FAILED_LOGS

    plant(project)
    project.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("technique", ["planted-abort", "fp32-eager"])
        def test_case(perfgate, technique):
            perfgate.gate("micro", technique, batch_size=2)
        """
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setenv(KEEP_FAILED_LOGS, "1")
    result = project.runpytest_subprocess(*micro_run(micro_model_dir), "--perfgate-memory=off")
    result.assert_outcomes(failed=1, passed=1)
    kept = list(scratch.glob("perfgate-worker-failed-*.log"))
    assert len(kept) == 1, sorted(p.name for p in scratch.iterdir())
    assert kept[0].stat().st_size > 0
    assert not list(scratch.glob("perfgate-worker-[0-9]*.log"))  # the healthy worker's log went with it
