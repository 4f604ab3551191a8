"""A self-contained HTML report of a run (figures embedded as PNG), drawn with matplotlib.

An overview first, on one screen: the machine, the verdict counts, what needs attention and why, the
expected failures, the skips by reason. Then one table per family of cases (techniques against fp32,
serving memory, loading, training...), each with only the columns its cases fill, so it fits 1400 px.
Figures: speedup with its 95% CI per case and serving memory per case, each coloured by its own check
(not by the case's verdict); accuracy against speed, one panel per model and batch, two to a row, with
numbered points named in a legend below and the Pareto front; and, with a history, each compared case
against its band. Written beside ``summary.md`` when matplotlib is installed.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from perfgate.answers.recommend import recommendation_section
from perfgate.engine.metrics.compile import CompileCost
from perfgate.engine.metrics.distributed import Distributed
from perfgate.engine.metrics.load import LoadMetric, LoadUnderCapMetric
from perfgate.engine.metrics.training import Training, TrainingBatch
from perfgate.engine.record import CaseResult
from perfgate.instruments.outcome import Verdict
from perfgate.reports.figures import (
    VERDICT_COLOURS,
    arrivals_figure,
    distributed_figure,
    history_figure,
    memory_figure,
    pareto_figure,
    speedup_figure,
    throughput_figure,
    training_figure,
)
from perfgate.reports.report import attention_reason, columns, needs_attention, skip_counts, summary_rows, verdict_label
from perfgate.reports.sections import between_process_section, ladder_section, settings_section, stack_lines, ungated_lines
from perfgate.reports.gates import gate_figure

if TYPE_CHECKING:
    from perfgate.records.regressions import Comparison
    from perfgate.records.results import RunRecord

__all__ = ["html_report"]


def _markdown_table_html(lines: Sequence[str]) -> list[str]:
    """A summary section (``## title``, prose and Markdown tables) as HTML: the ladder, the loading and
    the training sections, shown in both."""
    out: list[str] = []
    rows: list[str] = []

    def close_table() -> None:
        if rows:
            out.extend(["<table>", *rows, "</table>"])
            rows.clear()

    for line in lines:
        if line.startswith(("## ", "### ")):
            close_table()
            level = line.index(" ")
            out.append(f"<h{level}>{html.escape(line[level + 1 :])}</h{level}>")
        elif line.startswith("|") and not line.startswith("|---"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            tag = "th" if not rows else "td"
            rows.append("<tr>" + "".join(f"<{tag}>{_inline(c)}</{tag}>" for c in cells) + "</tr>")
        elif line.strip() and not line.startswith("|"):
            close_table()
            out.append(f"<p>{_inline(line)}</p>")
    close_table()
    return out


def _inline(text: str) -> str:
    """Markdown's **bold** and `code` in a line of a summary section, the rest escaped."""
    import re

    escaped = html.escape(text)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)


def _gate_tables(gates: Sequence[dict[str, Any]]) -> list[str]:
    """Each upgrade gate: its arms, then a row per check with its verdict, interval and rule."""
    out = []
    for gate in gates:
        arms = gate["arms"]
        colour = VERDICT_COLOURS.get(Verdict(gate["verdict"]), "#757575")
        out.append(
            f"<h3>{html.escape(gate['technique'])}: {html.escape(arms['current']['model'])} → "
            f"{html.escape(arms['candidate']['model'])} "
            f'<span style="color:{colour}">{html.escape(gate["verdict"].upper())}</span></h3>'
        )
        if gate["outcome"] != "measured":
            out.append(f"<p>no verdict: {html.escape(gate['outcome'])}: {html.escape(gate['detail'])}</p>")
            continue
        rows = [
            "<table><tr><th>check</th><th>verdict</th><th>candidate vs current</th><th>rule</th><th>detail</th></tr>"
        ]
        for check in gate["checks"]:
            tint = VERDICT_COLOURS.get(Verdict(check["verdict"]), "#757575")
            cells = [check["name"], check["verdict"].upper(), gate_figure(check), check["rule"], check["detail"]]
            rows.append(
                "<tr>"
                + "".join(
                    f'<td style="color:{tint};font-weight:bold">{html.escape(c)}</td>'
                    if i == 1
                    else f"<td>{html.escape(c)}</td>"
                    for i, c in enumerate(cells)
                )
                + "</tr>"
            )
        out += [*rows, "</table>"]
    return out


FAMILIES = {
    "ab-forward": "Techniques against fp32 eager: speed, fidelity, memory, size",
    "serving-memory": "Serving memory",
    "runtime-overhead": "Runtime overhead",
    "load": "Loading a checkpoint",
    "result-cache": "Serving: a result cache",
    "arrivals": "Serving: dynamic batching under arrivals",
    "batch-sweep": "Serving: batch sizes and input order",
    "generation": "Generation",
}


BOOKKEEPING = frozenset({"model", "technique", "batch", "verdict"})  # always shown, first


def _family(case: CaseResult) -> str:
    scenario = case.spec.scenario
    if scenario.startswith("train"):
        return "Training recipes"
    return FAMILIES.get(scenario, scenario)


def _family_table(cases: Sequence[CaseResult]) -> list[str]:
    """The summary table for one family, with only the columns some of its cases fill."""
    header = columns()
    rows = summary_rows(cases)
    shown = [i for i, h in enumerate(header) if h in BOOKKEEPING or any(row[i] not in ("-", "") for row in rows)]
    if all(case.outcome == "measured" for case in cases):
        shown = [i for i in shown if header[i] != "outcome"]
    out = ["<table><tr>" + "".join(f"<th>{html.escape(header[i])}</th>" for i in shown) + "</tr>"]
    for case, row in zip(cases, rows, strict=True):
        colour = VERDICT_COLOURS.get(case.verdict, "#757575")
        cells = "".join(
            f'<td style="color:{colour};font-weight:bold">{html.escape(row[i])}</td>'
            if header[i] == "verdict"
            else f"<td>{html.escape(row[i])}</td>"
            for i in shown
        )
        out.append(f"<tr>{cells}</tr>")
    return [*out, "</table>"]


def _overview(record: RunRecord, skipped: Sequence[tuple[str, str]]) -> list[str]:
    """One screen: the machine, the verdict counts, what needs attention and why, the skips by reason."""
    cases = record.cases
    classes = record.fingerprint.get("hardware_class", {})
    cpu = record.fingerprint.get("cpu", {})
    counts = Counter(case.verdict for case in cases)
    expected = [case for case in cases if case.expected_failure]
    badges = []
    for verdict in Verdict:
        if counts[verdict]:
            note = f" ({len(expected)} expected)" if verdict == Verdict.FAIL and expected else ""
            badges.append(f'<span class="badge" style="background:{VERDICT_COLOURS[verdict]}">'
                          f"{counts[verdict]} {str(verdict).upper()}{note}</span>")  # fmt: skip
    out = [
        "<h1>perfgate report</h1>",
        f"<p>started {html.escape(record.started)} · cpu <code>{html.escape(str(classes.get('cpu')))}</code> "
        f"({html.escape(str(cpu.get('model', '')))}, {html.escape(str(cpu.get('logical_cores', '?')))} cores) · "
        f"cuda <code>{html.escape(str(classes.get('cuda')))}</code> · {len(cases)} cases</p>",
        f'<p class="counts">{"".join(badges)}</p>',
    ]
    attention = [case for case in cases if needs_attention(case)]
    if attention:
        out.append(f"<h2>Needs attention ({len(attention)})</h2><ul>")
        out += [
            f"<li><b>{html.escape(case.spec.case_id)}</b> ({html.escape(verdict_label(case))}): "
            f"{html.escape(attention_reason(case))}</li>"
            for case in attention
        ]
        out.append("</ul>")
    else:
        out.append("<p><b>Needs attention: nothing</b> (no unexpected FAIL, no INCONCLUSIVE, no failed test).</p>")
    if expected:
        names = ", ".join(case.spec.case_id for case in expected)
        out.append(f"<p>Expected failures — their tests assert them, and passed: {html.escape(names)}.</p>")
    if skipped:
        reasons = ", ".join(f"{count} {reason}" for reason, count in skip_counts(skipped).most_common())
        out.append(f"<p>Skipped {len(skipped)} tests: {html.escape(reasons)} (each with its reason in summary.md).</p>")
    notes = [*stack_lines(cases), *ungated_lines(cases)]
    if notes:
        out += ["<ul>", *[f"<li>{html.escape(n)}</li>" for n in notes], "</ul>"]
    return out


def html_report(
    record: RunRecord,
    comparison: Comparison | None = None,
    history: Sequence[tuple[Any, RunRecord]] = (),
    skipped: Sequence[tuple[str, str]] = (),
) -> str:
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    cases = record.cases
    figures = [
        ("Speedup against fp32 eager", speedup_figure(cases)),
        ("Accuracy against speed", pareto_figure(cases)),
        ("Serving memory", memory_figure(cases)),
        ("Throughput against batch size", throughput_figure(cases)),
        ("Dynamic batching: p99 latency against arrival rate", arrivals_figure(cases)),
        ("Training: speed and memory per recipe; throughput over batch sizes", training_figure(cases)),
        ("Distributed training: bytes per rank, measured against predicted", distributed_figure(cases)),
    ]
    if comparison is not None:
        figures.append(("Against the history", history_figure(comparison, history, record)))
    body = _overview(record, skipped)
    families: dict[str, list[CaseResult]] = {}
    for case in cases:
        families.setdefault(_family(case), []).append(case)
    for title, members in families.items():
        body += [f"<h2>{html.escape(title)} ({len(members)})</h2>", *_family_table(members)]
    body += _markdown_table_html(recommendation_section(record))
    body += _markdown_table_html(ladder_section(cases))
    body += _markdown_table_html(between_process_section(cases, comparison))
    body += _markdown_table_html(settings_section(cases))
    sections = (LoadMetric(), LoadUnderCapMetric(), Training(), TrainingBatch(), Distributed(), CompileCost())
    for section in (metric.section(cases) for metric in sections):
        body += _markdown_table_html(section)
    if record.gates:
        body += ["<h2>Upgrade gates</h2>", *_gate_tables(record.gates)]
    for title, png in figures:
        if png:
            body += [
                f"<h2>{html.escape(title)}</h2>",
                f'<img alt="{html.escape(title)}" src="data:image/png;base64,{png}">',
            ]
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1400px} table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ddd;padding:3px 6px;text-align:left} th{background:#f5f5f5} img{max-width:100%}"
        ".badge{color:#fff;padding:4px 10px;border-radius:4px;margin-right:8px;font-weight:bold;font-size:15px}"
        ".counts{margin:1em 0}"
    )
    head = f"<head><meta charset='utf-8'><title>perfgate report</title><style>{style}</style></head>"
    return f"<!doctype html><html>{head}<body>{''.join(body)}</body></html>\n"
