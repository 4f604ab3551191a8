"""Distributed training: what each rank holds and moves against the recipe's prediction, its memory
peak against DDP's, and the first losses against single-process AdamW's (``scenarios/train_distributed``).
The step's throughput against the single process is the ``speed`` metric."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from perfgate.metrics import Metric
from perfgate.thresholds import Check

if TYPE_CHECKING:
    from perfgate.case import CaseResult

MIB = 2**20


class Distributed(Metric):
    name = "distributed"
    columns = ("train",)

    def measured(self, figures: dict[str, Any]) -> list[Check]:
        checks = [
            Check("max_shard_prediction_error", figures["max_shard_prediction_error"], higher_is_better=False),
            Check("max_communication_error", figures["max_communication_error"], higher_is_better=False),
        ]
        if figures.get("max_loss_diff") is not None:
            checks.append(Check("max_loss_diff", figures["max_loss_diff"], higher_is_better=False))
        peak_ratio = figures.get("max_parameter_peak_ratio")
        if peak_ratio is not None:
            checks.append(Check("max_parameter_peak_ratio", peak_ratio, higher_is_better=False))
        ratio = (figures.get("memory") or {}).get("ratio")
        if ratio is not None:
            checks.append(Check("max_rank_memory_ratio", ratio, higher_is_better=False))
        return checks

    def cells(self, figures: dict[str, Any]) -> dict[str, str]:
        text = f"{figures['world']} ranks; peak/rank {figures['max_anon_peak'] / MIB:.0f} MiB"
        ratio = (figures.get("memory") or {}).get("ratio")
        if ratio is not None:
            text += f" ({ratio:.2f}x DDP)"
        if figures.get("max_loss_diff") is not None:
            text += f"; loss Δ {figures['max_loss_diff']:.2g}"
        return {"train": text}

    def section(self, cases: Sequence[CaseResult]) -> list[str]:
        rows = [case for case in cases if self.name in case.metrics]
        if not rows:
            return []
        out = ["## Distributed training, per rank", "",
               "Each recipe's ranks under torchrun (gloo, one thread each) against fp32 AdamW in one process at the "
               "same global batch. Held: bytes of parameters, gradients and optimizer state the rank holds after "
               "a step, measured from its local shards (predicted in brackets). Traffic: bytes its collectives "
               "moved in one step (predicted: 2Ψ DDP, 3Ψ ZeRO-1 as torch implements it, 2Ψ / 3Ψ FSDP "
               "shard-grad-op / full-shard). Parameter peak: the most parameter bytes held at once in a step, shards "
               "and unsharded units (full shard: bounded by its shards plus the two largest units, in brackets). "
               "Peak: anonymous memory over the first steps beyond the imported libraries. On a machine with fewer "
               "cores than ranks x threads the throughput measures overhead "
               "and traffic on shared cores, not scaling: memory per rank is the headline.", "",
               "| model | recipe | rank | parameters MiB | gradients MiB | optimizer state MiB | traffic MiB/step | "
               "parameter peak MiB | peak MiB | loss Δ |",
               "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for case in rows:
            f = case.metrics[self.name]
            loss = "-" if f.get("max_loss_diff") is None else f"{f['max_loss_diff']:.2g}"
            for row in f["ranks"]:
                held = [f"{row['measured'][k] / MIB:.1f} ({row['predicted'][k] / MIB:.1f})"
                        for k in ("parameters", "gradients", "optimizer_state")]  # fmt: skip
                traffic = f"{row['communication_bytes'] / MIB:.1f} ({f['predicted_communication_bytes'] / MIB:.1f})"
                peak = "-" if row["anon_peak"] is None else f"{row['anon_peak'] / MIB:.0f}"
                out.append(f"| {case.spec.model} | {case.spec.technique} | {row['rank']} | {' | '.join(held)} | "
                           f"{traffic} | {parameter_peak(row)} | {peak} | {loss} |")  # fmt: skip
        return out


def parameter_peak(row: dict[str, Any]) -> str:
    """FSDP's parameter peak with its bound where it has one (full shard), else a dash."""
    if row.get("parameter_peak") is None:
        return "-"
    text = f"{row['parameter_peak'] / MIB:.1f}"
    return text if row.get("parameter_peak_bound") is None else f"{text} ({row['parameter_peak_bound'] / MIB:.1f})"
