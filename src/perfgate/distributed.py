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
from typing import Any

__all__ = [
    "COMMUNICATION_FACTORS",
    "RECIPES",
    "CommunicationCounter",
    "UnshardedParameters",
    "fsdp_shard_elements",
    "gradient_bytes",
    "optimizer_state_local_bytes",
    "parameter_local_bytes",
    "predicted_communication_bytes",
    "shard_model",
    "wrapped_units",
    "zero1_partition",
]

RECIPES = ("ddp", "zero1", "fsdp-shard-grad-op", "fsdp-full-shard")  # the techniques: train-RECIPE
LEARNING_RATE = 5e-5  # make_optimizer's, so the first losses match single-process AdamW's

# Bytes moved per step and rank, as a multiple of the parameters' bytes (module docstring).
COMMUNICATION_FACTORS = {"ddp": 2.0, "zero1": 3.0, "fsdp-shard-grad-op": 2.0, "fsdp-full-shard": 3.0}


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


def shard_model(model: Any, recipe: str, world: int) -> tuple[Any, Any]:
    """``model`` wrapped for ``recipe`` by torch's own engine, and its optimizer (AdamW throughout):
    DDP; DDP with ``ZeroRedundancyOptimizer``; FSDP2 ``fully_shard`` on each wrapped unit then the root,
    resharding after forward (full shard, ZeRO-3-like) or not (shard-grad-op, ZeRO-2-like)."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    if recipe in ("ddp", "zero1"):
        wrapped = DistributedDataParallel(model)
        if recipe == "ddp":
            return wrapped, torch.optim.AdamW(wrapped.parameters(), lr=LEARNING_RATE)
        from torch.distributed.optim import ZeroRedundancyOptimizer

        optimizer = ZeroRedundancyOptimizer(
            list(wrapped.parameters()), optimizer_class=torch.optim.AdamW, lr=LEARNING_RATE
        )
        return wrapped, optimizer
    if recipe in ("fsdp-shard-grad-op", "fsdp-full-shard"):
        from torch.distributed.fsdp import fully_shard

        reshard = recipe == "fsdp-full-shard"
        for unit in wrapped_units(model):
            fully_shard(unit, reshard_after_forward=reshard)
        fully_shard(model, reshard_after_forward=reshard)
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


def _local(tensor: Any) -> Any:
    """A tensor's local part: a DTensor's own shard (its ``numel()`` is the global count), else itself."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def parameter_local_bytes(module: Any) -> dict[str, int]:
    """Bytes of parameters this rank holds: ``bytes`` from the local shards' elements, ``storage_bytes``
    from their storages, each counted once (FSDP2 pads each shard to ceil(dim0 / world) rows)."""
    tensors = [_local(p.data if not hasattr(p, "to_local") else p) for p in module.parameters()]
    return {"bytes": sum(t.numel() * t.element_size() for t in tensors), "storage_bytes": _storage_bytes(tensors)}


def gradient_bytes(module: Any) -> int:
    """Bytes of the gradients this rank holds (local shards)."""
    return sum(_local(p.grad).numel() * p.grad.element_size() for p in module.parameters() if p.grad is not None)


def optimizer_state_local_bytes(optimizer: Any) -> int:
    """Bytes of the optimizer state this rank holds (ZeroRedundancyOptimizer: its partition's; FSDP: the
    local shards); step counters (0-dim) left out, as ``training.optimizer_state_bytes`` does. A local
    shard of one element (a two-label bias on two ranks) is state, not a counter: told apart by its
    dimensions, not its size."""
    inner = getattr(optimizer, "optim", optimizer)
    tensors = [_local(v) for state in inner.state.values() for v in state.values() if hasattr(v, "numel")]
    return _storage_bytes([t for t in tensors if t.dim() > 0])


def _storage_bytes(tensors: list[Any]) -> int:
    seen: set[int] = set()
    total = 0
    for tensor in tensors:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
    return total


# Bytes a collective moves, as the ZeRO paper counts them (module docstring): per c10d op, which tensors
# count and how many times. Ops not named (barrier, send/recv) are counted as calls with no bytes.
_OP_BYTES = {
    "allreduce_": ("all", 2),
    "allreduce_coalesced_": ("all", 2),
    "broadcast_": ("all", 1),
    "_allgather_base_": ("first", 1),  # (output, input): the gathered output
    "allgather_": ("first", 1),
    "allgather_into_tensor_coalesced_": ("first", 1),
    "_reduce_scatter_base_": ("second", 1),  # (output, input): the full input
    "reduce_scatter_": ("second", 1),
    "reduce_scatter_tensor_coalesced_": ("second", 1),
}


def collective_bytes(op: str, args: Sequence[Any]) -> int:
    """Bytes that one call of c10d ``op`` with ``args`` moves, by ``_OP_BYTES``."""
    import torch
    from torch.utils._pytree import tree_leaves

    which, times = _OP_BYTES.get(op, ("none", 0))
    if which == "none":
        return 0
    counted = args if which == "all" else args[:1] if which == "first" else args[1:2]
    tensors = [leaf for leaf in tree_leaves(list(counted)) if isinstance(leaf, torch.Tensor)]
    return times * sum(t.numel() * t.element_size() for t in tensors)


class UnshardedParameters:
    """The most parameter bytes FSDP held unsharded at once during a step, and how many units that took.

    FSDP2 registers a unit's parameters as DTensor shards at rest and swaps in plain tensors (views of
    the all-gathered buffer) while the unit is unsharded, so ``sample()`` — called after each op by
    ``CommunicationCounter`` — reads what is unsharded from the module's own parameters, with no FSDP
    internals. A unit is each wrapped unit (``wrapped_units``) and the root's own parameters."""

    def __init__(self, model: Any) -> None:
        units = wrapped_units(model)
        prefixes = [name for name, module in model.named_modules() if any(module is unit for unit in units)]
        self.model = model
        self.unit_of = {name: next((i for i, prefix in enumerate(prefixes) if name.startswith(prefix + ".")),
                                   len(prefixes)) for name, _ in model.named_parameters()}  # fmt: skip
        self.unit_bytes = [0] * (len(prefixes) + 1)  # the last: the root's own parameters
        for name, parameter in model.named_parameters():
            self.unit_bytes[self.unit_of[name]] += parameter.numel() * parameter.element_size()
        self.peak_bytes = 0
        self.peak_units: list[int] = []

    def sample(self) -> None:
        held, units = 0, set()
        for name, parameter in self.model.named_parameters():
            if not hasattr(parameter, "to_local"):  # a plain tensor: this unit is unsharded now
                held += parameter.numel() * parameter.element_size()
                units.add(self.unit_of[name])
        if held > self.peak_bytes:
            self.peak_bytes, self.peak_units = held, sorted(units)

    def summary(self) -> dict[str, Any]:
        return {"peak_bytes": self.peak_bytes, "peak_units": self.peak_units, "unit_bytes": self.unit_bytes}


def full_shard_parameter_bound(at_rest: int, unit_bytes: Sequence[int]) -> int:
    """What full sharding may hold in parameters at once: the rank's shards plus its two largest units
    unsharded (the one computing and the one prefetched for backward), the root's own parameters being
    one of the units (``UnshardedParameters``)."""
    return at_rest + sum(sorted(unit_bytes, reverse=True)[:2])


class CommunicationCounter:
    """Counts the c10d collectives dispatched while it is active, and the bytes each moves
    (``collective_bytes``). A ``TorchDispatchMode``: it sees collectives issued from Python (ZeRO's
    broadcasts, FSDP's all-gathers) and from DDP's C++ reducer alike. ``after_op``, when given, is called
    after every op (``UnshardedParameters.sample``)."""

    def __init__(self, after_op: Any = None) -> None:
        self.calls: dict[str, int] = {}
        self.bytes: dict[str, int] = {}
        self._mode: Any = None
        self._after_op = after_op

    def __enter__(self) -> CommunicationCounter:
        from torch.utils._python_dispatch import TorchDispatchMode

        counter = self

        class _Mode(TorchDispatchMode):  # type: ignore[no-untyped-call]
            def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
                namespace, _, op = func._overloadpacket._qualified_op_name.partition("::")
                if namespace == "c10d":
                    counter.calls[op] = counter.calls.get(op, 0) + 1
                    counter.bytes[op] = counter.bytes.get(op, 0) + collective_bytes(op, args)
                result = func(*args, **(kwargs or {}))
                if counter._after_op is not None:
                    counter._after_op()
                return result

        self._mode = _Mode()  # type: ignore[no-untyped-call]
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._mode.__exit__(*exc)

    def summary(self) -> dict[str, Any]:
        return {"bytes": sum(self.bytes.values()), "calls": dict(self.calls), "bytes_by_op": dict(self.bytes)}


def predicted_rank_bytes(recipe: str, shapes: Sequence[Sequence[int]], world: int) -> list[dict[str, int]]:
    """What each rank should hold after a step, in bytes of fp32: ``parameters`` (FSDP: the padded shards
    FSDP2 allocates), ``gradients`` and ``optimizer_state`` (AdamW: two values per element it owns)."""
    sizes = [math.prod(shape) for shape in shapes]
    full = 4 * sum(sizes)
    if recipe == "ddp":
        return [{"parameters": full, "gradients": full, "optimizer_state": 2 * full} for _ in range(world)]
    if recipe == "zero1":
        owned = zero1_partition(sizes, world)
        return [{"parameters": full, "gradients": full, "optimizer_state": 8 * sum(sizes[i] for i in part)}
                for part in owned]  # fmt: skip
    if recipe in ("fsdp-shard-grad-op", "fsdp-full-shard"):
        tuples = [tuple(shape) for shape in shapes]
        padded, local = fsdp_shard_elements(tuples, world), fsdp_shard_elements(tuples, world, padded=False)
        return [{"parameters": 4 * padded[r], "gradients": 4 * local[r], "optimizer_state": 8 * local[r]}
                for r in range(world)]  # fmt: skip
    raise ValueError(f"recipe={recipe!r}: one of {', '.join(RECIPES)}")


def distributed_figures(recipe: str, ranks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One case's figures from its ranks' reports (``distributed_rank``): per rank, what it holds against
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
