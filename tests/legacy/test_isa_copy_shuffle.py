"""Legacy nisa data-movement instructions on the Vector engine: nc_stream_shuffle (G1 order src, dst, mask),
tensor_copy_predicated, tensor_copy_dynamic_src / tensor_copy_dynamic_dst.

These are copies: results must be bit exact (same dtype), compared against NumPy indexing references on fresh
random inputs, for fp32 and bf16.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl
from trnsim.core.errors import NkiError
from trnsim.core.launch import last_launch
from trnsim.testing import expect_kernel_error

BF16 = ml_dtypes.bfloat16
DTYPES = pytest.mark.parametrize("dt", [np.float32, BF16], ids=["fp32", "bf16"])


def _expect_error(fn, args, code: str, needle: str = "# BAD") -> NkiError:
    return expect_kernel_error(fn, *args, code=code, at=needle, runner=nki.simulate_kernel)


# ------------------------------------------------------------------------------------------ nc_stream_shuffle
@DTYPES
def test_stream_shuffle_in_place_rotation(rng, dt):
    """AWS's example: partition i receives partition (i - 1) % 32, in place."""

    def k(in_tensor, out_tensor):
        a = nl.load(in_tensor)
        g = nl.mgrid[0:32, 0:128]
        shuffle_mask = [(i - 1) % 32 for i in range(32)]
        nisa.nc_stream_shuffle(src=a[g.p, g.x], dst=a[g.p, g.x], shuffle_mask=shuffle_mask)
        nl.store(out_tensor, value=a)

    x = rng.standard_normal((32, 128)).astype(dt)
    out = np.zeros_like(x)
    nki.simulate_kernel(k, x, out)
    np.testing.assert_array_equal(out, x[[(i - 1) % 32 for i in range(32)]])


@DTYPES
def test_stream_shuffle_quadrants_keep_entries_and_mask(rng, dt):
    perm = [int(v) for v in rng.permutation(32)]
    perm[3] = perm[17] = 255  # leave these destination partitions untouched

    @nki.jit
    def k(a, b):
        out = nl.ndarray((2,) + b.shape, dtype=b.dtype, buffer=nl.shared_hbm)
        src = nl.load(a)
        d1 = nl.load(b)
        d2 = nl.load(b)
        nisa.nc_stream_shuffle(src, d1, perm)  # G1 positional order: src, dst, shuffle_mask
        i_p = nl.arange(96)[:, None]
        i_f = nl.arange(40)[None, :]
        nisa.nc_stream_shuffle(src, d2, perm, mask=(i_f < 25))
        del i_p
        nl.store(out[0], d1)
        nl.store(out[1], d2)
        return out

    a = rng.standard_normal((96, 40)).astype(dt)
    b = rng.standard_normal((96, 40)).astype(dt)
    out = nki.simulate_kernel(k, a, b)
    ref = b.copy()
    for d in range(96):
        m = perm[d % 32]
        if m != 255:
            ref[d] = a[(d // 32) * 32 + m]
    np.testing.assert_array_equal(out[0], ref)
    masked = b.copy()
    masked[:, :25] = ref[:, :25]
    np.testing.assert_array_equal(out[1], masked)
    ins = [i for i in last_launch().stream if i.opcode == "STREAM_SHUFFLE"][0]
    assert ins.engine == "Vector"


def test_stream_shuffle_errors(rng):
    a = rng.standard_normal((64, 16)).astype(np.float32)
    ident = list(range(32))

    def dtype_mismatch(x):
        t = nl.load(x)
        d = nl.ndarray(x.shape, dtype=nl.bfloat16, buffer=nl.sbuf)
        nisa.nc_stream_shuffle(t, d, ident)  # BAD

    def bad_entry(x):
        t = nl.load(x)
        nisa.nc_stream_shuffle(t, t, [40] + ident[1:])  # BAD

    def short_mask(x):
        t = nl.load(x)
        nisa.nc_stream_shuffle(t, t, ident[:16])  # BAD

    def bad_start(x):
        t = nl.load(x)
        nisa.nc_stream_shuffle(t[16:48], t[16:48], ident)  # BAD

    _expect_error(dtype_mismatch, (a,), "err_unsupported_dtype")
    _expect_error(bad_entry, (a,), "err_invalid_operand")
    _expect_error(short_mask, (a,), "err_invalid_operand")
    _expect_error(bad_start, (a,), "err_unsupported_start_partition")


# ------------------------------------------------------------------------------------------ tensor_copy_predicated
@DTYPES
def test_tensor_copy_predicated(rng, dt):
    @nki.jit
    def k(pred, on_true, on_false):
        out = nl.ndarray((3,) + on_true.shape, dtype=on_true.dtype, buffer=nl.shared_hbm)
        p = nl.load(pred)
        src = nl.load(on_true)
        d1 = nl.load(on_false)
        d2 = nl.load(on_false)
        d3 = nl.load(on_false)
        nisa.tensor_copy_predicated(src=src, dst=d1, predicate=p)
        nisa.tensor_copy_predicated(src=src, dst=d2, predicate=p, reverse_pred=True)
        nisa.tensor_copy_predicated(src=7.0, dst=d3, predicate=p)
        nl.store(out[0], d1)
        nl.store(out[1], d2)
        nl.store(out[2], d3)
        return out

    a = rng.standard_normal((128, 256)).astype(dt)
    b = rng.standard_normal((128, 256)).astype(dt)
    pred = np.less_equal(a.astype(np.float32), 0.3).astype(np.uint8)
    out = nki.simulate_kernel(k, pred, a, b)
    np.testing.assert_array_equal(out[0], np.where(pred != 0, a, b))
    np.testing.assert_array_equal(out[1], np.where(pred == 0, a, b))
    np.testing.assert_array_equal(out[2], np.where(pred != 0, dt(7.0), b))
    ins = [i for i in last_launch().stream if i.opcode == "COPY_PREDICATED"][0]
    arch = last_launch().arch
    # both inputs in SBUF: max(MIN_II, 2N) Vector cycles
    assert ins.spec.cost(ins, arch) == pytest.approx(2 * 256 / arch.clock_ghz["Vector"])


def test_tensor_copy_predicated_errors(rng):
    a = rng.standard_normal((32, 64)).astype(np.float32)
    pf = rng.random((32, 64)).astype(np.float32)
    pi = (rng.random((32, 64)) < 0.5).astype(np.int32)

    def float_pred(x, p):
        t = nl.load(x)
        nisa.tensor_copy_predicated(src=t, dst=t, predicate=nl.load(p))  # BAD

    def signed_pred(x, p):
        t = nl.load(x)
        nisa.tensor_copy_predicated(src=t, dst=t, predicate=nl.load(p))  # BAD

    def dtype_mismatch(x, p):
        t = nl.load(x)
        d = nl.ndarray(x.shape, dtype=nl.bfloat16, buffer=nl.sbuf)
        nisa.tensor_copy_predicated(src=t, dst=d, predicate=nl.load(p))  # BAD

    _expect_error(float_pred, (a, pf), "err_unsupported_dtype")
    _expect_error(signed_pred, (a, pi), "err_unsupported_dtype")
    _expect_error(dtype_mismatch, (a, (pf < 0.5).astype(np.uint8)), "err_unsupported_dtype")


# ------------------------------------------------------------------------------------------ dynamic copies
@DTYPES
def test_tensor_copy_dynamic_src_gathers_columns(rng, dt):
    """AWS's example pattern: out[:, b] = in[:, idx[0, b]] with the offset read from SBUF at run time."""

    @nki.jit
    def k(in_tensor, idx_tensor):
        out_tensor = nl.ndarray([128, 64], dtype=in_tensor.dtype, buffer=nl.shared_hbm)
        ix, iy = nl.mgrid[0:128, 0:1]
        in_sbuf = nl.load(in_tensor)
        idx_sbuf = nl.load(idx_tensor)
        out_sbuf = nl.ndarray([128, 64], dtype=in_tensor.dtype, buffer=nl.sbuf)
        for b_idx in nl.affine_range(idx_sbuf.shape[1]):
            out_sbuf[ix, b_idx] = nisa.tensor_copy_dynamic_src(in_sbuf[ix, idx_sbuf[0, b_idx] + iy])
        nl.store(out_tensor, value=out_sbuf)
        return out_tensor

    x = rng.standard_normal((128, 512)).astype(dt)
    idx = rng.integers(0, 512, (1, 64)).astype(np.int32)
    out = nki.simulate_kernel(k, x, idx)
    np.testing.assert_array_equal(out, np.take(x, idx[0], axis=1))
    recs = [i for i in last_launch().stream if i.opcode == "TENSOR_COPY_DYNAMIC"]
    assert len(recs) == 64
    assert any(a.storage.name == "idx_sbuf" for a in recs[0].reads)  # the offset tile is a recorded input
    arch = last_launch().arch
    assert recs[0].spec.cost(recs[0], arch) == pytest.approx(600 / arch.clock_ghz["Vector"])


def test_tensor_copy_dynamic_src_3d_and_dynamic_dst(rng):
    @nki.jit
    def k(in_tensor, idx_tensor):
        gathered = nl.ndarray([128, 8, 4], dtype=in_tensor.dtype, buffer=nl.shared_hbm)
        scattered = nl.ndarray([128, 16, 4], dtype=in_tensor.dtype, buffer=nl.shared_hbm)
        ix, iy, iz = nl.mgrid[0:128, 0:1, 0:4]
        src = nl.load(in_tensor)
        idx = nl.load(idx_tensor)
        g = nl.ndarray([128, 8, 4], dtype=in_tensor.dtype, buffer=nl.sbuf)
        s = nl.zeros([128, 16, 4], dtype=in_tensor.dtype, buffer=nl.sbuf)
        for b in nl.affine_range(8):
            g[ix, b, iz] = nisa.tensor_copy_dynamic_src(src[ix, idx[0, b], iz])
        for b in nl.sequential_range(8):
            nisa.tensor_copy_dynamic_dst(dst=s[ix, idx[0, b] + iy, iz], src=g[ix, b, iz], engine=nisa.gpsimd_engine)
        nl.store(gathered, g)
        nl.store(scattered, s)
        return gathered, scattered

    x = rng.standard_normal((128, 16, 4)).astype(np.float32)
    idx = rng.permutation(16)[:8].astype(np.int32)[None, :]
    g, s = nki.simulate_kernel(k, x, idx)
    np.testing.assert_array_equal(g, x[:, idx[0], :])
    ref = np.zeros_like(x)
    ref[:, idx[0], :] = x[:, idx[0], :]
    np.testing.assert_array_equal(s, ref)
    engines = {i.engine for i in last_launch().stream if i.opcode == "TENSOR_COPY_DYNAMIC"}
    assert engines == {"Vector", "GpSimd"}


def test_tensor_copy_dynamic_errors(rng):
    x = rng.standard_normal((128, 32)).astype(np.float32)

    def out_of_bounds(a, i):
        ix, iy = nl.mgrid[0:128, 0:1]
        t = nl.load(a)
        it = nl.load(i)
        nisa.tensor_copy_dynamic_src(t[ix, it[0, 0] + iy])  # BAD

    def float_offset(a, i):
        ix = nl.arange(128)[:, None]
        t = nl.load(a)
        it = nl.load(i)
        nisa.tensor_copy_dynamic_src(t[ix, it[0:1, 0:1]])  # BAD

    def gpsimd_psum(a, i):
        ix, iy = nl.mgrid[0:128, 0:1]
        p = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.psum)
        p[...] = nl.load(a)
        it = nl.load(i)
        nisa.tensor_copy_dynamic_src(p[ix, it[0, 0] + iy], engine=nisa.gpsimd_engine)  # BAD

    _expect_error(out_of_bounds, (x, np.array([[40]], dtype=np.int32)), "err_tensor_access_out_of_bound")
    _expect_error(float_offset, (x, np.array([[3.0]], dtype=np.float32)), "err_unsupported_dtype")
    _expect_error(gpsimd_psum, (x, np.array([[3]], dtype=np.int32)), "err_unsupported_memory")
