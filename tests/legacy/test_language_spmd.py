"""Legacy SPMD grid queries, nl.all_reduce across the programs of a grid, iterators, and random numbers
(nl.rand / nl.random_seed / nl.dropout)."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.language as nl
from trnsim.core.errors import NkiError


def simulate(kernel, *args, grid=None):
    k = nki.jit(kernel)
    return nki.simulate_kernel(k[grid] if grid is not None else k, *args)


# ------------------------------------------------------------------------------------------------ grid queries
def test_program_queries_on_a_2d_grid():
    seen = []

    def kernel(x):
        out = nl.ndarray((2, 3, 1, 4), dtype=nl.int32, buffer=nl.shared_hbm)
        i, j = nl.program_id(0), nl.program_id(axis=1)
        seen.append((i, j, nl.num_programs(), nl.num_programs(0), nl.num_programs(axes=(0, 1)), nl.program_ndim()))
        t = nl.full((1, 4), i * 10 + j, dtype=nl.int32)
        nl.store(out[i, j], t)
        return out

    got = simulate(kernel, np.zeros((1, 1), np.float32), grid=(2, 3))
    assert seen == [(i, j, 6, 2, 6, 2) for i in range(2) for j in range(3)]
    np.testing.assert_array_equal(got[..., 0, 0], [[0, 1, 2], [10, 11, 12]])


def test_nc_and_spmd_dim_grids():
    seen = []

    def kernel(x):
        out = nl.ndarray((4, 1, 1), dtype=nl.int32, buffer=nl.shared_hbm)
        i = nl.program_id(0)
        seen.append(i)
        nl.store(out[i], nl.full((1, 1), i, dtype=nl.int32))
        return out

    x = np.zeros((1, 1), np.float32)
    for grid in (nl.nc(2) * 2, 2 * nl.nc(2), nl.spmd_dim(nl.nc(2), 2)):
        seen.clear()
        got = simulate(kernel, x, grid=grid)
        assert seen == [0, 1, 2, 3]
        np.testing.assert_array_equal(got[:, 0, 0], [0, 1, 2, 3])


# ------------------------------------------------------------------------------------------------ all_reduce
@pytest.mark.parametrize("op,ref", [(np.add, np.sum), (nl.maximum, np.max), (nl.minimum, np.min), (np.multiply, np.prod)])
def test_all_reduce_over_a_1d_grid(op, ref, rng):
    def kernel(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        i = nl.program_id(0)
        r = nl.all_reduce(nl.load(x[i]), op=op, program_axes=0)
        nl.store(out[i], r)
        return out

    x = rng.uniform(0.5, 1.5, size=(4, 64, 32)).astype(np.float32)
    got = simulate(kernel, x, grid=4)
    expect = ref(x.astype(np.float64), axis=0)
    for i in range(4):
        np.testing.assert_allclose(got[i], expect, rtol=1e-5, atol=1e-5)


def test_all_reduce_groups_chained_calls_and_dtype(rng):
    """Reduce along axis 1 only (groups of 3), then along axis 0: every program sees both results."""

    def kernel(x):
        out = nl.ndarray((2, 3, 32, 16), dtype=nl.float32, buffer=nl.shared_hbm)
        i, j = nl.program_id(0), nl.program_id(1)
        t = nl.load(x[i, j])
        m = nl.all_reduce(t, op=nl.maximum, program_axes=[1])
        s = nl.all_reduce(m, op=np.add, program_axes=(0,), dtype=nl.float32)
        nl.store(out[i, j], s)
        return out

    x = rng.standard_normal((2, 3, 32, 16)).astype(nl.bfloat16)
    got = simulate(kernel, x, grid=(2, 3))
    ref = x.astype(np.float64).max(axis=1).sum(axis=0)
    np.testing.assert_allclose(got, np.broadcast_to(ref, got.shape), rtol=2e-2, atol=2e-2)


def test_all_reduce_with_mask_and_without_grid(rng):
    def kernel(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        i_p, i_f = nl.mgrid[0:64, 0:16]
        t = nl.load(x)
        nl.store(out[i_p, i_f], nl.all_reduce(t, op=np.add, program_axes=0, mask=i_p < 40), mask=i_p < 40)
        nl.store(out[40:64, :], t[40:64, :])
        return out

    x = rng.standard_normal((64, 16)).astype(np.float32)
    np.testing.assert_array_equal(simulate(kernel, x), x)  # one program: the reduction is the identity


def test_all_reduce_mismatched_calls_is_a_deadlock(rng):
    def kernel(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        i = nl.program_id(0)
        t = nl.load(x[i])
        if i == 0:
            t = nl.all_reduce(t, op=np.add, program_axes=0)
        nl.store(out[i], t)
        return out

    with pytest.raises(NkiError) as ei:
        simulate(kernel, rng.standard_normal((2, 8, 8)).astype(np.float32), grid=2)
    assert ei.value.code == "err_all_reduce_mismatch"


def test_all_reduce_replay_does_not_disturb_outputs(rng):
    """Programs replayed to obtain their operands write into private copies, not the real outputs."""

    def kernel(x):
        out = nl.ndarray((3, 16, 8), dtype=x.dtype, buffer=nl.shared_hbm)
        cnt = nl.ndarray((3, 16, 8), dtype=x.dtype, buffer=nl.shared_hbm)
        i = nl.program_id(0)
        t = nl.load(x[i])
        nl.store(cnt[i], nl.add(t, 1.0))
        nl.store(out[i], nl.all_reduce(t, op=np.add, program_axes=0))
        return out, cnt

    x = rng.standard_normal((3, 16, 8)).astype(np.float32)
    out, cnt = simulate(kernel, x, grid=3)
    np.testing.assert_allclose(out, np.broadcast_to(x.astype(np.float64).sum(0), out.shape), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(cnt, x + 1)


# ------------------------------------------------------------------------------------------------ iterators
def test_iterator_forms():
    seen = []

    def kernel(x):
        out = nl.ndarray((1, 1), dtype=nl.float32, buffer=nl.shared_hbm)
        seen.append(list(nl.affine_range(3)))
        seen.append(list(nl.affine_range(2, 11, step=3)))
        seen.append(list(nl.sequential_range(1, 4)))
        seen.append(list(nl.static_range(0, 6, 2)))
        seen.append(list(nl.affine_range(5, step=2)))
        nl.store(out, nl.load(x))
        return out

    simulate(kernel, np.ones((1, 1), np.float32))
    assert seen == [[0, 1, 2], [2, 5, 8], [1, 2, 3], [0, 2, 4], [0, 2, 4]]


# ------------------------------------------------------------------------------------------------ random numbers
def test_rand_is_uniform_and_reproducible_with_a_seed():
    def kernel(x):
        out = nl.ndarray((3, 128, 256), dtype=nl.float32, buffer=nl.shared_hbm)
        nl.random_seed(1234)
        a = nl.rand((128, 256))
        b = nl.rand((128, 256), dtype=nl.bfloat16)
        seed = nl.full((1, 1), 1234, dtype=nl.int32)
        nl.random_seed(seed)  # a tile seed
        c = nl.rand((128, 256))
        nl.store(out[0], a)
        nl.store(out[1], b)
        nl.store(out[2], c)
        return out

    got = simulate(kernel, np.ones((1, 1), np.float32))
    a, b, c = got
    assert (a >= 0).all() and (a < 1).all() and (b >= 0).all() and (b <= 1).all()
    assert abs(a.mean() - 0.5) < 0.02 and abs(a.std() - np.sqrt(1 / 12)) < 0.02
    np.testing.assert_array_equal(a, c)  # same seed, same sequence
    assert not np.array_equal(a, b.astype(np.float32))


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.8])
def test_dropout_zeroes_with_probability_rate(rate, rng):
    def kernel(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        nl.store(out, nl.dropout(nl.load(x), rate=rate))
        return out

    x = rng.uniform(0.5, 2, size=(128, 256)).astype(np.float32)
    got = simulate(kernel, x)
    kept = got != 0
    np.testing.assert_array_equal(got[kept], x[kept])  # kept elements are not rescaled
    assert abs((~kept).mean() - rate) < 0.02


def test_dropout_with_per_partition_rate_tile(rng):
    def kernel(x, r):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        rt = nl.load(r)
        nl.store(out, nl.dropout(nl.load(x), rate=rt[:, 0]))
        return out

    x = rng.uniform(0.5, 2, size=(128, 512)).astype(np.float32)
    r = np.where(np.arange(128) < 64, 0.0, 1.0).astype(np.float32)[:, None]
    got = simulate(kernel, x, r)
    np.testing.assert_array_equal(got[:64], x[:64])
    assert (got[64:] == 0).all()
