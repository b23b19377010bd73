"""Usage timelines from the launch's stream scan equal the ones the per-access walk finds."""

from __future__ import annotations

import ml_dtypes
import numpy as np

import trnsim
import trnsim.frontend.legacy.language as nl
from trnsim.core.liveness import scan_uses, usage_timelines
from trnsim.kernels import mamba, matmul

BF16 = ml_dtypes.bfloat16


def _summary(tls) -> list:
    return [(t.kind, t.core, t.capacity, t.usage.tolist(), t.peak, t.peak_at, [(st.id, b) for st, b in t.live_at_peak])
            for t in tls]


def _blocks(a):
    out = nl.ndarray((4, 128, 64), dtype=a.dtype, buffer=nl.shared_hbm)
    bufs = nl.ndarray((4, nl.par_dim(128), 64), dtype=a.dtype, buffer=nl.sbuf)
    for i in nl.affine_range(4):
        bufs[i] = nl.load(a[i])
        nl.store(out[i], nl.add(bufs[i], 1.0))
    return out


def test_timelines_from_the_scan_equal_the_access_walk(rng):
    args = mamba.make_inputs(batch=1, channels=256, seq_len=512, state_size=16, rng=rng)
    cases = [
        (matmul.matmul_hoisted, (rng.standard_normal((512, 256)).astype(BF16), rng.standard_normal((512, 512)).astype(BF16))),
        (mamba.mamba_v3, args),
        (_blocks, (rng.standard_normal((4, 128, 64)).astype(np.float32),)),
    ]
    caps = {"sbuf": 192 * 1024, "psum": 16 * 1024}
    blocks = []
    for kernel, arrays in cases:
        est = trnsim.estimate(kernel, *arrays, target="trn2")
        stream = est.extra["launch"].stream
        uses = scan_uses(stream)
        blocks.append(uses.blocks)
        assert _summary(usage_timelines(stream, caps, uses)) == _summary(usage_timelines(stream, caps))
        assert any(t.peak for t in usage_timelines(stream, caps, uses))
    assert blocks == [False, False, True]  # (with block dims the timelines come from the walk)
