"""Shared hypothesis strategies for the quantization and precision properties."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from perfgate.subjects.quantization import INT4, INT8, UINT8

FORMATS = st.sampled_from([INT8, UINT8, INT4])
SCHEMES = st.booleans()  # symmetric?

# Magnitudes where float64 arithmetic on float32 inputs is exact enough that only the quantization
# error shows: no subnormals, nothing near overflow.
_MAGNITUDE = 1e4
element = st.one_of(
    st.just(0.0),
    st.floats(-_MAGNITUDE, _MAGNITUDE, width=32, allow_nan=False, allow_subnormal=False).filter(
        lambda v: v == 0 or abs(v) >= 1e-6
    ),
)


def tensors(min_side: int = 1) -> st.SearchStrategy[np.ndarray[Any, Any]]:
    return hnp.arrays(
        np.float32, hnp.array_shapes(min_dims=1, max_dims=3, min_side=min_side, max_side=6), elements=element
    )


@st.composite
def tensor_and_axis(draw: st.DrawFn) -> tuple[np.ndarray[Any, Any], int]:
    x = draw(tensors())
    return x, draw(st.integers(0, x.ndim - 1))


@st.composite
def tensor_and_scope(draw: st.DrawFn) -> tuple[np.ndarray[Any, Any], int | None]:
    """A tensor with an axis for per-channel parameters, or None for per-tensor ones."""
    x = draw(tensors())
    return x, draw(st.one_of(st.none(), st.integers(0, x.ndim - 1)))
