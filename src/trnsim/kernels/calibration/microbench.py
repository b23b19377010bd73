"""Microbenchmarks for the calibration rows that measure one instruction kind in isolation."""

from __future__ import annotations

import numpy as np

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl


@nki.jit
def single_dma(a):
    """One HBM -> SBUF transfer of the whole input, then one store back (rows A29, A36: time the load)."""
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    tile = nl.load(a)
    nl.store(out, value=tile)
    return out


@nki.jit
def dependent_activations(x, n_steps=64):
    """`n_steps` back-to-back activations on a [P, 1] tile, each reading the previous one's output (row A30)."""
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    t = nl.load(x)
    for _ in nl.static_range(n_steps):
        t = nisa.activation(op=nl.copy, data=t, scale=1.0)
    nl.store(out, value=t)
    return out


@nki.jit
def single_matmul(stationary, moving):
    """One nc_matmul (stationary [K, M], moving [K, N]) -> result [M, N] (row A35: a 3-column fp16 matmul)."""
    K, M = stationary.shape
    _, N = moving.shape
    out = nl.ndarray((M, N), dtype=nl.float32, buffer=nl.shared_hbm)
    s = nl.load(stationary)
    m = nl.load(moving)
    p = nisa.nc_matmul(s, m)
    nl.store(out, value=nl.copy(p))
    return out


def _check() -> None:
    rng = np.random.default_rng()
    a = rng.standard_normal((4, 4096)).astype(np.float32)
    np.testing.assert_array_equal(nki.simulate_kernel(single_dma, a), a)
    x = rng.standard_normal((128, 1)).astype(np.float32)
    np.testing.assert_array_equal(nki.simulate_kernel(dependent_activations, x, n_steps=8), x)
    s = rng.standard_normal((128, 128)).astype(np.float16)
    m = rng.standard_normal((128, 3)).astype(np.float16)
    got = nki.simulate_kernel(single_matmul, s, m)
    np.testing.assert_allclose(got, s.astype(np.float64).T @ m, rtol=1e-3, atol=1e-3)
    print("microbench: OK")


if __name__ == "__main__":
    _check()
