"""`python -m trnsim demo`: simulate tutorial kernels, compare with NumPy (float64), predict latency."""

from __future__ import annotations

import time
from collections.abc import Sequence

import ml_dtypes
import numpy as np


def _row(name: str, dtype: str, err: float, tol: float, ms: float, us: float) -> str:
    ok = "OK " if err <= tol else "BAD"
    return (
        f"  {ok} {name:<28} {dtype:<9} max|err| {err:9.2e} (tol {tol:7.1e})  sim {ms:7.1f} ms  trn2 model {us:9.2f} us"
    )


def main(argv: Sequence[str] = ()) -> int:
    import trnsim
    from trnsim.kernels import matmul, tensor_add

    rng = np.random.default_rng()
    print("trnsim demo: NKI tutorial kernels simulated on the CPU, checked against NumPy float64\n")
    rows = []
    bad = 0

    a = rng.standard_normal((256, 1024)).astype(np.float32)
    b = rng.standard_normal((256, 1024)).astype(np.float32)
    t0 = time.perf_counter()
    c = trnsim.simulate_kernel(tensor_add.tensor_add_grid[2, 2], a, b)
    ms = (time.perf_counter() - t0) * 1e3
    err = float(np.abs(c - (a.astype(np.float64) + b)).max())
    us = trnsim.estimate(tensor_add.tensor_add_grid[2, 2], a, b).total_us
    rows.append(_row("tensor_add (grid 2x2)", "float32", err, 1e-6, ms, us))
    bad += err > 1e-6

    lhs_t = rng.standard_normal((1024, 512)).astype(ml_dtypes.bfloat16)
    rhs = rng.standard_normal((1024, 1024)).astype(ml_dtypes.bfloat16)
    ref = lhs_t.astype(np.float64).T @ rhs.astype(np.float64)
    for name in ("matmul_tiled", "matmul_hoisted", "matmul_blocked", "matmul_optimized"):
        kern = getattr(matmul, name, None)
        if kern is None:
            continue
        t0 = time.perf_counter()
        out = trnsim.simulate_kernel(kern, lhs_t, rhs)
        ms = (time.perf_counter() - t0) * 1e3
        err = float(np.abs(out.astype(np.float64) - ref).max() / np.abs(ref).max())
        us = trnsim.estimate(kern, lhs_t, rhs).total_us
        rows.append(_row(f"{name} 512x1024x1024", "bfloat16", err, 1e-2, ms, us))
        bad += err > 1e-2
    print("\n".join(rows))
    print("\n(errors for bf16 are relative to max|ref|; latency = trnsim's calibrated Trn2 performance model)")
    return 1 if bad else 0
