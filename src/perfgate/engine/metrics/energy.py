"""Energy per inference (GPU, NVML's energy counter): both arms in millijoules, and their ratio."""

from __future__ import annotations

from typing import Any

from perfgate.engine.metrics.contract import Metric
from perfgate.verdicts.thresholds import Check


class EnergyPerInference(Metric):
    name = "energy"
    columns = ("energy",)

    def measured(self, figures: dict[str, Any]) -> list[Check]:
        if figures.get("ratio") is None:
            return []
        return [Check("max_energy_ratio", figures["ratio"], higher_is_better=False)]

    def cells(self, figures: dict[str, Any]) -> dict[str, str]:
        if figures.get("ratio") is None:
            return {"energy": figures.get("unavailable", "-")[:40]}
        mj = f"{figures['candidate'] * 1e3:.2f}/{figures['baseline'] * 1e3:.2f} mJ"
        return {"energy": f"{figures['ratio']:.2f}x ({mj})"}
