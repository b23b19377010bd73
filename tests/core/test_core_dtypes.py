"""Casts and promotion: RNE for floats, RNE + saturation for integers, poison values."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trnsim.core import dtypes


def _rne_int_reference(x: float, lo: int, hi: int) -> int:
    # exact round-half-even on the float64 value, then saturate
    r = round(x)  # Python's round is half-to-even
    return int(min(max(r, lo), hi))


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=-1e10, max_value=1e10, allow_nan=False, width=32))
def test_fp32_to_int_rounds_half_even_and_saturates(x):
    for dt in (np.int8, np.int16, np.int32, np.uint8, np.uint16):
        info = np.iinfo(dt)
        got = dtypes.cast_to(np.array([x], dtype=np.float32), np.dtype(dt))[0]
        assert int(got) == _rne_int_reference(float(np.float32(x)), info.min, info.max)


def test_half_way_cases_round_to_even():
    v = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 1e12, -1e12, np.nan], dtype=np.float32)
    got = dtypes.cast_to(v, np.dtype(np.int32))
    assert got.tolist() == [0, 2, 2, 0, -2, -2, 2**31 - 1, -(2**31), 0]


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_bf16_cast_is_round_to_nearest_even(x):
    f = np.float32(x)
    got = dtypes.cast_to(np.array([f]), dtypes.bfloat16)[0]
    # independent reference on the bit pattern: add 0x7FFF + lsb, truncate
    bits = int(np.array([f], dtype=np.float32).view(np.uint32)[0])
    lsb = (bits >> 16) & 1
    ref_bits = ((bits + 0x7FFF + lsb) >> 16) & 0xFFFF
    ref = np.array([ref_bits], dtype=np.uint16).view(ml_dtypes.bfloat16)[0]
    assert (np.isinf(ref) and np.isinf(got)) or float(got) == float(ref)


def test_tf32_rounding_keeps_10_mantissa_bits():
    rng = np.random.default_rng()
    x = rng.standard_normal(1000).astype(np.float32)
    r = dtypes.round_tf32(x)
    assert np.all(r.view(np.uint32) & 0x1FFF == 0)
    assert np.max(np.abs(r - x) / np.abs(x)) <= 2.0**-11 + 1e-9


@pytest.mark.parametrize(
    "a,b,want",
    [
        ("int32", "float16", "float16"),
        ("float32", "bfloat16", "float32"),
        ("float16", "bfloat16", "float32"),
        ("float8_e4m3", "float16", "float16"),
        ("float8_e4m3", "bfloat16", "bfloat16"),
        ("float8_e4m3", "float8_e5m2", "bfloat16"),
        ("int16", "int32", "int32"),
        ("uint8", "uint16", "uint16"),
        ("uint16", "int32", "int32"),
        ("int8", "uint8", "int16"),
        ("int8", "uint16", "int32"),
        ("int32", "uint32", "float32"),
    ],
)
def test_documented_promotion_rules(a, b, want):
    na, nb, nw = (dtypes.normalize(x) for x in (a, b, want))
    assert dtypes.promote(na, nb) == nw
    assert dtypes.promote(nb, na) == nw


def test_poison_values():
    assert np.isnan(dtypes.poison_value(dtypes.bfloat16))
    assert dtypes.poison_value(dtypes.int32) == np.iinfo(np.int32).min
    assert dtypes.poison_value(dtypes.uint8) == 255
