"""Properties of affine quantization, as functions of an implementation.

Each check takes the implementation (anything with ``calibrate``, ``quantize``, ``dequantize`` shaped
like ``perfgate.subjects.quantization``) and raises AssertionError when the property fails. The tests bind them
to the reference; ``test_properties_can_fail.py`` binds them to deliberately wrong formulas and shows
hypothesis finds a counterexample for each.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from perfgate.subjects.quantization import IntFormat

Array = np.ndarray[Any, Any]


def _slack(scale: Array, x: Array) -> Array:
    """Float64 rounding on top of S/2: a few ulps of the values involved."""
    return 1e-9 * scale + 1e-12 * np.abs(x)


def zero_is_exact(impl: ModuleType, x: Array, fmt: IntFormat, symmetric: bool, axis: int | None = None) -> None:
    params = impl.calibrate(x, fmt, symmetric=symmetric, axis=axis)
    zeros = np.zeros_like(x, dtype=np.float64)
    codes = impl.quantize(zeros, params)
    _, zero = params.broadcast(x.ndim)
    assert np.all(codes == zero), f"0.0 maps to {codes.ravel()[:4]}, not the zero point {np.ravel(zero)[:4]}"
    back = impl.dequantize(codes, params)
    assert np.all(back == 0.0), f"the zero point dequantizes to {back.ravel()[:4]}, not exactly 0.0"


def round_trip_within_half_a_step(
    impl: ModuleType, x: Array, fmt: IntFormat, symmetric: bool, axis: int | None = None
) -> None:
    """Every value inside the calibrated (min/max) range comes back within S/2."""
    params = impl.calibrate(x, fmt, symmetric=symmetric, axis=axis)
    scale, _ = params.broadcast(x.ndim)
    error = np.abs(impl.dequantize(impl.quantize(x, params), params) - x.astype(np.float64))
    bound = scale / 2 + _slack(scale, x)
    worst = np.argmax(error - bound)
    assert np.all(error <= bound), (
        f"round-trip error {error.ravel()[worst]:.6g} > S/2 = {np.broadcast_to(scale, x.shape).ravel()[worst] / 2:.6g}"
        f" at x={x.ravel()[worst]!r} ({fmt.name}, symmetric={symmetric}, axis={axis})"
    )


def outside_values_clip_to_the_end_codes(
    impl: ModuleType, x: Array, fmt: IntFormat, symmetric: bool, beyond: float
) -> None:
    """Values more than one step past the representable range get q_min or q_max."""
    params = impl.calibrate(x, fmt, symmetric=symmetric)
    low, high = params.representable
    step = float(params.scale)
    above = np.array([float(high) + step * (1 + beyond)])
    below = np.array([float(low) - step * (1 + beyond)])
    assert impl.quantize(above, params)[0] == fmt.q_max, f"{above[0]!r} above the range did not clip to {fmt.q_max}"
    assert impl.quantize(below, params)[0] == fmt.q_min, f"{below[0]!r} below the range did not clip to {fmt.q_min}"


def quantization_is_monotone(impl: ModuleType, x: Array, fmt: IntFormat, symmetric: bool) -> None:
    params = impl.calibrate(x, fmt, symmetric=symmetric)
    ordered = np.sort(x.ravel()).astype(np.float64)
    codes = impl.quantize(ordered, params)
    assert np.all(np.diff(codes) >= 0), f"codes {codes} of sorted values {ordered} decrease"


def codes_survive_dequantize_then_quantize(impl: ModuleType, x: Array, fmt: IntFormat, symmetric: bool) -> None:
    params = impl.calibrate(x, fmt, symmetric=symmetric)
    every_code = np.arange(fmt.q_min, fmt.q_max + 1)
    again = impl.quantize(impl.dequantize(every_code, params), params)
    assert np.array_equal(again, every_code), f"codes {every_code[again != every_code]} changed on the way back"


def per_channel_is_no_worse_than_per_tensor(
    impl: ModuleType, x: Array, axis: int, fmt: IntFormat, symmetric: bool
) -> None:
    """Each channel's range lies inside the tensor's, so its step is no larger and its error bound no
    weaker; the per-channel error stays within the per-tensor bound S_tensor/2 element by element."""
    tensor = impl.calibrate(x, fmt, symmetric=symmetric)
    channel = impl.calibrate(x, fmt, symmetric=symmetric, axis=axis)
    # An all-zero channel has an empty range: any step represents it exactly (the error check below
    # still covers it), so its step is a convention (1.0 here) and not compared.
    holds_values = np.any(np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1) != 0, axis=1)
    steps = np.broadcast_to(channel.scale, holds_values.shape)
    assert np.all(steps[holds_values] <= tensor.scale * (1 + 1e-12)), (
        f"channel steps {channel.scale} > tensor step {tensor.scale}"
    )
    error = np.abs(impl.dequantize(impl.quantize(x, channel), channel) - x.astype(np.float64))
    assert np.all(error <= tensor.scale / 2 + _slack(tensor.scale, x)), (
        "a per-channel error exceeds the per-tensor bound"
    )


def percentile_calibration_bounds_the_inside_and_clips_the_tails(
    impl: ModuleType, x: Array, fmt: IntFormat, symmetric: bool, percentile: float
) -> None:
    params = impl.calibrate(x, fmt, symmetric=symmetric, percentile=percentile)
    low, high = params.representable
    values = x.ravel().astype(np.float64)
    back = impl.dequantize(impl.quantize(values, params), params)
    inside = (values >= low) & (values <= high)
    assert np.all(np.abs(back[inside] - values[inside]) <= params.scale / 2 + _slack(params.scale, values[inside]))
    assert np.all(back[values > high] == high), "values above the calibrated range do not clip to the top"
    assert np.all(back[values < low] == low), "values below the calibrated range do not clip to the bottom"
