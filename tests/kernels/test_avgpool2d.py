"""2-D average pooling vs a float64 NumPy reference.

Tolerances: tests/conftest.py per dtype (fp32 1e-5, bf16 2e-2)."""

from __future__ import annotations

import pytest

import trnsim.frontend.legacy as nki
from trnsim.core.dtypes import normalize
from trnsim.kernels import avgpool2d as ap


@pytest.mark.parametrize("dt_name", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape,pool", [((2, 6, 6), 2), ((128, 16, 16), 4), ((200, 15, 22), 3), ((64, 9, 9), 1)])
def test_avgpool2d(rng, close, dt_name, shape, pool):
    x = rng.standard_normal(shape).astype(normalize(dt_name))
    got = nki.simulate_kernel(ap.avgpool2d, x, pool)
    assert got.dtype == x.dtype and got.shape == (shape[0], shape[1] // pool, shape[2] // pool)
    close(got, ap.reference(x, pool), dt_name)
