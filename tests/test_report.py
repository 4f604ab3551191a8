"""Markdown for GitHub job summaries: cut to fit at a line boundary, saying so."""

from __future__ import annotations

from perfgate.reports.report import JOB_SUMMARY_LIMIT, fit_job_summary, markdown_summary


def test_a_summary_that_fits_is_unchanged():
    text = "# perfgate\n\n| case | verdict |\n|---|---|\n| a | pass |\n"
    assert fit_job_summary(text) == text


def test_a_summary_too_big_for_github_is_cut_at_a_line_and_says_how_much_is_left_out():
    lines = [f"| minilm/case-{i}/b1/cpu | 1.23x [1.20, 1.26] | pass | ✓ |" for i in range(30_000)]
    text = "\n".join(lines) + "\n"
    assert len(text.encode()) > JOB_SUMMARY_LIMIT
    cut = fit_job_summary(text)
    assert len(cut.encode()) <= JOB_SUMMARY_LIMIT
    kept = cut.split("\n\n**Cut")[0].splitlines()
    assert kept == lines[: len(kept)], "whole lines only"
    assert f"{len(lines) - len(kept)} more lines are in the full report file" in cut


def measured_case(technique: str, speedup: float, baseline_p50: float = 0.010, scenario: str = "ab-forward"):
    from perfgate.engine.record import CaseResult
    from perfgate.engine.spec import CaseSpec
    from perfgate.instruments.outcome import Outcome

    case = CaseResult(spec=CaseSpec("minilm", technique, scenario=scenario), hardware_class="cpu-amx",
                      outcome=Outcome.MEASURED)  # fmt: skip
    case.metrics["speed"] = {
        "estimate": {"speedup": speedup, "ci_low": speedup * 0.95, "ci_high": speedup * 1.05},
        "latency": {"baseline": {"p50": baseline_p50}, "candidate": {"p50": baseline_p50 / speedup}},
    }
    return case


def test_the_ladder_chains_each_step_s_gain_from_the_run_s_cases():
    from perfgate.reports.sections import ladder_section

    cases = [measured_case("pad-to-128", 0.4), measured_case("torch-dynamic-int8-per-channel", 2.5),
             measured_case("onnxruntime-o2-int8-dynamic", 5.0)]  # fmt: skip
    cache = measured_case("onnxruntime-o2-int8-dynamic", 1.0, scenario="result-cache")
    measured = {"speedup": 1.6, "ci_low": 1.5, "ci_high": 1.7}
    cache.metrics = {"result_cache": {"repeat_rate": 0.4, "hit_rate": 0.39, "model_ms_per_request": 2.0,
                                      "predicted_gain": 1.62, "measured": measured}}  # fmt: skip
    text = "\n".join(ladder_section([*cases, cache]))
    assert "| padded to 128 tokens (fp32 eager) | 25.0 ms | — |" in text
    assert "| dynamic shapes: no padding | 10.0 ms | 2.50x |" in text
    assert "| dynamic int8 (torch, per channel) | 4.0 ms | 2.50x |" in text
    assert "| ONNX Runtime O2 + dynamic int8 | 2.0 ms | 2.00x (ratio of two cases) |" in text
    assert "| result cache, 40% repeats (39% hits) | 1.2 ms per request | 1.60x [1.50, 1.70] (predicted 1.62x)" in text
    assert ladder_section(cases[:2]) == [], "a step missing from the run: no ladder"


def summary_record():
    """Cases a main job has: passing ones, a planted FAIL its test asserts, an unexpected FAIL, an undecided
    one, a crash with a long detail, a case whose test failed on a non-FAIL verdict, long technique names."""
    from perfgate.engine.spec import CaseSpec
    from perfgate.instruments.outcome import Outcome, Verdict
    from perfgate.records.results import RunRecord
    from perfgate.verdicts.thresholds import CheckResult

    def case(technique, verdict, test_outcome="passed", speedup=1.5, scenario="ab-forward", model="minilm"):
        result = measured_case(technique, speedup, scenario=scenario)
        result.spec = CaseSpec(model, technique, scenario=scenario)
        result.metrics["fidelity"] = {"cosine_min": 0.91, "top1_agreement": 1.0}
        result.metrics["size"] = {"ratio": 0.25, "baseline_bytes": 4, "candidate_bytes": 1}
        result.verdict, result.test_outcome = verdict, test_outcome
        return result

    planted = case("planted-half-cosine", Verdict.FAIL)
    planted.checks = [CheckResult("min_cosine", Verdict.FAIL, "cosine 0.500 below 0.99")]
    slow = case("onnxruntime-o2-int8-dynamic", Verdict.FAIL, "failed", speedup=0.8)
    slow.checks = [CheckResult("min_speedup", Verdict.FAIL, "speedup 0.80x [0.76, 0.84] below 1.0 " + "x" * 150)]
    undecided = case("torch-dynamic-int8-per-channel", Verdict.INCONCLUSIVE)
    undecided.checks = [CheckResult("min_speedup", Verdict.INCONCLUSIVE, "speedup 1.02x [0.95, 1.10] straddles 1.0")]
    crashed = case("planted-offload-below-the-largest-layer-of-a-very-long-name", Verdict.FAIL, "failed",
                   scenario="serving-memory", model="gpt2-124m-random")  # fmt: skip
    crashed.outcome, crashed.detail = Outcome.CRASHED, "Fatal Python error: Aborted; crashing frame: File " + "y" * 200
    ungated = case("bitsandbytes-nf4", Verdict.UNGATED, "failed")
    ungated.test_failure = "Failed: no speed bound for cpu-avx2 (run perfgate thresholds derive)"
    cases = [case("bf16-cast", Verdict.PASS), planted, slow, undecided, crashed, ungated]
    return RunRecord(fingerprint={"hardware_class": {"cpu": "cpu-amx"}}, config={}, cases=cases)


SKIPPED = [
    *[
        (f"perf/test_a.py::test_slow[{i}]", "slow: part of the nightly selection; run it with -m slow")
        for i in range(77)
    ],
    *[(f"perf/test_b.py::test_gpu[{i}]", "no CUDA device: torch.cuda.is_available() is False") for i in range(53)],
    ("perf/test_c.py::test_flex", "attention-flex on minilm: BertModel does not support flex_attention"),
]


def test_the_terminal_summary_fits_120_columns_where_the_wide_table_does_not():
    from perfgate.reports.report import TERMINAL_WIDTH, terminal_summary, text_table

    record = summary_record()
    lines = terminal_summary(record, SKIPPED)
    assert max(len(line) for line in lines) <= TERMINAL_WIDTH
    # The measure catches a summary that does not fit: the wide table of the same cases.
    assert max(len(line) for line in text_table(record.cases).splitlines()) > TERMINAL_WIDTH
    narrow = terminal_summary(record, SKIPPED, width=90)
    assert max(len(line) for line in narrow) <= 90


def test_the_terminal_summary_leads_with_verdicts_then_what_needs_attention():
    from perfgate.reports.report import terminal_summary

    lines = terminal_summary(summary_record(), SKIPPED)
    assert lines[0] == "6 cases on cpu-amx: 3 FAIL (1 expected by their tests), 1 INCONCLUSIVE, 1 UNGATED, 1 PASS"
    attention = lines[1 : lines.index("")]
    assert attention[0] == "needs attention (4):"
    text = " ".join(line.strip() for line in attention)  # entries wrap at the width
    assert "minilm/onnxruntime-o2-int8-dynamic/b1/cpu (FAIL): speedup 0.80x [0.76, 0.84] below 1.0" in text
    assert "(INCONCLUSIVE): speedup 1.02x [0.95, 1.10] straddles 1.0" in text
    assert "(FAIL): crashed: Fatal Python error: Aborted; crashing frame: File" in text
    assert "(UNGATED, test failed): its test failed: Failed: no speed bound for cpu-avx2" in text
    assert "planted-half-cosine" not in text  # expected by its test: marked in the table instead
    assert len(attention) <= 1 + 2 * 4, "an entry takes at most two lines; summary.md has the rest"


def test_the_compact_table_marks_expected_failures_and_groups_cases_by_model():
    from perfgate.reports.report import terminal_summary

    lines = terminal_summary(summary_record(), SKIPPED)
    rows = {line.split()[0]: line for line in lines if line.startswith("  ")}
    assert rows["planted-half-cosine"].split()[2] == "FAIL*"
    assert rows["bitsandbytes-nf4"].split()[2] == "UNGATED!"
    assert "cos 0.9100, size 0.25x" in rows["bf16-cast"]
    assert "gpt2-124m-random" in lines  # a model heading
    assert "* expected: its test asserts this failure (a planted fault, a bad checkpoint) and passed" in lines


def test_skips_are_one_line_of_counts_by_reason():
    from perfgate.reports.report import skip_line

    assert skip_line(SKIPPED) == "skipped 131: 77 slow, 53 no CUDA device, 1 attention-flex on minilm"
    many = [(f"t{i}", f"reason number {i} is a long reason: detail") for i in range(20)]
    line = skip_line(many)
    assert len(line) == 120
    assert line.endswith("… (every reason: summary.md)")


def test_summary_md_marks_an_expected_failure_and_keeps_a_crash_s_frame():
    from perfgate.reports.report import markdown_summary

    summary = markdown_summary(summary_record())
    assert "| minilm | planted-half-cosine | 1 | 1.50x" in summary
    assert "FAIL (expected)" in summary
    assert "**crashed**: Fatal Python error: Aborted; crashing frame: File " + "y" * 200 in summary


def test_a_column_two_metrics_share_appears_once():
    from perfgate.reports.report import columns

    header = columns()
    assert header.count("train") == 1
    assert len(header) == len(set(header))


def test_every_changed_setting_is_said_once_with_its_default_and_the_cases_it_applied_to():
    from perfgate.reports.sections import settings_section
    from perfgate.subjects.technique import changed_setting

    gc = changed_setting("Python's garbage collector while timing", "off", "on", "ABBA positions")
    spin = changed_setting("onnxruntime session.intra_op.allow_spinning", 0, 1, "the variant")
    cases = [measured_case("onnxruntime-o2", 2.0), measured_case("onnxruntime-o2-nospin", 1.6)]
    cases[0].variant = {"settings": [gc]}
    cases[0].metrics["speed"] |= {"spin_after_call_seconds": {"baseline": 0.01, "candidate": 0.06},
                                  "settle_seconds": {"baseline": 0.02, "candidate": 0.12}}  # fmt: skip
    cases[1].variant = {"settings": [gc, spin]}
    section = settings_section(cases)
    assert "| Python's garbage collector while timing | off | on | ABBA positions | all 2 |" in section
    assert (
        "| onnxruntime session.intra_op.allow_spinning | 0 | 1 | the variant | `minilm/onnxruntime-o2-nospin/b1/cpu` |"
        in section
    )
    assert "| `minilm/onnxruntime-o2/b1/cpu` | 10 | 60 |" in section
    assert settings_section([measured_case("fp16-cast", 1.0)]) == []  # nothing changed, nothing said


def test_the_summary_shows_how_far_each_speedup_moved_between_past_runs_beside_its_interval(tmp_path):
    from perfgate.records.history import load_history, store_run
    from perfgate.records.regressions import compare_run
    from tests.test_history import NIGHTS, run

    directory = tmp_path / "history"
    directory.mkdir()
    for night, speedup in enumerate(NIGHTS):
        run(night, speedup).save(tmp_path / f"night{night}.json")
        store_run(tmp_path / f"night{night}.json", directory)
    current = run(9, 3.58)  # its interval 3.40-3.76 holds the five nights' 3.46-3.71
    summary = markdown_summary(current, comparison=compare_run(current, load_history(directory)))
    section = summary.split("## Between processes", 1)[1]
    row = next(line for line in section.splitlines() if "ort-int8" in line)
    assert "3.58x [3.40, 3.76]" in row
    assert "3.55x, 3.46-3.71 | 5 | 7% | yes |" in row
    narrow = run(9, 3.58)
    narrow.cases[0].metrics["speed"]["estimate"].update(ci_low=3.55, ci_high=3.61)  # an interval the nights left
    summary = markdown_summary(narrow, comparison=compare_run(narrow, load_history(directory)))
    assert "| 5 | 7% | no |" in summary.split("## Between processes", 1)[1]


def test_without_a_history_the_summary_says_its_intervals_are_in_one_process_and_where_to_see_more():
    from tests.test_history import run

    section = markdown_summary(run(1, 3.5)).split("## Between processes", 1)[1]
    assert "inside this run's worker process" in section
    assert "--perfgate-history" in section
    assert "perfgate cross-check" in section
