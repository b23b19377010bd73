"""Benchmark (c): per-instruction overhead of the simulator on a kernel of ~100k tiny instructions.

Baseline side by side: NumPy doing the same element-wise math on the same tiny tiles in a Python loop.
Usage: python benchmarks/tiny_instructions.py [--n 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=100_000, help="number of instructions (approximately)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    iters = args.n // 2
    a = np.random.default_rng().standard_normal((128, 4)).astype(np.float32)
    sim, base, count = [], [], 0
    for r in range(args.repeats):
        t0 = time.perf_counter()
        got = nki.simulate_kernel(tiny_chain, a, iters)
        sim.append(time.perf_counter() - t0)
        import trnsim

        count = len(trnsim.last_launch().stream)
        t0 = time.perf_counter()
        ref = numpy_baseline(a, iters)
        base.append(time.perf_counter() - t0)
        print(f"  repeat {r + 1}/{args.repeats}: sim {sim[-1]:.2f} s, numpy {base[-1]:.2f} s", file=sys.stderr)
    np.testing.assert_allclose(got, ref, rtol=1e-4)
    ms, mb = statistics.median(sim), statistics.median(base)
    print(f"instructions: {count}")
    print(f"simulator: median {ms:.3f} s = {ms / count * 1e6:.2f} us per instruction")
    print(f"numpy baseline (same math, same tiles): median {mb:.3f} s = {mb / count * 1e6:.2f} us per op")
    print(f"overhead per instruction vs numpy: {(ms - mb) / count * 1e6:.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
