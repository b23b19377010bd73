"""On-chip capacity from liveness, the way the compiler allocates.

Each on-chip allocation unit (a whole tile, or one block of a tile with leading block dimensions) is live
from the first instruction that touches it to the last one. Blocks that are written and consumed inside
one loop iteration therefore never overlap and count once, however many blocks were declared. The peak
of the sum of live bytes per partition is compared with the target's SBUF / PSUM capacity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

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


class StreamUses(NamedTuple):
    """Where each storage is used in a stream (`scan_uses`): what the capacity check, the launch's written-parameter
    check and the timing pass (`trnsim.timing.model`) all need, found in one pass."""

    uses: dict[int, list[int]]  # on-chip storage id -> its positions, ascending (first / last use: [0] / [-1])
    stor: dict[int, Storage]  # on-chip storage id -> its Storage (both dicts in first-access order)
    written: dict[int, int]  # id of every storage ever written -> the last position that writes it
    firsts: list[list[int] | None]  # per position: the on-chip storages first accessed there, or None
    blocks: bool  # does some on-chip storage have leading block dimensions?
    length: int  # the stream's length when it was scanned


def scan_uses(stream: list[Instruction]) -> StreamUses:
    """One pass over every access of the stream (see `StreamUses`)."""
    stor: dict[int, Storage] = {}
    written: dict[int, int] = {}
    # per storage: its positions (on-chip), or () for an HBM storage (skipped without looking at its kind again)
    seen: dict[int, Any] = {}
    firsts: list[list[int] | None] = [None] * len(stream)
    blocks = False
    seen_get = seen.get
    for pos, ins in enumerate(stream):
        new = None
        wrs = ins.writes
        for acc in wrs:
            written[acc.storage.id] = pos
        for accs in (ins.reads, wrs):  # reads, then writes: the order of `firsts`
            for acc in accs:
                sid = acc.storage.id
                u = seen_get(sid)
                if u:
                    if u[-1] != pos:  # (not counted at this position yet)
                        u.append(pos)
                elif u is None:
                    st = acc.storage
                    if st.buffer.kind == "hbm":
                        seen[sid] = ()
                        continue
                    seen[sid] = [pos]
                    stor[sid] = st
                    if new is None:
                        new = firsts[pos] = [sid]
                    else:
                        new.append(sid)
                    if st.nblocks > 1:
                        blocks = True
    uses = {sid: u for sid, u in seen.items() if u}
    return StreamUses(uses, stor, written, firsts, blocks, len(stream))


def _units(acc, st: Storage) -> range:
    if st.nblocks <= 1:
        return range(0, 1)
    bb = st.block_bytes
    lo = acc.f_lo // bb
    hi = (max(acc.f_hi - 1, acc.f_lo)) // bb
    return range(lo, hi + 1)


def usage_timelines(
    stream: list[Instruction], capacities: dict[str, int], uses: StreamUses | None = None
) -> list[UsageTimeline]:
    """Compute SBUF/PSUM bytes-per-partition usage over the stream for each core. `uses`: `scan_uses(stream)` when
    the caller has it (without block dimensions, every tile is one unit live from its first to its last use)."""
    first: dict[tuple[int, int], int] = {}
    last: dict[tuple[int, int], int] = {}
    unit_bytes: dict[tuple[int, int], int] = {}
    owner: dict[int, Storage] = {}
    if uses is not None and not uses.blocks and uses.length == len(stream):
        owner = uses.stor
        for sid, u in uses.uses.items():
            key = (sid, 0)
            first[key] = u[0]
            last[key] = u[-1]
            unit_bytes[key] = owner[sid].row_bytes
        return _timelines(len(stream), capacities, first, last, unit_bytes, owner)
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
    return _timelines(len(stream), capacities, first, last, unit_bytes, owner)


def _timelines(n: int, capacities: dict[str, int], first: dict, last: dict, unit_bytes: dict,
               owner: dict[int, Storage]) -> list[UsageTimeline]:
    """Usage timelines of allocation units live from `first[key]` to `last[key]` (keys in first-use order)."""
    out: list[UsageTimeline] = []
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


def check_capacity(
    stream: list[Instruction], capacities: dict[str, int], uses: StreamUses | None = None
) -> list[UsageTimeline]:
    """Raise NkiMemoryError when live on-chip data exceeds a capacity; return the usage timelines."""
    tls = usage_timelines(stream, capacities, uses)
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
