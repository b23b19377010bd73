"""Small legacy-NKI kernels used by the profiler tests (hand-computable metrics)."""

from __future__ import annotations

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl


@nki.jit
def matmul_tiled(lhsT, rhs):
    """result[M, N] = lhsT[K, M].T @ rhs[K, N], tiles of 128 x 128 x 512 (the NKI matmul tutorial)."""
    K, M = lhsT.shape
    _, N = rhs.shape
    result = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    for m in nl.affine_range(M // 128):
        for n in nl.affine_range(N // 512):
            res_psum = nl.zeros((128, 512), nl.float32, buffer=nl.psum)
            for k in nl.affine_range(K // 128):
                lhsT_tile = nl.load(lhsT[k * 128 : (k + 1) * 128, m * 128 : (m + 1) * 128])
                rhs_tile = nl.load(rhs[k * 128 : (k + 1) * 128, n * 512 : (n + 1) * 512])
                res_psum += nisa.nc_matmul(lhsT_tile, rhs_tile)
            res_sb = nl.copy(res_psum, dtype=result.dtype)
            nl.store(result[m * 128 : (m + 1) * 128, n * 512 : (n + 1) * 512], value=res_sb)
    return result


@nki.jit
def one_matmul(lhsT, rhs):
    """A single [K, M] x [K, N] matmul: two loads, one MATMUL, one PSUM->SBUF copy, one store."""
    result = nl.ndarray((lhsT.shape[1], rhs.shape[1]), dtype=nl.float32, buffer=nl.shared_hbm)
    a = nl.load(lhsT)
    b = nl.load(rhs)
    ps = nisa.nc_matmul(a, b)
    sb = nl.copy(ps, dtype=nl.float32)
    nl.store(result, value=sb)
    return result


@nki.jit
def small_tiles(x):
    """Row-by-row copies: 32-partition tiles, tiny free sizes, many small DMAs."""
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    for i in nl.affine_range(x.shape[0] // 32):
        t = nl.load(x[i * 32 : (i + 1) * 32, :])
        u = nl.multiply(t, 2.0)
        nl.store(out[i * 32 : (i + 1) * 32, :], value=u)
    return out


@nki.jit
def pe_transposes(x):
    """Tensor-engine transposes only: [128, 128] tiles through the PE array, copied back out."""
    out = nl.ndarray((x.shape[1], x.shape[0]), dtype=x.dtype, buffer=nl.shared_hbm)
    t = nl.load(x)
    tp = nisa.nc_transpose(t, engine=nisa.tensor_engine)
    r = nl.copy(tp, dtype=x.dtype)
    nl.store(out, value=r)
    return out


@nki.jit
def reads_uninitialised(x):
    """Adds a tile that was never written (uninitialised SBUF read)."""
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    t = nl.load(x)
    junk = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    s = nl.add(t, junk)
    nl.store(out, value=s)
    return out


@nki.jit
def big_sbuf(x):
    """Two live [128, 24500] fp32 tiles: 196000 of 212984 bytes per partition on trn2 (92%)."""
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    t = nl.load(x)
    u = nl.multiply(t, 3.0)
    nl.store(out, value=u)
    return out


@nki.jit
def long_loop(x, iters):
    """`iters` x (load, exp, multiply, store) on one [128, 512] tile: a long stream for scale tests."""
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    for _ in nl.sequential_range(iters):
        t = nl.load(x)
        e = nl.exp(t)
        u = nl.multiply(e, t)
        nl.store(out, value=u)
    return out


@nki.jit
def exp_rows(a):
    """Launch as exp_rows[nl.nc(2)](a): each core exponentiates its own 128 rows."""
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    i = nl.program_id(0)
    t = nl.load(a[i * 128 : (i + 1) * 128, :])
    nl.store(out[i * 128 : (i + 1) * 128, :], value=nl.exp(t))
    return out
