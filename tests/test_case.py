"""The judge: every metric's checks against the thresholds, then one verdict per case."""

from __future__ import annotations

import pytest

from perfgate.engine.judge import judge
from perfgate.engine.record import CaseResult
from perfgate.engine.spec import CaseSpec
from perfgate.instruments.outcome import Outcome, Verdict
from perfgate.verdicts.thresholds import Thresholds


def case(**metrics: dict) -> CaseResult:
    return CaseResult(CaseSpec("m", "t"), "cpu-test", outcome=Outcome.MEASURED, metrics=metrics)


GATED = Thresholds("t", "cpu-test", gated=True, values={"min_cosine": 0.99, "max_memory_ratio": 1.2},
                   origins={"min_cosine": "file [t.cpu-test]", "max_memory_ratio": "file [t.cpu-test]"})  # fmt: skip


def test_every_metric_the_case_carries_is_judged_against_the_fields_that_name_it():
    result = case(fidelity={"cosine_min": 0.95, "top1_agreement": None}, memory={"ratio": 1.1})
    judge(result, GATED)
    assert {c.name: c.verdict for c in result.checks} == {"min_cosine": Verdict.FAIL, "max_memory_ratio": Verdict.PASS}
    assert result.verdict == Verdict.FAIL
    assert "0.95" in result.checks[0].message
    assert "min_cosine 0.99" in result.checks[0].message


def test_an_outcome_that_is_not_a_result_fails_even_when_every_check_passes():
    result = case(fidelity={"cosine_min": 1.0, "top1_agreement": None})
    result.outcome = Outcome.CRASHED
    judge(result, GATED)
    assert result.verdict == Verdict.FAIL


SPEED_UNBOUNDED = {
    "estimate": {"speedup": 1.3, "ci_low": 1.2, "ci_high": 1.4, "pairs": 10, "spread": 0.01, "noisy": False},
    "latency": {"baseline": {"p50": 0.002}, "candidate": {"p50": 0.0015}},
    "bound": None,
    "verdict": "ungated",
    "stop_reason": "interval narrow enough",
}
FIDELITY_ONLY = Thresholds("t", "cpu-new", gated=False, values={"min_cosine": 0.9}, origins={"min_cosine": "shipped"})


def test_on_a_class_nobody_measured_a_broken_variant_still_fails_on_fidelity():
    result = case(fidelity={"cosine_min": 0.1, "top1_agreement": None}, speed=SPEED_UNBOUNDED)
    judge(result, FIDELITY_ONLY)
    assert result.verdict == Verdict.FAIL
    assert [c.name for c in result.failures()] == ["min_cosine"]


def test_a_good_variant_on_such_a_class_is_ungated_not_pass_with_its_fidelity_judged():
    result = case(fidelity={"cosine_min": 0.99, "top1_agreement": None}, speed=SPEED_UNBOUNDED)
    judge(result, FIDELITY_ONLY)
    assert result.verdict == Verdict.UNGATED
    assert {c.name: c.verdict for c in result.checks} == {"speed": Verdict.UNGATED, "min_cosine": Verdict.PASS}
    assert result.ungated == ["min_speedup"]


def test_pass_needs_a_judged_hardware_dependent_field():
    result = case(fidelity={"cosine_min": 0.99, "top1_agreement": None}, memory={"ratio": 1.1})
    judge(result, FIDELITY_ONLY)
    assert result.verdict == Verdict.UNGATED
    judge(result, GATED)
    assert result.verdict == Verdict.PASS


def test_a_case_with_no_threshold_field_at_all_is_recorded():
    result = case(arrivals={"policies": []})
    judge(result, FIDELITY_ONLY)
    assert result.verdict == Verdict.RECORDED


@pytest.mark.parametrize(
    ("speed_verdict", "cosine", "expected"),
    [
        ("fail", 0.99, Verdict.FAIL),  # FAIL beats everything
        ("inconclusive", 0.5, Verdict.FAIL),
        ("inconclusive", 0.99, Verdict.INCONCLUSIVE),  # INCONCLUSIVE beats UNGATED and PASS
        ("pass", 0.99, Verdict.PASS),
    ],
)
def test_verdicts_take_precedence_fail_inconclusive_ungated_pass(speed_verdict, cosine, expected):
    speed = {**SPEED_UNBOUNDED, "bound": 1.1, "verdict": speed_verdict}
    result = case(fidelity={"cosine_min": cosine, "top1_agreement": None}, speed=speed)
    bounded = Thresholds(
        "t", "cpu-test", True, {"min_cosine": 0.9, "min_speedup": 1.1}, {"min_cosine": "f", "min_speedup": "f"}
    )
    judge(result, bounded)
    assert result.verdict == expected


@pytest.mark.parametrize("outcome", list(Outcome))
def test_every_outcome_round_trips_through_the_record(outcome):
    result = case()
    result.outcome = outcome
    assert CaseResult.from_dict(result.to_dict()).outcome is outcome


def test_setup_seconds_add_worker_starts_and_model_loads():
    result = case()
    result.worker = {"jobs": [{"start_seconds": 0.5, "load_seconds": 2.0}, {"start_seconds": 0.25}]}
    assert result.setup_seconds == pytest.approx(2.75)


def test_a_measured_figure_without_a_threshold_is_named_as_not_gated():
    result = case(fidelity={"cosine_min": 1.0, "top1_agreement": 1.0}, memory={"ratio": 1.1})
    judge(result, GATED)
    assert result.ungated == []  # top-1 depends on no hardware: a missing floor is not "ungated"
    result.metrics["speed"] = SPEED_UNBOUNDED
    judge(result, GATED)
    assert result.ungated == ["min_speedup"]
