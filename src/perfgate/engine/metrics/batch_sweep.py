"""Batch sweep: throughput (items/s) and per-item latency over batch sizes and input orders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from perfgate.engine.metrics.contract import Metric
from perfgate.verdicts.thresholds import Check

if TYPE_CHECKING:
    from perfgate.engine.record import CaseResult


def batching_gain(figures: dict[str, Any], order: str = "sorted") -> tuple[float, int] | None:
    """The best throughput of ``order`` over its batch-1 throughput, and the batch size it came at."""
    rows = [row for row in figures["rows"] if row["order"] == order]
    single = next((row["items_per_second"] for row in rows if row["batch_size"] == 1), None)
    if not rows or not single:
        return None
    best = max(rows, key=lambda row: row["items_per_second"])
    return best["items_per_second"] / single, best["batch_size"]


def sorting_gain(figures: dict[str, Any]) -> tuple[float, int] | None:
    """Throughput sorted by length over random order at the largest batch size, and that size: what the
    padding sorting removes is worth on this machine (each order's padding share is in its rows)."""
    rows = {(row["order"], row["batch_size"]): row for row in figures["rows"]}
    largest = max((size for order, size in rows if order == "sorted"), default=None)
    if largest is None or ("random", largest) not in rows or largest < 2:
        return None
    return rows[("sorted", largest)]["items_per_second"] / rows[("random", largest)]["items_per_second"], largest


class BatchSweep(Metric):
    name = "batch_sweep"
    columns = ("batching",)

    def measured(self, figures: dict[str, Any]) -> list[Check]:
        checks = []
        if (gain := batching_gain(figures)) is not None:
            checks.append(Check("min_batching_gain", gain[0], higher_is_better=True))
        if (sorting := sorting_gain(figures)) is not None:
            checks.append(Check("min_sorting_gain", sorting[0], higher_is_better=True))
        return checks

    def cells(self, figures: dict[str, Any]) -> dict[str, str]:
        gain, sorting = batching_gain(figures), sorting_gain(figures)
        cell = [] if gain is None else [f"{gain[0]:.2f}x at b{gain[1]} (sorted)"]
        cell += [] if sorting is None else [f"sorting {sorting[0]:.2f}x at b{sorting[1]}"]
        return {"batching": "; ".join(cell)} if cell else {}

    def section(self, cases: Sequence[CaseResult]) -> list[str]:
        rows = [case for case in cases if self.name in case.metrics]
        if not rows:
            return []
        out = [
            "## Batch sweep",
            "",
            "Throughput over the evaluation sentences in three orders: random (each batch padded to its "
            "longest), sorted by length (little padding), every batch padded to 128 tokens. Latency: the "
            "batch an item rode in, p50/p99.",
        ]
        for case in rows:
            figures = case.metrics[self.name]
            sizes = sorted({row["batch_size"] for row in figures["rows"]})
            orders = list(dict.fromkeys(row["order"] for row in figures["rows"]))
            cell = {(row["order"], row["batch_size"]): row for row in figures["rows"]}
            out += ["", f"**{case.spec.model} / {case.spec.technique}** (items/s, p99 ms, padding):", ""]
            out += ["| order | " + " | ".join(f"b{size}" for size in sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
            for order in orders:
                values = [cell[(order, size)] for size in sizes]
                out.append(
                    f"| {order} | "
                    + " | ".join(
                        f"{v['items_per_second']:.0f}/s, {v['latency_p99_ms']:.0f} ms, {v['padding_share']:.0%}"
                        for v in values
                    )
                    + " |"
                )
        return out
