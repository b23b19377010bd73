"""Collective communication between the ranks (NeuronCores) of one launch (current API `nki.collectives`).

The rendezvous (every rank of a replica group reaching its k-th collective) is the launcher's job; once all
ranks have arrived, `run_collective` checks the operands of every rank, computes the result with NumPy
(reductions in fp32) and emits one record per rank, tagged with that rank's core, so the timing model and
profiles see the collective on every participating core.
Cost: a ring algorithm over the DMA engines: (ranks - 1) / ranks of the data crosses the link per step, at
the DMA bandwidth, plus the fixed DMA latency per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core import dtypes
from ..core.context import current
from ..core.errors import NkiValidationError
from ..core.instruction import Engine, Instruction
from ..core.source import SourceLoc
from ..core.tensor import Tensor
from ..timing.arch import Arch
from . import alu
from . import common as c


def collective_cost(instr: Instruction, arch: Arch) -> float:
    ranks = max(int(instr.attrs.get("ranks", 2)), 1)
    nbytes = instr.attrs.get("bytes", 0)
    steps = max(ranks - 1, 1)
    per_step = nbytes / ranks
    bw = arch.dma_bytes_per_ns_per_engine * max(1, arch.dma_engines // 2)
    return steps * (per_step / bw + arch.dma_fixed_ns / 4)


COLLECTIVE = c.spec("collective", Engine.DMA, "COLLECTIVE", collective_cost, "collective among the ranks of a launch")

REDUCE_OPS = ("add", "maximum", "minimum")


class RankCall:
    """One rank's arguments to a collective."""

    __slots__ = ("rank", "srcs", "dsts", "loc", "extra")

    def __init__(self, rank: int, srcs: Sequence[Tensor], dsts: Sequence[Tensor], loc: SourceLoc, extra: dict) -> None:
        self.rank, self.srcs, self.dsts, self.loc, self.extra = rank, list(srcs), list(dsts), loc, extra


def _check_group(kind: str, calls: list[RankCall], api: str) -> None:
    first = calls[0]
    for call in calls:
        for nm, ts in (("srcs", call.srcs), ("dsts", call.dsts)):
            for i, t in enumerate(ts):
                c.check_tensor(t, api, f"{nm}[{i}]", call.loc)
                if t.storage.buffer.kind == "psum":
                    raise NkiValidationError(
                        f"{api}: collective operands must be in HBM or SBUF, '{nm}[{i}]' of rank {call.rank} is in PSUM",
                        code="err_unsupported_memory",
                        values={nm: t.storage.name, "rank": call.rank},
                        loc=call.loc,
                    )
        kinds = {t.storage.buffer.kind for t in call.srcs + call.dsts}
        if len(kinds) > 1:
            raise NkiValidationError(
                f"{api}: all operands of rank {call.rank} must be in the same memory (all HBM or all SBUF), got "
                f"{sorted(kinds)}",
                code="err_unsupported_memory",
                values={"rank": call.rank, "buffers": sorted(kinds)},
                loc=call.loc,
            )
        if len(call.srcs) != len(first.srcs) or len(call.dsts) != len(first.dsts):
            raise NkiValidationError(
                f"{api}: rank {call.rank} passes {len(call.srcs)} srcs / {len(call.dsts)} dsts, rank {first.rank} "
                f"{len(first.srcs)} / {len(first.dsts)}",
                code="err_collective_mismatch",
                values={"rank": call.rank},
                loc=call.loc,
            )
        for i, (s, s0) in enumerate(zip(call.srcs, first.srcs)):
            if tuple(s.shape) != tuple(s0.shape) or s.dtype != s0.dtype:
                raise NkiValidationError(
                    f"{api}: srcs[{i}] of rank {call.rank} is {tuple(s.shape)} {dtypes.name_of(s.dtype)} but rank "
                    f"{first.rank} passes {tuple(s0.shape)} {dtypes.name_of(s0.dtype)}",
                    code="err_collective_mismatch",
                    values={"rank": call.rank},
                    loc=call.loc,
                )


def _shape_error(api: str, call: RankCall, what: str, got: Any, want: Any) -> NkiValidationError:
    return NkiValidationError(
        f"{api}: {what} of rank {call.rank} has shape {got}, expected {want}",
        code="err_shape_mismatch",
        values={"got": got, "expected": want, "rank": call.rank},
        loc=call.loc,
    )


def run_collective(
    kind: str, calls: list[RankCall], *, op: Any = None, api: str = "", guard: Any = None
) -> list[Instruction]:
    """Compute collective `kind` for the ranks of one replica group (calls sorted by position in the group).

    `guard(call)`, if given, is called as that rank just before its results are written and returns a
    callable run after the write (the launcher's cross-core race check)."""
    api = api or f"nki.collectives.{kind}"
    run = current()
    _check_group(kind, calls, api)
    n = len(calls)
    opname = alu.op_name(op) if op is not None else ""
    if kind in ("all_reduce", "reduce_scatter", "permute_reduce") and opname not in REDUCE_OPS:
        raise NkiValidationError(
            f"{api}: op must be one of nl.add / nl.maximum / nl.minimum, got {opname or op!r}",
            code="err_invalid_operator",
            values={"op": opname},
            loc=calls[0].loc,
        )
    dim = int(calls[0].extra.get("collective_dim", 0))
    results: dict[int, list[np.ndarray | None]] = {}
    if run.numerics:
        vals = [[dtypes.to_fp32(c.read_operand(s, api, "srcs", call.loc)) if kind not in _RAW else
                 c.read_operand(s, api, "srcs", call.loc) for s in call.srcs] for call in calls]
        for ri, call in enumerate(calls):
            outs: list[np.ndarray | None] = []
            for j, d in enumerate(call.dsts):
                outs.append(_compute(kind, opname, vals, ri, j, n, dim, call, d, api, calls))
            results[ri] = outs
    else:
        for ri, call in enumerate(calls):
            for j, d in enumerate(call.dsts):
                _compute_shape_only(kind, calls, ri, j, n, dim, call, d, api)
    instrs = []
    prev_core = run.core
    try:
        for ri, call in enumerate(calls):
            run.core = call.rank
            after = guard(call) if guard is not None else None
            if run.numerics:
                for d, v in zip(call.dsts, results[ri]):
                    if v is not None:
                        d.write(np.asarray(v).reshape(d.shape))
            nbytes = sum(t.size * t.itemsize for t in call.srcs)
            instrs.append(
                c.emit(
                    COLLECTIVE,
                    call.loc,
                    call.srcs + _peer_reads(kind, calls, call),
                    call.dsts,
                    partitions=min(c.PMAX, call.srcs[0].shape[0]) if call.srcs and call.srcs[0].shape else 1,
                    free=call.srcs[0].free_size if call.srcs else 0,
                    in_dtype=call.srcs[0].dtype if call.srcs else None,
                    out_dtype=call.dsts[0].dtype if call.dsts else None,
                    attrs={"kind": kind, "op": opname, "ranks": n, "bytes": nbytes, "queue": "qCollective",
                           "direction": "collective"},
                )
            )
            if after is not None:
                after()
    finally:
        run.core = prev_core
    return instrs


_RAW = ("all_gather", "all_to_all", "permute", "all_gather_v", "all_to_all_v")


def _peer_reads(kind: str, calls: list[RankCall], call: RankCall) -> list[Tensor]:
    """The other ranks' source tensors whose data this rank's result depends on. They are part of the rank's record
    so that the timing model makes the collective wait for the peers' data (and the peers' later writes to those
    sources wait for it): the cross-core dependencies of a collective."""
    if kind in ("permute", "permute_reduce"):
        src = call.extra.get("sources", {}).get(call.rank)
        return [t for cl in calls if cl.rank == src and cl is not call for t in cl.srcs]
    return [t for cl in calls if cl is not call for t in cl.srcs]


def _reduce(opname: str, arrays: list[np.ndarray]) -> np.ndarray:
    out = arrays[0]
    for a in arrays[1:]:
        out = alu.apply_binary(opname, out, a)
    return out


def _compute(kind, opname, vals, ri, j, n, dim, call, d, api, calls) -> np.ndarray | None:
    if kind == "all_reduce":
        res = _reduce(opname, [v[j] for v in vals])
        if d.size != res.size:
            raise _shape_error(api, call, f"dsts[{j}]", tuple(d.shape), vals[ri][j].shape)
        return res
    if kind == "all_gather":
        res = np.concatenate([v[j] for v in vals], axis=dim)
        if tuple(d.shape) != res.shape:
            raise _shape_error(api, call, f"dsts[{j}]", tuple(d.shape), res.shape)
        return res
    if kind == "reduce_scatter":
        full = _reduce(opname, [v[j] for v in vals])
        if full.shape[dim] % n:
            raise _shape_error(api, call, f"srcs[{j}]", full.shape, f"a multiple of {n} along dim {dim}")
        part = np.split(full, n, axis=dim)[ri]
        if tuple(d.shape) != part.shape:
            raise _shape_error(api, call, f"dsts[{j}]", tuple(d.shape), part.shape)
        return part
    if kind == "all_to_all":
        pieces = [np.split(v[j], n, axis=dim)[ri] for v in vals]
        res = np.concatenate(pieces, axis=dim)
        if tuple(d.shape) != res.shape:
            raise _shape_error(api, call, f"dsts[{j}]", tuple(d.shape), res.shape)
        return res
    if kind in ("permute", "permute_reduce"):
        sources = call.extra.get("sources", {})
        src_rank = sources.get(call.rank)
        if src_rank is None:
            return None  # nobody sends to this rank: dst untouched
        si = next(i for i, cl in enumerate(calls) if cl.rank == src_rank)
        res = vals[si][j]
        if kind == "permute_reduce":
            other = call.extra["srcs1"][j]
            res = alu.apply_binary(opname, dtypes.to_fp32(res), dtypes.to_fp32(c.read_operand(other, api, "srcs1", call.loc)))
        if d.size != res.size:
            raise _shape_error(api, call, f"dsts[{j}]", tuple(d.shape), res.shape)
        return res
    raise NkiValidationError(f"{api}: unknown collective {kind}", loc=call.loc)


def _compute_shape_only(kind, calls, ri, j, n, dim, call, d, api) -> None:
    s = call.srcs[j] if j < len(call.srcs) else None
    if s is None:
        return
    shp = list(s.shape)
    if kind == "all_gather":
        shp[dim] *= n
    elif kind == "reduce_scatter":
        shp[dim] //= n
    if kind in ("all_gather", "reduce_scatter", "all_to_all") and tuple(d.shape) != tuple(shp):
        raise _shape_error(api, call, f"dsts[{j}]", tuple(d.shape), tuple(shp))


# ============================================================================ variable-size collectives
V_KINDS = ("all_gather_v", "all_to_all_v")


class VMeta:
    """One rank's metadata tensor of all_gather_v / all_to_all_v, as uint32 rows of `group` columns:
    0 send counts, 1 send displacements, 2 recv counts (an output unless recv_counts_known), 3 recv
    displacements (only with has_rdispls). Counts and displacements are in elements of the flat, row-major src /
    dst."""

    __slots__ = ("tensor", "rows", "cols")

    def __init__(self, tensor: Tensor, rows: np.ndarray, cols: int) -> None:
        self.tensor, self.rows, self.cols = tensor, rows, cols

    def row_view(self, r: int) -> Tensor:
        t = self.tensor
        key = (Ellipsis, r, slice(None))
        return t.same_kind(t.storage, t.array[key], t.wmask[key] if t.wmask is not None else None)


def check_metadata(meta: Any, n: int, has_rdispls: bool, api: str, loc: SourceLoc) -> Tensor:
    """Static checks of a metadata tensor: uint32, contiguous, (rows, n) in HBM or (1, rows, n) in SBUF."""
    t = c.check_tensor(meta, api, "metadata_tensor", loc)
    rows = 4 if has_rdispls else 3
    kind = t.storage.buffer.kind
    want = (rows, n) if kind == "hbm" else (1, rows, n)
    if t.dtype != np.uint32:
        raise NkiValidationError(
            f"{api}: metadata_tensor must be uint32, got {dtypes.name_of(t.dtype)}",
            code="err_unsupported_dtype",
            values={"metadata_tensor": dtypes.name_of(t.dtype)},
            loc=loc,
            hint="reinterpret an int32 tensor with .view(nl.uint32)",
        )
    if kind == "psum":
        raise NkiValidationError(
            f"{api}: metadata_tensor must be in HBM or SBUF, not PSUM", code="err_unsupported_memory", loc=loc
        )
    if tuple(t.shape) != want:
        raise NkiValidationError(
            f"{api}: metadata_tensor in {t.storage.buffer.name} must have shape {want} ({rows} rows: send counts, "
            f"send displacements, recv counts" + (", recv displacements" if has_rdispls else "")
            + f"; one column per rank of the {n}-rank replica group), got {tuple(t.shape)}",
            code="err_shape_mismatch",
            values={"metadata_tensor": tuple(t.shape), "expected": want, "has_rdispls": has_rdispls},
            loc=loc,
        )
    if t.index is not None or not t.array.flags.c_contiguous:
        raise NkiValidationError(
            f"{api}: metadata_tensor must be laid out contiguously in memory", code="err_invalid_access_pattern",
            loc=loc,
        )
    return t


def _raw_flat(t: Tensor) -> tuple[np.ndarray, np.ndarray | None]:
    """A tensor's values and written bits, flattened in row-major element order (no uninitialised-read report)."""
    vals = t.read().reshape(-1)
    wm = t.wmask
    if wm is not None:
        wm = (wm[t.index] if t.index is not None else wm).reshape(-1)
    return vals, wm


def _warn_unwritten(wm: np.ndarray | None, lo: int, hi: int, what: str, t: Tensor, api: str, loc: SourceLoc) -> None:
    if wm is None or hi <= lo:
        return
    w = wm[lo:hi]
    if w.size and not w.min():
        bad = int(w.size - np.count_nonzero(w))
        current().warn(
            "warn_uninitialized_read",
            f"{api} reads {bad} of {hi - lo} elements of {what} ('{t.storage.name}', {t.storage.buffer.name}) that "
            f"were never written; on hardware they hold garbage",
            loc,
        )


def read_metadata(call: RankCall, meta: Tensor, n: int, api: str) -> VMeta:
    """The input rows of a rank's metadata (row 2, recv counts, is never read)."""
    vals, wm = _raw_flat(meta)
    rows = vals.astype(np.int64).reshape(-1, n)
    inputs = (0, 1, 3) if rows.shape[0] > 3 else (0, 1)
    for r in inputs:
        _warn_unwritten(wm, r * n, (r + 1) * n, f"metadata row {r}", meta, api, call.loc)
    return VMeta(meta, rows, n)


def _v_error(api: str, call: RankCall, msg: str, **values: Any) -> NkiValidationError:
    return NkiValidationError(f"{api}: rank {call.rank}: {msg}", code="err_collective_metadata",
                              values={"rank": call.rank, **values}, loc=call.loc)


def run_collective_v(kind: str, calls: list[RankCall], *, api: str, has_rdispls: bool, recv_counts_known: bool,
                     guard: Any = None) -> list[Instruction]:
    """all_gather_v / all_to_all_v over flat element buffers, driven by every rank's metadata tensor.

    all_gather_v: the sender's single chunk src[send_displ[0] : + send_count[0]] goes to every rank;
    all_to_all_v: rank s sends src[send_displs[j] : + send_counts[j]] to the rank at group position j. The chunk
    from the rank at position s lands at dst[recv_displs[s] : ...] (has_rdispls) or dst[s * slot : ...] with
    slot = dst elements / group size; unless recv_counts_known, row 2 of every receiver's metadata gets the
    received counts. Data is moved bit-exactly (no dtype conversion)."""
    run = current()
    n = len(calls)
    for call in calls:
        if len(call.srcs) != 1 or len(call.dsts) != 1:
            raise _v_error(api, call, f"srcs and dsts must each hold exactly one tensor, got {len(call.srcs)} / "
                           f"{len(call.dsts)}")
        for nm, t in (("srcs[0]", call.srcs[0]), ("dsts[0]", call.dsts[0])):
            c.check_tensor(t, api, nm, call.loc)
            if t.storage.buffer.kind != "hbm":
                raise NkiValidationError(
                    f"{api}: {nm} of rank {call.rank} must be in HBM, '{t.storage.name}' is in "
                    f"{t.storage.buffer.name.upper()}",
                    code="err_unsupported_memory", values={nm: t.storage.name, "rank": call.rank}, loc=call.loc,
                )
        if call.srcs[0].dtype != calls[0].srcs[0].dtype or call.dsts[0].dtype != call.srcs[0].dtype:
            raise NkiValidationError(
                f"{api}: every rank's src and dst must have one dtype (data moves as raw elements); rank "
                f"{call.rank} has src {dtypes.name_of(call.srcs[0].dtype)} / dst {dtypes.name_of(call.dsts[0].dtype)}, "
                f"rank {calls[0].rank} src {dtypes.name_of(calls[0].srcs[0].dtype)}",
                code="err_collective_mismatch", values={"rank": call.rank}, loc=call.loc,
            )
    metas: list[VMeta] = []
    received: list[list[int]] = [[0] * n for _ in range(n)]  # received[r][s]: elements rank r gets from s
    updates: list[tuple[np.ndarray, np.ndarray] | None] = [None] * n
    if run.numerics:
        metas = [read_metadata(call, call.extra["metadata"], n, api) for call in calls]
        srcs = [_raw_flat(call.srcs[0]) for call in calls]
        chunks: list[list[tuple[int, int]]] = [[(0, 0)] * n for _ in range(n)]  # chunks[s][r] = (displ, count)
        for s, call in enumerate(calls):
            m = metas[s].rows
            size = call.srcs[0].size
            for r in range(n):
                col = 0 if kind == "all_gather_v" else r
                cnt, dsp = int(m[0, col]), int(m[1, col])
                if dsp + cnt > size:
                    what = "send_count / send_displ (column 0)" if kind == "all_gather_v" else (
                        f"send_counts[{r}] / send_displs[{r}]")
                    raise _v_error(api, call, f"{what} = {cnt} / {dsp} reach element {dsp + cnt} of its src, which "
                                   f"has {size} elements", count=cnt, displ=dsp, size=size)
                chunks[s][r] = (dsp, cnt)
                _warn_unwritten(srcs[s][1], dsp, dsp + cnt, "the chunk it sends", call.srcs[0], api, call.loc)
        for r, call in enumerate(calls):
            d = call.dsts[0]
            size = d.size
            if not has_rdispls and size % n:
                raise _v_error(api, call, f"dst has {size} elements, which do not split into {n} equal slots (one "
                               f"per rank) without recv displacements", size=size)
            slot = size // n
            flat = np.zeros(size, dtype=d.dtype)
            mask = np.zeros(size, dtype=bool)
            for s in range(n):
                dsp, cnt = chunks[s][r]
                received[r][s] = cnt
                if not cnt:
                    continue
                if has_rdispls:
                    at = int(metas[r].rows[3, s])
                    if at + cnt > size:
                        raise _v_error(api, call, f"the {cnt} elements from rank {calls[s].rank} at recv_displs[{s}] = "
                                       f"{at} reach element {at + cnt} of its dst, which has {size}", size=size)
                else:
                    at = s * slot
                    if cnt > slot:
                        raise _v_error(api, call, f"rank {calls[s].rank} sends {cnt} elements but dst slots hold "
                                       f"{slot} (dst elements {size} / {n} ranks)", count=cnt, slot=slot)
                if mask[at : at + cnt].any():
                    raise _v_error(api, call, f"the chunks from two ranks overlap in dst at elements [{at}, "
                                   f"{at + cnt})")
                flat[at : at + cnt] = srcs[s][0][dsp : dsp + cnt]
                mask[at : at + cnt] = True
            updates[r] = (flat, mask)
    instrs = []
    prev_core = run.core
    try:
        for r, call in enumerate(calls):
            run.core = call.rank
            meta = call.extra["metadata"]
            after = guard(call) if guard is not None else None
            d = call.dsts[0]
            if updates[r] is not None:
                flat, mask = updates[r]
                if mask.any():
                    d.write(flat.reshape(d.shape), where=mask.reshape(d.shape))
                if not recv_counts_known:
                    row = metas[r].row_view(2)
                    row.write(np.asarray(received[r], dtype=np.uint32).reshape(row.shape))
            got = sum(received[r]) if run.numerics else sum(cl.srcs[0].size for cl in calls)
            reads = [call.srcs[0], meta] + [cl.srcs[0] for cl in calls if cl is not call]
            writes = [d] + ([meta] if not recv_counts_known else [])
            instrs.append(
                c.emit(
                    COLLECTIVE, call.loc, reads, writes, partitions=1, free=d.size,
                    in_dtype=call.srcs[0].dtype, out_dtype=d.dtype,
                    attrs={"kind": kind, "op": "", "ranks": n, "bytes": int(got) * d.itemsize,
                           "queue": "qCollective", "direction": "collective"},
                )
            )
            if after is not None:
                after()
    finally:
        run.core = prev_core
    return instrs
