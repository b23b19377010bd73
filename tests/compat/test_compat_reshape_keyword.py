"""`tensor.reshape(shape=(...))`, the keyword form used by the resize-nearest reference kernel."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.language as nl


def test_reshape_with_shape_keyword(rng):
    x = rng.standard_normal((2, 3, 4, 8)).astype(np.float32)

    def kernel(a):
        out = nl.ndarray((2, 12, 8), dtype=a.dtype, buffer=nl.shared_hbm)
        flat_in = a.reshape(shape=(2, 12, 8))
        for b in nl.affine_range(2):
            nl.store(out[b], nl.load(flat_in[b]))
        return out

    np.testing.assert_array_equal(nki.simulate_kernel(nki.jit(kernel), x), x.reshape(2, 12, 8))


def test_reshape_rejects_unknown_keywords():
    def kernel(a):
        a.reshape(new_shape=(4, 2))
        return a

    with pytest.raises(TypeError):
        nki.simulate_kernel(nki.jit(kernel), np.zeros((2, 4), dtype=np.float32))
