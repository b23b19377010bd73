"""2-D average pooling (legacy NKI API), the structure of AWS's average_pool2d tutorial.

in_tensor [C, H, W] -> out [C, H // pool, W // pool], non-overlapping square windows (stride = pool size;
trailing rows / columns that do not fill a window are dropped, as in floor-mode pooling).

Channels go on the partitions, 128 at a time (ragged last tile masked). Each channel's H x W plane is loaded
into its partition; a 5-D index pattern [c, oh, ph, ow, pw] -> in[c, pool*oh + ph, pool*ow + pw] exposes the
pooling windows as two free axes, which one Vector reduction sums (axis [2, 4]) before the scale by
1 / pool^2.
"""

from __future__ import annotations

import numpy as np

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.language as nl


@nki.jit
def avgpool2d(in_tensor, pool_size):
    """Average pooling with a (pool_size x pool_size) window and stride pool_size."""
    C, H, W = in_tensor.shape
    pool = int(pool_size)
    H_out, W_out = H // pool, W // pool
    assert H_out > 0 and W_out > 0, f"pool size {pool} larger than the image {H}x{W}"
    out_tensor = nl.ndarray((C, H_out, W_out), dtype=in_tensor.dtype, buffer=nl.shared_hbm)
    P = nl.tile_size.pmax

    # Input plane indices (only the rows / columns that belong to a full window)
    i_c, i_h, i_w = nl.mgrid[0:P, 0 : H_out * pool, 0 : W_out * pool]
    # Window indices: [partition, out row, row in window, out column, column in window]
    i0, i1, i2, i3, i4 = nl.mgrid[0:P, 0:H_out, 0:pool, 0:W_out, 0:pool]
    o_c, o_h, o_w = nl.mgrid[0:P, 0:H_out, 0:W_out]

    for t in nl.affine_range((C + P - 1) // P):
        in_tile = nl.load(in_tensor[t * P + i_c, i_h, i_w], mask=(t * P + i_c < C))
        window_sum = nl.sum(
            in_tile[i0, pool * i1 + i2, pool * i3 + i4], axis=[2, 4], dtype=nl.float32, mask=(t * P + i0 < C)
        )
        out_tile = nl.multiply(window_sum, 1.0 / (pool * pool), dtype=in_tensor.dtype, mask=(t * P + o_c < C))
        nl.store(out_tensor[t * P + o_c, o_h, o_w], value=out_tile, mask=(t * P + o_c < C))
    return out_tensor


# ------------------------------------------------------------------------------------------------ self-test
def reference(x: np.ndarray, pool: int) -> np.ndarray:
    """float64 NumPy reference."""
    c, h, w = x.shape
    ho, wo = h // pool, w // pool
    xs = np.asarray(x, dtype=np.float64)[:, : ho * pool, : wo * pool]
    return xs.reshape(c, ho, pool, wo, pool).mean(axis=(2, 4))


def _check() -> None:
    import ml_dtypes

    rng = np.random.default_rng()
    for dt, tol in ((np.float32, 1e-6), (ml_dtypes.bfloat16, 1e-2)):
        worst = 0.0
        for shape, pool in (((200, 16, 20), 2), ((96, 13, 9), 3)):
            x = rng.standard_normal(shape).astype(dt)
            got = nki.simulate_kernel(avgpool2d, x, pool).astype(np.float64)
            err = float(np.abs(got - reference(x, pool)).max())
            assert err < tol, f"avgpool2d ({np.dtype(dt).name}, {shape}, pool {pool}): error {err:.3g} >= {tol}"
            worst = max(worst, err)
        print(f"avgpool2d ({np.dtype(dt).name}): OK (max abs err {worst:.2e})")


if __name__ == "__main__":
    _check()
