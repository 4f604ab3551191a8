"""Dynamic batching under Poisson arrivals: latency and throughput per arrival rate and (B, T)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from perfgate.engine.metrics.contract import Metric

if TYPE_CHECKING:
    from perfgate.engine.record import CaseResult


def pays_from(figures: dict[str, Any]) -> tuple[float, int, float] | None:
    """The lowest load (arrival rate over batch 1's capacity) at which some batching setting has a lower
    p99 latency than batch 1, with that setting's B and T; None if batch 1 is never beaten."""
    rows = figures["rows"]
    for load in sorted({row["load"] for row in rows}):
        at = [row for row in rows if row["load"] == load]
        single = next(row for row in at if row["batch"] == 1)
        batched = [row for row in at if row["batch"] > 1 and row["latency_p99_ms"] < single["latency_p99_ms"]]
        if batched:
            best = min(batched, key=lambda row: row["latency_p99_ms"])
            return load, best["batch"], best["wait_ms"]
    return None


class DynamicBatching(Metric):
    name = "arrivals"
    columns = ("dynamic batching",)

    def cells(self, figures: dict[str, Any]) -> dict[str, str]:
        found = pays_from(figures)
        if found is None:
            return {"dynamic batching": "batch 1 best at every rate"}
        load, batch, wait = found
        return {"dynamic batching": f"pays from {load:g}x b1 capacity (B{batch}, T{wait:g} ms)"}

    def section(self, cases: Sequence[CaseResult]) -> list[str]:
        rows = [case for case in cases if self.name in case.metrics]
        if not rows:
            return []
        out = [
            "## Dynamic batching under arrivals",
            "",
            "Seeded Poisson arrivals at multiples of what batch 1 serves back to back; a batcher takes up to B "
            "requests or leaves once the oldest has waited T. Trace-driven: every batch really run and timed. "
            "Cells: p50 / p99 latency in ms, achieved throughput in requests/s.",
        ]
        for case in rows:
            figures = case.metrics[self.name]
            settings = list(dict.fromkeys((row["batch"], row["wait_ms"]) for row in figures["rows"]))
            out += ["", f"**{case.spec.model} / {case.spec.technique}** (batch 1 serves "
                        f"{figures['capacity_b1']:.0f} requests/s):", ""]  # fmt: skip
            out += ["| load | rate/s | " + " | ".join(f"B{b} T{t:g}ms" for b, t in settings) + " |",
                    "|---" * (len(settings) + 2) + "|"]  # fmt: skip
            for load in sorted({row["load"] for row in figures["rows"]}):
                at = {(row["batch"], row["wait_ms"]): row for row in figures["rows"] if row["load"] == load}
                rate = next(iter(at.values()))["rate"]
                cells = [f"{at[s]['latency_p50_ms']:.0f} / {at[s]['latency_p99_ms']:.0f}, {at[s]['throughput']:.0f}/s"
                         for s in settings]  # fmt: skip
                out.append(f"| {load:g}x | {rate:.0f} | " + " | ".join(cells) + " |")
        return out
