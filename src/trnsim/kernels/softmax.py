"""Row softmax over the last axis of a [R, C] tensor (legacy NKI API).

softmax(x)[r] = exp(x[r] - max(x[r])) / sum(exp(x[r] - max(x[r]))), rows tiled by 128 partitions, ragged last
tile masked, fp32 intermediates.

* `softmax`       the tutorial's structure with nki.language ops (max, subtract, exp, sum, divide).
* `softmax_fused` the ISA-level version: one Scalar-engine activation computes exp(x - max) *and* its row
                  sum (bias = -max, accumulate into reduce_res), the Vector engine's reciprocal and one
                  tensor_scalar multiply finish it.
"""

from __future__ import annotations

import numpy as np

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl


@nki.jit
def softmax(a_tensor):
    """Row softmax with nki.language operations."""
    R, C = a_tensor.shape
    out_tensor = nl.ndarray((R, C), dtype=a_tensor.dtype, buffer=nl.shared_hbm)
    P = nl.tile_size.pmax
    ix, iy = nl.mgrid[0:P, 0:C]

    for i in nl.affine_range((R + P - 1) // P):
        rows = i * P + ix < R
        a_tile = nl.load(a_tensor[i * P + ix, iy], mask=rows)
        # Subtract the row max for numerical stability.
        max_vals = nl.max(a_tile, axis=[1], keepdims=True, dtype=nl.float32, mask=rows)
        shifted = nl.subtract(a_tile, max_vals, dtype=nl.float32, mask=rows)
        numerator = nl.exp(shifted, mask=rows)
        denominator = nl.sum(numerator, axis=[1], keepdims=True, mask=rows)
        sm = nl.divide(numerator, denominator, dtype=a_tensor.dtype, mask=rows)
        nl.store(out_tensor[i * P + ix, iy], value=sm, mask=rows)
    return out_tensor


@nki.jit
def softmax_fused(a_tensor):
    """Row softmax with the exponent and its row sum fused into one Scalar-engine activation."""
    R, C = a_tensor.shape
    out_tensor = nl.ndarray((R, C), dtype=a_tensor.dtype, buffer=nl.shared_hbm)
    P = nl.tile_size.pmax
    ix, iy = nl.mgrid[0:P, 0:C]
    i_s = nl.arange(1)[None, :]

    for i in nl.affine_range((R + P - 1) // P):
        rows = i * P + ix < R
        a_tile = nl.load(a_tensor[i * P + ix, iy], mask=rows)
        # -max per row, straight out of the Vector engine's reduction (negate=True).
        neg_max = nisa.tensor_reduce(np.max, a_tile, axis=[1], negate=True, keepdims=True, dtype=nl.float32, mask=rows)
        row_sum = nl.ndarray((P, 1), dtype=nl.float32, buffer=nl.sbuf)
        # exp(1.0 * x + (-max)) with the free-axis sum accumulated into row_sum.
        exp_tile = nisa.activation(
            op=nl.exp,
            data=a_tile,
            bias=neg_max,
            scale=1.0,
            reduce_op=nl.add,
            reduce_res=row_sum[ix, i_s],
            reduce_cmd=nisa.reduce_cmd.reset_reduce,
            dtype=nl.float32,
            mask=rows,
        )
        inv_sum = nisa.reciprocal(row_sum, mask=rows)
        sm = nisa.tensor_scalar(exp_tile, np.multiply, inv_sum, dtype=a_tensor.dtype, mask=rows)
        nl.store(out_tensor[i * P + ix, iy], value=sm, mask=rows)
    return out_tensor


# ------------------------------------------------------------------------------------------------ self-test
def reference(x: np.ndarray) -> np.ndarray:
    """float64 NumPy reference."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _check() -> None:
    import ml_dtypes

    rng = np.random.default_rng()
    for dt, tol in ((np.float32, 1e-5), (ml_dtypes.bfloat16, 1e-2)):
        x = (3 * rng.standard_normal((200, 384))).astype(dt)
        ref = reference(x)
        worst = 0.0
        for kern in (softmax, softmax_fused):
            got = nki.simulate_kernel(kern, x).astype(np.float64)
            err = float(np.abs(got - ref).max())
            assert err < tol, f"{kern.__name__} ({np.dtype(dt).name}): max abs error {err:.3g} >= {tol}"
            worst = max(worst, err)
        print(f"softmax ({np.dtype(dt).name}): OK (max abs err {worst:.2e})")


if __name__ == "__main__":
    _check()
