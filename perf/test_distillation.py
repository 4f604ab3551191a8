"""A smaller model: MiniLM (teacher) against a three-layer student distilled from it for 200 steps
(fixtures/models.py), speed and task quality side by side through the upgrade gate, with the accuracy
difference's interval over the hard set and a 2-point non-inferiority margin. The undistilled cut is
the contrast: the same speed, 35 points of accuracy lost (correctness/test_fixture_models.py)."""

from __future__ import annotations

import pytest

from fixtures.labelled import HARD_SET
from perfgate.instruments.outcome import Verdict


@pytest.mark.cpu
@pytest.mark.slow  # building the student trains it (~1 min on 2 cores, once per cache)
def test_a_distilled_three_layer_student_keeps_the_teacher_s_accuracy_at_twice_the_speed(perfgate):
    result = perfgate.upgrade(
        "minilm", "minilm-three-layers-distilled", eval_file=HARD_SET, memory=False, enforce=False, budget_seconds=6.0
    )
    speed, accuracy = result.check("speed"), result.check("accuracy")
    # Measured on cpu-amx: 1.9x faster (by hand, 3.1 against 5.9 ms); the bound is 0.75 x that, rounded down.
    assert speed.low > 1.4, speed
    # Measured: 0.801 against the teacher's 0.801, interval [-0.015, +0.015] (the cut without distillation:
    # 0.449). Within the gate's own 2-point margin: not a FAIL (a student trained elsewhere may land
    # a little lower and be INCONCLUSIVE).
    assert accuracy.estimate > -0.02, accuracy
    assert accuracy.verdict is not Verdict.FAIL, accuracy


@pytest.mark.gpu
def test_the_distilled_student_on_a_gpu(perfgate):
    """Not measured on a GPU yet, so no speed bound from measurement: half the layers must be faster at
    all (at batch 1 a GPU runs these small layers launch-bound, so time follows the layer count), and the
    accuracy, which does not depend on the device beyond rounding, must stay within the margin."""
    result = perfgate.upgrade(
        "minilm", "minilm-three-layers-distilled", eval_file=HARD_SET, memory=False, enforce=False, device="cuda"
    )
    speed, accuracy = result.check("speed"), result.check("accuracy")
    assert speed.low > 1.0, speed
    assert accuracy.verdict is not Verdict.FAIL, accuracy
