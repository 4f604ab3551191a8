"""`perfgate cross-check`: each arm alone in a fresh process, on the micro model; the table's verdict."""

from __future__ import annotations

import pytest

from perfgate.answers.bisect import parse_case_id
from perfgate.answers.cross_check import CrossCheck, cross_check, markdown
from perfgate.errors import PerfgateError
from perfgate.subjects.catalogue import import_path

from .conftest import SENTENCES


def probe(micro_model_dir, technique: str) -> dict:
    texts = SENTENCES.read_text().splitlines()[:1]
    return {"location": str(micro_model_dir), "task": "text-classification", "technique_path": import_path(technique),
            "timed_texts": texts}  # fmt: skip


def test_each_arm_runs_alone_round_by_round_and_the_ratio_is_fp32_over_the_technique(micro_model_dir):
    target = parse_case_id("micro/torch-dynamic-int8-per-tensor/b1/cpu")
    check = cross_check(target, probe(micro_model_dir, target.technique), rounds=2, seconds=0.2)
    assert len(check.rounds) == 2
    for r in check.rounds:
        assert r["ratio"] == pytest.approx(r["fp32_seconds"] / r["technique_seconds"])
        assert r["fp32_seconds"] > 0
        assert r["technique_seconds"] > 0


def test_the_table_says_whether_perfgate_s_interval_holds_the_separate_process_ratio():
    check = CrossCheck(parse_case_id("minilm/onnxruntime-o2/b1/cpu"))
    check.rounds = [{"ratio": r} for r in (2.46, 1.95, 3.13)]
    held = markdown(check, {"speedup": 2.5, "ci_low": 2.3, "ci_high": 2.6}, "cpu-test")
    assert "| `minilm/onnxruntime-o2/b1/cpu` (cpu-test) | 2.46x (2.46, 1.95, 3.13) | 2.50x [2.30, 2.60] | yes |" in held
    missed = markdown(check, {"speedup": 1.8, "ci_low": 1.7, "ci_high": 2.34}, "cpu-test")
    assert missed.endswith("| 1.80x [1.70, 2.34] | **no** |")
    assert "not given (--results)" in markdown(check, None, "cpu-test")


def test_an_arm_that_fails_alone_is_one_error_naming_it(micro_model_dir):
    target = parse_case_id("micro/no-such-technique/b1/cpu")
    broken = {**probe(micro_model_dir, "torch-dynamic-int8-per-tensor"), "technique_path": "nowhere:Nothing"}
    with pytest.raises(PerfgateError, match=r"micro/no-such-technique/b1/cpu: the .* arm failed alone"):
        cross_check(target, broken, rounds=1, seconds=0.1)
    with pytest.raises(PerfgateError, match="--rounds=0"):
        cross_check(target, broken, rounds=0)
