"""`python -m trnsim diff A B`: compare two profile summaries (per metric, per engine, per source line).

A and B are summary JSON files (`*.summary.json`, or the summary JSON `nki.profile` writes) or folders
written by `trnsim profile` (launches are paired by file name, else by kernel name and order). With
`--fail-above 5%` the command exits with status 1 when B's total_time is more than 5% above A's for any
pair, for CI regression gates.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

METRICS = (
    ("total_time_us", "total_time (us)", True),
    ("instruction_count", "instructions", True),
    ("mfu_estimated_percent", "MFU %", False),
    ("mbu_estimated_percent", "MBU %", False),
    ("tensor_engine_active_time_percent", "Tensor active %", False),
    ("vector_engine_active_time_percent", "Vector active %", False),
    ("scalar_engine_active_time_percent", "Scalar active %", False),
    ("gpsimd_engine_active_time_percent", "GpSimd active %", False),
    ("dma_active_time_percent", "DMA active %", False),
    ("dma_bytes", "DMA bytes", True),
    ("dma_transfer_count", "DMA transfers", True),
    ("hbm_read_bytes", "HBM read bytes", True),
    ("hbm_write_bytes", "HBM write bytes", True),
    ("sbuf_peak_bytes_per_partition", "SBUF peak B/partition", True),
    ("psum_peak_bytes_per_partition", "PSUM peak B/partition", True),
)


def load_summaries(path: str) -> list[tuple[str, dict]]:
    """(name, summary) pairs from a summary file or a folder of them."""
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "*.summary.json")))
        if not files:
            files = sorted(p for p in glob.glob(os.path.join(path, "*.json")) if _is_summary(p))
    else:
        files = [path]
    out = []
    for p in files:
        with open(p, encoding="utf-8") as f:
            s = json.load(f)
        if "total_time" not in s:
            raise ValueError(f"{p} is not a trnsim profile summary (no total_time)")
        name = os.path.basename(p)
        for suffix in (".summary.json", ".json"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        out.append((name, s))
    return out


def _is_summary(p: str) -> bool:
    try:
        with open(p, encoding="utf-8") as f:
            return "total_time" in json.load(f)
    except (OSError, ValueError):
        return False


def pair(a: list[tuple[str, dict]], b: list[tuple[str, dict]]) -> list[tuple[str, dict, dict]]:
    if len(a) == 1 and len(b) == 1:
        return [(a[0][0] if a[0][0] == b[0][0] else f"{a[0][0]} vs {b[0][0]}", a[0][1], b[0][1])]
    bd = dict(b)
    pairs = [(n, s, bd[n]) for n, s in a if n in bd]
    if pairs:
        return pairs
    # fall back to kernel names in order
    used: set[int] = set()
    for n, s in a:
        for k, (m, t) in enumerate(b):
            if k not in used and t.get("kernel") == s.get("kernel"):
                used.add(k)
                pairs.append((f"{n} vs {m}", s, t))
                break
    return pairs


def _pct(a: float, b: float) -> float:
    if a == 0:
        return 0.0 if b == 0 else float("inf")
    return 100.0 * (b - a) / abs(a)


def _line_key(r: dict) -> str:
    return r.get("location") or f"{os.path.basename(r.get('file', ''))}:{r.get('line', 0)}"


def compare(a: dict, b: dict, lines: int = 10) -> dict:
    """Differences between two summaries (JSON-able)."""
    metrics = []
    for key, label, _ in METRICS:
        if key in a or key in b:
            va, vb = float(a.get(key, 0) or 0), float(b.get(key, 0) or 0)
            metrics.append({"metric": key, "label": label, "a": va, "b": vb, "delta": vb - va, "percent": _pct(va, vb)})
    engines = []
    for eng in sorted(set(a.get("engines", {})) | set(b.get("engines", {}))):
        ea, eb = a.get("engines", {}).get(eng, {}), b.get("engines", {}).get(eng, {})
        va, vb = float(ea.get("busy_ns", 0)), float(eb.get("busy_ns", 0))
        engines.append({
            "engine": eng, "busy_ns_a": va, "busy_ns_b": vb, "percent": _pct(va, vb),
            "instructions_a": int(ea.get("instructions", 0)), "instructions_b": int(eb.get("instructions", 0)),
            "wait_on_dma_ns_a": float(ea.get("wait_on_dma_ns", 0)), "wait_on_dma_ns_b": float(eb.get("wait_on_dma_ns", 0)),
        })
    la = {_line_key(r): r for r in a.get("source_lines", [])}
    lb = {_line_key(r): r for r in b.get("source_lines", [])}
    rows = []
    for k in set(la) | set(lb):
        ra, rb = la.get(k, {}), lb.get(k, {})
        rows.append({
            "location": k,
            "code": (rb or ra).get("code", ""),
            "busy_ns_a": float(ra.get("busy_ns", 0)), "busy_ns_b": float(rb.get("busy_ns", 0)),
            "critical_path_ns_a": float(ra.get("critical_path_ns", 0)),
            "critical_path_ns_b": float(rb.get("critical_path_ns", 0)),
            "instructions_a": int(ra.get("instructions", 0)), "instructions_b": int(rb.get("instructions", 0)),
        })
    rows.sort(key=lambda r: -abs(r["critical_path_ns_b"] - r["critical_path_ns_a"]) - 1e-3 * abs(
        r["busy_ns_b"] - r["busy_ns_a"]))
    wa = {w["code"] for w in a.get("warnings", [])}
    wb = {w["code"] for w in b.get("warnings", [])}
    return {
        "kernel_a": a.get("kernel"), "kernel_b": b.get("kernel"),
        "total_time_percent": _pct(float(a.get("total_time_ns", 0)), float(b.get("total_time_ns", 0))),
        "metrics": metrics, "engines": engines, "source_lines": rows[:lines],
        "warnings_new": sorted(wb - wa), "warnings_gone": sorted(wa - wb),
    }


def format_diff(name: str, d: dict) -> str:
    out = [f"== {name}: {d['kernel_a']} -> {d['kernel_b']}  total_time {d['total_time_percent']:+.2f}%"]
    out.append(f"  {'metric':<26}{'A':>16}{'B':>16}{'change':>10}")
    for m in d["metrics"]:
        if m["a"] == 0 and m["b"] == 0:
            continue
        pct = "" if m["percent"] in (0.0,) else (f"{m['percent']:+.1f}%" if m["percent"] != float("inf") else "new")
        out.append(f"  {m['label']:<26}{m['a']:>16.6g}{m['b']:>16.6g}{pct:>10}")
    out.append(f"  {'engine busy (us)':<26}{'A':>16}{'B':>16}{'change':>10}")
    for e in d["engines"]:
        pct = f"{e['percent']:+.1f}%" if e["percent"] != float("inf") else "new"
        out.append(f"  {e['engine']:<26}{e['busy_ns_a'] / 1e3:>16.3f}{e['busy_ns_b'] / 1e3:>16.3f}{pct:>10}")
    if d["source_lines"]:
        out.append(f"  {'source line (critical path us)':<34}{'A':>10}{'B':>10}   busy A -> B (us)")
        for r in d["source_lines"]:
            out.append(
                f"  {r['location']:<34}{r['critical_path_ns_a'] / 1e3:>10.3f}{r['critical_path_ns_b'] / 1e3:>10.3f}"
                f"   {r['busy_ns_a'] / 1e3:.3f} -> {r['busy_ns_b'] / 1e3:.3f}  {r['code'][:50]}"
            )
    if d["warnings_new"]:
        out.append("  new warnings: " + ", ".join(d["warnings_new"]))
    if d["warnings_gone"]:
        out.append("  resolved warnings: " + ", ".join(d["warnings_gone"]))
    return "\n".join(out)


def _threshold(text: str) -> float:
    t = text.strip().rstrip("%")
    return float(t)


def diff_command(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m trnsim diff", description=__doc__.split("\n\n")[0])
    p.add_argument("a", help="baseline: a summary JSON or a `trnsim profile` output folder")
    p.add_argument("b", help="candidate: a summary JSON or a `trnsim profile` output folder")
    p.add_argument("--fail-above", metavar="PCT", type=_threshold, default=None,
                   help="exit with status 1 if B's total_time exceeds A's by more than PCT percent (e.g. 5%%)")
    p.add_argument("--lines", type=int, default=10, help="source lines to show per launch (default 10)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    args = p.parse_args(list(argv))
    try:
        pairs = pair(load_summaries(args.a), load_summaries(args.b))
    except (OSError, ValueError) as e:
        print(f"trnsim diff: {e}", file=sys.stderr)
        return 2
    if not pairs:
        print("trnsim diff: no matching launches between A and B", file=sys.stderr)
        return 2
    results: dict[str, Any] = {}
    worst = -float("inf")
    for name, sa, sb in pairs:
        d = compare(sa, sb, args.lines)
        results[name] = d
        worst = max(worst, d["total_time_percent"])
        if not args.json:
            print(format_diff(name, d))
    if args.json:
        print(json.dumps(results, indent=1))
    if args.fail_above is not None and worst > args.fail_above:
        print(
            f"trnsim diff: total_time regressed by {worst:.2f}% (limit {args.fail_above:g}%)",
            file=sys.stderr,
        )
        return 1
    return 0
