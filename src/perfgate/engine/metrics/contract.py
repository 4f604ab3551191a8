"""The contract every metric implements (``Metric``: its checks, cells and section) and the phrasing the
metrics share. The registry of metrics is the package's ``__init__``; a metric module imports this."""

from __future__ import annotations

from abc import ABC
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from perfgate.verdicts.thresholds import Check

if TYPE_CHECKING:
    from perfgate.engine.record import CaseResult
    from perfgate.verdicts.thresholds import CheckResult, Thresholds

__all__ = ["Metric", "interval_phrase", "ratio_cell"]


class Metric(ABC):
    name: ClassVar[str]  # the key of its figures in CaseResult.metrics
    columns: ClassVar[tuple[str, ...]] = ()  # summary-table columns it fills, in order

    def checks(self, figures: dict[str, Any], thresholds: Thresholds, context: str) -> list[CheckResult]:
        """Judge the figures against the thresholds that name this metric's fields."""
        return [result for check in self.measured(figures) if (result := check.judge(thresholds, context)) is not None]

    def measured(self, figures: dict[str, Any]) -> list[Check]:
        """The measured values that threshold fields bound (none by default)."""
        return []

    def cells(self, figures: dict[str, Any]) -> dict[str, str]:
        """This metric's summary-table cells by column; missing columns show as '-'."""
        return {}

    def section(self, cases: Sequence[CaseResult]) -> list[str]:
        """Markdown lines of a section of its own in summary.md (none by default)."""
        return []


def ratio_cell(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}x"


def interval_phrase(estimate: dict[str, Any]) -> str:
    """A speed estimate as the messages say it: ``2.093x, 95% CI [1.930, 2.210] over 20 pairs``."""
    return (
        f"{estimate['speedup']:.3f}x, 95% CI [{estimate['ci_low']:.3f}, {estimate['ci_high']:.3f}] "
        f"over {estimate['pairs']} pairs"
    )
