"""Benchmark (b): flash-attention forward (`trnsim.kernels.flash_attention`) at seqlen 4096, head dim 128.

Simulator: `flash_attention(q, k, v, use_causal_mask=True)` with q, k, v of shape [1, 1, 4096, 128] in bf16 (one
batch, one head; the kernel's default causal masking; full numerics and all checks).
Baseline, same run: NumPy computing the same attention in one shot in float32, including the bf16 -> fp32
conversion: s = (q @ k.T) * scale, causal mask (np.where with a lower-triangular mask), softmax over rows,
then @ v. Note that the one-shot baseline computes the whole 4096 x 4096 score matrix, while the kernel skips the
blocks above the diagonal (the kernel does about half the matmul work of the baseline).

Usage: python benchmarks/flash_attention_4096.py [--seqlen 4096] [--repeats 3] [--no-causal]
"""

from __future__ import annotations

import argparse
import math
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

from trnsim.kernels.flash_attention import flash_attention, flash_attention_fwd


def numpy_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool) -> np.ndarray:
    qf, kf, vf = (x.astype(np.float32) for x in (q, k, v))
    s = (qf @ np.swapaxes(kf, -1, -2)) * np.float32(1.0 / math.sqrt(q.shape[-1]))
    if causal:
        n = s.shape[-1]
        s = np.where(np.tri(n, dtype=bool), s, np.float32(-np.inf))
    s -= s.max(axis=-1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(axis=-1, keepdims=True)
    return s @ vf


def run(seqlen: int = 4096, d_head: int = 128, repeats: int = 3, causal: bool = True, seed: int = 0) -> Result:
    rng = np.random.default_rng(seed)
    shape = (1, 1, seqlen, d_head)
    q, k, v = (rng.standard_normal(shape, dtype=np.float32).astype(ml_dtypes.bfloat16) for _ in range(3))
    res = Result(
        name=f"flash_attention_{seqlen}",
        what=f"flash_attention_fwd, q/k/v [1, 1, {seqlen}, {d_head}] bfloat16, causal={causal}",
        baseline="NumPy float32 in one shot: softmax(mask(q @ k.T * scale)) @ v over the full score matrix "
        "(conversion included)",
        target="within 2x of the NumPy baseline",
    )
    log(f"{res.name}: {res.what}")
    res.notes.append(
        "BLAS threads: the NumPy baseline uses NumPy's default BLAS threading (all cores); the simulator runs its "
        "Tensor-engine tile matmuls on one BLAS thread during a launch (trnsim.core.memory.single_threaded_blas: "
        "tiles are too small to gain from threads), so on an idle multi-core machine the wall-clock ratio is higher "
        "than the CPU-time ratio"
    )

    def sim():
        return flash_attention(q, k, v, causal)

    def base():
        return numpy_attention(q, k, v, causal)

    def check(got, ref):
        err = max_rel_error(got, ref)
        ok = err < 3e-2
        return f"max |sim - numpy| / max |numpy| = {err:.2e} ({'OK' if ok else 'MISMATCH'}: bf16 probabilities / output)"

    run_pairs(res, sim, base, repeats, count_instructions=last_instruction_count, check=check)
    timing_only = lambda: flash_attention_fwd[1, 1].launch(q, k, v, causal, numerics=False)  # noqa: E731
    return measure_front_end_and_products(res, timing_only, repeats)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seqlen", type=int, default=4096)
    p.add_argument("--d-head", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-causal", action="store_true")
    a = p.parse_args(argv)
    res = run(a.seqlen, a.d_head, a.repeats, causal=not a.no_causal)
    print("\n".join(res.summary_lines()))
    return 130 if res.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
