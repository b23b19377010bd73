"""Tiles of different rank line up on the partition dimension: a reduction without keepdims gives a [P] tile
that combines with [P, F] tiles column-wise (the softmax / rmsnorm / layernorm tutorials rely on it)."""

from __future__ import annotations

import numpy as np

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.language as nl


def _run(kernel, *args):
    return nki.simulate_kernel(nki.jit(kernel), *args)


def test_row_normalise_with_rank1_row_sums(rng):
    # 128 columns: with NumPy's right-aligned broadcasting a [128] vector would scale columns, not rows
    x = rng.random((128, 128)).astype(np.float32) + 0.5

    def kernel(t):
        out = nl.ndarray(t.shape, dtype=t.dtype, buffer=nl.shared_hbm)
        tile = nl.load(t)
        sums = nl.sum(tile, axis=[1])  # shape [128]
        nl.store(out, tile / sums)
        return out

    got = _run(kernel, x)
    np.testing.assert_allclose(got, x / x.sum(axis=1, keepdims=True), rtol=1e-5)


def test_mean_centering_and_select_with_rank1_operands(rng):
    x = rng.standard_normal((96, 40)).astype(np.float32)

    def kernel(t):
        centred = nl.ndarray(t.shape, dtype=t.dtype, buffer=nl.shared_hbm)
        clipped = nl.ndarray(t.shape, dtype=t.dtype, buffer=nl.shared_hbm)
        tile = nl.load(t)
        mean = nl.mean(tile, axis=1)  # [96]
        nl.store(centred, nl.subtract(tile, mean))
        nl.store(clipped, nl.where(tile > mean, tile, mean))
        return centred, clipped

    centred, clipped = _run(kernel, x)
    m = x.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(centred, x - m, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(clipped, np.where(x > m, x, m), rtol=1e-6)
