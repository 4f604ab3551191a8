"""Output fidelity against fp32 on the evaluation sentences: cosine, max abs, top-1, SQNR."""

from __future__ import annotations

from typing import Any, ClassVar

from perfgate.engine.metrics.contract import Metric
from perfgate.verdicts.thresholds import Check


class OutputFidelity(Metric):
    name = "fidelity"
    columns: ClassVar[tuple[str, ...]] = ("cos min", "top-1")

    def measured(self, figures: dict[str, Any]) -> list[Check]:
        checks = [Check("min_cosine", figures["cosine_min"], higher_is_better=True)]
        if figures.get("top1_agreement") is not None:
            checks.append(Check("min_top1", figures["top1_agreement"], higher_is_better=True))
        return checks

    def cells(self, figures: dict[str, Any]) -> dict[str, str]:
        top1 = figures.get("top1_agreement")
        return {"cos min": f"{figures['cosine_min']:.4f}", "top-1": "-" if top1 is None else f"{top1:.3f}"}
