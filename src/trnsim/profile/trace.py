"""Instruction-level Perfetto traces of a scheduled launch.

Layout (per NeuronCore, one track group each): `Tensor LoadStationary`, `Tensor MultiplyMoving`, `Vector`,
`Scalar`, `GpSimd`, `Sync`, one track per DMA queue (`DMA qSyncIO`, ...), then counter tracks: SBUF and
PSUM bytes per partition in use, pending DMAs, DMA throughput (GB/s). Every instruction is one slice named
by its opcode with its operands, partitions, dtypes, bytes, flops, what it waited on and for how long and
its NKI source line; optional flow arrows join each instruction to the one whose completion released it.

Two encodings share this code: Perfetto protobuf (`.pftrace`, the default; see `pftrace.py`) and the
Chrome JSON trace-event format (`.json`). Both are written while walking the instruction stream, so the
trace is never held in memory. For long kernels the `aggregate` detail level merges the instructions of a
track that follow each other with gaps shorter than `merge_gap_ns` into one slice (count, busy time,
opcodes and lines in its arguments), and `sample=N` keeps every N-th instruction of each track.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.instruction import Engine
from .data import (
    ENGINE_TRACKS,
    LOAD_STATIONARY,
    ProfileData,
    access_text,
    downsample,
    dtype_name,
    instruction_bytes,
    is_tensor_pe,
)


@dataclass
class TraceOptions:
    """How much detail a trace keeps.

    detail: "full" (one slice per instruction), "aggregate" (merge runs of a track), or "auto" (full up to
    `auto_limit` instructions, aggregate above). merge_gap_ns: in aggregate mode, instructions of one track
    closer than this merge (None: total time / 20000, so at most ~20k slices per track and nothing merged
    that a full-width view could show apart). max_span_ns: in aggregate mode, the longest time one merged
    slice may cover (None: total time / 2000, so a zoomed-in view still shows where work happens). sample: keep every N-th instruction of each track (full detail
    only). flows: dependency arrows (None: on for full detail up to `flow_limit` instructions).
    max_counter_points: per counter track, larger series are reduced to per-bin maxima (means for DMA
    throughput).
    """

    detail: str = "auto"
    auto_limit: int = 200_000
    merge_gap_ns: float | None = None
    max_span_ns: float | None = None
    sample: int = 1
    flows: bool | None = None
    flow_limit: int = 100_000
    counters: bool = True
    max_counter_points: int = 20_000


@dataclass
class TraceStats:
    path: str
    format: str
    detail: str
    instructions: int
    slices: int
    counter_points: int
    flows: int
    bytes: int


# ---------------------------------------------------------------------------------------------- sinks
class _PerfettoSink:
    format = "perfetto"

    def __init__(self, path: str) -> None:
        from .pftrace import UNIT_COUNT, UNIT_SIZE_BYTES, PerfettoWriter

        self._units = {"count": UNIT_COUNT, "bytes": UNIT_SIZE_BYTES}
        self.f = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 - closed in close()
        self.w = PerfettoWriter(self.f)

    def group(self, uuid: int, core: int, name: str) -> None:
        self.w.track(uuid, name, pid=core + 1, explicit_child_order=True, rank=core)

    def track(self, uuid: int, parent: int, name: str, rank: int, lane: int) -> None:
        self.w.track(uuid, name, parent=parent, rank=rank, merge_by_name=True)

    def counter_track(self, uuid: int, parent: int, name: str, unit: str, rank: int) -> None:
        unit_code = self._units.get(unit)
        self.w.track(
            uuid,
            name,
            parent=parent,
            rank=rank,
            counter_unit=unit_code if unit_code is not None else 0,
            counter_unit_name="" if unit_code is not None else unit,
        )

    def slice(self, track: int, ts: int, te: int, name: str, args, loc, flows_out, flows_in, category: str) -> None:
        self.w.begin(track, ts, name, args, category=category, loc=loc, flows=flows_out, terminating_flows=flows_in)
        self.w.end(track, te)

    def counter(self, track: int, ts: int, value: float) -> None:
        self.w.counter(track, ts, value)

    def close(self) -> int:
        self.f.close()
        return self.w.bytes_written


class _ChromeJsonSink:
    format = "json"

    def __init__(self, path: str) -> None:
        self.f = open(path, "w", encoding="utf-8", buffering=1 << 20)  # noqa: SIM115 - closed in close()
        self.f.write('{"displayTimeUnit":"ns","otherData":{"generator":"trnsim"},"traceEvents":[\n')
        self._first = True
        self._tid: dict[int, tuple[int, int]] = {}  # track uuid -> (pid, tid)
        self._names: dict[int, str] = {}
        self._next_tid = 1

    def _emit(self, ev: dict) -> None:
        if not self._first:
            self.f.write(",\n")
        self._first = False
        self.f.write(json.dumps(ev, separators=(",", ":")))

    def group(self, uuid: int, core: int, name: str) -> None:
        self._tid[uuid] = (core + 1, 0)
        self._emit({"ph": "M", "name": "process_name", "pid": core + 1, "tid": 0, "args": {"name": name}})
        self._emit({"ph": "M", "name": "process_sort_index", "pid": core + 1, "tid": 0, "args": {"sort_index": core}})

    def track(self, uuid: int, parent: int, name: str, rank: int, lane: int) -> None:
        pid = self._tid[parent][0]
        tid = self._next_tid
        self._next_tid += 1
        self._tid[uuid] = (pid, tid)
        label = name if lane == 0 else f"{name} #{lane}"
        self._emit({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": label}})
        self._emit(
            {"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid, "args": {"sort_index": rank * 64 + lane}}
        )

    def counter_track(self, uuid: int, parent: int, name: str, unit: str, rank: int) -> None:
        self._tid[uuid] = (self._tid[parent][0], 0)
        self._names[uuid] = f"{name} ({unit})" if unit else name

    def slice(self, track: int, ts: int, te: int, name: str, args, loc, flows_out, flows_in, category: str) -> None:
        pid, tid = self._tid[track]
        ev: dict[str, Any] = {
            "ph": "X",
            "name": name,
            "cat": category,
            "pid": pid,
            "tid": tid,
            "ts": ts / 1000.0,
            "dur": (te - ts) / 1000.0,
        }
        if args:
            ev["args"] = dict(args)
        self._emit(ev)
        for fid in flows_out or ():
            self._emit({"ph": "s", "name": "dep", "cat": "dep", "id": fid, "pid": pid, "tid": tid, "ts": ts / 1000.0})
        for fid in flows_in or ():
            self._emit(
                {"ph": "f", "bp": "e", "name": "dep", "cat": "dep", "id": fid, "pid": pid, "tid": tid, "ts": ts / 1000.0}
            )

    def counter(self, track: int, ts: int, value: float) -> None:
        pid, _ = self._tid[track]
        name = self._names[track]
        self._emit({"ph": "C", "name": name, "pid": pid, "ts": ts / 1000.0, "args": {"value": value}})

    def close(self) -> int:
        self.f.write("\n]}\n")
        n = self.f.tell()
        self.f.close()
        return n


def trace_format_for(path: str, fmt: str | None = None) -> str:
    if fmt:
        f = fmt.lower()
        if f in ("pftrace", "perfetto", "proto", "protobuf"):
            return "perfetto"
        if f in ("json", "chrome"):
            return "json"
        raise ValueError(f"unknown trace format {fmt!r} (use 'perfetto' or 'json')")
    return "json" if path.lower().endswith(".json") else "perfetto"


# ---------------------------------------------------------------------------------------------- helpers
def _ns(x: float) -> int:
    return int(math.floor(x + 0.5))


_ATTR_KEYS = ("op", "op0", "op1", "M", "K", "N", "perf_mode", "direction", "dge_mode", "axes", "reduce_cmd")


def instruction_args(data: ProfileData, i: int, ins: Any) -> list[tuple[str, Any]]:
    """The arguments shown for one instruction (Perfetto 'Arguments' panel)."""
    loc = ins.loc
    locs = _LOC_TEXT.get(loc)
    if locs is None:
        if len(_LOC_TEXT) > 100_000:
            _LOC_TEXT.clear()
        locs = _LOC_TEXT[loc] = f"{loc.file}:{loc.line}"
    # opcode, engine, function and duration are the slice's name, track, source location and length
    args: list[tuple[str, Any]] = [("idx", i), ("nki_source_location", locs), ("partitions", int(ins.partitions))]
    args.append(("free", int(ins.free)))
    if ins.in_dtype is not None:
        args.append(("in_dtype", dtype_name(ins.in_dtype)))
    if ins.out_dtype is not None:
        args.append(("out_dtype", dtype_name(ins.out_dtype)))
    for k, a in enumerate(ins.reads):
        args.append((_READ_KEYS[k] if k < 8 else f"read{k}", access_text(a)))
    for k, a in enumerate(ins.writes):
        args.append((_WRITE_KEYS[k] if k < 8 else f"write{k}", access_text(a) + (" (accumulate)" if a.accumulate else "")))
    args.append(("bytes", instruction_bytes(ins)))
    if ins.flops:
        args.append(("flops", int(ins.flops)))
    w = int(data.wait_on[i])
    if w >= 0:
        args.append(("waited_on", data.wait_desc(i)))
    if data.wait_ns[i] > 0:
        args.append(("wait_ns", float(data.wait_ns[i])))
    t = data.est.timings[i]
    reason = getattr(t, "reason", "")
    if reason and w >= 0:
        args.append(("wait_reason", reason))
    if ins.engine == Engine.DMA:
        args.append(("queue", data.queue_of(i)))
        issue = getattr(t, "issue", None)
        if issue is not None:
            args.append(("issued_at_ns", float(issue)))
        args.append(("bytes_per_partition", int(instruction_bytes(ins) // max(1, ins.partitions))))
    if ins.iteration:
        args.append(("iteration", ",".join(str(x) for x in ins.iteration)))
    for k in _ATTR_KEYS:
        v = ins.attrs.get(k)
        if v not in (None, "", "unknown"):
            args.append((k, v if isinstance(v, (int, float, str, bool)) else str(v)))
    if is_tensor_pe(ins) and ins.attrs.get("transpose"):
        args.append(("transpose", True))
    return args


_LOC_TEXT: dict[Any, str] = {}
_READ_KEYS = [f"read{k}" for k in range(8)]
_WRITE_KEYS = [f"write{k}" for k in range(8)]


class _Run:
    """Instructions of one track lane merged into one slice (aggregate detail)."""

    __slots__ = ("start", "end", "count", "busy", "flops", "bytes", "wait", "kinds", "first", "last")

    def __init__(self, i: int, s: float, e: float) -> None:
        self.start, self.end = s, e
        self.count = 0
        self.busy = 0.0
        self.flops = 0
        self.bytes = 0
        self.wait = 0.0
        self.kinds: dict[tuple[str, str], int] = {}
        self.first = self.last = i

    def add(self, i: int, s: float, e: float, ins: Any, data: ProfileData, pe_ls: bool) -> None:
        self.end = max(self.end, e)
        self.count += 1
        self.busy += e - s
        self.last = i
        if not pe_ls:
            self.flops += int(ins.flops)
            self.bytes += instruction_bytes(ins)
            self.wait += float(data.wait_ns[i])
        key = ("LoadStationary" if pe_ls else ins.opcode, f"{os.path.basename(ins.loc.file)}:{ins.loc.line}")
        if len(self.kinds) < 16 or key in self.kinds:
            self.kinds[key] = self.kinds.get(key, 0) + 1


# ---------------------------------------------------------------------------------------------- writer
def write_trace(
    launch: Any,
    path: str,
    estimate: Any = None,
    *,
    fmt: str | None = None,
    options: TraceOptions | None = None,
    data: ProfileData | None = None,
) -> TraceStats:
    """Write the trace of `launch` to `path` (Perfetto protobuf unless the path ends in .json or fmt='json')."""
    from ..timing.model import estimate_launch

    opts = options or TraceOptions()
    if data is None:
        data = ProfileData(launch, estimate or estimate_launch(launch))
    kind = trace_format_for(path, fmt)
    sink: Any = _PerfettoSink(path) if kind == "perfetto" else _ChromeJsonSink(path)
    try:
        stats = _write(data, sink, opts)
    except BaseException:
        sink.close()
        raise
    nbytes = sink.close()
    stats.path, stats.format, stats.bytes = path, kind, nbytes
    return stats


def _write(data: ProfileData, sink: Any, opts: TraceOptions) -> TraceStats:
    n = data.n
    stream = data.launch.stream
    detail = opts.detail
    if detail == "auto":
        detail = "full" if n <= opts.auto_limit else "aggregate"
    if detail not in ("full", "aggregate"):
        raise ValueError(f"unknown trace detail {opts.detail!r} (use 'full', 'aggregate' or 'auto')")
    sample = max(1, int(opts.sample))
    flows_on = opts.flows if opts.flows is not None else (detail == "full" and sample == 1 and n <= opts.flow_limit)
    flows_on = bool(flows_on) and detail == "full" and sample == 1
    gap = opts.merge_gap_ns if opts.merge_gap_ns is not None else max(data.total_ns, 1.0) / 20000.0
    span = opts.max_span_ns if opts.max_span_ns is not None else max(data.total_ns, 1.0) / 2000.0

    # --- tracks: a group per core; engine tracks in a fixed order, then DMA queues, then counters
    uuid_next = [10]

    def new_uuid() -> int:
        uuid_next[0] += 1
        return uuid_next[0]

    group: dict[int, int] = {}
    lanes: dict[tuple[int, str], list[float]] = {}  # (core, track) -> lane end times
    lane_uuid: dict[tuple[int, str, int], int] = {}
    queue_rank = {q: k for k, q in enumerate(data.queues())}

    def rank_of(track: str) -> int:
        if track in ENGINE_TRACKS:
            return ENGINE_TRACKS.index(track)
        if track.startswith("DMA "):
            return len(ENGINE_TRACKS) + queue_rank.get(track[4:], 0)
        return len(ENGINE_TRACKS) + len(queue_rank)

    for c in data.cores:
        group[c] = new_uuid()
        sink.group(group[c], c, f"NeuronCore {c}")

    def lane_track(core: int, track: str, s: float, e: float) -> int:
        ends = lanes.setdefault((core, track), [])
        for k, le in enumerate(ends):
            if le <= s:
                ends[k] = e
                lane = k
                break
        else:
            ends.append(e)
            lane = len(ends) - 1
        key = (core, track, lane)
        u = lane_uuid.get(key)
        if u is None:
            u = new_uuid()
            lane_uuid[key] = u
            sink.track(u, group[core], track, rank_of(track), lane)
        return u

    # --- flows: consumers of each producer (CSR over wait_on)
    cons_order = cons_keys = None
    if flows_on:
        consumers = np.flatnonzero(data.wait_on >= 0)
        prod = data.wait_on[consumers]
        order = np.argsort(prod, kind="stable")
        cons_order = consumers[order]
        cons_keys = prod[order]

    def flows_out(i: int) -> list[int] | None:
        if cons_keys is None:
            return None
        lo = np.searchsorted(cons_keys, i, side="left")
        hi = np.searchsorted(cons_keys, i, side="right")
        if hi <= lo:
            return None
        return [int(c) + 1 for c in cons_order[lo:hi]]

    ls_s, ls_e = data.load_stationary()
    slices = 0
    flow_count = 0
    runs: dict[int, _Run] = {}  # lane uuid -> open run
    per_track_seen: dict[tuple[int, str], int] = {}

    def flush(u: int) -> None:
        nonlocal slices
        r = runs.pop(u)
        if r.count == 0:
            return
        kinds = sorted(r.kinds.items(), key=lambda kv: -kv[1])
        opcodes = {k[0] for k, _ in kinds}
        if len(opcodes) == 1:
            name = f"{kinds[0][0][0]} x{r.count}" if r.count > 1 else kinds[0][0][0]
        else:
            name = f"{r.count} instructions"
        args = [
            ("instructions", r.count),
            ("first_idx", r.first),
            ("last_idx", r.last),
            ("busy_ns", float(r.busy)),
            ("span_ns", float(r.end - r.start)),
            ("busy_percent", float(100.0 * r.busy / max(r.end - r.start, 1e-9))),
            ("opcodes_and_lines", ", ".join(f"{op}@{ln} x{cnt}" for (op, ln), cnt in kinds[:8])),
        ]
        if r.flops:
            args.append(("flops", r.flops))
        if r.bytes:
            args.append(("bytes", r.bytes))
        if r.wait:
            args.append(("wait_ns", float(r.wait)))
        sink.slice(u, _ns(r.start), _ns(r.end), name, args, None, None, None, "aggregate")
        slices += 1

    def emit(i: int, ins: Any, track: str, s: float, e: float, pe_ls: bool) -> None:
        nonlocal slices, flow_count
        core = ins.core
        if sample > 1:
            k = (core, track)
            seen = per_track_seen.get(k, 0)
            per_track_seen[k] = seen + 1
            if seen % sample:
                return
        u = lane_track(core, track, s, e)
        if detail == "aggregate":
            r = runs.get(u)
            if r is not None and (s - r.end > gap or e - r.start > span):
                flush(u)
                r = None
            if r is None:
                r = runs[u] = _Run(i, s, e)
            r.add(i, s, e, ins, data, pe_ls)
            return
        loc = ins.loc
        if pe_ls:
            a = ins.reads[0] if ins.reads else None
            args = [
                ("for_idx", i),
                ("opcode", "LoadStationary"),
                ("nki_source_location", f"{loc.file}:{loc.line}"),
                ("stationary", access_text(a) if a is not None else ""),
                ("M", int(ins.attrs.get("M", 0) or 0)),
                ("K", int(ins.attrs.get("K", ins.partitions) or 0)),
                ("duration_ns", float(e - s)),
            ]
            sink.slice(u, _ns(s), _ns(e), "LoadStationary", args, (loc.file, loc.func, loc.line), None, None, "pe")
            slices += 1
            return
        fo = flows_out(i) if flows_on else None
        fi = [i + 1] if (flows_on and data.wait_on[i] >= 0) else None
        if fo:
            flow_count += len(fo)
        cat = "dma" if ins.engine == Engine.DMA else ins.engine.lower()
        sink.slice(
            u, _ns(s), _ns(e), ins.opcode, instruction_args(data, i, ins), (loc.file, loc.func, loc.line), fo, fi, cat
        )
        slices += 1

    for i, ins in enumerate(stream):
        if not math.isnan(ls_s[i]):
            emit(i, ins, LOAD_STATIONARY, float(ls_s[i]), float(ls_e[i]), True)
        emit(i, ins, data.track_of(i, ins), float(data.start[i]), float(data.end[i]), False)
    for u in list(runs):
        flush(u)

    counter_points = _write_counters(data, sink, opts, group, new_uuid) if opts.counters else 0
    return TraceStats("", "", detail, n, slices, counter_points, flow_count, 0)


def _write_counters(data: ProfileData, sink: Any, opts: TraceOptions, group: dict[int, int], new_uuid) -> int:
    points = 0
    base_rank = 100
    mem = data.memory() if data.n else {}
    for c in data.cores:
        series: list[tuple[str, str, np.ndarray, np.ndarray, str]] = []
        for kind in ("sbuf", "psum"):
            hit = mem.get((kind, c))
            if hit is not None:
                t, v, cap = hit
                series.append((f"{kind.upper()} bytes/partition in use (of {cap})", "bytes", t, v, "max"))
        (pt, pv), (tt, tv) = data.dma(c)
        if len(pt):
            series.append(("Pending DMAs", "count", pt, pv, "max"))
            series.append(("DMA throughput GB/s", "GB/s", tt, tv, "mean"))
        for k, (name, unit, t, v, how) in enumerate(series):
            u = new_uuid()
            sink.counter_track(u, group[c], name, unit, base_rank + k)
            t2, v2 = downsample(t, v, opts.max_counter_points, how)
            if len(t2) == 0 or t2[0] > 0:
                sink.counter(u, 0, 0)
                points += 1
            for ts, val in zip(t2.tolist(), v2.tolist()):
                # values at the same integer ns: the later one wins in both formats
                sink.counter(u, _ns(ts), round(val, 6) if unit == "GB/s" else val)
                points += 1
    return points
