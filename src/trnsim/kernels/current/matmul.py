"""Matrix multiplication, fully optimised, in the current NKI API (`import nki`).

result[M, N] = lhsT[K, M].T @ rhs[K, N]; K, M multiples of 128, N a multiple of 512.

The same blocking as the tutorial's optimised legacy kernel (trnsim/kernels/matmul.py:matmul_optimized), written
with dst-first `nisa` instructions and views instead of index grids:

* blocks of TILES_IN_BLOCK_{M,N,K} tiles; each K block of rhs ([128, tiles_k, BLOCK_N]) and lhsT
  ([128, tiles_k, BLOCK_M]) is loaded with one wide DMA per 128-row slab and reused by every output tile of the
  block (hoisted loads);
* each [128, 512] output tile accumulates its K block in one PSUM bank (`accumulate=None`: the first matmul
  of a fresh PSUM tile overwrites, the rest add), then is folded into an fp32 SBUF accumulator holding the whole
  M extent of the N block (the first K block copies instead of adding, so no memset is needed);
* the finished rows are cast once and stored with one [128, BLOCK_N] DMA each.
"""

from __future__ import annotations

import numpy as np

import trnsim.frontend.current as nki
import trnsim.frontend.current.isa as nisa
import trnsim.frontend.current.language as nl


def _fit_block(tiles: int, preferred: int) -> int:
    """The largest block (in tiles) <= preferred that divides `tiles`."""
    for b in range(min(tiles, preferred), 0, -1):
        if tiles % b == 0:
            return b
    return 1


@nki.jit
def matmul(lhsT, rhs, TILES_IN_BLOCK_M=None, TILES_IN_BLOCK_N=None, TILES_IN_BLOCK_K=None):
    """result = lhsT.T @ rhs in the dtype of lhsT (fp32 accumulation in PSUM and SBUF)."""
    K, M = lhsT.shape
    K_, N = rhs.shape
    assert K == K_, f"contraction mismatch: lhsT {lhsT.shape}, rhs {rhs.shape}"
    TILE_K = nl.tile_size.pmax
    TILE_M = nl.tile_size.gemm_stationary_fmax
    TILE_N = nl.tile_size.gemm_moving_fmax
    assert K % TILE_K == 0 and M % TILE_M == 0 and N % TILE_N == 0, f"K={K}, M={M} need multiples of 128, N={N} of 512"
    tb_m = TILES_IN_BLOCK_M or _fit_block(M // TILE_M, 8)
    tb_n = TILES_IN_BLOCK_N or _fit_block(N // TILE_N, 2)
    tb_k = TILES_IN_BLOCK_K or _fit_block(K // TILE_K, 8)
    BLOCK_M, BLOCK_N = TILE_M * tb_m, TILE_N * tb_n
    n_blk_m, n_blk_n, n_blk_k = M // BLOCK_M, N // BLOCK_N, K // (TILE_K * tb_k)
    m_tiles = M // TILE_M

    result = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)

    for n in range(n_blk_n):
        # fp32 accumulators of this N block: [128 rows of an M tile, M tile, BLOCK_N columns]
        acc = nl.ndarray((TILE_M, m_tiles, BLOCK_N), dtype=nl.float32, buffer=nl.sbuf)
        for k in range(n_blk_k):
            rhs_blk = nl.ndarray((TILE_K, tb_k, BLOCK_N), dtype=rhs.dtype, buffer=nl.sbuf)
            for bk in range(tb_k):
                row = (k * tb_k + bk) * TILE_K
                nisa.dma_copy(dst=rhs_blk[:, bk, :], src=rhs[row : row + TILE_K, n * BLOCK_N : (n + 1) * BLOCK_N])
            for m in range(n_blk_m):
                lhsT_blk = nl.ndarray((TILE_K, tb_k, BLOCK_M), dtype=lhsT.dtype, buffer=nl.sbuf)
                for bk in range(tb_k):
                    row = (k * tb_k + bk) * TILE_K
                    nisa.dma_copy(dst=lhsT_blk[:, bk, :], src=lhsT[row : row + TILE_K, m * BLOCK_M : (m + 1) * BLOCK_M])
                for bn in range(tb_n):
                    for bm in range(tb_m):
                        res_psum = nl.ndarray((TILE_M, TILE_N), dtype=nl.float32, buffer=nl.psum)
                        for bk in range(tb_k):
                            nisa.nc_matmul(
                                dst=res_psum,
                                stationary=lhsT_blk[:, bk, bm * TILE_M : (bm + 1) * TILE_M],
                                moving=rhs_blk[:, bk, bn * TILE_N : (bn + 1) * TILE_N],
                            )
                        acc_tile = acc[:, m * tb_m + bm, bn * TILE_N : (bn + 1) * TILE_N]
                        if k == 0:
                            nisa.tensor_copy(dst=acc_tile, src=res_psum)
                        else:
                            nisa.tensor_tensor(dst=acc_tile, data1=acc_tile, data2=res_psum, op=nl.add)
        for mt in range(m_tiles):
            out_tile = nl.ndarray((TILE_M, BLOCK_N), dtype=result.dtype, buffer=nl.sbuf)
            nisa.tensor_copy(dst=out_tile, src=acc[:, mt, :])
            nisa.dma_copy(dst=result[mt * TILE_M : (mt + 1) * TILE_M, n * BLOCK_N : (n + 1) * BLOCK_N], src=out_tile)
    return result


def reference(lhsT: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """float64 NumPy reference: lhsT.T @ rhs."""
    return np.asarray(lhsT, dtype=np.float64).T @ np.asarray(rhs, dtype=np.float64)


def _check() -> None:
    import ml_dtypes

    rng = np.random.default_rng()
    for dt, tol in ((np.float32, 1e-4), (ml_dtypes.bfloat16, 2e-2)):
        a = rng.standard_normal((256, 256)).astype(dt)
        b = rng.standard_normal((256, 1024)).astype(dt)
        got = nki.simulate(matmul)(a, b).astype(np.float64)
        ref = reference(a, b)
        err = float(np.abs(got - ref).max() / np.abs(ref).max())
        assert err < tol, f"matmul ({np.dtype(dt).name}): relative error {err:.3g}"
        print(f"matmul current API ({np.dtype(dt).name}): OK (error relative to max |result| {err:.2e})")


if __name__ == "__main__":
    _check()
