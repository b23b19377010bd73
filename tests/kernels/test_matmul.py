"""The matmul tutorial ladder vs a float64 NumPy reference, fp32 / bf16 / fp8 inputs.

Tolerances: the dtype's rtol / atol from tests/conftest.py (fp32 1e-5, bf16 2e-2, fp8 e4m3 0.15, e5m2 0.25),
times 10 for fp32: K = 256 products summed in fp32 PSUM carry rounding errors of ~sqrt(K) * eps * |partial
sums| (up to ~3e-5 here; NumPy's own fp32 matmul is off by ~6e-5). For bf16 / fp8 the rounding of the output
to the input dtype dominates.
"""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.frontend.legacy as nki
from trnsim.core.dtypes import normalize
from trnsim.kernels import matmul as mm

SCALE = {"float32": 10.0, "bfloat16": 1.0, "float8_e4m3": 1.0, "float8_e5m2": 1.0}


def _inputs(rng, dt_name, K, M, N):
    dt = normalize(dt_name)
    lhsT = rng.standard_normal((K, M)).astype(np.float32)
    rhs = rng.standard_normal((K, N)).astype(np.float32)
    if dt_name.startswith("float8"):
        lhsT, rhs = lhsT * 0.5, rhs * 0.5  # keep K-term sums well inside the fp8 range
    return lhsT.astype(dt), rhs.astype(dt)


@pytest.mark.parametrize("dt_name", ["float32", "bfloat16", "float8_e4m3", "float8_e5m2"])
@pytest.mark.parametrize("K,M,N", [(128, 128, 512), (64, 96, 200)])
def test_matmul_basic(rng, close, dt_name, K, M, N):
    lhsT, rhs = _inputs(rng, dt_name, K, M, N)
    got = nki.simulate_kernel(mm.matmul_basic, lhsT, rhs)
    assert got.dtype == lhsT.dtype and got.shape == (M, N)
    close(got, mm.reference(lhsT, rhs), dt_name, SCALE[dt_name])


@pytest.mark.parametrize("dt_name", ["float32", "bfloat16", "float8_e4m3"])
@pytest.mark.parametrize("name", ["matmul_tiled", "matmul_hoisted", "matmul_blocked", "matmul_optimized"])
def test_matmul_ladder(rng, close, name, dt_name):
    K, M, N = 256, 256, 1024
    lhsT, rhs = _inputs(rng, dt_name, K, M, N)
    got = nki.simulate_kernel(mm.KERNELS[name], lhsT, rhs)
    assert got.dtype == lhsT.dtype and got.shape == (M, N)
    close(got, mm.reference(lhsT, rhs), dt_name, SCALE[dt_name])


@pytest.mark.parametrize("dt_name", ["float32", "bfloat16"])
def test_matmul_optimized_multi_block(rng, close, dt_name):
    # one-tile blocks: 2 K blocks accumulate into SBUF, 2 M blocks, 2 N blocks
    K, M, N = 256, 256, 1024
    lhsT, rhs = _inputs(rng, dt_name, K, M, N)
    kern = mm.matmul_optimized
    got = nki.simulate_kernel(kern, lhsT, rhs, TILES_IN_BLOCK_M=1, TILES_IN_BLOCK_N=1, TILES_IN_BLOCK_K=1)
    close(got, mm.reference(lhsT, rhs), dt_name, SCALE[dt_name])


def test_matmul_ladder_is_faster_step_by_step(rng):
    """The point of the tutorial: each optimisation step issues fewer DMAs (and is modeled faster)."""
    from trnsim.core.launch import last_launch
    from trnsim.timing.model import estimate_launch

    lhsT, rhs = _inputs(rng, "bfloat16", 512, 512, 2048)
    dmas, times = [], []
    for name in ("matmul_tiled", "matmul_hoisted", "matmul_blocked", "matmul_optimized"):
        nki.simulate_kernel(mm.KERNELS[name], lhsT, rhs)
        launch = last_launch()
        dmas.append(sum(1 for i in launch.stream if i.engine == "DMA"))
        times.append(estimate_launch(launch).total_ns)
    assert dmas == sorted(dmas, reverse=True) and len(set(dmas)) == 4, dmas
    assert times[-1] < times[0], times


def test_matmul_shape_checks(rng):
    lhsT, rhs = _inputs(rng, "float32", 128, 100, 512)
    with pytest.raises(AssertionError, match="multiple of 128"):
        nki.simulate_kernel(mm.matmul_tiled, lhsT, rhs)
    with pytest.raises(AssertionError, match="contraction"):
        nki.simulate_kernel(mm.matmul_basic, lhsT, rhs[:64])
