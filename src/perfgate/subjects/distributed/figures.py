"""One distributed case's figures from its ranks' reports: what each rank held and moved against its
recipe's prediction, its memory peak, and the first losses against single-process AdamW's."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from perfgate.subjects.distributed.predictions import (
    MIXED_PARAMETER_BYTES,
    full_shard_parameter_bound,
    optimizer_temporary_bytes,
    predicted_communication_bytes,
    predicted_rank_bytes,
    predicted_saving,
)

MIB = 2**20
# A saving the anonymous peak can resolve: 5 % of DDP's peak. tiny-bert's ZeRO-1 peak over DDP's moved
# 0.959-1.017 over 8 runs on cpu-avx2 where its partition predicts 0.985 (3.7 MiB of 252): 3.2 % off at most.
PEAK_RESOLUTION = 0.05


def distributed_figures(recipe: str, ranks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One case's figures from its ranks' reports (``distributed.rank``): per rank, what it holds against
    the prediction, its traffic against the prediction and its memory peak; the first losses against
    single-process AdamW's on the same global batches; the worst relative errors, which thresholds bound."""
    world = len(ranks)
    shapes = ranks[0]["shapes"]
    parameter_bytes = 4 * sum(math.prod(shape) for shape in shapes)
    predicted = predicted_rank_bytes(recipe, shapes, world)
    traffic = predicted_communication_bytes(recipe, parameter_bytes)
    temporaries = optimizer_temporary_bytes(recipe, shapes, world)
    rows = []
    for report in sorted(ranks, key=lambda r: r["rank"]):
        rank = report["rank"]
        measured = {"parameters": report["parameters"]["storage_bytes"], "gradients": report["gradients"],
                    "optimizer_state": report["optimizer_state"]}  # fmt: skip
        memory = report["memory"]
        peak = (memory["peak"].get("max") or {}).get("anon")
        anon_peak = None if peak is None else max(0, peak - memory["before_model"].get("anon", 0))
        rows.append({
            "rank": rank,
            "measured": measured,
            "predicted": predicted[rank],
            "errors": {k: _relative(measured[k], predicted[rank][k]) for k in measured},
            "communication_bytes": report["communication"]["bytes"],
            "communication_calls": report["communication"]["calls"],
            "communication_error": _relative(report["communication"]["bytes"], traffic),
            "anon_peak": anon_peak,
            **_breakdown(report, measured, anon_peak, temporaries[rank]),
            "anon_held": max(0, memory["held"].get("anon", 0) - memory["before_model"].get("anon", 0)),
            **_parameter_peak(recipe, measured["parameters"], report.get("unsharded")),
        })  # fmt: skip
    lead = next(r for r in ranks if r["rank"] == 0)
    losses, reference = lead["losses"], lead.get("reference_losses")
    figures: dict[str, Any] = {
        "recipe": recipe,
        "world": world,
        "parameter_bytes": parameter_bytes,
        "predicted_communication_bytes": traffic,
        "ranks": rows,
        "losses": losses,
        "reference_losses": reference,
        "max_loss_diff": None if reference is None else max(abs(a - b) for a, b in zip(losses, reference, strict=True)),
        "max_shard_prediction_error": max(max(row["errors"].values()) for row in rows),
        "max_communication_error": max(row["communication_error"] for row in rows),
        "max_anon_peak": max((row["anon_peak"] or 0) for row in rows),
    }
    # Judged where the live peak is the optimizer step: what the rank holds and AdamW's temporaries, known
    # to the byte. Backward frees activations as gradients arrive, and computes each gradient in a buffer
    # of its own first: its rest is reported beside the parts, not bounded.
    shares = [abs(row["unexplained_share"]) for row in rows if row.get("live_peak_phase") == "optimizer step"]
    if shares:
        figures["max_unexplained_share"] = max(shares)
    live = [row["live_peak"] for row in rows if row.get("live_peak") is not None]
    if "activations" in lead and len(live) == world:
        unit_bytes = (lead.get("unsharded") or {}).get("unit_bytes", [])
        figures["max_live_peak"] = max(live)
        figures["predicted_saving"] = predicted_saving(recipe, shapes, world, lead["activations"], unit_bytes)
    bounded = [row["parameter_peak_ratio"] for row in rows if row.get("parameter_peak_ratio") is not None]
    if bounded:
        figures["max_parameter_peak_ratio"] = max(bounded)
    if lead.get("no_sync"):
        estimate = lead["no_sync"]["estimate"]  # with sync over without: the all-reduce's cost
        figures["allreduce_share"] = 1 - 1 / estimate["speedup"] if estimate else None
    return figures


def _parameter_peak(recipe: str, at_rest: int, unsharded: dict[str, Any] | None) -> dict[str, Any]:
    """FSDP: the most parameter bytes the rank held at once in a step (its shards and what was unsharded),
    and for full sharding that over ``full_shard_parameter_bound``; shard-grad-op keeps every unit
    unsharded from forward to backward by design, so it is recorded, not bounded."""
    if not unsharded:
        return {}
    peak = at_rest + unsharded["peak_bytes"]
    figures = {"parameter_peak": peak, "parameter_peak_units": len(unsharded["peak_units"])}
    if recipe in ("fsdp-full-shard", "fsdp-mixed-precision"):
        scale = MIXED_PARAMETER_BYTES / 4 if recipe == "fsdp-mixed-precision" else 1  # bf16 units unsharded
        bound = full_shard_parameter_bound(at_rest, [int(b * scale) for b in unsharded["unit_bytes"]])
        figures.update(parameter_peak_bound=bound, parameter_peak_ratio=peak / bound)
    return figures


def _relative(measured: float, predicted: float) -> float:
    return abs(measured - predicted) / predicted if predicted else float(measured != 0)


def _breakdown(report: dict[str, Any], held: dict[str, int], anon_peak: int | None, temporaries: int) -> dict[str, Any]:
    """A rank's peak, part by part. The live peak (``instruments.LiveTensorPeak``: the most tensor bytes
    alive at once in a step, and the phase it fell in) split into what the rank holds throughout (its
    parameters, gradients, optimizer state and the engine's own buffers: DDP's buckets where the
    gradients are not views into them) and what the phase adds: the activations autograd saved and the
    units FSDP holds unsharded (forward, backward), or AdamW's temporaries (the optimizer step,
    ``predictions.optimizer_temporary_bytes``). ``unexplained`` is what the parts leave of the live peak;
    the anonymous peak less the live one is the allocator's and the runtime's (``allocator_and_runtime``)."""
    if "activations" not in report:  # a rank report from before the breakdown was measured
        return {}
    engine = report.get("engine") or {}
    buckets = 0 if engine.get("gradients_in_buckets") else engine.get("buckets", 0)
    base = report["memory"]["before_model"].get("anon", 0)
    sampled = {phase: max(0, anon - base) for phase, anon in (report["memory"].get("phase_peaks") or {}).items()}
    found: dict[str, Any] = {"phase_peaks": sampled}
    if sampled:
        found["peak_phase"] = max(sampled, key=lambda name: sampled[name])
    live = (report.get("live") or {}).get("phase_peaks") or {}
    if not live:
        found["live_error"] = (report.get("live") or {}).get("error", "not measured")
        return found
    phase = max(live, key=lambda name: live[name])
    if phase == "optimizer step":
        transient = {"optimizer_temporaries": temporaries}
    else:
        unsharded = (report.get("unsharded") or {}).get("peak_bytes", 0)
        transient = {"activations": report["activations"], "unsharded_parameters": unsharded}
    parts = {**held, "engine_buffers": buckets, **transient}
    unexplained = live[phase] - sum(parts.values())
    found.update(breakdown=parts, live_peak=live[phase], live_peak_phase=phase, live_phase_peaks=live,
                 unexplained=unexplained, unexplained_share=unexplained / live[phase])  # fmt: skip
    if anon_peak:
        found["allocator_and_runtime"] = anon_peak - live[phase]
    return found


def memory_against_ddp(figures: dict[str, Any], ddp: dict[str, int | None]) -> dict[str, Any]:
    """The recipe's per-rank peaks against DDP's (``ddp``: its ``anon`` and ``live`` peaks, the largest
    rank's). The anonymous peak is what a user provisions: its ratio is judged where the saving the
    partition predicts is one the peak can resolve (``PEAK_RESOLUTION``), else said, not judged. The
    saving itself (DDP's live peak less the recipe's) is judged against the prediction
    (``predictions.predicted_saving``): tensor bytes the step holds, which the allocator's record gives
    to the byte, so a small saving is judged too."""
    peak, ddp_peak = figures["max_anon_peak"], ddp.get("anon")
    memory: dict[str, Any] = {"ddp_max_anon_peak": ddp_peak, "max_anon_peak": peak,
                              "ratio": peak / ddp_peak if ddp_peak else None}  # fmt: skip
    predicted = figures.get("predicted_saving")
    if figures["recipe"] == "ddp" or not ddp_peak or predicted is None:
        return memory
    memory["predicted_saving"] = predicted
    resolution = PEAK_RESOLUTION * ddp_peak
    if abs(predicted) < resolution:
        memory["resolved"] = False
        memory["note"] = (
            f"the predicted saving, {predicted / MIB:.1f} MiB a rank, is below what the anonymous peak resolves "
            f"({PEAK_RESOLUTION:.0%} of DDP's {ddp_peak / MIB:.0f} MiB): judged by the live tensor bytes only"
        )
    else:
        memory["resolved"] = True
    if ddp.get("live") is not None and figures.get("max_live_peak") is not None:
        memory["ddp_max_live_peak"] = ddp["live"]
        memory["saving"] = ddp["live"] - figures["max_live_peak"]
        memory["saving_ratio"] = memory["saving"] / predicted if predicted else None
    return memory
