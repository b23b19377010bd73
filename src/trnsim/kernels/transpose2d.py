"""2-D transposes through SBUF (legacy NKI API), three ways.

* `transpose2d`       [R, C] -> [C, R]: 128 x 128 tiles are loaded into SBUF, transposed on the Tensor engine
                      (`nisa.nc_transpose`, SBUF -> PSUM), copied back to SBUF and stored; ragged edge tiles
                      are handled with masks.
* `transpose2d_dma`   [R, C] -> [C, R]: the DMA transposes each tile on its way into SBUF
                      (`nl.load_transpose2d`), then a plain store.
* `transpose2d_free`  the tutorial's free-dimension transpose: every row of [P, F1*F2] holds a row-major
                      F1 x F2 matrix that becomes F2 x F1, by one SBUF -> SBUF copy whose access pattern swaps
                      the two free axes (P tiled by 128 with a mask).
"""

from __future__ import annotations

import numpy as np

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl


@nki.jit
def transpose2d(in_tensor):
    """out[c, r] = in[r, c] using Tensor-engine transposes of 128 x 128 tiles."""
    R, C = in_tensor.shape
    out_tensor = nl.ndarray((C, R), dtype=in_tensor.dtype, buffer=nl.shared_hbm)
    T = nl.tile_size.pmax  # a PE transpose takes at most 128 x 128
    i_p = nl.arange(T)[:, None]
    i_f = nl.arange(T)[None, :]

    for i in nl.affine_range((R + T - 1) // T):  # row tiles of the input
        for j in nl.affine_range((C + T - 1) // T):  # column tiles of the input
            in_mask = (i * T + i_p < R) & (j * T + i_f < C)
            in_tile = nl.load(in_tensor[i * T + i_p, j * T + i_f], mask=in_mask)
            # SBUF [rows, cols] -> PSUM [cols, rows] (a matmul against the identity on the PE array)
            t_psum = nisa.nc_transpose(in_tile, mask=in_mask)
            t_sbuf = nl.copy(t_psum)
            nl.store(out_tensor[j * T + i_p, i * T + i_f], value=t_sbuf, mask=(j * T + i_p < C) & (i * T + i_f < R))
    return out_tensor


@nki.jit
def transpose2d_dma(in_tensor):
    """out[c, r] = in[r, c] with the DMA engines transposing each tile while loading it."""
    R, C = in_tensor.shape
    out_tensor = nl.ndarray((C, R), dtype=in_tensor.dtype, buffer=nl.shared_hbm)
    TP = nl.tile_size.pmax  # partitions of the transposed tile = columns of the source block
    TF = 512  # free size of the transposed tile = rows of the source block
    i_p = nl.arange(TP)[:, None]
    i_f = nl.arange(TF)[None, :]

    for j in nl.affine_range((C + TP - 1) // TP):
        for i in nl.affine_range((R + TF - 1) // TF):
            # Source block in[i*TF : (i+1)*TF, j*TP : (j+1)*TP] arrives in SBUF as [TP, TF].
            i_src_p = nl.arange(TF)[:, None]
            i_src_f = nl.arange(TP)[None, :]
            t_sbuf = nl.load_transpose2d(
                in_tensor[i * TF + i_src_p, j * TP + i_src_f], mask=(i * TF + i_src_p < R) & (j * TP + i_src_f < C)
            )
            nl.store(out_tensor[j * TP + i_p, i * TF + i_f], value=t_sbuf, mask=(j * TP + i_p < C) & (i * TF + i_f < R))
    return out_tensor


@nki.jit
def transpose2d_free(in_tensor, shape2D):
    """Per row, transpose the flattened row-major F1 x F2 matrix: [P, F1*F2] -> [P, F2*F1]."""
    P, F = in_tensor.shape
    sz_f1, sz_f2 = shape2D
    assert F == sz_f1 * sz_f2, f"row length {F} != {sz_f1} x {sz_f2}"
    out_tensor = nl.ndarray((P, F), dtype=in_tensor.dtype, buffer=nl.shared_hbm)
    T = nl.tile_size.pmax

    # Three indices: the partition, and the two free axes that trade places.
    i_p0 = nl.arange(T)[:, None, None]
    i_f1 = nl.arange(sz_f1)[None, :, None]
    i_f2 = nl.arange(sz_f2)[None, None, :]
    i_p = nl.arange(T)[:, None]
    i_f = nl.arange(F)[None, :]

    for t in nl.affine_range((P + T - 1) // T):
        rows = t * T + i_p < P
        in_tile = nl.load(in_tensor[t * T + i_p, i_f], mask=rows)
        out_tile = nl.ndarray((T, F), dtype=out_tensor.dtype, buffer=nl.sbuf)
        # Read F1 x F2 row-major, write F2 x F1 row-major: one copy with a swapped access pattern.
        out_tile[i_p0, i_f2 * sz_f1 + i_f1] = nl.copy(in_tile[i_p0, i_f1 * sz_f2 + i_f2], mask=(t * T + i_p0 < P))
        nl.store(out_tensor[t * T + i_p, i_f], value=out_tile, mask=rows)
    return out_tensor


# ------------------------------------------------------------------------------------------------ self-test
def _check() -> None:
    import ml_dtypes

    rng = np.random.default_rng()
    for dt in (np.float32, ml_dtypes.bfloat16):
        x = rng.standard_normal((300, 200)).astype(dt)
        for kern in (transpose2d, transpose2d_dma):
            got = nki.simulate_kernel(kern, x)
            np.testing.assert_array_equal(got, x.T)
        y = rng.standard_normal((150, 12)).astype(dt)
        got = nki.simulate_kernel(transpose2d_free, y, (3, 4))
        np.testing.assert_array_equal(got, y.reshape(150, 3, 4).transpose(0, 2, 1).reshape(150, 12))
    print("transpose2d: OK (max abs err 0.00e+00: transposes are bit exact)")


if __name__ == "__main__":
    _check()
