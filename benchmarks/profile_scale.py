"""Benchmark: profiling a kernel of ~1M instructions in bounded memory (docs/profiling.md, "Scale").

Simulates a loop of (load, exp, multiply, store) on [128, 512] tiles (timing-only, no NumPy math), schedules
it, then writes the aggregated trace, the summary, the report section and the full trace, printing after each
phase its wall time, the output size and the process's peak RSS so far (phases run in increasing order of
expected memory, so each peak increase belongs to that phase).

Usage: python benchmarks/profile_scale.py [--instructions 1000000] [--out DIR] [--full]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

import numpy as np

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.language as nl


@nki.jit
def stream_kernel(x, iters):
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    for _ in nl.sequential_range(iters):
        t = nl.load(x)
        e = nl.exp(t)
        u = nl.multiply(e, t)
        nl.store(out, value=u)
    return out


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--instructions", type=int, default=1_000_000)
    p.add_argument("--out", default="")
    p.add_argument("--full", action="store_true", help="also write the full (one slice per instruction) trace")
    p.add_argument("--report", action="store_true", help="also render the HTML report section (matplotlib)")
    a = p.parse_args(argv)
    from trnsim.profile.data import ProfileData
    from trnsim.profile.summary import summarize
    from trnsim.profile.trace import TraceOptions, write_trace
    from trnsim.timing.model import estimate_launch

    out = a.out or tempfile.mkdtemp(prefix="trnsim-scale-")
    os.makedirs(out, exist_ok=True)
    rows = []

    def phase(name, fn):
        t0 = time.perf_counter()
        res = fn()
        rows.append((name, time.perf_counter() - t0, _rss_mb(), _peak_mb()))
        print(f"{name:<28} {rows[-1][1]:8.2f} s   rss {rows[-1][2]:8.0f} MB   peak {rows[-1][3]:8.0f} MB",
              flush=True)
        return res

    x = np.ones((128, 512), np.float32)
    iters = max(1, a.instructions // 4)
    print(f"baseline {_rss_mb():.0f} MB", flush=True)
    _, rec = phase("simulate", lambda: stream_kernel.launch(x, iters, numerics=False))
    est = phase("schedule (timing model)", lambda: estimate_launch(rec))
    data = phase("profile arrays", lambda: ProfileData(rec, est))
    st = phase("trace, aggregate", lambda: write_trace(rec, os.path.join(out, "agg.pftrace"), data=data,
                                                       options=TraceOptions(detail="aggregate")))
    print(f"    {st.slices} slices, {st.counter_points} counter points, {st.bytes / 1e6:.2f} MB", flush=True)
    st = phase("trace, sample 1/100", lambda: write_trace(rec, os.path.join(out, "sample.pftrace"), data=data,
                                                          options=TraceOptions(detail="full", sample=100)))
    print(f"    {st.slices} slices, {st.bytes / 1e6:.2f} MB", flush=True)
    phase("summary", lambda: summarize(rec, est, data))
    if a.report:
        from trnsim.profile.report import launch_section
        from trnsim.profile.summary import summarize as _s

        s = _s(rec, est, data)
        html = phase("report section", lambda: launch_section(data, s))
        print(f"    {len(html) / 1e6:.2f} MB of HTML", flush=True)
    if a.full:
        st = phase("trace, full", lambda: write_trace(rec, os.path.join(out, "full.pftrace"), data=data,
                                                      options=TraceOptions(detail="full")))
        print(f"    {st.slices} slices, {st.bytes / 1e6:.2f} MB", flush=True)
        st = phase("trace, full JSON", lambda: write_trace(rec, os.path.join(out, "full.json"), data=data,
                                                           options=TraceOptions(detail="full")))
        print(f"    {st.slices} slices, {st.bytes / 1e6:.2f} MB", flush=True)
    print(f"{len(rec.stream)} instructions; files in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
