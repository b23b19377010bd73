"""Benchmark (c): per-instruction overhead of the simulator on a kernel of ~100k tiny instructions.

Simulator: `tiny_chain`, a sequential loop of (nl.multiply by a scalar, nl.add into an accumulator tile) on a
[128, 4] fp32 tile: ~2 instructions per iteration, each touching only 512 elements, so the time is the
simulator's fixed cost per instruction (front end, checks, NumPy dispatch, instruction record).
Baseline, same run: NumPy doing the same element-wise math on the same tiny tiles in a Python loop.
Overhead per instruction = (simulator time - baseline time) / number of instructions.

Usage: python benchmarks/tiny_instructions.py [--n 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from _harness import Result, last_instruction_count, log, measure_front_end_and_products, run_pairs

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.language as nl


@nki.jit
def tiny_chain(a, n_iters):
    """n_iters x (tensor_scalar, tensor_tensor) on a [128, 4] tile: ~2 instructions per iteration."""
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    x = nl.load(a)
    acc = nl.zeros(a.shape, dtype=nl.float32, buffer=nl.sbuf)
    for _ in nl.sequential_range(n_iters):
        y = nl.multiply(x, 1.0001)
        acc[...] = nl.add(acc, y)
    nl.store(out, acc)
    return out


def numpy_baseline(a: np.ndarray, n_iters: int) -> np.ndarray:
    acc = np.zeros(a.shape, dtype=np.float32)
    for _ in range(n_iters):
        y = a * np.float32(1.0001)
        acc = acc + y
    return acc


def run(n: int = 100_000, repeats: int = 3, seed: int = 0) -> Result:
    iters = n // 2
    a = np.random.default_rng(seed).standard_normal((128, 4)).astype(np.float32)
    res = Result(
        name="tiny_instructions",
        what=f"{iters} x (nl.multiply, nl.add) on a [128, 4] fp32 tile (~{n} instructions)",
        baseline="NumPy: the same element-wise math on the same [128, 4] tiles in a Python loop",
        target="at most 20 us of overhead per instruction",
    )
    log(f"{res.name}: {res.what}")

    def check(got, ref):
        ok = np.allclose(got, ref, rtol=1e-4)
        return f"results {'match' if ok else 'DO NOT match'} the NumPy loop (rtol 1e-4)"

    run_pairs(
        res,
        lambda: nki.simulate_kernel(tiny_chain, a, iters),
        lambda: numpy_baseline(a, iters),
        repeats,
        count_instructions=last_instruction_count,
        check=check,
    )
    return measure_front_end_and_products(res, lambda: tiny_chain.launch(a, iters, numerics=False), repeats)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100_000, help="number of instructions (approximately)")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args(argv)
    res = run(a.n, a.repeats)
    print("\n".join(res.summary_lines()))
    return 130 if res.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
