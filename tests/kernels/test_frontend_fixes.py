"""Front-end behaviour the kernel library relies on (legacy API), pinned by small kernels:

* `t[i_p, i_f] = value` with nl.arange / nl.mgrid keys (no lazy `==` on index expressions),
* nl.load_transpose2d honours `mask=` (ragged edge tiles),
* always-false masks -- loop-index predicates such as `mask=(k * 512 <= q * 128)` (Python bools in an eager
  simulator) and ragged boxes that are empty -- turn the call into a no-op: nothing is recorded, assigning or
  accumulating the result does nothing, and using it as an operand is an error.
"""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl
from trnsim.core.errors import NkiError
from trnsim.core.launch import last_launch


@nki.jit
def _mgrid_assign(x):
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    i = nl.mgrid[0 : x.shape[0], 0 : x.shape[1]]
    t = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    t[i.p, i.x] = nl.load(x[i.p, i.x])
    t[i.p, i.x] += nl.exp(t[i.p, i.x])
    nl.store(out[i.p, i.x], value=t)
    return out


def test_assign_with_index_expressions(rng):
    x = rng.standard_normal((64, 96)).astype(np.float32)
    got = nki.simulate_kernel(_mgrid_assign, x)
    np.testing.assert_allclose(got, x + np.exp(x), rtol=1e-6)


@nki.jit
def _load_transpose_ragged(x):
    R, C = x.shape
    out = nl.ndarray((C, R), dtype=x.dtype, buffer=nl.shared_hbm)
    i_r = nl.arange(128)[:, None]
    i_c = nl.arange(C)[None, :]
    o_p = nl.arange(C)[:, None]
    o_f = nl.arange(128)[None, :]
    for t in nl.affine_range((R + 127) // 128):
        tile = nl.load_transpose2d(x[t * 128 + i_r, i_c], mask=(t * 128 + i_r < R))
        nl.store(out[o_p, t * 128 + o_f], value=tile, mask=(t * 128 + o_f < R))
    return out


def test_load_transpose2d_mask(rng):
    x = rng.standard_normal((200, 48)).astype(np.float32)
    np.testing.assert_array_equal(nki.simulate_kernel(_load_transpose_ragged, x), x.T)


@nki.jit
def _lower_triangle_blocks(a, b):
    """C[i, j] = A_i @ B_j only for j <= i (128 x 128 blocks), using loop-index masks to skip the rest."""
    n = a.shape[1] // 128
    out = nl.ndarray((a.shape[1], b.shape[1]), dtype=nl.float32, buffer=nl.shared_hbm)
    ip = nl.arange(128)[:, None]
    jf = nl.arange(128)[None, :]
    a_sb = nl.load(a)
    b_sb = nl.load(b)
    for i in nl.affine_range(n):
        for j in nl.affine_range(n):
            needed = j <= i
            res = nl.zeros((128, 128), dtype=nl.float32, buffer=nl.psum)
            res[ip, jf] += nisa.nc_matmul(a_sb[ip, i * 128 + jf], b_sb[ip, j * 128 + jf], mask=needed)
            blk = nl.copy(res, mask=needed & (ip >= 0))  # a loop-index bool combined with an index predicate
            blk2 = nl.multiply(blk, 2.0, mask=needed)
            zero = nisa.memset((128, 128), 0.0, nl.float32, mask=(j > i))
            nl.store(out[i * 128 + ip, j * 128 + jf], value=blk2, mask=needed)
            nl.store(out[i * 128 + ip, j * 128 + jf], value=zero, mask=(j > i))
    return out


def test_loop_index_masks_skip_instructions(rng):
    a = rng.standard_normal((128, 384)).astype(np.float32)
    b = rng.standard_normal((128, 384)).astype(np.float32)
    got = nki.simulate_kernel(_lower_triangle_blocks, a, b)
    full = 2.0 * (a.astype(np.float64).T @ b)
    want = np.zeros_like(full)
    for i in range(3):
        for j in range(i + 1):
            want[i * 128 : (i + 1) * 128, j * 128 : (j + 1) * 128] = full[
                i * 128 : (i + 1) * 128, j * 128 : (j + 1) * 128
            ]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    stream = last_launch().stream
    assert sum(1 for ins in stream if ins.opcode == "MATMUL") == 6  # 6 of the 9 blocks are needed
    assert not last_launch().diagnostics


@nki.jit
def _empty_ragged_tile(x):
    # a row-tile loop one tile too long: the last tile's mask box is empty
    R, C = x.shape
    out = nl.ndarray((R, C), dtype=x.dtype, buffer=nl.shared_hbm)
    ip = nl.arange(128)[:, None]
    jf = nl.arange(C)[None, :]
    for t in nl.affine_range((R + 127) // 128 + 1):
        rows = t * 128 + ip < R
        tile = nl.load(x[t * 128 + ip, jf], mask=rows)
        s = nl.sum(tile, axis=[1], keepdims=True, mask=rows)
        y = nl.subtract(tile, s, mask=rows)
        nl.store(out[t * 128 + ip, jf], value=y, mask=rows)
    return out


def test_empty_mask_box_is_a_no_op(rng):
    x = rng.standard_normal((130, 40)).astype(np.float32)
    got = nki.simulate_kernel(_empty_ragged_tile, x)
    np.testing.assert_allclose(got, x - x.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-5)
    assert sum(1 for ins in last_launch().stream if ins.opcode == "DMA") == 4  # 2 tiles x (load, store)


@nki.jit
def _use_masked_off_result(x):
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    t = nl.load(x)
    dead = nl.exp(t, mask=False)
    nl.store(out, value=nl.add(dead, t))
    return out


def test_masked_off_result_cannot_be_read(rng):
    x = rng.standard_normal((8, 8)).astype(np.float32)
    with pytest.raises(NkiError, match="mask is always false"):
        nki.simulate_kernel(_use_masked_off_result, x)
