"""Subscripts built from a larger nl.mgrid: grid axes the subscript does not use are not tile dimensions, and a
size-1 partition index on a later grid axis still gives a [1, F] tile (rmsnorm / layernorm tutorial idioms).
Index grids of different rank in one subscript line up from the right (NumPy); ones that cannot are reported."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.language as nl
from trnsim.core.errors import NkiError


def _run(kernel, *args):
    return nki.simulate_kernel(nki.jit(kernel), *args)


def test_unused_grid_axis_is_dropped_and_rows_reduce_over_free_dim(rng):
    rows, cols = 200, 64
    x = rng.random((rows, cols)).astype(np.float32) + 0.1
    w = rng.random(cols).astype(np.float32)

    def kernel(a, g):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        ip, ione, jf = nl.mgrid[0:128, 0:1, 0:cols]
        g_row = nl.load(g.reshape((1, cols))[ione, jf])
        assert g_row.shape == (1, cols)
        for i in nl.affine_range(2):
            live = i * 128 + ip < rows
            tile = nl.load(a[i * 128 + ip, jf], mask=live)
            assert tile.shape == (128, cols)
            scale = nl.sum(tile, axis=[1])  # over the free dim, not the size-1 middle grid axis
            res = nl.multiply(nl.divide(tile, scale, mask=live), g_row.broadcast_to((128, cols)), mask=live)
            nl.store(out[i * 128 + ip, jf], value=res, mask=live)
        return out

    got = _run(kernel, x, w)
    np.testing.assert_allclose(got, x / x.sum(axis=1, keepdims=True) * w, rtol=1e-5)


def test_size1_partition_index_on_last_grid_axis(rng):
    cols = 48
    v = rng.standard_normal(cols).astype(np.float32)

    def kernel(g):
        out = nl.ndarray((128, cols), dtype=g.dtype, buffer=nl.shared_hbm)
        ip, jf, ione = nl.mgrid[0:128, 0:cols, 0:1]
        row = nl.load(g.reshape((1, cols))[ione, jf])
        assert row.shape == (1, cols)
        nl.store(out, row.broadcast_to((128, cols)))
        return out

    np.testing.assert_array_equal(_run(kernel, v), np.broadcast_to(v, (128, cols)))


def test_mixed_rank_grids_in_one_subscript_line_up_from_the_right(rng):
    """A 2-D grid next to a 3-D one takes the 3-D grid's last two axes, as NumPy broadcasts open grids."""
    x = rng.standard_normal((128, 64)).astype(np.float32)

    def kernel(a):
        out = nl.ndarray((128, 32), dtype=a.dtype, buffer=nl.shared_hbm)
        ip, _, _ = nl.mgrid[0:128, 0:32, 0:1]
        jf, _ = nl.mgrid[0:32, 0:6]
        t = nl.load(a)
        nl.store(out, nl.copy(t[ip, 2 * jf]))
        return out

    np.testing.assert_array_equal(_run(kernel, x), x[:, 0:64:2])


def test_mixed_rank_grids_that_cannot_broadcast_are_reported():
    x = np.zeros((128, 64), dtype=np.float32)

    def kernel(a):
        out = nl.ndarray((128, 16), dtype=a.dtype, buffer=nl.shared_hbm)
        i, j, _ = nl.mgrid[0:128, 0:16, 0:8]
        u, _ = nl.mgrid[0:32, 0:4]
        t = nl.load(a)
        nl.store(out, nl.copy(t[i, j + u]))
        return out

    with pytest.raises(NkiError) as ei:
        _run(kernel, x)
    assert ei.value.code == "err_index_grids_do_not_broadcast"
    assert "different rank" in str(ei.value) and ei.value.loc.file == __file__
