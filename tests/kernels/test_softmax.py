"""Row softmax (nl ops and the fused activation version) vs a float64 NumPy reference.

Tolerances: tests/conftest.py per dtype (fp32 1e-5, bf16 2e-2; outputs are in [0, 1])."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.frontend.legacy as nki
from trnsim.core.dtypes import normalize
from trnsim.kernels import softmax as sm


@pytest.mark.parametrize("dt_name", ["float32", "bfloat16"])
@pytest.mark.parametrize("kern", [sm.softmax, sm.softmax_fused], ids=["nl", "fused"])
@pytest.mark.parametrize("shape", [(128, 512), (200, 384), (37, 1000)])
def test_softmax(rng, close, kern, dt_name, shape):
    x = (4.0 * rng.standard_normal(shape)).astype(normalize(dt_name))
    got = nki.simulate_kernel(kern, x)
    assert got.dtype == x.dtype
    close(got, sm.reference(x), dt_name)
    np.testing.assert_allclose(got.astype(np.float64).sum(axis=1), 1.0, atol=3e-2 if dt_name == "bfloat16" else 1e-5)


def test_softmax_large_values_are_stable(rng, close):
    x = (rng.standard_normal((130, 256)) * 30 + 500).astype(np.float32)
    close(nki.simulate_kernel(sm.softmax_fused, x), sm.reference(x), "float32")
