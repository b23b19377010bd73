"""Integer indexing of an on-chip tile's free dim keeps the dim (`buf[:, i]` is a [P, 1] column that kernels
then address as `col[:, 0]`, as the flash-attention reference does); block dims and HBM tensors drop it."""

from __future__ import annotations

import numpy as np

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.language as nl


def _run(kernel, *args):
    return nki.simulate_kernel(nki.jit(kernel), *args)


def _write_column(col, values):
    col[:, 0] = nl.copy(values)


def test_free_dim_integer_index_is_a_column(rng):
    x = rng.standard_normal((128, 4)).astype(np.float32)

    def kernel(a):
        out = nl.ndarray((128, 4), dtype=a.dtype, buffer=nl.shared_hbm)
        t = nl.load(a)
        buf = nl.ndarray((nl.par_dim(128), 4), dtype=nl.float32)
        for i in nl.affine_range(4):
            col = buf[:, i]
            assert tuple(col.shape) == (128, 1)
            _write_column(col, nl.multiply(t[:, i], 2.0))
        nl.store(out, buf)
        return out

    np.testing.assert_allclose(_run(kernel, x), 2 * x, rtol=1e-6)


def test_block_and_hbm_integer_indices_drop_the_dim(rng):
    x = rng.standard_normal((128, 3)).astype(np.float32)

    def kernel(a):
        out = nl.ndarray((128, 1), dtype=a.dtype, buffer=nl.shared_hbm)
        blocks = nl.ndarray((2, nl.par_dim(128), 3), dtype=nl.float32)
        blocks[1] = nl.load(a)
        assert tuple(blocks[1].shape) == (128, 3)
        col = nl.load(a[:, 2])  # HBM: NumPy semantics, a [128] tile
        assert tuple(col.shape) == (128,)
        nl.store(out, nl.add(blocks[1][:, 0], col))
        return out

    np.testing.assert_allclose(_run(kernel, x), (x[:, 0] + x[:, 2])[:, None], rtol=1e-6)
