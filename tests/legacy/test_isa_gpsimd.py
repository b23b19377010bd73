"""Legacy nisa GpSimd instructions: tensor_partition_reduce, local_gather, sequence_bounds (and the unsupported
builtin_custom_op). GpSimd reads and writes SBUF only.

References: float64 NumPy (partition sums: rtol 1e-5 fp32, one bf16 ulp + accumulation error for bf16 output),
exact integer references for integer reductions, gathers and segment bounds.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl
from trnsim.core.errors import NkiError, NkiUnsupportedError
from trnsim.core.launch import last_launch
from trnsim.testing import expect_kernel_error

BF16 = ml_dtypes.bfloat16


def _expect_error(fn, args, code: str, needle: str = "# BAD") -> NkiError:
    return expect_kernel_error(fn, *args, code=code, at=needle, runner=nki.simulate_kernel)


# ------------------------------------------------------------------------------------------ tensor_partition_reduce
@pytest.mark.parametrize("dt", [np.float32, BF16], ids=["fp32", "bf16"])
def test_partition_reduce_add_and_max(rng, dt):
    def k(a_tensor, b_tensor, c_tensor):
        a = nl.load(a_tensor)
        nl.store(b_tensor, nisa.tensor_partition_reduce(np.add, a))
        nl.store(c_tensor, nisa.tensor_partition_reduce(nl.maximum, a))

    a = rng.standard_normal((128, 32, 4)).astype(dt)
    b = np.zeros((1, 32, 4), dtype=dt)
    c = np.zeros((1, 32, 4), dtype=dt)
    nki.simulate_kernel(k, a, b, c)
    ad = a.astype(np.float64)
    if dt is BF16:
        np.testing.assert_allclose(b.astype(np.float64), ad.sum(0, keepdims=True), rtol=2**-7, atol=0.05)
    else:
        np.testing.assert_allclose(b, ad.sum(0, keepdims=True), rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(c.astype(np.float64), ad.max(0, keepdims=True))
    ins = [i for i in last_launch().stream if i.opcode == "PARTITION_REDUCE"]
    assert len(ins) == 2 and all(i.engine == "GpSimd" for i in ins)


def test_partition_reduce_integer_ops_exact_and_masked(rng):
    @nki.jit
    def k(a):
        out = nl.ndarray((3, 1, a.shape[1]), dtype=a.dtype, buffer=nl.shared_hbm)
        t = nl.load(a)
        i_p = nl.arange(a.shape[0])[:, None]
        i_f = nl.arange(a.shape[1])[None, :]
        nl.store(out[0], nisa.tensor_partition_reduce(np.bitwise_or, t))
        nl.store(out[1], nisa.tensor_partition_reduce(np.bitwise_and, t))
        s = nl.zeros((1, a.shape[1]), dtype=a.dtype, buffer=nl.sbuf)
        s[...] = nisa.tensor_partition_reduce(np.add, t, mask=(i_p < 100) & (i_f < 20))
        nl.store(out[2], s)
        return out

    a = rng.integers(2**20, 2**26, (128, 30)).astype(np.int32)
    out = nki.simulate_kernel(k, a)
    np.testing.assert_array_equal(out[0, 0], np.bitwise_or.reduce(a, axis=0))
    np.testing.assert_array_equal(out[1, 0], np.bitwise_and.reduce(a, axis=0))
    ref = a[:100].astype(np.int64).sum(0)  # exact integer sums (> 2^24, not representable in fp32)
    np.testing.assert_array_equal(out[2, 0, :20], np.clip(ref[:20], -(2**31), 2**31 - 1))
    assert np.all(out[2, 0, 20:] == 0)


def test_partition_reduce_errors(rng):
    a = rng.standard_normal((64, 16)).astype(np.float32)

    def from_psum(x):
        p = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.psum)
        p[...] = nl.load(x)
        nisa.tensor_partition_reduce(np.add, p)  # BAD

    def bad_op(x):
        nisa.tensor_partition_reduce(np.subtract, nl.load(x))  # BAD

    def float_bitwise(x):
        nisa.tensor_partition_reduce(np.bitwise_or, nl.load(x))  # BAD

    _expect_error(from_psum, (a,), "err_unsupported_memory")
    _expect_error(bad_op, (a,), "err_invalid_operator")
    _expect_error(float_bitwise, (a,), "err_unsupported_dtype")


# ------------------------------------------------------------------------------------------ local_gather
def _local_gather_reference(src: np.ndarray, index: np.ndarray, e: int, nv: int) -> np.ndarray:
    """AWS's documented NumPy semantics: per 16-partition core, indices flattened partition-first."""
    p = src.shape[0]
    blocks = src.reshape(p, -1, e)
    out = np.empty((p, nv, e), dtype=src.dtype)
    for core in range(p // 16):
        rows = slice(16 * core, 16 * core + 16)
        ind = index[rows].reshape(16, -1).flatten(order="F")[:nv] // e
        out[rows] = np.take(blocks[rows], ind, axis=1)
    return out


@pytest.mark.parametrize("dt", [np.float32, BF16], ids=["fp32", "bf16"])
def test_local_gather_documented_semantics(rng, dt):
    @nki.jit
    def k(src_buffer, index):
        out = nl.ndarray((128, 4, 16, 4), dtype=src_buffer.dtype, buffer=nl.shared_hbm)
        src_tile = nl.load(src_buffer)
        index_tile = nl.load(index)
        nl.store(out, nisa.local_gather(src_tile, index_tile, 4, 64))
        return out

    src = rng.standard_normal((128, 512, 4)).astype(dt)
    per_core = rng.integers(0, 512, (16, 4)).astype(np.uint16)
    index = np.tile(per_core, (8, 1)) * 4  # hardware indices are element offsets
    out = nki.simulate_kernel(k, src, index)
    ref = _local_gather_reference(src.reshape(128, -1), index, 4, 64)
    np.testing.assert_array_equal(out.reshape(128, 64, 4), ref)


def test_local_gather_defaults_per_core_indices(rng):
    @nki.jit
    def k(src_buffer, index):
        out = nl.ndarray((32, 48), dtype=src_buffer.dtype, buffer=nl.shared_hbm)
        nl.store(out, nisa.local_gather(nl.load(src_buffer), nl.load(index)))
        return out

    src = rng.integers(-1000, 1000, (32, 200)).astype(np.int16)
    index = rng.integers(0, 200, (32, 3)).astype(np.uint16)  # different indices on each core
    out = nki.simulate_kernel(k, src, index)
    np.testing.assert_array_equal(out, _local_gather_reference(src, index, 1, 48)[:, :, 0])
    (ins,) = [i for i in last_launch().stream if i.opcode == "LOCAL_GATHER"]
    arch = last_launch().arch
    c = ((28 + 4) / 4) / min(4 / 2, 1)
    assert ins.spec.cost(ins, arch) == pytest.approx((150 + 48 / c) / arch.clock_ghz["GpSimd"])


def test_local_gather_errors(rng):
    src = rng.standard_normal((32, 64)).astype(np.float32)
    idx16 = rng.integers(0, 64, (32, 2)).astype(np.uint16)

    def int32_index(s, i):
        nisa.local_gather(nl.load(s), nl.load(i))  # BAD

    def three_elems(s, i):
        nisa.local_gather(nl.load(s), nl.load(i), 3)  # BAD

    def eight_partitions(s, i):
        t = nl.load(s)
        ix = nl.load(i)
        nisa.local_gather(t[0:8], ix[0:8])  # BAD

    def out_of_bounds(s, i):
        nisa.local_gather(nl.load(s), nl.load(i), 8)  # BAD

    def too_many_valid(s, i):
        nisa.local_gather(nl.load(s), nl.load(i), 1, 33)  # BAD

    _expect_error(int32_index, (src, idx16.astype(np.int32)), "err_unsupported_dtype")
    _expect_error(three_elems, (src, idx16), "err_invalid_operand")
    _expect_error(eight_partitions, (src, idx16), "err_num_partition_mismatch")
    _expect_error(out_of_bounds, (src, np.full((32, 2), 60, dtype=np.uint16)), "err_tensor_access_out_of_bound")
    _expect_error(too_many_valid, (src, idx16), "err_invalid_operand")


# ------------------------------------------------------------------------------------------ sequence_bounds
def _bounds_reference(seq: np.ndarray) -> np.ndarray:
    n = len(seq)
    lo, hi = np.empty(n), np.empty(n)
    for i in range(n):
        if seq[i] == 0:
            lo[i], hi[i] = n, -1
            continue
        a = i
        while a > 0 and seq[a - 1] == seq[i]:
            a -= 1
        b = i + 1
        while b < n and seq[b] == seq[i]:
            b += 1
        lo[i], hi[i] = a, b
    return np.stack([lo, hi])[None]


@pytest.mark.parametrize("dt", [np.float32, np.int32])
def test_sequence_bounds(rng, dt):
    @nki.jit
    def k(segment_ids):
        m, n = segment_ids.shape
        output = nl.ndarray([m, 2, n], dtype=segment_ids.dtype, buffer=nl.shared_hbm)
        ix, iy, iz = nl.mgrid[0:m, 0:2, 0:n]
        out_tile = nl.ndarray([m, 2, n], dtype=segment_ids.dtype, buffer=nl.sbuf)
        out_tile[ix, iy, iz] = nisa.sequence_bounds(segment_ids=nl.load(segment_ids))
        nl.store(output, value=out_tile)
        return output

    seq = np.sort(rng.integers(0, 12, 96))
    seq[rng.integers(0, 96, 10)] = 0  # padding in the middle too
    seq = seq.reshape(1, 96).astype(dt)
    out = nki.simulate_kernel(k, seq)
    np.testing.assert_array_equal(out, _bounds_reference(seq[0]).astype(dt))


def test_sequence_bounds_errors_and_builtin_custom_op(rng):
    def two_partitions(s):
        nisa.sequence_bounds(segment_ids=nl.load(s))  # BAD

    def bf16_ids(s):
        nisa.sequence_bounds(segment_ids=nl.load(s))  # BAD

    _expect_error(two_partitions, (np.ones((2, 8), dtype=np.float32),), "err_num_partition_mismatch")
    _expect_error(bf16_ids, (np.ones((1, 8), dtype=BF16),), "err_unsupported_dtype")

    def custom(s):
        nisa.builtin_custom_op("f", "lib.so", 1, 1, [nl.load(s)], [])  # BAD

    err = _expect_error(custom, (np.ones((1, 8), dtype=np.float32),), "err_unsupported_api")
    assert isinstance(err, NkiUnsupportedError)
