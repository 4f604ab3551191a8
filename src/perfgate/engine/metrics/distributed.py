"""Distributed training: what each rank holds and moves against the recipe's prediction, its memory
peak against DDP's, and the first losses against single-process AdamW's (``scenarios/train_distributed``).
The step's throughput against the single process is the ``speed`` metric."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from perfgate.engine.metrics.contract import Metric
from perfgate.verdicts.thresholds import Check

if TYPE_CHECKING:
    from perfgate.engine.record import CaseResult

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
        if figures.get("max_unexplained_share") is not None:
            checks.append(Check("max_unexplained_share", figures["max_unexplained_share"], higher_is_better=False))
        memory = figures.get("memory") or {}
        judged = memory.get("resolved") is not False and "world_note" not in figures  # else said in a note
        if memory.get("ratio") is not None and judged:
            checks.append(Check("max_rank_memory_ratio", memory["ratio"], higher_is_better=False))
        if memory.get("saving_ratio") is not None:
            checks.append(Check("min_saving_ratio", memory["saving_ratio"], higher_is_better=True))
            checks.append(Check("max_saving_ratio", memory["saving_ratio"], higher_is_better=False))
        return checks

    def cells(self, figures: dict[str, Any]) -> dict[str, str]:
        text = f"{figures['world']} ranks; peak/rank {figures['max_anon_peak'] / MIB:.0f} MiB"
        memory = figures.get("memory") or {}
        if memory.get("ratio") is not None:
            text += f" ({memory['ratio']:.2f}x DDP)"
        if memory.get("saving_ratio") is not None:
            text += f"; saved {memory['saving'] / MIB:.0f} of {memory['predicted_saving'] / MIB:.0f} MiB predicted"
        if memory.get("resolved") is False:
            text += "; the anonymous peak cannot resolve the saving: judged on live tensor bytes"
        if figures.get("world_note"):
            text += f"; {figures['world_note']}"
        if figures.get("restarted"):
            text += f"; started twice: {figures['restarted']}"
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
        return out + breakdown_section(rows) + saving_section(rows)


def breakdown_section(cases: Sequence[CaseResult]) -> list[str]:
    """Each rank's live peak split into its parts, each measured on its own, what they leave unexplained,
    and what the anonymous peak holds beyond the tensors."""
    rows = [(case, row) for case in cases for row in case.metrics["distributed"]["ranks"] if row.get("breakdown")]
    if not rows:
        return []
    out = ["", "Each rank's live peak (the most tensor bytes alive at once in a step, from the allocations torch's "
           "profiler recorded) part by part: what it holds throughout, and what the peak's phase adds (the "
           "activations autograd saved and FSDP's unsharded units in forward and backward; AdamW's temporaries, "
           "twice its largest local parameter, in the optimizer step). The anonymous peak less the live one is "
           "the allocator's and the runtime's.", "",
           "| model | recipe | rank | live peak MiB (phase) | held: parameters / gradients / state / engine buffers | "
           "phase adds | unexplained | anonymous peak MiB | allocator and runtime MiB |",
           "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for case, row in rows:
        parts = row["breakdown"]
        held = " / ".join(
            f"{parts[k] / MIB:.1f}" for k in ("parameters", "gradients", "optimizer_state", "engine_buffers")
        )
        adds = ", ".join(f"{k.replace('_', ' ')} {v / MIB:.1f}" for k, v in parts.items()
                         if k in ("activations", "unsharded_parameters", "optimizer_temporaries"))  # fmt: skip
        left = f"{row['unexplained'] / MIB:.1f} MiB ({row['unexplained_share']:.0%})"
        peak = "-" if row["anon_peak"] is None else f"{row['anon_peak'] / MIB:.0f}"
        rest = "-" if row.get("allocator_and_runtime") is None else f"{row['allocator_and_runtime'] / MIB:.0f}"
        out.append(f"| {case.spec.model} | {case.spec.technique} | {row['rank']} | {row['live_peak'] / MIB:.1f} "
                   f"({row['live_peak_phase']}) | {held} | {adds} | {left} | {peak} | {rest} |")  # fmt: skip
    return out


def saving_section(cases: Sequence[CaseResult]) -> list[str]:
    """Each sharded recipe's saving against DDP beside the saving its partition predicts."""
    found = [(case, case.metrics["distributed"].get("memory") or {}) for case in cases]
    found = [(case, memory) for case, memory in found if "predicted_saving" in memory]
    if not found:
        return []
    out = ["", "Saving against DDP, the rank holding most on each side: live peaks (tensor bytes) beside what the "
           "partition predicts (the parameters, gradients and optimizer state it no longer holds, less what its "
           "engine holds beyond them within a step); then the anonymous peaks a user provisions.", "",
           "| model | recipe | DDP live peak MiB | saved MiB | predicted MiB | saved / predicted | anonymous peak "
           "against DDP's |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for case, memory in found:
        ratio = "-" if memory.get("saving_ratio") is None else f"{memory['saving_ratio']:.2f}"
        saved = "-" if memory.get("saving") is None else f"{memory['saving'] / MIB:.1f}"
        ddp_live = "-" if memory.get("ddp_max_live_peak") is None else f"{memory['ddp_max_live_peak'] / MIB:.1f}"
        anon = (
            memory.get("note")
            or f"{memory['ratio']:.2f}x ({memory['max_anon_peak'] / MIB:.0f} of "
            f"{memory['ddp_max_anon_peak'] / MIB:.0f} MiB)"
        )
        out.append(f"| {case.spec.model} | {case.spec.technique} | {ddp_live} | {saved} | "
                   f"{memory['predicted_saving'] / MIB:.1f} | {ratio} | {anon} |")  # fmt: skip
    return out


def parameter_peak(row: dict[str, Any]) -> str:
    """FSDP's parameter peak with its bound where it has one (full shard), else a dash."""
    if row.get("parameter_peak") is None:
        return "-"
    text = f"{row['parameter_peak'] / MIB:.1f}"
    return text if row.get("parameter_peak_bound") is None else f"{text} ({row['parameter_peak_bound'] / MIB:.1f})"
