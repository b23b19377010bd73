"""Legacy `nl` reductions (sum / prod / max / min / mean / var / all), softmax, rms_norm and loop_reduce against
float64 NumPy references: axis forms, keepdims, masks, default dtypes, 3-D tiles."""

from __future__ import annotations

import importlib.util
import pathlib

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.language as nl
from trnsim.core.errors import NkiError

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


REDUCE = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min, "mean": np.mean, "var": np.var}


def _reduce_kernel(name, axis, keepdims, out_shape):
    fn = getattr(nl, name)

    def kernel(x):
        out = nl.ndarray(out_shape, dtype=x.dtype, buffer=nl.shared_hbm)
        nl.store(out, fn(nl.load(x), axis=axis, keepdims=keepdims))
        return out

    return kernel


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize(
    "shape,axis",
    [((128, 64), 1), ((128, 64), -1), ((128, 64), [1]), ((64, 4, 16), 2), ((64, 4, 16), (1, 2)), ((32, 2, 3, 8), (2, 3))],
)
@pytest.mark.parametrize("name", sorted(REDUCE))
def test_reductions(name, shape, axis, keepdims, dtype, rng):
    axes = tuple(a % len(shape) for a in (axis if isinstance(axis, (list, tuple)) else (axis,)))
    ref_shape = np.sum(np.zeros(shape), axis=axes, keepdims=keepdims).shape
    lo, hi = (0.8, 1.25) if name == "prod" else (-3, 3)
    x = rng.uniform(lo, hi, size=shape).astype(DT[dtype])
    got = simulate(_reduce_kernel(name, axis, keepdims, ref_shape), x)
    assert got.shape == ref_shape and got.dtype == np.dtype(DT[dtype])
    ref = REDUCE[name](x.astype(np.float64), axis=axes, keepdims=keepdims)
    close(got, ref, dtype, scale=4 if name in ("sum", "mean", "var") and dtype == "float32" else 1)


def test_all_defaults_to_bool_and_reduces_logically(rng):
    seen = []

    def kernel(x):
        out = nl.ndarray((64, 1), dtype=nl.uint8, buffer=nl.shared_hbm)
        r = nl.all(nl.load(x), axis=1, keepdims=True)
        seen.append(r.dtype)
        nl.store(out, r)
        return out

    x = (rng.uniform(size=(64, 8)) > 0.1).astype(np.float32)
    got = simulate(kernel, x)
    assert seen == [np.dtype(bool)]
    np.testing.assert_array_equal(got[:, 0], x.all(axis=1))


def test_mean_and_var_of_integers_default_to_float32(rng):
    seen = []

    def kernel(x):
        out = nl.ndarray((2, 64, 1), dtype=nl.float32, buffer=nl.shared_hbm)
        t = nl.load(x)
        m = nl.mean(t, axis=1, keepdims=True)
        v = nl.var(t, axis=1, keepdims=True)
        s = nl.sum(t, axis=1, keepdims=True)
        seen.extend([m.dtype, v.dtype, s.dtype])
        nl.store(out[0], m)
        nl.store(out[1], v)
        return out

    x = rng.integers(-50, 50, size=(64, 10)).astype(np.int32)
    got = simulate(kernel, x)
    assert seen == [np.dtype(np.float32), np.dtype(np.float32), np.dtype(np.int32)]
    close(got[0, :, 0], x.mean(axis=1), "float32")
    close(got[1, :, 0], x.var(axis=1), "float32", scale=10)


def test_masked_reductions_on_ragged_tile(rng):
    n = 100

    def kernel(x):
        out = nl.ndarray((3, 128, 1), dtype=nl.float32, buffer=nl.shared_hbm)
        i_p, i_f = nl.mgrid[0:128, 0:40]
        t = nl.load(x[i_p, i_f], mask=i_p < n)
        m = (i_p < n) & (i_f < 30)
        i_p1 = nl.arange(128)[:, None]
        i_01 = nl.arange(1)[None, :]
        nl.store(out[0, i_p1, i_01], nl.max(t, axis=1, keepdims=True, mask=m), mask=i_p1 < n)
        nl.store(out[1, i_p1, i_01], nl.mean(t, axis=1, keepdims=True, mask=m), mask=i_p1 < n)
        nl.store(out[2, i_p1, i_01], nl.var(t, axis=1, keepdims=True, mask=m), mask=i_p1 < n)
        return out

    x = rng.standard_normal((n, 40)).astype(np.float32)
    with pytest.warns(Warning, match="never written"):
        got = simulate(kernel, x)
    x64 = x[:, :30].astype(np.float64)
    close(got[0, :n, 0], x64.max(axis=1), "float32")
    close(got[1, :n, 0], x64.mean(axis=1), "float32")
    close(got[2, :n, 0], x64.var(axis=1), "float32", scale=4)
    assert np.isnan(got[:, n:, :]).all()  # rows outside the mask were never written: poison


def test_reduction_over_partition_axis_is_an_error(rng):
    def kernel(x):
        out = nl.ndarray((1, 8), dtype=x.dtype, buffer=nl.shared_hbm)
        nl.store(out, nl.sum(nl.load(x), axis=0))  # <- error
        return out

    with pytest.raises(NkiError) as ei:
        simulate(kernel, rng.standard_normal((16, 8)).astype(np.float32))
    assert ei.value.code == "err_reduce_partition_axis"
    assert ei.value.loc.file == __file__ and "# <- error" in pathlib.Path(__file__).read_text().splitlines()[
        ei.value.loc.line - 1
    ]


# ------------------------------------------------------------------------------------------------ softmax / rms_norm
def _softmax(x, axes):
    e = np.exp(x - x.max(axis=axes, keepdims=True))
    return e / e.sum(axis=axes, keepdims=True)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape,axis", [((128, 96), 1), ((64, 4, 16), 2), ((64, 4, 16), (1, 2))])
def test_softmax(shape, axis, dtype, rng):
    def kernel(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        nl.store(out, nl.softmax(nl.load(x), axis=axis))
        return out

    x = (rng.standard_normal(shape) * 3).astype(DT[dtype])
    got = simulate(kernel, x)
    axes = axis if isinstance(axis, tuple) else (axis,)
    close(got, _softmax(x.astype(np.float64), axes), dtype)


def test_softmax_compute_dtype_sets_intermediate_and_result_dtype(rng):
    seen = []

    def kernel(x):
        out = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.shared_hbm)
        r = nl.softmax(nl.load(x), axis=1, compute_dtype=nl.bfloat16)
        seen.append(r.dtype)
        nl.store(out, r)
        return out

    x = rng.standard_normal((32, 64)).astype(np.float32)
    got = simulate(kernel, x)
    assert seen == [np.dtype(BF16)]
    close(got, _softmax(x.astype(np.float64), (1,)), "bfloat16")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("wshape", [(1, 64), (128, 64)])
def test_rms_norm(wshape, dtype, rng):
    eps = 1e-5

    def kernel(x, w):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        nl.store(out, nl.rms_norm(nl.load(x), nl.load(w), axis=1, n=64, epsilon=eps))
        return out

    x = rng.standard_normal((128, 64)).astype(DT[dtype])
    w = rng.uniform(0.5, 1.5, size=wshape).astype(DT[dtype])
    got = simulate(kernel, x, w)
    x64 = x.astype(np.float64)
    ref = x64 / np.sqrt((x64**2).mean(axis=1, keepdims=True) + eps) * w.astype(np.float64)
    close(got, ref, dtype)


def test_rms_norm_count_n_and_mask(rng):
    """n is the count the mean divides by (e.g. a hidden size split over several tiles)."""
    n_rows = 90

    def kernel(x, w):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        i_p, i_f = nl.mgrid[0:128, 0:32]
        t = nl.load(x[i_p, i_f], mask=i_p < n_rows)
        r = nl.rms_norm(t, nl.load(w), axis=1, n=128, mask=i_p < n_rows)
        nl.store(out[i_p, i_f], r, mask=i_p < n_rows)
        return out

    x = rng.standard_normal((n_rows, 32)).astype(np.float32)
    w = rng.uniform(0.5, 1.5, size=(1, 32)).astype(np.float32)
    got = simulate(kernel, x, w)
    x64 = x.astype(np.float64)
    close(got, x64 / np.sqrt((x64**2).sum(axis=1, keepdims=True) / 128 + 1e-6) * w, "float32")


# ------------------------------------------------------------------------------------------------ loop_reduce
@pytest.mark.parametrize("op,ref", [(np.add, np.sum), (nl.maximum, np.max), (np.minimum, np.min)])
def test_loop_reduce_accumulates_into_the_assigned_tile(op, ref, rng):
    def kernel(x):
        out = nl.ndarray((128, 32), dtype=nl.float32, buffer=nl.shared_hbm)
        acc = nl.full((128, 32), -1.0e30 if ref is np.max else (1.0e30 if ref is np.min else 0.0), dtype=nl.float32)
        for k in nl.affine_range(x.shape[0] // 128):
            t = nl.load(x[k * 128 : (k + 1) * 128, :])
            acc = nl.loop_reduce(t, op=op, loop_indices=[k], dtype=nl.float32)
        nl.store(out, acc)
        return out

    x = rng.standard_normal((512, 32)).astype(np.float32)
    got = simulate(kernel, x)
    close(got, ref(x.reshape(4, 128, 32).astype(np.float64), axis=0), "float32")


def test_loop_reduce_without_accumulator_is_an_error(rng):
    def kernel(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        nl.store(out, nl.loop_reduce(nl.load(x), op=np.add, loop_indices=[0]))  # <- error
        return out

    with pytest.raises(NkiError) as ei:
        simulate(kernel, rng.standard_normal((16, 8)).astype(np.float32))
    assert ei.value.code == "err_loop_reduce_without_accumulator"
    assert ei.value.loc.file == __file__


# ------------------------------------------------------------------------------------------------ properties
@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from(["sum", "max", "min", "mean"]),
    st.integers(1, 128),
    st.integers(1, 6),
    st.integers(1, 24),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_property_reductions(name, p, a, b, keepdims, seed):
    g = np.random.default_rng(seed)
    x = (g.standard_normal((p, a, b)) * 5).astype(np.float32)
    axis = (1, 2) if seed % 2 else 2
    ref = REDUCE[name](x.astype(np.float64), axis=axis, keepdims=keepdims)
    got = simulate(_reduce_kernel(name, axis, keepdims, ref.shape), x)
    close(got, ref, "float32", scale=4)
