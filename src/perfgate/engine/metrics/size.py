"""Bytes of weights in memory and on disk, candidate against fp32."""

from __future__ import annotations

from typing import Any, ClassVar

from perfgate.engine.metrics.contract import Metric, ratio_cell
from perfgate.verdicts.thresholds import Check


class WeightSize(Metric):
    name = "size"
    columns: ClassVar[tuple[str, ...]] = ("size",)

    def measured(self, figures: dict[str, Any]) -> list[Check]:
        return [Check("max_size_ratio", figures["ratio"], higher_is_better=False)]

    def cells(self, figures: dict[str, Any]) -> dict[str, str]:
        return {"size": ratio_cell(figures.get("ratio"))}
