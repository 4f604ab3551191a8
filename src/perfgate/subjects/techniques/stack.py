"""A stack: registered techniques applied one after another (``bf16-cast+torch-compile``).

Each part after the first is applied to a view of the model whose fp32 module is replaced by the torch
module the part before it produced, so a stack reuses its parts' code and measures like any technique.
A part that serves from its own artifact (an ONNX graph) or a wrapper has no module to hand on: it can only
come last. ``stack_rule_violation`` holds the rules a stack must follow.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

from perfgate.subjects.model import LoadedModel
from perfgate.subjects.technique import STACK_SEPARATOR, Technique, Variant


class Stack(Technique):
    """Not registered by itself: ``load_technique`` builds one for a name that joins parts with ``+``."""

    name: ClassVar[str]  # set per instance below; mypy sees the class attribute

    def __init__(self, parts: list[Technique]) -> None:
        if len(parts) < 2:
            raise ValueError(f"a stack needs at least two parts, got {[p.name for p in parts]}")
        self.parts = parts
        self.name = STACK_SEPARATOR.join(p.name for p in parts)  # type: ignore[misc]  # per stack
        self.summary = " then ".join(p.summary for p in parts)  # type: ignore[misc]
        self.requires = tuple(r for p in parts for r in p.requires)  # type: ignore[misc]
        self.devices = frozenset.intersection(*(p.devices for p in parts))  # type: ignore[misc]
        tasks = [p.tasks for p in parts if p.tasks is not None]
        self.tasks = frozenset.intersection(*tasks) if tasks else None  # type: ignore[misc]
        self.fresh_worker = any(p.fresh_worker for p in parts)  # type: ignore[misc]
        self.native_math = next((p.native_math for p in parts if p.native_math), None)  # type: ignore[misc]
        needed = [p.min_compute_capability for p in parts if p.min_compute_capability]
        self.min_compute_capability = max(needed) if needed else None  # type: ignore[misc]

    def runtime_modules(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m for p in self.parts for m in p.runtime_modules()))

    def unavailable_reason(self, task: str, device: str) -> str | None:
        for part in self.parts:
            reason = part.unavailable_reason(task, device)
            if reason:
                return f"{self.name}: {reason}"
        return stack_rule_violation(self.parts)  # every part runs here, so their intersection does

    def input_reason(self, batch_size: int, seq_len: int | None, before: tuple[Technique, ...] = ()) -> str | None:
        for position, part in enumerate(self.parts):
            reason = part.input_reason(batch_size, seq_len, (*before, *self.parts[:position]))
            if reason:
                return f"{self.name}: {reason}"
        return None

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        start = time.perf_counter()
        current, variant = model, None
        steps = []
        for part in self.parts:
            variant = part.apply(current, workdir, threads)
            steps.append({"technique": part.name, "prepare_seconds": variant.prepare_seconds, **variant.details})
            if part is not self.parts[-1]:
                if variant.module is None:
                    raise TypeError(f"{self.name}: {part.name} produced no torch module for the next part")
                current = model.with_module(variant.module, variant.input_dtype)
        assert variant is not None
        variant.technique = self.name
        variant.prepare_seconds = time.perf_counter() - start
        variant.details = {"parts": steps}
        return variant


def stack_rule_violation(parts: list[Technique]) -> str | None:
    """Why these parts, in this order, make no stack worth measuring, or None. The rules: a part that
    hands on no module (an artifact builder; a wrapper: a compiled graph, a pinned SDPA backend) comes
    last, so torch.compile comes after every part that changes the weights; a part that loads the weights
    itself comes first; at most one dtype change (a second casts what the first cast), one quantizer (a
    second quantizes quantized weights) and one attention implementation; a part that takes fp32 weights
    only comes before any dtype change."""
    name = STACK_SEPARATOR.join(part.name for part in parts)
    for part in parts[:-1]:
        if part.builds_artifacts:
            return f"{name}: {part.name} serves from its own artifact, so no part can follow it"
        if not part.hands_on_module:
            return f"{name}: {part.name} hands on no torch module, so no part can follow it"
    for part in parts[1:]:
        if part.loads_weights:
            return f"{name}: {part.name} loads the weights itself, so it must come first"
    one_per_stack = (("dtype", "dtype change"), ("quantizer", "quantizer"), ("attention", "attention implementation"))
    for role, what in one_per_stack:
        chosen = [part.name for part in parts if part.role == role]
        if len(chosen) > 1:
            return f"{name}: at most one {what} per stack, here {' and '.join(chosen)}"
    cast = next((i for i, part in enumerate(parts) if part.role == "dtype"), None)
    if cast is not None:
        for part in parts[cast + 1 :]:
            if part.needs_fp32_weights:
                return f"{name}: {part.name} takes fp32 weights only, so it must come before {parts[cast].name}"
    return None
