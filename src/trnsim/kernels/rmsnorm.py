"""RMSNorm over the last axis (legacy NKI API): out = x / sqrt(mean(x^2) + eps) * g.

x is [R, D] (rows tiled by 128 partitions, ragged last tile masked), g is [D]; fp32 statistics.

* `rmsnorm`       the tutorial's structure with nki.language ops (square, sum, rsqrt, multiply).
* `rmsnorm_fused` the ISA-level version: one Scalar-engine activation squares x and sums each row into the
                  per-lane accumulators (reduce_res), one Vector tensor_scalar computes sum/D + eps, one
                  Scalar rsqrt, and x * rstd * g is a tensor_scalar followed by a tensor_tensor.
"""

from __future__ import annotations

import numpy as np

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl


@nki.jit
def rmsnorm(a_tensor, g_tensor, eps=1e-6):
    """RMSNorm with nki.language operations."""
    R, D = a_tensor.shape
    assert g_tensor.shape == (D,), f"weight shape {g_tensor.shape} does not match the row length {D}"
    out_tensor = nl.ndarray((R, D), dtype=a_tensor.dtype, buffer=nl.shared_hbm)
    P = nl.tile_size.pmax
    ix = nl.arange(P)[:, None]
    iw = nl.arange(1)[:, None]
    iy = nl.arange(D)[None, :]

    # The weight is loaded once as [1, D] and broadcast over the partitions for every row tile.
    g_tile = nl.load(g_tensor.reshape((1, D))[iw, iy])
    g_bcast = g_tile.broadcast_to((P, D))

    for i in nl.affine_range((R + P - 1) // P):
        rows = i * P + ix < R
        a_tile = nl.load(a_tensor[i * P + ix, iy], mask=rows)
        in_square = nl.square(a_tile, dtype=nl.float32, mask=rows)
        square_sum = nl.sum(in_square, axis=[1], keepdims=True, mask=rows)
        mean = nl.add(nl.multiply(square_sum, 1.0 / D, mask=rows), eps, mask=rows)
        rms_reciprocal = nl.rsqrt(mean, mask=rows)
        out_tile = nl.multiply(a_tile, rms_reciprocal, dtype=nl.float32, mask=rows)
        out_tile = nl.multiply(out_tile, g_bcast, dtype=a_tensor.dtype, mask=rows)
        nl.store(out_tensor[i * P + ix, iy], value=out_tile, mask=rows)
    return out_tensor


@nki.jit
def rmsnorm_fused(a_tensor, g_tensor, eps=1e-6):
    """RMSNorm with the square and the row sum fused into one Scalar-engine activation."""
    R, D = a_tensor.shape
    assert g_tensor.shape == (D,), f"weight shape {g_tensor.shape} does not match the row length {D}"
    out_tensor = nl.ndarray((R, D), dtype=a_tensor.dtype, buffer=nl.shared_hbm)
    P = nl.tile_size.pmax
    ix = nl.arange(P)[:, None]
    iw = nl.arange(1)[:, None]
    iy = nl.arange(D)[None, :]
    i_s = nl.arange(1)[None, :]

    g_tile = nl.load(g_tensor.reshape((1, D))[iw, iy])
    g_bcast = g_tile.broadcast_to((P, D))

    for i in nl.affine_range((R + P - 1) // P):
        rows = i * P + ix < R
        a_tile = nl.load(a_tensor[i * P + ix, iy], mask=rows)
        square_sum = nl.ndarray((P, 1), dtype=nl.float32, buffer=nl.sbuf)
        # x^2 (discarded) with its row sum accumulated into square_sum.
        nisa.activation(
            op=nl.square,
            data=a_tile,
            reduce_op=nl.add,
            reduce_res=square_sum[ix, i_s],
            reduce_cmd=nisa.reduce_cmd.reset_reduce,
            dtype=nl.float32,
            mask=rows,
        )
        mean_eps = nisa.tensor_scalar(square_sum, np.multiply, 1.0 / D, op1=np.add, operand1=eps, mask=rows)
        rstd = nisa.activation(op=nl.rsqrt, data=mean_eps, mask=rows)
        normed = nisa.tensor_scalar(a_tile, np.multiply, rstd, dtype=nl.float32, mask=rows)
        out_tile = nisa.tensor_tensor(normed, g_bcast, np.multiply, dtype=a_tensor.dtype, mask=rows)
        nl.store(out_tensor[i * P + ix, iy], value=out_tile, mask=rows)
    return out_tensor


# ------------------------------------------------------------------------------------------------ self-test
def reference(x: np.ndarray, g: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """float64 NumPy reference."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.sqrt(np.mean(x * x, axis=1, keepdims=True) + eps) * np.asarray(g, dtype=np.float64)


def _check() -> None:
    import ml_dtypes

    rng = np.random.default_rng()
    for dt, tol in ((np.float32, 1e-5), (ml_dtypes.bfloat16, 2e-2)):
        x = rng.standard_normal((200, 384)).astype(dt)
        g = rng.uniform(0.5, 1.5, 384).astype(dt)
        ref = reference(x, g)
        worst = 0.0
        for kern in (rmsnorm, rmsnorm_fused):
            got = nki.simulate_kernel(kern, x, g).astype(np.float64)
            err = float(np.max(np.abs(got - ref) / (1 + np.abs(ref))))
            assert err < tol, f"{kern.__name__} ({np.dtype(dt).name}): error {err:.3g} >= {tol}"
            worst = max(worst, err)
        print(f"rmsnorm ({np.dtype(dt).name}): OK (max err |d|/(1+|ref|) {worst:.2e})")


if __name__ == "__main__":
    _check()
