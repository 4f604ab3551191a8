"""Markdown for GitHub job summaries: cut to fit at a line boundary, saying so."""

from __future__ import annotations

from perfgate.report import JOB_SUMMARY_LIMIT, fit_job_summary


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
