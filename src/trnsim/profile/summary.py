"""Summary metrics and warnings of a scheduled launch.

Metric names follow Neuron Explorer's `Summary` table where one exists (`total_time` in seconds,
`mfu_estimated_percent`, `hfu_estimated_percent`, `mbu_estimated_percent`, `mm_arithmetic_intensity`,
`peak_flops_bandwidth_ratio`, `mfu_max_achievable_estimated_percent`, `model_flops`, `hardware_flops`,
`transpose_flops`, `<engine>_engine_active_time[_percent]`, `dma_active_time[_percent]`, `hbm_read_bytes`,
`hbm_write_bytes`, `sbuf_read_bytes`, `sbuf_write_bytes`, `neuroncore_cycle_count`,
`tensor_engine_instruction_count`); trnsim's own additions are documented in docs/profiling.md.

Warnings carry the NKI source lines responsible, ranked by the time those lines cost.
"""

from __future__ import annotations

import linecache
import os
from typing import Any

import numpy as np

from ..core.instruction import Engine
from .data import COMPUTE_ENGINES, ProfileData, dtype_name, instruction_bytes, is_transpose, union_length

FORMAT = "trnsim-profile-summary/1"

# Warning thresholds (docs/profiling.md explains each one).
SMALL_DMA_BYTES_PER_PARTITION = 512  # below this a DMA runs at < ~20% of its engines' bandwidth
FULL_PARTITIONS = 128
TINY_FREE_ELEMENTS = 64  # fixed per-instruction overhead (~64 cycles) dominates below this
TRANSPOSE_SHARE = 0.10  # Tensor-engine transposes above 10% of the Tensor engine's busy time
DMA_WAIT_SHARE = 0.10  # an engine idle waiting on DMAs for more than 10% of the kernel
CAPACITY_SHARE = 0.90  # SBUF / PSUM peak above 90% of capacity
RELOAD_LIMIT = 2  # an HBM region loaded more than twice
MIN_LINE_SHARE = 0.01  # per-line warnings only for lines costing at least 1% of an engine's time

ENGINE_KEYS = {
    Engine.TENSOR: "tensor_engine",
    Engine.VECTOR: "vector_engine",
    Engine.SCALAR: "scalar_engine",
    Engine.GPSIMD: "gpsimd_engine",
    Engine.SYNC: "sync_engine",
}


def _loc_dict(loc: Any) -> dict:
    return {
        "location": f"{os.path.basename(loc.file)}:{loc.line}",
        "file": loc.file,
        "line": int(loc.line),
        "function": loc.func,
        "code": linecache.getline(loc.file, loc.line).strip(),
    }


class _Lines:
    """Source-line ids for every instruction, and per-line sums."""

    def __init__(self, data: ProfileData) -> None:
        ids: dict[Any, int] = {}
        self.locs: list[Any] = []
        arr = np.empty(data.n, dtype=np.int64)
        for i, ins in enumerate(data.launch.stream):
            k = ids.get(ins.loc)
            if k is None:
                k = ids[ins.loc] = len(self.locs)
                self.locs.append(ins.loc)
            arr[i] = k
        self.id = arr

    def sum(self, weights: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        ids = self.id if mask is None else self.id[mask]
        w = weights if mask is None else weights[mask]
        return np.bincount(ids, weights=w, minlength=len(self.locs))


def summarize(launch: Any, est: Any, data: ProfileData | None = None) -> dict:
    """Metrics, per-engine and per-line breakdowns and warnings of one launch (JSON-able)."""
    data = data or ProfileData(launch, est)
    arch = launch.arch
    stream = launch.stream
    n = data.n
    total = max(data.total_ns, 1e-9)
    ncores = len(data.cores)
    dur = data.end - data.start
    engines = np.array([ins.engine for ins in stream], dtype=object) if n else np.zeros(0, dtype=object)
    lines = _Lines(data)

    # ---- flops
    flops = np.fromiter((ins.flops if ins.engine == Engine.TENSOR else 0 for ins in stream), np.float64, n)
    tr_mask = np.fromiter((is_transpose(ins) for ins in stream), bool, n)
    adj = np.ones(n)
    for i, ins in enumerate(stream):
        if ins.engine == Engine.TENSOR:
            dn = dtype_name(ins.in_dtype)
            if dn == "float32":
                adj[i] = 4.0
            elif dn.startswith("float8") and arch.nc_version >= 3:
                adj[i] = 0.5
    hardware_flops = float(flops.sum())
    transpose_flops = float(flops[tr_mask].sum())
    model_flops = hardware_flops - transpose_flops
    adjusted_flops = float((flops * adj).sum())
    peak = arch.peak_bf16_flops_per_ns * ncores

    # ---- bytes
    dma_idx = np.flatnonzero(data.is_dma)
    dma_b = np.array([instruction_bytes(stream[i]) for i in dma_idx], dtype=np.float64)
    dma_parts = np.array([max(1, stream[i].partitions) for i in dma_idx], dtype=np.float64)
    hbm_read = hbm_write = 0
    for i, b in zip(dma_idx, dma_b):
        d = stream[i].attrs.get("direction", "")
        src, _, dst = d.partition("->")
        if "hbm" in src:
            hbm_read += int(b)
        if "hbm" in dst:
            hbm_write += int(b)
    on_chip = {"sbuf": [0, 0], "psum": [0, 0]}
    for ins in stream:
        for a in ins.reads:
            k = a.storage.buffer.kind
            if k in on_chip:
                on_chip[k][0] += a.nbytes
        for a in ins.writes:
            k = a.storage.buffer.kind
            if k in on_chip:
                on_chip[k][1] += a.nbytes
    hbm_bytes = hbm_read + hbm_write
    ratio = arch.peak_bf16_flops_per_ns / arch.hbm_bytes_per_ns
    ai = (hardware_flops - transpose_flops) / hbm_bytes if hbm_bytes else 0.0

    # ---- active time per engine (union of busy intervals per core, averaged over cores)
    ls_s, ls_e = data.load_stationary()
    active: dict[str, float] = {}
    per_core: dict[str, dict[str, float]] = {}
    for c in data.cores:
        cm = data.core == c
        row: dict[str, float] = {}
        for eng in COMPUTE_ENGINES:
            m = cm & (engines == eng)
            s, e = data.start[m], data.end[m]
            if eng == Engine.TENSOR:
                lm = cm & ~np.isnan(ls_s)
                s, e = np.concatenate((s, ls_s[lm])), np.concatenate((e, ls_e[lm]))
            row[eng] = union_length(s, e)
        m = cm & data.is_dma
        row["DMA"] = union_length(data.start[m], data.end[m])
        per_core[str(c)] = {k: 100.0 * v / total for k, v in row.items()}
        for k, v in row.items():
            active[k] = active.get(k, 0.0) + v / ncores

    out: dict[str, Any] = {
        "format": FORMAT,
        "kernel": launch.kernel_name,
        "target": arch.name,
        "grid": list(launch.grid),
        "cores": data.cores,
        "instruction_count": n,
        "total_time": data.total_ns / 1e9,
        "total_time_ns": data.total_ns,
        "total_time_us": data.total_ns / 1e3,
        "neuroncore_cycle_count": int(round(data.total_ns * arch.clock_ghz.get("Sync", 1.0))),
        "model_flops": model_flops,
        "hardware_flops": hardware_flops,
        "transpose_flops": transpose_flops,
        "adjusted_hardware_flops": adjusted_flops,
        "mfu_estimated_percent": 100.0 * model_flops / (peak * total),
        "hfu_estimated_percent": 100.0 * adjusted_flops / (peak * total),
        "mbu_estimated_percent": 100.0 * hbm_bytes / (arch.hbm_bytes_per_ns * ncores * total),
        "mm_arithmetic_intensity": ai,
        "peak_flops_bandwidth_ratio": ratio,
        "mfu_max_achievable_estimated_percent": min(100.0, 100.0 * ai / ratio) if hbm_bytes else 100.0,
        "hbm_read_bytes": hbm_read,
        "hbm_write_bytes": hbm_write,
        "sbuf_read_bytes": on_chip["sbuf"][0],
        "sbuf_write_bytes": on_chip["sbuf"][1],
        "psum_read_bytes": on_chip["psum"][0],
        "psum_write_bytes": on_chip["psum"][1],
        "dma_bytes": int(dma_b.sum()),
        "dma_transfer_count": len(dma_idx),
        "dma_average_transfer_bytes": float(dma_b.mean()) if len(dma_b) else 0.0,
        "dma_average_bytes_per_partition": float((dma_b / dma_parts).mean()) if len(dma_b) else 0.0,
        "dma_small_transfer_count": int(np.sum(dma_b / np.maximum(dma_parts, 1) < SMALL_DMA_BYTES_PER_PARTITION)),
        "dma_throughput_gbps": float(dma_b.sum()) / total,
        "dma_active_time": active.get("DMA", 0.0) / 1e9,
        "dma_active_time_percent": 100.0 * active.get("DMA", 0.0) / total,
    }
    for eng, key in ENGINE_KEYS.items():
        out[f"{key}_active_time"] = active.get(eng, 0.0) / 1e9
        out[f"{key}_active_time_percent"] = 100.0 * active.get(eng, 0.0) / total
        out[f"{key}_instruction_count"] = int(np.sum(engines == eng)) if n else 0
    out["dma_instruction_count"] = len(dma_idx)
    out["active_time_percent_per_core"] = per_core

    # ---- memory
    for kind, cap in (("sbuf", arch.sbuf_usable_bytes_per_partition), ("psum", arch.psum_bytes_per_partition)):
        tls = [tl for tl in getattr(launch, "usage", []) or [] if tl.kind == kind]
        pk = max(tls, key=lambda tl: tl.peak) if tls else None
        out[f"{kind}_peak_bytes_per_partition"] = int(pk.peak) if pk else 0
        out[f"{kind}_capacity_bytes_per_partition"] = int(cap)
        out[f"{kind}_peak_percent"] = 100.0 * (pk.peak if pk else 0) / max(cap, 1)

    # ---- engines and opcodes
    wait_dma = np.zeros(n)
    if n:
        w = data.wait_on
        has = w >= 0
        wait_dma[has] = np.where(data.is_dma[w[has]], data.wait_ns[has], 0.0)
        wait_dma[data.is_dma] = 0.0
    eng_rows = {}
    for eng in (*COMPUTE_ENGINES, Engine.DMA):
        m = engines == eng if n else np.zeros(0, bool)
        if not m.any():
            continue
        eng_rows[eng] = {
            "instructions": int(m.sum()),
            "busy_ns": float(dur[m].sum()),
            "active_time_percent": 100.0 * active.get(eng, 0.0) / total,
            "wait_ns": float(data.wait_ns[m].sum()),
            "wait_on_dma_ns": float(wait_dma[m].sum()),
        }
    out["engines"] = eng_rows
    ops: dict[tuple[str, str], list[float]] = {}
    for i, ins in enumerate(stream):
        r = ops.setdefault((ins.engine, ins.opcode), [0, 0.0])
        r[0] += 1
        r[1] += dur[i]
    out["opcodes"] = [
        {"engine": e, "opcode": o, "count": int(c), "busy_ns": float(b)}
        for (e, o), (c, b) in sorted(ops.items(), key=lambda kv: -kv[1][1])
    ]

    # ---- source lines
    crit = np.zeros(n)
    cp = [i for i in (est.critical_path or []) if 0 <= i < n]
    if cp:
        crit[np.array(cp, dtype=np.int64)] = dur[np.array(cp, dtype=np.int64)]
    out["critical_path_ns"] = float(crit.sum())
    nl_ = len(lines.locs)
    cnt = np.bincount(lines.id, minlength=nl_) if n else np.zeros(0)
    busy = lines.sum(dur) if n else np.zeros(0)
    crit_l = lines.sum(crit) if n else np.zeros(0)
    wait_l = lines.sum(data.wait_ns) if n else np.zeros(0)
    flops_l = lines.sum(flops) if n else np.zeros(0)
    dmab = np.zeros(n)
    if len(dma_idx):
        dmab[dma_idx] = dma_b
    dmab_l = lines.sum(dmab) if n else np.zeros(0)
    per_eng_l = {}
    for eng in (*COMPUTE_ENGINES, Engine.DMA):
        m = engines == eng if n else np.zeros(0, bool)
        if m.any():
            per_eng_l[eng] = lines.sum(dur, m)
    # rank by time on the critical path when the timing pass's path explains most of the kernel, else by busy time
    by_crit = float(crit.sum()) >= 0.5 * total
    out["source_lines_ranked_by"] = "critical_path_ns" if by_crit else "busy_ns"
    order = sorted(range(nl_), key=lambda k: (-crit_l[k], -busy[k]) if by_crit else (-busy[k], -crit_l[k]))
    src = []
    for k in order[:200]:
        row = _loc_dict(lines.locs[k])
        row.update(
            {
                "instructions": int(cnt[k]),
                "busy_ns": float(busy[k]),
                "critical_path_ns": float(crit_l[k]),
                "critical_path_percent": 100.0 * float(crit_l[k]) / total,
                "wait_ns": float(wait_l[k]),
                "flops": float(flops_l[k]),
                "dma_bytes": int(dmab_l[k]),
                "busy_ns_per_engine": {e: float(v[k]) for e, v in per_eng_l.items() if v[k] > 0},
            }
        )
        src.append(row)
    out["source_lines"] = src

    # ---- reloads and warnings
    out["reloaded_tensors"] = _reloads(stream, dma_idx)
    out["tensors_loaded_more_than_twice"] = len(out["reloaded_tensors"])
    out["warnings"] = _warnings(data, out, lines, engines, dur, wait_dma, dma_idx, dma_b, dma_parts)
    out["diagnostics"] = [
        {"code": d.code, "message": d.message, **_loc_dict(d.loc)} for d in getattr(launch.run, "diagnostics", [])
    ]
    return out


def _reloads(stream: list, dma_idx: np.ndarray) -> list[dict]:
    """HBM regions loaded into on-chip memory more than twice (Explorer's "reloaded tensor" boxes)."""
    loads: dict[int, dict[tuple, int]] = {}
    info: dict[int, tuple[str, int, set]] = {}
    for i in dma_idx:
        ins = stream[i]
        if not ins.reads or not ins.writes:
            continue
        a = ins.reads[0]
        if a.storage.buffer.on_chip or not ins.writes[0].storage.buffer.on_chip:
            continue
        sid = a.storage.id
        box = (a.p_lo, a.p_hi, a.f_lo, a.f_hi)
        d = loads.setdefault(sid, {})
        d[box] = d.get(box, 0) + 1
        name, nb, locs = info.get(sid, (a.storage.name, 0, set()))
        if len(locs) < 8:
            locs.add(f"{os.path.basename(ins.loc.file)}:{ins.loc.line}")
        info[sid] = (name, nb + a.nbytes, locs)
    out = []
    for sid, boxes in loads.items():
        mx = max(boxes.values())
        if mx <= RELOAD_LIMIT:
            continue
        name, nb, locs = info[sid]
        total_loads = sum(boxes.values())
        out.append(
            {
                "tensor": name,
                "max_loads_of_one_region": int(mx),
                "loads": int(total_loads),
                "regions": len(boxes),
                "bytes_loaded": int(nb),
                "extra_load_bytes": int(nb - nb * len(boxes) / total_loads),
                "lines": sorted(locs),
            }
        )
    out.sort(key=lambda r: -r["extra_load_bytes"])
    return out


def _line_rows(lines: _Lines, weights: np.ndarray, mask: np.ndarray, extra=None, limit: int = 5) -> list[dict]:
    s = lines.sum(weights, mask)
    c = np.bincount(lines.id[mask], minlength=len(lines.locs))
    rows = []
    for k in np.argsort(-s, kind="stable")[:limit]:
        if c[k] == 0:
            continue
        row = _loc_dict(lines.locs[k])
        row["instructions"] = int(c[k])
        row["time_ns"] = float(s[k])
        if extra is not None:
            row["detail"] = extra(int(k))
        rows.append(row)
    return rows


def _warnings(data, out, lines, engines, dur, wait_dma, dma_idx, dma_b, dma_parts) -> list[dict]:
    stream = data.launch.stream
    n = data.n
    total = max(data.total_ns, 1e-9)
    warns: list[dict] = []
    if n == 0:
        return warns

    def add(code: str, message: str, rows: list[dict], value: float, severity: str = "warning") -> None:
        warns.append({"code": code, "severity": severity, "message": message, "value": value, "lines": rows})

    # small DMA transfers
    if len(dma_idx):
        bpp = dma_b / dma_parts
        small = np.zeros(n, bool)
        small[dma_idx[bpp < SMALL_DMA_BYTES_PER_PARTITION]] = True
        if small.any():
            k = int(small.sum())
            add(
                "small_dma_transfers",
                f"{k} of {len(dma_idx)} DMA transfers move fewer than {SMALL_DMA_BYTES_PER_PARTITION} bytes per "
                f"partition (DMA efficiency is low below ~2 KiB per partition); load larger tiles or batch transfers",
                _line_rows(lines, dur, small, lambda j: "small transfers on this line"),
                k,
            )
    comp = ~data.is_dma
    comp_busy = max(float(dur[comp].sum()), 1e-9)
    # fewer than 128 partitions (matmul: contraction K or stationary free M)
    parts = np.fromiter(
        (
            min(ins.partitions, int(ins.attrs.get("M", ins.partitions) or ins.partitions))
            if ins.engine == Engine.TENSOR
            else ins.partitions
            for ins in stream
        ),
        np.int64,
        n,
    )
    low = comp & (parts < FULL_PARTITIONS) & (parts > 0)
    if low.any() and dur[low].sum() >= MIN_LINE_SHARE * comp_busy:
        pmin = {}
        for i in np.flatnonzero(low):
            k = int(lines.id[i])
            pmin[k] = min(pmin.get(k, 1 << 30), int(parts[i]))
        add(
            "low_partition_usage",
            f"instructions taking {100 * dur[low].sum() / comp_busy:.1f}% of compute-engine time use fewer than "
            f"{FULL_PARTITIONS} partitions (idle lanes / PE rows); tile so the partition dimension is 128",
            _line_rows(lines, dur, low, lambda k: f"min partitions {pmin.get(k)}"),
            float(100 * dur[low].sum() / comp_busy),
        )
    # fp32 matmuls
    fp32 = np.fromiter(
        (ins.engine == Engine.TENSOR and not is_transpose(ins) and dtype_name(ins.in_dtype) == "float32" for ins in stream),
        bool,
        n,
    )
    if fp32.any():
        add(
            "fp32_matmul",
            f"{int(fp32.sum())} matmuls take fp32 operands, which run at 1/4 of the bf16 rate; cast to bf16 (or fp8) "
            f"when the accuracy allows",
            _line_rows(lines, dur, fp32),
            int(fp32.sum()),
        )
    # tiny free sizes
    free = np.fromiter((ins.free for ins in stream), np.int64, n)
    tiny = comp & (free > 0) & (free < TINY_FREE_ELEMENTS)
    if tiny.any() and dur[tiny].sum() >= MIN_LINE_SHARE * comp_busy:
        add(
            "tiny_free_size",
            f"{int(tiny.sum())} instructions process fewer than {TINY_FREE_ELEMENTS} elements per partition, so "
            f"their fixed overhead dominates; process larger tiles per instruction",
            _line_rows(lines, dur, tiny, lambda k: "free size < 64"),
            int(tiny.sum()),
        )
    # Tensor-engine transposes
    te = engines == Engine.TENSOR
    tr = np.fromiter((is_transpose(ins) for ins in stream), bool, n)
    te_busy = float(dur[te].sum())
    if te_busy > 0 and dur[tr].sum() > TRANSPOSE_SHARE * te_busy:
        share = 100.0 * dur[tr].sum() / te_busy
        add(
            "tensor_engine_transposes",
            f"transposes take {share:.1f}% of the Tensor engine's busy time (over "
            f"{100 * TRANSPOSE_SHARE:.0f}%); load data pre-transposed (dma_transpose / load_transpose2d) or "
            f"restructure the layout",
            _line_rows(lines, dur, tr),
            share,
        )
    # engines idle waiting on DMA
    for eng in COMPUTE_ENGINES:
        m = engines == eng
        wd = float(wait_dma[m].sum())
        if wd > DMA_WAIT_SHARE * total:
            waited = np.zeros(n, bool)
            idx = np.flatnonzero(m & (wait_dma > 0))
            weights = np.zeros(n)
            np.add.at(weights, data.wait_on[idx], wait_dma[idx])
            waited[data.wait_on[idx]] = True
            add(
                "engine_waits_on_dma",
                f"the {eng} engine sits idle waiting for DMA transfers for {wd / 1e3:.2f} us "
                f"({100 * wd / total:.1f}% of the kernel); prefetch (load the next tile before computing on the "
                f"current one) or make transfers larger",
                _line_rows(lines, wait_dma, m & (wait_dma > 0), lambda k: "waits here")
                + _line_rows(lines, weights, waited, lambda k: "the DMA waited for", limit=3),
                100.0 * wd / total,
            )
    # on-chip capacity
    for kind in ("sbuf", "psum"):
        pct = out[f"{kind}_peak_percent"] / 100.0
        if pct > CAPACITY_SHARE:
            tls = [tl for tl in data.launch.usage if tl.kind == kind]
            tl = max(tls, key=lambda t: t.peak)
            row = _loc_dict(stream[tl.peak_at].loc)
            row["detail"] = "live at peak: " + ", ".join(f"{st.name} {b} B" for st, b in tl.live_at_peak[:6])
            add(
                f"{kind}_near_capacity",
                f"{kind.upper()} peaks at {tl.peak} of {tl.capacity} bytes per partition ({100 * pct:.0f}%); one more "
                f"buffer or larger tile will not fit",
                [row],
                100.0 * pct,
            )
    # reloads
    for r in out["reloaded_tensors"][:5]:
        add(
            "tensor_reloaded",
            f"HBM tensor '{r['tensor']}': a region is loaded {r['max_loads_of_one_region']} times "
            f"({r['extra_load_bytes']} bytes re-loaded); keep it resident in SBUF across the loop",
            [{"location": loc, "file": "", "line": 0, "function": "", "code": ""} for loc in r["lines"]],
            r["max_loads_of_one_region"],
            "info",
        )
    # uninitialised reads and other run diagnostics
    for d in getattr(data.launch.run, "diagnostics", []):
        code = "uninitialized_read" if d.code == "warn_uninitialized_read" else d.code
        add(code, d.message, [_loc_dict(d.loc)], 1, "error" if code == "uninitialized_read" else "warning")
    return warns


# ---------------------------------------------------------------------------------------------- text
def _fmt_bytes(b: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(b) < 1024 or unit == "GiB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024
    return f"{b:.1f} GiB"


def format_text(s: dict, lines: int = 10) -> str:
    """The summary as text (like `neuron-profile view --output-format summary-text`)."""
    out = [
        f"kernel {s['kernel']} on {s['target']}  grid {tuple(s['grid'])}  cores {s['cores']}",
        f"  total_time            {s['total_time_us']:.3f} us ({s['instruction_count']} instructions)",
        f"  mfu / hfu / mbu       {s['mfu_estimated_percent']:.1f}% / {s['hfu_estimated_percent']:.1f}% / "
        f"{s['mbu_estimated_percent']:.1f}%   (roofline ceiling {s['mfu_max_achievable_estimated_percent']:.1f}%)",
        f"  arithmetic intensity  {s['mm_arithmetic_intensity']:.1f} flop/B (ridge {s['peak_flops_bandwidth_ratio']:.1f})",
        "  engine active         "
        + "  ".join(
            f"{k.replace('_engine', '')} {s[f'{k}_active_time_percent']:.1f}%"
            for k in ENGINE_KEYS.values()
            if s.get(f"{k}_instruction_count")
        )
        + f"  dma {s['dma_active_time_percent']:.1f}%",
        f"  DMA                   {s['dma_transfer_count']} transfers, {_fmt_bytes(s['dma_bytes'])}, average "
        f"{_fmt_bytes(s['dma_average_transfer_bytes'])} ({s['dma_average_bytes_per_partition']:.0f} B/partition), "
        f"{s['dma_throughput_gbps']:.1f} GB/s",
        f"  HBM read / write      {_fmt_bytes(s['hbm_read_bytes'])} / {_fmt_bytes(s['hbm_write_bytes'])}",
        f"  SBUF / PSUM peak      {s['sbuf_peak_bytes_per_partition']} B ({s['sbuf_peak_percent']:.1f}%) / "
        f"{s['psum_peak_bytes_per_partition']} B ({s['psum_peak_percent']:.1f}%) per partition",
        f"  reloaded tensors      {s['tensors_loaded_more_than_twice']}",
    ]
    if s["source_lines"]:
        out.append(f"  hottest source lines (by {s.get('source_lines_ranked_by', 'critical_path_ns')}; critical path, busy):")
        for r in s["source_lines"][:lines]:
            out.append(
                f"    {r['location']:<28} {r['critical_path_percent']:5.1f}%  {r['busy_ns'] / 1e3:9.3f} us  "
                f"{r['instructions']:>7}x  {r['code'][:60]}"
            )
    if s["warnings"]:
        out.append(f"  warnings ({len(s['warnings'])}):")
        for w in s["warnings"]:
            where = ", ".join(r["location"] for r in w["lines"][:3])
            out.append(f"    [{w['code']}] {w['message']}" + (f"  ({where})" if where else ""))
    return "\n".join(out)
