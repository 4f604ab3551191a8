"""One distributed case's figures from its ranks' reports: what each rank held and moved against its
recipe's prediction, its memory peak, and the first losses against single-process AdamW's."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from perfgate.distributed.predictions import (
    full_shard_parameter_bound,
    predicted_communication_bytes,
    predicted_rank_bytes,
)


def distributed_figures(recipe: str, ranks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One case's figures from its ranks' reports (``distributed.rank``): per rank, what it holds against
    the prediction, its traffic against the prediction and its memory peak; the first losses against
    single-process AdamW's on the same global batches; the worst relative errors, which thresholds bound."""
    world = len(ranks)
    shapes = ranks[0]["shapes"]
    parameter_bytes = 4 * sum(math.prod(shape) for shape in shapes)
    predicted = predicted_rank_bytes(recipe, shapes, world)
    traffic = predicted_communication_bytes(recipe, parameter_bytes)
    rows = []
    for report in sorted(ranks, key=lambda r: r["rank"]):
        rank = report["rank"]
        measured = {"parameters": report["parameters"]["storage_bytes"], "gradients": report["gradients"],
                    "optimizer_state": report["optimizer_state"]}  # fmt: skip
        memory = report["memory"]
        peak = (memory["peak"].get("max") or {}).get("anon")
        rows.append({
            "rank": rank,
            "measured": measured,
            "predicted": predicted[rank],
            "errors": {k: _relative(measured[k], predicted[rank][k]) for k in measured},
            "communication_bytes": report["communication"]["bytes"],
            "communication_calls": report["communication"]["calls"],
            "communication_error": _relative(report["communication"]["bytes"], traffic),
            "anon_peak": None if peak is None else max(0, peak - memory["before_model"].get("anon", 0)),
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
    if recipe == "fsdp-full-shard":
        bound = full_shard_parameter_bound(at_rest, unsharded["unit_bytes"])
        figures.update(parameter_peak_bound=bound, parameter_peak_ratio=peak / bound)
    return figures


def _relative(measured: float, predicted: float) -> float:
    return abs(measured - predicted) / predicted if predicted else float(measured != 0)
