"""Task accuracy that can fail: MiniLM's A/B cases score both arms on the hard retrieval set (272 queries,
each with hard negatives; fp32 about 0.80) and judge the difference's paired interval against a
non-inferiority margin. A copy that keeps three of MiniLM's six layers scores about 0.45 there: it must
fail on every hardware class, whatever its speed."""

from __future__ import annotations

import pytest

from perfgate.instruments.outcome import Verdict
from perfgate.plugin import Bench

pytestmark = pytest.mark.cpu


def test_a_three_of_six_layer_cut_fails_task_accuracy_on_the_hard_set(perfgate: Bench) -> None:
    result = perfgate.measure("minilm", "planted-three-of-six-layers", memory=False)
    assert result.outcome == "measured", result.detail
    task = result.metrics["task"]
    assert task["examples"] == 272, task  # the hard set
    assert task["baseline"] > 0.7, task  # fp32 does well on it
    assert task["ci_high"] < -0.2, task  # measured: 0.449 against 0.801
    assert result.verdict == Verdict.FAIL, result.checks
    assert [check.name for check in result.failures()] == ["max_task_loss"], result.checks
