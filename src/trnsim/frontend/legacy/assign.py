"""Tile assignment `t[...] = value` and in-place updates `t[...] += value` of the legacy API.

The compiler writes an instruction's result straight into the assigned tile, so trnsim does the same:
when `value` is the fresh result of the instruction just emitted, that instruction is *retargeted* (its
destination becomes the assigned region, its values are re-rounded from the fp32 engine result into the
destination dtype) instead of emitting a copy. `psum[...] += nisa.nc_matmul(...)` becomes a matmul that
accumulates into the PSUM region (elements not yet written are overwritten).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...core.context import current
from ...core.errors import NkiValidationError
from ...core.instruction import Access, Engine
from ...core.memory import ACC_OPEN, WRITTEN
from ...core.source import caller_location
from ...core.tensor import Tensor
from ...isa import dma, vector_engine
from .indexing import IndexExpr
from .lowering import NO_MASK, DeadTile, operand
from .tensor import DynamicIndex, LazyAccess, LegacyTensor, resolve_access

_MATMUL_OPS = ("MATMUL", "TRANSPOSE")


def _dst_view(target: LegacyTensor, key: tuple, minfo) -> Tensor:
    ranges, rest = minfo
    if len(key) == 1 and key[0] is Ellipsis:  # not `==`: index expressions compare lazily
        key = ()
    ref = target[key] if key else target
    if isinstance(ref, LazyAccess):
        t, where = resolve_access(ref.base, ref.key, ranges, rest)
        if where is not None:
            from .lowering import MaskedView

            mv = MaskedView.__new__(MaskedView)
            Tensor.__init__(mv, t.storage, t.mem, t.array, t.wmask, t.index)
            mv.where_mask = where
            return mv
        return t
    return operand(ref, (ranges, rest))


def _fresh(value: Any, run) -> bool:
    """Is `value` the result of the run's latest instruction (which can then write the destination directly)?"""
    prod = getattr(value, "producer", None)
    if prod is None or not isinstance(value, Tensor):
        return False
    stream = run.stream
    return bool(stream) and stream[-1] is prod and bool(prod.writes) and prod.writes[0].storage is value.storage


def _same_plain_tiles(dst: Any, value: Any) -> bool:
    """Are `dst` and `value` whole-view legacy tiles of the same shape, without block dims, `value` unmasked? Then
    `dst[...] = value` / `dst[...] += value` has no subscript to resolve, no mask to apply and no shapes to check."""
    return (
        type(value) is LegacyTensor
        and type(dst) is LegacyTensor
        and value.valid is None
        and value.index is None
        and dst.index is None
        and value.storage.nblocks <= 1
        and dst.storage.nblocks <= 1
        and value.array.shape == dst.array.shape
    )


def _check_shapes(dst: Tensor, src_shape: tuple[int, ...], loc=None) -> None:
    """`loc` None: the kernel line is looked up only if the shapes do not fit (from the same call stack)."""
    ds, ss = tuple(dst.shape), tuple(src_shape)
    if ds == ss or int(math.prod(ds)) == int(math.prod(ss)) and len(ds) != len(ss):
        return
    try:
        b = np.broadcast_shapes(ds, ss)
    except ValueError:
        b = None
    if b != ds:
        raise NkiValidationError(
            f"cannot assign a value of shape {ss} to a destination of shape {ds} (only broadcasting the value to "
            f"the destination is allowed)",
            code="err_store_dst_shape_smaller_than_other_shape",
            values={"dst": ds, "value": ss},
            loc=loc or caller_location(),
        )


def assign(target: LegacyTensor, key: tuple, value: Any) -> None:
    """`target[key] = value`."""
    if getattr(value, "_inplace_done", False):
        _clear_done(value)
        return
    if isinstance(value, DeadTile):
        return  # the value's instruction was masked off (always-false mask): nothing to assign
    run = current()
    if not isinstance(key, tuple):
        key = (key,)
    if len(key) == 1 and key[0] is Ellipsis:
        key = ()
    if _same_plain_tiles(target, value) and _fresh(value, run) and (not key or _selects_all(target, key)):
        # `t[...] = fresh result` of the same shape: what the general path below does (the destination and the
        # source are the whole tiles, no subscript to resolve, no mask, shapes match), without its analysis
        if _take_over(target, value, value, run):
            return
    blocks = _several_blocks(target, key)
    if blocks is not None:
        _assign_blocks(blocks, value, caller_location())
        return
    if not isinstance(value, (Tensor, LazyAccess)):
        from . import isa as nisa_legacy

        dst = _dst_view(target, key, NO_MASK)
        nisa_legacy._memset_into(dst, value, caller_location())
        return
    _no_dynamic_on_chip_copy(target, key, value)
    minfo = getattr(value, "valid", None) or NO_MASK
    dst = _dst_view(target, key, minfo)
    if isinstance(value, Tensor) and _fresh(value, run):
        if _take_over(dst, operand(value, minfo), value, run, check_shapes=True):
            return
    _copy(dst, value, caller_location())


#: (ids of a subscript's index expressions, target layout) -> (the subscript, does it select all of the target in
#: order?); the subscript is kept so that its expressions' ids stay theirs
_SELECTS_ALL: dict[tuple, tuple[tuple, bool]] = {}


def _selects_all(target: LegacyTensor, key: tuple) -> bool:
    """Does `target[key]` (index expressions only) select every element of `target` in order, so that assigning to
    it is assigning to `target[...]`? (`t[i.p, i.x] = nl.load(...)` with `i = nl.mgrid[0:P, 0:F]` on a [P, F]
    tile.) Answered once per expression objects and target layout: the same expressions on a tile of the same
    layout resolve to the same view."""
    for k in key:
        if type(k) is not IndexExpr:
            return False
    arr = target.array
    ck = (*map(id, key), arr.shape, arr.strides, arr.dtype)
    hit = _SELECTS_ALL.get(ck)
    if hit is None:
        view = target[key].plain_view()
        whole = (
            view is not None
            and view.index is None
            and view.array.shape == arr.shape
            and view.array.strides == arr.strides
            and view.array.__array_interface__["data"][0] == arr.__array_interface__["data"][0]
        )
        if len(_SELECTS_ALL) >= 10_000:
            _SELECTS_ALL.clear()
        hit = _SELECTS_ALL[ck] = (key, whole)
    return hit[1]


def _take_over(dst: Tensor, src: Tensor, value: Tensor, run, check_shapes: bool = False) -> bool:
    """Retarget the fresh `value`'s instruction to write `dst` (`src`: the value's part to assign); False when its
    engine cannot write dst's memory (the caller then copies). `check_shapes` False: the caller knows the shapes match."""
    prod = value.producer
    src_engine = prod.engine
    buf = dst.storage.buffer
    # Tensor engine -> PSUM, DMA -> SBUF / HBM, the other engines -> on-chip memory
    if src_engine == Engine.TENSOR:
        ok_target = buf.kind == "psum"
    elif src_engine == Engine.DMA:
        ok_target = buf.kind in ("sbuf", "hbm")
    else:
        ok_target = buf.kind != "hbm"  # (= buf.on_chip)
    if not ok_target:
        return False
    if check_shapes:
        _check_shapes(dst, src.shape)
    if run.numerics:  # (timing-only runs read no values)
        raw = value.raw
        vals = src.read() if raw is None else raw
        vshape = vals.shape
        if vshape != tuple(src.shape):
            vals = src.read()
            vshape = vals.shape
        state = WRITTEN | ACC_OPEN if prod.opcode in _MATMUL_OPS else WRITTEN
        dshape = dst.shape
        if vshape != dshape:  # (a value to broadcast, or the same elements in another shape)
            vals = np.broadcast_to(vals, dshape) if vals.size != dst.size else vals.reshape(dshape)
        dst.write(vals, state=state)
    run.retarget(prod, 0, Access(dst, False, run.check_races and bool(run.loops)))  # (accumulate, keep_tensor)
    prod.out_dtype = dst.storage.dtype
    value.producer = None
    return True


def _dynamic_key(key: tuple) -> bool:
    return any(isinstance(k, (Tensor, LazyAccess, DynamicIndex)) for k in key)


def _no_dynamic_on_chip_copy(target: LegacyTensor, key: tuple, value: Any) -> None:
    """A plain assignment between on-chip tiles cannot use runtime (tile-valued) indices on either side (only DMA
    to / from HBM can); the ISA has tensor_copy_dynamic_src / _dst for that."""
    if not target.storage.buffer.on_chip or not value.storage.buffer.on_chip:
        return
    src_dyn = isinstance(value, LazyAccess) and _dynamic_key(value.key)
    dst_dyn = _dynamic_key(key)
    if src_dyn or dst_dyn:
        api = "nisa.tensor_copy_dynamic_src" if src_dyn else "nisa.tensor_copy_dynamic_dst"
        raise NkiValidationError(
            f"cannot copy a tensor with indirect (runtime) memory references "
            f"{'from' if src_dyn else 'into'} '{(value if src_dyn else target).storage.name}' by assignment",
            code="err_copy_dynamic_indirect_indices_not_natively_supported",
            values={"dst": target.storage.name, "src": value.storage.name},
            loc=caller_location(),
            hint=f"use {api}(...) for on-chip copies at runtime offsets",
        )


def _several_blocks(target: LegacyTensor, key: tuple) -> Tensor | None:
    """`target[key]` when it is a plain view spanning several blocks of an on-chip tensor with leading block dims
    (`t[...]` of `t = nl.ndarray((B, nl.par_dim(P), F))`), whose partition axis is therefore not its first axis."""
    st = target.storage
    if st.nblocks <= 1 or not st.buffer.on_chip or target.index is not None:
        return None
    if any(not (k is None or isinstance(k, (int, np.integer, slice))) for k in key):
        return None
    ref = target[key] if key else target
    if not isinstance(ref, Tensor) or ref.index is not None or ref.partition_axis == 0:
        return None
    return ref


def _assign_blocks(ref: Tensor, value: Any, loc) -> None:
    """Assignment into several blocks at once, lowered as the compiler does: a constant is one memset over the
    partitions (all blocks' elements in each partition, like nl.zeros); a tile value is one copy per block
    (the value is indexed like the destination when it has its shape, else broadcast to every block)."""
    a = ref.partition_axis
    if not isinstance(value, (Tensor, LazyAccess)):
        from . import isa as nisa_legacy

        order = (a,) + tuple(i for i in range(ref.ndim) if i != a)
        nisa_legacy._memset_into(ref.transposed(order), value, loc)
        return
    if isinstance(value, LazyAccess):
        value = operand(value)
    lead = tuple(ref.shape[:a])
    same = tuple(value.shape) == tuple(ref.shape)
    if same and value.storage.buffer.on_chip and value.partition_axis != a:
        raise NkiValidationError(
            f"cannot assign a tile of shape {tuple(value.shape)} with {value.partitions} partitions to "
            f"'{ref.storage.name}', whose blocks {lead} are tiles of {ref.partitions} partitions",
            code="err_num_partition_mismatch",
            values={"dst": tuple(ref.shape), "value": tuple(value.shape)},
            loc=loc,
            hint="assign block by block (t[i] = ...), with values whose first dimension is the partition dimension",
        )
    for idx in np.ndindex(*lead):
        blk = ref.basic_view(idx)
        if same:
            vb = value[idx] if isinstance(value, LegacyTensor) else value.basic_view(idx)
        else:  # a new view of the value: every block copies it (no block takes over its instruction)
            vb = value.same_kind(value.storage, value.array, value.wmask, value.index)
        assign(blk, (), vb)  # type: ignore[arg-type]


def _copy(dst: Tensor, value: Any, loc) -> None:
    src = operand(value)
    src_hbm = src.storage.buffer.kind == "hbm"
    dst_hbm = dst.storage.buffer.kind == "hbm"
    _check_shapes(dst, src.shape, loc)
    if src_hbm or dst_hbm:
        if src_hbm and dst_hbm:
            dma.dma_copy(dst, src, loc=loc, api="assignment")
            return
        if dst_hbm and src.storage.buffer.kind == "psum":  # PSUM -> HBM goes through SBUF (as nl.store does)
            from .lowering import result_tile

            tmp, tv = result_tile(tuple(src.shape), src.dtype)
            vector_engine.tensor_copy(tv, src, loc=loc, api="assignment(psum->sbuf)")
            src = tmp
        dma.dma_copy(dst, src if src.size == dst.size else src.broadcast(dst.shape), loc=loc, api="assignment")
        return
    if src.size != dst.size:
        src = src.broadcast(tuple(dst.shape)) if len(src.shape) == len(dst.shape) else src
    vector_engine.tensor_copy(dst, src, loc=loc, api="assignment")


def _clear_done(value: Any) -> None:
    try:
        value._inplace_done = False
    except AttributeError:
        pass


def inplace(base: LegacyTensor, key: tuple, opname: str, value: Any) -> Any:
    """`base[key] op= value`; returns the object Python rebinds (the view, flagged as done)."""
    run = current()
    if len(key) == 1 and key[0] is Ellipsis:  # not `==`: index expressions compare lazily
        key = ()
    if isinstance(value, DeadTile):
        return _mark_done(base, key)  # masked-off instruction: nothing to accumulate
    minfo = getattr(value, "valid", None) or NO_MASK
    if (
        opname == "add"
        and isinstance(value, Tensor)
        and _fresh(value, run)
        and value.producer.opcode in _MATMUL_OPS
        and base.storage.buffer.kind == "psum"
    ):
        prod = value.producer
        if not key and _same_plain_tiles(base, value):
            dst, src = base, value  # `psum[...] += matmul` of the same shape: nothing to resolve or check
        else:
            dst = _dst_view(base, key, minfo)
            src = operand(value, minfo)
            _check_shapes(dst, src.shape)
        if run.numerics:
            vals = src.read_fp32().reshape(dst.shape)
            out = dst.direct_fp32()
            if out is not None and (dst.mem.full or dst.is_initialized()):
                np.add(out, vals, out=out)  # every element already holds a value: accumulate in place
                dst.mark_written(WRITTEN | ACC_OPEN)
            else:
                prev = dst.read_fp32()
                written = dst.wmask != 0 if dst.index is None else (dst.wmask[dst.index] != 0)
                dst.write(np.where(written, prev + vals, vals), state=WRITTEN | ACC_OPEN)
        run.retarget(prod, 0, Access(dst, True, run.check_races and bool(run.loops)))  # (accumulate, keep_tensor)
        value.producer = None
    else:
        from . import language as nl

        cur = base[key] if len(key) else base
        fn = getattr(nl, opname)
        # `t[...] += x` / `t[...] *= x` is an associative reduction: inside affine_range it is not a loop-carried
        # dependency (only other, non-accumulating accesses of t in other iterations are).
        accumulating = opname in ("add", "multiply") and run.check_races and bool(run.loops)
        if accumulating:
            run.extra["accumulate_into"] = base.storage
        try:
            res = fn(cur, value)
            assign(base, key, res)
        finally:
            if accumulating:
                run.extra.pop("accumulate_into", None)
    return _mark_done(base, key)


def _mark_done(base: LegacyTensor, key: tuple) -> Any:
    ref = base if not len(key) else base[key]
    if isinstance(ref, LazyAccess):
        return _Done(base)
    ref._inplace_done = True
    return ref


class _Done:
    """Returned by `lazy_access += value` so that Python's follow-up __setitem__ is a no-op."""

    __slots__ = ("base",)
    _inplace_done = True

    def __init__(self, base: Any) -> None:
        self.base = base
