"""Fused Mamba kernels (v1, v2, v3): numerics against a float64 NumPy reference, and timing-only runs."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim
import trnsim.frontend.legacy as nki
from trnsim.frontend.legacy.typing import tensor
from trnsim.kernels import mamba


def _rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))


@pytest.mark.parametrize("name", ["mamba_v1", "mamba_v2", "mamba_v3"])
def test_matches_float64_reference(name, rng):
    args = mamba.make_inputs(batch=2, channels=256, seq_len=64, state_size=4, rng=rng)
    kw = {"seq_tile": 16} if name == "mamba_v3" else {}
    got = nki.simulate_kernel(mamba.KERNELS[name], *args, **kw)
    assert got.shape == (2, 256, 64) and got.dtype == np.float32
    assert _rel_err(got, mamba.reference(*args)) < 1e-5


def test_v3_default_seq_tile_carries_the_scan(rng):
    # seq 1024 = two 512-wide tiles: the carried scan state must make the second tile continue the first.
    args = mamba.make_inputs(batch=1, channels=128, seq_len=1024, state_size=2, rng=rng)
    ref = mamba.reference(*args)
    got = nki.simulate_kernel(mamba.mamba_v3, *args)
    assert _rel_err(got, ref) < 1e-5
    # without the carry the second half would restart from zero state: make sure that would be detectable
    restarted = mamba.reference(*(a[..., 512:] if a.ndim == 3 else a for a in args))
    assert np.abs(ref[..., 512:] - restarted).max() > 1e-3


def test_versions_agree_with_each_other(rng):
    args = mamba.make_inputs(batch=1, channels=128, seq_len=32, state_size=3, rng=rng)
    outs = [nki.simulate_kernel(k, *args, **({"seq_tile": 8} if n == "mamba_v3" else {}))
            for n, k in mamba.KERNELS.items()]
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outs[0], outs[2], rtol=1e-5, atol=1e-6)


def test_channels_must_be_a_multiple_of_128(rng):
    args = mamba.make_inputs(batch=1, channels=96, seq_len=16, state_size=2, rng=rng)
    with pytest.raises(AssertionError, match="multiple of 128"):
        nki.simulate_kernel(mamba.mamba_v2, *args)


def test_timing_only_runs_and_orders_the_versions():
    c, s, n = 1024, 1024, 16
    f32 = np.float32
    ph = (tensor[[1, c, s], f32], tensor[[1, c, s], f32], tensor[[c, n], f32], tensor[[1, n, s], f32],
          tensor[[1, n, s], f32])
    t = {k: trnsim.estimate(mamba.KERNELS[k], *ph, target="trn1").total_ns for k in mamba.KERNELS}
    # v2 stops reloading delta / u for every state; v3 accumulates through PSUM
    assert t["mamba_v1"] > t["mamba_v2"] > t["mamba_v3"]
