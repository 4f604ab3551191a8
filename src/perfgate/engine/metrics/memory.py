"""Serving memory: what a user must provision for each arm, and the candidate's share against fp32.

Per arm, measured in a worker of its own (``scenarios/serving_memory.py``): the peak resident memory
while the variant is loaded and serving forward passes, split into anonymous and file-backed pages at
the sampled peak, the runtime's fixed overhead (a worker with the same imports that loads no weights),
and the *attributable* part — anonymous memory beyond the overhead's plus the model's own resident file
pages — which the ratio and ``max_memory_ratio`` use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from perfgate.engine.metrics.contract import Metric, ratio_cell
from perfgate.verdicts.thresholds import Check

if TYPE_CHECKING:
    from perfgate.engine.record import CaseResult

MIB = 2**20


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / MIB:.0f}"


class ServingMemory(Metric):
    name = "memory"
    columns: ClassVar[tuple[str, ...]] = ("memory", "attrib MiB")

    def measured(self, figures: dict[str, Any]) -> list[Check]:
        if figures.get("ratio") is None:
            return []
        return [Check("max_memory_ratio", figures["ratio"], higher_is_better=False)]

    def cells(self, figures: dict[str, Any]) -> dict[str, str]:
        base, cand = figures.get("baseline", {}), figures.get("candidate", {})
        return {
            "memory": ratio_cell(figures.get("ratio")),
            "attrib MiB": f"{_mb(cand.get('attributable'))}/{_mb(base.get('attributable'))}",
        }

    def section(self, cases: Sequence[CaseResult]) -> list[str]:
        rows = [case for case in cases if case.metrics.get(self.name, {}).get("baseline")]
        if not rows:
            return []
        out = [
            "## Memory while serving (MiB; per arm in a fresh worker)",
            "",
            "Peak is VmHWM from after the variant was built until after its forward passes; anon and",
            "file-backed are the split at the sampled peak; overhead is a worker with the same imports that",
            "loads no weights (its total, and its anon); model files are the resident pages of the model's",
            "own files; attributable = anon beyond the overhead's + model files, which the ratio compares on",
            "CPU. On CUDA the ratio compares cuda peak (torch's peak allocated on the device while serving).",
            "",
            "| model | technique | batch | arm | peak | anon | file-backed | overhead (anon) | model files "
            "| attributable | cuda peak |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for case in rows:
            for arm in ("baseline", "candidate"):
                a = case.metrics[self.name].get(arm) or {}
                at_peak = (a.get("sampled") or {}).get("at_peak", {})
                cuda = a.get("cuda_peak_allocated")
                out.append(
                    f"| {case.spec.model} | {case.spec.technique} | {case.spec.batch_size} | "
                    f"{a.get('technique', arm)} | {_mb(a.get('peak_rss'))} | {_mb(at_peak.get('anon'))} | "
                    f"{_mb(at_peak.get('file'))} | {_mb(a.get('overhead_rss'))} ({_mb(a.get('overhead_anon'))}) | "
                    f"{_mb(a.get('model_file_rss'))} | {_mb(a.get('attributable'))} | {_mb(cuda)} |"
                )
        return out
