"""Text reports of the timing model: `Estimate.report()` and `python -m trnsim estimate SCRIPT [ARGS...]`.

Per launch: the modeled latency, a per-engine table (busy time, utilisation, instruction count), MFU / HFU /
MBU and HBM traffic, the top reasons engines sit idle with the source line of the instruction they wait for
("Tensor engine idle 41%: waiting on DMA (qSyncIO1) load of rhs at matmul.py:84"), and where the critical path
spends its time.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from ..core.instruction import Engine
from .model import Estimate, estimate_launch

ENGINE_ORDER = (Engine.TENSOR, Engine.VECTOR, Engine.SCALAR, Engine.GPSIMD, Engine.SYNC, "DMA")


def _loc(loc: Any) -> str:
    if loc is None:
        return "?"
    return f"{os.path.basename(loc.file)}:{loc.line}"


def _fmt_time(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.3f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.3f} us"
    return f"{ns:.1f} ns"


def _fmt_bytes(b: float) -> str:
    for unit, k in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if b >= k:
            return f"{b / k:.2f} {unit}"
    return f"{int(b)} B"


def describe_idle(engine: str, key: tuple, frac: float) -> str:
    """One line: why `engine` was idle for `frac` of the kernel."""
    kind, who, what, loc = key
    name = f"{engine} engine" if engine != "DMA" else "DMA"
    pct = f"{100 * frac:.1f}%"
    where = f" at {_loc(loc)}" if loc is not None else ""
    if kind == "data":
        why = f"waiting on {who} ({what}){where}"
    elif kind == "buffer":
        why = f"waiting for a tile buffer still used by {who} ({what}){where}"
    elif kind == "reader":
        why = f"waiting for {who} to finish reading its output buffer ({what}){where}"
    elif kind in ("write-order", "order"):
        why = f"waiting for an earlier write by {who} ({what}){where}"
    elif kind == "barrier":
        why = "waiting at a core barrier" + (f" for {who} ({what}){where}" if who else "")
    elif kind == "end":
        why = "finished early, waiting for the other engines"
    elif kind == "start":
        why = "waiting to start"
    else:
        why = f"waiting ({kind}) on {who} ({what}){where}"
    return f"{name} idle {pct}: {why}"


def lost_time(est: Estimate, top: int = 5, include_end: bool = False) -> list[tuple[str, tuple, float]]:
    """The largest idle causes over all engines that ran something: (engine, key, fraction of total)."""
    total = max(est.total_ns, 1e-9) * max(1, est.cores)
    out = []
    for eng, d in est.idle.items():
        if est.engine_busy_ns.get(eng, 0.0) <= 0.0:
            continue
        for key, ns in d.items():
            if key[0] == "end" and not include_end:
                continue
            out.append((eng, key, ns / total))
    out.sort(key=lambda x: -x[2])
    return out[:top]


def critical_path_breakdown(est: Estimate, launch: Any, top: int = 5) -> tuple[dict[str, float], list]:
    """Time along the critical path, by engine and by (engine, source line, what)."""
    from .model import describe

    stream = launch.stream if launch is not None else None
    by_engine: dict[str, float] = {}
    by_line: dict[tuple, float] = {}
    prev_done = 0.0
    for i in est.critical_path:
        t = est.timings[i]
        share = max(0.0, t.done - max(prev_done, 0.0))
        prev_done = max(prev_done, t.done)
        if stream is None:
            continue
        ins = stream[i]
        eng = ins.engine
        by_engine[eng] = by_engine.get(eng, 0.0) + share
        k = (eng, ins.loc, describe(ins))
        by_line[k] = by_line.get(k, 0.0) + share
    lines = sorted(by_line.items(), key=lambda kv: -kv[1])[:top]
    return by_engine, lines


def format_estimate(est: Estimate, launch: Any = None, top: int = 5, title: str | None = None) -> str:
    """Multi-line report of one launch's estimate."""
    launch = launch if launch is not None else est.extra.get("launch")
    name = title or (launch.kernel_name if launch is not None else "kernel")
    n = len(est.timings)
    lines = [
        f"{name} on {est.arch.name}: {_fmt_time(est.total_ns)}  ({est.cores} core{'s' if est.cores > 1 else ''}, "
        f"{n} instructions)",
        f"  MFU {100 * est.mfu:.1f}%  HFU {100 * est.hfu:.1f}%  MBU {100 * est.mbu:.1f}%  "
        f"HBM {_fmt_bytes(est.hbm_bytes)}  DMA {_fmt_bytes(est.dma_bytes)}  matmul flops {est.flops:.3g}",
    ]
    counts: dict[str, int] = {}
    if launch is not None:
        for ins in launch.stream:
            counts[ins.engine] = counts.get(ins.engine, 0) + 1
    util = est.engine_utilisation()
    lines.append(f"  {'engine':<8}{'busy':>9}{'busy time':>14}{'instr':>9}")
    for eng in ENGINE_ORDER:
        if eng not in est.engine_busy_ns and not counts.get(eng):
            continue
        busy = est.engine_busy_ns.get(eng, 0.0)
        label = eng if eng != "DMA" else "DMA*"
        lines.append(f"  {label:<8}{100 * util.get(eng, 0.0):>8.1f}%{_fmt_time(busy):>14}{counts.get(eng, 0):>9}")
    if "DMA" in est.engine_busy_ns:
        lines.append("  (*DMA: time with at least one transfer in flight)")
    lost = lost_time(est, top)
    if lost:
        lines.append("  where time is lost:")
        for eng, key, frac in lost:
            lines.append("    " + describe_idle(eng, key, frac))
    if launch is not None and est.critical_path:
        by_engine, by_line = critical_path_breakdown(est, launch, top)
        tot = max(sum(by_engine.values()), 1e-9)
        parts = ", ".join(f"{k} {100 * v / tot:.0f}%" for k, v in sorted(by_engine.items(), key=lambda kv: -kv[1]))
        lines.append(f"  critical path: {parts}")
        for (eng, loc, what), v in by_line:
            lines.append(f"    {100 * v / tot:5.1f}%  {eng:<7} {what} at {_loc(loc)}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ CLI
USAGE = "usage: python -m trnsim estimate [--target T] [--top N] SCRIPT [ARGS...]"


def estimate_command(argv: Sequence[str]) -> int:
    """`python -m trnsim estimate`: run SCRIPT like `trnsim run` and report every kernel launch."""
    parser = argparse.ArgumentParser(prog="python -m trnsim estimate", usage=USAGE)
    parser.add_argument("--target", help="trn1 | trn2 | trn3 | a variant name or JSON path (default: the kernel's)")
    parser.add_argument("--top", type=int, default=5, help="idle causes / critical-path lines to show")
    parser.add_argument("script")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    ns = parser.parse_args(argv)
    from ..cli import run_script
    from ..core.launch import add_launch_hook, remove_launch_hook

    arch = None
    if ns.target:
        from .arch import get_arch

        arch = get_arch(ns.target)
        if arch.name in ("trn1", "trn2", "trn3"):
            os.environ["NEURON_PLATFORM_TARGET_OVERRIDE"] = arch.name
    reports: list[str] = []

    def hook(launch: Any) -> None:
        if arch is not None and arch is not launch.arch:
            from .model import schedule

            est = schedule(launch.stream, arch)
        else:
            est = estimate_launch(launch)
        title = f"launch {len(reports) + 1}: {launch.kernel_name}"
        reports.append(format_estimate(est, launch, ns.top, title))

    add_launch_hook(hook)
    try:
        rc = run_script(ns.script, ns.args)
    finally:
        remove_launch_hook(hook)
    out = sys.stdout
    if not reports:
        print("trnsim estimate: the script launched no kernel", file=out)
    for r in reports:
        print("", file=out)
        print(r, file=out)
    return rc
