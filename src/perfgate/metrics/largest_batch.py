"""The largest batch that fits under a memory cap, for the technique and for fp32 eager."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from perfgate.metrics import Metric
from perfgate.thresholds import Check

if TYPE_CHECKING:
    from perfgate.case import CaseResult


class LargestBatch(Metric):
    name = "largest_batch"
    columns = ("largest batch",)

    def measured(self, figures: dict[str, Any]) -> list[Check]:
        ratio = figures.get("ratio")
        return [] if ratio is None else [Check("min_batch_fit_ratio", ratio, higher_is_better=True)]

    def cells(self, figures: dict[str, Any]) -> dict[str, str]:
        base, cand = figures["baseline"]["largest"], figures["candidate"]["largest"]
        return {"largest batch": f"b{cand} vs fp32 b{base}"}

    def section(self, cases: Sequence[CaseResult]) -> list[str]:
        rows = [case for case in cases if self.name in case.metrics]
        if not rows:
            return []
        out = ["## Largest batch that fits", "",
               "Doubling, then bisection; each try a fresh worker capped at what it holds after loading plus the "
               "headroom (CPU: its address space; CUDA: the device). Sequences padded to the length shown.", "",
               "| model | technique | length | headroom | technique fits | fp32 fits | ratio | tries |",
               "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for case in rows:
            f = case.metrics[self.name]
            tries = " ".join(f"{size}{'✓' if ok else '✗'}" for size, ok in f["candidate"]["tries"])
            ratio = "-" if f["ratio"] is None else f"{f['ratio']:.2f}x"
            headroom = f"{f['headroom_bytes'] / 2**20:.0f} MiB"
            out.append(
                f"| {case.spec.model} | {case.spec.technique} | {f['seq_len']} | {headroom} | "
                f"b{f['candidate']['largest']} | b{f['baseline']['largest']} | {ratio} | {tries} |"
            )
        return out
