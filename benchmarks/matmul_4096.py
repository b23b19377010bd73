"""Benchmark (a): the fully optimised legacy matmul kernel (`matmul_optimized`) at 4096 x 4096 x 4096, bf16.

Simulator: `nki.simulate_kernel(matmul_optimized, lhsT, rhs)` with full numerics and all checks (8192 Tensor-engine
matmuls of 128 x 128 x 512 plus loads, PSUM -> SBUF accumulation, copies and stores).
Baseline, same run: NumPy computing the same product in one shot in float32, including the bf16 -> fp32
conversion of both inputs: `lhsT.astype(np.float32).T @ rhs.astype(np.float32)`.

Usage: python benchmarks/matmul_4096.py [--size 4096] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys

import ml_dtypes
import numpy as np
from _harness import (
    Result,
    last_instruction_count,
    log,
    max_rel_error,
    measure_front_end_and_products,
    run_pairs,
)

import trnsim.frontend.legacy as nki
from trnsim.kernels.matmul import matmul_optimized


def run(size: int = 4096, repeats: int = 3, seed: int = 0) -> Result:
    rng = np.random.default_rng(seed)
    lhsT = rng.standard_normal((size, size), dtype=np.float32).astype(ml_dtypes.bfloat16)
    rhs = rng.standard_normal((size, size), dtype=np.float32).astype(ml_dtypes.bfloat16)
    res = Result(
        name=f"matmul_{size}",
        what=f"matmul_optimized(lhsT, rhs), K = M = N = {size}, bfloat16 inputs, fp32 PSUM accumulation",
        baseline="NumPy float32 in one shot: lhsT.astype(np.float32).T @ rhs.astype(np.float32) (conversion included)",
        target="within 2x of the NumPy baseline",
    )
    log(f"{res.name}: {res.what}")
    res.notes.append(
        "BLAS threads: the NumPy baseline uses NumPy's default BLAS threading (all cores); the simulator runs its "
        "Tensor-engine tile matmuls on one BLAS thread during a launch (trnsim.core.memory.single_threaded_blas: "
        "tiles are too small to gain from threads), so on an idle multi-core machine the wall-clock ratio is higher "
        "than the CPU-time ratio; TRNSIM_BLAS_THREADS=2 lets the tile matmuls use both cores: on this machine, idle, "
        "2.1-2.2 s wall instead of 2.5-2.6 s, at nearly twice the CPU time (OpenBLAS's second thread spins between "
        "the small calls), so it is not the default"
    )
    res.notes.append(
        "tried and measured on this machine (2026-11-26), no gain, not kept: (1) the Tensor-engine products on a "
        "worker thread overlapping the Python front end: NumPy releases the GIL inside BLAS, but every product needs "
        "several GIL hand-offs between the worker and the front end (CPython 3.11), so only about a fifth of the BLAS "
        "time overlapped and the hand-offs slowed the front end by as much; (2) one GEMM per PSUM accumulation group "
        "over its stacked K tiles (128 x 1024 x 512 instead of 8 x 128 x 128 x 512): stacking the strided operand "
        "views costs more than the larger GEMM saves"
    )

    def sim():
        return nki.simulate_kernel(matmul_optimized, lhsT, rhs)

    def base():
        return lhsT.astype(np.float32).T @ rhs.astype(np.float32)

    def check(got, ref):
        err = max_rel_error(got, ref)
        ok = err < 2e-2
        return f"max |sim - numpy| / max |numpy| = {err:.2e} ({'OK' if ok else 'MISMATCH'}: bf16 output rounding)"

    run_pairs(res, sim, base, repeats, count_instructions=last_instruction_count, check=check)
    return measure_front_end_and_products(res, lambda: matmul_optimized.launch(lhsT, rhs, numerics=False), repeats)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args(argv)
    res = run(a.size, a.repeats)
    print("\n".join(res.summary_lines()))
    return 130 if res.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
