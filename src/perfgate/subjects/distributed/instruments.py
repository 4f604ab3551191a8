"""What a rank measures of itself: the bytes of parameters, gradients and optimizer state it holds (from
local shards), the bytes its collectives move, and the parameters FSDP holds unsharded at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from perfgate.subjects.distributed.engines import wrapped_units


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


def engine_buffer_bytes(wrapped: Any) -> dict[str, Any]:
    """What the engine allocated for itself at rest: DDP's all-reduce buckets (from its own logging data)
    and whether the gradients are views into them (``gradient_as_bucket_view``: then the buckets are the
    gradients, counted once). FSDP's buffers are the units it holds unsharded (``UnshardedParameters``)."""
    logging_data = getattr(wrapped, "_get_ddp_logging_data", None)
    if logging_data is None:
        return {"buckets": 0, "gradients_in_buckets": False}
    data = logging_data()
    sizes = [int(size) for size in str(data.get("bucket_sizes", "")).split(",") if size.strip()]
    return {"buckets": sum(sizes), "gradients_in_buckets": bool(data.get("gradient_as_bucket_view"))}


class SavedActivations:
    """The most bytes autograd saved for backward at a forward's end: a ``saved_tensors_hooks`` pair that
    notes each saved tensor's storage, read once the loss is computed (``forward_done``), each storage
    once and its size then (FSDP's resharded units have given their storage back by then). Parameters
    are left out: the module's own, and any plain tensor FSDP swapped in for an unsharded unit, are
    counted as parameters, not activations."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.peak_bytes = 0
        self._storages: list[Any] = []

    def hooks(self) -> Any:
        import torch

        def pack(tensor: Any) -> Any:
            self._storages.append(tensor.untyped_storage())
            return tensor

        return torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor)

    def forward_done(self) -> None:
        parameters = {_local(p).untyped_storage().data_ptr() for p in self.module.parameters()}
        seen, total = set(), 0
        for storage in self._storages:
            pointer = storage.data_ptr()
            if pointer not in seen and pointer not in parameters:
                seen.add(pointer)
                total += storage.nbytes()
        self._storages.clear()  # holding them past backward would keep the activations alive
        self.peak_bytes = max(self.peak_bytes, total)


PHASES = ("forward", "backward", "optimizer step")
PHASE_MARK = "perfgate: "


class LiveTensorPeak:
    """The most bytes of tensors alive at once in each phase of a step, from the allocations torch's
    profiler records (``profile_memory``): two steps run under it and the second is measured, so every
    block it frees was allocated while recording (a block allocated before is freed unrecorded). The
    record gives each moment's level against the end of the window; the end is the state the rank holds
    after a step (``held_end``: parameters, gradients, optimizer state, engine buffers, measured from the
    tensors), so a moment's live bytes are ``held_end - (level at the end - level then)``. It counts what
    the step's tensors hold, not what the process's allocator keeps from the OS: the anonymous peak less
    this is the allocator's and the runtime's share.

    The allocations are read from the profiler's event tree (``experimental_event_tree``: the same
    record torch's own memory timeline reads, without the data-flow analysis that rejects FSDP's
    in-place storage resizes); where reading it fails, ``summary`` says why instead of a figure."""

    def __init__(self) -> None:
        self._profile: Any = None

    def __enter__(self) -> LiveTensorPeak:
        from torch.profiler import ProfilerActivity, profile

        self._profile = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
        self._profile.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._profile.__exit__(*exc)

    @staticmethod
    def phase(name: str) -> Any:
        from torch.profiler import record_function

        return record_function(PHASE_MARK + name)

    def summary(self, held_end: int) -> dict[str, Any]:
        try:
            from torch._C._profiler import _EventType

            allocations, ranges = [], []
            stack = list(self._profile.profiler.kineto_results.experimental_event_tree())
            while stack:
                event = stack.pop()
                stack.extend(event.children)
                if event.typed[0] == _EventType.Allocation:
                    allocations.append((event.start_time_ns, event.typed[1].alloc_size))
                elif event.name.startswith(PHASE_MARK):
                    ranges.append((event.name.removeprefix(PHASE_MARK), event.start_time_ns, event.end_time_ns))
        except Exception as error:  # an experimental API: its failure is said, never the rank's end
            return {"error": f"{type(error).__name__}: {error}"}
        return {"phase_peaks": live_phase_peaks(sorted(allocations), ranges, held_end), "held_end": held_end}


def live_phase_peaks(
    allocations: Sequence[tuple[int, int]], ranges: Sequence[tuple[str, int, int]], held_end: int
) -> dict[str, int]:
    """The most live bytes within each phase's time range: the allocations' running level (a block
    allocated adds its size, a freed one takes it away), set against ``held_end``, what is alive at the
    end of the record."""
    level, levels = 0, []
    for stamp, size in allocations:
        level += size
        levels.append((stamp, level))
    peaks: dict[str, int] = {}
    for name, start, end in ranges:
        inside = [value for stamp, value in levels if start <= stamp <= end]
        before = [value for stamp, value in levels if stamp < start]
        highest = max(inside + before[-1:], default=level)
        peaks[name] = held_end - (level - highest)
    return peaks
