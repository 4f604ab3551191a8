"""The session: bad configuration is one usage error before any case; every case is on record from
before it runs; pytest-timeout and pytest-xdist work alongside."""

from __future__ import annotations

import json
import time

import psutil
import pytest

from tests.user_project import micro_run, plant

ONE_CASE = "def test_it(perfgate):\n    perfgate.gate('micro', 'fp32-eager', batch_size=2)\n"


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ("[techniques.\n", "*thresholds file*syntax=*fix the TOML syntax*"),
        ('[techniques."fp32-eager".cpu]\nmin_cosine = "high"\n',
         "*fp32-eager.cpu.min_cosine='high': must be a number in [[]-1, 1[]]*"),
        ('[techniques."fp32-eager".cpu-avx512bf16]\nmin_speedup = 1.0\n',
         "*techniques.fp32-eager.cpu-avx512bf16='cpu-avx512bf16': names no known hardware class*cpu-avx512-bf16*"),
    ],
    ids=["malformed", "string-for-a-number", "unknown-class"],
)  # fmt: skip
def test_a_bad_thresholds_file_ends_the_run_before_any_case_with_one_usage_error(
    project, micro_model_dir, thresholds, message
):
    project.makefile(".toml", thresholds=thresholds)
    project.makepyfile(ONE_CASE + "\ndef test_other(perfgate):\n    pass\n")
    result = project.runpytest(*micro_run(micro_model_dir), f"--perfgate-thresholds={project.path / 'thresholds.toml'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: perfgate: {message}"])
    assert str(result.stderr).count("perfgate:") == 1
    assert not (project.path / "out" / "results.json").exists()


def test_a_class_declared_by_a_hook_is_accepted_in_thresholds(project, micro_model_dir):
    project.makeconftest("def pytest_perfgate_hardware_classes():\n    return ['cpu-epyc-pool']\n")
    project.makefile(".toml", thresholds='[techniques."fp32-eager".cpu-epyc-pool]\nmin_cosine = 0.99\n')
    project.makepyfile("def test_nothing():\n    pass\n")
    result = project.runpytest(*micro_run(micro_model_dir), f"--perfgate-thresholds={project.path / 'thresholds.toml'}")
    assert result.ret == pytest.ExitCode.OK


def test_a_model_directory_that_does_not_exist_is_a_usage_error_naming_the_path(project):
    project.makepyprojecttoml('[tool.perfgate.models.mine]\npath = "models/not-there"\ntask = "feature-extraction"\n')
    project.makepyfile("def test_it(perfgate):\n    perfgate.measure('mine', 'fp32-eager')\n")
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: perfgate: model 'mine': path=*models/not-there* is not a directory*"])


def orphaned_workers() -> list[int]:
    """Worker processes whose pytest process (their last argument) is gone."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        command = process.info["cmdline"] or []
        if "perfgate.engine.worker" in command and not psutil.pid_exists(int(command[-1])):
            found.append(process.info["pid"])
    return found


def test_a_case_is_on_record_as_started_even_when_pytest_itself_dies(project, micro_model_dir):
    """pytest-timeout's thread method ends the whole process with os._exit: no summary, no teardown.
    The worker, hung in native code with every signal blocked, must not outlive it."""
    plant(project)
    project.makepyfile("def test_it(perfgate):\n    perfgate.gate('micro', 'planted-native-hang')\n")
    result = project.runpytest_subprocess(*micro_run(micro_model_dir), "--timeout=6", "--timeout-method=thread")
    assert result.ret != pytest.ExitCode.OK
    (case,) = json.loads((project.path / "out" / "results.json").read_text())["cases"]
    assert case["outcome"] == "started"
    time.sleep(1)
    assert orphaned_workers() == []


def test_pytest_timeout_still_fails_a_hung_case_and_the_next_case_runs(project, micro_model_dir):
    plant(project)
    # The hang's own pytest-timeout: the case after it (a new worker, a model load) must not share a deadline
    # that a loaded 2-core runner can stretch it past.
    hang = "import pytest\n\n@pytest.mark.timeout(20)\ndef test_hang(perfgate):\n"
    hang += "    perfgate.gate('micro', 'planted-native-hang')\n\n"
    project.makepyfile(hang + ONE_CASE)
    result = project.runpytest_subprocess(*micro_run(micro_model_dir), "--perfgate-memory=off")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*Failed: Timeout (>20.0s) from pytest-timeout*"])
    cases = json.loads((project.path / "out" / "results.json").read_text())["cases"]
    assert [c["outcome"] for c in cases] == ["timeout", "measured"]


def test_xdist_workers_results_are_merged_into_one_file_and_one_summary(project, micro_model_dir):
    project.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("batch", [1, 2, 3, 4])
        def test_case(perfgate, batch):
            perfgate.gate("micro", "fp32-eager", batch_size=batch)
        """
    )
    result = project.runpytest_subprocess(*micro_run(micro_model_dir), "-n", "2", "--perfgate-memory=off")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*perfgate summary*"])
    record = json.loads((project.path / "out" / "results.json").read_text())
    assert sorted(c["spec"]["batch_size"] for c in record["cases"]) == [1, 2, 3, 4]
    assert record["config"]["xdist_workers"] == "2"
    assert (project.path / "out" / "summary.md").read_text().count("| micro |") == 4
    assert not (project.path / "out" / ".parts").exists()
