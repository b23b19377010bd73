"""Rotary position embedding (RoPE) of queries and keys (legacy NKI API), as in AWS's rotary tutorial.

q: [batch, n_heads, seqlen, d_head], k: [batch, n_kv_heads, seqlen, d_head] (GQA allowed), cos / sin:
[batch, seqlen, d_head] in the Hugging Face layout (the frequencies repeated over both halves), d_head even
(it is a free dimension, so any even size fits). Returns (q_rot, k_rot) with

    x_rot = x * cos + rotate_half(x) * sin,   rotate_half(x) = concat(-x[..., d/2:], x[..., :d/2]).

Launch `rotary_embedding[batch](q, k, cos, sin)` (or call `apply_rotary(q, k, cos, sin)`): each program takes
one batch entry; the sequence is tiled by 128 partitions (ragged last tile masked); the cos / sin tiles of a
sequence tile are loaded once and reused by every query and key head. Math in fp32, outputs in the input
dtype.
"""

from __future__ import annotations

import numpy as np

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.language as nl


def _rotate(x_tile, cos_tile, sin_tile, rows, i_p, i_f, i_h, half, out_dtype):
    """x * cos + rotate_half(x) * sin for one [128, d_head] tile (helper traced inline into the kernel)."""
    out = nl.multiply(x_tile, cos_tile, dtype=nl.float32, mask=rows)
    # first half: x1 * cos1 - x2 * sin1
    x2_sin = nl.multiply(x_tile[i_p, half + i_h], sin_tile[i_p, i_h], dtype=nl.float32, mask=rows)
    out[i_p, i_h] = nl.subtract(out[i_p, i_h], x2_sin, mask=rows)
    # second half: x2 * cos2 + x1 * sin2
    x1_sin = nl.multiply(x_tile[i_p, i_h], sin_tile[i_p, half + i_h], dtype=nl.float32, mask=rows)
    out[i_p, half + i_h] = nl.add(out[i_p, half + i_h], x1_sin, mask=rows)
    return nl.copy(out[i_p, i_f], dtype=out_dtype, mask=rows)


@nki.jit
def rotary_embedding(q, k, cos, sin):
    """RoPE for one batch entry per program; launch as rotary_embedding[batch](q, k, cos, sin)."""
    batch, n_heads, seqlen, d_head = q.shape
    _, n_kv_heads, _, _ = k.shape
    assert tuple(k.shape) == (batch, n_kv_heads, seqlen, d_head), f"k shape {k.shape} does not match q {q.shape}"
    assert tuple(cos.shape) == (batch, seqlen, d_head) and tuple(sin.shape) == tuple(cos.shape), "cos/sin shape"
    assert d_head % 2 == 0, f"d_head {d_head} must be even"
    assert nl.program_ndim() == 1 or batch == 1, f"launch over the grid [batch] = [{batch}] (or call apply_rotary())"
    q_out = nl.ndarray(q.shape, dtype=q.dtype, buffer=nl.shared_hbm)
    k_out = nl.ndarray(k.shape, dtype=k.dtype, buffer=nl.shared_hbm)

    P = nl.tile_size.pmax
    half = d_head // 2
    b = nl.program_id(0)
    i_p = nl.arange(P)[:, None]
    i_f = nl.arange(d_head)[None, :]
    i_h = nl.arange(half)[None, :]

    for s in nl.affine_range((seqlen + P - 1) // P):
        rows = s * P + i_p < seqlen
        cos_tile = nl.load(cos[b, s * P + i_p, i_f], dtype=nl.float32, mask=rows)
        sin_tile = nl.load(sin[b, s * P + i_p, i_f], dtype=nl.float32, mask=rows)
        for h in nl.affine_range(n_heads):
            q_tile = nl.load(q[b, h, s * P + i_p, i_f], mask=rows)
            q_rot = _rotate(q_tile, cos_tile, sin_tile, rows, i_p, i_f, i_h, half, q.dtype)
            nl.store(q_out[b, h, s * P + i_p, i_f], value=q_rot, mask=rows)
        for h in nl.affine_range(n_kv_heads):
            k_tile = nl.load(k[b, h, s * P + i_p, i_f], mask=rows)
            k_rot = _rotate(k_tile, cos_tile, sin_tile, rows, i_p, i_f, i_h, half, k.dtype)
            nl.store(k_out[b, h, s * P + i_p, i_f], value=k_rot, mask=rows)
    return q_out, k_out


def apply_rotary(q, k, cos, sin):
    """Host-side launcher: runs rotary_embedding over the grid [batch] on the simulator."""
    return nki.simulate_kernel(rotary_embedding[q.shape[0]], q, k, cos, sin)


# ------------------------------------------------------------------------------------------------ self-test
def rope_tables(batch: int, seqlen: int, d_head: int, base: float = 10000.0) -> tuple[np.ndarray, np.ndarray]:
    """Hugging Face style cos / sin tables [batch, seqlen, d_head] (float64)."""
    inv_freq = 1.0 / (base ** (np.arange(0, d_head, 2, dtype=np.float64) / d_head))
    freqs = np.arange(seqlen, dtype=np.float64)[:, None] * inv_freq[None, :]
    emb = np.concatenate([freqs, freqs], axis=-1)
    return np.broadcast_to(np.cos(emb), (batch, seqlen, d_head)), np.broadcast_to(np.sin(emb), (batch, seqlen, d_head))


def reference(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """float64 NumPy reference for one of q / k ([batch, heads, seqlen, d_head])."""
    x = np.asarray(x, dtype=np.float64)
    c = np.asarray(cos, dtype=np.float64)[:, None]
    s = np.asarray(sin, dtype=np.float64)[:, None]
    half = x.shape[-1] // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * c + rot * s


def _check() -> None:
    import ml_dtypes

    rng = np.random.default_rng()
    for dt, tol in ((np.float32, 1e-5), (ml_dtypes.bfloat16, 2e-2)):
        q = rng.standard_normal((2, 4, 200, 64)).astype(dt)
        k = rng.standard_normal((2, 2, 200, 64)).astype(dt)
        cos, sin = (t.astype(dt) for t in rope_tables(2, 200, 64))
        q_rot, k_rot = apply_rotary(q, k, cos, sin)
        err = 0.0
        for got, x in ((q_rot, q), (k_rot, k)):
            ref = reference(x, cos, sin)
            err = max(err, float(np.max(np.abs(got.astype(np.float64) - ref) / (1 + np.abs(ref)))))
        assert err < tol, f"rotary ({np.dtype(dt).name}): error {err:.3g} >= {tol}"
        print(f"rotary ({np.dtype(dt).name}): OK (max err |d|/(1+|ref|) {err:.2e})")


if __name__ == "__main__":
    _check()
