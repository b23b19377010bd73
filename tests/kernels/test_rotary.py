"""Rotary position embedding (q and k, GQA head counts) vs a float64 NumPy reference.

Tolerances: tests/conftest.py per dtype (fp32 1e-5, bf16 2e-2)."""

from __future__ import annotations

import pytest

from trnsim.core.dtypes import normalize
from trnsim.kernels import rotary as rt


@pytest.mark.parametrize("dt_name", ["float32", "bfloat16"])
@pytest.mark.parametrize(
    "batch,n_heads,n_kv_heads,seqlen,d_head", [(1, 2, 2, 128, 128), (2, 4, 2, 200, 64), (1, 1, 1, 5, 16)]
)
def test_rotary(rng, close, dt_name, batch, n_heads, n_kv_heads, seqlen, d_head):
    dt = normalize(dt_name)
    q = rng.standard_normal((batch, n_heads, seqlen, d_head)).astype(dt)
    k = rng.standard_normal((batch, n_kv_heads, seqlen, d_head)).astype(dt)
    cos, sin = (t.astype(dt) for t in rt.rope_tables(batch, seqlen, d_head))
    q_rot, k_rot = rt.apply_rotary(q, k, cos, sin)
    assert q_rot.dtype == q.dtype and k_rot.shape == k.shape
    close(q_rot, rt.reference(q, cos, sin), dt_name)
    close(k_rot, rt.reference(k, cos, sin), dt_name)
