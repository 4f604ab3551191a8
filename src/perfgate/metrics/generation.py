"""Causal LMs: time to first token and per-token latency, both arms (greedy, fixed new tokens)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from perfgate.metrics import Metric

if TYPE_CHECKING:
    from perfgate.case import CaseResult


class GenerationLatency(Metric):
    name = "generation"

    def section(self, cases: Sequence[CaseResult]) -> list[str]:
        rows = [case for case in cases if self.name in case.metrics]
        if not rows:
            return []
        out = [
            "## Generation (greedy, fixed number of new tokens)",
            "",
            "| model | technique | new tokens | time to first token, fp32 → candidate | per token, fp32 → candidate |",
            "|---|---|---|---|---|",
        ]
        for case in rows:
            base, cand = case.metrics[self.name]["baseline"], case.metrics[self.name]["candidate"]
            out.append(
                f"| {case.spec.model} | {case.spec.technique} | {base['new_tokens']} | "
                f"{base['time_to_first_token'] * 1e3:.2f} → {cand['time_to_first_token'] * 1e3:.2f} ms | "
                f"{base['per_token'] * 1e3:.3f} → {cand['per_token'] * 1e3:.3f} ms |"
            )
        return out
