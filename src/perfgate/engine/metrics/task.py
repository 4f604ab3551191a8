"""The task metric on a labelled set (retrieval or classification accuracy), against fp32.

Both arms are scored per example on the same set; ``max_task_loss`` is a non-inferiority margin judged
on the paired bootstrap interval of the difference (``fidelity.task_comparison``): PASS when the interval
lies above ``-max_task_loss``, FAIL when below, INCONCLUSIVE when it straddles. ``min_task_ratio`` is a
point check of the accuracies' ratio, for files written before the interval existed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from perfgate.engine.metrics.contract import Metric
from perfgate.instruments.fidelity import non_inferiority
from perfgate.verdicts.thresholds import Check, CheckResult

if TYPE_CHECKING:
    from perfgate.engine.record import CaseResult
    from perfgate.verdicts.thresholds import Thresholds


class TaskScore(Metric):
    name = "task"
    columns: ClassVar[tuple[str, ...]] = ("task",)

    def checks(self, figures: dict[str, Any], thresholds: Thresholds, context: str) -> list[CheckResult]:
        results = super().checks(figures, thresholds, context)
        if "max_task_loss" in thresholds.values and figures.get("difference") is not None:
            margin = thresholds.values["max_task_loss"]
            verdict = non_inferiority(figures["ci_low"], figures["ci_high"], margin)
            message = (
                f"{context}: {figures['metric']} {figures['candidate']:.3f} against fp32's {figures['baseline']:.3f} "
                f"on {Path(figures['source']).name} ({figures['examples']} examples): difference "
                f"{figures['difference']:+.3f}, {figures['confidence']:.0%} CI [{figures['ci_low']:+.3f}, "
                f"{figures['ci_high']:+.3f}]; may lose at most {thresholds.describe('max_task_loss')} "
                f"-> {verdict.value.upper()}"
            )
            results.append(CheckResult("max_task_loss", verdict.value, message))
        return results

    def measured(self, figures: dict[str, Any]) -> list[Check]:
        if figures.get("ratio") is None:
            return []
        return [Check("min_task_ratio", figures["ratio"], higher_is_better=True)]

    def cells(self, figures: dict[str, Any]) -> dict[str, str]:
        cell = f"{figures['candidate']:.3f}/{figures['baseline']:.3f}"
        if figures.get("difference") is not None:
            cell += f" {figures['difference']:+.3f} [{figures['ci_low']:+.3f}, {figures['ci_high']:+.3f}]"
        return {"task": cell}

    def section(self, cases: Sequence[CaseResult]) -> list[str]:
        rows = [
            (case, case.metrics["task"]) for case in cases if case.metrics.get("task", {}).get("difference") is not None
        ]
        if not rows:
            return []
        lines = [
            "## Task accuracy against fp32",
            "",
            "Both arms scored on the same examples; the difference's interval is a paired bootstrap over them.",
            "",
            "| case | set | fp32 | candidate | difference [CI] | verdict |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for case, task in rows:
            verdict = next((c.verdict for c in case.checks if c.name == "max_task_loss"), "not judged")
            lines.append(
                f"| {case.spec.model}/{case.spec.technique}/b{case.spec.batch_size} | {Path(task['source']).name} "
                f"({task['examples']}) | {task['baseline']:.3f} | {task['candidate']:.3f} | {task['difference']:+.3f} "
                f"[{task['ci_low']:+.3f}, {task['ci_high']:+.3f}] | {str(verdict).upper()} |"
            )
        return [*lines, ""]
