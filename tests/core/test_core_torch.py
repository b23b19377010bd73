"""torch CPU tensors in -> torch tensors out (same dtype), inputs untouched; skipped when torch is absent."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim
import trnsim.frontend.legacy.language as nl

torch = pytest.importorskip("torch")


def _double(a):
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    nl.store(out, nl.multiply(nl.load(a), 2.0, dtype=a.dtype))
    return out


@pytest.mark.parametrize("dt", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_legacy_kernel_takes_and_returns_torch(rng, dt):
    x = torch.from_numpy(rng.standard_normal((128, 64)).astype(np.float32)).to(dt)
    before = x.clone()
    got = trnsim.simulate_kernel(_double, x)
    assert isinstance(got, torch.Tensor) and got.dtype == dt
    torch.testing.assert_close(got, (x.float() * 2).to(dt), rtol=0, atol=0)
    assert torch.equal(x, before)
