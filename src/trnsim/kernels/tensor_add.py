"""Tensor add: a single-tile kernel and an SPMD-grid kernel (legacy NKI API)."""

from __future__ import annotations

import numpy as np

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.language as nl


@nki.jit
def tensor_add_tile(a_input, b_input):
    """c = a + b for one [128, 512] tile."""
    c_output = nl.ndarray(a_input.shape, dtype=a_input.dtype, buffer=nl.shared_hbm)
    a_tile = nl.load(a_input)
    b_tile = nl.load(b_input)
    c_tile = a_tile + b_tile
    nl.store(c_output, value=c_tile)
    return c_output


@nki.jit
def tensor_add_grid(a_input, b_input):
    """c = a + b; launch as tensor_add_grid[M // 128, N // 512](a, b)."""
    c_output = nl.ndarray(a_input.shape, dtype=a_input.dtype, buffer=nl.shared_hbm)
    ix = nl.program_id(0) * 128 + nl.arange(128)[:, None]
    iy = nl.program_id(1) * 512 + nl.arange(512)[None, :]
    a_tile = nl.load(a_input[ix, iy])
    b_tile = nl.load(b_input[ix, iy])
    nl.store(c_output[ix, iy], value=nl.add(a_tile, b_tile))
    return c_output


def _check() -> None:
    rng = np.random.default_rng()
    a = rng.standard_normal((256, 1024)).astype(np.float32)
    b = rng.standard_normal((256, 1024)).astype(np.float32)
    got = nki.simulate_kernel(tensor_add_grid[2, 2], a, b)
    np.testing.assert_allclose(got, a.astype(np.float64) + b, rtol=1e-6, atol=1e-6)
    one = nki.simulate_kernel(tensor_add_tile, a[:128, :512], b[:128, :512])
    np.testing.assert_allclose(one, a[:128, :512].astype(np.float64) + b[:128, :512], rtol=1e-6, atol=1e-6)
    print(f"tensor_add: OK (max abs err {float(np.abs(got - (a + b)).max()):.2e})")


if __name__ == "__main__":
    _check()
