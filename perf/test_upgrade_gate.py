"""The upgrade gates on MiniLM: opposite verdicts for candidates that are slower or less accurate and
for one that is neither, and a library upgrade timed between two live environments.

The candidates are built from MiniLM's own weights (fixtures/models.py): ``minilm-wide-ffn`` computes
the same function with twice the feed-forward arithmetic (slower, equally accurate); ``minilm-three-
layers`` keeps layers 1, 3 and 5 (faster, much less accurate). Scored on the hard retrieval set
(fixtures/labelled.py), where MiniLM gets 0.80, so an accuracy interval has width.
"""

from __future__ import annotations

import pytest

from fixtures.environments import overlay_environment
from fixtures.labelled import HARD_SET
from perfgate.instruments.outcome import Verdict

pytestmark = pytest.mark.cpu
BUDGET = 6.0  # seconds of ABBA timing per gate, over three pairs of workers


def verdicts(result) -> dict[str, Verdict]:
    return {check.name: check.verdict for check in result.checks}


def test_the_model_against_itself_passes_every_check(perfgate):
    result = perfgate.upgrade("minilm", "minilm", eval_file=HARD_SET, budget_seconds=BUDGET)
    assert verdicts(result) == {"speed": Verdict.PASS, "accuracy": Verdict.PASS, "memory": Verdict.PASS}
    assert result.check("accuracy").estimate == 0.0
    assert result.figures["outputs"]["max_abs_error"] == 0.0


def test_a_slower_equally_accurate_candidate_fails_on_speed_alone_of_the_quality_checks(perfgate):
    with pytest.raises(pytest.fail.Exception, match=r"\| speed \| \*\*fail\*\*"):
        perfgate.upgrade("minilm", "minilm-wide-ffn", eval_file=HARD_SET, memory=False, budget_seconds=BUDGET)
    gate = perfgate.session.recorder.record.gates[-1]
    checks = {check["name"]: check for check in gate["checks"]}
    assert checks["speed"]["high"] < 1 / 1.10
    assert checks["accuracy"]["verdict"] == "pass"
    assert gate["figures"]["outputs"]["cosine_min"] > 0.99999  # the same function, computed the long way


def test_a_faster_less_accurate_candidate_fails_on_accuracy(perfgate):
    with pytest.raises(pytest.fail.Exception, match=r"\| accuracy \| \*\*fail\*\*"):
        perfgate.upgrade("minilm", "minilm-three-layers", eval_file=HARD_SET, memory=False, budget_seconds=BUDGET)
    checks = {check["name"]: check for check in perfgate.session.recorder.record.gates[-1]["checks"]}
    assert checks["speed"]["verdict"] == "pass"
    assert checks["accuracy"]["high"] < -0.02


@pytest.mark.slow  # ~45 s: three pairs of workers, each exporting to ONNX; tests/ runs it on a micro model
def test_a_library_upgrade_is_timed_between_two_live_environments(perfgate, tmp_path_factory):
    """The candidate environment differs in onnxruntime alone (1.30.0 over this environment's pin)."""
    python = overlay_environment(tmp_path_factory.mktemp("env") / "onnxruntime-1.30", ("onnxruntime==1.30.0",))
    result = perfgate.upgrade(
        "minilm", technique="onnxruntime-o2", candidate_python=str(python), eval_file=HARD_SET,
        memory=False, budget_seconds=BUDGET,
    )  # fmt: skip
    libraries = {arm: figures["libraries"]["onnxruntime"] for arm, figures in result.figures["arms"].items()}
    assert libraries["candidate"] == "1.30.0"
    assert libraries["current"] != "1.30.0"
    assert len(result.figures["speed"]) == 3  # three pairs of workers, one per environment in each
    assert result.check("accuracy").verdict is Verdict.PASS
