"""2-D transposes (PE, DMA, free-dimension) vs NumPy: bit exact for fp32, bf16 and fp8 (moves, no math)."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.frontend.legacy as nki
from trnsim.core.dtypes import normalize
from trnsim.kernels import transpose2d as tr

DT_NAMES = ["float32", "bfloat16", "float8_e4m3"]


@pytest.mark.parametrize("dt_name", DT_NAMES)
@pytest.mark.parametrize("kern", [tr.transpose2d, tr.transpose2d_dma], ids=["pe", "dma"])
@pytest.mark.parametrize("shape", [(128, 128), (300, 200), (77, 530)])
def test_transpose2d(rng, kern, dt_name, shape):
    x = rng.standard_normal(shape).astype(normalize(dt_name))
    got = nki.simulate_kernel(kern, x)
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got, x.T)


@pytest.mark.parametrize("dt_name", DT_NAMES)
@pytest.mark.parametrize("rows,shape2d", [(5, (3, 4)), (150, (16, 24)), (128, (1, 7))])
def test_transpose2d_free(rng, dt_name, rows, shape2d):
    f1, f2 = shape2d
    x = rng.standard_normal((rows, f1 * f2)).astype(normalize(dt_name))
    got = nki.simulate_kernel(tr.transpose2d_free, x, shape2d)
    np.testing.assert_array_equal(got, x.reshape(rows, f1, f2).transpose(0, 2, 1).reshape(rows, f1 * f2))


def test_transpose2d_free_checks_shape(rng):
    x = rng.standard_normal((4, 12)).astype(np.float32)
    with pytest.raises(AssertionError, match="row length"):
        nki.simulate_kernel(tr.transpose2d_free, x, (5, 3))
