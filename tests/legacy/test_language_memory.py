"""Legacy `nl` creation, data movement, gathers / atomics, constants, and the `nki.tensor` methods and
assignment forms, against NumPy references; poison values of unwritten outputs."""

from __future__ import annotations

import importlib.util
import pathlib
import warnings

import ml_dtypes
import numpy as np
import pytest

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.language as nl
import trnsim.frontend.legacy.typing as nt
from trnsim.core.errors import NkiError, NkiWarning

_spec = importlib.util.spec_from_file_location("_lang_root_conftest", pathlib.Path(__file__).parents[1] / "conftest.py")
_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root)
TOL = _root.TOLERANCES
BF16 = ml_dtypes.bfloat16


def simulate(kernel, *args, grid=None):
    k = nki.jit(kernel)
    return nki.simulate_kernel(k[grid] if grid is not None else k, *args)


def close(got, ref, dtype_name, scale=1.0):
    tol = TOL[dtype_name]
    np.testing.assert_allclose(
        np.asarray(got, dtype=np.float64), ref, rtol=tol["rtol"] * scale, atol=tol["atol"] * scale
    )


# ------------------------------------------------------------------------------------------------ creation
def test_creation_functions(rng):
    v = float(rng.uniform(1, 9))

    def kernel(x):
        out = nl.ndarray((6, 32, 16), dtype=nl.float32, buffer=nl.shared_hbm)
        t = nl.load(x)
        nl.store(out[0], nl.zeros((32, 16), dtype=nl.float32))
        nl.store(out[1], nl.ones((32, 16), dtype=nl.bfloat16))
        nl.store(out[2], nl.full((32, 16), v, dtype=nl.float32))
        nl.store(out[3], nl.zeros_like(t))
        nl.store(out[4], nl.ones_like(t, dtype=nl.int32))
        e = nl.empty_like(t)
        e[...] = nl.add(t, 1.0)
        nl.store(out[5], e)
        return out

    x = rng.standard_normal((32, 16)).astype(np.float32)
    got = simulate(kernel, x)
    ref = np.stack([np.zeros_like(x), np.ones_like(x), np.full_like(x, v), np.zeros_like(x), np.ones_like(x), x + 1])
    close(got, ref, "float32")


def test_par_dim_with_leading_block_dims(rng):
    def kernel(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        buf = nl.ndarray((4, nl.par_dim(128), 32), dtype=nl.float32, buffer=nl.sbuf)
        for b in nl.affine_range(4):
            buf[b] = nl.load(x[b])
        for b in nl.affine_range(4):
            nl.store(out[b], nl.multiply(buf[b], 2.0))
        return out

    x = rng.standard_normal((4, 128, 32)).astype(np.float32)
    close(simulate(kernel, x), 2 * x.astype(np.float64), "float32")


def test_par_dim_at_front_and_tile_sizes():
    seen = {}

    def kernel(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        t = nl.ndarray((nl.par_dim(nl.tile_size.pmax), 8), dtype=nl.float32)
        t[...] = nl.load(x)
        seen["shape"] = t.shape
        seen["sizes"] = (
            nl.tile_size.pmax,
            nl.tile_size.psum_fmax,
            nl.tile_size.gemm_stationary_fmax,
            nl.tile_size.gemm_moving_fmax,
            nl.tile_size.bn_stats_fmax,
            nl.tile_size.total_available_sbuf_size,
        )
        nl.store(out, t)
        return out

    x = np.arange(128 * 8, dtype=np.float32).reshape(128, 8)
    np.testing.assert_array_equal(simulate(kernel, x), x)
    assert seen["shape"] == (128, 8)
    assert seen["sizes"] == (128, 512, 128, 512, 512, 212984)  # trn2 (gen3) by default
    assert nl.fp32.min == np.float32(-3.4028235e38) and np.isneginf(nl.bfp16.min)
    assert repr(nl.par_dim(64)) == "par_dim(64)"


# ------------------------------------------------------------------------------------------------ movement
@pytest.mark.parametrize("dtype", [np.float32, BF16, np.float16, np.int32])
def test_load_store_copy_and_load_dtype(dtype, rng):
    def kernel(x):
        out = nl.ndarray((3,) + x.shape, dtype=nl.float32, buffer=nl.shared_hbm)
        t = nl.load(x)
        nl.store(out[0], t)
        nl.store(out[1], nl.copy(t, dtype=nl.float32))
        nl.store(out[2], nl.load(x, dtype=nl.float32))
        return out

    x = (rng.standard_normal((64, 24)) * 100).astype(dtype)
    got = simulate(kernel, x)
    for i in range(3):
        np.testing.assert_array_equal(got[i], x.astype(np.float32))


def test_store_from_psum_and_load_transpose2d(rng):
    def kernel(a, b):
        out = nl.ndarray((64, 48), dtype=nl.float32, buffer=nl.shared_hbm)
        out2 = nl.ndarray((40, 64), dtype=nl.float32, buffer=nl.shared_hbm)
        at = nl.load_transpose2d(a)  # [48, 64] -> [64, 48]
        nl.store(out, at)
        p = nl.matmul(nl.load(b), nl.load(a), transpose_x=True)  # b [K=48, M=40], a [K=48, N=64] -> PSUM [40, 64]
        nl.store(out2, p)
        return out, out2

    a = rng.standard_normal((48, 64)).astype(np.float32)
    b = rng.standard_normal((48, 40)).astype(np.float32)
    got, got2 = simulate(kernel, a, b)
    close(got, a.T.astype(np.float64), "float32")
    close(got2, b.T.astype(np.float64) @ a, "float32", scale=10)


def test_matmul_and_transpose(rng):
    def kernel(x, y):
        out = nl.ndarray((3, 64, 64), dtype=nl.float32, buffer=nl.shared_hbm)
        xt, yt = nl.load(x), nl.load(y)
        nl.store(out[0], nl.matmul(xt, yt))  # x [64, 32] @ y [32, 64]
        nl.store(out[1], nl.matmul(nl.transpose(xt), yt, transpose_x=True))  # PSUM operand copied to SBUF
        acc = nl.zeros((64, 64), dtype=nl.float32, buffer=nl.psum)
        for _ in nl.affine_range(2):
            acc += nl.matmul(xt, yt)
        nl.store(out[2], acc)
        return out

    x = rng.standard_normal((64, 32)).astype(np.float32)
    y = rng.standard_normal((32, 64)).astype(np.float32)
    got = simulate(kernel, x, y)
    ref = x.astype(np.float64) @ y
    close(got, np.stack([ref, ref, 2 * ref]), "float32", scale=10)


def test_broadcast_to_partition_broadcast(rng):
    def kernel(x):
        out = nl.ndarray((2, 96, 16), dtype=nl.float32, buffer=nl.shared_hbm)
        row = nl.load(x)
        nl.store(out[0], nl.broadcast_to(row, shape=(96, 16)))
        nl.store(out[1], nl.load(x).broadcast_to((96, 16)))
        return out

    x = rng.standard_normal((1, 16)).astype(np.float32)
    got = simulate(kernel, x)
    np.testing.assert_array_equal(got, np.broadcast_to(x, (2, 96, 16)))


@pytest.mark.parametrize("shape", [(128, 64), (64, 4, 8)])
def test_gather_flattened(shape, rng):
    n = int(np.prod(shape[1:]))

    def kernel(data, idx):
        out = nl.ndarray(idx.shape, dtype=data.dtype, buffer=nl.shared_hbm)
        nl.store(out, nl.gather_flattened(nl.load(data), nl.load(idx)))
        return out

    data = rng.standard_normal(shape).astype(np.float32)
    idx = rng.integers(0, n, size=shape).astype(np.uint32)
    got = simulate(kernel, data, idx)
    ref = np.take_along_axis(data.reshape(shape[0], -1), idx.reshape(shape[0], -1).astype(np.int64), axis=1)
    np.testing.assert_array_equal(got, ref.reshape(shape))


def test_gather_flattened_doc_example():
    data = np.array([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]], dtype=np.float32)
    idx = np.array([[[0, 1], [1, 3]], [[3, 3], [1, 0]]], dtype=np.uint32)

    def kernel(d, i):
        out = nl.ndarray(i.shape, dtype=d.dtype, buffer=nl.shared_hbm)
        nl.store(out, nl.gather_flattened(nl.load(d), nl.load(i)))
        return out

    got = simulate(kernel, data, idx)
    np.testing.assert_array_equal(got, [[[1, 2], [2, 4]], [[8, 8], [6, 5]]])


def test_atomic_rmw_with_repeated_indices_histogram(rng):
    bins, n = 24, 512

    def kernel(values, counts: nt.mutable_tensor):
        for off in nl.affine_range(0, n, step=128):
            b = nl.load(values[off : off + 128, :])
            ones = nl.full((128, 1), 1, dtype=nl.int32)
            nl.atomic_rmw(counts[b, :], value=ones, op=np.add)
        return counts

    values = rng.integers(0, bins, size=(n, 1)).astype(np.int32)
    got = simulate(kernel, values, np.zeros((bins, 1), dtype=np.int32))
    np.testing.assert_array_equal(got[:, 0], np.bincount(values[:, 0], minlength=bins))


def test_atomic_rmw_indirect_rows(rng):
    def kernel(base, idx, val):
        out = nl.ndarray(base.shape, dtype=base.dtype, buffer=nl.shared_hbm)
        nl.store(out, nl.load(base))
        ix = nl.arange(64)[None, :]
        nl.atomic_rmw(out[nl.load(idx), ix], value=nl.load(val), op=nl.add)
        return out

    base = rng.standard_normal((128, 64)).astype(np.float32)
    idx = rng.permutation(128).astype(np.int32)[:, None]
    val = rng.standard_normal((128, 64)).astype(np.float32)
    ref = base.astype(np.float64).copy()
    ref[idx[:, 0]] += val
    close(simulate(kernel, base, idx, val), ref, "float32")


def test_shared_constant_and_identity(rng):
    const = rng.standard_normal((16, 8))
    ids = []

    def kernel(x):
        out = nl.ndarray((3, 16, 16), dtype=nl.float32, buffer=nl.shared_hbm)
        c = nl.shared_constant(const, dtype=nl.bfloat16)
        i1 = nl.shared_identity_matrix(16, dtype=nl.float32)
        i2 = nl.shared_identity_matrix(16, dtype=nl.float32)
        ids.append(i1 is i2)
        nl.store(out[0, :, 0:8], nl.load(c))
        nl.store(out[0, :, 8:16], nl.load(x))
        nl.store(out[1], nl.load(i1))
        nl.store(out[2], nl.load(nl.shared_identity_matrix(16)))  # default uint8
        return out

    x = rng.standard_normal((16, 8)).astype(np.float32)
    got = simulate(kernel, x)
    np.testing.assert_array_equal(got[0, :, :8], const.astype(np.float32).astype(BF16).astype(np.float32))
    np.testing.assert_array_equal(got[1], np.eye(16))
    np.testing.assert_array_equal(got[2], np.eye(16))
    assert ids == [True]


# ------------------------------------------------------------------------------------------------ tensor methods
def test_tensor_methods(rng):
    def kernel(x):
        out = nl.ndarray((4, 32, 16), dtype=nl.float32, buffer=nl.shared_hbm)
        t = nl.load(x.reshape((32, 16)))  # HBM reshape (a view)
        t.assert_shape((32, 16))
        nl.store(out[0], t.reshape((32, 4, 4)).reshape((32, 16)))
        nl.store(out[1], t.astype(nl.bfloat16))
        nl.store(out[2], t.view(nl.int32).view(nl.float32))
        e = nl.expand_dims(t, 2)  # [32, 16, 1]
        nl.store(out[3], nl.multiply(e, 2.0).reshape((32, 16)))
        return out

    x = rng.standard_normal((32, 4, 4)).astype(np.float32)
    got = simulate(kernel, x)
    flat = x.reshape(32, 16)
    np.testing.assert_array_equal(got[0], flat)
    np.testing.assert_array_equal(got[1], flat.astype(BF16).astype(np.float32))
    np.testing.assert_array_equal(got[2], flat)
    np.testing.assert_array_equal(got[3], 2 * flat)


def test_assert_shape_and_expand_dims_errors(rng):
    def bad_assert(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        t = nl.load(x)
        t.assert_shape((8, 8))
        nl.store(out, t)
        return out

    with pytest.raises(NkiError) as ei:
        simulate(bad_assert, rng.standard_normal((16, 8)).astype(np.float32))
    assert ei.value.code == "err_annotation_shape_mismatch"

    def bad_expand(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        nl.store(out, nl.expand_dims(nl.load(x), 0))
        return out

    with pytest.raises(NkiError) as ei:
        simulate(bad_expand, rng.standard_normal((16, 8)).astype(np.float32))
    assert ei.value.code == "err_unsupported_expand_dims_axis"


def test_assignment_forms(rng):
    def kernel(x, y):
        out = nl.ndarray((4, 32, 16), dtype=nl.float32, buffer=nl.shared_hbm)
        a, b = nl.load(x), nl.load(y)
        acc = nl.zeros((32, 16), dtype=nl.float32)
        acc[...] += a
        acc += b
        acc[...] -= 1.0
        nl.store(out[0], acc)
        buf = nl.ndarray((32, 16), dtype=nl.bfloat16)
        buf[...] = nl.exp(a)  # retargeted into a bf16 tile
        nl.store(out[1], buf)
        half = nl.zeros((32, 16), dtype=nl.float32)
        half[:, 0:8] = b[:, 8:16]
        half[:, 8:16] = 2.5
        nl.store(out[2], half)
        i_p, i_f = nl.mgrid[0:32, 0:16]
        c = nl.zeros((32, 16), dtype=nl.float32)
        c[i_p, i_f] += nl.multiply(a, b)
        c[i_p, i_f] *= 2.0
        nl.store(out[3], c)
        return out

    x = rng.standard_normal((32, 16)).astype(np.float32)
    y = rng.standard_normal((32, 16)).astype(np.float32)
    got = simulate(kernel, x, y)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    close(got[0], x64 + y64 - 1, "float32")
    close(got[1], np.exp(x64), "bfloat16")
    np.testing.assert_array_equal(got[2, :, :8], y[:, 8:])
    np.testing.assert_array_equal(got[2, :, 8:], 2.5)
    close(got[3], 2 * x64 * y64, "float32")


# ------------------------------------------------------------------------------------------------ poison
def test_unwritten_output_is_poisoned_and_warned(rng):
    def kernel(x):
        out = nl.ndarray((128, 16), dtype=nl.float32, buffer=nl.shared_hbm)
        iout = nl.ndarray((128, 16), dtype=nl.int32, buffer=nl.shared_hbm)
        t = nl.load(x)
        nl.store(out[0:100, :], t[0:100, :])
        nl.store(iout[0:64, :], nl.copy(t[0:64, :], dtype=nl.int32))
        return out, iout

    x = rng.standard_normal((128, 16)).astype(np.float32)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always", NkiWarning)
        got, igot = simulate(kernel, x)
    np.testing.assert_array_equal(got[:100], x[:100])
    assert np.isnan(got[100:]).all()
    assert (igot[64:] == np.iinfo(np.int32).min).all()
    msgs = [str(m.message) for m in w if issubclass(m.category, NkiWarning)]
    assert any("warn_output_partially_written" in m and "'out'" in m for m in msgs)
    assert any("warn_output_partially_written" in m and "'iout'" in m for m in msgs)


def test_reading_unwritten_tile_warns_with_the_reading_line(rng):
    def kernel(x):
        out = nl.ndarray((16, 8), dtype=nl.float32, buffer=nl.shared_hbm)
        t = nl.ndarray((16, 8), dtype=nl.float32)
        t[0:8, :] = nl.load(x[0:8, :])
        nl.store(out, nl.exp(t))  # <- reads uninitialised rows
        return out

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always", NkiWarning)
        got = simulate(kernel, rng.standard_normal((16, 8)).astype(np.float32))
    assert np.isnan(got[8:]).all()
    hits = [m for m in w if "warn_uninitialized_read" in str(m.message)]
    assert hits and hits[0].filename == __file__
    assert "reads uninitialised rows" in pathlib.Path(__file__).read_text().splitlines()[hits[0].lineno - 1]


def test_assignment_between_buffers(rng):
    """HBM -> SBUF, SBUF -> PSUM accumulation and PSUM -> HBM (through SBUF) by plain assignment."""

    def kernel(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        s = nl.ndarray(x.shape, dtype=nl.float32)
        s[...] = x
        p = nl.zeros(x.shape, dtype=nl.float32, buffer=nl.psum)
        p[...] += s
        p[...] += nl.exp(s)
        out[...] = p
        return out

    x = rng.standard_normal((64, 32)).astype(np.float32)
    close(simulate(kernel, x), x + np.exp(x.astype(np.float64)), "float32")
