"""Current-API kernels written the way production NKI kernels (the aws-neuron/nki-library style) use the API, with
NumPy references. Each one exercises a family of constructs that plain tutorials do not:

* `moe_route_scatter_add` (token routing, `.ap()` with `vector_offset` columns of an SBUF index tile): gather the
  routed token rows from HBM, scale them by their routing weight and scatter-add them into the output rows with
  `nisa.dma_compute` (read-modify-write through an indirect access pattern, unique indices per call).
* `gather_accumulate` (gather-RMW into SBUF): `acc += table[idx[:, k]]` for every k, the first gather a plain
  `dma_copy`, the rest `dma_compute(dst=acc, srcs=[table.ap(vector_offset=...), acc])`.
* `fused_residual_add` (`dma_compute` between HBM tensors, several sources and `scales`): out = a + b + c
  computed by the DMA engines, plus a residual add fused into the load of each SBUF tile.
* `dynamic_row_tiles` (device loops on registers): the number of valid rows is read from memory into a register
  (`register_load`), `nl.fori_loop` walks the row tiles with the induction register as `.ap(scalar_offset=...)`,
  and `nl.while_loop` drains a countdown kept in SBUF.
* `psum_accumulate_bias` (`nc_matmul` accumulation semantics and manual placement): a bias broadcast into PSUM
  with `accumulate=False`, K-tiles added with `accumulate=True`, the next output tile reusing the PSUM bank with
  `accumulate=None` (first write overwrites); SBUF double buffers and the PSUM tile at explicit `address=`
  offsets; `nl.no_reorder` around the evacuation and named instructions ordered with `Kernel.with_schedule`.
* `ti_column_gather` (tensor indirection, NeuronCore-v4): `tile.indirect(idx, num_elem)` as a gather operand of a
  Vector-engine copy, as the scatter destination of another, and as the moving operand of `nc_matmul`
  (32-partition snake groups on the Tensor engine).
"""

from __future__ import annotations

import numpy as np

import trnsim.frontend.current as nki
import trnsim.frontend.current.isa as nisa
import trnsim.frontend.current.language as nl

P = 128


# ================================================================================================ MoE routing
@nki.jit
def moe_route_scatter_add(x, token_idx, weights, out_init):
    """out[token_idx[p, t]] += weights[p, t] * x[token_idx[p, t]] for every column t (indices unique per column).

    x [T, H], token_idx [128, NT] uint32 (rows of x / out), weights [128, NT] fp32, out_init [T, H]."""
    T, H = x.shape
    NT = token_idx.shape[1]
    out = nl.ndarray((T, H), dtype=x.dtype, buffer=nl.shared_hbm)
    # copy the initial output (HBM -> HBM through SBUF tiles)
    for r0 in range(0, T, P):
        rows = min(P, T - r0)
        t0 = nl.ndarray((P, H), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t0[0:rows, :], src=out_init[r0 : r0 + rows, :])
        nisa.dma_copy(dst=out[r0 : r0 + rows, :], src=t0[0:rows, :])
    idx_sb = nl.ndarray((P, NT), dtype=nl.uint32, buffer=nl.sbuf)
    nisa.dma_copy(dst=idx_sb, src=token_idx)
    w_sb = nl.ndarray((P, NT), dtype=nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=w_sb, src=weights)
    for t in range(NT):
        # column t of the index tile as a raw access pattern: one index per partition
        col = idx_sb.ap(pattern=[[NT, P], [1, 1]], offset=t)
        rows_sb = nl.ndarray((P, H), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=rows_sb, src=x.ap(pattern=[[H, P], [1, H]], vector_offset=col, indirect_dim=0))
        scaled = nl.ndarray((P, H), dtype=x.dtype, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=scaled, data=rows_sb, op0=nl.multiply, operand0=w_sb[:, t : t + 1])
        dst = out.ap(pattern=[[H, P], [1, H]], vector_offset=col, indirect_dim=0)
        nisa.dma_compute(dst=dst, srcs=[dst, scaled], reduce_op=nl.add)
    return out


def moe_route_scatter_add_reference(x, token_idx, weights, out_init):
    out = np.asarray(out_init, dtype=np.float64).copy()
    x64 = np.asarray(x, dtype=np.float64)
    for t in range(token_idx.shape[1]):
        rows = token_idx[:, t].astype(np.int64)
        out[rows] += weights[:, t : t + 1].astype(np.float64) * x64[rows]
    return out


# ================================================================================================ gather-RMW
@nki.jit
def gather_accumulate(table, idx):
    """acc[p] = sum_k table[idx[p, k]] (fp32), gathered and accumulated by the DMA engines."""
    _, H = table.shape
    K = idx.shape[1]
    out = nl.ndarray((P, H), dtype=nl.float32, buffer=nl.shared_hbm)
    i_sb = nl.ndarray((P, K), dtype=nl.int32, buffer=nl.sbuf)
    nisa.dma_copy(dst=i_sb, src=idx)
    acc = nl.ndarray((P, H), dtype=nl.float32, buffer=nl.sbuf)
    for k in range(K):
        src = table.ap(pattern=[[H, P], [1, H]], vector_offset=i_sb.ap(pattern=[[K, P], [1, 1]], offset=k),
                       indirect_dim=0)
        if k == 0:
            nisa.dma_copy(dst=acc, src=src)
        else:
            nisa.dma_compute(dst=acc, srcs=[src, acc], reduce_op=nl.add)
    nisa.dma_copy(dst=out, src=acc)
    return out


def gather_accumulate_reference(table, idx):
    return np.asarray(table, dtype=np.float64)[idx.astype(np.int64)].sum(axis=1)


# ================================================================================================ DMA adds
@nki.jit
def fused_residual_add(a, b, c):
    """(a + b + c computed by DMA from HBM to HBM, (a + b) tile by tile with the add fused into the load)."""
    R, H = a.shape
    total = nl.ndarray((R, H), dtype=a.dtype, buffer=nl.shared_hbm)
    nisa.dma_compute(total, (a, b, c), scales=(1.0, 1.0, 1.0), reduce_op=nl.add)
    pair = nl.ndarray((R, H), dtype=a.dtype, buffer=nl.shared_hbm)
    for r0 in range(0, R, P):
        rows = min(P, R - r0)
        t = nl.ndarray((P, H), dtype=a.dtype, buffer=nl.sbuf)
        nisa.dma_compute(dst=t[0:rows, :], srcs=[a[r0 : r0 + rows, :], b[r0 : r0 + rows, :]], reduce_op=nl.add)
        nisa.dma_copy(dst=pair[r0 : r0 + rows, :], src=t[0:rows, :])
    return total, pair


# ================================================================================================ device loops
@nki.jit
def dynamic_row_tiles(x, n_valid):
    """Row sums of the first n_valid[0, 0] rows of x (a multiple of 128, read at run time); later rows of the output
    stay 0. Also counts the tiles a second time with a while loop over a countdown kept in SBUF."""
    R, F = x.shape
    out = nl.ndarray((R, 1), dtype=nl.float32, buffer=nl.shared_hbm)
    zeros = nl.ndarray((P, 1), dtype=nl.float32, buffer=nl.sbuf)
    nisa.memset(dst=zeros, value=0.0)
    for r0 in range(0, R, P):
        nisa.dma_copy(dst=out[r0 : r0 + P, :], src=zeros)
    n_sb = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
    nisa.dma_copy(dst=n_sb, src=n_valid)
    n_reg = nisa.register_alloc()
    nisa.register_load(n_reg, n_sb)

    def tile(row):  # row: the induction register (first row of the tile)
        t = nl.ndarray((P, F), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x.ap(pattern=[[F, P], [1, F]], scalar_offset=row, indirect_dim=0))
        s = nl.ndarray((P, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_reduce(dst=s, op=nl.add, data=t, axis=(1,))
        nisa.dma_copy(dst=out.ap(pattern=[[1, P], [1, 1]], scalar_offset=row, indirect_dim=0), src=s)

    nl.fori_loop(0, n_reg, tile, step=P)

    # a countdown in SBUF drives a while loop: tiles = n_valid / 128
    tiles = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
    nisa.tensor_scalar(dst=tiles, data=n_sb, op0=nl.multiply, operand0=1.0 / P)
    counted = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
    nisa.memset(dst=counted, value=0)
    cond = nisa.register_alloc()
    nisa.register_load(cond, tiles)

    def step(reg):
        nisa.tensor_scalar(dst=counted, data=counted, op0=nl.add, operand0=1.0)
        nisa.tensor_scalar(dst=tiles, data=tiles, op0=nl.subtract, operand0=1.0)
        nisa.register_load(reg, tiles)
        return reg

    nl.while_loop(cond, step)
    count_out = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=count_out, src=counted)
    return out, count_out


def dynamic_row_tiles_reference(x, n_valid):
    n = int(np.asarray(n_valid).reshape(-1)[0])
    out = np.zeros((x.shape[0], 1))
    out[:n, 0] = np.asarray(x[:n], dtype=np.float64).sum(axis=1)
    return out, np.array([[n // P]], dtype=np.int32)


# ================================================================================================ PSUM, placement
@nki.jit
def psum_accumulate_bias(lhsT, rhs, bias):
    """result[M, N] = lhsT.T @ rhs + bias (bias [1, N] broadcast over rows), K a multiple of 128, M = 128,
    N a multiple of 512. Manually placed double-buffered operand tiles; one PSUM bank reused per output tile."""
    K, M = lhsT.shape
    _, N = rhs.shape
    TN = 512
    KT = K // P
    result = nl.ndarray((M, N), dtype=nl.float32, buffer=nl.shared_hbm)
    ones = nl.ndarray((1, M), dtype=nl.float32, buffer=nl.sbuf, address=(0, 0))
    nisa.memset(dst=ones, value=1.0)
    bias_sb = nl.ndarray((1, N), dtype=nl.float32, buffer=nl.sbuf, address=(0, 4096))
    nisa.dma_copy(dst=bias_sb, src=bias)
    lhsT_sb = nl.ndarray((P, KT, M), dtype=lhsT.dtype, buffer=nl.sbuf, address=(0, 16384))
    for kt in range(KT):
        nisa.dma_copy(dst=lhsT_sb[:, kt, :], src=lhsT[kt * P : (kt + 1) * P, :])
    for n in range(N // TN):
        ps = nl.ndarray((M, TN), dtype=nl.float32, buffer=nl.psum, address=(0, 2048 * (n % 2)))
        # bias row broadcast into every row of the PSUM tile: ones[1, M].T @ bias[1, TN], overwriting
        nisa.nc_matmul(dst=ps, stationary=ones, moving=bias_sb[:, n * TN : (n + 1) * TN], accumulate=False,
                       name=f"bias{n}")
        for kt in range(KT):
            r = nl.ndarray((P, TN), dtype=rhs.dtype, buffer=nl.sbuf, address=(0, 32768 + 2048 * ((n * KT + kt) % 2)))
            nisa.dma_copy(dst=r, src=rhs[kt * P : (kt + 1) * P, n * TN : (n + 1) * TN])
            nisa.nc_matmul(dst=ps, stationary=lhsT_sb[:, kt, :], moving=r, accumulate=True)
        res = nl.ndarray((M, TN), dtype=nl.float32, buffer=nl.sbuf, address=(0, 40960))
        with nl.no_reorder():
            nisa.tensor_copy(dst=res, src=ps, name=f"evac{n}")
            nisa.dma_copy(dst=result[:, n * TN : (n + 1) * TN], src=res, name=f"store{n}")
    return result


@nki.jit
def psum_reuse_accumulate_none(lhsT, rhs):
    """Two products into one PSUM tile with accumulate=None: K-tiles add up, reading the result closes the
    accumulation group, so the second product's first matmul overwrites instead of adding."""
    K, M = lhsT.shape
    _, N = rhs.shape
    out = nl.ndarray((2, M, N), dtype=nl.float32, buffer=nl.shared_hbm)
    ps = nl.ndarray((M, N), dtype=nl.float32, buffer=nl.psum)
    for rep in range(2):
        for kt in range(K // P):
            a = nl.ndarray((P, M), dtype=lhsT.dtype, buffer=nl.sbuf)
            b = nl.ndarray((P, N), dtype=rhs.dtype, buffer=nl.sbuf)
            nisa.dma_copy(dst=a, src=lhsT[kt * P : (kt + 1) * P, :])
            nisa.dma_copy(dst=b, src=rhs[kt * P : (kt + 1) * P, :])
            nisa.nc_matmul(dst=ps, stationary=a, moving=b)
        res = nl.ndarray((M, N), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(dst=res, src=ps)
        nisa.dma_copy(dst=out[rep], src=res)
    return out


# ================================================================================================ tensor indirection
@nki.jit
def ti_column_gather(data, idx16, idx32, w):
    """On NeuronCore-v4: g = data[:, offsets16] through a Vector-engine TI gather (16-partition snake groups of
    idx16), s = zeros with s[:, offsets16] = g scattered back through TI as the destination, and
    mm = w.T @ data[:, offsets32] with the TI view as nc_matmul's moving operand (32-partition groups of idx32)."""
    Pd, F = data.shape
    K16 = idx16.shape[1]
    K32 = idx32.shape[1]
    n16, n32 = 16 * K16, 32 * K32
    g_out = nl.ndarray((Pd, n16), dtype=data.dtype, buffer=nl.shared_hbm)
    s_out = nl.ndarray((Pd, F), dtype=data.dtype, buffer=nl.shared_hbm)
    mm_out = nl.ndarray((w.shape[1], n32), dtype=nl.float32, buffer=nl.shared_hbm)
    d = nl.ndarray((Pd, F), dtype=data.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=d, src=data)
    i16 = nl.ndarray((Pd, K16), dtype=nl.uint16, buffer=nl.sbuf)
    nisa.dma_copy(dst=i16, src=idx16)
    i32 = nl.ndarray((Pd, K32), dtype=nl.uint16, buffer=nl.sbuf)
    nisa.dma_copy(dst=i32, src=idx32)

    g = nl.ndarray((Pd, n16), dtype=data.dtype, buffer=nl.sbuf)
    nisa.tensor_copy(dst=g, src=d.indirect(i16, num_elem=n16), engine=nisa.engine.vector)
    nisa.dma_copy(dst=g_out, src=g)

    s = nl.ndarray((Pd, F), dtype=data.dtype, buffer=nl.sbuf)
    nisa.memset(dst=s, value=0.0)
    nisa.tensor_copy(dst=s.indirect(i16, num_elem=n16), src=g, engine=nisa.engine.vector)
    nisa.dma_copy(dst=s_out, src=s)

    w_sb = nl.ndarray(w.shape, dtype=w.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=w_sb, src=w)
    ps = nl.ndarray((w.shape[1], n32), dtype=nl.float32, buffer=nl.psum)
    nisa.nc_matmul(dst=ps, stationary=w_sb, moving=d.indirect(i32, num_elem=n32))
    mm = nl.ndarray((w.shape[1], n32), dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(dst=mm, src=ps)
    nisa.dma_copy(dst=mm_out, src=mm)
    return g_out, s_out, mm_out


def ti_offsets(idx: np.ndarray, num: int, group: int) -> np.ndarray:
    """The (P, num) column offsets tensor indirection reads from idx with snake groups of `group` partitions."""
    p = idx.shape[0]
    offs = np.empty((p, num), dtype=np.int64)
    for row in range(p):
        g0 = row // group * group
        for i in range(num):
            offs[row, i] = idx[g0 + i % group, i // group]
    return offs


def ti_column_gather_reference(data, idx16, idx32, w):
    o16 = ti_offsets(idx16, 16 * idx16.shape[1], 16)
    o32 = ti_offsets(idx32, 32 * idx32.shape[1], 32)
    rows = np.arange(data.shape[0])[:, None]
    g = data[rows, o16]
    s = np.zeros_like(data)
    s[rows, o16] = g
    mm = np.asarray(w, dtype=np.float64).T @ np.asarray(data, dtype=np.float64)[rows, o32]
    return g, s, mm


def _check() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 64)).astype(np.float32)
    idx = np.stack([rng.permutation(300)[:P] for _ in range(3)], axis=1).astype(np.uint32)
    wts = rng.uniform(0.5, 1.5, (P, 3)).astype(np.float32)
    init = rng.standard_normal((300, 64)).astype(np.float32)
    got = nki.simulate(moe_route_scatter_add)(x, idx, wts, init)
    assert np.allclose(got, moe_route_scatter_add_reference(x, idx, wts, init), atol=1e-4)
    print("library patterns: OK")


if __name__ == "__main__":
    _check()
