"""The task metric on a labelled set (retrieval or classification accuracy), relative to fp32."""

from __future__ import annotations

from typing import Any, ClassVar

from perfgate.metrics import Metric
from perfgate.thresholds import Check


class TaskScore(Metric):
    name = "task"
    columns: ClassVar[tuple[str, ...]] = ("task",)

    def measured(self, figures: dict[str, Any]) -> list[Check]:
        if figures.get("ratio") is None:
            return []
        return [Check("min_task_ratio", figures["ratio"], higher_is_better=True)]

    def cells(self, figures: dict[str, Any]) -> dict[str, str]:
        return {"task": f"{figures['candidate']:.3f}/{figures['baseline']:.3f}"}
