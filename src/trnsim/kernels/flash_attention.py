"""Flash-attention forward with online softmax, causal masking and grouped-query attention (legacy NKI API).

q: [batch, n_heads, seqlen_q, d_head], k and v: [batch, n_kv_heads, seqlen_kv, d_head] in HBM, d_head <= 128,
seqlens multiples of 128. No score row is ever held whole; the limit is SBUF holding one kv head's K^T and V
(about 2 * seqlen_kv * itemsize bytes per partition: 32 KiB at seqlen 4096 in bf16). n_heads is a multiple of
n_kv_heads; each kv head serves n_heads // n_kv_heads query heads (GQA; MQA when n_kv_heads == 1).
out = softmax(scale * q @ k.T [+ causal mask]) @ v, [batch, n_heads, seqlen_q, d_head].

Launch `flash_attention_fwd[batch, n_kv_heads](q, k, v, ...)` (or call `flash_attention(q, k, v, ...)`, which
does that): each program loads the K (transposed, by DMA) and V of its kv head into SBUF once and reuses
them for all its query heads. For every 128-row query tile the kv sequence streams by in blocks of up to 512
(`nl.sequential_range`: the running max m, running sum l and output accumulator carry over):

    s = q_tile @ k_block.T                     (Tensor engine, PSUM)       causal: nisa.affine_select on the
    m_new = max(m, rowmax(s))                  (Vector)                    diagonal block; blocks right of the
    p = exp(s - m_new), rowsum(p)              (one Scalar activation)     diagonal are skipped with loop-index
    alpha = exp(m - m_new)                     (Scalar)                    masks, as in AWS's flash kernel
    l = alpha * l + rowsum(p);  acc = alpha * acc + p @ v_block   (p transposed 128 x 128 on the PE array)

and finally out = acc / l. The matmul operands are in the input dtype (bf16 inputs: bf16 probabilities),
statistics and accumulators in fp32.
"""

from __future__ import annotations

import math

import numpy as np

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl

NEG_INF = -9984.0  # the large negative fill the Neuron compiler uses for masked scores


def kv_block(seqlen_kv: int) -> int:
    """kv columns per online-softmax step: the largest of 512 / 256 / 128 that divides seqlen_kv."""
    for c in (512, 256, 128):
        if seqlen_kv % c == 0:
            return c
    raise AssertionError(f"seqlen_kv {seqlen_kv} must be a multiple of 128")


@nki.jit
def flash_attention_fwd(q, k, v, use_causal_mask=True, softmax_scale=None):
    """One program per (batch, kv head); launch as flash_attention_fwd[batch, n_kv_heads](q, k, v)."""
    batch, n_heads, seqlen_q, d_head = q.shape
    _, n_kv_heads, seqlen_kv, _ = k.shape
    assert tuple(k.shape) == (batch, n_kv_heads, seqlen_kv, d_head), f"k shape {k.shape} does not match q {q.shape}"
    assert tuple(v.shape) == tuple(k.shape), f"v shape {v.shape} != k shape {k.shape}"
    assert n_heads % n_kv_heads == 0, f"n_heads {n_heads} must be a multiple of n_kv_heads {n_kv_heads}"
    assert d_head <= nl.tile_size.pmax, f"d_head {d_head} > 128"
    assert seqlen_q % nl.tile_size.pmax == 0, f"seqlen_q {seqlen_q} must be a multiple of 128"
    if use_causal_mask:
        assert seqlen_q == seqlen_kv, "causal masking needs seqlen_q == seqlen_kv"
    assert nl.program_ndim() == 2 or batch * n_kv_heads == 1, (
        f"launch over the grid [batch, n_kv_heads] = [{batch}, {n_kv_heads}] (or call flash_attention())"
    )
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(d_head)
    out = nl.ndarray((batch, n_heads, seqlen_q, d_head), dtype=q.dtype, buffer=nl.shared_hbm)

    P = nl.tile_size.pmax
    KV = kv_block(seqlen_kv)
    group = n_heads // n_kv_heads
    n_q_tiles = seqlen_q // P
    n_kv_blocks = seqlen_kv // KV
    n_kv_tiles = seqlen_kv // P
    tiles_per_block = KV // P
    pe_dt = q.dtype

    b = nl.program_id(0)
    g = nl.program_id(1)  # kv head

    i_p = nl.arange(P)[:, None]
    i_d = nl.arange(d_head)[None, :]
    i_dp = nl.arange(d_head)[:, None]
    i_t = nl.arange(P)[None, :]
    i_kv = nl.arange(KV)[None, :]
    i_1 = nl.arange(1)[None, :]

    # ---- K^T [d_head, seqlen_kv] and V tiles [128, d_head] of this kv head, loaded once
    k_t = nl.ndarray((d_head, seqlen_kv), dtype=pe_dt, buffer=nl.sbuf)
    v_tiles = []
    for t in nl.affine_range(n_kv_tiles):
        k_t[i_dp, t * P + i_t] = nl.load_transpose2d(k[b, g, t * P + i_p, i_d])
        v_tile = nl.ndarray((P, d_head), dtype=pe_dt, buffer=nl.sbuf)
        v_tile[i_p, i_d] = nl.load(v[b, g, t * P + i_p, i_d])
        v_tiles.append(v_tile)

    for hq in nl.affine_range(group):
        h = g * group + hq  # query head served by this kv head
        for i in nl.affine_range(n_q_tiles):
            q_t = nl.load_transpose2d(q[b, h, i * P + i_p, i_d])  # [d_head, 128]
            q_t_scaled = nl.multiply(q_t, scale, dtype=pe_dt)

            # online-softmax state of these 128 query rows
            m_run = nl.full((P, 1), NEG_INF, dtype=nl.float32, buffer=nl.sbuf)
            l_run = nl.zeros((P, 1), dtype=nl.float32, buffer=nl.sbuf)
            acc = nl.zeros((P, d_head), dtype=nl.float32, buffer=nl.sbuf)

            for j in nl.sequential_range(n_kv_blocks):
                # Loop-index predicates: is any column of this block visible to any row of the tile, and does
                # the block reach right of the diagonal (element-wise mask needed)?
                active = (j * KV <= i * P + (P - 1)) if use_causal_mask else None

                qk_psum = nl.ndarray((P, KV), dtype=nl.float32, buffer=nl.psum)
                qk_psum[i_p, i_kv] = nisa.nc_matmul(q_t_scaled, k_t[i_dp, j * KV + i_kv], mask=active)
                s = nl.ndarray((P, KV), dtype=nl.float32, buffer=nl.sbuf)
                s[i_p, i_kv] = nl.copy(qk_psum[i_p, i_kv], mask=active)
                if use_causal_mask:
                    # keep s[r, c] where kv position <= query position (GpSimd works on SBUF, hence the copy)
                    on_diagonal = active & ((j + 1) * KV - 1 > i * P)
                    s[i_p, i_kv] = nisa.affine_select(
                        pred=(i * P + i_p >= j * KV + i_kv),
                        on_true_tile=s[i_p, i_kv],
                        on_false_value=NEG_INF,
                        mask=on_diagonal,
                    )

                # m_new = max(m, rowmax(s)); alpha = exp(m - m_new)
                blk_max = nisa.tensor_reduce(np.max, s[i_p, i_kv], axis=[1], keepdims=True, mask=active)
                m_new = nl.maximum(m_run, blk_max, mask=active)
                neg_m_new = nl.multiply(m_new, -1.0, mask=active)
                alpha = nisa.activation(op=nl.exp, data=m_run, bias=neg_m_new, scale=1.0, mask=active)

                # p = exp(s - m_new) with its row sum
                p_sum = nl.ndarray((P, 1), dtype=nl.float32, buffer=nl.sbuf)
                p = nisa.activation(
                    op=nl.exp,
                    data=s[i_p, i_kv],
                    bias=neg_m_new,
                    scale=1.0,
                    reduce_op=nl.add,
                    reduce_res=p_sum[i_p, i_1],
                    reduce_cmd=nisa.reduce_cmd.reset_reduce,
                    dtype=pe_dt,
                    mask=active,
                )

                # p^T: the block's 128 x 128 tiles transposed on the PE array side by side into one PSUM tile
                # (p_t[:, t*128 : (t+1)*128] is [128 kv rows of tile t, 128 q]), copied to SBUF at once
                p_t_psum = nl.ndarray((P, KV), dtype=pe_dt, buffer=nl.psum)
                for t in nl.affine_range(tiles_per_block):
                    p_t_psum[i_p, t * P + i_t] = nisa.nc_transpose(p[i_p, t * P + i_t], mask=active)
                p_t = nl.copy(p_t_psum, dtype=pe_dt, mask=active)

                # pv = p @ v_block, contracting over the block's kv rows 128 at a time; causal: tiles right of
                # the diagonal hold only zeros and are skipped
                pv_psum = nl.ndarray((P, d_head), dtype=nl.float32, buffer=nl.psum)
                pv_psum[i_p, i_d] = nisa.memset((P, d_head), 0.0, nl.float32, mask=active)
                for t in nl.affine_range(tiles_per_block):
                    needed = (j * KV + t * P <= i * P + (P - 1)) if use_causal_mask else None
                    pv_psum += nisa.nc_matmul(p_t[i_p, t * P + i_t], v_tiles[j * tiles_per_block + t], mask=needed)

                # l = alpha * l + rowsum(p);  acc = alpha * acc + pv;  m = m_new
                l_run[i_p, i_1] = nisa.tensor_scalar(l_run, np.multiply, alpha, op1=np.add, operand1=p_sum, mask=active)
                acc[i_p, i_d] = nisa.tensor_scalar(acc, np.multiply, alpha, mask=active)
                acc[i_p, i_d] = nl.add(acc[i_p, i_d], pv_psum, mask=active)
                m_run[i_p, i_1] = nl.copy(m_new, mask=active)

            inv_l = nisa.reciprocal(l_run)
            o_tile = nisa.tensor_scalar(acc, np.multiply, inv_l, dtype=out.dtype)
            nl.store(out[b, h, i * P + i_p, i_d], value=o_tile)
    return out


def flash_attention(q, k, v, use_causal_mask=True, softmax_scale=None):
    """Host-side launcher: runs flash_attention_fwd over the grid [batch, n_kv_heads] on the simulator."""
    batch, n_kv_heads = k.shape[0], k.shape[1]
    return nki.simulate_kernel(flash_attention_fwd[batch, n_kv_heads], q, k, v, use_causal_mask, softmax_scale)


# ------------------------------------------------------------------------------------------------ self-test
def reference(q, k, v, use_causal_mask=True, softmax_scale=None) -> np.ndarray:
    """float64 NumPy reference (GQA: kv head h // (n_heads // n_kv_heads) serves query head h)."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    group = q.shape[1] // k.shape[1]
    k = np.repeat(k, group, axis=1)
    v = np.repeat(v, group, axis=1)
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(q.shape[-1])
    s = scale * q @ np.swapaxes(k, -1, -2)
    if use_causal_mask:
        s = np.where(np.tril(np.ones(s.shape[-2:], dtype=bool)), s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    return (p / p.sum(axis=-1, keepdims=True)) @ v


def _check() -> None:
    import ml_dtypes

    rng = np.random.default_rng()
    for dt, tol in ((np.float32, 1e-5), (ml_dtypes.bfloat16, 2e-2)):
        worst = 0.0
        for causal in (True, False):
            q = rng.standard_normal((1, 4, 640, 64)).astype(dt)
            k = rng.standard_normal((1, 2, 640, 64)).astype(dt)
            v = rng.standard_normal((1, 2, 640, 64)).astype(dt)
            got = flash_attention(q, k, v, causal).astype(np.float64)
            ref = reference(q, k, v, causal)
            err = float(np.max(np.abs(got - ref) / (1 + np.abs(ref))))
            assert err < tol, f"flash_attention ({np.dtype(dt).name}, causal={causal}): error {err:.3g} >= {tol}"
            worst = max(worst, err)
        print(f"flash_attention ({np.dtype(dt).name}): OK (max err |d|/(1+|ref|) {worst:.2e})")


if __name__ == "__main__":
    _check()
