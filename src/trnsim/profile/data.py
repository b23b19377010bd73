"""What every profile view shares: per-instruction times as arrays, track names, operand descriptions.

`ProfileData` wraps a `Launch` (instruction records) and its `Estimate` (timing pass) and keeps only
NumPy arrays of a few numbers per instruction next to them, so traces, summaries and reports over a
million instructions stay in bounded extra memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..core.instruction import Engine, Instruction

LOAD_STATIONARY = "Tensor LoadStationary"
MULTIPLY_MOVING = "Tensor MultiplyMoving"
ENGINE_TRACKS = (LOAD_STATIONARY, MULTIPLY_MOVING, "Vector", "Scalar", "GpSimd", "Sync")
COMPUTE_ENGINES = (Engine.TENSOR, Engine.VECTOR, Engine.SCALAR, Engine.GPSIMD, Engine.SYNC)


_DTYPE_NAMES: dict[Any, str] = {}


def dtype_name(dt: Any) -> str:
    if dt is None:
        return ""
    hit = _DTYPE_NAMES.get(dt)
    if hit is None:
        hit = _DTYPE_NAMES[dt] = str(getattr(dt, "name", None) or dt)
    return hit


def is_tensor_pe(ins: Instruction) -> bool:
    """Instructions that run on the PE array as LoadStationary + MultiplyMoving (matmuls, PE transposes)."""
    return ins.engine == Engine.TENSOR and ins.opcode in ("MATMUL", "TRANSPOSE")


def is_transpose(ins: Instruction) -> bool:
    return ins.engine == Engine.TENSOR and (ins.opcode == "TRANSPOSE" or bool(ins.attrs.get("transpose")))


def short_loc(loc: Any) -> str:
    return f"{os.path.basename(loc.file)}:{loc.line}"


_ACCESS_TEXT: dict[tuple, str] = {}


def access_text(a: Any) -> str:
    """'sbuf:name[128x512] bfloat16 p[0:128]' (HBM: 'shared_hbm:name[128x512] bfloat16 rows[..] bytes[..]')."""
    st = a.storage
    key = (st.id, a.p_lo, a.p_hi, a.f_lo, a.f_hi, a.shape)
    hit = _ACCESS_TEXT.get(key)
    if hit is None:
        dims = "x".join(str(s) for s in a.shape)
        if st.buffer.on_chip:
            where = f" p[{a.p_lo}:{a.p_hi}]"
        else:
            where = f" rows[{a.p_lo}:{a.p_hi}] bytes[{a.f_lo}:{a.f_hi}]"
        hit = f"{st.buffer.name}:{st.name}[{dims}] {dtype_name(a.dtype)}{where}"
        if len(_ACCESS_TEXT) > 200_000:
            _ACCESS_TEXT.clear()
        _ACCESS_TEXT[key] = hit
    return hit


def instruction_bytes(ins: Instruction) -> int:
    """Bytes moved (DMA) or read + written (compute) by one instruction."""
    if ins.engine == Engine.DMA:
        return int(ins.attrs.get("bytes", ins.dma_bytes))
    return sum(a.nbytes for a in ins.reads) + sum(a.nbytes for a in ins.writes)


def ls_cycles(ins: Instruction) -> float:
    """Tensor-engine cycles of a LoadStationary: fast weight load, about 4x faster than a moving pass of the
    same free size (stationary free size M, at least 16 cycles; fp32 at quarter rate)."""
    m = int(ins.attrs.get("M", ins.partitions) or 0)
    cyc = max(m / 4.0, 16.0)
    if ins.in_dtype is not None and dtype_name(ins.in_dtype) == "float32":
        cyc *= 4
    return cyc


class ProfileData:
    """Per-instruction arrays for one launch, plus the Launch and Estimate themselves."""

    def __init__(self, launch: Any, est: Any) -> None:
        self.launch = launch
        self.est = est
        self.arch = launch.arch
        stream = launch.stream
        timings = est.timings
        n = len(stream)
        self.n = n
        self.start = np.fromiter((t.start for t in timings), dtype=np.float64, count=n)
        self.end = np.fromiter((t.end for t in timings), dtype=np.float64, count=n)
        self.wait_on = np.fromiter((t.wait_on for t in timings), dtype=np.int64, count=n)
        self.wait_ns = np.fromiter((t.wait_ns for t in timings), dtype=np.float64, count=n)
        self.core = np.fromiter((ins.core for ins in stream), dtype=np.int32, count=n)
        self.is_dma = np.fromiter((ins.engine == Engine.DMA for ins in stream), dtype=bool, count=n)
        self.total_ns = float(est.total_ns)
        self.cores = sorted(set(self.core.tolist())) if n else [0]
        self._ls: tuple[np.ndarray, np.ndarray] | None = None
        self._queues: list[str] | None = None
        self._memory: dict | None = None
        self._dma: dict[int, tuple] = {}

    def memory(self) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray, int]]:
        """`memory_series(self)`, computed once."""
        if self._memory is None:
            self._memory = memory_series(self)
        return self._memory

    def dma(self, core: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """`dma_series(self, core)`, computed once per core."""
        if core not in self._dma:
            self._dma[core] = dma_series(self, core)
        return self._dma[core]

    # ------------------------------------------------------------------ tracks
    def queue_of(self, i: int) -> str:
        q = getattr(self.est.timings[i], "queue", "") or self.launch.stream[i].attrs.get("queue", "q")
        return q

    def track_of(self, i: int, ins: Instruction) -> str:
        if ins.engine == Engine.DMA:
            return "DMA " + self.queue_of(i)
        if is_tensor_pe(ins):
            return MULTIPLY_MOVING
        if ins.engine == Engine.TENSOR:
            return MULTIPLY_MOVING
        return ins.engine

    def load_stationary(self) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) of the LoadStationary of each PE instruction (NaN where the stationary is reused).

        Taken from the timing pass when it records them (`Timed.ls_start` / `Timed.ls_end`). Otherwise: the
        timing pass charges a PE instruction max(LoadStationary, MultiplyMoving) when its stationary tile
        changes, so the LoadStationary is shown at the start of the instruction's window, for the time the
        ISA's cost rule gives it (`isa.tensor_engine.loadstationary_ns` when present, else `ls_cycles`).
        """
        if self._ls is not None:
            return self._ls
        n = self.n
        ls_s = np.full(n, np.nan)
        ls_e = np.full(n, np.nan)
        try:
            from ..isa.tensor_engine import loadstationary_ns
        except ImportError:
            loadstationary_ns = None
        last_stat: dict[int, Any] = {}
        clock = self.arch.clock_ghz.get("Tensor", 1.0)
        timings = self.est.timings
        for i, ins in enumerate(self.launch.stream):
            if not is_tensor_pe(ins):
                continue
            t = timings[i]
            given_s = getattr(t, "ls_start", None)
            if given_s is not None:
                given_e = getattr(t, "ls_end", None)
                if given_e is not None and given_e > given_s:
                    ls_s[i], ls_e[i] = given_s, given_e
                continue
            sid = ins.attrs.get("stationary_id")
            c = ins.core
            if sid is not None and last_stat.get(c) == sid:
                continue  # same stationary tile as the previous matmul of this core: no reload
            last_stat[c] = sid
            dur = float(loadstationary_ns(ins, self.arch)) if loadstationary_ns is not None else ls_cycles(ins) / clock
            ls_s[i] = t.start
            ls_e[i] = t.start + min(dur, max(t.end - t.start, 0.0)) if t.end > t.start else t.start + dur
        self._ls = (ls_s, ls_e)
        return self._ls

    def queues(self) -> list[str]:
        if self._queues is None:
            seen: dict[str, None] = {}
            for i in np.flatnonzero(self.is_dma):
                seen.setdefault(self.queue_of(int(i)), None)
            self._queues = list(seen)
        return self._queues

    def engine_intervals(self, core: int) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """(track, starts, ends) for every track of one core (instruction order)."""
        stream = self.launch.stream
        by: dict[str, list[int]] = {}
        sel = np.flatnonzero(self.core == core)
        for i in sel:
            i = int(i)
            by.setdefault(self.track_of(i, stream[i]), []).append(i)
        ls_s, ls_e = self.load_stationary()
        ls_idx = [i for i in sel if not np.isnan(ls_s[i])]
        if ls_idx:
            idx = np.array(ls_idx, dtype=np.int64)
            yield LOAD_STATIONARY, ls_s[idx], ls_e[idx]
        for name, idx_list in by.items():
            idx = np.array(idx_list, dtype=np.int64)
            yield name, self.start[idx], self.end[idx]

    def wait_desc(self, i: int) -> str:
        w = int(self.wait_on[i])
        if w < 0:
            return ""
        p = self.launch.stream[w]
        where = self.track_of(w, p)
        return f"#{w} {p.opcode} on {where} @ {short_loc(p.loc)}"


def union_length(starts: np.ndarray, ends: np.ndarray) -> float:
    """Total length of the union of intervals [starts[i], ends[i])."""
    if len(starts) == 0:
        return 0.0
    order = np.argsort(starts, kind="stable")
    s = starts[order]
    e = np.maximum.accumulate(ends[order])
    # a new merged interval starts where s exceeds the running max end of everything before it
    prev_end = np.concatenate(([-np.inf], e[:-1]))
    new = s > prev_end
    seg_start = s[new]
    # the end of each merged segment is the running max just before the next segment starts
    idx_new = np.flatnonzero(new)
    seg_end = e[np.concatenate((idx_new[1:] - 1, [len(e) - 1]))]
    return float(np.sum(seg_end - seg_start))


def step_series(times: np.ndarray, deltas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A step function from (time, delta) events: unique sorted times and the value from each time on."""
    if len(times) == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(times, kind="stable")
    t = times[order]
    v = np.cumsum(deltas[order])
    # keep the last value at each distinct time
    last = np.concatenate((t[1:] != t[:-1], [True]))
    return t[last], v[last]


def downsample(t: np.ndarray, v: np.ndarray, max_points: int, how: str = "max") -> tuple[np.ndarray, np.ndarray]:
    """At most `max_points` points of a step function: per time bin, its max (or time-weighted mean)."""
    if max_points <= 0 or len(t) <= max_points:
        return t, v
    lo, hi = float(t[0]), float(t[-1])
    edges = np.linspace(lo, hi, max_points + 1)
    b = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, max_points - 1)
    out_v = np.full(max_points, np.nan)
    if how == "max":
        np.fmax.at(out_v, b, v)
    else:
        dt = np.diff(np.concatenate((t, [hi])))
        num = np.zeros(max_points)
        den = np.zeros(max_points)
        np.add.at(num, b, v * dt)
        np.add.at(den, b, dt)
        last = np.full(max_points, np.nan)
        last[b] = v  # fancy assignment keeps the last value per bin
        with np.errstate(invalid="ignore", divide="ignore"):
            out_v = np.where(den > 0, num / np.where(den > 0, den, 1.0), last)
    # carry values into empty bins
    keep = ~np.isnan(out_v)
    return edges[:-1][keep], out_v[keep]


def memory_series(data: ProfileData) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray, int]]:
    """On-chip bytes per partition in use over time, per (buffer kind, core): (times, values, capacity).

    The allocation units are the ones `trnsim.core.liveness` uses (a tile, or one block of a tile with
    leading block dimensions); a unit is in use from the start of the first instruction that touches it to
    the end of the last one, in modelled time.
    """
    from ..core.liveness import _units

    first: dict[tuple[int, int], int] = {}
    last: dict[tuple[int, int], int] = {}
    meta: dict[int, tuple[str, int, int, int]] = {}  # storage id -> (kind, core, block bytes, row bytes)
    for pos, ins in enumerate(data.launch.stream):
        for acc in ins.reads + ins.writes:
            st = acc.storage
            if not st.buffer.on_chip:
                continue
            if st.id not in meta:
                meta[st.id] = (st.buffer.kind, st.core, st.block_bytes if st.nblocks > 1 else st.row_bytes, 0)
            for u in _units(acc, st):
                key = (st.id, u)
                if key not in first:
                    first[key] = pos
                last[key] = pos
    arch = data.arch
    caps = {"sbuf": arch.sbuf_usable_bytes_per_partition, "psum": arch.psum_bytes_per_partition}
    groups: dict[tuple[str, int], list[tuple[float, float, int]]] = {}
    for key, f in first.items():
        kind, core, b, _ = meta[key[0]]
        groups.setdefault((kind, core), []).append((data.start[f], data.end[last[key]], b))
    out = {}
    for (kind, core), items in sorted(groups.items()):
        arr = np.array(items, dtype=np.float64)
        times = np.concatenate((arr[:, 0], arr[:, 1]))
        deltas = np.concatenate((arr[:, 2], -arr[:, 2]))
        t, v = step_series(times, deltas)
        out[(kind, core)] = (t, v, caps.get(kind, 0))
    return out


def dma_series(data: ProfileData, core: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(pending DMA count, DMA throughput in bytes/ns = GB/s) over time for one core.

    A DMA is pending from its issue (`Timed.issue` when the timing pass records it, else its start less the
    fixed DMA latency) to its end; throughput spreads each transfer's bytes evenly over [start, end).
    """
    idx = np.flatnonzero(data.is_dma & (data.core == core))
    if len(idx) == 0:
        z = np.zeros(0)
        return (z, z), (z, z)
    fixed = float(data.arch.dma_fixed_ns)
    timings = data.est.timings
    stream = data.launch.stream
    issue = np.array(
        [
            getattr(timings[i], "issue", None) if getattr(timings[i], "issue", None) is not None
            else max(0.0, data.start[i] - fixed)
            for i in idx
        ],
        dtype=np.float64,
    )
    s, e = data.start[idx], data.end[idx]
    nbytes = np.array([instruction_bytes(stream[i]) for i in idx], dtype=np.float64)
    pend = step_series(np.concatenate((issue, e)), np.concatenate((np.ones(len(idx)), -np.ones(len(idx)))))
    rate = nbytes / np.maximum(e - s, 1e-9)
    thr = step_series(np.concatenate((s, e)), np.concatenate((rate, -rate)))
    return pend, (thr[0], np.maximum(thr[1], 0.0))
