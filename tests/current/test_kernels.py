"""The current-API kernels against NumPy float64 and against the legacy-API kernels on the same inputs."""

from __future__ import annotations

import importlib

import ml_dtypes
import numpy as np
import pytest

import trnsim
import trnsim.frontend.current as nki
from trnsim.kernels.current import flash_attention as fa_cur
from trnsim.kernels.current import matmul as mm_cur
from trnsim.kernels.current import rmsnorm as rms_cur


def _legacy(module: str, name: str):
    """A legacy kernel if the legacy kernels module provides it (else None: compare with NumPy only)."""
    try:
        return getattr(importlib.import_module(f"trnsim.kernels.{module}"), name, None)
    except ImportError:
        return None


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (ml_dtypes.bfloat16, 1e-2)])
def test_matmul_matches_numpy_and_legacy(rng, dtype, tol):
    a = rng.standard_normal((256, 256)).astype(dtype)
    b = rng.standard_normal((256, 1024)).astype(dtype)
    got = nki.simulate(mm_cur.matmul)(a, b)
    assert got.dtype == a.dtype and got.shape == (256, 1024)
    ref = mm_cur.reference(a, b)
    scale = np.abs(ref).max()
    assert np.abs(got.astype(np.float64) - ref).max() <= tol * scale
    legacy = _legacy("matmul", "matmul_optimized")
    if legacy is not None:
        old = trnsim.simulate_kernel(legacy, a, b)
        # both accumulate in fp32 and round once: the two generations agree to fp32 summation-order noise
        assert np.abs(got.astype(np.float64) - old.astype(np.float64)).max() <= max(tol, 1e-5) * scale


def test_matmul_blocking_options_and_timing(rng):
    a = rng.standard_normal((256, 256)).astype(np.float32)
    b = rng.standard_normal((256, 1024)).astype(np.float32)
    got = nki.simulate(mm_cur.matmul)(a, b, 1, 1, 1)
    np.testing.assert_allclose(got, mm_cur.reference(a, b), rtol=1e-4, atol=1e-4)
    est = trnsim.estimate(mm_cur.matmul, a, b)
    assert est.total_ns > 0 and est.flops == 2 * 256 * 256 * 1024


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (ml_dtypes.bfloat16, 2e-2)])
def test_rmsnorm_matches_numpy_and_legacy(rng, dtype, tol):
    x = rng.standard_normal((200, 384)).astype(dtype)
    g = rng.uniform(0.5, 1.5, 384).astype(dtype)
    ref = rms_cur.reference(x, g)
    outs = [nki.simulate(rms_cur.rmsnorm[lnc])(x, g).astype(np.float64) for lnc in (1, 2)]
    for got in outs:
        assert np.max(np.abs(got - ref) / (1 + np.abs(ref))) < tol
    np.testing.assert_array_equal(outs[0], outs[1])  # the row split does not change any value
    legacy = _legacy("rmsnorm", "rmsnorm_fused")
    if legacy is not None:
        old = trnsim.simulate_kernel(legacy, x, g).astype(np.float64)
        assert np.max(np.abs(old - outs[0]) / (1 + np.abs(ref))) < tol


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (ml_dtypes.bfloat16, 2e-2)])
@pytest.mark.parametrize("causal", [True, False])
def test_flash_attention_matches_numpy_and_legacy(rng, dtype, tol, causal):
    q = rng.standard_normal((1, 4, 256, 64)).astype(dtype)
    k = rng.standard_normal((1, 2, 256, 64)).astype(dtype)
    v = rng.standard_normal((1, 2, 256, 64)).astype(dtype)
    got = nki.simulate(fa_cur.flash_attention_fwd[2])(q, k, v, causal).astype(np.float64)
    ref = fa_cur.reference(q, k, v, causal)
    assert np.abs(got - ref).max() < tol
    legacy = _legacy("flash_attention", "flash_attention")
    if legacy is not None:
        old = legacy(q, k, v, causal).astype(np.float64)
        assert np.abs(old - got).max() < 2 * tol


def test_flash_attention_lnc1_equals_lnc2(rng):
    q = rng.standard_normal((2, 2, 128, 32)).astype(np.float32)
    k = rng.standard_normal((2, 1, 256, 32)).astype(np.float32)
    v = rng.standard_normal((2, 1, 256, 32)).astype(np.float32)
    one, rec1 = fa_cur.flash_attention_fwd.launch(q, k, v, False)
    two, rec2 = fa_cur.flash_attention_fwd[2].launch(q, k, v, False)
    np.testing.assert_array_equal(one, two)
    assert {i.core for i in rec2.stream} == {0, 1} and {i.core for i in rec1.stream} == {0}
    np.testing.assert_allclose(one, fa_cur.reference(q, k, v, False), rtol=1e-5, atol=1e-5)
