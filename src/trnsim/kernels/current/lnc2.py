"""Two-core (LNC=2) kernels in the current NKI API: the work is split between the two NeuronCores of a logical
core and the partial results are exchanged between them.

* `rmsnorm_tp` (launch `rmsnorm_tp[2]`): tensor-parallel RMSNorm. Each core owns half of the hidden dimension D,
  computes the partial sum of squares of its columns, swaps the [rows, 1] partial sums with the other core
  through `nisa.sendrecv` (SBUF to SBUF), and normalises and stores its own half of the columns.
* `matmul_ksplit` (launch `matmul_ksplit[2]`): split-K matmul. Each core multiplies its half of the contraction
  dimension for every output tile and writes the fp32 partial products to a shared-HBM scratch tensor; a
  `nisa.core_barrier` makes both cores' partials visible, then each core adds the other core's partials to its
  own for the output rows it owns and stores them.

Both run on one core too (`kernel[1]` or plain `kernel(...)`): then nothing is exchanged.
"""

from __future__ import annotations

import numpy as np

import trnsim.frontend.current as nki
import trnsim.frontend.current.isa as nisa
import trnsim.frontend.current.language as nl


@nki.jit
def rmsnorm_tp(a_tensor, g_tensor, eps=1e-6):
    """RMSNorm of a_tensor [R, D] (R <= 128 per tile, D even) with the hidden dimension split across cores."""
    R, D = a_tensor.shape
    P = nl.tile_size.pmax
    cores = nl.num_programs()
    pid = nl.program_id(0)
    assert D % cores == 0, f"D={D} must split evenly over {cores} cores"
    Dc = D // cores
    c0 = pid * Dc
    out = nl.ndarray((R, D), dtype=a_tensor.dtype, buffer=nl.shared_hbm)

    g_sb = nl.ndarray((P, Dc), dtype=g_tensor.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=g_sb, src=g_tensor.ap(pattern=[[0, P], [1, Dc]], offset=c0))

    for i in range((R + P - 1) // P):
        rows = min(P, R - i * P)
        x = nl.ndarray((P, Dc), dtype=a_tensor.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=x[0:rows, :], src=a_tensor[i * P : i * P + rows, c0 : c0 + Dc])
        sq = nl.ndarray((P, Dc), dtype=nl.float32, buffer=nl.sbuf)
        part = nl.ndarray((P, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.activation(dst=sq[0:rows, :], op=nl.square, data=x[0:rows, :], reduce_op=nl.add,
                        reduce_res=part[0:rows, :], reduce_cmd=nisa.reduce_cmd.reset_reduce)
        total = part
        if cores > 1:
            other = nl.ndarray((P, 1), dtype=nl.float32, buffer=nl.sbuf)
            nisa.sendrecv(src=part[0:rows, :], dst=other[0:rows, :], send_to_rank=1 - pid, recv_from_rank=1 - pid,
                          pipe_id=0)
            total = nl.ndarray((P, 1), dtype=nl.float32, buffer=nl.sbuf)
            nisa.tensor_tensor(dst=total[0:rows, :], data1=part[0:rows, :], data2=other[0:rows, :], op=nl.add)
        rstd = nl.ndarray((P, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=rstd[0:rows, :], data=total[0:rows, :], op0=nl.multiply, operand0=1.0 / D, op1=nl.add,
                           operand1=float(eps))
        nisa.tensor_scalar(dst=rstd[0:rows, :], data=rstd[0:rows, :], op0=nl.rsqrt, operand0=None,
                           engine=nisa.engine.gpsimd)
        y = nl.ndarray((P, Dc), dtype=a_tensor.dtype, buffer=nl.sbuf)
        nisa.scalar_tensor_tensor(dst=y[0:rows, :], data=x[0:rows, :], op0=nl.multiply, operand0=rstd[0:rows, :],
                                  op1=nl.multiply, operand1=g_sb[0:rows, :])
        nisa.dma_copy(dst=out[i * P : i * P + rows, c0 : c0 + Dc], src=y[0:rows, :])
    return out


@nki.jit
def matmul_ksplit(lhsT, rhs):
    """result = lhsT.T @ rhs with K split across cores (K a multiple of 128 * cores, M of 128, N <= 512 * k)."""
    K, M = lhsT.shape
    _, N = rhs.shape
    cores = nl.num_programs()
    pid = nl.program_id(0)
    TK, TM = nl.tile_size.pmax, nl.tile_size.gemm_stationary_fmax
    TN = min(N, nl.tile_size.gemm_moving_fmax)
    assert K % (TK * cores) == 0 and M % TM == 0 and N % TN == 0
    Kc = K // cores
    k_tiles = Kc // TK
    result = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    partials = nl.ndarray((cores, M, N), dtype=nl.float32, buffer=nl.shared_hbm)

    rhs_sb = nl.ndarray((TK, k_tiles, N), dtype=rhs.dtype, buffer=nl.sbuf)
    lhsT_sb = nl.ndarray((TK, k_tiles, M), dtype=lhsT.dtype, buffer=nl.sbuf)
    for kt in range(k_tiles):
        row = pid * Kc + kt * TK
        nisa.dma_copy(dst=rhs_sb[:, kt, :], src=rhs[row : row + TK, :])
        nisa.dma_copy(dst=lhsT_sb[:, kt, :], src=lhsT[row : row + TK, :])

    # 1. this core's partial product for every output tile -> partials[pid]
    for m in range(M // TM):
        for n in range(N // TN):
            ps = nl.ndarray((TM, TN), dtype=nl.float32, buffer=nl.psum)
            for kt in range(k_tiles):
                nisa.nc_matmul(dst=ps, stationary=lhsT_sb[:, kt, m * TM : (m + 1) * TM],
                               moving=rhs_sb[:, kt, n * TN : (n + 1) * TN])
            part_sb = nl.ndarray((TM, TN), dtype=nl.float32, buffer=nl.sbuf)
            nisa.tensor_copy(dst=part_sb, src=ps)
            nisa.dma_copy(dst=partials[pid, m * TM : (m + 1) * TM, n * TN : (n + 1) * TN], src=part_sb)

    if cores > 1:
        nisa.core_barrier(partials, cores=(0, 1))

    # 2. sum the partials of the output row tiles this core owns (m % cores == pid) and store them
    for m in range(pid, M // TM, cores):
        for n in range(N // TN):
            acc = nl.ndarray((TM, TN), dtype=nl.float32, buffer=nl.sbuf)
            nisa.dma_copy(dst=acc, src=partials[0, m * TM : (m + 1) * TM, n * TN : (n + 1) * TN])
            for c in range(1, cores):
                nisa.dma_compute(dst=acc, srcs=[acc, partials[c, m * TM : (m + 1) * TM, n * TN : (n + 1) * TN]],
                                 reduce_op=nl.add)
            out_sb = nl.ndarray((TM, TN), dtype=result.dtype, buffer=nl.sbuf)
            nisa.tensor_copy(dst=out_sb, src=acc)
            nisa.dma_copy(dst=result[m * TM : (m + 1) * TM, n * TN : (n + 1) * TN], src=out_sb)
    return result


def rmsnorm_reference(x: np.ndarray, g: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.sqrt(np.mean(x * x, axis=1, keepdims=True) + eps) * np.asarray(g, dtype=np.float64)


def matmul_reference(lhsT: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    return np.asarray(lhsT, dtype=np.float64).T @ np.asarray(rhs, dtype=np.float64)


def _check() -> None:
    rng = np.random.default_rng()
    x = rng.standard_normal((200, 256)).astype(np.float32)
    g = rng.uniform(0.5, 1.5, 256).astype(np.float32)
    for lnc in (1, 2):
        got = nki.simulate(rmsnorm_tp[lnc])(x, g)
        err = float(np.abs(got - rmsnorm_reference(x, g)).max())
        assert err < 1e-5, f"rmsnorm_tp[{lnc}]: error {err:.3g}"
    a = rng.standard_normal((512, 256)).astype(np.float32)
    b = rng.standard_normal((512, 512)).astype(np.float32)
    for lnc in (1, 2):
        got = nki.simulate(matmul_ksplit[lnc])(a, b)
        err = float(np.abs(got - matmul_reference(a, b)).max())
        assert err < 1e-3, f"matmul_ksplit[{lnc}]: error {err:.3g}"
    print("lnc2 kernels: OK (rmsnorm_tp, matmul_ksplit on 1 and 2 cores)")


if __name__ == "__main__":
    _check()
