"""A self-contained HTML report of a run (figures embedded as PNG), drawn with matplotlib.

Figures: speedup with its 95% CI per case (coloured by verdict); accuracy against speed per model with
the Pareto front (no technique both faster and closer to fp32); serving memory against fp32; and, with
a history, each compared case's speedup over past runs with its band and this run marked. The summary
table is the same one ``summary.md`` shows. Written beside ``summary.md`` when matplotlib is installed.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from perfgate.case import CaseResult
from perfgate.metrics.compile import CompileCost
from perfgate.metrics.load import LoadMetric, LoadUnderCapMetric
from perfgate.metrics.training import Training, TrainingBatch
from perfgate.outcome import Verdict
from perfgate.report import (
    columns,
    gate_figure,
    ladder_section,
    speed_estimate,
    stack_lines,
    summary_rows,
    ungated_lines,
)

if TYPE_CHECKING:
    from perfgate.history import Comparison
    from perfgate.results import RunRecord

__all__ = ["html_report", "pareto_front"]

VERDICT_COLOURS = {
    Verdict.PASS: "#2e7d32", Verdict.FAIL: "#c62828", Verdict.INCONCLUSIVE: "#ef6c00", Verdict.UNGATED: "#757575",
    Verdict.RECORDED: "#1565c0",
}  # fmt: skip


def _label(case: CaseResult) -> str:
    return f"{case.spec.model} · {case.spec.technique} · b{case.spec.batch_size}"


def _ratio_axis(axis: Any) -> None:
    """A log axis of ratios labelled 0.5x, 1x, 2x rather than in powers of ten."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    axis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}x" if f"{value:g}"[0] in "2357" else ""))


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _speedup_figure(cases: Sequence[CaseResult]) -> str | None:
    import matplotlib.pyplot as plt

    rows = [(c, e) for c in cases if (e := speed_estimate(c)) is not None]
    if not rows:
        return None
    figure, axes = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.2))
    for index, (case, estimate) in enumerate(rows):
        colour = VERDICT_COLOURS.get(case.verdict, "#757575")
        low, high = estimate["ci_low"], estimate["ci_high"]
        axes.errorbar(
            estimate["speedup"], index, xerr=[[estimate["speedup"] - low], [high - estimate["speedup"]]],
            fmt="o", color=colour, capsize=3,
        )  # fmt: skip
    axes.axvline(1.0, color="black", linewidth=0.8)
    axes.set_xscale("log")
    _ratio_axis(axes.xaxis)
    axes.set_yticks(range(len(rows)), [_label(c) for c, _ in rows], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("speedup against fp32 eager (log scale; bar: 95% CI; colour: verdict)")
    axes.grid(axis="x", which="both", alpha=0.3)
    return _png(figure)


def _training_figure(cases: Sequence[CaseResult]) -> str | None:
    """Left: each training recipe's step speed against its peak memory, both over fp32 AdamW's. Right:
    samples per second over the batch sizes that fitted, up to the largest, per recipe."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    steps = [
        (c, e["speedup"], ratio)
        for c in cases
        if (e := speed_estimate(c)) is not None
        and (ratio := ((c.metrics.get("training") or {}).get("memory") or {}).get("ratio")) is not None
    ]
    sweeps = [c for c in cases if "train_batch" in c.metrics]
    if not steps and not sweeps:
        return None
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    for index, (case, speed, memory) in enumerate(steps):
        shape = case.metrics["training"]
        left.scatter(speed, memory, color=VERDICT_COLOURS.get(case.verdict, "#757575"), zorder=3)
        faster = speed > 1  # labels of faster recipes go left of their point, inside the axes
        left.annotate(
            f"{case.spec.technique} {shape['batch_size']}x{shape['seq_len']}", (speed, memory), fontsize=7,
            xytext=(-4 if faster else 4, -3 if index % 2 else 4), textcoords="offset points",
            ha="right" if faster else "left",
        )  # fmt: skip
    left.axvline(1.0, color="black", linewidth=0.8)
    left.axhline(1.0, color="black", linewidth=0.8)
    left.margins(x=0.35, y=0.15)  # room for the labels right of the points
    left.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    left.set_xlabel("step speedup against fp32 AdamW (colour: verdict)")
    left.set_ylabel("peak memory over fp32 AdamW's")
    left.grid(alpha=0.3)
    drawn = set()
    for case in sweeps:
        figures = case.metrics["train_batch"]
        for arm in ("baseline", "candidate"):
            name = figures[arm]["technique"]
            if name in drawn:
                continue
            drawn.add(name)
            sweep = figures[arm]["sweep"]
            right.plot([r["batch_size"] for r in sweep], [r["samples_per_second"] for r in sweep], marker="o",
                       label=f"{name} (largest b{figures[arm]['largest']})")  # fmt: skip
    right.set_xscale("log", base=2)
    right.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    right.set_xlabel("batch size (tries that fitted under the cap)")
    right.set_ylabel("samples per second")
    right.grid(alpha=0.3)
    if drawn:
        right.legend(fontsize=7)
    return _png(figure)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both speedup and fidelity (higher is better)."""
    front = []
    for i, (speed, fidelity) in enumerate(points):
        dominated = any(
            s >= speed and f >= fidelity and (s, f) != (speed, fidelity) for j, (s, f) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return front


def _loss(cosine: float) -> float:
    return max(1.0 - cosine, 1e-7)  # an exact match is drawn at 1e-7 on the log axis


def _pareto_figure(cases: Sequence[CaseResult]) -> str | None:
    import matplotlib.pyplot as plt

    rows = [
        (c, e["speedup"], c.metrics["fidelity"]["cosine_min"])
        for c in cases
        if (e := speed_estimate(c)) is not None and c.metrics.get("fidelity", {}).get("cosine_min") is not None
    ]
    groups = sorted({(c.spec.model, c.spec.batch_size) for c, _, _ in rows})
    if not groups:
        return None
    figure, all_axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4.2), squeeze=False)
    for axes, (model, batch) in zip(all_axes[0], groups, strict=True):
        mine = [(c, s, f) for c, s, f in rows if (c.spec.model, c.spec.batch_size) == (model, batch)]
        front = set(pareto_front([(s, f) for _, s, f in mine]))
        for index, (case, speed, fidelity) in enumerate(mine):
            on_front = index in front
            axes.scatter(speed, _loss(fidelity), color="#1565c0" if on_front else "#9e9e9e", zorder=3)
            axes.annotate(
                case.spec.technique, (speed, _loss(fidelity)), fontsize=7, xytext=(4, -3 if index % 2 else 4),
                textcoords="offset points",
            )  # fmt: skip
        ordered = sorted((mine[i][1], _loss(mine[i][2])) for i in front)
        axes.plot([p[0] for p in ordered], [p[1] for p in ordered], color="#1565c0", linewidth=1, alpha=0.6)
        axes.axvline(1.0, color="black", linewidth=0.8)
        axes.set_xscale("log")
        _ratio_axis(axes.xaxis)
        axes.set_yscale("log")
        axes.invert_yaxis()  # closer to fp32 is up
        axes.margins(x=0.3, y=0.1)  # room for the technique names
        axes.set_title(f"{model}, batch {batch}", fontsize=10)
        axes.set_xlabel("speedup (log)")
        axes.set_ylabel("1 - lowest cosine to fp32 (log; up is closer)")
        axes.grid(alpha=0.3)
    figure.suptitle("Accuracy against speed: blue points are on the Pareto front", fontsize=10)
    figure.tight_layout()
    return _png(figure)


def _memory_figure(cases: Sequence[CaseResult]) -> str | None:
    import matplotlib.pyplot as plt

    rows = [(c, c.metrics["memory"]["ratio"]) for c in cases if c.metrics.get("memory", {}).get("ratio") is not None]
    if not rows:
        return None
    figure, axes = plt.subplots(figsize=(9, 0.3 * len(rows) + 1.2))
    axes.barh(
        range(len(rows)), [r for _, r in rows], color=[VERDICT_COLOURS.get(c.verdict, "#757575") for c, _ in rows]
    )
    axes.axvline(1.0, color="black", linewidth=0.8)
    axes.set_yticks(range(len(rows)), [_label(c) for c, _ in rows], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("serving memory attributable to the model, candidate / fp32")
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


def _throughput_figure(cases: Sequence[CaseResult]) -> str | None:
    """Throughput against batch size from the batch sweep: one line per technique and input order."""
    import matplotlib.pyplot as plt

    swept = [case for case in cases if "batch_sweep" in case.metrics]
    if not swept:
        return None
    models = list(dict.fromkeys(case.spec.model for case in swept))
    figure, all_axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 4), squeeze=False)
    styles = {"random": "o-", "sorted": "s-", "fixed-128": "^--"}
    for axes, model in zip(all_axes[0], models, strict=True):
        for index, case in enumerate(c for c in swept if c.spec.model == model):
            rows = case.metrics["batch_sweep"]["rows"]
            for order in dict.fromkeys(row["order"] for row in rows):
                points = sorted((row["batch_size"], row["items_per_second"]) for row in rows if row["order"] == order)
                axes.plot(*zip(*points, strict=True), styles.get(order, "o-"), color=f"C{index}",
                          label=f"{case.spec.technique} · {order}")  # fmt: skip
        axes.set_xscale("log", base=2)
        sizes = sorted({row["batch_size"] for case in swept for row in case.metrics["batch_sweep"]["rows"]})
        axes.set_xticks(sizes, [str(size) for size in sizes])
        axes.set_xlabel("batch size")
        axes.set_ylabel("items / s")
        axes.set_title(model, fontsize=10)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    figure.tight_layout()
    return _png(figure)


def _arrivals_figure(cases: Sequence[CaseResult]) -> str | None:
    """p99 latency against the arrival rate under dynamic batching: one panel per case, a line per (B, T)."""
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    served = [case for case in cases if "arrivals" in case.metrics]
    if not served:
        return None
    figure, all_axes = plt.subplots(1, len(served), figsize=(6 * len(served), 3.8), squeeze=False)
    for axes, case in zip(all_axes[0], served, strict=True):
        rows = case.metrics["arrivals"]["rows"]
        for index, setting in enumerate(dict.fromkeys((row["batch"], row["wait_ms"]) for row in rows)):
            points = sorted(
                (row["rate"], row["latency_p99_ms"]) for row in rows if (row["batch"], row["wait_ms"]) == setting
            )
            label = "batch 1" if setting[0] == 1 else f"B{setting[0]}, T{setting[1]:g} ms"
            axes.plot(*zip(*points, strict=True), "o-", color=f"C{index}", label=label)
        axes.axvline(case.metrics["arrivals"]["capacity_b1"], color="#9e9e9e", linestyle=":", label="batch 1 capacity")
        axes.set_yscale("log")
        axes.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axes.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axes.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axes.set_xlabel("arrival rate (requests / s)")
        axes.set_ylabel("p99 latency (ms)")
        axes.set_title(f"{case.spec.model} / {case.spec.technique}", fontsize=10)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    figure.tight_layout()
    return _png(figure)


def _history_figure(comparison: Comparison, history: Sequence[tuple[Any, RunRecord]], current: RunRecord) -> str | None:
    import matplotlib.pyplot as plt

    compared = [c for c in comparison.cases if any(f.name == "speedup" for f in c.figures)]
    compared.sort(key=lambda c: (c.status != "regression", c.case_id))
    compared = compared[:6]
    if not compared:
        return None
    figure, all_axes = plt.subplots(len(compared), 1, figsize=(9, 2.1 * len(compared)), squeeze=False)
    for axes, case in zip(all_axes[:, 0], compared, strict=True):
        points = history_points(case.case_id, history)
        speed = next(f for f in case.figures if f.name == "speedup")
        xs = list(range(len(points)))
        axes.plot(xs, [p[1] for p in points], "o-", color="#616161", label="past runs")
        confirmed = [(x, p[1]) for x, p in zip(xs, points, strict=True) if p[2]]
        if confirmed:
            axes.plot(*zip(*confirmed, strict=True), "X", color="#c62828", markersize=9, label="confirmed regression")
        axes.axhspan(speed.low, speed.high, color="#90caf9", alpha=0.35, label="band")
        axes.axhline(speed.reference, color="#1565c0", linewidth=0.8)
        colour = "#c62828" if speed.status == "regression" else "#2e7d32"
        moved = [f"{f.name} {f.status}" for f in case.figures if f.status != "unchanged"]
        axes.plot(len(points), speed.current, "D", color=colour, label=f"this run: speedup {speed.status}")
        if moved:
            axes.text(0.01, 0.04, "case: " + ", ".join(moved), transform=axes.transAxes, fontsize=7, color="#c62828")
        axes.set_xticks([*xs, len(points)], [*[p[0] for p in points], current.started[:10]], fontsize=7)
        axes.set_title(case.case_id, fontsize=9)
        axes.set_ylabel("speedup")
        axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))  # never over the points or the note
    figure.tight_layout()
    return _png(figure)


def history_points(case_id: str, history: Sequence[tuple[Any, RunRecord]]) -> list[tuple[str, float, bool]]:
    """The case's speedup in each past run: (date, speedup, whether that night confirmed a regression of it)."""
    points = []
    for _, run in history:
        marks = run.against_history or {}
        for past in run.cases:
            if past.spec.case_id == case_id and (estimate := speed_estimate(past)) is not None:
                mark = marks.get(case_id, {})
                confirmed = mark.get("status") == "regression" and mark.get("confirmed") is True
                points.append((run.started[:10], estimate["speedup"], confirmed))
    return points


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
        if line.startswith("## "):
            close_table()
            out.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("|") and not line.startswith("|---"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            tag = "th" if not rows else "td"
            rows.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
        elif line.strip() and not line.startswith("|"):
            close_table()
            out.append(f"<p>{html.escape(line)}</p>")
    close_table()
    return out


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


def html_report(
    record: RunRecord, comparison: Comparison | None = None, history: Sequence[tuple[Any, RunRecord]] = ()
) -> str:
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    cases = record.cases
    classes = record.fingerprint.get("hardware_class", {})
    figures = [
        ("Speedup against fp32 eager", _speedup_figure(cases)),
        ("Accuracy against speed", _pareto_figure(cases)),
        ("Serving memory", _memory_figure(cases)),
        ("Throughput against batch size", _throughput_figure(cases)),
        ("Dynamic batching: p99 latency against arrival rate", _arrivals_figure(cases)),
        ("Training: speed and memory per recipe; throughput over batch sizes", _training_figure(cases)),
    ]
    if comparison is not None:
        figures.append(("Against the history", _history_figure(comparison, history, record)))
    header = columns()
    table = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for case, row in zip(cases, summary_rows(cases), strict=True):
        colour = VERDICT_COLOURS.get(case.verdict, "#757575")
        cells = "".join(
            f'<td style="color:{colour};font-weight:bold">{html.escape(v)}</td>'
            if h == "verdict"
            else f"<td>{html.escape(v)}</td>"
            for h, v in zip(header, row, strict=True)
        )
        table.append(f"<tr>{cells}</tr>")
    table.append("</table>")
    notes = [*stack_lines(cases), *ungated_lines(cases)]
    body = [
        "<h1>perfgate report</h1>",
        f"<p>started {html.escape(record.started)} · cpu <code>{html.escape(str(classes.get('cpu')))}</code> · "
        f"cuda <code>{html.escape(str(classes.get('cuda')))}</code> · {len(cases)} cases</p>",
        *table,
        *(["<ul>", *[f"<li>{html.escape(n)}</li>" for n in notes], "</ul>"] if notes else []),
    ]
    body += _markdown_table_html(ladder_section(cases))
    sections = (LoadMetric(), LoadUnderCapMetric(), Training(), TrainingBatch(), CompileCost())
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
        "body{font-family:sans-serif;margin:2em;max-width:1400px} table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ddd;padding:3px 6px;text-align:left} th{background:#f5f5f5} img{max-width:100%}"
    )
    head = f"<head><meta charset='utf-8'><title>perfgate report</title><style>{style}</style></head>"
    return f"<!doctype html><html>{head}<body>{''.join(body)}</body></html>\n"
