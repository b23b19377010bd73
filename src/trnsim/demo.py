"""`python -m trnsim demo`: tutorial kernels of both NKI generations simulated on the CPU, each compared with
NumPy in float64, with the modeled Trn2 latency; then one strict check and one latency breakdown."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import ml_dtypes
import numpy as np

BF16 = ml_dtypes.bfloat16


def _rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(np.asarray(got, np.float64) - ref).max() / max(np.abs(ref).max(), 1e-30))


def _case(name: str, dtype: str, kernel: Any, args: Sequence[Any], ref: np.ndarray, tol: float,
          run: Callable[..., Any] | None = None) -> tuple[str, bool]:
    import trnsim

    run = run or trnsim.simulate_kernel
    t0 = time.perf_counter()
    out = run(kernel, *args)
    ms = (time.perf_counter() - t0) * 1e3
    err = _rel_err(out, ref)
    us = trnsim.estimate(kernel, *args).total_us
    ok = err <= tol
    row = (f"  {'OK ' if ok else 'BAD'} {name:<34} {dtype:<8} rel err {err:8.1e} (tol {tol:6.0e})"
           f"  sim {ms:7.1f} ms   Trn2 model {us:9.2f} us")
    return row, ok


def main(argv: Sequence[str] = ()) -> int:
    import trnsim
    from trnsim.kernels import flash_attention, layernorm, matmul, softmax, tensor_add
    from trnsim.kernels.current import lnc2
    from trnsim.kernels.current import rmsnorm as rmsnorm_current

    rng = np.random.default_rng()
    print("trnsim demo: NKI kernels simulated on the CPU, checked against NumPy float64, latency modeled on Trn2\n")
    print("legacy API (neuronxcc.nki)")
    rows: list[tuple[str, bool]] = []
    a = rng.standard_normal((256, 1024)).astype(np.float32)
    b = rng.standard_normal((256, 1024)).astype(np.float32)
    rows.append(_case("tensor_add, SPMD grid 2x2", "float32", tensor_add.tensor_add_grid[2, 2], (a, b),
                      a.astype(np.float64) + b, 1e-6))
    lhs_t = rng.standard_normal((1024, 512)).astype(BF16)
    rhs = rng.standard_normal((1024, 1024)).astype(BF16)
    mm_ref = lhs_t.astype(np.float64).T @ rhs.astype(np.float64)
    for name in ("matmul_tiled", "matmul_hoisted", "matmul_blocked", "matmul_optimized"):
        rows.append(_case(f"{name} 512x1024x1024", "bfloat16", getattr(matmul, name), (lhs_t, rhs), mm_ref, 1e-2))
    x = rng.standard_normal((256, 512)).astype(np.float32)
    rows.append(_case("softmax (fused) 256x512", "float32", softmax.softmax_fused, (x,), softmax.reference(x), 1e-5))
    g = rng.standard_normal(512).astype(np.float32)
    beta = rng.standard_normal(512).astype(np.float32)
    rows.append(_case("layernorm (bn_stats) 256x512", "float32", layernorm.layernorm_bn, (x, g, beta),
                      layernorm.reference(x, g, beta), 1e-4))
    q = rng.standard_normal((1, 2, 512, 64)).astype(BF16)
    kv = [rng.standard_normal((1, 1, 512, 64)).astype(BF16) for _ in range(2)]
    flash = flash_attention.flash_attention_fwd[1, 1]
    rows.append(_case("flash attention causal GQA s=512", "bfloat16", flash, (q, *kv),
                      flash_attention.reference(q, *kv), 3e-2))
    for r, _ in rows:
        print(r)
    print("\ncurrent API (import nki), including a two-core (LNC=2) kernel")
    cur: list[tuple[str, bool]] = []
    gg = rng.standard_normal(512).astype(np.float32)
    cur.append(_case("rmsnorm 256x512", "float32", rmsnorm_current.rmsnorm, (x, gg),
                     rmsnorm_current.reference(x, gg), 1e-5))
    cur.append(_case("rmsnorm_tp on 2 cores (sendrecv)", "float32", lnc2.rmsnorm_tp[2], (x, gg),
                     lnc2.rmsnorm_reference(x, gg), 1e-5))
    for r, _ in cur:
        print(r)
    rows += cur

    print("\nstrict checks: a race the hardware would turn into a wrong answer is reported at its source line")
    race_reported = _show_race_error()

    print("\nwhere the time goes (matmul_tiled on Trn2):")
    est = trnsim.estimate(matmul.matmul_tiled, lhs_t, rhs)
    util = est.engine_utilisation()
    print("  " + ", ".join(f"{k} {100 * v:.0f}% busy" for k, v in sorted(util.items())))
    print(f"  latency {est.total_us:.1f} us, MFU {100 * est.mfu:.1f}%, HBM traffic {est.hbm_bytes / 2**20:.1f} MiB")
    print("\n(errors are relative to max|reference|; run `python -m trnsim estimate|profile SCRIPT` for more)")
    return 0 if race_reported and all(ok for _, ok in rows) else 1


def _show_race_error() -> bool:
    import trnsim
    from trnsim.kernels.mistakes import accumulate_in_parallel_loop

    try:
        trnsim.simulate_kernel(accumulate_in_parallel_loop, np.ones((512, 64), np.float32))
    except trnsim.NkiError as e:
        for line in str(e).splitlines():
            print("  " + line)
        return True
    print("  BAD: the race was not reported")
    return False
