"""The reference quantizer obeys the definitions: exact zero, S/2 round trips, clipping, monotonicity,
code identity, per-channel no worse than per-tensor, percentile calibration."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import perfgate.subjects.quantization as reference
from correctness import properties
from correctness.strategies import FORMATS, SCHEMES, tensor_and_axis, tensor_and_scope, tensors
from perfgate.subjects.quantization import INT8, UINT8, calibrate, dequantize, quantize

pytestmark = pytest.mark.cpu


@given(tensor_and_scope(), FORMATS, SCHEMES)
def test_zero_maps_to_an_exact_code_and_back_to_exactly_zero(x_axis, fmt, symmetric):
    x, axis = x_axis  # axis None: per tensor; otherwise per channel along it
    properties.zero_is_exact(reference, x, fmt, symmetric, axis)


@given(tensor_and_scope(), FORMATS, SCHEMES)
def test_inside_the_calibrated_range_the_round_trip_is_within_half_a_step(x_axis, fmt, symmetric):
    x, axis = x_axis
    properties.round_trip_within_half_a_step(reference, x, fmt, symmetric, axis)


@given(tensors(), FORMATS, SCHEMES, st.floats(0, 1e3))
def test_values_outside_the_range_clip_to_the_end_codes(x, fmt, symmetric, beyond):
    properties.outside_values_clip_to_the_end_codes(reference, x, fmt, symmetric, beyond)


@given(tensors(), FORMATS, SCHEMES)
def test_quantization_is_monotone(x, fmt, symmetric):
    properties.quantization_is_monotone(reference, x, fmt, symmetric)


@given(tensors(), FORMATS, SCHEMES)
def test_dequantize_then_quantize_is_the_identity_on_codes(x, fmt, symmetric):
    properties.codes_survive_dequantize_then_quantize(reference, x, fmt, symmetric)


@given(tensor_and_axis(), FORMATS, SCHEMES)
def test_per_channel_error_is_within_the_per_tensor_bound(x_axis, fmt, symmetric):
    x, axis = x_axis
    properties.per_channel_is_no_worse_than_per_tensor(reference, x, axis, fmt, symmetric)


@given(tensors(min_side=4), FORMATS, SCHEMES, st.floats(90.0, 99.9))
def test_percentile_calibration_bounds_the_inside_and_clips_the_tails(x, fmt, symmetric, percentile):
    properties.percentile_calibration_bounds_the_inside_and_clips_the_tails(reference, x, fmt, symmetric, percentile)


def test_a_textbook_example_by_hand():
    # x in [-1, 3] to uint8: S = 4/255, Z = 0 - round(-1 / S) = round(63.75) = 64
    params = calibrate(np.array([-1.0, 3.0]), UINT8)
    assert params.scale == pytest.approx(4 / 255)
    assert params.zero_point == 64
    assert list(quantize(np.array([-1.0, 0.0, 3.0]), params)) == [0, 64, 255]


def test_symmetric_int8_uses_zero_point_zero_and_the_wider_side():
    params = calibrate(np.array([-0.5, 2.0]), INT8, symmetric=True)
    assert params.zero_point == 0
    assert params.scale == pytest.approx(4.0 / 255)
    assert dequantize(quantize(np.array([2.0]), params), params)[0] == pytest.approx(2.0, abs=params.scale / 2)
