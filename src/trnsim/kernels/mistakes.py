"""Kernels with deliberate mistakes, used by `python -m trnsim demo` to show what trnsim reports."""

from __future__ import annotations

import trnsim.frontend.legacy.language as nl


def accumulate_in_parallel_loop(a):
    """Sums row blocks of `a` into one tile inside an affine_range loop: a loop-carried dependency (race)."""
    out = nl.ndarray((128, a.shape[1]), dtype=a.dtype, buffer=nl.shared_hbm)
    acc = nl.zeros((128, a.shape[1]), dtype=nl.float32, buffer=nl.sbuf)
    for i in nl.affine_range(a.shape[0] // 128):
        acc[...] = nl.add(acc, nl.load(a[i * 128:(i + 1) * 128, :]))  # should be nl.sequential_range
    nl.store(out, acc)
    return out
