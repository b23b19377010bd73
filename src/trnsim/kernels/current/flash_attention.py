"""Flash-attention forward (online softmax, causal mask, grouped-query attention) in the current NKI API.

q: [batch, n_heads, seqlen_q, d_head], k and v: [batch, n_kv_heads, seqlen_kv, d_head] in HBM; d_head <= 128,
seqlens multiples of 128, n_heads a multiple of n_kv_heads. out = softmax(scale * q @ k.T [+ causal]) @ v.

Same algorithm as the legacy kernel (trnsim/kernels/flash_attention.py), with dst-first instructions:
for every (batch, kv head) K^T [d, seqlen_kv] and V [seqlen_kv, d] are loaded once (K^T by a DMA transpose);
for every 128-row query tile the kv sequence streams by in blocks of up to 512 columns:

    s      = nc_matmul(q_tile^T, k_block^T)                    PSUM [128, B] fp32
    causal : affine_select(q_row - kv_col >= 0) on the diagonal block, blocks right of it skipped
    m_new  = max(m, rowmax(s));  nb = -scale * m_new
    p      = activation(exp, s, scale, bias=nb) + row sums       (one ScalarE instruction)
    alpha  = activation(exp, m, scale, bias=nb)
    l      = l * alpha + rowsum               (scalar_tensor_tensor)
    acc    = acc * alpha + p @ v_block        (p transposed 128 x 128 on the PE array, PSUM accumulation)

and finally out = acc / l. Matmul operands are in the input dtype, statistics and accumulators in fp32.
Launch with `flash_attention_fwd[2]` to split the (batch, kv head) pairs between the cores of an LNC=2 core.
"""

from __future__ import annotations

import math

import numpy as np

import trnsim.frontend.current as nki
import trnsim.frontend.current.isa as nisa
import trnsim.frontend.current.language as nl

# the masked-score fill, the kv block choice and the float64 reference are the same for both API generations
from trnsim.kernels.flash_attention import NEG_INF, reference  # noqa: F401 - reference: imported for the tests
from trnsim.kernels.flash_attention import kv_block as _kv_block


@nki.jit
def flash_attention_fwd(q, k, v, use_causal_mask=True, softmax_scale=None):
    """out[b, h] = softmax(scale * q[b, h] @ k[b, h // group].T) @ v[b, h // group]."""
    batch, n_heads, seqlen_q, d = q.shape
    _, n_kv, seqlen_kv, _ = k.shape
    P = nl.tile_size.pmax
    assert d <= P and seqlen_q % P == 0 and seqlen_kv % P == 0 and n_heads % n_kv == 0
    group = n_heads // n_kv
    scale = float(softmax_scale) if softmax_scale else 1.0 / math.sqrt(d)
    B = _kv_block(seqlen_kv)
    dt = q.dtype
    out = nl.ndarray(q.shape, dtype=q.dtype, buffer=nl.shared_hbm)

    pairs = [(b, g) for b in range(batch) for g in range(n_kv)]
    for b, g in pairs[nl.program_id(0) :: nl.num_programs()]:
        k_t = nl.ndarray((d, seqlen_kv), dtype=dt, buffer=nl.sbuf)
        for j in range(seqlen_kv // P):
            nisa.dma_transpose(dst=k_t[:, j * P : (j + 1) * P], src=k[b, g, j * P : (j + 1) * P, :])
        v_sb = nl.ndarray((P, seqlen_kv // P, d), dtype=dt, buffer=nl.sbuf)
        for j in range(seqlen_kv // P):
            nisa.dma_copy(dst=v_sb[:, j, :], src=v[b, g, j * P : (j + 1) * P, :])

        for h in range(g * group, (g + 1) * group):
            for i in range(seqlen_q // P):
                q0 = i * P
                q_t = nl.ndarray((d, P), dtype=dt, buffer=nl.sbuf)
                nisa.dma_transpose(dst=q_t, src=q[b, h, q0 : q0 + P, :])
                m_run = nl.ndarray((P, 1), dtype=nl.float32, buffer=nl.sbuf)
                l_run = nl.ndarray((P, 1), dtype=nl.float32, buffer=nl.sbuf)
                acc = nl.ndarray((P, d), dtype=nl.float32, buffer=nl.sbuf)
                nisa.memset(dst=m_run, value=NEG_INF)
                nisa.memset(dst=l_run, value=0.0)
                nisa.memset(dst=acc, value=0.0)
                n_blocks = seqlen_kv // B
                if use_causal_mask:
                    n_blocks = min(n_blocks, (q0 + P - 1) // B + 1)
                for j in range(n_blocks):
                    kv0 = j * B
                    s_psum = nl.ndarray((P, B), dtype=nl.float32, buffer=nl.psum)
                    nisa.nc_matmul(dst=s_psum, stationary=q_t, moving=k_t[:, kv0 : kv0 + B])
                    s = s_psum
                    if use_causal_mask and kv0 + B - 1 > q0:
                        s_sb = nl.ndarray((P, B), dtype=nl.float32, buffer=nl.sbuf)
                        nisa.tensor_copy(dst=s_sb, src=s_psum)
                        # keep where (q0 + p) - (kv0 + col) >= 0
                        nisa.affine_select(dst=s_sb, pattern=[[-1, B]], channel_multiplier=1, on_true_tile=s_sb,
                                           on_false_value=NEG_INF, cmp_op=nl.greater_equal, offset=q0 - kv0)
                        s = s_sb
                    m_blk = nl.ndarray((P, 1), dtype=nl.float32, buffer=nl.sbuf)
                    nisa.tensor_reduce(dst=m_blk, op=nl.maximum, data=s, axis=1)
                    m_new = nl.ndarray((P, 1), dtype=nl.float32, buffer=nl.sbuf)
                    nisa.tensor_tensor(dst=m_new, data1=m_run, data2=m_blk, op=nl.maximum)
                    nb = nl.ndarray((P, 1), dtype=nl.float32, buffer=nl.sbuf)
                    nisa.tensor_scalar(dst=nb, data=m_new, op0=nl.multiply, operand0=-scale)

                    p = nl.ndarray((P, B), dtype=dt, buffer=nl.sbuf)
                    rowsum = nl.ndarray((P, 1), dtype=nl.float32, buffer=nl.sbuf)
                    nisa.activation(dst=p, op=nl.exp, data=s, bias=nb, scale=scale, reduce_op=nl.add,
                                    reduce_res=rowsum, reduce_cmd=nisa.reduce_cmd.reset_reduce)
                    alpha = nl.ndarray((P, 1), dtype=nl.float32, buffer=nl.sbuf)
                    nisa.activation(dst=alpha, op=nl.exp, data=m_run, bias=nb, scale=scale)
                    nisa.scalar_tensor_tensor(dst=l_run, data=l_run, op0=nl.multiply, operand0=alpha, op1=nl.add,
                                              operand1=rowsum)
                    nisa.tensor_copy(dst=m_run, src=m_new)

                    pv = nl.ndarray((P, d), dtype=nl.float32, buffer=nl.psum)
                    for c in range(B // P):
                        p_t_psum = nl.ndarray((P, P), dtype=dt, buffer=nl.psum)
                        nisa.nc_transpose(dst=p_t_psum, data=p[:, c * P : (c + 1) * P])
                        p_t = nl.ndarray((P, P), dtype=dt, buffer=nl.sbuf)
                        nisa.tensor_copy(dst=p_t, src=p_t_psum)
                        nisa.nc_matmul(dst=pv, stationary=p_t, moving=v_sb[:, kv0 // P + c, :])
                    nisa.scalar_tensor_tensor(dst=acc, data=acc, op0=nl.multiply, operand0=alpha, op1=nl.add,
                                              operand1=pv)

                inv_l = nl.ndarray((P, 1), dtype=nl.float32, buffer=nl.sbuf)
                nisa.reciprocal(dst=inv_l, data=l_run)
                o_tile = nl.ndarray((P, d), dtype=out.dtype, buffer=nl.sbuf)
                nisa.tensor_scalar(dst=o_tile, data=acc, op0=nl.multiply, operand0=inv_l)
                nisa.dma_copy(dst=out[b, h, q0 : q0 + P, :], src=o_tile)
    return out


def _check() -> None:
    import ml_dtypes

    rng = np.random.default_rng()
    for dt, tol in ((np.float32, 1e-5), (ml_dtypes.bfloat16, 2e-2)):
        for causal in (True, False):
            q = rng.standard_normal((1, 4, 640, 64)).astype(dt)
            k = rng.standard_normal((1, 2, 640, 64)).astype(dt)
            v = rng.standard_normal((1, 2, 640, 64)).astype(dt)
            got = nki.simulate(flash_attention_fwd[2])(q, k, v, causal).astype(np.float64)
            err = float(np.abs(got - reference(q, k, v, causal)).max())
            assert err < tol, f"flash_attention ({np.dtype(dt).name}, causal={causal}): error {err:.3g}"
        print(f"flash_attention current API ({np.dtype(dt).name}): OK")


if __name__ == "__main__":
    _check()
