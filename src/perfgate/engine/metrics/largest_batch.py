"""The largest batch that fits under a memory cap, for the technique and for fp32 eager."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from perfgate.engine.metrics.contract import Metric
from perfgate.verdicts.thresholds import Check

if TYPE_CHECKING:
    from perfgate.engine.record import CaseResult


class LargestBatch(Metric):
    name = "largest_batch"
    columns = ("largest batch",)

    def measured(self, figures: dict[str, Any]) -> list[Check]:
        """Gated only where the cap is a fixed budget that counts the weights (a cgroup, or the GPU's
        memory): under an address-space cap above the loaded variant, smaller weights cannot show."""
        ratio = figures.get("ratio")
        if ratio is None or cap_of(figures)["kind"] == "address-space":
            return []
        return [Check("min_batch_fit_ratio", ratio, higher_is_better=True)]

    def cells(self, figures: dict[str, Any]) -> dict[str, str]:
        base, cand = figures["baseline"]["largest"], figures["candidate"]["largest"]
        return {"largest batch": f"b{cand} vs fp32 b{base}"}

    def section(self, cases: Sequence[CaseResult]) -> list[str]:
        rows = [case for case in cases if self.name in case.metrics]
        if not rows:
            return []
        out = ["## Largest batch that fits", "",
               "Doubling, then bisection; each try a fresh worker serving the variant alone, under the cap shown: "
               "a memory cgroup budget beyond the imported libraries (counts weights and activations; a kill "
               "inside it ends the try), an address-space headroom beyond the loaded variant (counts only what "
               "the batch adds; not gated), or a GPU budget (torch's allocator capped at that many bytes of the "
               "device, weights included, so every GPU size reaches out-of-memory). Sequences padded to the length "
               "shown.", "",
               "| model | technique | length | cap | technique fits | fp32 fits | ratio | tries |",
               "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for case in rows:
            f = case.metrics[self.name]
            tries = " ".join(f"{size}{'✓' if ok else '✗'}" for size, ok in f["candidate"]["tries"])
            ratio = "-" if f["ratio"] is None else f"{f['ratio']:.2f}x"
            out.append(
                f"| {case.spec.model} | {case.spec.technique} | {f['seq_len']} | {describe_cap(cap_of(f))} | "
                f"b{f['candidate']['largest']} | b{f['baseline']['largest']} | {ratio} | {tries} |"
            )
        return out


def cap_of(figures: dict[str, Any]) -> dict[str, Any]:
    """The cap a search ran under; results from before caps were named ran under an address-space cap."""
    return figures.get("cap") or {"kind": "address-space", "headroom_bytes": figures.get("headroom_bytes", 0)}


def describe_cap(cap: dict[str, Any]) -> str:
    if cap["kind"] == "cgroup":
        return f"cgroup v{cap['version']}, {cap['budget_bytes'] / 2**20:.0f} MiB budget"
    if cap["kind"] == "address-space":
        why = f" (no cgroup: {cap['why_not_cgroup']})" if "why_not_cgroup" in cap else ""
        return f"address space +{cap['headroom_bytes'] / 2**20:.0f} MiB{why}"
    if cap.get("budget_bytes"):
        return f"GPU allocator capped at {cap['budget_bytes'] / 2**30:.0f} GiB"
    return "GPU memory"  # results from before GPU budgets
