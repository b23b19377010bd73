"""Legacy nisa.nc_matmul(perf_mode="double_row...") with [K, 2, M] / [K, 2, N] fp8 operands: the contraction
runs over K * 2 rows (NeuronCore-v3+); works on gathered views and with `psum[...] += ...`."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import trnsim
import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl
from trnsim.core.errors import NkiError

FP8 = ml_dtypes.float8_e4m3


def _kernel(a, b):
    out = nl.ndarray((a.shape[2], b.shape[2]), dtype=nl.float32, buffer=nl.shared_hbm)
    at, bt = nl.load(a), nl.load(b)
    acc = nl.zeros((a.shape[2], b.shape[2]), dtype=nl.float32, buffer=nl.psum)
    for _ in nl.affine_range(2):
        acc[...] += nisa.nc_matmul(at, bt, perf_mode="double_row_gen3")
    nl.store(out, nl.copy(acc))
    return out


def _gathered(a, b):
    # the operands as gathered views of flat [K, 2*F] tiles (multi-variable index expressions)
    out = nl.ndarray((64, 256), dtype=nl.float32, buffer=nl.shared_hbm)
    at, bt = nl.load(a), nl.load(b)
    i, h, m = nl.mgrid[0:128, 0:2, 0:64]
    j, g, n = nl.mgrid[0:128, 0:2, 0:256]
    nl.store(out, nl.copy(nisa.nc_matmul(at[i, h * 64 + m], bt[j, g * 256 + n], perf_mode="double_row")))
    return out


def test_double_row_contracts_over_both_rows(rng):
    a = rng.integers(-3, 4, (128, 2, 32)).astype(FP8)
    b = rng.integers(-3, 4, (128, 2, 256)).astype(FP8)
    got = nki.simulate_kernel(nki.jit(_kernel), a, b)
    ref = 2 * np.einsum("kli,klj->ij", a.astype(np.float64), b.astype(np.float64))
    np.testing.assert_array_equal(got, ref)


def test_double_row_on_gathered_views(rng):
    a = rng.integers(-3, 4, (128, 128)).astype(FP8)
    b = rng.integers(-3, 4, (128, 512)).astype(FP8)
    got = nki.simulate_kernel(nki.jit(_gathered), a, b)
    a3, b3 = a.astype(np.float64).reshape(128, 2, 64), b.astype(np.float64).reshape(128, 2, 256)
    np.testing.assert_array_equal(got, np.einsum("kli,klj->ij", a3, b3))


def test_double_row_needs_neuroncore_v3():
    a = np.ones((128, 2, 16), dtype=FP8)
    b = np.ones((128, 2, 64), dtype=FP8)
    with pytest.raises(NkiError):
        trnsim.simulate_kernel(nki.jit(_kernel), a, b, target="trn1")
