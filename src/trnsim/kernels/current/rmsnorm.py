"""RMSNorm in the current NKI API: out = x / sqrt(mean(x^2, axis=1) + eps) * g.

a_tensor [R, D] (any R: the last row tile is clipped), g_tensor [D]. Per 128-row tile:

    ScalarE  activation(square) with an add-reduction into reduce_res  -> sum(x^2)     [rows, 1] fp32
    VectorE  tensor_scalar(* 1/D, + eps)                               -> mean + eps
    GpSimd   tensor_scalar(rsqrt)                                      -> rstd (more precise than ScalarE)
    VectorE  scalar_tensor_tensor((x * rstd) * g)                       -> out (one instruction)

g is broadcast to all partitions by the DMA itself (a stride-0 access pattern over its single row), once.
Launch with `rmsnorm[2](...)` to split the row tiles between the two cores of an LNC=2 NeuronCore.
"""

from __future__ import annotations

import numpy as np

import trnsim.frontend.current as nki
import trnsim.frontend.current.isa as nisa
import trnsim.frontend.current.language as nl
from trnsim.kernels.rmsnorm import reference  # the float64 reference both API generations share


@nki.jit
def rmsnorm(a_tensor, g_tensor, eps=1e-6):
    """RMSNorm of the rows of a_tensor [R, D] with weight g_tensor [D]."""
    R, D = a_tensor.shape
    assert g_tensor.shape == (D,), f"weight shape {g_tensor.shape} does not match the row length {D}"
    P = nl.tile_size.pmax
    out = nl.ndarray((R, D), dtype=a_tensor.dtype, buffer=nl.shared_hbm)

    g_sb = nl.ndarray((P, D), dtype=g_tensor.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=g_sb, src=g_tensor.ap(pattern=[[0, P], [1, D]]))

    n_tiles = (R + P - 1) // P
    for i in range(nl.program_id(0), n_tiles, nl.num_programs()):
        rows = min(P, R - i * P)
        x = nl.ndarray((P, D), dtype=a_tensor.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=x[0:rows, :], src=a_tensor[i * P : i * P + rows, :])

        sq = nl.ndarray((P, D), dtype=nl.float32, buffer=nl.sbuf)
        ssum = nl.ndarray((P, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.activation(
            dst=sq[0:rows, :], op=nl.square, data=x[0:rows, :], reduce_op=nl.add, reduce_res=ssum[0:rows, :],
            reduce_cmd=nisa.reduce_cmd.reset_reduce,
        )
        rstd = nl.ndarray((P, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=rstd[0:rows, :], data=ssum[0:rows, :], op0=nl.multiply, operand0=1.0 / D, op1=nl.add,
                           operand1=float(eps))
        nisa.tensor_scalar(dst=rstd[0:rows, :], data=rstd[0:rows, :], op0=nl.rsqrt, operand0=None,
                           engine=nisa.engine.gpsimd)

        y = nl.ndarray((P, D), dtype=a_tensor.dtype, buffer=nl.sbuf)
        nisa.scalar_tensor_tensor(dst=y[0:rows, :], data=x[0:rows, :], op0=nl.multiply, operand0=rstd[0:rows, :],
                                  op1=nl.multiply, operand1=g_sb[0:rows, :])
        nisa.dma_copy(dst=out[i * P : i * P + rows, :], src=y[0:rows, :])
    return out


def _check() -> None:
    import ml_dtypes

    rng = np.random.default_rng()
    for dt, tol in ((np.float32, 1e-5), (ml_dtypes.bfloat16, 2e-2)):
        x = rng.standard_normal((200, 384)).astype(dt)
        g = rng.uniform(0.5, 1.5, 384).astype(dt)
        for lnc in (1, 2):
            got = nki.simulate(rmsnorm[lnc])(x, g).astype(np.float64)
            ref = reference(x, g)
            err = float(np.max(np.abs(got - ref) / (1 + np.abs(ref))))
            assert err < tol, f"rmsnorm ({np.dtype(dt).name}, LNC={lnc}): error {err:.3g}"
        print(f"rmsnorm current API ({np.dtype(dt).name}): OK (LNC 1 and 2)")


if __name__ == "__main__":
    _check()
