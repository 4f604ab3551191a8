"""Tests of the tests: each property, given a deliberately wrong formula, fails on an input hypothesis
finds. A property that no mutant can break would be a check that cannot fail."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, find, settings
from hypothesis import strategies as st

import perfgate.subjects.quantization as reference
from correctness import properties
from correctness.strategies import FORMATS, SCHEMES, tensor_and_axis, tensors
from perfgate.subjects.quantization import QParams, params_from_range, value_range

pytestmark = pytest.mark.cpu
SEARCH = settings(max_examples=2000, database=None, derandomize=True, suppress_health_check=list(HealthCheck))


def mutant(**overrides: Any) -> SimpleNamespace:
    parts = {"calibrate": reference.calibrate, "quantize": reference.quantize, "dequantize": reference.dequantize}
    return SimpleNamespace(**{**parts, **overrides})


def scale_one_level_too_fine(x, fmt, symmetric=False, axis=None, percentile=None):
    """S = range / (levels + 1): the classic off-by-one; the top of the range no longer fits."""
    low, high = value_range(x, axis, percentile)
    wrong = params_from_range(low, high, fmt, symmetric, axis)
    return QParams(wrong.scale * fmt.levels / (fmt.levels + 1), wrong.zero_point, fmt, axis)


def zero_point_left_fractional(x, fmt, symmetric=False, axis=None, percentile=None):
    params = reference.calibrate(x, fmt, symmetric, axis, percentile)
    low, _ = value_range(x, axis, percentile)
    exact = fmt.q_min - np.minimum(low, 0.0) / params.scale
    return QParams(params.scale, exact, fmt, axis)  # float zero point: 0.0 no longer lands on a code


def truncating_quantize(x, params):
    scale, zero = params.broadcast(np.ndim(x))
    return np.clip(np.trunc(np.asarray(x, dtype=np.float64) / scale + zero), params.fmt.q_min, params.fmt.q_max).astype(
        np.int64
    )


def unclipped_quantize(x, params):
    scale, zero = params.broadcast(np.ndim(x))
    return np.rint(np.asarray(x, dtype=np.float64) / scale + zero).astype(np.int64)


def per_channel_on_the_wrong_axis(x, fmt, symmetric=False, axis=None, percentile=None):
    if axis is None or np.ndim(x) < 2:
        return reference.calibrate(x, fmt, symmetric, axis, percentile)
    other = (axis + 1) % np.ndim(x)
    wrong = reference.calibrate(x, fmt, symmetric, other, percentile)
    return QParams(np.resize(wrong.scale, np.shape(x)[axis]), np.resize(wrong.zero_point, np.shape(x)[axis]), fmt, axis)


def fails(check, impl, *args) -> bool:
    try:
        with np.errstate(all="ignore"):
            check(impl, *args)
    except AssertionError:
        return True
    return False


ROUND_TRIP = properties.round_trip_within_half_a_step
CASES = [
    ("round trip / scale off by one", ROUND_TRIP, mutant(calibrate=scale_one_level_too_fine),
     st.tuples(tensors(), FORMATS, SCHEMES)),
    ("exact zero / fractional zero point", properties.zero_is_exact, mutant(calibrate=zero_point_left_fractional),
     st.tuples(tensors(), FORMATS, st.just(False))),
    ("round trip / truncation", ROUND_TRIP, mutant(quantize=truncating_quantize),
     st.tuples(tensors(), FORMATS, SCHEMES)),
    ("clipping / no clip", properties.outside_values_clip_to_the_end_codes, mutant(quantize=unclipped_quantize),
     st.tuples(tensors(), FORMATS, SCHEMES, st.floats(0, 10))),
    ("codes identity / truncation", properties.codes_survive_dequantize_then_quantize,
     mutant(quantize=truncating_quantize), st.tuples(tensors(), FORMATS, SCHEMES)),
    ("per-channel / wrong axis", ROUND_TRIP, mutant(calibrate=per_channel_on_the_wrong_axis),
     tensor_and_axis().flatmap(lambda xa: st.tuples(st.just(xa[0]), FORMATS, SCHEMES, st.just(xa[1])))),
    ("percentile / no clip", properties.percentile_calibration_bounds_the_inside_and_clips_the_tails,
     mutant(quantize=unclipped_quantize), st.tuples(tensors(min_side=4), FORMATS, SCHEMES, st.floats(90, 99))),
]  # fmt: skip


@pytest.mark.parametrize(("name", "check", "impl", "inputs"), CASES, ids=[c[0] for c in CASES])
def test_hypothesis_finds_a_counterexample_to_a_wrong_formula(name, check, impl, inputs):
    counterexample = find(inputs, lambda args: fails(check, impl, *args), settings=SEARCH)
    assert fails(check, impl, *counterexample)
    assert not fails(check, reference, *counterexample), f"{name}: the reference fails its own property"
