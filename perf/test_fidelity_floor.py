"""Fidelity judges on every hardware class, measured or not: a variant whose outputs are turned to a
cosine of 0.5 with fp32's (what broken int8 scales look like) fails its floor here whatever the class."""

from __future__ import annotations

import pytest

from perfgate.instruments.outcome import Verdict
from perfgate.plugin import Bench

pytestmark = pytest.mark.cpu


def test_a_variant_with_half_cosine_fails_its_fidelity_floor_on_any_class(perfgate: Bench) -> None:
    result = perfgate.measure("tiny-bert", "planted-half-cosine", memory=False)
    assert result.outcome == "measured", result.detail
    assert result.metrics["fidelity"]["cosine_min"] == pytest.approx(0.5, abs=0.01)
    assert result.verdict == Verdict.FAIL, result.checks
    assert [check.name for check in result.failures()] == ["min_cosine"], result.checks
