"""Legacy `nl` element-wise functions against float64 NumPy references.

Every function runs in a real kernel (load -> op -> store) on fresh random inputs; results are compared with a
float64 reference computed from the same (dtype-rounded) inputs, with the per-dtype tolerances of
tests/conftest.py. Also: comparisons (default dtype bool), logical and bitwise ops, dtype promotion (nki-api.md
3.2, weak scalars), NumPy broadcasting including the partition dim, masks on a ragged last tile, operator
overloading and ops-as-values (`op=nl.add` / `np.add` everywhere an ALU op is taken).
"""

from __future__ import annotations

import importlib.util
import math
import pathlib

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl
from trnsim.isa import alu

_spec = importlib.util.spec_from_file_location("_lang_root_conftest", pathlib.Path(__file__).parents[1] / "conftest.py")
_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root)
TOL = _root.TOLERANCES
BF16 = ml_dtypes.bfloat16
DT = {"float32": np.float32, "bfloat16": BF16}


def simulate(kernel, *args, grid=None):
    k = nki.jit(kernel)
    return nki.simulate_kernel(k[grid] if grid is not None else k, *args)


def close(got, ref, dtype_name, scale=1.0):
    tol = TOL[dtype_name]
    np.testing.assert_allclose(
        np.asarray(got, dtype=np.float64), ref, rtol=tol["rtol"] * scale, atol=tol["atol"] * scale
    )


def _erf(x):
    return np.vectorize(math.erf)(x)


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softplus(x):
    return np.logaddexp(0.0, x)


# name -> (reference on float64, input range)
UNARY = {
    "exp": (np.exp, (-4, 4)),
    "log": (np.log, (0.05, 20)),
    "tanh": (np.tanh, (-4, 4)),
    "sqrt": (np.sqrt, (0.01, 50)),
    "rsqrt": (lambda x: 1 / np.sqrt(x), (0.05, 50)),
    "square": (np.square, (-8, 8)),
    "sigmoid": (_sig, (-8, 8)),
    "relu": (lambda x: np.maximum(x, 0), (-4, 4)),
    "gelu": (lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2))), (-4, 4)),
    "gelu_dx": (lambda x: 0.5 * (1 + _erf(x / np.sqrt(2))) + x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi), (-4, 4)),
    "gelu_apprx_tanh": (lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))), (-4, 4)),
    "gelu_apprx_sigmoid": (lambda x: x * _sig(1.702 * x), (-4, 4)),
    "silu": (lambda x: x * _sig(x), (-6, 6)),
    "silu_dx": (lambda x: _sig(x) * (1 + x * (1 - _sig(x))), (-6, 6)),
    "erf": (_erf, (-3, 3)),
    "erf_dx": (lambda x: 2 / np.sqrt(np.pi) * np.exp(-x * x), (-3, 3)),
    "softplus": (_softplus, (-6, 6)),
    "mish": (lambda x: x * np.tanh(_softplus(x)), (-4, 4)),
    "arctan": (np.arctan, (-1.5, 1.5)),
    "sign": (np.sign, (-3, 3)),
    "abs": (np.abs, (-3, 3)),
    "reciprocal": (lambda x: 1 / x, (0.2, 5)),
    "negative": (np.negative, (-3, 3)),
    "floor": (np.floor, (-9, 9)),
    "ceil": (np.ceil, (-9, 9)),
    "trunc": (np.trunc, (-9, 9)),
    "cos": (np.cos, (-3, 3)),
    "tan": (np.tan, (-1.2, 1.2)),
    "sin": (np.sin, (-9, 9)),  # nl.sin range-reduces before the Scalar engine's [-pi, pi] sin
}


def _unary_kernel(name):
    fn = getattr(nl, name)

    def kernel(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        nl.store(out, fn(nl.load(x)))
        return out

    return kernel


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_matches_float64_reference(name, dtype, rng):
    ref_fn, (lo, hi) = UNARY[name]
    x = rng.uniform(lo, hi, size=(128, 48)).astype(DT[dtype])
    got = simulate(_unary_kernel(name), x)
    assert got.dtype == np.dtype(DT[dtype])
    ref = ref_fn(x.astype(np.float64))
    if dtype == "float32" and name == "sin":
        close(got, ref, dtype, scale=5)  # fp32 range reduction (x + pi) mod 2pi loses ~|x| * 2^-24
    elif name in ("floor", "ceil", "trunc", "sign"):
        np.testing.assert_array_equal(got.astype(np.float64), ref.astype(DT[dtype]).astype(np.float64))
    else:
        close(got, ref, dtype)


BINARY = {
    "add": (np.add, (-4, 4), (-4, 4)),
    "subtract": (np.subtract, (-4, 4), (-4, 4)),
    "multiply": (np.multiply, (-4, 4), (-4, 4)),
    "divide": (np.divide, (-4, 4), (0.5, 4)),
    "power": (np.power, (0.1, 3), (-2, 2)),
    "maximum": (np.maximum, (-4, 4), (-4, 4)),
    "minimum": (np.minimum, (-4, 4), (-4, 4)),
    "fmod": (np.fmod, (-9, 9), (0.7, 3)),
    "mod": (np.mod, (-9, 9), (0.7, 3)),
}


def _binary_kernel(name):
    fn = getattr(nl, name)

    def kernel(x, y):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        nl.store(out, fn(nl.load(x), nl.load(y)))
        return out

    return kernel


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_matches_float64_reference(name, dtype, rng):
    ref_fn, (xlo, xhi), (ylo, yhi) = BINARY[name]
    x = rng.uniform(xlo, xhi, size=(96, 40)).astype(DT[dtype])
    y = rng.uniform(ylo, yhi, size=(96, 40)).astype(DT[dtype])
    got = simulate(_binary_kernel(name), x, y).astype(np.float64)
    ref = ref_fn(x.astype(np.float64), y.astype(np.float64))
    if name == "mod":  # a result next to 0 or |y| may wrap after fp32 rounding: compare modulo y
        d = np.abs(got - ref)
        d = np.minimum(d, np.abs(d - np.abs(y.astype(np.float64))))
        assert d.max() <= TOL[dtype]["atol"] + TOL[dtype]["rtol"] * np.abs(y.astype(np.float64)).max()
    else:
        close(got, ref, dtype)


CMP = {
    "equal": np.equal,
    "not_equal": np.not_equal,
    "greater": np.greater,
    "greater_equal": np.greater_equal,
    "less": np.less,
    "less_equal": np.less_equal,
    "logical_and": np.logical_and,
    "logical_or": np.logical_or,
    "logical_xor": np.logical_xor,
}


@pytest.mark.parametrize("name", sorted(CMP))
def test_comparisons_and_logical_default_to_bool(name, rng):
    seen = []
    fn = getattr(nl, name)

    def kernel(x, y):
        out = nl.ndarray(x.shape, dtype=nl.uint8, buffer=nl.shared_hbm)
        r = fn(nl.load(x), nl.load(y))
        seen.append(r.dtype)
        nl.store(out, r)
        return out

    # small integers so that equality is frequent; logical ops treat non-zero as true
    x = rng.integers(-2, 3, size=(64, 32)).astype(np.float32)
    y = rng.integers(-2, 3, size=(64, 32)).astype(np.float32)
    got = simulate(kernel, x, y)
    assert seen == [np.dtype(bool)]
    np.testing.assert_array_equal(got, CMP[name](x, y).astype(np.uint8))


def test_logical_not_defaults_to_bool_and_explicit_dtype_wins(rng):
    seen = []

    def kernel(x):
        out = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.shared_hbm)
        t = nl.load(x)
        a = nl.logical_not(t)
        b = nl.less(t, 0.5, dtype=nl.float32)
        seen.extend([a.dtype, b.dtype])
        nl.store(out, nl.add(a, b, dtype=nl.float32))
        return out

    x = rng.integers(0, 2, size=(32, 16)).astype(np.float32)
    got = simulate(kernel, x)
    assert seen == [np.dtype(bool), np.dtype(np.float32)]
    np.testing.assert_array_equal(got, (x == 0).astype(np.float32) + (x < 0.5))


BITWISE = {
    "bitwise_and": np.bitwise_and,
    "bitwise_or": np.bitwise_or,
    "bitwise_xor": np.bitwise_xor,
    "left_shift": lambda a, b: np.left_shift(a, b),
    # logical shift (the hardware has no arithmetic right shift)
    "right_shift": lambda a, b: (a.view(np.uint32) >> b.astype(np.uint32)).view(np.int32),
}


@pytest.mark.parametrize("name", sorted(BITWISE))
def test_bitwise_on_int32_bit_patterns(name, rng):
    def kernel(x, y):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        nl.store(out, getattr(nl, name)(nl.load(x), nl.load(y)))
        return out

    x = rng.integers(-(2**31), 2**31 - 1, size=(64, 32), dtype=np.int64).astype(np.int32)
    y = rng.integers(0, 31, size=(64, 32)).astype(np.int32) if "shift" in name else rng.integers(
        -(2**31), 2**31 - 1, size=(64, 32), dtype=np.int64
    ).astype(np.int32)
    got = simulate(kernel, x, y)
    np.testing.assert_array_equal(got, BITWISE[name](x, y))


def test_invert_and_bitwise_with_scalar(rng):
    def kernel(x):
        out = nl.ndarray((2,) + x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        t = nl.load(x)
        nl.store(out[0], nl.invert(t))
        nl.store(out[1], nl.bitwise_and(t, 0xFF0F, dtype=nl.int32))
        return out

    x = rng.integers(-(2**31), 2**31 - 1, size=(32, 16), dtype=np.int64).astype(np.int32)
    got = simulate(kernel, x)
    np.testing.assert_array_equal(got[0], np.invert(x))
    np.testing.assert_array_equal(got[1], x & 0xFF0F)


# ------------------------------------------------------------------------------------------------ promotion
F8E4, F8E5 = ml_dtypes.float8_e4m3, ml_dtypes.float8_e5m2
PROMOTION = [
    (np.int32, np.float16, np.float16),
    (np.float32, BF16, np.float32),
    (np.float16, BF16, np.float32),
    (F8E4, np.float16, np.float16),
    (F8E4, BF16, BF16),
    (F8E4, F8E5, BF16),
    (np.int16, np.int32, np.int32),
    (np.uint8, np.uint16, np.uint16),
    (np.uint16, np.int32, np.int32),
    (np.int8, np.uint8, np.int16),
    (np.int8, np.uint16, np.int32),
    (np.int32, np.uint32, np.float32),
]


@pytest.mark.parametrize("a,b,expected", PROMOTION, ids=lambda d: np.dtype(d).name)
def test_binary_promotion_rules(a, b, expected, rng):
    seen = []

    def kernel(x, y):
        out = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.shared_hbm)
        r = nl.add(nl.load(x), nl.load(y))
        seen.append(r.dtype)
        nl.store(out, r)
        return out

    x = rng.integers(1, 4, size=(16, 8)).astype(a)
    y = rng.integers(1, 4, size=(16, 8)).astype(b)
    got = simulate(kernel, x, y)
    assert seen == [np.dtype(expected)]
    np.testing.assert_array_equal(got, x.astype(np.float64) + y.astype(np.float64))


@pytest.mark.parametrize(
    "tile_dtype,scalar,dtype,expected",
    [
        (np.int8, 2, None, np.int32),  # weak int -> int32
        (np.float16, 1.25, None, np.float32),  # weak float -> float32
        (np.float16, np.float16(2), None, np.float16),  # typed scalar keeps its dtype
        (np.int8, np.int8(2), None, np.int8),
        (BF16, 3, None, BF16),  # (float, int) -> the float
        (np.int16, 2, BF16, BF16),  # explicit dtype wins
        (np.uint8, True, None, np.uint8),  # weak bool -> uint8
    ],
)
def test_weak_scalar_promotion(tile_dtype, scalar, dtype, expected, rng):
    seen = []

    def kernel(x):
        out = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.shared_hbm)
        r = nl.multiply(nl.load(x), scalar, dtype=dtype)
        seen.append(r.dtype)
        nl.store(out, r)
        return out

    x = rng.integers(1, 5, size=(16, 8)).astype(tile_dtype)
    got = simulate(kernel, x)
    assert seen == [np.dtype(expected)]
    np.testing.assert_array_equal(got, x.astype(np.float64) * float(scalar))


def test_unary_default_dtype_is_input_dtype_and_dtype_casts(rng):
    seen = []

    def kernel(x):
        out = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.shared_hbm)
        t = nl.load(x)
        a = nl.exp(t)
        b = nl.exp(t, dtype=nl.float32)
        seen.extend([a.dtype, b.dtype])
        nl.store(out, b)
        return out

    x = rng.uniform(-2, 2, size=(32, 16)).astype(BF16)
    got = simulate(kernel, x)
    assert seen == [np.dtype(BF16), np.dtype(np.float32)]
    close(got, np.exp(x.astype(np.float64)), "float32")


# ------------------------------------------------------------------------------------------------ broadcasting
@pytest.mark.parametrize(
    "xs,ys",
    [
        ((64, 32), (1, 32)),  # partition broadcast
        ((64, 32), (64, 1)),  # [P,1] column (tensor_scalar)
        ((64, 1), (1, 32)),  # outer broadcast
        ((1, 32), (64, 32)),
        ((64, 4, 8), (64, 1, 8)),
        ((64, 4, 8), (1, 4, 8)),
    ],
)
@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "maximum"])
def test_numpy_broadcasting(xs, ys, name, rng):
    shape = np.broadcast_shapes(xs, ys)

    def kernel(x, y):
        out = nl.ndarray(shape, dtype=nl.float32, buffer=nl.shared_hbm)
        nl.store(out, getattr(nl, name)(nl.load(x), nl.load(y)))
        return out

    x = rng.standard_normal(xs).astype(np.float32)
    y = rng.standard_normal(ys).astype(np.float32)
    got = simulate(kernel, x, y)
    close(got, getattr(np, name)(x.astype(np.float64), y.astype(np.float64)), "float32")


def test_scalar_operands_on_either_side(rng):
    def kernel(x):
        out = nl.ndarray((4,) + x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        t = nl.load(x)
        nl.store(out[0], nl.subtract(1.5, t))
        nl.store(out[1], nl.divide(2.0, t))
        nl.store(out[2], nl.maximum(t, 0.25))
        nl.store(out[3], nl.power(t, 2.0))
        return out

    x = rng.uniform(0.5, 3, size=(32, 16)).astype(np.float32)
    got = simulate(kernel, x)
    x64 = x.astype(np.float64)
    close(got, np.stack([1.5 - x64, 2.0 / x64, np.maximum(x64, 0.25), x64**2]), "float32")


def test_operator_overloading(rng):
    def kernel(x, y):
        out = nl.ndarray((6,) + x.shape, dtype=nl.float32, buffer=nl.shared_hbm)
        a, b = nl.load(x), nl.load(y)
        nl.store(out[0], (a + b) * 2.0 - b / 4.0)
        nl.store(out[1], 3.0 - a)
        nl.store(out[2], -a)
        nl.store(out[3], a > b)
        nl.store(out[4], a**2)
        nl.store(out[5], abs(a))
        return out

    x = rng.uniform(-3, 3, size=(32, 16)).astype(np.float32)
    y = rng.uniform(-3, 3, size=(32, 16)).astype(np.float32)
    got = simulate(kernel, x, y)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    ref = np.stack([(x64 + y64) * 2 - y64 / 4, 3 - x64, -x64, x64 > y64, x64**2, np.abs(x64)])
    close(got, ref, "float32")


def test_operators_on_indexed_accesses(rng):
    def kernel(x, y):
        out = nl.ndarray((4,) + x.shape, dtype=nl.int32, buffer=nl.shared_hbm)
        i_p, i_f = nl.mgrid[0:32, 0:16]
        a, b = nl.load(x), nl.load(y)
        nl.store(out[0], a[i_p, i_f] & b[i_p, i_f])
        nl.store(out[1], a[i_p, i_f] ^ b[i_p, i_f])
        nl.store(out[2], a[i_p, i_f] == b[i_p, i_f])
        nl.store(out[3], 7 - a[i_p, i_f])
        return out

    x = rng.integers(0, 8, size=(32, 16)).astype(np.int32)
    y = rng.integers(0, 8, size=(32, 16)).astype(np.int32)
    got = simulate(kernel, x, y)
    np.testing.assert_array_equal(got, np.stack([x & y, x ^ y, x == y, 7 - x]))


# ------------------------------------------------------------------------------------------------ masks
def test_ragged_last_tile_with_masks(rng):
    n, f = 300, 48

    def kernel(x, y):
        out = nl.ndarray((n, f), dtype=x.dtype, buffer=nl.shared_hbm)
        i_p, i_f = nl.mgrid[0:128, 0:f]
        for t in nl.affine_range((n + 127) // 128):
            m = t * 128 + i_p < n
            a = nl.load(x[t * 128 + i_p, i_f], mask=m)
            b = nl.load(y[t * 128 + i_p, i_f], mask=m)
            r = nl.multiply(nl.exp(a, mask=m), b, mask=m)
            nl.store(out[t * 128 + i_p, i_f], r, mask=m)
        return out

    x = rng.uniform(-2, 2, size=(n, f)).astype(np.float32)
    y = rng.uniform(-2, 2, size=(n, f)).astype(np.float32)
    got = simulate(kernel, x, y)
    close(got, np.exp(x.astype(np.float64)) * y, "float32")


def test_mask_on_free_axis_leaves_rest_of_destination_untouched(rng):
    def kernel(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        i_p, i_f = nl.mgrid[0:64, 0:32]
        t = nl.load(x)
        r = nl.zeros((64, 32), dtype=nl.float32)
        r[i_p, i_f] = nl.add(t, 1.0, mask=(i_f < 20) & (i_p >= 8))
        nl.store(out, r)
        return out

    x = rng.standard_normal((64, 32)).astype(np.float32)
    got = simulate(kernel, x)
    ref = np.zeros_like(x)
    ref[8:, :20] = x[8:, :20] + 1
    np.testing.assert_array_equal(got, ref)


# ------------------------------------------------------------------------------------------------ ops as values
def test_every_nl_alu_function_carries_its_op():
    names = (set(alu.BINARY) | set(alu.UNARY)) & set(vars(nl))
    assert len(names) > 40
    for name in sorted(names):
        assert alu.op_name(getattr(nl, name)) == name, name
    for fn, op in ((nl.max, "maximum"), (nl.min, "minimum"), (nl.sum, "add"), (nl.prod, "multiply")):
        assert alu.op_name(fn) == op


@pytest.mark.parametrize("op,ref", [(nl.add, np.add), (np.add, np.add), (nl.maximum, np.maximum), (nl.max, np.maximum),
                                    (np.max, np.maximum), (nl.multiply, np.multiply), (nl.subtract, np.subtract)])
def test_ops_as_values_in_isa_calls(op, ref, rng):
    def kernel(x, y):
        out = nl.ndarray((3,) + x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        a, b = nl.load(x), nl.load(y)
        nl.store(out[0], nisa.tensor_tensor(a, b, op=op))
        nl.store(out[1], nisa.tensor_scalar(a, op, 0.5))
        nl.store(out[2], nisa.tensor_tensor(b, a, op))
        return out

    x = rng.standard_normal((32, 16)).astype(np.float32)
    y = rng.standard_normal((32, 16)).astype(np.float32)
    got = simulate(kernel, x, y)
    close(got, np.stack([ref(x, y), ref(x, np.float32(0.5)), ref(y, x)]).astype(np.float64), "float32")


def test_activation_functions_as_values(rng):
    def kernel(x):
        out = nl.ndarray((3,) + x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        t = nl.load(x)
        nl.store(out[0], nisa.activation(op=nl.exp, data=t))
        nl.store(out[1], nisa.activation(op=np.tanh, data=t))
        nl.store(out[2], nisa.activation(op=nl.copy, data=t, scale=2.0))
        return out

    x = rng.uniform(-2, 2, size=(32, 16)).astype(np.float32)
    got = simulate(kernel, x)
    x64 = x.astype(np.float64)
    close(got, np.stack([np.exp(x64), np.tanh(x64), 2 * x64]), "float32")


# ------------------------------------------------------------------------------------------------ properties
_FLOATS = st.floats(-100, 100, allow_nan=False, width=32)


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from(["add", "subtract", "multiply", "maximum", "minimum"]),
    st.sampled_from(["float32", "bfloat16"]),
    st.integers(1, 128),
    st.integers(1, 40),
    st.integers(0, 2**32 - 1),
)
def test_property_binary_ops(name, dtype, p, f, seed):
    g = np.random.default_rng(seed)
    x = (g.standard_normal((p, f)) * 10).astype(DT[dtype])
    y = (g.standard_normal((p, f)) * 10).astype(DT[dtype])
    got = simulate(_binary_kernel(name), x, y)
    close(got, getattr(np, name)(x.astype(np.float64), y.astype(np.float64)), dtype)


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from([np.float32, BF16, np.float16, np.int32, np.int8, np.uint8]),
    st.sampled_from([np.float32, BF16, np.float16, np.int32, np.int16, np.uint8]),
    st.lists(_FLOATS, min_size=4, max_size=4),
)
def test_property_casts_round_to_nearest_even_and_saturate(src, dst, vals):
    """nl.copy(dtype=...) casts through fp32 with RNE; integer results saturate."""

    def kernel(x):
        out = nl.ndarray(x.shape, dtype=dst, buffer=nl.shared_hbm)
        nl.store(out, nl.copy(nl.load(x), dtype=dst))
        return out

    x = np.asarray(vals, dtype=np.float32).reshape(2, 2)
    x = x.astype(src) if np.dtype(src).kind == "f" or src is BF16 else np.clip(
        np.rint(x), np.iinfo(src).min, np.iinfo(src).max
    ).astype(src)
    got = simulate(kernel, x)
    v = x.astype(np.float32)
    if np.dtype(dst).kind in "iu":
        info = np.iinfo(dst)
        ref = np.clip(np.rint(v.astype(np.float64)), info.min, info.max).astype(dst)
    else:
        ref = v.astype(dst)
    np.testing.assert_array_equal(got, ref)
