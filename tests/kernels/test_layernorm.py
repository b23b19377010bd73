"""LayerNorm (nl ops, and bn_stats / bn_aggr) vs a float64 NumPy reference.

Tolerances: tests/conftest.py per dtype; fp32 times 10 for the nl version (its variance is E[x^2] - E[x]^2,
which cancels when |mean| >> std), times 2 for the bn_stats version."""

from __future__ import annotations

import pytest

import trnsim.frontend.legacy as nki
from trnsim.core.dtypes import normalize
from trnsim.kernels import layernorm as ln

SCALE = {("nl", "float32"): 10.0, ("bn", "float32"): 2.0, ("nl", "bfloat16"): 1.0, ("bn", "bfloat16"): 1.0}


@pytest.mark.parametrize("dt_name", ["float32", "bfloat16"])
@pytest.mark.parametrize("kind", ["nl", "bn"])
@pytest.mark.parametrize("shape", [(128, 512), (200, 700), (3, 1536)])
def test_layernorm(rng, close, kind, dt_name, shape):
    dt = normalize(dt_name)
    kern = ln.layernorm if kind == "nl" else ln.layernorm_bn
    x = (rng.standard_normal(shape) + 0.5).astype(dt)
    gamma = rng.uniform(0.5, 1.5, shape[1]).astype(dt)
    beta = rng.standard_normal(shape[1]).astype(dt)
    got = nki.simulate_kernel(kern, x, gamma, beta)
    assert got.dtype == x.dtype
    close(got, ln.reference(x, gamma, beta), dt_name, SCALE[(kind, dt_name)])


def test_layernorm_bn_offset_rows(rng, close):
    """bn_stats statistics stay accurate with a large common offset (the E[x^2] - E[x]^2 form would not): the only
    error left is the fp32 rounding of the mean at the offset (ulp(300) ~ 3e-5), measured at up to ~8x the fp32
    tolerance, so 20x leaves room without hiding a statistics bug (those give errors of order 1)."""
    x = (rng.standard_normal((64, 600)) + 300.0).astype("float32")
    gamma = rng.uniform(0.5, 1.5, 600).astype("float32")
    beta = rng.standard_normal(600).astype("float32")
    close(nki.simulate_kernel(ln.layernorm_bn, x, gamma, beta, 1e-5), ln.reference(x, gamma, beta), "float32", 20.0)
