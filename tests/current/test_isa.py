"""nki.isa (current API): every documented instruction, checked against NumPy float64 on fresh random inputs."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import trnsim
import trnsim.frontend.current as nki
import trnsim.frontend.current.isa as nisa
import trnsim.frontend.current.language as nl

F32 = np.float32


def run(body, a, b=None, c=None, target=None, lnc=None):
    """Load the array arguments into SBUF, call body(tiles...) -> SBUF tensors, return them as NumPy arrays."""

    def load(x):
        t = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x)
        return t

    @nki.jit
    def k(a, b, c):
        tiles = [load(x) for x in (a, b, c) if isinstance(x, nki.NkiTensor)]
        res = body(*tiles)
        res = res if isinstance(res, tuple) else (res,)
        outs = []
        for r in res:
            if r.buffer == nl.psum:
                s = nl.ndarray(r.shape, dtype=r.dtype, buffer=nl.sbuf)
                nisa.tensor_copy(dst=s, src=r)
                r = s
            o = nl.ndarray(r.shape, dtype=r.dtype, buffer=nl.shared_hbm)
            nisa.dma_copy(dst=o, src=r)
            outs.append(o)
        return tuple(outs)

    kern = k[lnc] if lnc else k
    out, _ = kern.launch(a, b, c, target=target)
    return out if len(out) > 1 else out[0]


def sb(shape, dtype=nl.float32, buffer=nl.sbuf):
    return nl.ndarray(shape, dtype=dtype, buffer=buffer)


def test_all_fifty_instructions_exist():
    assert len(nisa.INSTRUCTIONS) == 50 and len(set(nisa.INSTRUCTIONS)) == 50
    for name in nisa.INSTRUCTIONS:
        assert callable(getattr(nisa, name)), name
    for e, members in (
        (nisa.engine, {"unknown": 0, "tensor": 1, "scalar": 2, "gpsimd": 3, "dma": 4, "vector": 5, "sync": 6}),
        (nisa.dge_mode, {"unknown": 0, "swdge": 1, "hwdge": 2, "none": 3}),
        (nisa.reduce_cmd, {"idle": 0, "reset": 1, "reduce": 2, "reset_reduce": 3, "load_reduce": 4}),
        (nisa.nc_version, {"gen2": 2, "gen3": 3, "gen4": 4}),
        (nisa.dma_engine, {"dma": 1, "gpsimd_dma": 2}),
    ):
        assert {m.name: m.value for m in e} == members
    assert nisa.NkiValidationError is trnsim.NkiValidationError
    assert nisa.constants.oob_mode.skip is nisa.oob_mode.skip


# ------------------------------------------------------------------------------------------ Tensor engine
def test_nc_matmul_accumulation_modes(rng):
    a = rng.standard_normal((128, 96)).astype(F32)
    b = rng.standard_normal((128, 256)).astype(F32)

    def body(x, y):
        ps = sb((96, 256), buffer=nl.psum)
        nisa.nc_matmul(ps, x, y)  # first write of a fresh PSUM tile: overwrite
        nisa.nc_matmul(ps, x, y)  # then accumulate
        ps2 = sb((96, 256), buffer=nl.psum)
        nisa.nc_matmul(ps2, x, y)
        nisa.nc_matmul(ps2, x, y, accumulate=False)
        return ps, ps2

    acc, over = run(body, a, b)
    ref = a.astype(np.float64).T @ b
    np.testing.assert_allclose(acc, 2 * ref, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(over, ref, rtol=1e-4, atol=1e-3)


def test_nc_matmul_bf16_and_double_row_fp8(rng):
    a = rng.standard_normal((128, 2, 64)).astype(ml_dtypes.float8_e4m3)
    b = rng.standard_normal((128, 2, 128)).astype(ml_dtypes.float8_e4m3)

    def body(x, y):
        ps = sb((64, 128), buffer=nl.psum)
        nisa.nc_matmul(ps, x, y, perf_mode=nisa.matmul_perf_mode.double_row)
        return ps

    got = run(body, a, b, target="trn2")
    ref = np.einsum("khm,khn->mn", a.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)


def test_nc_transpose_both_engines(rng):
    a = rng.standard_normal((128, 96)).astype(ml_dtypes.bfloat16)
    s = rng.standard_normal((32, 16)).astype(F32)

    def body_pe(x):
        ps = sb((96, 128), dtype=nl.bfloat16, buffer=nl.psum)
        nisa.nc_transpose(ps, x)
        return ps

    def body_ve(x):
        d = sb((16, 32))
        nisa.nc_transpose(d, x, engine=nisa.engine.vector)
        return d

    np.testing.assert_array_equal(run(body_pe, a), a.T)
    np.testing.assert_array_equal(run(body_ve, s), s.T)


def _mx_dequant(data_u8: np.ndarray, scale_u8: np.ndarray) -> np.ndarray:
    """[K, F, 4] fp8 e4m3fn bytes with per-(8 partitions, column) E8M0 scales in quadrant layout -> [K*4, F]."""
    k, f = data_u8.shape[:2]
    vals = data_u8.view(ml_dtypes.float8_e4m3fn).astype(np.float64)
    rows = np.array([32 * (g // 4) + g % 4 for g in range(k // 8)])
    scales = np.exp2(scale_u8[rows].astype(np.float64) - 127)
    vals = vals * np.repeat(scales, 8, axis=0)[:, :, None]
    return vals.transpose(0, 2, 1).reshape(k * 4, f)


def test_quantize_mx_and_nc_matmul_mx_trn3(rng):
    s = rng.standard_normal((128, 4 * 64)).astype(ml_dtypes.bfloat16)  # stationary values, K=128*4, M=64
    m = rng.standard_normal((128, 4 * 256)).astype(ml_dtypes.bfloat16)

    def body(x, y):
        sq, ss = sb((128, 64), nl.float8_e4m3fn_x4), sb((128, 64), nl.uint8)
        mq, ms = sb((128, 256), nl.float8_e4m3fn_x4), sb((128, 256), nl.uint8)
        nisa.memset(ss, 0)  # rows between the quadrants' scale rows are not written by quantize_mx
        nisa.memset(ms, 0)
        nisa.quantize_mx(dst=sq, src=x, dst_scale=ss)
        nisa.quantize_mx(dst=mq, src=y, dst_scale=ms)
        ps = sb((64, 256), buffer=nl.psum)
        nisa.nc_matmul_mx(ps, sq, mq, ss, ms)
        return ps, sq.view(nl.uint8), ss, mq.view(nl.uint8), ms

    got, sq, ss, mq, ms = run(body, s, m, target="trn3")
    # the quantised data reproduces the input within fp8 precision (scales are powers of two)
    ds = _mx_dequant(sq.reshape(128, 64, 4), ss)
    ref_s = s.astype(np.float64).reshape(128, 64, 4).transpose(0, 2, 1).reshape(512, 64)
    assert np.abs(ds - ref_s).max() <= 0.07 * np.abs(ref_s).max()
    dm = _mx_dequant(mq.reshape(128, 256, 4), ms)
    np.testing.assert_allclose(got, ds.T @ dm, rtol=1e-4, atol=1e-3)
    with pytest.raises(trnsim.NkiUnsupportedError):
        run(body, s, m, target="trn2")


# ------------------------------------------------------------------------------------------ Scalar engine
def test_activation_variants(rng):
    x = rng.uniform(-2, 2, (128, 64)).astype(F32)
    bias = rng.standard_normal((128, 1)).astype(F32)

    def body(t, bb):
        y, r1, r2 = sb((128, 64)), sb((128, 1)), sb((128, 1))
        nisa.activation(y, nl.tanh, t, bias=bb, scale=0.5, reduce_op=nl.add, reduce_res=r1,
                        reduce_cmd=nisa.reduce_cmd.reset_reduce)
        y2 = sb((128, 64))
        nisa.activation_reduce(y2, nl.exp, t, reduce_op=nl.add, reduce_res=r2)
        return y, r1, y2, r2

    y, r1, y2, r2 = run(body, x, bias)
    ref = np.tanh(0.5 * x.astype(np.float64) + bias)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r1[:, 0], ref.sum(1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(r2[:, 0], np.exp(x.astype(np.float64)).sum(1), rtol=1e-5)


def test_activate2_trn3(rng):
    x = rng.standard_normal((64, 32)).astype(F32)

    def body(t):
        y, r = sb((64, 32)), sb((64, 1))
        nisa.activate2(y, nl.relu, t, imm0=2.0, imm1=0.5, op0=nl.multiply, op1=nl.subtract, reduce_op=nl.maximum,
                       reduce_res=r, reduce_cmd=nisa.reduce_cmd.reset_reduce)
        return y, r

    y, r = run(body, x, target="trn3")
    ref = np.maximum(2.0 * x.astype(np.float64) - 0.5, 0)
    np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(r[:, 0], ref.max(1), rtol=1e-6)


# ------------------------------------------------------------------------------------------ Vector engine
def test_vector_elementwise_family(rng):
    x = rng.standard_normal((128, 48)).astype(F32)
    y = rng.uniform(0.5, 2.0, (128, 48)).astype(F32)

    def body(a, b):
        tt, ts, stt, rc = sb((128, 48)), sb((128, 48)), sb((128, 48)), sb((128, 48))
        nisa.tensor_tensor(tt, a, b, nl.multiply)
        nisa.tensor_scalar(ts, a, nl.add, 1.0, op1=nl.multiply, operand1=3.0)
        nisa.scalar_tensor_tensor(stt, a, nl.subtract, 2.0, nl.multiply, b, reverse0=True)
        nisa.reciprocal(rc, b)
        red = sb((128, 1))
        nisa.tensor_reduce(red, nl.maximum, a, axis=1, negate=True)
        cp = sb((128, 48), nl.bfloat16)
        nisa.tensor_copy(cp, a)
        ms = sb((128, 8), nl.int32)
        nisa.memset(ms, 7)
        return tt, ts, stt, rc, red, cp, ms

    tt, ts, stt, rc, red, cp, ms = run(body, x, y)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    np.testing.assert_allclose(tt, x64 * y64, rtol=1e-6)
    np.testing.assert_allclose(ts, (x64 + 1) * 3, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(stt, (2 - x64) * y64, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rc, 1 / y64, rtol=1e-6)
    np.testing.assert_allclose(red[:, 0], -x64.max(1), rtol=1e-6)
    np.testing.assert_array_equal(cp, x.astype(ml_dtypes.bfloat16))
    assert (ms == 7).all()


def test_int32_tensor_tensor_is_exact_on_gpsimd(rng):
    a = rng.integers(2**25, 2**30, (32, 16)).astype(np.int32)
    b = rng.integers(1, 2**20, (32, 16)).astype(np.int32)

    def body(x, y):
        d = sb((32, 16), nl.int32)
        nisa.tensor_tensor(d, x, y, nl.add)
        return d

    np.testing.assert_array_equal(run(body, a, b), a + b)


def test_scans_and_reductions(rng):
    x = rng.uniform(0.5, 1.5, (64, 20)).astype(F32)
    z = rng.standard_normal((64, 20)).astype(F32)

    def body(a, b):
        cum, scan, tsr, rr = sb((64, 20)), sb((64, 20)), sb((64, 20)), sb((64, 1))
        nisa.tensor_scalar_cumulative(cum, a, nl.multiply, nl.add, 2.0)
        nisa.tensor_tensor_scan(scan, a, b, 0.0, nl.multiply, nl.add)
        nisa.tensor_scalar_reduce(tsr, a, nl.add, 1.0, nl.add, rr)
        pr = sb((1, 20))
        nisa.tensor_partition_reduce(pr, nl.add, a)
        return cum, scan, tsr, rr, pr

    cum, scan, tsr, rr, pr = run(body, x, z)
    x64, z64 = x.astype(np.float64), z.astype(np.float64)
    np.testing.assert_allclose(cum, np.cumsum(2 * x64, axis=1), rtol=1e-5)
    ref = np.zeros_like(x64)
    r = np.zeros(64)
    for i in range(20):
        r = x64[:, i] * r + z64[:, i]
        ref[:, i] = r
    np.testing.assert_allclose(scan, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tsr, x64 + 1, rtol=1e-6)
    np.testing.assert_allclose(rr[:, 0], (x64 + 1).sum(1), rtol=1e-5)
    np.testing.assert_allclose(pr[0], x64.sum(0), rtol=1e-5)


def test_exponential_with_running_sum_trn3(rng):
    x = rng.standard_normal((32, 64)).astype(F32)
    mx = rng.standard_normal((32, 1)).astype(F32)

    def body(a, m):
        e, s = sb((32, 64)), sb((32, 1))
        nisa.exponential(e[:, 0:32], a[:, 0:32], max_value=m, reduce_cmd=nisa.reduce_cmd.reset_reduce)
        nisa.exponential(e[:, 32:64], a[:, 32:64], max_value=m, reduce_res=s, reduce_cmd=nisa.reduce_cmd.reduce)
        return e, s

    e, s = run(body, x, mx, target="trn3")
    ref = np.exp(x.astype(np.float64) - mx)
    np.testing.assert_allclose(e, ref, rtol=1e-5)
    np.testing.assert_allclose(s[:, 0], ref.sum(1), rtol=1e-5)


def test_bn_stats_aggr_and_selection_instructions(rng):
    x = rng.standard_normal((64, 32)).astype(F32)
    pred = (rng.random((64, 32)) > 0.5).astype(np.uint8)

    def body(a, p):
        st, ag = sb((64, 6)), sb((64, 2))
        nisa.bn_stats(st, a)
        nisa.bn_aggr(ag, st)
        sel, mx = sb((64, 32)), sb((64, 1))
        nisa.select_reduce(sel, p, a, -100.0, reduce_res=mx, reduce_cmd=nisa.reduce_cmd.reset_reduce)
        cp = sb((64, 32))
        nisa.memset(cp, 0.0)
        nisa.tensor_copy_predicated(cp, a, p)
        lo, hi = sb((64, 1)), sb((64, 1))
        nisa.memset(lo, 4.0)
        nisa.memset(hi, 10.0)
        rs, rmax = sb((64, 32)), sb((64, 1))
        nisa.range_select(rs, a, nl.greater_equal, nl.less, lo, hi, reduce_res=rmax)
        m8 = sb((64, 8))
        nisa.max8(m8, a)
        return ag, sel, mx, cp, rs, rmax, m8

    ag, sel, mx, cp, rs, rmax, m8 = run(body, x, pred)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(ag[:, 0], x64.mean(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ag[:, 1], x64.var(1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(sel, np.where(pred != 0, x64, -100.0))
    np.testing.assert_allclose(mx[:, 0], np.where(pred != 0, x64, -100.0).max(1))
    np.testing.assert_allclose(cp, np.where(pred != 0, x64, 0.0))
    window = np.zeros(32, bool)
    window[4:10] = True
    np.testing.assert_allclose(rmax[:, 0], x64[:, window].max(1), rtol=1e-6)
    assert (rs[:, ~window] < -1e38).all()
    np.testing.assert_allclose(m8, -np.sort(-x64, axis=1)[:, :8], rtol=1e-6)


def test_find_replace_shuffle_dropout(rng):
    x = rng.permutation(64 * 40).reshape(64, 40).astype(F32)
    vals = x[:, [3, 1, 7, 9, 11, 13, 20, 39]].copy()

    def body(a, v):
        idx = sb((64, 8), nl.uint32)
        nisa.nc_find_index8(idx, a, v)
        rep, ridx = sb((64, 40)), sb((64, 8), nl.uint32)
        nisa.nc_match_replace8(rep, a, v, -1.0, dst_idx=ridx)
        sh = sb((32, 40))
        nisa.nc_stream_shuffle(sh, a[0:32, :], list(range(31, -1, -1)))
        d0, d1 = sb((64, 40)), sb((64, 40))
        nisa.dropout(d0, a, 0.0)
        nisa.dropout(d1, a, 1.0)
        return idx, rep, sh, d0, d1

    idx, rep, sh, d0, d1 = run(body, x, vals)
    np.testing.assert_array_equal(idx, np.tile([3, 1, 7, 9, 11, 13, 20, 39], (64, 1)))
    want = x.copy()
    want[:, [3, 1, 7, 9, 11, 13, 20, 39]] = -1
    np.testing.assert_array_equal(rep, want)
    np.testing.assert_array_equal(sh, x[31::-1])
    np.testing.assert_array_equal(d0, x)
    assert (d1 == 0).all()


def test_random_number_instructions(rng):
    seed = np.array([[1234]], dtype=np.uint32)

    def body(s):
        nisa.set_rng_seed(s)
        r1 = sb((128, 16), nl.uint32)
        nisa.rng(r1)
        nisa.set_rng_seed(s)
        r2 = sb((128, 16), nl.uint32)
        nisa.rng(r2)
        st = sb((128, 6), nl.uint32)
        nisa.rand_get_state(st)
        g1 = sb((128, 4), nl.uint16)
        nisa.rng(g1, engine=nisa.engine.gpsimd)
        nisa.rand_set_state(st)
        g2 = sb((128, 4), nl.uint16)
        nisa.rng(g2, engine=nisa.engine.gpsimd)
        u = sb((128, 64))
        nisa.rand2(u, -2.0, 3.0)
        return r1, r2, g1, g2, u

    r1, r2, g1, g2, u = run(body, seed, target="trn3")
    np.testing.assert_array_equal(r1, r2)  # same seed, same sequence
    assert len(np.unique(r1)) > 2000
    np.testing.assert_array_equal(g1, g2)  # state save / restore
    assert u.min() >= -2.0 and u.max() <= 3.0 and abs(float(u.mean()) - 0.5) < 0.2


# ------------------------------------------------------------------------------------------ GpSimd engine
def test_iota_affine_select_gathers(rng):
    x = rng.standard_normal((32, 16)).astype(F32)
    ix = rng.integers(0, 16, (32, 5)).astype(np.uint32)

    def body(a, i):
        io = sb((32, 2, 8), nl.int32)
        nisa.iota(io, pattern=[[100, 2], [1, 8]], offset=5, channel_multiplier=1000)
        tri = sb((32, 16))
        nisa.affine_select(tri, pattern=[[-1, 16]], channel_multiplier=1, on_true_tile=a, on_false_value=-9.0,
                           cmp_op=nl.greater_equal)
        g = sb((32, 5))
        nisa.nc_n_gather(g, a, i)
        return io, tri, g

    io, tri, g = run(body, x, ix)
    p, w, f = np.meshgrid(np.arange(32), np.arange(2), np.arange(8), indexing="ij")
    np.testing.assert_array_equal(io, 5 + 1000 * p + 100 * w + f)
    np.testing.assert_array_equal(tri, np.where(np.tril(np.ones((32, 16), bool)), x, -9.0))
    np.testing.assert_array_equal(g, np.take_along_axis(x, ix.astype(np.int64), axis=1))


def test_local_gather_sequence_bounds_nonzero_topk(rng):
    src = rng.standard_normal((16, 64)).astype(F32)
    idx = rng.integers(0, 60, (16, 2)).astype(np.uint16)
    seg = np.array([[1, 1, 2, 2, 2, 0, 3, 3]], dtype=np.int32)
    nz = (rng.random((32, 12)) > 0.6).astype(np.int32)

    def body(s, i, sg):
        lg = sb((16, 32 * 4))
        nisa.local_gather(lg, s, i, num_elem_per_idx=4)
        bounds = sb((1, 2, 8), nl.int32)
        nisa.sequence_bounds(bounds, sg)
        return lg, bounds

    lg, bounds = run(body, src, idx, seg)
    flat = idx.T.reshape(-1).astype(int)  # the 16-partition group's indices, partition dimension first
    want = np.stack([src[:, j : j + 4] for j in flat], axis=1).reshape(16, -1)
    np.testing.assert_array_equal(lg, want)
    np.testing.assert_array_equal(bounds[0, 0], [0, 0, 2, 2, 2, 8, 6, 6])
    np.testing.assert_array_equal(bounds[0, 1], [2, 2, 5, 5, 5, -1, 8, 8])  # end exclusive

    def body2(a):
        d = sb((32, 13), nl.int32)
        nisa.memset(d, 99)
        nisa.nonzero_with_count(d, a, index_offset=100, padding_val=-1)
        return d

    d = run(body2, nz, target="trn2")
    for r in range(32):
        if r % 16:
            assert (d[r] == 99).all()
        else:
            nzr = np.flatnonzero(nz[r])
            np.testing.assert_array_equal(d[r, : nzr.size], nzr + 100)
            assert (d[r, nzr.size : 12] == -1).all() and d[r, 12] == nzr.size

    vals = rng.permutation(16 * 8).reshape(16, 8).astype(ml_dtypes.bfloat16)

    def body3(v):
        vd, idd = sb((16, 5), nl.bfloat16), sb((16, 5), nl.uint32)
        nisa.topk(vd, idd, v, n=128)
        return vd, idd

    vd, idd = run(body3, vals)
    snake = vals.T.reshape(-1).astype(np.float64)
    top = np.sort(snake)[-5:]
    np.testing.assert_array_equal(vd[0].astype(np.float64), top)
    np.testing.assert_array_equal(snake[idd[3].astype(int)], top)


# ------------------------------------------------------------------------------------------ DMA
def test_dma_instructions(rng):
    a = rng.standard_normal((64, 96)).astype(F32)
    b = rng.standard_normal((64, 96)).astype(F32)

    @nki.jit
    def k(x, y):
        out = nl.ndarray((96, 64), dtype=x.dtype, buffer=nl.shared_hbm)
        s = nl.ndarray((64, 96), dtype=x.dtype, buffer=nl.shared_hbm)
        cast = nl.ndarray((64, 96), dtype=nl.bfloat16, buffer=nl.shared_hbm)
        t = nl.ndarray((96, 64), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_transpose(dst=t, src=x)
        nisa.dma_copy(dst=out, src=t)
        acc = nl.ndarray((64, 96), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=acc, src=x)
        nisa.dma_compute(dst=acc, srcs=[acc, y], reduce_op=nl.add)
        nisa.dma_copy(dst=s, src=acc)
        nisa.dma_copy(dst=cast, src=x)  # fp32 -> bf16 conversion inside the DMA
        return out, s, cast

    out, s, cast = nki.simulate(k)(a, b)
    np.testing.assert_array_equal(out, a.T)
    np.testing.assert_allclose(s, a.astype(np.float64) + b, rtol=1e-6)
    np.testing.assert_array_equal(cast, a.astype(ml_dtypes.bfloat16))


def test_registers_and_device_loops(rng):
    cond = np.array([[3]], dtype=np.int32)

    @nki.jit
    def k(c):
        out = nl.ndarray((1, 4), dtype=nl.int32, buffer=nl.shared_hbm)
        c_sb = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
        nisa.dma_copy(dst=c_sb, src=c)
        r = nisa.register_alloc()
        nisa.register_load(r, c_sb)
        counter = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
        nisa.memset(counter, 0)

        def body(reg):
            nisa.tensor_scalar(counter, counter, nl.add, 1.0)
            nisa.tensor_scalar(c_sb, c_sb, nl.subtract, 1.0)
            nisa.register_load(reg, c_sb)
            return reg

        nl.while_loop(r, body)
        res = nl.ndarray((1, 4), dtype=nl.int32, buffer=nl.sbuf)
        nisa.tensor_copy(res[:, 0:1], counter)
        n = nisa.register_alloc(0)
        for i in nl.dynamic_range(r, 5):  # r is 0 now: 5 iterations
            nisa.register_move(n, i)
        nisa.register_store(res[:, 1:2], n)
        total = nisa.register_alloc(7)
        nisa.register_store(res[:, 2:3], total)
        nisa.register_store(res[:, 3:4], r)
        nisa.dma_copy(dst=out, src=res)
        return out

    with pytest.warns(trnsim.NkiWarning, match="dynamic_range is deprecated"):
        got = nki.simulate(k)(cond)
    np.testing.assert_array_equal(got, [[3, 4, 7, 0]])
