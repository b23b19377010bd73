"""nl.zeros / nl.full of a tensor with leading block dims (`(n, par_dim(128), d)`, n > 128 as in the flash
attention reference at long sequence lengths) is one fill over 128 partitions, not an n-partition tile."""

from __future__ import annotations

import numpy as np

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.language as nl
from trnsim.core.launch import last_launch


def test_fill_of_many_blocks():
    def kernel(a):
        out = nl.ndarray((200, 128, 4), dtype=a.dtype, buffer=nl.shared_hbm)
        zeros = nl.zeros((200, nl.par_dim(128), 4), dtype=nl.float32)
        twos = nl.full((3, nl.par_dim(128), 4), 2.0, dtype=nl.float32)
        for i in nl.affine_range(200):
            nl.store(out[i], nl.add(zeros[i], twos[1]))
        return out

    got = nki.simulate_kernel(nki.jit(kernel), np.zeros(1, np.float32))
    np.testing.assert_array_equal(got, np.full((200, 128, 4), 2.0, np.float32))
    fills = [i for i in last_launch().stream if i.opcode == "MEMSET"]
    assert len(fills) == 2 and all(i.partitions == 128 for i in fills)
