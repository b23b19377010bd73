"""Legacy nisa Vector-engine compute instructions: tensor_tensor_scan, scalar_tensor_tensor, bn_stats/bn_aggr,
dropout, max8, nc_find_index8, nc_match_replace8, plus tensor_scalar engine rules and tensor_reduce axis rules.

References are independent float64 (or exact integer) NumPy computations on fresh random inputs.
Tolerances: fp32 outputs rtol 1e-5 (scans: 1e-5 relative to the running magnitude), bf16 outputs one bf16 ulp
(rtol/atol 2^-7); statistics (mean/variance) rtol 1e-5 in fp32.
"""

from __future__ import annotations

import warnings

import ml_dtypes
import numpy as np
import pytest

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl
from trnsim.core.errors import NkiError, NkiWarning
from trnsim.core.launch import last_launch
from trnsim.testing import expect_kernel_error

BF16 = ml_dtypes.bfloat16
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), BF16: dict(rtol=2**-7, atol=2**-7)}
DTYPES = pytest.mark.parametrize("dt", [np.float32, BF16], ids=["fp32", "bf16"])


def _expect_error(fn, args, code: str, needle: str = "# BAD") -> NkiError:
    return expect_kernel_error(fn, *args, code=code, at=needle, runner=nki.simulate_kernel)


# ------------------------------------------------------------------------------------------ tensor_tensor_scan
@DTYPES
@pytest.mark.parametrize(
    "ops,rev",
    [(("multiply", "add"), (False, False)), (("subtract", "maximum"), (True, False)), (("add", "subtract"), (False, True))],
)
def test_tensor_tensor_scan(rng, dt, ops, rev):
    npop = {"multiply": np.multiply, "add": np.add, "subtract": np.subtract, "maximum": np.maximum}

    @nki.jit
    def k(a, b, init):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        y = nisa.tensor_tensor_scan(
            nl.load(a), nl.load(b), nl.load(init), npop[ops[0]], npop[ops[1]], reverse0=rev[0], reverse1=rev[1]
        )
        nl.store(out, y)
        return out

    a = rng.uniform(0.5, 0.95, (128, 40)).astype(dt)
    b = rng.standard_normal((128, 40)).astype(dt)
    init = rng.standard_normal((128, 1)).astype(np.float32)
    out = nki.simulate_kernel(k, a, b, init)
    f0, f1 = npop[ops[0]], npop[ops[1]]
    ad, bd = a.astype(np.float64), b.astype(np.float64)
    prev = init[:, 0].astype(np.float64)
    ref = np.empty_like(ad)
    for i in range(ad.shape[1]):
        t = f0(prev, ad[:, i]) if rev[0] else f0(ad[:, i], prev)
        prev = f1(bd[:, i], t) if rev[1] else f1(t, bd[:, i])
        ref[:, i] = prev
    scale = np.maximum(np.abs(ref), 1.0)
    tol = 2**-7 if dt is BF16 else 1e-5
    assert np.all(np.abs(out.astype(np.float64) - ref) <= tol * scale)


def test_tensor_tensor_scan_scalar_initial_and_errors(rng):
    @nki.jit
    def k(a, b):
        out = nl.ndarray(a.shape, dtype=nl.float32, buffer=nl.shared_hbm)
        nl.store(out, nisa.tensor_tensor_scan(nl.load(a), nl.load(b), 0.0, np.add, np.add))
        return out

    a = rng.standard_normal((16, 64)).astype(np.float32)
    b = rng.standard_normal((16, 64)).astype(np.float32)
    np.testing.assert_allclose(nki.simulate_kernel(k, a, b), np.cumsum(a.astype(np.float64) + b, axis=1), atol=1e-4)
    (ins,) = [i for i in last_launch().stream if i.opcode == "TENSOR_TENSOR_SCAN"]
    arch = last_launch().arch
    assert ins.spec.cost(ins, arch) == pytest.approx(max(2 * 64, arch.min_ii_cycles) / arch.clock_ghz["Vector"])

    def bitvec(x, y):
        nisa.tensor_tensor_scan(nl.load(x), nl.load(y), 0, np.bitwise_and, np.add)  # BAD

    def mismatch(x, y):
        nisa.tensor_tensor_scan(nl.load(x), nl.load(y)[:, 0:32], 0.0, np.add, np.add)  # BAD

    ai = rng.integers(0, 5, (16, 64)).astype(np.int32)
    _expect_error(bitvec, (ai, ai), "err_invalid_operator")
    _expect_error(mismatch, (a, b), "err_shape_mismatch")


# ------------------------------------------------------------------------------------------ scalar_tensor_tensor
@DTYPES
@pytest.mark.parametrize("rev", [(False, False), (True, True)])
def test_scalar_tensor_tensor(rng, dt, rev):
    @nki.jit
    def k(a, s, c):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        y = nisa.scalar_tensor_tensor(
            data=nl.load(a), op0=np.subtract, operand0=nl.load(s), op1=np.multiply, operand1=nl.load(c),
            reverse0=rev[0], reverse1=rev[1],
        )
        nl.store(out, y)
        return out

    a = rng.standard_normal((128, 64)).astype(dt)
    s = rng.standard_normal((128, 1)).astype(np.float32)
    c = rng.standard_normal((128, 64)).astype(dt)
    out = nki.simulate_kernel(k, a, s, c)
    ad, sd, cd = a.astype(np.float64), s.astype(np.float64), c.astype(np.float64)
    ref = ((sd - ad) if rev[0] else (ad - sd)) * cd
    np.testing.assert_allclose(out.astype(np.float64), ref, rtol=TOL[dt]["rtol"], atol=4 * TOL[dt]["atol"])
    ins = [i for i in last_launch().stream if i.opcode == "SCALAR_TENSOR_TENSOR"][0]
    assert ins.attrs["fast"] == (dt is BF16)  # bf16 (subtract, multiply) with even N runs at 1 element/cycle


def test_scalar_tensor_tensor_scalar_operand_and_errors(rng):
    @nki.jit
    def k(a, c):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        nl.store(out, nisa.scalar_tensor_tensor(data=nl.load(a), op0=np.multiply, operand0=3.0, op1=np.add, operand1=nl.load(c)))
        return out

    a = rng.standard_normal((32, 16)).astype(np.float32)
    c = rng.standard_normal((32, 16)).astype(np.float32)
    np.testing.assert_allclose(nki.simulate_kernel(k, a, c), 3.0 * a.astype(np.float64) + c, rtol=1e-6, atol=1e-6)

    def both_psum(x, y):
        px = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.psum)
        py = nl.ndarray(y.shape, dtype=y.dtype, buffer=nl.psum)
        px[...] = nl.load(x)
        py[...] = nl.load(y)
        nisa.scalar_tensor_tensor(data=px, op0=np.add, operand0=1.0, op1=np.add, operand1=py)  # BAD

    def wide_operand0(x, y):
        t = nl.load(x)
        nisa.scalar_tensor_tensor(data=t, op0=np.add, operand0=t, op1=np.add, operand1=nl.load(y))  # BAD

    _expect_error(both_psum, (a, c), "err_unsupported_memory")
    _expect_error(wide_operand0, (a, c), "err_invalid_operand")


# ------------------------------------------------------------------------------------------ bn_stats / bn_aggr
@DTYPES
def test_bn_stats_and_bn_aggr_over_chunks(rng, dt):
    n = 1000  # two bn_stats chunks (512 + 488) aggregated by one bn_aggr

    @nki.jit
    def k(a):
        out = nl.ndarray((a.shape[0], 2), dtype=nl.float32, buffer=nl.shared_hbm)
        raw = nl.ndarray((a.shape[0], 6), dtype=nl.float32, buffer=nl.shared_hbm)
        t = nl.load(a)
        st = nl.ndarray((a.shape[0], 12), dtype=nl.float32, buffer=nl.sbuf)
        st[:, 0:6] = nisa.bn_stats(t[:, 0:512], dtype=nl.float32)
        st[:, 6:12] = nisa.bn_stats(t[:, 512:n], dtype=nl.float32)
        nl.store(out, nisa.bn_aggr(st))
        nl.store(raw, st[:, 0:6])
        return out, raw

    a = (rng.standard_normal((128, n)) * 2.0 + 0.5).astype(dt)
    out, raw = nki.simulate_kernel(k, a)
    ad = a.astype(np.float64)
    np.testing.assert_allclose(out[:, 0], ad.mean(1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[:, 1], ad.var(1), rtol=1e-5)
    ev, od = ad[:, 0:512:2], ad[:, 1:512:2]
    ref = np.stack([np.full(128, 256.0), ev.mean(1), ev.var(1) * 256, np.full(128, 256.0), od.mean(1), od.var(1) * 256], 1)
    np.testing.assert_allclose(raw, ref, rtol=1e-5, atol=1e-5)


def test_bn_stats_odd_length_bf16_output(rng):
    @nki.jit
    def k(a):
        out = nl.ndarray((a.shape[0], 6), dtype=a.dtype, buffer=nl.shared_hbm)
        nl.store(out, nisa.bn_stats(nl.load(a)))
        return out

    a = rng.standard_normal((64, 7)).astype(BF16)
    out = nki.simulate_kernel(k, a).astype(np.float64)
    ad = a.astype(np.float64)
    ev, od = ad[:, 0::2], ad[:, 1::2]
    ref = np.stack([np.full(64, 4.0), ev.mean(1), ev.var(1) * 4, np.full(64, 3.0), od.mean(1), od.var(1) * 3], 1)
    np.testing.assert_allclose(out, ref, rtol=2**-7, atol=2**-7)


def test_bn_errors(rng):
    a = rng.standard_normal((128, 600)).astype(np.float32)

    def too_wide(x):
        nisa.bn_stats(nl.load(x))  # BAD

    def not_triples(x):
        t = nl.load(x)
        nisa.bn_aggr(t[:, 0:5])  # BAD

    _expect_error(too_wide, (a,), "err_size_of_dimension_exceed_arch_limit")
    _expect_error(not_triples, (a,), "err_shape_mismatch")


# ------------------------------------------------------------------------------------------ dropout
def test_dropout_rates_and_kept_values(rng):
    @nki.jit
    def k(a, p):
        out = nl.ndarray((3,) + a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        t = nl.load(a)
        nl.store(out[0], nisa.dropout(t, 0.0))
        nl.store(out[1], nisa.dropout(t, 1.0))
        nl.store(out[2], nisa.dropout(t, nl.load(p)))
        return out

    a = rng.uniform(1.0, 2.0, (128, 512)).astype(np.float32)
    p = np.where(np.arange(128) < 64, 0.25, 0.75).astype(np.float32)[:, None]
    out = nki.simulate_kernel(k, a, p)
    np.testing.assert_array_equal(out[0], a)
    assert np.all(out[1] == 0)
    kept = out[2] != 0
    np.testing.assert_array_equal(out[2][kept], a[kept])  # kept values are not rescaled
    # 32768 Bernoulli draws per half: the kept fraction is within 1% of 1 - p
    assert abs(kept[:64].mean() - 0.75) < 0.01
    assert abs(kept[64:].mean() - 0.25) < 0.01


def test_dropout_bf16_and_integer_data(rng):
    @nki.jit
    def k(a, ai):
        o1 = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        o2 = nl.ndarray(ai.shape, dtype=ai.dtype, buffer=nl.shared_hbm)
        nl.store(o1, nisa.dropout(nl.load(a), 0.5))
        nl.store(o2, nisa.dropout(nl.load(ai), 0.5))
        return o1, o2

    a = rng.standard_normal((32, 256)).astype(BF16)
    ai = rng.integers(2**25, 2**30, (32, 256)).astype(np.int32)
    o1, o2 = nki.simulate_kernel(k, a, ai)
    assert np.all((o1 == 0) | (o1 == a)) and 0.4 < (o1 != 0).mean() < 0.6
    assert np.all((o2 == 0) | (o2 == ai)) and 0.4 < (o2 != 0).mean() < 0.6  # integers are copied exactly

    def bf16_prob(x, pr):
        nisa.dropout(nl.load(x), nl.load(pr))  # BAD

    def cast_int(x):
        nisa.dropout(nl.load(x), 0.5, dtype=nl.float32)  # BAD

    def bad_prob(x):
        nisa.dropout(nl.load(x), 1.5)  # BAD

    _expect_error(bf16_prob, (ai, np.full((32, 1), 0.5, dtype=BF16)), "err_unsupported_dtype")
    _expect_error(cast_int, (ai,), "err_unsupported_dtype")
    _expect_error(bad_prob, (a,), "err_invalid_operand")


# ------------------------------------------------------------------------------------------ max8 / find_index8 / match_replace8
@DTYPES
def test_max8_find_index8_match_replace8(rng, dt):
    @nki.jit
    def k(a):
        top = nl.ndarray((a.shape[0], 8), dtype=a.dtype, buffer=nl.shared_hbm)
        idx = nl.ndarray((a.shape[0], 8), dtype=nl.uint32, buffer=nl.shared_hbm)
        idx16 = nl.ndarray((a.shape[0], 8), dtype=nl.uint16, buffer=nl.shared_hbm)
        rep = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        ridx = nl.ndarray((a.shape[0], 8), dtype=nl.uint32, buffer=nl.shared_hbm)
        t = nl.load(a)
        m = nisa.max8(src=t)
        nl.store(top, m)
        nl.store(idx, nisa.nc_find_index8(data=t, vals=m))
        nl.store(idx16, nisa.nc_find_index8(data=t, vals=m, dtype=nl.uint16))
        di = nl.ndarray((a.shape[0], 8), dtype=nl.uint32, buffer=nl.sbuf)
        nl.store(rep, nisa.nc_match_replace8(data=t, vals=m, imm=-1000.0, dst_idx=di))
        nl.store(ridx, di)
        return top, idx, idx16, rep, ridx

    # distinct values per row (a random permutation), so the top-8 positions are unique
    a = np.stack([rng.permutation(300) for _ in range(64)]).astype(np.float64) / 7.0 - 20.0
    a = a.reshape(64, 3, 100).astype(dt)
    top, idx, idx16, rep, ridx = nki.simulate_kernel(k, a)
    flat = a.reshape(64, 300).astype(np.float64)
    order = np.argsort(-flat, axis=1, kind="stable")[:, :8]
    np.testing.assert_array_equal(top.astype(np.float64), np.take_along_axis(flat, order, 1))
    np.testing.assert_array_equal(idx, order)
    np.testing.assert_array_equal(idx16, order)
    np.testing.assert_array_equal(ridx, order)
    ref = flat.copy()
    np.put_along_axis(ref, order, -1000.0, axis=1)
    np.testing.assert_array_equal(rep.reshape(64, 300).astype(np.float64), ref)


def test_find_index8_duplicates_take_successive_occurrences(rng):
    @nki.jit
    def k(a, v):
        idx = nl.ndarray((a.shape[0], 8), dtype=nl.uint32, buffer=nl.shared_hbm)
        nl.store(idx, nisa.nc_find_index8(data=nl.load(a), vals=nl.load(v)))
        return idx

    a = rng.integers(0, 4, (16, 64)).astype(np.float32)
    a[:, :8] = np.arange(4)[None, [0, 0, 1, 1, 2, 2, 3, 3]]  # every value occurs at least twice
    v = np.tile(np.array([3, 0, 3, 1, 0, 2, 1, 2], dtype=np.float32), (16, 1))
    idx = nki.simulate_kernel(k, a, v)
    for r in range(16):
        seen: dict[float, int] = {}
        for j in range(8):
            occ = np.flatnonzero(a[r] == v[r, j])
            assert idx[r, j] == occ[seen.get(v[r, j], 0)]
            seen[v[r, j]] = seen.get(v[r, j], 0) + 1


def test_max8_family_errors_and_warning(rng):
    a = rng.standard_normal((32, 64)).astype(np.float32)

    def too_small(x):
        t = nl.load(x)
        nisa.max8(src=t[:, 0:4])  # BAD

    def float_idx(x):
        t = nl.load(x)
        nisa.nc_find_index8(data=t, vals=t[:, 0:8], dtype=nl.float32)  # BAD

    def four_vals(x):
        t = nl.load(x)
        nisa.nc_match_replace8(data=t, vals=t[:, 0:4], imm=0.0)  # BAD

    _expect_error(too_small, (a,), "err_size_of_dimension_exceed_arch_limit")
    _expect_error(float_idx, (a,), "err_unsupported_dtype")
    _expect_error(four_vals, (a,), "err_shape_mismatch")

    @nki.jit
    def missing(x):
        out = nl.ndarray((x.shape[0], 8), dtype=nl.uint32, buffer=nl.shared_hbm)
        t = nl.load(x)
        nl.store(out, nisa.nc_find_index8(data=t, vals=nisa.tensor_scalar(t[:, 0:8], np.add, 1000.0)))
        return out

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        nki.simulate_kernel(missing, a)
    assert any("warn_undefined_behavior" in str(w.message) for w in rec if issubclass(w.category, NkiWarning))


# ------------------------------------------------------------------------------------------ tensor_scalar engine rules
def test_tensor_scalar_engines(rng):
    @nki.jit
    def k(a):
        out = nl.ndarray((2,) + a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        t = nl.load(a)
        nl.store(out[0], nisa.tensor_scalar(t, nl.rsqrt, None, engine=nisa.gpsimd_engine))
        nl.store(out[1], nisa.tensor_scalar(t, np.multiply, 2.0, op1=np.add, operand1=0.5, engine=nisa.scalar_engine))
        return out

    a = rng.uniform(0.5, 4.0, (128, 64)).astype(np.float32)
    out = nki.simulate_kernel(k, a)
    np.testing.assert_allclose(out[0], 1.0 / np.sqrt(a.astype(np.float64)), rtol=1e-6)
    np.testing.assert_allclose(out[1], a.astype(np.float64) * 2.0 + 0.5, rtol=1e-6)
    engines = [i.engine for i in last_launch().stream if i.opcode == "TENSOR_SCALAR"]
    assert engines == ["GpSimd", "Scalar"]

    def gpsimd_add(x):
        nisa.tensor_scalar(nl.load(x), np.add, 1.0, engine=nisa.gpsimd_engine)  # BAD

    def vector_rsqrt(x):
        nisa.tensor_scalar(nl.load(x), nl.rsqrt, None, engine=nisa.vector_engine)  # BAD

    def bitvec_on_scalar(x):
        nisa.tensor_scalar(nl.load(x), np.bitwise_and, 3, engine=nisa.scalar_engine)  # BAD

    def scalar_v2_multiply(x):
        nisa.tensor_scalar(nl.load(x), np.multiply, 2.0, engine=nisa.scalar_engine)  # BAD

    ai = rng.integers(0, 100, (128, 64)).astype(np.int32)
    _expect_error(gpsimd_add, (a,), "err_invalid_operator_combination")
    _expect_error(vector_rsqrt, (a,), "err_invalid_operator_combination")
    _expect_error(bitvec_on_scalar, (ai,), "err_invalid_operator_combination")
    _expect_error(nki.jit(scalar_v2_multiply, platform_target="trn1"), (a,), "err_invalid_operator_combination")


# ------------------------------------------------------------------------------------------ tensor_reduce (G1 axes)
def test_tensor_reduce_g1_axis_numbering_and_bitvec(rng):
    @nki.jit
    def k(a, ai):
        o1 = nl.ndarray(a.shape[:2], dtype=nl.float32, buffer=nl.shared_hbm)
        o2 = nl.ndarray((a.shape[0], 1), dtype=nl.float32, buffer=nl.shared_hbm)
        o3 = nl.ndarray((ai.shape[0], 1), dtype=ai.dtype, buffer=nl.shared_hbm)
        t = nl.load(a)
        nl.store(o1, nisa.tensor_reduce(np.add, t, axis=[1]))  # G1: axis 1 = the innermost free axis
        nl.store(o2, nisa.tensor_reduce(np.max, t, axis=[1, 2], keepdims=True, negate=True))
        nl.store(o3, nisa.tensor_reduce(np.bitwise_or, nl.load(ai), axis=1, keepdims=True))
        return o1, o2, o3

    a = rng.standard_normal((64, 6, 20)).astype(np.float32)
    ai = rng.integers(0, 2**31 - 1, (64, 12)).astype(np.int32)
    o1, o2, o3 = nki.simulate_kernel(k, a, ai)
    np.testing.assert_allclose(o1, a.astype(np.float64).sum(2), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(o2[:, 0], -a.reshape(64, -1).max(1), rtol=0)
    np.testing.assert_array_equal(o3[:, 0], np.bitwise_or.reduce(ai, axis=1))

    def gap(x):
        nisa.tensor_reduce(np.add, nl.load(x), axis=[1, 3])  # BAD

    def float_or(x):
        nisa.tensor_reduce(np.bitwise_or, nl.load(x), axis=[1])  # BAD

    _expect_error(gap, (rng.standard_normal((8, 2, 3, 4)).astype(np.float32),), "err_invalid_reduce_axes")
    _expect_error(float_or, (a[:, :, 0],), "err_unsupported_dtype")


# ------------------------------------------------------------------------------------------ shared operand rules
def test_partition_count_and_buffer_rules(rng):
    a = rng.standard_normal((128, 32)).astype(np.float32)

    def stt_partitions(x):
        t = nl.load(x)
        nisa.scalar_tensor_tensor(data=t, op0=np.add, operand0=1.0, op1=np.add, operand1=t[0:64])  # BAD

    def scan_partitions(x):
        t = nl.load(x)
        nisa.tensor_tensor_scan(t[0:32], t[32:96], 0.0, np.add, np.add)  # BAD

    def max8_hbm(x):
        nisa.max8(src=x)  # BAD

    def bn_stats_partitions(x):
        t = nl.load(x)
        s = nl.ndarray((64, 6), dtype=nl.float32, buffer=nl.sbuf)
        s[...] = nisa.bn_stats(t)  # BAD

    _expect_error(stt_partitions, (a,), "err_num_partition_mismatch")
    _expect_error(scan_partitions, (a,), "err_num_partition_mismatch")
    _expect_error(max8_hbm, (a,), "err_unsupported_memory")
    _expect_error(bn_stats_partitions, (a,), "err_store_dst_shape_smaller_than_other_shape")
