"""Flash-attention forward (online softmax, causal, GQA) vs a float64 NumPy reference.

Tolerances: tests/conftest.py per dtype (fp32 1e-5, bf16 2e-2)."""

from __future__ import annotations

import numpy as np
import pytest

from trnsim.core.dtypes import normalize
from trnsim.kernels import flash_attention as fa


def _qkv(rng, dt_name, batch, n_heads, n_kv_heads, seqlen, d_head):
    dt = normalize(dt_name)
    q = rng.standard_normal((batch, n_heads, seqlen, d_head)).astype(dt)
    k = rng.standard_normal((batch, n_kv_heads, seqlen, d_head)).astype(dt)
    v = rng.standard_normal((batch, n_kv_heads, seqlen, d_head)).astype(dt)
    return q, k, v


@pytest.mark.parametrize("dt_name", ["float32", "bfloat16"])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(
    "batch,n_heads,n_kv_heads,seqlen,d_head",
    [(1, 1, 1, 512, 128), (2, 4, 2, 384, 64), (1, 3, 1, 640, 32)],  # MHA, GQA (2 q heads per kv head), MQA
)
def test_flash_attention(rng, close, dt_name, causal, batch, n_heads, n_kv_heads, seqlen, d_head):
    q, k, v = _qkv(rng, dt_name, batch, n_heads, n_kv_heads, seqlen, d_head)
    got = fa.flash_attention(q, k, v, causal)
    assert got.dtype == q.dtype and got.shape == q.shape
    close(got, fa.reference(q, k, v, causal), dt_name)


def test_flash_attention_cross_lengths(rng, close):
    """Non-causal attention with seqlen_q != seqlen_kv and an explicit scale."""
    q = rng.standard_normal((1, 2, 256, 64)).astype(np.float32)
    k = rng.standard_normal((1, 1, 1024, 64)).astype(np.float32)
    v = rng.standard_normal((1, 1, 1024, 64)).astype(np.float32)
    close(fa.flash_attention(q, k, v, False, 0.2), fa.reference(q, k, v, False, 0.2), "float32")


@pytest.mark.slow
def test_flash_attention_seq4096_d128(rng, close):
    q, k, v = _qkv(rng, "bfloat16", 1, 2, 1, 4096, 128)
    close(fa.flash_attention(q, k, v, True), fa.reference(q, k, v, True), "bfloat16")
