"""Index grids of different rank in one kernel, subscript and mask.

Masks restrict the index *variables* they mention, wherever a subscript puts them; a 2-D nl.mgrid used next to a
3-D one lines up with its last two axes (NumPy broadcasting of open grids). The kernels here are written for these
tests: a row normalisation whose statistics come from chunked bn_stats over a 2-D grid inside a 3-D tile grid, with
a ragged last chunk (so the mask really cuts), and smaller cases of the same mechanics.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl
from trnsim.core.errors import NkiError


def _run(kernel, *args):
    return nki.simulate_kernel(nki.jit(kernel), *args)


def _chunked_norm_kernel(chunk: int):
    def kernel(x, w, b):
        rows, cols = x.shape
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        # one 3-D grid for the row tiles (its size-1 last axis serves the [1, cols] parameter rows) ...
        r, c, one = nl.mgrid[0:128, 0:cols, 0:1]
        w_row = nl.load(w.reshape((1, cols))[one, c]).broadcast_to((128, cols))
        b_row = nl.load(b.reshape((1, cols))[one, c]).broadcast_to((128, cols))
        for t in nl.affine_range(math.ceil(rows / 128)):
            xt = nl.load(x[t * 128 + r, c], mask=(t * 128 + r < rows))
            # ... and a 2-D grid for the bn_stats chunks and their 6 statistics
            k, s = nl.mgrid[0:chunk, 0:6]
            n_chunks = math.ceil(cols / chunk)
            stats = nl.ndarray((128, 6 * n_chunks), dtype=nl.float32)
            for q in nl.affine_range(n_chunks):
                stats[r, q * 6 + s] = nisa.bn_stats(
                    xt[r, q * chunk + k], mask=(q * chunk + k < cols) & (t * 128 + r < rows), dtype=nl.float32
                )
            mv = nisa.bn_aggr(stats, mask=(t * 128 + r < rows))
            mean = mv[r, 0]
            inv = nl.rsqrt(mv[r, 1] + 1e-5, mask=(t * 128 + r < rows))
            y = nisa.tensor_scalar(
                data=xt, op0=np.subtract, operand0=mean, op1=np.multiply, operand1=inv, mask=(t * 128 + r < rows)
            )
            res = nl.add(nl.multiply(y, w_row, mask=(t * 128 + r < rows)), b_row, mask=(t * 128 + r < rows))
            nl.store(out[t * 128 + r, c], value=res, mask=(t * 128 + r < rows))
        return out

    return kernel


@pytest.mark.parametrize("rows,cols,chunk", [(256, 200, 128), (200, 300, 128), (130, 96, 40)])
def test_chunked_row_norm_matches_numpy(rows, cols, chunk, rng):
    x = rng.standard_normal((rows, cols)).astype(np.float32) * 3 + 1
    w = rng.standard_normal(cols).astype(np.float32)
    b = rng.standard_normal(cols).astype(np.float32)
    got = _run(_chunked_norm_kernel(chunk), x, w, b)
    xd = x.astype(np.float64)
    ref = (xd - xd.mean(axis=1, keepdims=True)) / np.sqrt(xd.var(axis=1, keepdims=True) + 1e-5) * w + b
    np.testing.assert_allclose(got, ref, rtol=2e-4, atol=2e-4)


def test_mask_on_2d_grid_variable_cuts_its_free_axis_not_the_partitions(rng):
    """The mask names only the 2-D grid's first variable; in the subscript that variable is the free axis."""
    x = rng.standard_normal((128, 64)).astype(np.float32)

    def kernel(a):
        out = nl.ndarray((128, 64), dtype=a.dtype, buffer=nl.shared_hbm)
        p, _, _ = nl.mgrid[0:128, 0:64, 0:1]
        f, g = nl.mgrid[0:64, 0:3]
        t = nl.load(a[p, f], mask=(f < 40))
        assert t.shape == (128, 64)
        z = nl.zeros((128, 64), dtype=a.dtype)
        z[p, f] = nl.multiply(t[p, f], 2.0, mask=(f < 40))
        nl.store(out[p, f], z)
        return out

    got = _run(kernel, x)
    ref = np.zeros_like(x)
    ref[:, :40] = 2 * x[:, :40]
    np.testing.assert_array_equal(got, ref)


def test_plain_tile_result_of_masked_call_is_restricted_where_the_variable_sits(rng):
    """`nl.exp(t[p, f], mask=f < n)` returns a plain [128, 64] tile; assigning it copies only the columns < n."""
    x = rng.standard_normal((128, 64)).astype(np.float32)

    def kernel(a):
        out = nl.ndarray((128, 64), dtype=a.dtype, buffer=nl.shared_hbm)
        p, _, _ = nl.mgrid[0:128, 0:1, 0:1]
        f, _ = nl.mgrid[0:64, 0:2]
        t = nl.load(a)
        acc = nl.zeros((128, 64), dtype=a.dtype)
        acc[...] = nl.exp(t[p, f], mask=(f < 24))
        nl.store(out, acc)
        return out

    got = _run(kernel, x)
    ref = np.zeros_like(x)
    ref[:, :24] = np.exp(x[:, :24])
    np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_non_separable_mask_across_grids_of_different_rank(rng):
    """A comparison of a 3-D grid variable with a 2-D one (a triangle) evaluates on the subscript's axes."""
    x = rng.standard_normal((64, 48)).astype(np.float32)

    def kernel(a):
        out = nl.ndarray((64, 48), dtype=a.dtype, buffer=nl.shared_hbm)
        p, _, _ = nl.mgrid[0:64, 0:2, 0:1]
        f, _ = nl.mgrid[0:48, 0:5]
        z = nl.zeros((64, 48), dtype=a.dtype)
        z[p, f] = nl.load(a[p, f], mask=(f <= p))
        nl.store(out, z)
        return out

    got = _run(kernel, x)
    np.testing.assert_array_equal(got, np.tril(x))


def test_mask_variable_outside_the_subscript_goes_by_position(rng):
    """A mask built from another nl.arange of the same shape than the subscript's still cuts that position."""
    x = rng.standard_normal((100, 32)).astype(np.float32)

    def kernel(a):
        out = nl.ndarray((100, 32), dtype=a.dtype, buffer=nl.shared_hbm)
        ip = nl.arange(128)[:, None]
        jf = nl.arange(32)[None, :]
        rows = nl.arange(128)[:, None]
        t = nl.load(a[ip, jf], mask=(rows < 100))
        nl.store(out[ip, jf], t, mask=(rows < 100))
        return out

    np.testing.assert_array_equal(_run(kernel, x), x)


def test_mixed_rank_expression_values_broadcast_like_numpy():
    p, q, _ = nl.mgrid[0:4, 0:3, 0:1]
    f, _ = nl.mgrid[0:3, 0:2]
    e = 10 * p + f
    assert e.shape == (4, 3, 1)
    np.testing.assert_array_equal(e.evaluate(), 10 * np.arange(4)[:, None, None] + np.arange(3)[:, None])
    pred = (f < 2) & (p < 3)
    ranges, rest, _ = pred.analyse()
    assert not rest and set(ranges) == {f.single_var()[0], p.single_var()[0]}
    assert ranges[f.single_var()[0]] == (0, 2) and ranges[p.single_var()[0]] == (0, 3)


def test_grids_that_cannot_line_up_either_way_are_reported(rng):
    def kernel(a):
        out = nl.ndarray((128, 16), dtype=a.dtype, buffer=nl.shared_hbm)
        i, j, _ = nl.mgrid[0:128, 0:16, 0:8]
        u, _ = nl.mgrid[0:32, 0:4]
        nl.store(out, nl.load(a[i, j + u]))
        return out

    with pytest.raises(NkiError) as ei:
        _run(kernel, rng.standard_normal((128, 64)).astype(np.float32))
    assert ei.value.code == "err_index_grids_do_not_broadcast"
    assert ei.value.loc.file == __file__
