"""The fp32 matmul versions of AWS's "Introduction to NKI Kernel Optimization" tutorial (trn2), legacy API.

result [M, N] = lhsT.T @ rhs for lhsT [K, M], rhs [K, N] (the tutorial uses fp32 inputs 4096x8192 and
8192x8192). The versions follow the tutorial's steps; the published profiles give engine utilisations only
(rows A31-A34 of docs/calibration.md).

* `kopt_v2` tiled: both operand tiles are DMA'd inside the k loop.
* `kopt_v3` loads hoisted: a column of lhsT tiles per m, a column of rhs tiles per (m, n).
* `kopt_v4` free dimensions blocked (2 x 2 tiles).
* `kopt_v5` all three dimensions blocked (M 16, N 2, K 8 tiles); partial sums of each K block are added into
  SBUF accumulators on the Vector engine; result rows are packed into one DMA per row of tiles.

As in the tutorial (current API, `nc_matmul(dst=...)` on a fresh PSUM tile), the first matmul of a group
overwrites the PSUM tile and the others accumulate; in v2 the first k iteration is peeled off the loop for
that (the legacy API has no accumulate=None).
"""

from __future__ import annotations

import numpy as np

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl

TILE_M, TILE_K, TILE_N = 128, 128, 512


def _dims(lhsT, rhs):
    K, M = lhsT.shape
    K2, N = rhs.shape
    assert K == K2, "lhsT and rhs must have the same contraction dimension"
    assert M % TILE_M == 0 and N % TILE_N == 0 and K % TILE_K == 0
    return K, M, N


def _mm_group(res, pairs):
    """res = sum of stationary.T @ moving over `pairs` (first overwrites, the rest accumulate in PSUM)."""
    for j, (s, m) in enumerate(pairs):
        if j == 0:
            res[...] = nisa.nc_matmul(s, m)
        else:
            res[...] += nisa.nc_matmul(s, m)


@nki.jit
def kopt_v2(lhsT, rhs):
    """Tiled: for every output tile, load both operand tiles inside the k loop."""
    K, M, N = _dims(lhsT, rhs)
    result = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    def load_and_multiply(res, m, n, k, first):
        lhsT_tile = nl.ndarray((TILE_K, TILE_M), dtype=lhsT.dtype, buffer=nl.sbuf)
        rhs_tile = nl.ndarray((TILE_K, TILE_N), dtype=rhs.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=lhsT_tile, src=lhsT[k * TILE_K : (k + 1) * TILE_K, m * TILE_M : (m + 1) * TILE_M])
        nisa.dma_copy(dst=rhs_tile, src=rhs[k * TILE_K : (k + 1) * TILE_K, n * TILE_N : (n + 1) * TILE_N])
        if first:
            res[...] = nisa.nc_matmul(lhsT_tile, rhs_tile)
        else:
            res[...] += nisa.nc_matmul(lhsT_tile, rhs_tile)

    for m in nl.affine_range(M // TILE_M):
        for n in nl.affine_range(N // TILE_N):
            res = nl.ndarray((TILE_M, TILE_N), dtype=nl.float32, buffer=nl.psum)
            # k = 0 overwrites the PSUM tile (peeled, so that the k loop only accumulates).
            load_and_multiply(res, m, n, 0, True)
            for k in nl.affine_range(1, K // TILE_K):
                load_and_multiply(res, m, n, k, False)
            out_tile = nisa.tensor_copy(res, dtype=result.dtype)
            nisa.dma_copy(dst=result[m * TILE_M : (m + 1) * TILE_M, n * TILE_N : (n + 1) * TILE_N], src=out_tile)
    return result


@nki.jit
def kopt_v3(lhsT, rhs):
    """Loads hoisted out of the k loop: lhsT column per m, rhs column per (m, n)."""
    K, M, N = _dims(lhsT, rhs)
    result = nl.ndarray((M, N), dtype=nl.float32, buffer=nl.shared_hbm)
    for m in nl.affine_range(M // TILE_M):
        lhsT_tiles = []
        for k in nl.affine_range(K // TILE_K):
            t = nl.ndarray((TILE_K, TILE_M), dtype=lhsT.dtype, buffer=nl.sbuf)
            nisa.dma_copy(dst=t, src=lhsT[k * TILE_K : (k + 1) * TILE_K, m * TILE_M : (m + 1) * TILE_M])
            lhsT_tiles.append(t)
        for n in nl.affine_range(N // TILE_N):
            rhs_tiles = []
            for k in nl.affine_range(K // TILE_K):
                t = nl.ndarray((TILE_K, TILE_N), dtype=rhs.dtype, buffer=nl.sbuf)
                nisa.dma_copy(dst=t, src=rhs[k * TILE_K : (k + 1) * TILE_K, n * TILE_N : (n + 1) * TILE_N])
                rhs_tiles.append(t)
            res = nl.ndarray((TILE_M, TILE_N), dtype=nl.float32, buffer=nl.psum)
            _mm_group(res, list(zip(lhsT_tiles, rhs_tiles)))
            out_tile = nisa.tensor_copy(res, dtype=nl.float32)
            nisa.dma_copy(dst=result[m * TILE_M : (m + 1) * TILE_M, n * TILE_N : (n + 1) * TILE_N], src=out_tile)
    return result


@nki.jit
def kopt_v4(lhsT, rhs, TILES_IN_BLOCK_M=2, TILES_IN_BLOCK_N=2):
    """Free dimensions blocked: each loaded tile is reused by every tile of the other operand's block."""
    K, M, N = _dims(lhsT, rhs)
    BLOCK_M, BLOCK_N = TILE_M * TILES_IN_BLOCK_M, TILE_N * TILES_IN_BLOCK_N
    assert M % BLOCK_M == 0 and N % BLOCK_N == 0
    result = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    for m in nl.affine_range(M // BLOCK_M):
        lhsT_tiles = []
        for bm in nl.affine_range(TILES_IN_BLOCK_M):
            col = []
            m0 = (m * TILES_IN_BLOCK_M + bm) * TILE_M
            for k in nl.affine_range(K // TILE_K):
                t = nl.ndarray((TILE_K, TILE_M), dtype=lhsT.dtype, buffer=nl.sbuf)
                nisa.dma_copy(dst=t, src=lhsT[k * TILE_K : (k + 1) * TILE_K, m0 : m0 + TILE_M])
                col.append(t)
            lhsT_tiles.append(col)
        for n in nl.affine_range(N // BLOCK_N):
            rhs_tiles = []
            for bn in nl.affine_range(TILES_IN_BLOCK_N):
                col = []
                n0 = (n * TILES_IN_BLOCK_N + bn) * TILE_N
                for k in nl.affine_range(K // TILE_K):
                    t = nl.ndarray((TILE_K, TILE_N), dtype=rhs.dtype, buffer=nl.sbuf)
                    nisa.dma_copy(dst=t, src=rhs[k * TILE_K : (k + 1) * TILE_K, n0 : n0 + TILE_N])
                    col.append(t)
                rhs_tiles.append(col)
            for bm in nl.affine_range(TILES_IN_BLOCK_M):
                for bn in nl.affine_range(TILES_IN_BLOCK_N):
                    res = nl.ndarray((TILE_M, TILE_N), dtype=nl.float32, buffer=nl.psum)
                    _mm_group(res, list(zip(lhsT_tiles[bm], rhs_tiles[bn])))
                    out_tile = nisa.tensor_copy(res, dtype=result.dtype)
                    m0 = (m * TILES_IN_BLOCK_M + bm) * TILE_M
                    n0 = (n * TILES_IN_BLOCK_N + bn) * TILE_N
                    nisa.dma_copy(dst=result[m0 : m0 + TILE_M, n0 : n0 + TILE_N], src=out_tile)
    return result


@nki.jit
def kopt_v5(lhsT, rhs, TILES_IN_BLOCK_M=16, TILES_IN_BLOCK_N=2, TILES_IN_BLOCK_K=8):
    """All dimensions blocked; K-block partial sums accumulate into SBUF tiles (Vector engine)."""
    K, M, N = _dims(lhsT, rhs)
    BLOCK_M, BLOCK_N, BLOCK_K = TILE_M * TILES_IN_BLOCK_M, TILE_N * TILES_IN_BLOCK_N, TILE_K * TILES_IN_BLOCK_K
    assert M % BLOCK_M == 0 and N % BLOCK_N == 0 and K % BLOCK_K == 0
    NUM_BLOCK_M, NUM_BLOCK_N, NUM_BLOCK_K = M // BLOCK_M, N // BLOCK_N, K // BLOCK_K
    result = nl.ndarray((M, N), dtype=nl.float32, buffer=nl.shared_hbm)

    for n in nl.affine_range(NUM_BLOCK_N):
        # SBUF accumulators for every (m block, m tile, n tile) of this N block, zeroed.
        acc = [
            [[nisa.memset((TILE_M, TILE_N), 0.0, lhsT.dtype) for _ in range(TILES_IN_BLOCK_N)]
             for _ in range(TILES_IN_BLOCK_M)]
            for _ in range(NUM_BLOCK_M)
        ]
        for k in nl.sequential_range(NUM_BLOCK_K):
            # rhs rows of this K block, TILE_K x BLOCK_N per DMA.
            rhs_tiles = []
            for bk in range(TILES_IN_BLOCK_K):
                t = nl.ndarray((TILE_K, BLOCK_N), dtype=rhs.dtype, buffer=nl.sbuf)
                k0 = (TILES_IN_BLOCK_K * k + bk) * TILE_K
                nisa.dma_copy(dst=t, src=rhs[k0 : k0 + TILE_K, BLOCK_N * n : BLOCK_N * (n + 1)])
                rhs_tiles.append(t)
            for m in nl.affine_range(NUM_BLOCK_M):
                # lhsT rows of this K block, TILE_K x BLOCK_M per DMA.
                lhsT_tiles = []
                for bk in nl.affine_range(TILES_IN_BLOCK_K):
                    t = nl.ndarray((TILE_K, BLOCK_M), dtype=lhsT.dtype, buffer=nl.sbuf)
                    k0 = (TILES_IN_BLOCK_K * k + bk) * TILE_K
                    nisa.dma_copy(dst=t, src=lhsT[k0 : k0 + TILE_K, BLOCK_M * m : BLOCK_M * (m + 1)])
                    lhsT_tiles.append(t)
                for bn in nl.affine_range(TILES_IN_BLOCK_N):
                    for bm in nl.affine_range(TILES_IN_BLOCK_M):
                        res = nl.ndarray((TILE_M, TILE_N), dtype=nl.float32, buffer=nl.psum)
                        _mm_group(
                            res,
                            [
                                (
                                    lhsT_tiles[bk][0:TILE_K, bm * TILE_M : (bm + 1) * TILE_M],
                                    rhs_tiles[bk][0:TILE_K, bn * TILE_N : (bn + 1) * TILE_N],
                                )
                                for bk in range(TILES_IN_BLOCK_K)
                            ],
                        )
                        a = acc[m][bm][bn]
                        a[...] = nisa.tensor_tensor(a, res, op=nl.add)

        for m in nl.affine_range(NUM_BLOCK_M):
            for bm in nl.affine_range(TILES_IN_BLOCK_M):
                # One [TILE_M, BLOCK_N] tile per row of result tiles, one DMA.
                packed = nl.ndarray((TILE_M, BLOCK_N), dtype=nl.float32, buffer=nl.sbuf)
                for bn in nl.affine_range(TILES_IN_BLOCK_N):
                    packed[0:TILE_M, bn * TILE_N : (bn + 1) * TILE_N] = nisa.tensor_copy(acc[m][bm][bn])
                r0 = (TILES_IN_BLOCK_M * m + bm) * TILE_M
                nisa.dma_copy(dst=result[r0 : r0 + TILE_M, BLOCK_N * n : BLOCK_N * (n + 1)], src=packed)
    return result


KERNELS = {"kopt_v2": kopt_v2, "kopt_v3": kopt_v3, "kopt_v4": kopt_v4, "kopt_v5": kopt_v5}


def _check() -> None:
    rng = np.random.default_rng()
    lhsT = rng.standard_normal((256, 256)).astype(np.float32)
    rhs = rng.standard_normal((256, 1024)).astype(np.float32)
    ref = lhsT.astype(np.float64).T @ rhs
    for name, k in KERNELS.items():
        kw = {"TILES_IN_BLOCK_M": 2, "TILES_IN_BLOCK_N": 2, "TILES_IN_BLOCK_K": 2} if name == "kopt_v5" else {}
        got = nki.simulate_kernel(k, lhsT, rhs, **kw)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)
        print(f"{name}: OK")


if __name__ == "__main__":
    _check()
