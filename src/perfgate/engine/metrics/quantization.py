"""How much of the model a quantizer quantized: k of N matmul layers (``nn.Linear`` and transformers'
``Conv1D``) changed, recorded by ``technique.quantized_variant``. A quantizer that changes none is an
error before any timing; one that changes few (torch int8 on GPT-2 style blocks, which are Conv1D) shows
its k of N beside its speedup, so a near-A/A result is not read as the technique's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from perfgate.engine.metrics.contract import Metric
from perfgate.engine.record import CaseResult


class QuantizedLayers(Metric):
    name = "quantization"
    columns: ClassVar[tuple[str, ...]] = ("quantized",)

    def cells(self, figures: dict[str, Any]) -> dict[str, str]:
        return {"quantized": f"{figures['changed']}/{figures['total']} layers"}

    def section(self, cases: Sequence[CaseResult]) -> list[str]:
        partial = [c for c in cases if (f := c.metrics.get(self.name)) and f["changed"] < f["total"]]
        if not partial:
            return []
        out = [
            "## Partly quantized",
            "",
            "Matmul layers a quantizer left as they were, by their type in the source:",
            "",
        ]
        for case in partial:
            figures = case.metrics[self.name]
            left = ", ".join(f"{count} {kind}" for kind, count in sorted(figures["left"].items()))
            out.append(f"- `{case.spec.case_id}`: {figures['changed']} of {figures['total']} changed; left: {left}")
        return out
