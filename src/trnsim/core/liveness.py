"""On-chip capacity from liveness, the way the compiler allocates.

Each on-chip allocation unit (a whole tile, or one block of a tile with leading block dimensions) is live
from the first instruction that touches it to the last one. Blocks that are written and consumed inside
one loop iteration therefore never overlap and count once, however many blocks were declared. The peak
of the sum of live bytes per partition is compared with the target's SBUF / PSUM capacity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import NkiMemoryError
from .instruction import Instruction
from .memory import Storage


@dataclass
class UsageTimeline:
    """Bytes per partition in use after each instruction (per core and buffer kind)."""

    kind: str
    core: int
    capacity: int
    usage: np.ndarray  # int64, len(stream) (indexed by instruction position in the per-core stream)
    peak: int = 0
    peak_at: int = -1
    live_at_peak: list[tuple[Storage, int]] = field(default_factory=list)


def _units(acc, st: Storage) -> range:
    if st.nblocks <= 1:
        return range(0, 1)
    bb = st.block_bytes
    lo = acc.f_lo // bb
    hi = (max(acc.f_hi - 1, acc.f_lo)) // bb
    return range(lo, hi + 1)


def usage_timelines(stream: list[Instruction], capacities: dict[str, int]) -> list[UsageTimeline]:
    """Compute SBUF/PSUM bytes-per-partition usage over the stream for each core."""
    first: dict[tuple[int, int], int] = {}
    last: dict[tuple[int, int], int] = {}
    unit_bytes: dict[tuple[int, int], int] = {}
    owner: dict[int, Storage] = {}
    whole_last: dict[int, int] = {}  # storage id -> last position, for on-chip tiles without blocks (one unit)
    skip: set[int] = set()  # HBM storages
    for pos, ins in enumerate(stream):
        for accs in (ins.reads, ins.writes):
            for acc in accs:
                st = acc.storage
                sid = st.id
                if sid in whole_last:  # the common case, kept to one dict lookup
                    whole_last[sid] = pos
                    continue
                if sid in skip:
                    continue
                if not st.buffer.on_chip:
                    skip.add(sid)
                    continue
                if st.nblocks <= 1:
                    key = (sid, 0)
                    first[key] = pos
                    unit_bytes[key] = st.row_bytes
                    owner[sid] = st
                    whole_last[sid] = pos
                    continue
                owner[sid] = st
                for u in _units(acc, st):
                    key = (sid, u)
                    if key not in first:
                        first[key] = pos
                        unit_bytes[key] = st.block_bytes
                    last[key] = pos
    for sid, pos in whole_last.items():
        last[(sid, 0)] = pos
    out: list[UsageTimeline] = []
    n = len(stream)
    groups: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for key in first:
        st = owner[key[0]]
        groups.setdefault((st.buffer.kind, st.core), []).append(key)
    for (kind, core), keys in sorted(groups.items()):
        # vectorised over the units: +bytes at first use, -bytes after last use, running sum
        lo = np.fromiter((first[k] for k in keys), dtype=np.int64, count=len(keys))
        hi = np.fromiter((last[k] for k in keys), dtype=np.int64, count=len(keys))
        nb = np.fromiter((unit_bytes[k] for k in keys), dtype=np.int64, count=len(keys))
        delta = np.zeros(n + 1, dtype=np.int64)
        np.add.at(delta, lo, nb)
        np.subtract.at(delta, hi + 1, nb)
        usage = np.cumsum(delta[:n])
        peak_at = int(np.argmax(usage)) if n else -1
        peak = int(usage[peak_at]) if n else 0
        live = [(owner[keys[i][0]], unit_bytes[keys[i]]) for i in np.flatnonzero((lo <= peak_at) & (peak_at <= hi))]
        merged: dict[int, tuple[Storage, int]] = {}
        for st, b in live:
            prev = merged.get(st.id)
            merged[st.id] = (st, (prev[1] if prev else 0) + b)
        tl = UsageTimeline(
            kind, core, capacities.get(kind, 0), usage, peak, peak_at, sorted(merged.values(), key=lambda x: -x[1])
        )
        out.append(tl)
    return out


def check_capacity(stream: list[Instruction], capacities: dict[str, int]) -> list[UsageTimeline]:
    """Raise NkiMemoryError when live on-chip data exceeds a capacity; return the usage timelines."""
    tls = usage_timelines(stream, capacities)
    for tl in tls:
        if tl.capacity and tl.peak > tl.capacity:
            ins = stream[tl.peak_at]
            top = ", ".join(
                f"'{st.name}' {b} B" + (f" (allocated at {st.loc.short})" if st.loc else "")
                for st, b in tl.live_at_peak[:6]
            )
            raise NkiMemoryError(
                f"{tl.kind.upper()} capacity exceeded: {tl.peak} bytes per partition are live at this instruction, "
                f"but {tl.kind.upper()} has {tl.capacity} bytes per partition; live tiles: {top}",
                code="err_sbuf_capacity_exceeded" if tl.kind == "sbuf" else "err_psum_capacity_exceeded",
                values={"live_bytes_per_partition": tl.peak, "capacity": tl.capacity, "core": tl.core},
                loc=ins.loc,
                hint="shrink tiles, reuse buffers across loop iterations, or split the work into more iterations",
            )
    return tls
