"""The HTML report's figures (matplotlib, inlined as PNG): speedups with their intervals, training and
distributed steps, the fidelity-speed Pareto front, memory, throughput, arrivals, and each case against
its history. Each is None where the run measured nothing it draws."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from perfgate.engine.metrics.distributed import MIB
from perfgate.engine.record import CaseResult
from perfgate.instruments.outcome import Verdict
from perfgate.reports.sections import speed_estimate

if TYPE_CHECKING:
    from perfgate.records.regressions import Comparison
    from perfgate.records.results import RunRecord

__all__ = [
    "CHECK_LEGEND",
    "MEMORY_CHECKS",
    "SPEED_CHECKS",
    "VERDICT_COLOURS",
    "arrivals_figure",
    "check_verdict",
    "distributed_figure",
    "history_figure",
    "history_points",
    "memory_figure",
    "pareto_figure",
    "pareto_front",
    "speedup_figure",
    "throughput_figure",
    "training_figure",
]


VERDICT_COLOURS = {
    Verdict.PASS: "#2e7d32", Verdict.FAIL: "#c62828", Verdict.INCONCLUSIVE: "#ef6c00", Verdict.UNGATED: "#757575",
    Verdict.RECORDED: "#1565c0",
}  # fmt: skip


SPEED_CHECKS = frozenset({"speed"})  # the speed metric names its check so, under either field


MEMORY_CHECKS = frozenset({"max_memory_ratio"})


CHECK_LEGEND = {"pass": "holds its bound", "fail": "misses its bound", "inconclusive": "undecided",
                "ungated": "no bound here"}  # fmt: skip


def check_verdict(case: CaseResult, names: frozenset[str]) -> Verdict:
    """The verdict of the case's checks named ``names`` (the worst of them); UNGATED where none judged it."""
    found = {Verdict(check.verdict) for check in case.checks if check.name in names}
    for verdict in (Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.PASS):
        if verdict in found:
            return verdict
    return Verdict.UNGATED


def _check_legend(axes: Any, verdicts: set[Verdict], what: str) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=VERDICT_COLOURS[v], label=f"{what} {CHECK_LEGEND[str(v)]}") for v in VERDICT_COLOURS
               if v in verdicts]  # fmt: skip
    axes.legend(handles=handles, fontsize=8, loc="lower right")


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


def speedup_figure(cases: Sequence[CaseResult]) -> str | None:
    import matplotlib.pyplot as plt

    rows = [(c, e) for c in cases if (e := speed_estimate(c)) is not None]
    if not rows:
        return None
    figure, axes = plt.subplots(figsize=(11, 0.3 * len(rows) + 1.4))
    verdicts = {check_verdict(case, SPEED_CHECKS) for case, _ in rows}
    for index, (case, estimate) in enumerate(rows):
        colour = VERDICT_COLOURS[check_verdict(case, SPEED_CHECKS)]
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
    axes.set_xlabel("speedup against fp32 eager (log scale; bar: 95% CI; colour: the speed check)")
    axes.grid(axis="x", which="both", alpha=0.3)
    _check_legend(axes, verdicts, "speed")
    return _png(figure)


def training_figure(cases: Sequence[CaseResult]) -> str | None:
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


def distributed_figure(cases: Sequence[CaseResult]) -> str | None:
    """Per recipe and rank: bytes of parameters, gradients and optimizer state held, stacked (measured), a
    black tick at each part's predicted top, and the rank's anonymous peak as a diamond."""
    import matplotlib.pyplot as plt

    rows = [(c, row) for c in cases if "distributed" in c.metrics for row in c.metrics["distributed"]["ranks"]]
    if not rows:
        return None
    parts = (("parameters", "#1e88e5"), ("gradients", "#43a047"), ("optimizer_state", "#fb8c00"))
    figure, axes = plt.subplots(figsize=(11, 0.45 * len(rows) + 1.6))
    for index, (_, row) in enumerate(rows):
        measured_left = predicted_left = 0.0
        for part, colour in parts:
            measured, predicted = row["measured"][part] / MIB, row["predicted"][part] / MIB
            axes.barh(index, measured, left=measured_left, color=colour, height=0.6,
                      label=part.replace("_", " ") if index == 0 else None)  # fmt: skip
            predicted_left += predicted
            axes.plot([predicted_left, predicted_left], [index - 0.35, index + 0.35], color="black", linewidth=1.2)
            measured_left += measured
        if row.get("anon_peak"):
            axes.scatter(row["anon_peak"] / MIB, index, marker="D", color="#6a1b9a", zorder=3,
                         label="anonymous peak" if index == 0 else None)  # fmt: skip
    axes.set_yticks(range(len(rows)), [f"{c.spec.model} {c.spec.technique} rank {r['rank']}" for c, r in rows],
                   fontsize=8)  # fmt: skip
    axes.invert_yaxis()
    axes.set_xlabel("MiB per rank: held after a step, measured (bars) and predicted (ticks); peak over the first steps")
    axes.grid(axis="x", alpha=0.3)
    axes.legend(fontsize=7, loc="lower right")
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


def pareto_figure(cases: Sequence[CaseResult]) -> str | None:
    """One panel per model and batch, two to a row: each technique a numbered point (the legend below names
    it, so names never collide), the Pareto front in blue."""
    import matplotlib.pyplot as plt

    rows = [
        (c, e["speedup"], c.metrics["fidelity"]["cosine_min"])
        for c in cases
        if (e := speed_estimate(c)) is not None and c.metrics.get("fidelity", {}).get("cosine_min") is not None
    ]
    groups = sorted({(c.spec.model, c.spec.batch_size) for c, _, _ in rows})
    if not groups:
        return None
    columns_ = min(len(groups), 2)
    lines = (len(groups) + 1) // 2
    most = max(sum(1 for c, _, _ in rows if (c.spec.model, c.spec.batch_size) == g) for g in groups)
    height = 4.2 + 0.22 * ((most + 1) // 2)  # the legend's rows below the axes
    figure, all_axes = plt.subplots(lines, columns_, figsize=(6.6 * columns_, height * lines), squeeze=False)
    for axes, (model, batch) in zip(all_axes.flat, groups, strict=False):
        mine = [(c, s, f) for c, s, f in rows if (c.spec.model, c.spec.batch_size) == (model, batch)]
        front = set(pareto_front([(s, f) for _, s, f in mine]))
        for index, (case, speed, fidelity) in enumerate(mine):
            colour = "#1565c0" if index in front else "#9e9e9e"
            axes.scatter(speed, _loss(fidelity), color=colour, zorder=3,
                         label=f"{index + 1}  {case.spec.technique}  {speed:.2f}x, cos {fidelity:.4f}")  # fmt: skip
            axes.annotate(str(index + 1), (speed, _loss(fidelity)), fontsize=9, xytext=(5, 3),
                          textcoords="offset points", color=colour)  # fmt: skip
        ordered = sorted((mine[i][1], _loss(mine[i][2])) for i in front)
        axes.plot([p[0] for p in ordered], [p[1] for p in ordered], color="#1565c0", linewidth=1, alpha=0.6)
        axes.axvline(1.0, color="black", linewidth=0.8)
        axes.set_xscale("log")
        _ratio_axis(axes.xaxis)
        axes.set_yscale("log")
        axes.invert_yaxis()  # closer to fp32 is up
        axes.margins(x=0.15, y=0.15)
        axes.set_title(f"{model}, batch {batch}", fontsize=11)
        axes.set_xlabel("speedup (log)")
        axes.set_ylabel("1 - lowest cosine to fp32 (log; up is closer)")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.16), ncol=2, frameon=False,
                    handletextpad=0.2, columnspacing=1.0)  # fmt: skip
    for axes in list(all_axes.flat)[len(groups) :]:
        axes.set_visible(False)
    figure.suptitle("Accuracy against speed: blue points are on the Pareto front", fontsize=11)
    figure.tight_layout()
    return _png(figure)


def memory_figure(cases: Sequence[CaseResult]) -> str | None:
    """Serving memory over fp32's per case, each bar coloured by the case's memory check (not its verdict:
    a fast case that holds 1.8x the memory shows that)."""
    import matplotlib.pyplot as plt

    rows = [(c, c.metrics["memory"]["ratio"]) for c in cases if c.metrics.get("memory", {}).get("ratio") is not None]
    if not rows:
        return None
    figure, axes = plt.subplots(figsize=(11, 0.3 * len(rows) + 1.4))
    verdicts = [check_verdict(c, MEMORY_CHECKS) for c, _ in rows]
    axes.barh(range(len(rows)), [r for _, r in rows], color=[VERDICT_COLOURS[v] for v in verdicts])
    for index, (_, ratio) in enumerate(rows):
        axes.text(ratio, index, f" {ratio:.2f}x", va="center", fontsize=8)
    axes.axvline(1.0, color="black", linewidth=0.8)
    axes.set_yticks(range(len(rows)), [_label(c) for c, _ in rows], fontsize=9)
    axes.invert_yaxis()
    axes.margins(x=0.12)
    axes.set_xlabel("serving memory attributable to the model, candidate / fp32 (colour: the memory check)")
    axes.grid(axis="x", alpha=0.3)
    _check_legend(axes, set(verdicts), "memory")
    return _png(figure)


def throughput_figure(cases: Sequence[CaseResult]) -> str | None:
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


def arrivals_figure(cases: Sequence[CaseResult]) -> str | None:
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


def history_figure(comparison: Comparison, history: Sequence[tuple[Any, RunRecord]], current: RunRecord) -> str | None:
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
