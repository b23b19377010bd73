"""Matrix multiplication, the legacy NKI tutorial ladder: basic -> tiled -> hoisted -> blocked -> optimized.

Every kernel takes lhsT [K, M] (the left operand delivered transposed, so that the contraction dimension K
lies on the partitions) and rhs [K, N] in HBM and returns result = lhsT.T @ rhs [M, N] in shared HBM, with
the dtype of the inputs (fp32, bf16, fp16 or fp8). Products accumulate in fp32 in PSUM.

* `matmul_basic`     one tile: K <= 128, M <= 128, N <= 512.
* `matmul_tiled`     M, N, K tiled by 128 / 512 / 128; both operand tiles are loaded inside the k loop.
* `matmul_hoisted`   Optimization 1: lhsT tiles loaded once per m, rhs tiles once per (m, n), outside the
                     innermost loop.
* `matmul_blocked`   Optimization 2: the free dimensions M and N are blocked, so that each loaded tile is
                     reused by every tile of the other operand's block.
* `matmul_optimized` Optimization 3: M, N and K are blocked; per K block the partial results are accumulated
                     into SBUF, DMA transfers are TILE_K x BLOCK wide, results leave as packed rows.
"""

from __future__ import annotations

import numpy as np

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl


def _shapes(lhsT, rhs):
    K, M = lhsT.shape
    K_, N = rhs.shape
    assert K == K_, f"lhsT {lhsT.shape} and rhs {rhs.shape} must have the same contraction dimension"
    return K, M, N


def _check_multiples(K, M, N, tile_k, tile_m, tile_n):
    assert M % tile_m == 0, f"M={M} must be a multiple of {tile_m}"
    assert N % tile_n == 0, f"N={N} must be a multiple of {tile_n}"
    assert K % tile_k == 0, f"K={K} must be a multiple of {tile_k}"


# ------------------------------------------------------------------------------------------------ basic
@nki.jit
def matmul_basic(lhsT, rhs):
    """One Tensor-engine matmul: lhsT [K<=128, M<=128], rhs [K, N<=512] -> result [M, N]."""
    K, M, N = _shapes(lhsT, rhs)
    assert K <= nl.tile_size.pmax, f"K={K} exceeds the partition count {nl.tile_size.pmax}"
    assert M <= nl.tile_size.gemm_stationary_fmax, f"M={M} exceeds gemm_stationary_fmax"
    assert N <= nl.tile_size.gemm_moving_fmax, f"N={N} exceeds gemm_moving_fmax"
    result = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)

    # Index grids of the operands and of the result; the contraction axis K is the partition axis.
    i_lhsT_p, i_lhsT_f = nl.mgrid[0:K, 0:M]
    i_rhs_p, i_rhs_f = nl.mgrid[0:K, 0:N]
    i_out_p, i_out_f = nl.mgrid[0:M, 0:N]

    lhsT_tile = nl.load(lhsT[i_lhsT_p, i_lhsT_f])
    rhs_tile = nl.load(rhs[i_rhs_p, i_rhs_f])

    # transpose_x=True: the stationary operand is already [K, M]. The product lands in PSUM as fp32.
    res_psum = nl.matmul(lhsT_tile, rhs_tile, transpose_x=True)

    # PSUM -> SBUF with the cast to the output dtype, then SBUF -> HBM.
    res_sbuf = nl.copy(res_psum, dtype=result.dtype)
    nl.store(result[i_out_p, i_out_f], value=res_sbuf)
    return result


# ------------------------------------------------------------------------------------------------ tiled
@nki.jit
def matmul_tiled(lhsT, rhs):
    """Tiled matmul: for every (m, n) output tile, loop over k, loading both operand tiles inside the loop."""
    K, M, N = _shapes(lhsT, rhs)
    TILE_M = nl.tile_size.gemm_stationary_fmax  # 128
    TILE_K = nl.tile_size.pmax  # 128
    TILE_N = nl.tile_size.gemm_moving_fmax  # 512
    _check_multiples(K, M, N, TILE_K, TILE_M, TILE_N)
    result = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)

    for m in nl.affine_range(M // TILE_M):
        for n in nl.affine_range(N // TILE_N):
            res_psum = nl.zeros((TILE_M, TILE_N), nl.float32, buffer=nl.psum)
            for k in nl.affine_range(K // TILE_K):
                lhsT_tile = nl.ndarray((TILE_K, TILE_M), dtype=lhsT.dtype, buffer=nl.sbuf)
                rhs_tile = nl.ndarray((TILE_K, TILE_N), dtype=rhs.dtype, buffer=nl.sbuf)
                lhsT_tile[...] = nl.load(lhsT[k * TILE_K : (k + 1) * TILE_K, m * TILE_M : (m + 1) * TILE_M])
                rhs_tile[...] = nl.load(rhs[k * TILE_K : (k + 1) * TILE_K, n * TILE_N : (n + 1) * TILE_N])
                # Partial sums over k accumulate in the PSUM tile.
                res_psum += nl.matmul(lhsT_tile[...], rhs_tile[...], transpose_x=True)

            res_sbuf = nl.copy(res_psum, dtype=result.dtype)
            nl.store(result[m * TILE_M : (m + 1) * TILE_M, n * TILE_N : (n + 1) * TILE_N], value=res_sbuf)
    return result


# ------------------------------------------------------------------------------------------------ hoisted
@nki.jit
def matmul_hoisted(lhsT, rhs):
    """Optimization 1: hoist the operand loads out of the innermost (k) loop.

    The lhsT column of tiles for one m is loaded once and reused for every n; the rhs column of tiles for
    one n is loaded before the k loop, which then only issues matmuls.
    """
    K, M, N = _shapes(lhsT, rhs)
    TILE_M = nl.tile_size.gemm_stationary_fmax
    TILE_K = nl.tile_size.pmax
    TILE_N = nl.tile_size.gemm_moving_fmax
    _check_multiples(K, M, N, TILE_K, TILE_M, TILE_N)
    result = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)

    i_lhsT = nl.mgrid[0:TILE_K, 0:TILE_M]
    i_rhs = nl.mgrid[0:TILE_K, 0:TILE_N]
    i_res = nl.mgrid[0:TILE_M, 0:TILE_N]

    for m in nl.affine_range(M // TILE_M):
        # The whole K extent of lhsT for this m: K // TILE_K tiles of [TILE_K, TILE_M].
        lhsT_tiles = []
        for k in nl.affine_range(K // TILE_K):
            lhsT_tile = nl.ndarray((TILE_K, TILE_M), dtype=lhsT.dtype, buffer=nl.sbuf)
            lhsT_tile[i_lhsT.p, i_lhsT.x] = nl.load(lhsT[k * TILE_K + i_lhsT.p, m * TILE_M + i_lhsT.x])
            lhsT_tiles.append(lhsT_tile)

        for n in nl.affine_range(N // TILE_N):
            rhs_tiles = []
            for k in nl.affine_range(K // TILE_K):
                rhs_tile = nl.ndarray((TILE_K, TILE_N), dtype=rhs.dtype, buffer=nl.sbuf)
                rhs_tile[i_rhs.p, i_rhs.x] = nl.load(rhs[k * TILE_K + i_rhs.p, n * TILE_N + i_rhs.x])
                rhs_tiles.append(rhs_tile)

            res_psum = nl.zeros((TILE_M, TILE_N), nl.float32, buffer=nl.psum)
            for k in nl.affine_range(K // TILE_K):
                res_psum[...] += nl.matmul(
                    lhsT_tiles[k][i_lhsT.p, i_lhsT.x], rhs_tiles[k][i_rhs.p, i_rhs.x], transpose_x=True
                )

            res_sbuf = nl.copy(res_psum, dtype=result.dtype)
            nl.store(result[m * TILE_M + i_res.p, n * TILE_N + i_res.x], value=res_sbuf)
    return result


# ------------------------------------------------------------------------------------------------ blocked
@nki.jit
def matmul_blocked(lhsT, rhs, TILES_IN_BLOCK_M=None, TILES_IN_BLOCK_N=None):
    """Optimization 2: block the free dimensions M and N.

    A block of TILES_IN_BLOCK_M lhsT tile-columns and a block of TILES_IN_BLOCK_N rhs tile-columns are
    loaded once, and every pair of tiles in the two blocks is multiplied, so each load is reused
    TILES_IN_BLOCK times. The block sizes default to 2 x 2 (the tutorial's choice) where the shape allows.
    """
    K, M, N = _shapes(lhsT, rhs)
    TILE_M = nl.tile_size.gemm_stationary_fmax
    TILE_K = nl.tile_size.pmax
    TILE_N = nl.tile_size.gemm_moving_fmax
    _check_multiples(K, M, N, TILE_K, TILE_M, TILE_N)
    if TILES_IN_BLOCK_M is None:
        TILES_IN_BLOCK_M = _fit_block(M // TILE_M, 2)
    if TILES_IN_BLOCK_N is None:
        TILES_IN_BLOCK_N = _fit_block(N // TILE_N, 2)
    BLOCK_M = TILE_M * TILES_IN_BLOCK_M
    BLOCK_N = TILE_N * TILES_IN_BLOCK_N
    assert M % BLOCK_M == 0 and N % BLOCK_N == 0, f"M={M}, N={N} must be multiples of the blocks {BLOCK_M}, {BLOCK_N}"
    result = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)

    i_lhsT = nl.mgrid[0:TILE_K, 0:TILE_M]
    i_rhs = nl.mgrid[0:TILE_K, 0:TILE_N]
    i_res = nl.mgrid[0:TILE_M, 0:TILE_N]

    for m in nl.affine_range(M // BLOCK_M):
        # lhsT_tiles[bm][k]: [TILE_K, TILE_M]
        lhsT_tiles = []
        for bm in nl.affine_range(TILES_IN_BLOCK_M):
            column = []
            for k in nl.affine_range(K // TILE_K):
                t = nl.ndarray((TILE_K, TILE_M), dtype=lhsT.dtype, buffer=nl.sbuf)
                t[i_lhsT.p, i_lhsT.x] = nl.load(
                    lhsT[k * TILE_K + i_lhsT.p, (m * TILES_IN_BLOCK_M + bm) * TILE_M + i_lhsT.x]
                )
                column.append(t)
            lhsT_tiles.append(column)

        for n in nl.affine_range(N // BLOCK_N):
            # rhs_tiles[bn][k]: [TILE_K, TILE_N]
            rhs_tiles = []
            for bn in nl.affine_range(TILES_IN_BLOCK_N):
                column = []
                for k in nl.affine_range(K // TILE_K):
                    t = nl.ndarray((TILE_K, TILE_N), dtype=rhs.dtype, buffer=nl.sbuf)
                    t[i_rhs.p, i_rhs.x] = nl.load(
                        rhs[k * TILE_K + i_rhs.p, (n * TILES_IN_BLOCK_N + bn) * TILE_N + i_rhs.x]
                    )
                    column.append(t)
                rhs_tiles.append(column)

            for bm in nl.affine_range(TILES_IN_BLOCK_M):
                for bn in nl.affine_range(TILES_IN_BLOCK_N):
                    res_psum = nl.zeros((TILE_M, TILE_N), nl.float32, buffer=nl.psum)
                    for k in nl.affine_range(K // TILE_K):
                        res_psum += nl.matmul(
                            lhsT_tiles[bm][k][i_lhsT.p, i_lhsT.x],
                            rhs_tiles[bn][k][i_rhs.p, i_rhs.x],
                            transpose_x=True,
                        )
                    res_sbuf = nl.copy(res_psum, dtype=result.dtype)
                    nl.store(
                        result[
                            (m * TILES_IN_BLOCK_M + bm) * TILE_M + i_res.p,
                            (n * TILES_IN_BLOCK_N + bn) * TILE_N + i_res.x,
                        ],
                        value=res_sbuf,
                    )
    return result


# ------------------------------------------------------------------------------------------------ optimized
def _fit_block(tiles: int, preferred: int) -> int:
    """The largest block (in tiles) <= preferred that divides `tiles`."""
    b = max(1, min(preferred, tiles))
    while tiles % b:
        b -= 1
    return b


@nki.jit
def matmul_optimized(lhsT, rhs, TILES_IN_BLOCK_M=None, TILES_IN_BLOCK_N=None, TILES_IN_BLOCK_K=None):
    """Optimization 3: block M, N and K.

    For each N block, the partial results of all M tiles stay in SBUF while the K blocks stream by
    (sequentially); within a K block, rhs is loaded as TILE_K x BLOCK_N rows and lhsT as TILE_K x BLOCK_M rows
    (wide, efficient DMA transfers), each PSUM group sums TILES_IN_BLOCK_K matmuls, and the group is added into
    the SBUF accumulator. Finally each row of result tiles is packed into one [TILE_M, BLOCK_N] tile and
    stored with a single DMA. Block sizes default to the tutorial's (M 16, N 2, K 8 tiles), shrunk to divide
    the shape. The SBUF accumulator is fp32 when it fits in half of SBUF, else the input dtype (as in the
    tutorial).
    """
    K, M, N = _shapes(lhsT, rhs)
    TILE_M = nl.tile_size.gemm_stationary_fmax
    TILE_K = nl.tile_size.pmax
    TILE_N = nl.tile_size.gemm_moving_fmax
    _check_multiples(K, M, N, TILE_K, TILE_M, TILE_N)
    if TILES_IN_BLOCK_M is None:
        TILES_IN_BLOCK_M = _fit_block(M // TILE_M, 16)
    if TILES_IN_BLOCK_N is None:
        TILES_IN_BLOCK_N = _fit_block(N // TILE_N, 2)
    if TILES_IN_BLOCK_K is None:
        TILES_IN_BLOCK_K = _fit_block(K // TILE_K, 8)
    BLOCK_M = TILE_M * TILES_IN_BLOCK_M
    BLOCK_N = TILE_N * TILES_IN_BLOCK_N
    BLOCK_K = TILE_K * TILES_IN_BLOCK_K
    assert M % BLOCK_M == 0, f"M={M} must be a multiple of BLOCK_M={BLOCK_M}"
    assert N % BLOCK_N == 0, f"N={N} must be a multiple of BLOCK_N={BLOCK_N}"
    assert K % BLOCK_K == 0, f"K={K} must be a multiple of BLOCK_K={BLOCK_K}"
    NUM_BLOCK_M = M // BLOCK_M
    NUM_BLOCK_N = N // BLOCK_N
    NUM_BLOCK_K = K // BLOCK_K
    result = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)

    acc_bytes = NUM_BLOCK_M * TILES_IN_BLOCK_M * TILES_IN_BLOCK_N * TILE_N * 4
    acc_dtype = nl.float32 if 2 * acc_bytes <= nl.tile_size.total_available_sbuf_size else lhsT.dtype

    i_lhsT_mm = nl.mgrid[0:TILE_K, 0:TILE_M]
    i_rhs_mm = nl.mgrid[0:TILE_K, 0:TILE_N]
    i_res_mm = nl.mgrid[0:TILE_M, 0:TILE_N]

    for n in nl.affine_range(NUM_BLOCK_N):
        # SBUF accumulators for the whole M extent of this N block: result_tiles[m][bm][bn] [TILE_M, TILE_N].
        result_tiles = [
            [
                [nl.zeros((TILE_M, TILE_N), dtype=acc_dtype, buffer=nl.sbuf) for _ in range(TILES_IN_BLOCK_N)]
                for _ in range(TILES_IN_BLOCK_M)
            ]
            for _ in range(NUM_BLOCK_M)
        ]

        # The K blocks carry the accumulation, so they run in order.
        for k in nl.sequential_range(NUM_BLOCK_K):
            i_rhs = nl.mgrid[0:TILE_K, 0:BLOCK_N]
            rhs_tiles = []
            for bk_r in nl.affine_range(TILES_IN_BLOCK_K):
                t = nl.ndarray((TILE_K, BLOCK_N), dtype=rhs.dtype, buffer=nl.sbuf)
                t[i_rhs.p, i_rhs.x] = nl.load(
                    rhs[(TILES_IN_BLOCK_K * k + bk_r) * TILE_K + i_rhs.p, BLOCK_N * n + i_rhs.x]
                )
                rhs_tiles.append(t)

            for m in nl.affine_range(NUM_BLOCK_M):
                i_lhsT = nl.mgrid[0:TILE_K, 0:BLOCK_M]
                lhsT_tiles = []
                for bk_l in nl.affine_range(TILES_IN_BLOCK_K):
                    t = nl.ndarray((TILE_K, BLOCK_M), dtype=lhsT.dtype, buffer=nl.sbuf)
                    t[i_lhsT.p, i_lhsT.x] = nl.load(
                        lhsT[(TILES_IN_BLOCK_K * k + bk_l) * TILE_K + i_lhsT.p, BLOCK_M * m + i_lhsT.x]
                    )
                    lhsT_tiles.append(t)

                for bn in nl.affine_range(TILES_IN_BLOCK_N):
                    for bm in nl.affine_range(TILES_IN_BLOCK_M):
                        res_tile = nl.zeros((TILE_M, TILE_N), dtype=nl.float32, buffer=nl.psum)
                        for bk in nl.affine_range(TILES_IN_BLOCK_K):
                            res_tile[...] += nisa.nc_matmul(
                                lhsT_tiles[bk][i_lhsT_mm.p, bm * TILE_M + i_lhsT_mm.x],
                                rhs_tiles[bk][i_rhs_mm.p, bn * TILE_N + i_rhs_mm.x],
                            )
                        # Add this K block's partial product into the SBUF accumulator.
                        result_tiles[m][bm][bn][i_res_mm.p, i_res_mm.x] += res_tile[i_res_mm.p, i_res_mm.x]

        # Store this N block's rows of result tiles.
        for m in nl.affine_range(NUM_BLOCK_M):
            for bm in nl.affine_range(TILES_IN_BLOCK_M):
                i_res = nl.mgrid[0:TILE_M, 0:TILE_N]
                i_res_packed = nl.mgrid[0:TILE_M, 0:BLOCK_N]
                result_packed = nl.ndarray((TILE_M, BLOCK_N), dtype=result.dtype, buffer=nl.sbuf)
                # Coalesce the row of result tiles so that one DMA writes TILE_M x BLOCK_N.
                for bn in nl.affine_range(TILES_IN_BLOCK_N):
                    result_packed[i_res.p, bn * TILE_N + i_res.x] = nl.copy(
                        result_tiles[m][bm][bn][i_res.p, i_res.x], dtype=result.dtype
                    )
                nl.store(
                    result[(TILES_IN_BLOCK_M * m + bm) * TILE_M + i_res_packed.p, BLOCK_N * n + i_res_packed.x],
                    value=result_packed[i_res_packed.p, i_res_packed.x],
                )
    return result


# ------------------------------------------------------------------------------------------------ self-test
def reference(lhsT: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """float64 NumPy reference: lhsT.T @ rhs."""
    return np.asarray(lhsT, dtype=np.float64).T @ np.asarray(rhs, dtype=np.float64)


KERNELS = {
    "matmul_basic": matmul_basic,
    "matmul_tiled": matmul_tiled,
    "matmul_hoisted": matmul_hoisted,
    "matmul_blocked": matmul_blocked,
    "matmul_optimized": matmul_optimized,
}


def _check() -> None:
    import ml_dtypes

    rng = np.random.default_rng()
    for dt, tol in ((np.float32, 1e-4), (ml_dtypes.bfloat16, 2e-2)):
        worst = 0.0
        for name, kern in KERNELS.items():
            K, M, N = (128, 128, 512) if name == "matmul_basic" else (256, 256, 1024)
            a = rng.standard_normal((K, M)).astype(dt)
            b = rng.standard_normal((K, N)).astype(dt)
            got = nki.simulate_kernel(kern, a, b)
            assert got.dtype == a.dtype, (name, got.dtype)
            ref = reference(a, b)
            err = float(np.abs(got.astype(np.float64) - ref).max() / np.abs(ref).max())
            assert err < tol, f"{name} ({np.dtype(dt).name}): relative error {err:.3g} >= {tol}"
            worst = max(worst, err)
        print(f"matmul ({np.dtype(dt).name}): OK (max error relative to max |result| {worst:.2e})")


if __name__ == "__main__":
    _check()
