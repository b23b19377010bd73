"""Fused self-attention for a small head (d_head <= 128), softmax fused (legacy NKI API).

out = softmax(scale * q @ k.T [+ causal mask]) @ v for one head; q, k, v, out are [seqlen, d_head] in HBM,
seqlen a multiple of 128. The structure follows AWS's Stable Diffusion attention tutorial:

1. k is loaded transposed once ([d_head, seqlen], DMA transposes) and v as [128, d_head] tiles; both stay in
   SBUF for every query tile.
2. Per 128-row query tile: q is loaded transposed and pre-scaled; scores = q_tile @ k.T are computed in PSUM
   512 columns at a time and copied into one SBUF row buffer [128, seqlen] (causal: masked with
   nisa.affine_select); the row max comes from per-chunk Vector reductions.
3. One Scalar-engine activation computes exp(scores - max) over the whole row buffer and its row sum.
4. The probabilities are transposed 128 x 128 at a time on the PE array and multiplied with the v tiles,
   accumulating [128, d_head] in PSUM; the result is scaled by 1 / row sum and stored.
"""

from __future__ import annotations

import math

import numpy as np

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl
from trnsim.kernels.flash_attention import NEG_INF, kv_block
from trnsim.kernels.flash_attention import reference as flash_reference


@nki.jit
def fused_self_attention(q, k, v, use_causal_mask=False, softmax_scale=None):
    """softmax(scale * q @ k.T) @ v for q, k, v of shape [seqlen, d_head] (d_head <= 128)."""
    seqlen, d_head = q.shape
    assert tuple(k.shape) == (seqlen, d_head) and tuple(v.shape) == (seqlen, d_head), "q, k, v shapes differ"
    assert d_head <= nl.tile_size.pmax, f"d_head {d_head} > 128: use flash_attention"
    assert seqlen % nl.tile_size.pmax == 0, f"seqlen {seqlen} must be a multiple of 128"
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(d_head)
    out = nl.ndarray((seqlen, d_head), dtype=q.dtype, buffer=nl.shared_hbm)

    P = nl.tile_size.pmax
    KV = kv_block(seqlen)
    n_q = seqlen // P
    n_kv = seqlen // P
    n_chunks = seqlen // KV
    pe_dt = q.dtype  # Tensor-engine operand dtype (PSUM accumulation is always fp32)

    i_p = nl.arange(P)[:, None]
    i_d = nl.arange(d_head)[None, :]
    i_dp = nl.arange(d_head)[:, None]
    i_c = nl.arange(KV)[None, :]
    i_t = nl.arange(P)[None, :]
    i_s = nl.arange(seqlen)[None, :]
    i_n = nl.arange(n_chunks)[None, :]
    i_1 = nl.arange(1)[None, :]

    # ---- step 1: k transposed ([d_head, seqlen]) and v tiles ([128 kv rows, d_head]) resident in SBUF
    k_t = nl.ndarray((d_head, seqlen), dtype=pe_dt, buffer=nl.sbuf)
    v_tiles = []
    for t in nl.affine_range(n_kv):
        k_t[i_dp, t * P + i_t] = nl.load_transpose2d(k[t * P + i_p, i_d])
        v_tile = nl.ndarray((P, d_head), dtype=pe_dt, buffer=nl.sbuf)
        v_tile[i_p, i_d] = nl.load(v[t * P + i_p, i_d])
        v_tiles.append(v_tile)

    for i in nl.affine_range(n_q):
        # ---- step 2: scores for 128 query rows
        q_t = nl.load_transpose2d(q[i * P + i_p, i_d])  # [d_head, 128]
        q_t_scaled = nl.multiply(q_t, scale, dtype=pe_dt)
        scores = nl.ndarray((P, seqlen), dtype=nl.float32, buffer=nl.sbuf)
        neg_max_parts = nl.ndarray((P, n_chunks), dtype=nl.float32, buffer=nl.sbuf)
        for c in nl.affine_range(n_chunks):
            # Causal: chunks entirely right of the diagonal need no matmul (loop-index masks), chunks that
            # straddle it are masked element-wise.
            active = (c * KV <= i * P + (P - 1)) if use_causal_mask else None
            qk_psum = nl.ndarray((P, KV), dtype=nl.float32, buffer=nl.psum)
            qk_psum[i_p, i_c] = nisa.nc_matmul(q_t_scaled, k_t[i_dp, c * KV + i_c], mask=active)
            scores[i_p, c * KV + i_c] = nl.copy(qk_psum[i_p, i_c], mask=active)
            if use_causal_mask:
                straddles = active & ((c + 1) * KV - 1 > i * P)
                # keep score[r, col] where col <= r, else the large negative fill (GpSimd, SBUF only)
                scores[i_p, c * KV + i_c] = nisa.affine_select(
                    pred=(i * P + i_p >= c * KV + i_c),
                    on_true_tile=scores[i_p, c * KV + i_c],
                    on_false_value=NEG_INF,
                    mask=straddles,
                )
                scores[i_p, c * KV + i_c] = nisa.memset((P, KV), NEG_INF, nl.float32, mask=(c * KV > i * P + (P - 1)))
            neg_max_parts[i_p, c + i_1] = nisa.tensor_reduce(np.max, scores[i_p, c * KV + i_c], axis=[1], negate=True)
        # min of the negated chunk maxima = -(row max)
        neg_max = nisa.tensor_reduce(np.min, neg_max_parts[i_p, i_n], axis=[1], keepdims=True)

        # ---- step 3: exp(scores - max) over the whole row buffer, with its row sum
        row_sum = nl.ndarray((P, 1), dtype=nl.float32, buffer=nl.sbuf)
        probs = nisa.activation(
            op=nl.exp,
            data=scores[i_p, i_s],
            bias=neg_max,
            scale=1.0,
            reduce_op=nl.add,
            reduce_res=row_sum[i_p, i_1],
            reduce_cmd=nisa.reduce_cmd.reset_reduce,
            dtype=pe_dt,
        )

        # ---- step 4: probs @ v, contracting over kv in 128-row tiles (probs transposed on the PE array)
        out_psum = nl.zeros((P, d_head), dtype=nl.float32, buffer=nl.psum)
        for t in nl.affine_range(n_kv):
            needed = (t <= i) if use_causal_mask else None  # causal: kv tiles right of the diagonal are all 0
            probs_t_psum = nisa.nc_transpose(probs[i_p, t * P + i_t], mask=needed)  # [128 kv, 128 q]
            probs_t = nl.copy(probs_t_psum, dtype=pe_dt, mask=needed)
            out_psum += nisa.nc_matmul(probs_t, v_tiles[t], mask=needed)  # [128 q, d_head]
        inv_sum = nisa.reciprocal(row_sum)
        out_tile = nisa.tensor_scalar(out_psum, np.multiply, inv_sum, dtype=out.dtype)
        nl.store(out[i * P + i_p, i_d], value=out_tile)
    return out


# ------------------------------------------------------------------------------------------------ self-test
def reference(q, k, v, use_causal_mask=False, softmax_scale=None) -> np.ndarray:
    """float64 NumPy reference: flash attention's for one batch and head ([seqlen, d_head] operands)."""
    q, k, v = (np.asarray(a)[None, None] for a in (q, k, v))
    return flash_reference(q, k, v, use_causal_mask, softmax_scale)[0, 0]


def _check() -> None:
    import ml_dtypes

    rng = np.random.default_rng()
    for dt, tol in ((np.float32, 1e-5), (ml_dtypes.bfloat16, 2e-2)):
        worst = 0.0
        for causal in (False, True):
            q, k, v = (rng.standard_normal((512, 64)).astype(dt) for _ in range(3))
            got = nki.simulate_kernel(fused_self_attention, q, k, v, causal).astype(np.float64)
            ref = reference(q, k, v, causal)
            err = float(np.max(np.abs(got - ref) / (1 + np.abs(ref))))
            assert err < tol, f"fused_self_attention ({np.dtype(dt).name}, causal={causal}): error {err:.3g}"
            worst = max(worst, err)
        print(f"attention ({np.dtype(dt).name}): OK (max err |d|/(1+|ref|) {worst:.2e})")


if __name__ == "__main__":
    _check()
