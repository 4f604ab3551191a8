"""torch.compile: cold and warm compile time, graphs compiled over a fixed sweep of lengths, breaks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from perfgate.engine.metrics.contract import Metric
from perfgate.verdicts.thresholds import Check

if TYPE_CHECKING:
    from perfgate.engine.record import CaseResult


class CompileCost(Metric):
    name = "compile"
    columns = ("compile s",)

    def measured(self, figures: dict[str, Any]) -> list[Check]:
        return [
            Check("max_compile_graphs", figures["graphs"], higher_is_better=False),
            Check("max_graph_breaks", figures["graph_breaks"], higher_is_better=False),
        ]

    def cells(self, figures: dict[str, Any]) -> dict[str, str]:
        return {"compile s": f"{figures['cold_seconds']:.1f} cold / {figures['warm_seconds']:.1f} warm"}

    def section(self, cases: Sequence[CaseResult]) -> list[str]:
        rows = [case for case in cases if self.name in case.metrics]
        if not rows:
            return []
        out = [
            "## torch.compile",
            "",
            "Cold: first call into an empty inductor cache (a training step: its first step, forward and "
            "backward). Warm: first call after a reset, cache filled. Graphs: distinct graphs compiled over the "
            "sequence lengths listed, at batch 1 for inference and at the case's batch for a training step. "
            "Timed shape: the timed inputs run before timing (their own compile, a CUDA graph's recording): "
            "graphs compiled for it, and its first calls' seconds.",
            "",
            "| model | technique | batch | cold s | warm s | graphs (lengths) | graph breaks | timed shape |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for case in rows:
            f = case.metrics[self.name]
            lengths = ", ".join(str(n) for n in f["sweep_lengths"])
            out.append(
                f"| {case.spec.model} | {case.spec.technique} | {case.spec.batch_size} | {f['cold_seconds']:.1f} | "
                f"{f['warm_seconds']:.1f} | {f['graphs']} ({lengths}) | {f['graph_breaks']} | {_timed_shape(f)} |"
            )
        return out


def _timed_shape(figures: dict[str, Any]) -> str:
    primed = figures.get("timed_shape")
    if not primed:
        return "-"
    calls = " → ".join(f"{seconds:.2f}" for seconds in primed["call_seconds"])
    shape = "x".join(map(str, primed["shape"]))
    return f"{shape}: {primed['graphs']} graph(s), calls {calls} s"
