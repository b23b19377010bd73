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
                    call.srcs,
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
