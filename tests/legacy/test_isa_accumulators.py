"""Legacy nisa instructions that use the per-lane accumulator registers (nki-api.md 5.5).

Vector engine: tensor_scalar_reduce, select_reduce, range_select share one register set (reset_reduce starts from
the identity of the reduce op, reduce continues, idle leaves an unspecified state). Scalar engine: activation /
activation_reduce (reset zeroes, reduce adds the row reduction, reduce_res reads the registers out).
Every numeric test compares against an independent float64 NumPy reference on fresh random inputs.
Tolerances: fp32 outputs rtol/atol 1e-5 (sums of <= 512 terms: 1e-4 relative to the row's absolute sum);
bf16 outputs one bf16 ulp (rtol 2^-8) plus the fp32 accumulation error.
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


def _expect_error(fn, args, code: str, needle: str = "# BAD") -> NkiError:
    return expect_kernel_error(fn, *args, code=code, at=needle, runner=nki.simulate_kernel)


def _codes(record) -> list[str]:
    return [str(w.message).split("]")[0].lstrip("[") for w in record if issubclass(w.category, NkiWarning)]


def _sum_tol(x: np.ndarray) -> np.ndarray:
    return 1e-5 * np.abs(x).sum(axis=1) + 1e-5


# ------------------------------------------------------------------------------------------ tensor_scalar_reduce
@pytest.mark.parametrize("dt", [np.float32, BF16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("rop", ["add", "maximum", "minimum", "multiply", "subtract"])
def test_tensor_scalar_reduce_matches_reference(rng, dt, rop):
    np_rop = {"add": np.add, "maximum": np.max, "minimum": nl.min, "multiply": np.multiply, "subtract": nl.subtract}

    @nki.jit
    def k(a, s):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        red = nl.ndarray((a.shape[0], 1), dtype=nl.float32, buffer=nl.shared_hbm)
        t = nl.load(a)
        sv = nl.load(s)
        rr = nl.ndarray((a.shape[0], 1), dtype=nl.float32, buffer=nl.sbuf)
        y = nisa.tensor_scalar_reduce(data=t, op0=np.multiply, operand0=sv, reduce_op=np_rop[rop], reduce_res=rr)
        nl.store(out, y)
        nl.store(red, rr)
        return out, red

    a = rng.uniform(0.8, 1.2, (128, 48)).astype(dt)
    a *= rng.choice([-1, 1], size=a.shape).astype(dt)
    s = rng.uniform(0.9, 1.1, (128, 1)).astype(np.float32)
    out, red = nki.simulate_kernel(k, a, s)
    prod = a.astype(np.float64) * s.astype(np.float64)
    np.testing.assert_allclose(out.astype(np.float64), prod, **TOL[dt])
    # the reduction sees the fp32 ALU result (before the output cast); subtract folds acc - x from 0
    ref = {
        "add": prod.sum(1),
        "maximum": prod.max(1),
        "minimum": prod.min(1),
        "multiply": prod.prod(1),
        "subtract": -prod.sum(1),
    }[rop]
    np.testing.assert_allclose(red[:, 0], ref, rtol=1e-5, atol=1e-4)


def test_tensor_scalar_reduce_scalar_operand_and_mask(rng):
    @nki.jit
    def k(a):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        red = nl.ndarray((a.shape[0], 1), dtype=nl.float32, buffer=nl.shared_hbm)
        t = nl.load(a)
        rr = nl.zeros((a.shape[0], 1), dtype=nl.float32, buffer=nl.sbuf)
        i_p = nl.arange(a.shape[0])[:, None]
        y = nl.zeros(a.shape, dtype=a.dtype, buffer=nl.sbuf)
        y[...] = nisa.tensor_scalar_reduce(
            data=t, op0=nl.add, operand0=2.5, reduce_op=nl.add, reduce_res=rr, mask=(i_p < 40)
        )
        nl.store(out, y)
        nl.store(red, rr)
        return out, red

    a = rng.standard_normal((64, 100)).astype(np.float32)
    out, red = nki.simulate_kernel(k, a)
    ref = a.astype(np.float64) + 2.5
    np.testing.assert_allclose(out[:40], ref[:40], rtol=1e-6, atol=1e-6)
    assert np.all(out[40:] == 0)
    np.testing.assert_allclose(red[:40, 0], ref[:40].sum(1), rtol=0, atol=_sum_tol(ref[:40]).max())
    assert np.all(red[40:] == 0)


def test_tensor_scalar_reduce_record_and_cost(rng):
    @nki.jit
    def k(a):
        out = nl.ndarray((a.shape[0], 1), dtype=a.dtype, buffer=nl.shared_hbm)
        rr = nl.ndarray((a.shape[0], 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar_reduce(data=nl.load(a), op0=np.subtract, operand0=1.0, reduce_op=np.add, reduce_res=rr)
        nl.store(out, rr)
        return out

    nki.simulate_kernel(k, rng.standard_normal((128, 512)).astype(np.float32))
    (ins,) = [i for i in last_launch().stream if i.opcode == "TENSOR_SCALAR_REDUCE"]
    arch = last_launch().arch
    assert ins.engine == "Vector"
    # max(MIN_II, N) + MIN_II Vector cycles
    assert ins.spec.cost(ins, arch) == pytest.approx((512 + arch.min_ii_cycles) / arch.clock_ghz["Vector"])


def test_tensor_scalar_reduce_errors(rng):
    a = rng.standard_normal((128, 32)).astype(np.float32)
    ai = rng.integers(1, 100, (128, 32)).astype(np.int32)

    def bitvec(x):
        rr = nl.ndarray((128, 1), dtype=nl.int32, buffer=nl.sbuf)
        nisa.tensor_scalar_reduce(data=nl.load(x), op0=np.bitwise_and, operand0=3, reduce_op=np.add, reduce_res=rr)  # BAD

    def bad_rop(x):
        rr = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar_reduce(data=nl.load(x), op0=np.add, operand0=1.0, reduce_op=np.divide, reduce_res=rr)  # BAD

    def bad_res(x):
        rr = nl.ndarray((128, 2), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar_reduce(data=nl.load(x), op0=np.add, operand0=1.0, reduce_op=np.add, reduce_res=rr)  # BAD

    def reverse(x):
        rr = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar_reduce(  # BAD
            data=nl.load(x), op0=np.subtract, operand0=1.0, reduce_op=np.add, reduce_res=rr, reverse0=True
        )

    def in_hbm(x):
        rr = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar_reduce(data=x, op0=np.add, operand0=1.0, reduce_op=np.add, reduce_res=rr)  # BAD

    _expect_error(bitvec, (ai,), "err_invalid_operator")
    _expect_error(bad_rop, (a,), "err_invalid_operator")
    _expect_error(bad_res, (a,), "err_shape_mismatch")
    _expect_error(reverse, (a,), "err_unsupported_api")
    _expect_error(in_hbm, (a,), "err_unsupported_memory")


# ------------------------------------------------------------------------------------------ select_reduce
@pytest.mark.parametrize("dt", [np.float32, BF16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("reverse", [False, True])
def test_select_reduce_with_max(rng, dt, reverse):
    @nki.jit
    def k(pred, x, fill):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        red = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.shared_hbm)
        dst = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
        rr = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.select_reduce(
            dst=dst,
            predicate=nl.load(pred),
            on_true=nl.load(x),
            on_false=nl.load(fill),
            reduce_res=rr,
            reduce_cmd=nisa.reduce_cmd.reset_reduce,
            reverse_pred=reverse,
        )
        nl.store(out, dst)
        nl.store(red, rr)
        return out, red

    pred = (rng.random((128, 96)) < 0.5).astype(np.uint8)
    x = rng.standard_normal((128, 96)).astype(dt)
    fill = rng.standard_normal((128, 1)).astype(np.float32) - 3.0
    out, red = nki.simulate_kernel(k, pred, x, fill)
    keep = (pred == 0) if reverse else (pred != 0)
    ref = np.where(keep, x.astype(np.float64), fill.astype(np.float64))
    np.testing.assert_allclose(out.astype(np.float64), ref, **TOL[dt])
    np.testing.assert_allclose(red[:, 0], ref.max(1), **TOL[dt])


def test_select_reduce_chain_over_two_calls_and_scalar_fill(rng):
    @nki.jit
    def k(pred, x):
        red = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.shared_hbm)
        p = nl.load(pred)
        t = nl.load(x)
        d = nl.ndarray((x.shape[0], 64), dtype=x.dtype, buffer=nl.sbuf)
        rr = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.select_reduce(
            dst=d, predicate=p[:, 0:64], on_true=t[:, 0:64], on_false=-1e30, reduce_cmd=nisa.reduce_cmd.reset_reduce
        )
        nisa.select_reduce(
            dst=d,
            predicate=p[:, 64:128],
            on_true=t[:, 64:128],
            on_false=-1e30,
            reduce_cmd=nisa.reduce_cmd.reduce,
            reduce_res=rr,
        )
        nl.store(red, rr)
        return red

    pred = (rng.random((32, 128)) < 0.7).astype(np.int16)
    pred[:, 0] = 1
    x = rng.standard_normal((32, 128)).astype(np.float32)
    red = nki.simulate_kernel(k, pred, x)
    ref = np.where(pred != 0, x, -1e30).max(1)
    np.testing.assert_allclose(red[:, 0], ref, rtol=1e-6)


def test_select_reduce_warnings_for_idle_state(rng):
    @nki.jit
    def k(pred, x):
        out = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.shared_hbm)
        p = nl.load(pred)
        t = nl.load(x)
        d = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
        rr = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.select_reduce(dst=d, predicate=p, on_true=t, on_false=0.0)
        nisa.select_reduce(dst=d, predicate=p, on_true=t, on_false=0.0, reduce_cmd=nisa.reduce_cmd.reduce, reduce_res=rr)
        nl.store(out, rr)
        return out

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        nki.simulate_kernel(k, (rng.random((16, 32)) < 0.5).astype(np.uint8), rng.random((16, 32)).astype(np.float32))
    assert "warn_accumulator_state_unspecified" in _codes(rec)


def test_select_reduce_errors(rng):
    x = rng.standard_normal((64, 32)).astype(np.float32)
    xi = rng.integers(0, 9, (64, 32)).astype(np.int32)
    pf = rng.random((64, 32)).astype(np.float32)
    pu = (rng.random((64, 32)) < 0.5).astype(np.uint8)

    def float_pred(p, v):
        d = nl.ndarray(v.shape, dtype=v.dtype, buffer=nl.sbuf)
        nisa.select_reduce(dst=d, predicate=nl.load(p), on_true=nl.load(v), on_false=0.0)  # BAD

    def int32_true(p, v):
        d = nl.ndarray(v.shape, dtype=v.dtype, buffer=nl.sbuf)
        nisa.select_reduce(dst=d, predicate=nl.load(p), on_true=nl.load(v), on_false=0.0)  # BAD

    def add_reduce(p, v):
        d = nl.ndarray(v.shape, dtype=v.dtype, buffer=nl.sbuf)
        nisa.select_reduce(dst=d, predicate=nl.load(p), on_true=nl.load(v), on_false=0.0, reduce_op=np.add)  # BAD

    def both_psum(p, v):
        pp = nl.ndarray(p.shape, dtype=p.dtype, buffer=nl.psum)
        vp = nl.ndarray(v.shape, dtype=v.dtype, buffer=nl.psum)
        pp[...] = nl.load(p)
        vp[...] = nl.load(v)
        d = nl.ndarray(v.shape, dtype=v.dtype, buffer=nl.sbuf)
        nisa.select_reduce(dst=d, predicate=pp, on_true=vp, on_false=0.0)  # BAD

    _expect_error(float_pred, (pf, x), "err_unsupported_dtype")
    _expect_error(int32_true, (pu, xi), "err_unsupported_dtype")
    _expect_error(add_reduce, (pu, x), "err_invalid_operator")
    _expect_error(both_psum, (pu, x), "err_unsupported_memory")


# ------------------------------------------------------------------------------------------ range_select
@pytest.mark.parametrize("dt", [np.float32, BF16], ids=["fp32", "bf16"])
def test_range_select_matches_reference(rng, dt):
    @nki.jit(platform_target="trn2")
    def k(x, b0, b1):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        red = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.shared_hbm)
        rr = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.sbuf)
        res = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
        res[...] = nisa.range_select(
            on_true_tile=nl.load(x),
            comp_op0=np.greater_equal,
            comp_op1=np.less,
            bound0=nl.load(b0),
            bound1=nl.load(b1),
            reduce_cmd=nisa.reduce_cmd.reset_reduce,
            reduce_res=rr,
            reduce_op=np.max,
            range_start=32,
            on_false_value=nl.fp32.min,
        )
        nl.store(out, res)
        nl.store(red, rr)
        return out, red

    x = rng.standard_normal((128, 256)).astype(dt)
    b0 = rng.integers(0, 150, (128, 1)).astype(np.float32)
    b1 = b0 + rng.integers(1, 120, (128, 1)).astype(np.float32)
    out, red = nki.simulate_kernel(k, x, b0, b1)
    idx = 32 + np.arange(256)[None, :]
    keep = (idx >= b0) & (idx < b1)
    fill = np.float64(np.float32(-3.4028235e38))
    ref = np.where(keep, x.astype(np.float64), fill)
    # FP32_MIN rounds to -inf in bf16 (documented hazard)
    ref_out = np.where(keep, ref, -np.inf) if dt is BF16 else ref
    np.testing.assert_allclose(out.astype(np.float64), ref_out, **TOL[dt])
    np.testing.assert_allclose(red[:, 0], ref.max(1), **TOL[dt])


def test_range_select_chained_reduction(rng):
    @nki.jit(platform_target="trn2")
    def k(x, b0, b1):
        red = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.shared_hbm)
        t = nl.load(x)
        lo, hi = nl.load(b0), nl.load(b1)
        rr = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.sbuf)
        for i in range(3):
            nisa.range_select(
                on_true_tile=t[:, i * 64 : (i + 1) * 64],
                comp_op0=np.greater_equal,
                comp_op1=np.less,
                bound0=lo,
                bound1=hi,
                reduce_cmd=nisa.reduce_cmd.reset_reduce if i == 0 else nisa.reduce_cmd.reduce,
                reduce_res=rr if i == 2 else None,
                range_start=i * 64,
            )
        nl.store(red, rr)
        return red

    x = rng.standard_normal((64, 192)).astype(np.float32)
    b0 = rng.integers(0, 90, (64, 1)).astype(np.float32)
    b1 = b0 + rng.integers(1, 100, (64, 1)).astype(np.float32)
    red = nki.simulate_kernel(k, x, b0, b1)
    idx = np.arange(192)[None, :]
    ref = np.where((idx >= b0) & (idx < b1), x, np.float32(-3.4028235e38)).max(1)
    np.testing.assert_allclose(red[:, 0], ref, rtol=1e-6)


def test_range_select_errors(rng):
    x = rng.standard_normal((32, 64)).astype(np.float32)
    b = np.full((32, 1), 10, dtype=np.float32)
    bb = b.astype(BF16)

    def trn1(x, b0, b1):
        nisa.range_select(on_true_tile=nl.load(x), comp_op0=np.less, comp_op1=np.less, bound0=nl.load(b0), bound1=nl.load(b1))  # BAD

    def fill(x, b0, b1):
        nisa.range_select(on_true_tile=nl.load(x), comp_op0=np.less, comp_op1=np.less, bound0=nl.load(b0), bound1=nl.load(b1), on_false_value=-1e9)  # BAD

    def op(x, b0, b1):
        nisa.range_select(on_true_tile=nl.load(x), comp_op0=np.add, comp_op1=np.less, bound0=nl.load(b0), bound1=nl.load(b1))  # BAD

    def bound_dtype(x, b0, b1):
        nisa.range_select(on_true_tile=nl.load(x), comp_op0=np.less, comp_op1=np.less, bound0=nl.load(b0), bound1=nl.load(b1))  # BAD

    _expect_error(nki.jit(trn1, platform_target="trn1"), (x, b, b), "err_unsupported_on_target")
    _expect_error(fill, (x, b, b), "err_invalid_operand")
    _expect_error(op, (x, b, b), "err_invalid_operator")
    _expect_error(bound_dtype, (x, bb, bb), "err_unsupported_dtype")


# ------------------------------------------------------------------------------------------ Scalar accumulators
@pytest.mark.parametrize("dt", [np.float32, BF16], ids=["fp32", "bf16"])
def test_activation_reduce_and_chained_activation(rng, dt):
    @nki.jit
    def k(x, bias):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        sums = nl.ndarray((x.shape[0], 2), dtype=nl.float32, buffer=nl.shared_hbm)
        t = nl.load(x)
        b = nl.load(bias)
        s = nl.ndarray((x.shape[0], 2), dtype=nl.float32, buffer=nl.sbuf)
        y = nisa.activation_reduce(op=nl.exp, data=t, reduce_op=nl.add, reduce_res=s[:, 0:1], bias=b, scale=0.5)
        # chain: reset with the first half, accumulate the second half, read out after the second
        nisa.activation(op=np.tanh, data=t[:, 0:32], reduce_op=nl.add, reduce_cmd=nisa.reduce_cmd.reset_reduce)
        nisa.activation(
            op=np.tanh, data=t[:, 32:64], reduce_op=nl.add, reduce_res=s[:, 1:2], reduce_cmd=nisa.reduce_cmd.reduce
        )
        nl.store(out, y)
        nl.store(sums, s)
        return out, sums

    x = rng.standard_normal((128, 64)).astype(dt)
    bias = rng.standard_normal((128, 1)).astype(np.float32)
    out, sums = nki.simulate_kernel(k, x, bias)
    xd = x.astype(np.float64)
    e = np.exp(xd * 0.5 + bias)
    np.testing.assert_allclose(out.astype(np.float64), e, **TOL[dt])
    np.testing.assert_allclose(sums[:, 0], e.sum(1), rtol=1e-5)
    np.testing.assert_allclose(sums[:, 1], np.tanh(xd).sum(1), rtol=1e-5, atol=1e-4)


def test_activation_idle_reduce_res_reads_registers_unchanged(rng):
    @nki.jit
    def k(x):
        sums = nl.ndarray((x.shape[0], 2), dtype=nl.float32, buffer=nl.shared_hbm)
        t = nl.load(x)
        s = nl.ndarray((x.shape[0], 2), dtype=nl.float32, buffer=nl.sbuf)
        nisa.activation(op=nl.copy, data=t, reduce_op=nl.add, reduce_res=s[:, 0:1], reduce_cmd=nisa.reduce_cmd.reset_reduce)
        nisa.activation(op=nl.exp, data=t, reduce_op=nl.add, reduce_res=s[:, 1:2])  # idle: no reduction
        nl.store(sums, s)
        return sums

    x = rng.standard_normal((128, 40)).astype(np.float32)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        sums = nki.simulate_kernel(k, x)
    np.testing.assert_allclose(sums[:, 0], x.astype(np.float64).sum(1), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(sums[:, 1], sums[:, 0])
    assert "warn_reduce_cmd_idle" in _codes(rec)


def test_activation_max_reduce_on_trn2_and_masked_reduce_res(rng):
    @nki.jit(platform_target="trn2")
    def k(x):
        red = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.shared_hbm)
        i_p = nl.arange(x.shape[0])[:, None]
        i_1 = nl.arange(1)[None, :]
        r = nl.zeros((x.shape[0], 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.activation(
            op=nl.exp,
            data=nl.load(x),
            reduce_op=np.max,
            reduce_res=r[i_p, i_1],
            reduce_cmd=nisa.reduce_cmd.reset_reduce,
            mask=(i_p < 100),
        )
        nl.store(red, r)
        return red

    x = rng.standard_normal((128, 64)).astype(np.float32)
    red = nki.simulate_kernel(k, x)
    np.testing.assert_allclose(red[:100, 0], np.exp(x[:100].astype(np.float64)).max(1), rtol=1e-6)
    assert np.all(red[100:] == 0)


def test_activation_reduce_errors(rng):
    x = rng.standard_normal((128, 64)).astype(np.float32)

    def max_on_trn1(a):
        r = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.activation_reduce(op=nl.exp, data=nl.load(a), reduce_op=np.max, reduce_res=r)  # BAD

    def bad_shape(a):
        r = nl.ndarray((64, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.activation_reduce(op=nl.exp, data=nl.load(a), reduce_op=np.add, reduce_res=r)  # BAD

    def bad_scale(a):
        sc = nl.ndarray((128, 1), dtype=nl.bfloat16, buffer=nl.sbuf)
        nisa.activation(op=nl.exp, data=nl.load(a), scale=sc)  # BAD

    _expect_error(nki.jit(max_on_trn1, platform_target="trn1"), (x,), "err_invalid_operator")
    _expect_error(bad_shape, (x,), "err_shape_mismatch")
    _expect_error(bad_scale, (x,), "err_activation_scale_invalid_type")
