"""Why accumulators are wide and why some ops stay in fp32: integer accumulation, float casts, and a
layer norm that low precision breaks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.cpu

INT32_MAX = 2**31 - 1
LARGEST_INT8_PRODUCT = 128 * 128  # (-128) * (-128)
SAFE_LENGTH = INT32_MAX // LARGEST_INT8_PRODUCT  # 131071 products always fit in int32

FP16_MAX = 65504.0
FP16_OVERFLOW = 65520.0  # the rounding midpoint above 65504: from here on fp16 rounds to inf
FP16_SMALLEST_NORMAL = 2.0**-14
FP16_SMALLEST_SUBNORMAL = 2.0**-24


def dot_int32(a: np.ndarray, b: np.ndarray) -> int:
    """An int8 dot product the way int8 GEMM kernels do it: widen, multiply, sum in int32."""
    with np.errstate(over="ignore"):
        return int(np.sum(a.astype(np.int32) * b.astype(np.int32), dtype=np.int32))


@given(st.integers(1, SAFE_LENGTH), st.integers(0, 2**32 - 1))
def test_int8_products_summed_in_int32_are_exact_up_to_the_safe_length(length, seed):
    rng = np.random.default_rng(seed)
    # the worst case for overflow: every product at its largest magnitude, all of one sign
    a = rng.choice(np.array([-128, 127], dtype=np.int8), size=length)
    b = np.where(a < 0, np.int8(-128), np.int8(127)).astype(np.int8)
    exact = sum(int(x) * int(y) for x, y in zip(a.tolist(), b.tolist(), strict=True)) if length < 5000 else None
    total = dot_int32(a, b)
    assert total == (exact if exact is not None else int(np.sum(a.astype(np.int64) * b.astype(np.int64))))
    assert 0 < total <= INT32_MAX


def test_one_product_past_the_safe_length_overflows_int32():
    a = np.full(SAFE_LENGTH + 1, -128, dtype=np.int8)
    exact = (SAFE_LENGTH + 1) * LARGEST_INT8_PRODUCT
    assert exact > INT32_MAX
    assert dot_int32(a, a) != exact  # wrapped around: why accumulation width is bounded by length


def test_the_textbook_int8_overflow():
    with np.errstate(over="ignore"):
        wrapped = np.array([127], dtype=np.int8) + np.array([127], dtype=np.int8)
    assert wrapped[0] == -2  # 254 wraps in int8; int8 GEMMs accumulate in int32 for this reason
    assert np.array([127], dtype=np.int8).astype(np.int32)[0] * 2 == 254


normal_fp16 = st.floats(FP16_SMALLEST_NORMAL, FP16_MAX, width=32).flatmap(lambda v: st.sampled_from([v, -v]))
FP32_SMALLEST_NORMAL = float(np.finfo(np.float32).tiny)
BELOW_BF16_MAX = float(np.float32(3.0e38))  # bf16's largest finite value is about 3.39e38
normal_fp32 = st.floats(FP32_SMALLEST_NORMAL, BELOW_BF16_MAX, width=32).flatmap(lambda v: st.sampled_from([v, -v]))


@given(normal_fp16)
def test_fp32_to_fp16_relative_error_is_within_half_an_ulp_in_the_normal_range(value):
    converted = float(np.float32(value).astype(np.float16))
    assert abs(converted - value) <= 2.0**-11 * abs(value)


@given(normal_fp32)
def test_fp32_to_bf16_relative_error_is_within_half_an_ulp_in_the_normal_range(value):
    converted = torch.tensor(value, dtype=torch.float32).to(torch.bfloat16).float().item()
    assert abs(converted - value) <= 2.0**-8 * abs(value)


@given(st.floats(FP16_OVERFLOW, BELOW_BF16_MAX, width=32))
def test_fp16_overflows_to_inf_where_bf16_stays_finite(value):
    with np.errstate(over="ignore"):  # the overflow is the point
        assert np.isinf(np.float32(value).astype(np.float16))
    assert np.isfinite(torch.tensor(value).to(torch.bfloat16).float().item())


@given(st.floats(FP16_MAX, FP16_OVERFLOW, width=32, exclude_max=True))
def test_just_above_the_fp16_maximum_rounds_down_to_it(value):
    assert float(np.float32(value).astype(np.float16)) == FP16_MAX


@given(st.floats(FP16_SMALLEST_SUBNORMAL, FP16_SMALLEST_NORMAL, width=32, exclude_max=True))
def test_fp16_subnormals_keep_an_absolute_error_of_half_their_spacing(value):
    converted = float(np.float32(value).astype(np.float16))
    assert abs(converted - value) <= FP16_SMALLEST_SUBNORMAL / 2
    assert converted != 0.0


@given(st.floats(0, FP16_SMALLEST_SUBNORMAL / 2, width=32))
def test_values_below_half_the_smallest_fp16_subnormal_flush_to_zero(value):
    assert float(np.float32(value).astype(np.float16)) == 0.0


@pytest.mark.parametrize("special", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinities_survive_both_casts(special):
    half = float(np.float32(special).astype(np.float16))
    brain = torch.tensor(special).to(torch.bfloat16).float().item()
    for converted in (half, brain):
        assert (np.isnan(converted) and np.isnan(special)) or converted == special


def layer_norm(x: np.ndarray, dtype: type) -> np.ndarray:
    """Layer norm computed in ``dtype`` as a simple kernel would: running sums for mean and variance."""
    values = x.astype(dtype)
    mean = np.cumsum(values, dtype=dtype)[-1] / dtype(len(values))
    centred = values - mean
    variance = np.cumsum(centred * centred, dtype=dtype)[-1] / dtype(len(values))
    return (centred / np.sqrt(variance + dtype(1e-5))).astype(np.float64)


def test_layer_norm_on_a_small_variance_breaks_in_fp16_and_holds_in_fp32():
    """Inputs exactly representable in fp16 (100 + k/16): the fp16 running sum reaches ~25600, where
    fp16 steps by 16, so the mean is off by whole units of the signal. This is why autocast keeps
    layer_norm (and softmax, sums) in fp32."""
    rng = np.random.default_rng(0)
    x = 100.0 + rng.integers(-4, 5, size=256) / 16.0
    assert np.array_equal(x.astype(np.float16).astype(np.float64), x)  # the inputs themselves are exact
    exact = (x - x.mean()) / np.sqrt(x.var() + 1e-5)

    def cosine(a: np.ndarray) -> float:
        return float(a @ exact / (np.linalg.norm(a) * np.linalg.norm(exact)))

    assert cosine(layer_norm(x, np.float32)) > 0.9999
    assert cosine(layer_norm(x, np.float16)) < 0.9
