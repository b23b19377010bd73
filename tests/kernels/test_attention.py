"""Fused self-attention (small head) vs a float64 NumPy reference, with and without the causal mask.

Tolerances: tests/conftest.py per dtype (fp32 1e-5, bf16 2e-2; bf16 runs the probabilities through bf16
matmuls, as on hardware)."""

from __future__ import annotations

import pytest

import trnsim.frontend.legacy as nki
from trnsim.core.dtypes import normalize
from trnsim.kernels import attention as at


@pytest.mark.parametrize("dt_name", ["float32", "bfloat16"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("seqlen,d_head", [(512, 64), (384, 128), (128, 32)])
def test_fused_self_attention(rng, close, dt_name, causal, seqlen, d_head):
    dt = normalize(dt_name)
    q, k, v = (rng.standard_normal((seqlen, d_head)).astype(dt) for _ in range(3))
    got = nki.simulate_kernel(at.fused_self_attention, q, k, v, causal)
    assert got.dtype == q.dtype
    close(got, at.reference(q, k, v, causal), dt_name)


def test_fused_self_attention_scale(rng, close):
    q, k, v = (rng.standard_normal((256, 64)).astype("float32") for _ in range(3))
    got = nki.simulate_kernel(at.fused_self_attention, q, k, v, False, 0.3)
    close(got, at.reference(q, k, v, False, 0.3), "float32")


def test_causal_skips_blocks_right_of_the_diagonal(rng):
    from trnsim.core.launch import last_launch

    q, k, v = (rng.standard_normal((1024, 64)).astype("float32") for _ in range(3))
    counts = []
    for causal in (False, True):
        nki.simulate_kernel(at.fused_self_attention, q, k, v, causal)
        counts.append(sum(1 for i in last_launch().stream if i.opcode == "MATMUL"))
    assert counts[1] < 0.7 * counts[0], counts
