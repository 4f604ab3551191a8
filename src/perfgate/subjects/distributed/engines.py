"""The recipes' engines: a model wrapped by torch's own DDP, ZeroRedundancyOptimizer or FSDP2, and its
optimizer (AdamW throughout, so the first losses match single-process AdamW's)."""

from __future__ import annotations

from typing import Any

from perfgate.subjects.distributed.predictions import FSDP_RECIPES, RECIPES

LEARNING_RATE = 5e-5  # make_optimizer's, so the first losses match single-process AdamW's


def shard_model(model: Any, recipe: str, world: int) -> tuple[Any, Any]:
    """``model`` wrapped for ``recipe`` by torch's own engine, and its optimizer (AdamW throughout):
    DDP; DDP with ``ZeroRedundancyOptimizer``; FSDP2 ``fully_shard`` on each wrapped unit then the root,
    resharding after forward (full shard, ZeRO-3-like) or not (shard-grad-op, ZeRO-2-like); full shard
    with a ``MixedPrecisionPolicy`` of bf16 parameters and fp32 reduction (``fsdp-mixed-precision``).

    DDP is built as users configure it for memory: ``gradient_as_bucket_view=True``, the gradients being
    views into the all-reduce buckets (torch's documentation: it saves a copy the size of all gradients).
    ``ddp-grad-copy`` is DDP at torch's default, the buckets beside the gradients."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    if recipe in ("ddp", "ddp-grad-copy", "zero1"):
        wrapped = DistributedDataParallel(model, gradient_as_bucket_view=recipe != "ddp-grad-copy")
        if recipe != "zero1":
            return wrapped, torch.optim.AdamW(wrapped.parameters(), lr=LEARNING_RATE)
        from torch.distributed.optim import ZeroRedundancyOptimizer

        optimizer = ZeroRedundancyOptimizer(
            list(wrapped.parameters()), optimizer_class=torch.optim.AdamW, lr=LEARNING_RATE
        )
        return wrapped, optimizer
    if recipe in FSDP_RECIPES:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        reshard = recipe != "fsdp-shard-grad-op"
        policy = MixedPrecisionPolicy()  # FSDP2's default: no casts
        if recipe == "fsdp-mixed-precision":
            policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        for unit in wrapped_units(model):
            fully_shard(unit, reshard_after_forward=reshard, mp_policy=policy)
        fully_shard(model, reshard_after_forward=reshard, mp_policy=policy)
        return model, torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    raise ValueError(f"recipe={recipe!r}: one of {', '.join(RECIPES)}")


def wrapped_units(model: Any) -> list[Any]:
    """What FSDP wraps before the root: the embeddings and each transformer layer (the first ModuleList
    under the base model)."""
    import torch

    base = getattr(model, "base_model", model)
    units = [base.embeddings] if isinstance(getattr(base, "embeddings", None), torch.nn.Module) else []
    layers = next((m for m in base.modules() if isinstance(m, torch.nn.ModuleList)), None)
    if layers is None:
        raise ValueError(f"{type(model).__name__}: no ModuleList of layers under the base model to shard by layer")
    return units + list(layers)
