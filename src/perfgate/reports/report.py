"""Rendering a run: the terminal table at the end of the pytest run and ``summary.md``.

The table's middle columns and the Markdown sections come from the metrics (``perfgate.engine.metrics``):
a new metric shows up here without an edit.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from perfgate.answers.recommend import recommendation_section
from perfgate.engine.metrics import all_metrics
from perfgate.engine.record import CaseResult
from perfgate.instruments.outcome import Outcome, Verdict
from perfgate.records.results import RunRecord
from perfgate.reports.gates import gate_markdown
from perfgate.reports.sections import (
    between_process_section,
    isolation_line,
    ladder_section,
    settings_section,
    stack_lines,
    time_section,
    ungated_lines,
)

if TYPE_CHECKING:
    from perfgate.records.regressions import Comparison

__all__ = [
    "TERMINAL_WIDTH",
    "attention_reason",
    "case_label",
    "clip",
    "columns",
    "compact_table",
    "markdown_summary",
    "needs_attention",
    "skip_counts",
    "skip_line",
    "summary_rows",
    "terminal_summary",
    "text_table",
    "verdict_label",
]


TERMINAL_WIDTH = 120  # the terminal summary's widest line; every column goes to summary.md


# The compact table: speedup in its own column, the case's other figures (those it has) in one.
COMPACT_SPEED = "speedup [95% CI]"


NOT_IN_FIGURES = frozenset({"top-1", "attrib MiB", "verdict", "setup s", "wall s", "outcome"})


SHORT = {"cos min": "cos", "memory": "mem", "size": "size"}  # shown first, in this order


CASE_WIDTH = 44  # longer technique names are cut in the middle; summary.md has them whole


VERDICT_MARKS = {
    "*": "expected: its test asserts this failure (a planted fault, a bad checkpoint) and passed",
    "!": "its test failed although the verdict is not FAIL (see needs attention)",
}


ATTENTION = (Verdict.FAIL, Verdict.INCONCLUSIVE)


def columns() -> tuple[str, ...]:
    # A column two metrics share ("train": one process's recipes and the distributed ones) appears once.
    metric_columns = list(dict.fromkeys(column for metric in all_metrics() for column in metric.columns))
    return (
        "model",
        "technique",
        "batch",
        *metric_columns[:1],
        "verdict",
        *metric_columns[1:],
        "setup s",
        "wall s",
        "outcome",
    )


def summary_rows(cases: Sequence[CaseResult]) -> list[tuple[str, ...]]:
    header = columns()
    rows: list[tuple[str, ...]] = []
    for case in cases:
        cells = {"model": case.spec.model, "technique": case.spec.technique, "batch": str(case.spec.batch_size)}
        for metric in all_metrics():
            if metric.name in case.metrics:
                cells.update(metric.cells(case.metrics[metric.name]))
        cells["verdict"] = verdict_label(case)
        cells["setup s"] = f"{case.setup_seconds:.1f}"
        cells["wall s"] = f"{case.wall_seconds:.1f}"
        cells["outcome"] = case.outcome if not case.detail else f"{case.outcome}: {case.detail[:60]}"
        rows.append(tuple(cells.get(column, "-") for column in header))
    return rows


def verdict_label(case: CaseResult) -> str:
    """The verdict, with what its test made of it: a FAIL the test asserted is expected."""
    label = str(case.verdict).upper()
    if case.expected_failure:
        return f"{label} (expected)"
    if case.test_outcome == "failed" and case.verdict != Verdict.FAIL:
        return f"{label}, test failed"
    return label


def needs_attention(case: CaseResult) -> bool:
    if case.expected_failure:
        return False
    return case.verdict in ATTENTION or case.test_outcome == "failed" or case.outcome != Outcome.MEASURED


def attention_reason(case: CaseResult) -> str:
    """Why a case needs attention, in one line: its failed or undecided checks, its outcome, its test."""
    if case.outcome != Outcome.MEASURED:
        first = (case.detail or "").splitlines()
        return f"{case.outcome}: {first[0] if first else 'no detail recorded'}"
    checks = [c.message for c in case.checks if c.verdict in ATTENTION]
    if checks:
        return "; ".join(checks)
    return f"its test failed: {case.test_failure or 'see the failure above'}"


def clip(text: str, width: int, middle: bool = False) -> str:
    if len(text) <= width:
        return text
    if middle:
        head = (width - 1) // 2
        return text[:head] + "…" + text[len(text) - (width - 1 - head) :]
    return text[: width - 1] + "…"


def _wrap(text: str, width: int, max_lines: int | None = None) -> list[str]:
    wrapped = textwrap.wrap(
        text, width, subsequent_indent="    ", break_on_hyphens=False, max_lines=max_lines, placeholder=" …"
    )
    return wrapped or [""]


def compact_table(cases: Sequence[CaseResult], width: int = TERMINAL_WIDTH) -> list[str]:
    """The summary table cut to ``width``, one block per model: each case's technique (batch, and device
    and scenario where they are not the default), verdict, speedup, and its other figures in one column."""
    header = ("case", "verdict", COMPACT_SPEED, "figures")
    wide = columns()
    rest = [c for c in wide[3:] if c not in (COMPACT_SPEED, *NOT_IN_FIGURES)]
    figure_columns = [c for c in SHORT if c in rest] + [c for c in rest if c not in SHORT]
    by_model: dict[str, list[tuple[str, ...]]] = {}
    for case, wide_row in zip(cases, summary_rows(cases), strict=True):
        cells = dict(zip(wide, wide_row, strict=True))
        figures = [f"{SHORT.get(c, c)} {cells[c]}" for c in figure_columns if cells[c] != "-"]
        if case.outcome != Outcome.MEASURED:
            figures.insert(0, attention_reason(case))
        speed = cells[COMPACT_SPEED].replace(" noisy", "~")
        row = (f"  {case_label(case)}", _verdict_mark(case), speed, ", ".join(figures))
        by_model.setdefault(case.spec.model, []).append(row)
    rows = [row for model_rows in by_model.values() for row in model_rows]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    widths[0] = min(widths[0], CASE_WIDTH)
    widths[-1] = max(width - sum(widths[:-1]) - 2 * (len(widths) - 1), len(header[-1]))
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for model, model_rows in by_model.items():
        lines.append(model)
        for entry in model_rows:
            shown = [clip(c, w, middle=i == 0).ljust(w) for i, (c, w) in enumerate(zip(entry, widths, strict=True))]
            lines.append("  ".join(shown).rstrip())
    marks = "".join(mark for case in cases for mark in _verdict_mark(case) if mark in VERDICT_MARKS)
    lines += [f"{mark} {VERDICT_MARKS[mark]}" for mark in VERDICT_MARKS if mark in marks]
    if any(row[2].endswith("~") for row in rows):
        lines.append("~ noisy timing: the A/B pairs spread widely (summary.md gives the spread)")
    return lines


def _verdict_mark(case: CaseResult) -> str:
    if case.expected_failure:
        return f"{str(case.verdict).upper()}*"
    if case.test_outcome == "failed" and case.verdict != Verdict.FAIL:
        return f"{str(case.verdict).upper()}!"
    return str(case.verdict).upper()


def case_label(case: CaseResult) -> str:
    """Technique and batch, with the device and scenario where they are not the default."""
    spec = case.spec
    parts = [spec.technique, f"b{spec.batch_size}"]
    if spec.device != "cpu":
        parts.append(spec.device)
    if spec.scenario != "ab-forward":
        parts.append(spec.scenario)
    return " ".join(parts)


def skip_counts(skipped: Sequence[tuple[str, str]]) -> Counter[str]:
    """Skipped tests counted by reason (the reason's text before its first ':'), most first."""
    return Counter(reason.split(":")[0].strip() for _, reason in skipped)


def skip_line(skipped: Sequence[tuple[str, str]], width: int = TERMINAL_WIDTH) -> str:
    """One line: how many tests were skipped, counted by reason."""
    counts = skip_counts(skipped)
    parts = [f"{count} {reason}" for reason, count in counts.most_common()]
    line = f"skipped {len(skipped)}: " + ", ".join(parts)
    tail = " … (every reason: summary.md)"
    return line if len(line) <= width else line[: width - len(tail)] + tail


def terminal_summary(
    record: RunRecord, skipped: Sequence[tuple[str, str]] = (), width: int = TERMINAL_WIDTH
) -> list[str]:
    """What the terminal shows at the end of a run, no line wider than ``width``: the verdict counts, what
    needs attention and why, the compact table, expected failures, the skips by reason, the ungated."""
    cases = record.cases
    classes = sorted({case.hardware_class for case in cases if case.hardware_class}) or [
        str(record.fingerprint.get("hardware_class", {}).get("cpu", "unknown"))
    ]
    verdicts = Counter(case.verdict for case in cases)
    counted = [f"{verdicts[v]} {str(v).upper()}" for v in Verdict if verdicts[v]]
    expected = [case for case in cases if case.expected_failure]
    if expected:
        counted = [f"{part} ({len(expected)} expected by their tests)" if part.endswith(" FAIL") else part
                   for part in counted]  # fmt: skip
    lines = _wrap(f"{len(cases)} cases on {', '.join(classes)}: {', '.join(counted) or 'none measured'}", width)
    attention = [case for case in cases if needs_attention(case)]
    if attention:
        lines.append(f"needs attention ({len(attention)}):")
        for case in attention:
            entry = f"  {case.spec.case_id} ({verdict_label(case)}): {attention_reason(case)}"
            lines += _wrap(entry, width, max_lines=2)  # summary.md has the rest
    else:
        lines.append("needs attention: nothing (no unexpected FAIL, no INCONCLUSIVE, no failed test)")
    if cases:
        lines += ["", *compact_table(cases, width)]
    if skipped:
        lines.append(skip_line(skipped, width))
    for line in ungated_lines(cases):
        lines += _wrap(line, width)
    return lines


def text_table(cases: Sequence[CaseResult]) -> str:
    header = columns()
    rows = [header, *summary_rows(cases)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_summary(
    record: RunRecord, skipped: Sequence[tuple[str, str]] = (), comparison: Comparison | None = None
) -> str:
    fingerprint = record.fingerprint
    classes = fingerprint.get("hardware_class", {})
    cpu = fingerprint.get("cpu", {})
    libraries = ", ".join(f"{k} {v}" for k, v in sorted(fingerprint.get("libraries", {}).items()))
    header = columns()
    out = [
        "# perfgate summary",
        "",
        f"- started: {record.started}",
        f"- hardware class: cpu `{classes.get('cpu')}`, cuda `{classes.get('cuda')}`",
        f"- cpu: {cpu.get('model')} ({cpu.get('logical_cores')} logical cores)",
        f"- libraries: {libraries}",
        "",
        "Speedup is baseline time / candidate time (fp32 eager baseline, same worker process, interleaved ABBA",
        "pairs); memory is the candidate's serving memory attributable to the model relative to fp32 (see the",
        "memory section); size is bytes of weights; setup s is what isolation cost the case outside the timed",
        "blocks (worker starts, model loads); wall s is the case from start to verdict.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    out += ["| " + " | ".join(row) + " |" for row in summary_rows(record.cases)]
    out += ["", isolation_line(record.cases)]
    out += ["", *section] if (section := between_process_section(record.cases, comparison)) else []
    ungated = ungated_lines(record.cases)
    if ungated:
        out += ["", "Measured but not gated:", "", *[f"- {line}" for line in ungated]]
    out += ladder_section(record.cases)
    out += ["", *section] if (section := recommendation_section(record)) else []
    out += ["", *section] if (section := settings_section(record.cases)) else []
    out += time_section(record.cases)
    stacks = stack_lines(record.cases)
    if stacks:
        out += ["", "## Stacks against their parts", "", *[f"- {line}" for line in stacks]]
    for metric in all_metrics():
        section = metric.section(record.cases)
        if section:
            out += ["", *section]
    faults = [case for case in record.cases if case.outcome != Outcome.MEASURED]
    if faults:
        out += ["", "## Outcomes that are not results", ""]
        for case in faults:
            out.append(f"- `{case.spec.case_id}` ({case.nodeid}): **{case.outcome}**: {case.detail}")
            if case.log:
                out += ["", "  ```", *[f"  {line}" for line in case.log.splitlines()[-8:]], "  ```"]
    failures = [check.message for case in record.cases for check in case.failures()]
    if failures:
        out += ["", "## Failed checks", "", *[f"- {m}" for m in failures]]
    explained = [case.metrics["explain"]["markdown"] for case in record.cases if "explain" in case.metrics]
    if explained:
        out += ["", "## Where the time went, op by op (`--perfgate-explain`)", "", *explained]
    if record.calibration:
        out += ["", "## Runner calibration", ""]
        out += [
            f"- {key}: {entry.get('summary') or entry.get('detail', '')}"
            for key, entry in sorted(record.calibration.items())
        ]
    if record.gates:
        out += ["", gate_markdown(record.gates, title="## Upgrade gates")]
    if skipped:
        out += ["", "## Skipped", "", *[f"- `{nodeid}`: {reason}" for nodeid, reason in skipped]]
    return "\n".join(out) + "\n"


JOB_SUMMARY_LIMIT = 1024 * 1024  # GitHub refuses a step summary above 1 MiB


def fit_job_summary(markdown: str, limit: int = JOB_SUMMARY_LIMIT) -> str:
    """``markdown`` cut at a line boundary to fit a GitHub job summary, saying what was left out and where
    the whole of it is; unchanged when it fits."""
    data = markdown.encode()
    if len(data) <= limit:
        return markdown
    kept = data[: limit - 512].decode(errors="ignore").rsplit("\n", 1)[0]
    left = len(markdown.splitlines()) - len(kept.splitlines())
    return f"{kept}\n\n**Cut to fit a job summary (1 MiB): {left} more lines are in the full report file.**\n"
