"""The plugin as users meet it, through pytester: markers, options, header, verdicts and outcomes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from perfgate.engine.config import OPTIONS
from perfgate.plugin import MARKERS, NO_CUDA_REASON
from perfgate.reports.report import TERMINAL_WIDTH
from tests.user_project import SENTENCES, micro_run, perfgate_summary, plant


def test_every_marker_is_registered_with_its_sentence(project):
    result = project.runpytest("--markers")
    for line in MARKERS.values():
        result.stdout.fnmatch_lines([f"@pytest.mark.{line}"])


def test_gpu_selection_on_a_cpu_machine_skips_each_gpu_test_with_its_reason(project):
    if Path("/dev/nvidia0").exists():
        pytest.skip("this machine has an NVIDIA device: the GPU tests would run, not skip")
    project.makepyfile(
        """
        import pytest

        @pytest.mark.gpu
        def test_on_gpu(): pass

        @pytest.mark.gpu
        def test_also_on_gpu(): pass

        def test_on_cpu(): pass
        """
    )
    result = project.runpytest_subprocess("-m", "gpu", "-rs")
    result.assert_outcomes(skipped=2, deselected=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"SKIPPED [[]2[]]*{NO_CUDA_REASON}"])


def test_a_missing_optional_library_skips_with_the_install_hint(project):
    project.makepyfile(
        """
        import pytest

        @pytest.mark.requires("no_such_library_xyz", fix="pip install xyz")
        def test_needs_it(): pass
        """
    )
    result = project.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*optional library no_such_library_xyz is not installed (pip install xyz)*"])


def test_an_unregistered_marker_is_an_error(project):
    project.makeini("[pytest]\naddopts = --strict-markers\n")
    project.makepyfile("import pytest\n@pytest.mark.gpux\ndef test_typo(): pass\n")
    result = project.runpytest()
    result.stdout.fnmatch_lines(["*'gpux' not found in `markers` configuration option*"])


def test_the_report_header_shows_the_hardware_class_and_settings(project):
    project.makepyfile("def test_nothing(): pass\n")
    result = project.runpytest("--perfgate-budget", "7", "--perfgate-hardware-class", "cpu-test")
    result.stdout.fnmatch_lines(
        ["perfgate: hardware cpu cpu-test*", "perfgate: budget=7.0 (command line --perfgate-budget)*"]
    )


@pytest.mark.parametrize("where", ["command line", "environment"])
def test_a_bad_option_value_is_a_usage_error_naming_where_it_came_from(project, monkeypatch, where):
    budget = next(o for o in OPTIONS if o.name == "budget")
    project.makepyfile("def test_nothing(): pass\n")
    if where == "command line":
        result = project.runpytest(budget.flag, "-3")
    else:
        monkeypatch.setenv(budget.env, "soon")
        result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*perfgate: {where}*budget=*is invalid*"])


def test_the_command_line_beats_the_environment_which_beats_the_ini(project, monkeypatch):
    project.makeini(f"[pytest]\nperfgate_budget = 3\nperfgate_sentences = {SENTENCES}\n")
    project.makepyfile("def test_nothing(): pass\n")
    monkeypatch.setenv("PERFGATE_BUDGET", "4")
    project.runpytest().stdout.fnmatch_lines(["*budget=4.0 (environment PERFGATE_BUDGET)*"])
    project.runpytest("--perfgate-budget=5").stdout.fnmatch_lines(["*budget=5.0 (command line*"])
    monkeypatch.delenv("PERFGATE_BUDGET")
    project.runpytest().stdout.fnmatch_lines(["*budget=3.0 (ini perfgate_budget)*"])


def test_an_unknown_technique_name_lists_the_known_ones(project, micro_model_dir):
    project.makepyfile("def test_it(perfgate):\n    perfgate.measure('micro', 'int9-magic')\n")
    result = project.runpytest(f"--perfgate-model=micro={micro_model_dir}:text-classification")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unknown technique name='int9-magic'; known techniques: *fp32-eager*"])


def test_verdicts_and_outcomes_are_reported_and_every_result_is_kept(project, micro_model_dir):
    """One subprocess run: a threshold failure, a real out-of-memory, and a passing case after them."""
    plant(project)
    project.makefile(
        ".toml",
        thresholds='schema = 1\n[techniques."fp32-eager".cpu-test]\nmin_speedup = 5.0\nmin_cosine = 0.99\n',
    )
    project.makepyfile(
        """
        def test_impossible_speedup(perfgate):
            perfgate.gate("micro", "fp32-eager", batch_size=2)

        def test_out_of_memory(perfgate):
            perfgate.gate("micro", "planted-oom", batch_size=4)

        def test_runs_on_after_the_oom(perfgate):
            result = perfgate.gate("micro", "torch-dynamic-int8-per-channel", batch_size=4)
            assert result.outcome == "measured"
        """
    )
    # A budget of 5 s: the A/A decides in a few pairs, unless a loaded machine (tests under xdist) leaves it
    # two pairs in micro_run's 1 s, an INCONCLUSIVE interval where this test needs the FAIL.
    result = project.runpytest_subprocess(*micro_run(micro_model_dir), "--perfgate-hardware-class=cpu-test",
                                          f"--perfgate-thresholds={project.path / 'thresholds.toml'}",
                                          "--perfgate-budget=5", "--perfgate-memory=off")  # fmt: skip
    result.assert_outcomes(failed=2, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*fp32-eager on micro (batch 2, cpu, cpu-test): speedup *x, 95% CI [[]*, *[]] over * pairs*"
            "baseline p50 * ms, candidate p50 * ms; CI must clear 5x from min_speedup 5 (*thresholds.toml*) -> FAIL*",
            "*planted-oom on micro (batch 4, cpu, cpu-test): outcome oom: out of memory at batch_size=4: *"
            "can't allocate memory*",
            "*perfgate summary*",
        ]
    )
    summary = perfgate_summary(result.outlines)
    assert max(len(line) for line in summary) <= TERMINAL_WIDTH
    assert summary[0] == "3 cases on cpu-test: 2 FAIL, 1 UNGATED"
    assert summary[1] == "needs attention (2):"
    cases = json.loads((project.path / "out" / "results.json").read_text())["cases"]
    assert [c["test_outcome"] for c in cases] == ["failed", "failed", "passed"]
    assert [c["outcome"] for c in cases] == ["measured", "oom", "measured"]
    assert cases[0]["verdict"] == "fail"
    assert cases[1]["metrics"]["memory"]["at_failure"]["rss"] > 0
    speed = cases[0]["metrics"]["speed"]
    assert len(speed["samples"]["baseline"]) == speed["estimate"]["pairs"]
    assert (project.path / "out" / "summary.md").read_text().split("## ")[0].count("| micro |") == 3


def test_a_user_technique_that_hangs_is_recorded_as_a_timeout_and_the_run_goes_on(project, micro_model_dir):
    """Also shows the extension point: a technique defined in a user's conftest, registered by name."""
    project.makeconftest(
        """
        import time
        from perfgate import Technique, Variant, register_technique

        class Hangs(Technique):
            name = "hangs"
            summary = "a forward pass that never returns in time"

            def apply(self, model, workdir, threads):
                def run(inputs):
                    time.sleep(30)
                return Variant(self.name, run, memory_bytes=1)

        register_technique("hangs", "conftest:Hangs")
        """
    )
    project.makepyfile(
        """
        def test_hangs(perfgate):
            perfgate.gate("micro", "hangs", timeout=10)  # its own deadline; the case after keeps the run's

        def test_no_deadline(perfgate):
            perfgate.gate("micro", "fp32-eager", timeout=0)

        def test_after(perfgate):
            perfgate.gate("micro", "fp32-eager", batch_size=2)
        """
    )
    result = project.runpytest_subprocess(*micro_run(micro_model_dir), "--perfgate-memory=off")
    result.assert_outcomes(failed=2, passed=1)
    result.stdout.fnmatch_lines(["*hangs on micro (batch 1, cpu, *): outcome timeout: worker pid * killed after 10 s*"])
    result.stdout.fnmatch_lines(["*gate('micro', 'fp32-eager', timeout=0): a case's deadline is seconds above zero*"])
    cases = json.loads((project.path / "out" / "results.json").read_text())["cases"]
    assert [c["outcome"] for c in cases] == ["timeout", "measured"]


def test_on_an_unknown_class_fidelity_still_judges_and_speed_is_recorded_ungated(project, micro_model_dir):
    """A user's runner of a class nobody measured: the shipped and the user's fidelity floors judge there."""
    plant(project, 'register_technique("planted-half-cosine", "perf.planted:BendsOutputsToHalfCosine")\n')
    project.makefile(".toml", thresholds='[techniques."planted-half-cosine".default]\nmin_cosine = 0.9\n')
    project.makepyfile(
        """
        def test_broken(perfgate):
            perfgate.gate('micro', 'planted-half-cosine', batch_size=2)

        def test_good(perfgate):
            perfgate.gate('micro', 'attention-eager', batch_size=2)
        """
    )
    options = [*micro_run(micro_model_dir), "--perfgate-hardware-class=cpu-riscv-someday", "--perfgate-memory=off",
               f"--perfgate-thresholds={project.path / 'thresholds.toml'}"]  # fmt: skip
    result = project.runpytest_subprocess(*options)
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*cosine 0.5* misses >= min_cosine 0.9*",
            "  attention-eager b2 *UNGATED *",
            "hardware class cpu-riscv-someday has no speed or memory thresholds for attention-eager: measured and *",
        ]
    )
    broken, good = json.loads((project.path / "out" / "results.json").read_text())["cases"]
    assert broken["verdict"] == "fail"
    assert good["verdict"] == "ungated"
    assert good["metrics"]["speed"]["samples"]["baseline"]
    fidelity = {c["name"]: c for c in good["checks"]}["min_cosine"]
    assert fidelity["verdict"] == "pass"
    assert "shipped.toml" in fidelity["message"]

    required = project.runpytest_subprocess(*options, "--perfgate-require-gated", "-k", "good")
    required.assert_outcomes(failed=1)
    required.stdout.fnmatch_lines(
        ["*min_speedup measured with no threshold on cpu-riscv-someday, and --perfgate-require-gated is on*"
         "perfgate thresholds derive --history HISTORY --class cpu-riscv-someday*"]
    )  # fmt: skip


def test_slow_tests_skip_with_the_reason_unless_the_marker_expression_names_them(project):
    project.makepyfile(
        """
        import pytest

        @pytest.mark.slow
        def test_nightly(): pass

        def test_default(): pass
        """
    )
    default = project.runpytest("-rs")
    default.assert_outcomes(passed=1, skipped=1)
    default.stdout.fnmatch_lines(["*slow: part of the nightly selection; run it with -m slow*"])
    project.runpytest("-m", "slow or not slow").assert_outcomes(passed=2)
    project.runpytest("-m", "slow").assert_outcomes(passed=1, deselected=1)


def test_a_run_is_compared_with_its_history_and_a_regression_fails_the_session(project, micro_model_dir):
    """Run once, plant a history in which the same case ran at 1000x, run again: exit status 1."""
    project.makepyfile(
        """
        def test_int8(perfgate):
            perfgate.measure("micro", "torch-dynamic-int8-per-channel", batch_size=1)
        """
    )
    # The run's own interval widens the band: at 1 s under three xdist workers (CI, 2026-12-07) it spread
    # 0.62x-21.45x, which widens a band around 1000x to [170x, 5900x] (a half-width in log space): far above
    options = [*micro_run(micro_model_dir), "--perfgate-memory=off"]
    history = project.path / "history"
    history.mkdir()
    first = project.runpytest(*options, "--perfgate-history=history")
    assert first.ret == 0
    first.stdout.fnmatch_lines(["*against the history (0 comparable runs): 1 new*"])
    assert not (project.path / "out" / "report.html").exists()  # perfgate_html = off in the project's ini
    past = json.loads((project.path / "out" / "results.json").read_text())
    estimate = past["cases"][0]["metrics"]["speed"]["estimate"]
    # A night when this case was far faster than any machine measures it: a fixed figure, not a multiple of
    # the first run's, which a loaded machine (tests under xdist) measured anywhere from 0.3x to 3x.
    estimate.update(speedup=1000.0, ci_low=900.0, ci_high=1100.0)
    (history / "past.json").write_text(json.dumps(past))
    second = project.runpytest(*options, "--perfgate-history=history", "--perfgate-html=on")
    assert second.ret == 1
    second.stdout.fnmatch_lines(["*1 regression*", "REGRESSION micro/torch-dynamic-int8-per-channel/b1/cpu*"])
    assert "regression" in (project.path / "out" / "compare.md").read_text()
    assert "Against the history" in (project.path / "out" / "report.html").read_text()  # with its figure


def test_a_missing_history_directory_is_a_usage_error_before_any_case(project, micro_model_dir):
    project.makepyfile("def test_nothing(perfgate): pass\n")
    result = project.runpytest(*micro_run(micro_model_dir), "--perfgate-history=no-such-dir")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*history directory*no-such-dir*does not exist*"])


def test_the_upgrade_fixture_runs_the_gate_on_the_device_it_is_given(project, micro_model_dir):
    """device= reaches the arms' workers: on a machine without CUDA a cuda gate is an outcome that
    says so, where the same gate on cpu is measured."""
    project.makepyfile(
        """
        import json, torch

        def test_cuda(perfgate):
            result = perfgate.upgrade("micro", memory=False, enforce=False, device="cuda", budget_seconds=0.5)
            print("RESULT", json.dumps({"outcome": str(result.outcome), "detail": result.detail}))
            assert torch.cuda.is_available() or result.outcome != "measured"

        def test_cpu(perfgate):
            result = perfgate.upgrade("micro", memory=False, enforce=False, budget_seconds=0.5)
            assert result.outcome == "measured", result.detail
        """
    )
    result = project.runpytest_subprocess(*micro_run(micro_model_dir), "-s")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*RESULT*error*CUDA*"])


def test_two_techniques_head_to_head_are_measured_against_each_other_and_never_gated(project, micro_model_dir):
    project.makefile(
        ".toml", thresholds='schema = 1\n[techniques."bf16-cast".cpu-test]\nmin_speedup = 50.0\nmin_cosine = 0.99\n'
    )
    project.makepyfile(
        """
        def test_head_to_head(perfgate):
            result = perfgate.gate("micro", "bf16-cast", baseline="attention-eager", batch_size=2, memory=False)
            assert result.spec.case_id == "micro/bf16-cast/b2/cpu/vs-attention-eager"
            assert result.verdict == "ungated"
            assert result.thresholds["values"] == {}
        """
    )
    result = project.runpytest_subprocess(*micro_run(micro_model_dir), "--perfgate-hardware-class=cpu-test",
                                          f"--perfgate-thresholds={project.path / 'thresholds.toml'}")  # fmt: skip
    result.assert_outcomes(passed=1)
    [case] = json.loads((project.path / "out" / "results.json").read_text())["cases"]
    assert case["spec"]["baseline"] == "attention-eager"
    assert case["metrics"]["fidelity"]["cosine_min"] > 0.9  # bf16 against fp32 weights under eager attention


def test_a_distributed_case_runs_at_the_rank_count_it_is_given_and_gates_no_ratio_measured_at_another(
    project, micro_model_dir
):
    project.makepyfile(
        """
        import pytest

        def test_four_ranks(perfgate):
            result = perfgate.measure("micro", "train-zero1", scenario="train-distributed", batch_size=4, world=4)
            assert result.outcome == "measured", result.detail
            assert result.spec.case_id == "micro/train-zero1/b4/cpu/train-distributed/w4"
            figures = result.metrics["distributed"]
            assert [row["rank"] for row in figures["ranks"]] == [0, 1, 2, 3]
            assert figures["max_shard_prediction_error"] == 0.0  # the partition over 4 ranks, to the byte
            assert "measured at 2: recorded, not gated" in figures["world_note"]
            assert "speed" not in result.metrics and figures["speed"]["estimate"]["pairs"] >= 2
            assert "max_rank_memory_ratio" not in {check.name for check in result.checks}

        def test_world_is_for_distributed_cases(perfgate):
            with pytest.raises(Exception, match="world=4 is a rank count"):
                perfgate.measure("micro", "fp32-eager", world=4)
        """
    )
    result = project.runpytest_subprocess(*micro_run(micro_model_dir), "-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_perfgate_explain_profiles_the_failed_speed_gate_and_puts_its_diff_in_the_summary(project, micro_model_dir):
    plant(project, 'register_technique("planted-extra-matmul", "tests.planted:ExtraMatmul")\n')
    project.makefile(".toml", thresholds='[techniques."planted-extra-matmul".cpu-test]\nmin_speedup = 1.0\n')
    project.makepyfile(
        """
        def test_slower(perfgate):
            perfgate.gate("micro", "planted-extra-matmul", batch_size=2, memory=False)

        def test_good(perfgate):
            perfgate.gate("micro", "fp32-eager", batch_size=2, memory=False)
        """
    )
    result = project.runpytest_subprocess(*micro_run(micro_model_dir), "--perfgate-hardware-class=cpu-test",
                                          f"--perfgate-thresholds={project.path / 'thresholds.toml'}",
                                          "--perfgate-explain=2", "--perfgate-threads=1")  # fmt: skip
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*explain micro/planted-extra-matmul/b2/cpu: explained in * s*"])
    summary = (project.path / "out" / "summary.md").read_text()
    section = summary.split("## Where the time went, op by op", 1)[1]
    assert "`micro/planted-extra-matmul/b2/cpu`" in section
    assert "fp32-eager/b2" not in section  # failed gates only
    first = section.split("|---|---|---|---|---|---|---|\n", 1)[1].splitlines()[0]
    assert first.startswith("| `aten::mm` | `[[768, 768], [768, 768]]` | - |"), section
