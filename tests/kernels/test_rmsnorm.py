"""RMSNorm (nl ops and the fused version) vs a float64 NumPy reference.

Tolerances: tests/conftest.py per dtype, times 2 for fp32 (rsqrt and two multiplies on O(1) values)."""

from __future__ import annotations

import pytest

import trnsim.frontend.legacy as nki
from trnsim.core.dtypes import normalize
from trnsim.kernels import rmsnorm as rn

SCALE = {"float32": 2.0, "bfloat16": 1.0}


@pytest.mark.parametrize("dt_name", ["float32", "bfloat16"])
@pytest.mark.parametrize("kern", [rn.rmsnorm, rn.rmsnorm_fused], ids=["nl", "fused"])
@pytest.mark.parametrize("shape", [(128, 512), (200, 384), (5, 1024)])
def test_rmsnorm(rng, close, kern, dt_name, shape):
    dt = normalize(dt_name)
    x = rng.standard_normal(shape).astype(dt)
    g = rng.uniform(0.5, 1.5, shape[1]).astype(dt)
    got = nki.simulate_kernel(kern, x, g)
    assert got.dtype == x.dtype
    close(got, rn.reference(x, g), dt_name, SCALE[dt_name])


def test_rmsnorm_eps(rng, close):
    x = (1e-3 * rng.standard_normal((64, 256))).astype("float32")
    g = rng.uniform(0.5, 1.5, 256).astype("float32")
    close(nki.simulate_kernel(rn.rmsnorm_fused, x, g, 1e-4), rn.reference(x, g, 1e-4), "float32", 2.0)
