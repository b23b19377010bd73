"""`t[...] += x` on an SBUF tile inside nl.affine_range is an associative reduction, not a loop-carried
dependency (the fused mamba tutorial accumulates over states this way); plain writes still race."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.language as nl
from trnsim.core.errors import NkiRaceError


def _run(kernel, *args):
    return nki.simulate_kernel(nki.jit(kernel), *args)


def test_sbuf_add_accumulation_in_affine_range(rng):
    x = rng.standard_normal((4, 128, 64)).astype(np.float32)

    def kernel(a):
        out = nl.ndarray((128, 64), dtype=a.dtype, buffer=nl.shared_hbm)
        acc = nl.zeros((128, 64), dtype=nl.float32)
        for k in nl.affine_range(4):
            acc[...] += nl.load(a[k])
        nl.store(out, acc)
        return out

    np.testing.assert_allclose(_run(kernel, x), x.sum(axis=0), rtol=1e-5, atol=1e-5)


def test_block_tile_product_accumulation(rng):
    x = rng.uniform(0.5, 1.5, (3, 128, 8)).astype(np.float32)

    def kernel(a):
        out = nl.ndarray((2, 128, 8), dtype=a.dtype, buffer=nl.shared_hbm)
        acc = nl.ones((2, nl.par_dim(128), 8), dtype=nl.float32)
        for k in nl.affine_range(3):
            for b in nl.affine_range(2):
                acc[b, 0:128, 0:8] *= nl.load(a[k])
        for b in nl.affine_range(2):
            nl.store(out[b], acc[b])
        return out

    got = _run(kernel, x)
    np.testing.assert_allclose(got, np.broadcast_to(x.prod(axis=0), (2, 128, 8)), rtol=1e-5)


def test_plain_overwrite_in_affine_range_still_races(rng):
    x = rng.standard_normal((2, 128, 16)).astype(np.float32)

    def kernel(a):
        out = nl.ndarray((128, 16), dtype=a.dtype, buffer=nl.shared_hbm)
        acc = nl.zeros((128, 16), dtype=nl.float32)
        for k in nl.affine_range(2):
            acc[...] = nl.add(acc, nl.load(a[k]))
        nl.store(out, acc)
        return out

    with pytest.raises(NkiRaceError):
        _run(kernel, x)
