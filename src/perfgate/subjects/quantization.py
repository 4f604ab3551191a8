"""Reference affine quantization, written to be read: the definitions the library checks are held to.

    S   = (x_max - x_min) / (q_max - q_min)          asymmetric; the range is first widened to hold 0
    S   = 2 * max(|x_min|, |x_max|) / (q_max - q_min) symmetric
    Z   = q_min - round(x_min / S)                    asymmetric (an integer: 0.0 is represented exactly)
    Z   = (q_min + q_max + 1) // 2                    symmetric (0 for signed formats, 128 for uint8)
    x_q = clip(round(x / S + Z), q_min, q_max)        round half to even, as torch and ONNX Runtime do
    x   ≈ S * (x_q - Z)

Per-tensor parameters are scalars; per-channel parameters have one entry per index of ``axis``. The
range comes from min/max or from percentiles. A tensor whose range is all zeros gets S = 1 (any scale
represents it exactly). Arithmetic is float64, so the reference is more exact than the libraries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["FORMATS", "INT4", "INT8", "UINT4", "UINT8", "IntFormat", "QParams", "calibrate", "dequantize", "quantize"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class IntFormat:
    name: str
    q_min: int
    q_max: int

    @property
    def levels(self) -> int:
        return self.q_max - self.q_min


INT8 = IntFormat("int8", -128, 127)
UINT8 = IntFormat("uint8", 0, 255)
INT4 = IntFormat("int4", -8, 7)
UINT4 = IntFormat("uint4", 0, 15)
FORMATS = {f.name: f for f in (INT8, UINT8, INT4, UINT4)}


@dataclass(frozen=True)
class QParams:
    scale: FloatArray  # shape () per tensor, (channels,) per channel
    zero_point: IntArray
    fmt: IntFormat
    axis: int | None = None

    def broadcast(self, ndim: int) -> tuple[FloatArray, IntArray]:
        """Scale and zero point shaped to broadcast against a tensor of ``ndim`` dimensions."""
        if self.axis is None:
            return self.scale, self.zero_point
        shape = [1] * ndim
        shape[self.axis] = -1
        return self.scale.reshape(shape), self.zero_point.reshape(shape)

    @property
    def representable(self) -> tuple[FloatArray, FloatArray]:
        """The lowest and highest values the codes stand for."""
        return self.scale * (self.fmt.q_min - self.zero_point), self.scale * (self.fmt.q_max - self.zero_point)


def _reduce_axes(x: FloatArray, axis: int | None) -> tuple[int, ...] | None:
    return None if axis is None else tuple(i for i in range(x.ndim) if i != axis % x.ndim)


def value_range(
    x: npt.ArrayLike, axis: int | None = None, percentile: float | None = None
) -> tuple[FloatArray, FloatArray]:
    """(low, high) over the tensor or per channel: min/max, or the ``percentile`` and its mirror."""
    values = np.asarray(x, dtype=np.float64)
    axes = _reduce_axes(values, axis)
    if percentile is None:
        return np.asarray(np.min(values, axis=axes)), np.asarray(np.max(values, axis=axes))
    low, high = np.percentile(values, [100 - percentile, percentile], axis=axes)
    return np.asarray(low), np.asarray(high)


def params_from_range(
    low: npt.ArrayLike, high: npt.ArrayLike, fmt: IntFormat, symmetric: bool, axis: int | None = None
) -> QParams:
    low = np.minimum(np.asarray(low, dtype=np.float64), 0.0)  # 0.0 must be representable
    high = np.maximum(np.asarray(high, dtype=np.float64), 0.0)
    if symmetric:
        scale = 2 * np.maximum(-low, high) / fmt.levels
        scale = np.where(scale > 0, scale, 1.0)
        zero = np.full(scale.shape, (fmt.q_min + fmt.q_max + 1) // 2, dtype=np.int64)
    else:
        scale = (high - low) / fmt.levels
        scale = np.where(scale > 0, scale, 1.0)
        zero = np.clip(fmt.q_min - np.rint(low / scale), fmt.q_min, fmt.q_max).astype(np.int64)
    return QParams(scale=scale, zero_point=zero, fmt=fmt, axis=axis)


def calibrate(
    x: npt.ArrayLike,
    fmt: IntFormat,
    symmetric: bool = False,
    axis: int | None = None,
    percentile: float | None = None,
) -> QParams:
    low, high = value_range(x, axis, percentile)
    return params_from_range(low, high, fmt, symmetric, axis)


def quantize(x: npt.ArrayLike, params: QParams) -> IntArray:
    values = np.asarray(x, dtype=np.float64)
    scale, zero = params.broadcast(values.ndim)
    codes = np.rint(values / scale + zero)
    return np.clip(codes, params.fmt.q_min, params.fmt.q_max).astype(np.int64)


def dequantize(codes: npt.ArrayLike, params: QParams) -> FloatArray:
    values = np.asarray(codes, dtype=np.int64)
    scale, zero = params.broadcast(values.ndim)
    result: FloatArray = scale * (values - zero)
    return result
