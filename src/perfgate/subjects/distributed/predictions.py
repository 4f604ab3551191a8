"""What each rank of a sharded training run should hold, and what a step should move: the predictions the
distributed recipes' measurements are judged against (``train-ddp``, ``train-zero1``, ``train-fsdp-*``).

Each follows the engine that runs the recipe, not a textbook's round numbers:

- **ZeRO-1** (``torch.distributed.optim.ZeroRedundancyOptimizer``): whole parameters per rank, assigned
  largest first to the rank with the smallest total so far (its ``_partition_parameters``), so one large
  tensor (MiniLM's 30522 x 384 word embeddings, 36 % of its parameters) makes the split uneven. A rank's
  optimizer state is its partition's.
- **FSDP** (``fully_shard``): every parameter split along dim 0 into ``world`` chunks of ``ceil(dim0 /
  world)`` rows, the last short or empty; FSDP2 allocates each rank's chunk padded to that size.
- **Communication per step and rank**, in the ZeRO paper's accounting from tensor sizes (an all-reduce is
  a reduce-scatter and an all-gather: twice the tensor; a reduce-scatter counts its full input, an
  all-gather its full output, a broadcast its tensor): DDP all-reduces the gradients (2 Ψ for Ψ bytes of
  parameters); ZeRO-1 here is DDP's all-reduce plus a broadcast of each updated partition from its owner
  (3 Ψ: torch's ZeroRedundancyOptimizer does not reduce-scatter, as DeepSpeed's stage 1 does for 2 Ψ);
  FSDP without resharding after forward all-gathers the parameters once and reduce-scatters the gradients
  (2 Ψ); full sharding all-gathers them again for backward (3 Ψ).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

RECIPES = ("ddp", "ddp-grad-copy", "zero1", "fsdp-shard-grad-op", "fsdp-full-shard", "fsdp-mixed-precision")
FSDP_RECIPES = ("fsdp-shard-grad-op", "fsdp-full-shard", "fsdp-mixed-precision")
# FSDP2's MixedPrecisionPolicy as the recipe sets it: bf16 parameters for compute (and their all-gathers),
# fp32 gradient reduction; the sharded parameters, gradients and AdamW's state stay fp32.
MIXED_PARAMETER_BYTES = 2

# Bytes moved per step and rank, as a multiple of the parameters' bytes (module docstring).
COMMUNICATION_FACTORS = {
    "ddp": 2.0, "ddp-grad-copy": 2.0, "zero1": 3.0, "fsdp-shard-grad-op": 2.0, "fsdp-full-shard": 3.0,
    "fsdp-mixed-precision": 2.0,  # two all-gathers in bf16 (0.5 Ψ each) and a reduce-scatter in fp32 (Ψ)
}  # fmt: skip


def zero1_partition(sizes: Sequence[int], world: int) -> list[list[int]]:
    """Which parameters (indices into ``sizes``, their element counts) each rank owns under
    ZeroRedundancyOptimizer: sorted largest first (a stable sort: equal sizes keep their order), each given
    to the first rank with the smallest total so far."""
    if world < 1:
        raise ValueError(f"world={world}: at least one rank")
    owned: list[list[int]] = [[] for _ in range(world)]
    totals = [0] * world
    for index in sorted(range(len(sizes)), key=lambda i: sizes[i], reverse=True):
        rank = totals.index(min(totals))
        owned[rank].append(index)
        totals[rank] += sizes[index]
    return owned


def fsdp_shard_elements(shapes: Sequence[tuple[int, ...]], world: int, padded: bool = True) -> list[int]:
    """Elements of the parameters each rank holds under FSDP's dim-0 sharding: ``ceil(dim0 / world)`` rows
    per rank (``padded``: what FSDP2 allocates), or the rows each rank's chunk really has (the last ones
    short or empty: what ``DTensor.to_local()`` returns)."""
    if world < 1:
        raise ValueError(f"world={world}: at least one rank")
    per_rank = [0] * world
    for shape in shapes:
        rows, row_elements = (shape[0], math.prod(shape[1:])) if shape else (1, 1)
        chunk = math.ceil(rows / world)
        for rank in range(world):
            held = chunk if padded else max(0, min(chunk, rows - rank * chunk))
            per_rank[rank] += held * row_elements
    return per_rank


def predicted_communication_bytes(recipe: str, parameter_bytes: int) -> float:
    """Bytes a step of ``recipe`` moves per rank, from the parameters' bytes (module docstring)."""
    try:
        return COMMUNICATION_FACTORS[recipe] * parameter_bytes
    except KeyError:
        known = ", ".join(COMMUNICATION_FACTORS)
        raise ValueError(f"no communication prediction for {recipe!r}: one of {known}") from None


def full_shard_parameter_bound(at_rest: int, unit_bytes: Sequence[int]) -> int:
    """What full sharding may hold in parameters at once: the rank's shards plus its two largest units
    unsharded (the one computing and the one prefetched for backward), the root's own parameters being
    one of the units (``UnshardedParameters``)."""
    return at_rest + sum(sorted(unit_bytes, reverse=True)[:2])


def predicted_rank_bytes(recipe: str, shapes: Sequence[Sequence[int]], world: int) -> list[dict[str, int]]:
    """What each rank should hold after a step, in bytes of fp32: ``parameters`` (FSDP: the padded shards
    FSDP2 allocates), ``gradients`` and ``optimizer_state`` (AdamW: two values per element it owns)."""
    sizes = [math.prod(shape) for shape in shapes]
    full = 4 * sum(sizes)
    if recipe in ("ddp", "ddp-grad-copy"):  # the buckets of ddp-grad-copy are the engine's, not gradients
        return [{"parameters": full, "gradients": full, "optimizer_state": 2 * full} for _ in range(world)]
    if recipe == "zero1":
        owned = zero1_partition(sizes, world)
        return [{"parameters": full, "gradients": full, "optimizer_state": 8 * sum(sizes[i] for i in part)}
                for part in owned]  # fmt: skip
    if recipe in FSDP_RECIPES:
        tuples = [tuple(shape) for shape in shapes]
        padded, local = fsdp_shard_elements(tuples, world), fsdp_shard_elements(tuples, world, padded=False)
        return [{"parameters": 4 * padded[r], "gradients": 4 * local[r], "optimizer_state": 8 * local[r]}
                for r in range(world)]  # fmt: skip
    raise ValueError(f"recipe={recipe!r}: one of {', '.join(RECIPES)}")


def predicted_live_peak(
    recipe: str, shapes: Sequence[Sequence[int]], world: int, activations: int, unit_bytes: Sequence[int] = ()
) -> list[int]:
    """Per rank, the most tensor bytes a step should hold at once: what the rank holds throughout
    (``predicted_rank_bytes``; DDP-grad-copy's buckets beside the gradients too) plus the larger of what
    a phase adds. Forward and backward add the activations (measured: ``activations``, the same share of
    the batch on every recipe) and the units FSDP holds unsharded (shard-grad-op keeps every unit from
    forward to backward; full shard two at most, ``full_shard_parameter_bound``; ``unit_bytes`` are the
    units' parameter bytes); the optimizer step adds AdamW's temporaries (``optimizer_temporary_bytes``)."""
    held = predicted_rank_bytes(recipe, shapes, world)
    full = 4 * sum(math.prod(shape) for shape in shapes)
    buckets = full if recipe == "ddp-grad-copy" else 0
    two_units = sum(sorted(unit_bytes, reverse=True)[:2])
    unsharded = {
        "fsdp-shard-grad-op": full, "fsdp-full-shard": two_units,
        "fsdp-mixed-precision": two_units * MIXED_PARAMETER_BYTES // 4,
    }.get(recipe, 0)  # fmt: skip
    temporaries = optimizer_temporary_bytes(recipe, shapes, world)
    return [sum(rank.values()) + buckets + max(activations + unsharded, temporaries[r]) for r, rank in enumerate(held)]


def predicted_saving(
    recipe: str, shapes: Sequence[Sequence[int]], world: int, activations: int, unit_bytes: Sequence[int] = ()
) -> int:
    """The live peak the recipe should save against DDP's, on the rank that holds most
    (``predicted_live_peak``): DDP's parameters, gradients and optimizer state less the recipe's, less what
    its engine holds beyond them within a step (negative for DDP-grad-copy: it holds more)."""
    ddp = predicted_live_peak("ddp", shapes, world, activations)
    return max(ddp) - max(predicted_live_peak(recipe, shapes, world, activations, unit_bytes))


def optimizer_temporary_bytes(recipe: str, shapes: Sequence[Sequence[int]], world: int) -> list[int]:
    """Per rank, what AdamW allocates for itself within its step: torch's single-tensor AdamW (the CPU
    default) updates one parameter at a time with two temporaries of that parameter's size (the
    denominator and the update), so twice the largest local parameter it updates: every parameter (DDP),
    the rank's partition (ZeRO-1), its dim-0 shards (FSDP)."""
    sizes = [math.prod(shape) for shape in shapes]
    if recipe in ("ddp", "ddp-grad-copy"):
        return [8 * max(sizes)] * world
    if recipe == "zero1":
        return [8 * max((sizes[i] for i in part), default=0) for part in zero1_partition(sizes, world)]
    if recipe in FSDP_RECIPES:
        largest = [0] * world
        for shape in shapes:
            local = fsdp_shard_elements([tuple(shape)], world, padded=False)
            largest = [max(a, b) for a, b in zip(largest, local, strict=True)]
        return [8 * elements for elements in largest]
    raise ValueError(f"recipe={recipe!r}: one of {', '.join(RECIPES)}")
