"""`neuronxcc.nki.isa` (legacy `nisa`): instructions return new tiles and take `dtype=` / `mask=`.

Each function allocates its result tile (SBUF, or PSUM for Tensor-engine results), resolves operands under
the mask and calls the one definition of the instruction in `trnsim.isa`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import numpy as np

from ...core import dtypes as _dt
from ...core.context import current
from ...core.errors import NkiTypeError, NkiUnsupportedError, NkiValidationError
from ...core.imports import lazy_module
from ...core.memory import PSUM
from ...core.source import SourceLoc, caller_location
from ...core.tensor import Tensor
from ...isa import dma as _dma
from ...isa import gpsimd_engine as _gp
from ...isa import scalar_engine as _se
from ...isa import tensor_engine as _te
from ...isa import vector_engine as _ve
from .indexing import IndexExpr, Predicate, placement, positional
from .lowering import (
    NO_MASK,
    MaskedView,
    default_binary_dtype,
    is_tensorish,
    mask_info,
    operand,
    result_tile,
    where_on_tile,
    wrap_masked_apis,
)
from .tensor import DynamicIndex, LazyAccess, LegacyTensor, resolve_access, restrict_tensor

_language = lazy_module(__package__ + ".language")  # (imports this module)


class engine(enum.IntEnum):  # noqa: N801 - NKI's name
    """Neuron Device engines."""

    unknown = 0
    tensor = 1
    scalar = 2
    gpsimd = 3
    vector = 5
    sync = 6


tensor_engine = engine.tensor
unknown_engine = engine.unknown
vector_engine = engine.vector
scalar_engine = engine.scalar
gpsimd_engine = engine.gpsimd
dma_engine = engine.sync


class reduce_cmd(enum.IntEnum):  # noqa: N801
    """Engine accumulator-register commands."""

    idle = 0
    reset = 1
    reduce = 2
    reset_reduce = 3


class dge_mode(enum.IntEnum):  # noqa: N801
    """Descriptor Generation Engine mode."""

    none = 0
    swdge = 1
    hwdge = 2
    unknown = 3


class oob_mode(enum.IntEnum):  # noqa: N801
    """Out-of-bounds access mode of indirect DMA."""

    error = 0
    skip = 1


class nc_version(enum.IntEnum):  # noqa: N801
    """NeuronCore generation."""

    gen2 = 2
    gen3 = 3


class _FP32:
    min = float(np.float32(-3.4028235e38))


fp32 = _FP32()


def get_nc_version() -> nc_version:
    """The target's NeuronCore generation (gen2 = trn1, gen3 = trn2)."""
    v = current().arch.nc_version
    return nc_version(min(v, 3)) if v <= 3 else v  # type: ignore[return-value]


def _engine_name(e: Any) -> Any:
    if isinstance(e, engine):
        return {0: None, 1: "tensor", 2: "scalar", 3: "gpsimd", 5: "vector", 6: "sync"}[int(e)]
    return e


def _hbm_error(api: str, name: str, t: Any, loc: SourceLoc) -> None:
    if is_tensorish(t) and t.buffer.kind == "hbm":
        raise NkiValidationError(
            f"nisa.{api}: operand '{name}' is in HBM; this instruction reads SBUF/PSUM",
            code="err_unsupported_memory",
            values={name: t.storage.name},
            loc=loc,
            hint="load it with nl.load / nisa.dma_copy first",
        )


def _memset_into(dst: Tensor, value: Any, loc: SourceLoc) -> None:
    if dst.storage.buffer.kind == "hbm":
        raise NkiValidationError(
            "cannot fill an HBM tensor with a value inside a kernel",
            code="err_hbm_tensor_with_init_value_not_supported",
            loc=loc,
        )
    _ve.memset(dst, value, loc=loc, api="memset")


# ------------------------------------------------------------------------------------------------ Tensor engine
def nc_matmul(
    stationary: Any,
    moving: Any,
    *,
    is_stationary_onezero: bool = False,
    is_moving_onezero: bool = False,
    is_transpose: bool = False,
    tile_position: Any = (),
    tile_size: Any = (),
    mask: Any = None,
    perf_mode: Any = None,
    **kwargs: Any,
) -> LegacyTensor:
    """stationary[K, M].T @ moving[K, N] -> new fp32 PSUM tile [M, N] (accumulate with `psum[...] += ...`)."""
    loc = caller_location()
    minfo = mask_info(mask)
    s, m = operand(stationary, minfo), operand(moving, minfo)
    _hbm_error("nc_matmul", "stationary", s, loc)
    _hbm_error("nc_matmul", "moving", m, loc)
    out_dt = _dt.float32
    if is_transpose:
        out_dt = s.dtype
    if "double_row" in str(perf_mode or "") and len(s.shape) >= 3 and len(m.shape) >= 3:
        return _double_row_matmul(s, m, perf_mode, loc)
    tile, dst = result_tile((s.free_size, m.free_size), out_dt, buffer=PSUM, overwritten=True, loc=loc)
    tile.producer = _te.nc_matmul(
        dst,
        s,
        m,
        accumulate=False,
        is_transpose=is_transpose,
        perf_mode=perf_mode,
        tile_position=tile_position,
        tile_size=tile_size,
        loc=loc,
        api="nisa.nc_matmul",
    )
    tile.raw = None
    return tile


def _double_row_matmul(s: Tensor, m: Tensor, perf_mode: Any, loc: Any) -> LegacyTensor:
    """perf_mode=double_row with [K, 2, M] / [K, 2, N] operands: the contraction runs over the partitions and the
    size-2 first free dim (K*2 rows), each PE row holding an fp8 pair; result [M, N] in PSUM."""
    if s.shape[1] != 2 or m.shape[1] != 2:
        raise NkiValidationError(
            f"nisa.nc_matmul: perf_mode={perf_mode} with 3-D operands needs stationary [K, 2, M] and moving "
            f"[K, 2, N] tiles (first free dim 2), got {tuple(s.shape)} and {tuple(m.shape)}",
            code="err_shape_mismatch",
            values={"stationary": tuple(s.shape), "moving": tuple(m.shape)},
            loc=loc,
        )
    def half(t: Tensor, h: int) -> Tensor:  # t[:, h] as a [K, F] tile (gathered views select their index arrays)
        if t.index is not None:
            idx = tuple(np.take(np.broadcast_to(i, t.shape), h, axis=1).reshape(t.shape[0], -1) for i in t.index)
            return t.indirect(idx)
        v = t.basic_view((slice(None), h))
        return v.reshaped((v.shape[0], v.free_size))

    halves = [(half(s, h), half(m, h)) for h in range(2)]
    tile, dst = result_tile((halves[0][0].free_size, halves[0][1].free_size), _dt.float32, buffer=PSUM)
    for h, (sh, mh) in enumerate(halves):
        # `t[...] (+)= result` retargets the second instruction and writes the full (two-half) value into t
        tile.producer = _te.nc_matmul(
            dst, sh, mh, accumulate=h > 0, perf_mode=perf_mode, loc=loc, api="nisa.nc_matmul"
        )
    tile.raw = None
    return tile


def nc_transpose(
    data: Any, *, mask: Any = None, dtype: Any = None, engine: Any = engine.unknown, **kwargs: Any
) -> LegacyTensor:
    """Partition <-> free transpose on the Tensor engine (-> PSUM, up to 128x128) or Vector (up to 32x32)."""
    loc = caller_location()
    minfo = mask_info(mask)
    d = operand(data, minfo)
    _hbm_error("nc_transpose", "data", d, loc)
    p, f = d.partitions, d.free_size
    eng = _engine_name(engine)
    if eng is None:
        eng = "vector" if (p <= 32 and f <= 32) else "tensor"
    if eng == "tensor":
        _language()._no_pe_transpose_when_allocated("nisa.nc_transpose on the Tensor engine", loc)
        tile, dst = result_tile((f, p), dtype or d.dtype, buffer=PSUM, overwritten=True, loc=loc)
        tile.producer = _te.nc_transpose_pe(dst, d, loc=loc, api="nisa.nc_transpose")
    else:
        tile, dst = result_tile((f, p), dtype or d.dtype, loc=loc)
        tile.producer = _ve.nc_transpose_vector(dst, d, loc=loc, api="nisa.nc_transpose")
    return tile


# ------------------------------------------------------------------------------------------------ Scalar engine
def activation(
    op: Any,
    data: Any,
    *,
    bias: Any = None,
    scale: Any = 1.0,
    reduce_op: Any = None,
    reduce_res: Any = None,
    reduce_cmd: Any = reduce_cmd.idle,
    mask: Any = None,
    dtype: Any = None,
    **kwargs: Any,
) -> LegacyTensor:
    """op(data * scale + bias) on the Scalar engine, optionally reducing into the per-lane accumulators."""
    loc = caller_location()
    minfo = mask_info(mask)
    d = operand(data, minfo)
    _hbm_error("activation", "data", d, loc)
    tile, dst = result_tile(tuple(data.shape), dtype or d.dtype, minfo, overwritten=True, loc=loc)
    rr = _dst_arg(reduce_res, _part_minfo(minfo), "activation", "reduce_res", loc) if reduce_res is not None else None
    tile.producer = _se.activation(
        dst,
        op,
        d,
        bias=operand(bias, minfo) if is_tensorish(bias) else bias,
        scale=operand(scale, minfo) if is_tensorish(scale) else scale,
        reduce_op=reduce_op,
        reduce_res=rr,
        reduce_cmd=reduce_cmd.name if isinstance(reduce_cmd, enum.Enum) else reduce_cmd,
        loc=loc,
        api="nisa.activation",
    )
    return tile


def activation_reduce(
    op: Any,
    data: Any,
    *,
    reduce_op: Any,
    reduce_res: Any,
    bias: Any = None,
    scale: Any = 1.0,
    mask: Any = None,
    dtype: Any = None,
    **kwargs: Any,
) -> LegacyTensor:
    """activation with reduce_cmd=reset_reduce and a mandatory [P,1] reduce_res."""
    return activation(
        op,
        data,
        bias=bias,
        scale=scale,
        reduce_op=reduce_op,
        reduce_res=reduce_res,
        reduce_cmd=reduce_cmd.reset_reduce,
        mask=mask,
        dtype=dtype,
    )


# ------------------------------------------------------------------------------------------------ Vector engine
def tensor_tensor(
    data1: Any, data2: Any, op: Any, *, dtype: Any = None, mask: Any = None, engine: Any = engine.unknown, **kwargs: Any
) -> LegacyTensor:
    """data1 op data2 element-wise (same partitions and elements per partition)."""
    loc = caller_location()
    minfo = mask_info(mask)
    a, b = operand(data1, minfo), operand(data2, minfo)
    _hbm_error("tensor_tensor", "data1", a, loc)
    _hbm_error("tensor_tensor", "data2", b, loc)
    tile, dst = result_tile(tuple(data1.shape), dtype or default_binary_dtype(a, b), minfo, overwritten=True, loc=loc)
    tile.producer = _ve.tensor_tensor(dst, a, b, op, engine=_engine_name(engine), loc=loc, api="nisa.tensor_tensor")
    return tile


def tensor_scalar(
    data: Any,
    op0: Any,
    operand0: Any,
    reverse0: bool = False,
    op1: Any = None,
    operand1: Any = None,
    reverse1: bool = False,
    *,
    dtype: Any = None,
    mask: Any = None,
    engine: Any = engine.unknown,
    **kwargs: Any,
) -> LegacyTensor:
    """(data op0 operand0) op1 operand1 with scalar or [P,1] operands."""
    loc = caller_location()
    minfo = mask_info(mask)
    d = operand(data, minfo)
    _hbm_error("tensor_scalar", "data", d, loc)
    tile, dst = result_tile(tuple(data.shape), dtype or d.dtype, minfo, loc=loc)
    o0 = operand(operand0, minfo) if is_tensorish(operand0) else operand0
    o1 = operand(operand1, minfo) if is_tensorish(operand1) else operand1
    tile.producer = _ve.tensor_scalar(
        dst, d, op0, o0, reverse0, op1, o1, reverse1, engine=_engine_name(engine), loc=loc, api="nisa.tensor_scalar"
    )
    return tile


def _g1_reduce_axes(axis: Any, ndim: int, loc: SourceLoc) -> tuple[int, ...]:
    """G1 reduction axes: consecutive free axes ending at the innermost one. G1 also numbers them from the
    innermost axis ([1] = innermost, [1, 2] = the two innermost, ...), so [1..k] on a deeper tile means the k
    trailing axes (nki-api.md 5.4)."""
    axes = _ve.normalize_axes(axis, ndim, "nisa.tensor_reduce", loc)
    trailing = tuple(range(ndim - len(axes), ndim))
    if axes == trailing:
        return axes
    if axes == tuple(range(1, len(axes) + 1)):
        return trailing
    raise NkiValidationError(
        f"nisa.tensor_reduce: reduction axes {axes} of a {ndim}-D tile must be consecutive free axes ending at the "
        f"innermost axis (e.g. {trailing})",
        code="err_invalid_reduce_axes",
        values={"axis": axis, "ndim": ndim},
        loc=loc,
    )


def tensor_reduce(
    op: Any,
    data: Any,
    axis: Any,
    *,
    mask: Any = None,
    dtype: Any = None,
    negate: bool = False,
    keepdims: bool = False,
    **kwargs: Any,
) -> LegacyTensor:
    """Reduce along free axes."""
    loc = caller_location()
    minfo = mask_info(mask)
    d = operand(data, minfo)
    _hbm_error("tensor_reduce", "data", d, loc)
    axes = _g1_reduce_axes(axis, len(data.shape), loc)
    shape = (
        tuple(1 if i in axes else n for i, n in enumerate(data.shape))
        if keepdims
        else tuple(n for i, n in enumerate(data.shape) if i not in axes)
    )
    if len(shape) == 1:
        shape = shape + (1,)
    pr = positional(minfo[0], len(data.shape))
    ranges = {0: pr[0]} if 0 in pr else {}
    tile, dst = result_tile(shape, dtype or d.dtype, (ranges, []), loc=loc)
    tile.producer = _ve.tensor_reduce(
        dst, op, d, axes, negate=negate, keepdims=keepdims, loc=loc, api="nisa.tensor_reduce"
    )
    return tile


def tensor_copy(
    src: Any, *, mask: Any = None, dtype: Any = None, engine: Any = engine.unknown, **kwargs: Any
) -> LegacyTensor:
    """Copy an on-chip tile (bit exact when dtypes match on Vector/GpSimd)."""
    loc = caller_location()
    minfo = mask_info(mask)
    s = operand(src, minfo)
    _hbm_error("tensor_copy", "src", s, loc)
    tile, dst = result_tile(tuple(src.shape), dtype or s.dtype, minfo, overwritten=True, loc=loc)
    tile.producer = _ve.tensor_copy(dst, s, engine=_engine_name(engine), loc=loc, api="nisa.tensor_copy")
    return tile


def reciprocal(data: Any, *, dtype: Any = None, mask: Any = None, **kwargs: Any) -> LegacyTensor:
    """1/x on the Vector engine (fp32)."""
    loc = caller_location()
    minfo = mask_info(mask)
    d = operand(data, minfo)
    _hbm_error("reciprocal", "data", d, loc)
    tile, dst = result_tile(tuple(data.shape), dtype or d.dtype, minfo, loc=loc)
    tile.producer = _ve.reciprocal(dst, d, loc=loc, api="nisa.reciprocal")
    return tile


def memset(
    shape: Any, value: Any, dtype: Any, *, mask: Any = None, engine: Any = engine.unknown, **kwargs: Any
) -> LegacyTensor:
    """New SBUF tile of `shape` filled with `value` (the first dimension is the partition dimension)."""
    loc = caller_location()
    minfo = mask_info(mask)
    tile, dst = result_tile(tuple(int(s) for s in shape), dtype, minfo, overwritten=True, loc=loc)
    tile.producer = _ve.memset(dst, value, engine=_engine_name(engine), loc=loc, api="nisa.memset")
    return tile


# ------------------------------------------------------------------------------------------------ GpSimd engine
def iota(expr: Any, dtype: Any, *, mask: Any = None, **kwargs: Any) -> LegacyTensor:
    """Materialise an affine nl.arange expression as integers (int32 math, cast to dtype)."""
    loc = caller_location()
    if isinstance(expr, IndexExpr) or hasattr(expr, "evaluate"):
        vals = expr.evaluate()
        shape = tuple(expr.shape)
    elif isinstance(expr, (int, np.integer)):
        vals = np.asarray(expr)
        shape = (1, 1)
    else:
        raise NkiTypeError(
            "nisa.iota: expr must be an affine expression of nl.arange",
            code="err_invalid_operand",
            values={"expr": expr},
            loc=loc,
        )
    if len(shape) < 2:
        shape = (shape[0] if shape else 1, 1)
    minfo = mask_info(mask)
    tile, dst = result_tile(shape, dtype, minfo, loc=loc)
    vals = np.broadcast_to(vals, shape)
    r = positional(minfo[0], len(shape))
    if r:
        vals = vals[tuple(slice(*r.get(a, (0, n))) if n > 1 else slice(None) for a, n in enumerate(shape))]
    tile.producer = _gp.iota(dst, vals, loc=loc, api="nisa.iota")
    return tile


def affine_select(
    pred: Any, on_true_tile: Any, on_false_value: Any, *, mask: Any = None, dtype: Any = None, **kwargs: Any
) -> LegacyTensor:
    """on_true_tile where the affine predicate holds, else on_false_value (GpSimd)."""
    loc = caller_location()
    if not isinstance(pred, Predicate):
        raise NkiTypeError(
            "nisa.affine_select: pred must be an affine comparison of nl.arange expressions",
            code="err_unsupported_expression_in_mask",
            values={"pred": pred},
            loc=loc,
        )
    minfo = mask_info(mask)
    t = operand(on_true_tile, minfo)
    if isinstance(t, Tensor) and t.storage.buffer.kind == "psum":
        # GpSimd cannot read PSUM: the legacy compiler stages the tile through SBUF (AWS's attention tutorials
        # rely on this), so trnsim does the same, visibly.
        current().warn(
            "warn_compiler_inserted_copy",
            "nisa.affine_select reads a PSUM tile; the GpSimd engine cannot access PSUM, so a PSUM->SBUF copy "
            "is inserted (as the legacy compiler does); copy to SBUF yourself to control which engine does it",
            loc,
        )
        staged, sv = result_tile(tuple(t.shape), t.dtype, loc=loc)
        _ve.tensor_copy(sv, t, loc=loc, api="nisa.affine_select(psum->sbuf)")
        t = staged
    tile, dst = result_tile(tuple(on_true_tile.shape), dtype or t.dtype, minfo, loc=loc)
    rank = len(on_true_tile.shape)
    pvars = pred.variables()
    if isinstance(on_true_tile, LazyAccess):  # the predicate's variables sit where the subscript puts them
        final = on_true_tile.plan.final
        axes = {v: final[v] for v in pvars if v in final}
        axes.update({v: a for v, a in placement(pvars, minfo[0], rank).items() if v not in axes})
    else:
        axes = placement(pvars, minfo[0], rank)
    predicate = Predicate.evaluate_parts(list(pred.parts), positional(minfo[0], rank), axes, rank)
    tile.producer = _gp.affine_select(dst, predicate, t, on_false_value, loc=loc, api="nisa.affine_select")
    return tile


# ------------------------------------------------------------------------------------------------ DMA
def _enum_name(x: Any, names: tuple[str, ...]) -> str:
    """Name of a G1 enum member passed as the enum, its int value or its name."""
    if isinstance(x, enum.Enum):
        return x.name
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return names[int(x)] if 0 <= int(x) < len(names) else str(int(x))
    return str(x).split(".")[-1]


def _access_arg(x: Any, minfo: tuple[dict, list], oob_skip: bool, name: str, loc: SourceLoc) -> tuple[Any, Any]:
    """A DMA operand under the mask: (view, elements-to-transfer or None)."""
    if not is_tensorish(x):
        raise NkiTypeError(
            f"nisa.dma_copy: '{name}' must be a tensor, got {type(x).__name__}",
            code="err_invalid_operand",
            values={name: x},
            loc=loc,
        )
    ranges, rest = minfo
    if isinstance(x, LazyAccess):
        return resolve_access(x.base, x.key, ranges, rest, oob_skip, plan=x.plan)
    t = restrict_tensor(x, ranges)
    where = where_on_tile(rest, ranges, len(x.shape))
    return t, (np.broadcast_to(where, t.shape) if where is not None else None)


def dma_copy(
    *,
    dst: Any,
    src: Any,
    mask: Any = None,
    dst_rmw_op: Any = None,
    oob_mode: Any = oob_mode.error,
    dge_mode: Any = dge_mode.unknown,
    **kwargs: Any,
) -> None:
    """dst = src between HBM and SBUF (optionally dst = dst_rmw_op(dst, src)). With oob_mode=skip, transfers
    whose tile-valued (indirect) index is out of range are dropped instead of raising."""
    loc = caller_location()
    minfo = mask_info(mask)
    oob = _enum_name(oob_mode, ("error", "skip"))
    if oob not in ("error", "skip"):
        raise NkiValidationError(
            f"nisa.dma_copy: oob_mode must be oob_mode.error or oob_mode.skip, got {oob_mode!r}",
            code="err_invalid_operand",
            values={"oob_mode": oob_mode},
            loc=loc,
        )
    if oob == "skip" and dst_rmw_op is not None:
        raise NkiValidationError(
            "nisa.dma_copy: dst_rmw_op requires oob_mode=oob_mode.error",
            code="err_invalid_operand",
            values={"oob_mode": oob, "dst_rmw_op": dst_rmw_op},
            loc=loc,
        )
    d, wd = _access_arg(dst, minfo, oob == "skip", "dst", loc)
    s, ws = _access_arg(src, minfo, oob == "skip", "src", loc)
    where = None
    for w in (wd, ws):
        if w is not None and w.size == d.size:
            w = np.asarray(w).reshape(d.shape)
            where = w if where is None else (where & w)
    mode = _enum_name(dge_mode, ("none", "swdge", "hwdge", "unknown"))
    _dma.dma_copy(d, s, dst_rmw_op=dst_rmw_op, dge_mode=mode, oob_mode=oob, where=where, loc=loc, api="nisa.dma_copy")


def dma_transpose(src: Any, *, axes: Any = None, mask: Any = None, dtype: Any = None, **kwargs: Any) -> LegacyTensor:
    """Transpose while moving HBM -> SBUF."""
    loc = caller_location()
    if _indirect_subscript(src):
        raise NkiValidationError(
            "nisa.dma_transpose does not take indirect (tile-valued) indices",
            code="err_indirect_indices_are_not_supported_with_nki_api",
            values={"src": getattr(src.base.storage, "name", "?")},
            loc=loc,
            hint="gather the rows with nisa.dma_copy / nl.load first, then transpose the tile",
        )
    s = operand(src, NO_MASK)
    ax = tuple(axes) if axes is not None else {2: (1, 0), 3: (2, 1, 0), 4: (3, 1, 2, 0)}.get(len(s.shape))
    if ax is None:
        raise NkiValidationError(
            f"nisa.dma_transpose: unsupported rank {len(s.shape)}", code="err_exceed_max_supported_dimension", loc=loc
        )
    shape = tuple(s.shape[a] for a in ax)
    tile, dst = result_tile(shape, dtype or s.dtype, loc=loc)
    tile.producer = _dma.dma_transpose(dst, s, axes=ax, loc=loc, api="nisa.dma_transpose")
    return tile


def _indirect_subscript(x: Any) -> bool:
    """Is `x` a subscript with runtime (tile-valued) indices?"""
    return isinstance(x, LazyAccess) and any(isinstance(k, (Tensor, LazyAccess, DynamicIndex)) for k in x.key)


# ------------------------------------------------------------------------------------------------ operand helpers
def _tile_arg(x: Any, minfo: tuple[dict, list], api: str, name: str, loc: SourceLoc) -> Tensor:
    """Resolve a tile operand under the mask; anything that is not a tile is an error at the kernel's line."""
    _require_tile(x, api, name, loc)
    return operand(x, minfo)


def _require_tile(x: Any, api: str, name: str, loc: SourceLoc) -> None:
    if not is_tensorish(x):
        raise NkiTypeError(
            f"nisa.{api}: '{name}' must be a tile, got {type(x).__name__}",
            code="err_invalid_operand",
            values={name: x},
            loc=loc,
        )


def _scalar_or_tile(x: Any, minfo: tuple[dict, list]) -> Any:
    return operand(x, minfo) if is_tensorish(x) else x


def _axes_minfo(minfo: tuple[dict, list], axes: Any) -> tuple[dict, list]:
    """Keep only the mask's ranges on positions `axes` (e.g. the partition axis for [P, k]-shaped side results)."""
    ranges, _ = minfo
    return {a: r for a, r in positional(ranges, None).items() if a in axes or a == -1}, []


def _part_minfo(minfo: tuple[dict, list]) -> tuple[dict, list]:
    return _axes_minfo(minfo, (0,))


def _dst_arg(x: Any, minfo: tuple[dict, list], api: str, name: str, loc: SourceLoc) -> Tensor:
    """An in-place destination (`dst=`): restricted to the mask's box; non-separable masks limit the writes."""
    _require_tile(x, api, name, loc)
    ranges, rest = minfo
    if isinstance(x, LazyAccess):
        t, where = resolve_access(x.base, x.key, ranges, rest, plan=x.plan)
    else:
        t = restrict_tensor(x, ranges)
        where = where_on_tile(rest, ranges, len(x.shape))
    if where is None:
        return t
    mv = MaskedView.__new__(MaskedView)
    Tensor.__init__(mv, t.storage, t.mem, t.array, t.wmask, t.index)
    mv.where_mask = np.broadcast_to(where, t.shape)
    return mv


def _where_of(minfo: tuple[dict, list], shape: tuple[int, ...], api: str, loc: SourceLoc) -> np.ndarray | None:
    """The mask as a boolean array over a full (unrestricted) destination of `shape`."""
    ranges, rest = minfo
    if not ranges and not rest:
        return None
    w = np.ones(shape, dtype=bool)
    for a, (lo, hi) in positional(ranges, len(shape)).items():
        if a == -1:
            w[...] = False
        elif a < len(shape) and shape[a] > 1:
            key = [slice(None)] * len(shape)
            key[a] = slice(0, lo)
            w[tuple(key)] = False
            key[a] = slice(hi, None)
            w[tuple(key)] = False
    if rest:
        vs = [v for lhs, _, rhs in rest for side in (lhs, rhs) for v in getattr(side, "terms", ())]
        try:
            w &= np.broadcast_to(Predicate.evaluate_parts(rest, {}, placement(vs, ranges, len(shape)), len(shape)), shape)
        except ValueError:
            raise NkiValidationError(
                f"nisa.{api}: the mask does not match the destination shape {shape}",
                code="err_unsupported_expression_in_mask",
                values={"shape": shape},
                loc=loc,
            ) from None
    return w


def _cmd(x: Any) -> Any:
    return x.name if isinstance(x, enum.Enum) else x


def _dynamic_offsets(x: Any) -> list[Tensor]:
    """The tiles whose values address `x` at run time (tile-valued subscripts, `idx[0, i] + iy`)."""
    if not isinstance(x, LazyAccess):
        return []
    out: list[Tensor] = []
    for k in x.key:
        if isinstance(k, DynamicIndex):
            out.extend(k.sources)
        elif isinstance(k, Tensor):
            out.append(k)
        elif isinstance(k, LazyAccess):
            out.append(k._resolve_plain())
    return out


# ------------------------------------------------------------------------------------------------ Vector engine (2)
def tensor_scalar_reduce(
    *,
    data: Any,
    op0: Any,
    operand0: Any,
    reduce_op: Any,
    reduce_res: Any,
    reverse0: bool = False,
    dtype: Any = None,
    mask: Any = None,
    **kwargs: Any,
) -> LegacyTensor:
    """data op0 operand0 (one arithmetic op) and its reduction along all free axes into reduce_res [P, 1]
    (Vector accumulators, reset then reduce)."""
    loc = caller_location()
    api = "tensor_scalar_reduce"
    minfo = mask_info(mask)
    d = _tile_arg(data, minfo, api, "data", loc)
    if reverse0:
        raise NkiUnsupportedError(
            "nisa.tensor_scalar_reduce: reverse0=True is not supported by the legacy API",
            code="err_unsupported_api",
            values={"reverse0": reverse0},
            loc=loc,
        )
    rr = _dst_arg(reduce_res, _part_minfo(minfo), api, "reduce_res", loc)
    tile, dst = result_tile(tuple(data.shape), dtype or d.dtype, minfo, loc=loc)
    tile.producer = _ve.tensor_scalar_reduce(
        dst,
        d,
        op0,
        _scalar_or_tile(operand0, _part_minfo(minfo)),
        reduce_op,
        rr,
        reduce_cmd="reset_reduce",
        loc=loc,
        api=f"nisa.{api}",
    )
    return tile


def tensor_tensor_scan(
    data0: Any,
    data1: Any,
    initial: Any,
    op0: Any,
    op1: Any,
    reverse0: bool = False,
    reverse1: bool = False,
    *,
    dtype: Any = None,
    mask: Any = None,
    **kwargs: Any,
) -> LegacyTensor:
    """Per-partition scan r[i] = op1(op0(data0[i], r[i-1]), data1[i]) starting from `initial`."""
    loc = caller_location()
    api = "tensor_tensor_scan"
    minfo = mask_info(mask)
    a = _tile_arg(data0, minfo, api, "data0", loc)
    b = _tile_arg(data1, minfo, api, "data1", loc)
    tile, dst = result_tile(tuple(data0.shape), dtype or default_binary_dtype(a, b), minfo, loc=loc)
    tile.producer = _ve.tensor_tensor_scan(
        dst,
        a,
        b,
        _scalar_or_tile(initial, _part_minfo(minfo)),
        op0,
        op1,
        reverse0,
        reverse1,
        loc=loc,
        api=f"nisa.{api}",
    )
    return tile


def scalar_tensor_tensor(
    *,
    data: Any,
    op0: Any,
    operand0: Any,
    op1: Any,
    operand1: Any,
    reverse0: bool = False,
    reverse1: bool = False,
    dtype: Any = None,
    mask: Any = None,
    **kwargs: Any,
) -> LegacyTensor:
    """(data op0 operand0) op1 operand1 with a scalar/[P,1] operand0 and a full-tile operand1."""
    loc = caller_location()
    api = "scalar_tensor_tensor"
    minfo = mask_info(mask)
    d = _tile_arg(data, minfo, api, "data", loc)
    o1 = _tile_arg(operand1, minfo, api, "operand1", loc)
    tile, dst = result_tile(tuple(data.shape), dtype or d.dtype, minfo, loc=loc)
    tile.producer = _ve.scalar_tensor_tensor(
        dst,
        d,
        op0,
        _scalar_or_tile(operand0, _part_minfo(minfo)),
        op1,
        o1,
        reverse0,
        reverse1,
        loc=loc,
        api=f"nisa.{api}",
    )
    return tile


def bn_stats(data: Any, *, mask: Any = None, dtype: Any = None, **kwargs: Any) -> LegacyTensor:
    """[P, 6]: count, mean, variance*count of the even elements, then of the odd elements (free size <= 512)."""
    loc = caller_location()
    minfo = mask_info(mask)
    d = _tile_arg(data, minfo, "bn_stats", "data", loc)
    tile, dst = result_tile((data.shape[0], 6), dtype or d.dtype, _part_minfo(minfo), loc=loc)
    tile.producer = _ve.bn_stats(dst, d, loc=loc, api="nisa.bn_stats")
    return tile


def bn_aggr(data: Any, *, mask: Any = None, dtype: Any = None, **kwargs: Any) -> LegacyTensor:
    """[P, 2]: mean and variance aggregated from one or more bn_stats results."""
    loc = caller_location()
    minfo = mask_info(mask)
    d = _tile_arg(data, minfo, "bn_aggr", "data", loc)
    tile, dst = result_tile((data.shape[0], 2), dtype or d.dtype, _part_minfo(minfo), loc=loc)
    tile.producer = _ve.bn_aggr(dst, d, loc=loc, api="nisa.bn_aggr")
    return tile


def dropout(data: Any, prob: Any, *, mask: Any = None, dtype: Any = None, **kwargs: Any) -> LegacyTensor:
    """data with each element replaced by 0 with probability prob (scalar or [P,1] tile), no rescaling."""
    loc = caller_location()
    minfo = mask_info(mask)
    d = _tile_arg(data, minfo, "dropout", "data", loc)
    tile, dst = result_tile(tuple(data.shape), dtype or d.dtype, minfo, loc=loc)
    tile.producer = _ve.dropout(dst, d, _scalar_or_tile(prob, _part_minfo(minfo)), loc=loc, api="nisa.dropout")
    return tile


def select_reduce(
    *,
    dst: Any,
    predicate: Any,
    on_true: Any,
    on_false: Any,
    reduce_res: Any = None,
    reduce_cmd: Any = reduce_cmd.idle,
    reduce_op: Any = np.amax,
    reverse_pred: bool = False,
    mask: Any = None,
    dtype: Any = None,
    **kwargs: Any,
) -> None:
    """dst = where(predicate, on_true, on_false) in place, with an optional max into the Vector accumulators."""
    loc = caller_location()
    api = "select_reduce"
    minfo = mask_info(mask)
    pm = _part_minfo(minfo)
    _ve.select_reduce(
        _dst_arg(dst, minfo, api, "dst", loc),
        _tile_arg(predicate, minfo, api, "predicate", loc),
        _tile_arg(on_true, minfo, api, "on_true", loc),
        _scalar_or_tile(on_false, pm),
        reduce_res=_dst_arg(reduce_res, pm, api, "reduce_res", loc) if reduce_res is not None else None,
        reduce_cmd=_cmd(reduce_cmd),
        reduce_op=reduce_op,
        reverse_pred=reverse_pred,
        loc=loc,
        api=f"nisa.{api}",
    )


def range_select(
    *,
    on_true_tile: Any,
    comp_op0: Any,
    comp_op1: Any,
    bound0: Any,
    bound1: Any,
    reduce_cmd: Any = reduce_cmd.idle,
    reduce_res: Any = None,
    reduce_op: Any = np.amax,
    range_start: Any = 0,
    on_false_value: Any = fp32.min,
    mask: Any = None,
    dtype: Any = None,
    **kwargs: Any,
) -> LegacyTensor:
    """on_true_tile where comp_op0(range_start + i, bound0) and comp_op1(range_start + i, bound1), else
    FP32_MIN; max into the Vector accumulators (NeuronCore-v3+)."""
    loc = caller_location()
    api = "range_select"
    minfo = mask_info(mask)
    pm = _part_minfo(minfo)
    t = _tile_arg(on_true_tile, minfo, api, "on_true_tile", loc)
    b0 = _tile_arg(bound0, pm, api, "bound0", loc)
    b1 = _tile_arg(bound1, pm, api, "bound1", loc)
    rr = _dst_arg(reduce_res, pm, api, "reduce_res", loc) if reduce_res is not None else None
    tile, dst = result_tile(tuple(on_true_tile.shape), dtype or t.dtype, minfo, loc=loc)
    tile.producer = _ve.range_select(
        dst,
        t,
        comp_op0,
        comp_op1,
        b0,
        b1,
        reduce_cmd=_cmd(reduce_cmd),
        reduce_res=rr,
        reduce_op=reduce_op,
        range_start=range_start,
        on_false_value=on_false_value,
        loc=loc,
        api=f"nisa.{api}",
    )
    return tile


def max8(*, src: Any, mask: Any = None, dtype: Any = None, **kwargs: Any) -> LegacyTensor:
    """[P, 8]: the 8 largest values of each partition, descending."""
    loc = caller_location()
    minfo = mask_info(mask)
    s = _tile_arg(src, minfo, "max8", "src", loc)
    tile, dst = result_tile((src.shape[0], 8), dtype or s.dtype, _part_minfo(minfo), loc=loc)
    tile.producer = _ve.max8(dst, s, loc=loc, api="nisa.max8")
    return tile


def nc_find_index8(*, data: Any, vals: Any, mask: Any = None, dtype: Any = None, **kwargs: Any) -> LegacyTensor:
    """[P, 8] (uint32 by default): index of the first occurrence of each of the 8 vals in each partition."""
    loc = caller_location()
    api = "nc_find_index8"
    minfo = mask_info(mask)
    d = _tile_arg(data, minfo, api, "data", loc)
    v = _tile_arg(vals, _part_minfo(minfo), api, "vals", loc)
    tile, dst = result_tile((data.shape[0], 8), dtype or _dt.uint32, _part_minfo(minfo), loc=loc)
    tile.producer = _ve.nc_find_index8(dst, d, v, loc=loc, api=f"nisa.{api}")
    return tile


def nc_match_replace8(
    *, data: Any, vals: Any, imm: Any, dst_idx: Any = None, mask: Any = None, dtype: Any = None, **kwargs: Any
) -> LegacyTensor:
    """data with the first occurrence of each of the 8 vals replaced by imm (indices into dst_idx if given)."""
    loc = caller_location()
    api = "nc_match_replace8"
    minfo = mask_info(mask)
    pm = _part_minfo(minfo)
    d = _tile_arg(data, minfo, api, "data", loc)
    v = _tile_arg(vals, pm, api, "vals", loc)
    di = _dst_arg(dst_idx, pm, api, "dst_idx", loc) if dst_idx is not None else None
    tile, dst = result_tile(tuple(data.shape), dtype or d.dtype, minfo, loc=loc)
    tile.producer = _ve.nc_match_replace8(dst, d, v, imm, dst_idx=di, loc=loc, api=f"nisa.{api}")
    return tile


def nc_stream_shuffle(src: Any, dst: Any, shuffle_mask: Any, *, dtype: Any = None, mask: Any = None, **kwargs: Any) -> None:
    """Cross-partition shuffle within 32-partition quadrants (G1 order: src, dst, shuffle_mask); the mask limits
    which dst elements are written."""
    loc = caller_location()
    api = "nc_stream_shuffle"
    minfo = mask_info(mask)
    s = _tile_arg(src, NO_MASK, api, "src", loc)
    d = _dst_arg(dst, NO_MASK, api, "dst", loc)
    _ve.nc_stream_shuffle(
        d, s, shuffle_mask, where=_where_of(minfo, tuple(d.shape), api, loc), loc=loc, api=f"nisa.{api}"
    )


def tensor_copy_predicated(
    *, src: Any, dst: Any, predicate: Any, reverse_pred: bool = False, mask: Any = None, dtype: Any = None, **kwargs: Any
) -> None:
    """dst = src where predicate is true (false with reverse_pred), in place; src may be a scalar."""
    loc = caller_location()
    api = "tensor_copy_predicated"
    minfo = mask_info(mask)
    _ve.tensor_copy_predicated(
        _dst_arg(dst, minfo, api, "dst", loc),
        _scalar_or_tile(src, minfo),
        _tile_arg(predicate, minfo, api, "predicate", loc),
        reverse_pred,
        loc=loc,
        api=f"nisa.{api}",
    )


def tensor_copy_dynamic_src(
    src: Any, *, mask: Any = None, dtype: Any = None, engine: Any = engine.unknown, **kwargs: Any
) -> LegacyTensor:
    """Copy of `src`, addressed at a runtime offset within each partition (`t[ix, idx_tile[0, i] + iy]`)."""
    loc = caller_location()
    api = "tensor_copy_dynamic_src"
    minfo = mask_info(mask)
    s = _tile_arg(src, minfo, api, "src", loc)
    tile, dst = result_tile(tuple(src.shape), dtype or s.dtype, minfo, loc=loc)
    tile.producer = _ve.tensor_copy_dynamic_src(
        dst, s, offsets=_dynamic_offsets(src), engine=_engine_name(engine), loc=loc, api=f"nisa.{api}"
    )
    return tile


def tensor_copy_dynamic_dst(
    *, dst: Any, src: Any, mask: Any = None, dtype: Any = None, engine: Any = engine.unknown, **kwargs: Any
) -> None:
    """Copy `src` into `dst` addressed at a runtime offset within each partition, in place."""
    loc = caller_location()
    api = "tensor_copy_dynamic_dst"
    minfo = mask_info(mask)
    _ve.tensor_copy_dynamic_dst(
        _dst_arg(dst, minfo, api, "dst", loc),
        _tile_arg(src, minfo, api, "src", loc),
        offsets=_dynamic_offsets(dst),
        engine=_engine_name(engine),
        loc=loc,
        api=f"nisa.{api}",
    )


# ------------------------------------------------------------------------------------------------ GpSimd engine (2)
def tensor_partition_reduce(op: Any, data: Any, *, mask: Any = None, dtype: Any = None, **kwargs: Any) -> LegacyTensor:
    """Reduce across partitions (add / max / bitwise_or / bitwise_and) into a [1, ...] tile on GpSimd."""
    loc = caller_location()
    minfo = mask_info(mask)
    d = _tile_arg(data, minfo, "tensor_partition_reduce", "data", loc)
    shape = (1,) + tuple(data.shape[1:])
    tile, dst = result_tile(shape, dtype or d.dtype, _axes_minfo(minfo, range(1, len(shape))), loc=loc)
    tile.producer = _gp.tensor_partition_reduce(dst, op, d, loc=loc, api="nisa.tensor_partition_reduce")
    return tile


def local_gather(src_buffer: Any, index: Any, num_elem_per_idx: int = 1, num_valid_indices: Any = None, *, mask: Any = None) -> LegacyTensor:
    """Gather within each GpSimd core's 16 partitions at uint16 element offsets: [P, num_valid, num_elem_per_idx]
    ([P, num_valid] when num_elem_per_idx is 1)."""
    loc = caller_location()
    api = "local_gather"
    minfo = mask_info(mask)
    if minfo is not NO_MASK and (minfo[0] or minfo[1]):
        raise NkiUnsupportedError(
            "nisa.local_gather: mask= is not supported by trnsim (the gather works on whole 16-partition groups)",
            code="err_unsupported_api",
            values={"mask": mask},
            loc=loc,
        )
    s = _tile_arg(src_buffer, NO_MASK, api, "src_buffer", loc)
    ix = _tile_arg(index, NO_MASK, api, "index", loc)
    per_core = 16 * ix.free_size
    nv = per_core if num_valid_indices is None else num_valid_indices
    e = num_elem_per_idx
    valid = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in (nv, e))
    shape = (s.partitions, int(nv)) + ((int(e),) if valid and e != 1 else ()) if valid else (s.partitions, 1)
    tile, dst = result_tile(shape, s.dtype, loc=loc)
    tile.producer = _gp.local_gather(dst, s, ix, e, num_valid_indices, loc=loc, api=f"nisa.{api}")
    return tile


def sequence_bounds(*, segment_ids: Any, dtype: Any = None) -> LegacyTensor:
    """[1, 2, N]: start and end (exclusive) index of each element's segment; id 0 is padding (N, -1)."""
    loc = caller_location()
    api = "sequence_bounds"
    s = _tile_arg(segment_ids, NO_MASK, api, "segment_ids", loc)
    tile, dst = result_tile((s.shape[0], 2) + tuple(s.shape[1:]), dtype or s.dtype, loc=loc)
    tile.producer = _gp.sequence_bounds(dst, s, loc=loc, api=f"nisa.{api}")
    return tile


def _not_implemented(name: str) -> Callable:
    def fn(*args: Any, **kwargs: Any) -> Any:
        raise NkiUnsupportedError(
            f"nisa.{name} is not implemented in trnsim yet",
            code="err_unsupported_api",
            values={"api": f"nisa.{name}"},
            hint="see docs/coverage.md for the implemented API",
        )

    fn.__name__ = name
    fn.__doc__ = f"nisa.{name}: not implemented in trnsim (raises err_unsupported_api)."
    fn._trnsim_missing = True  # type: ignore[attr-defined]
    return fn


builtin_custom_op = _not_implemented("builtin_custom_op")


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    raise NkiUnsupportedError(
        f"nisa.{name} is not part of the legacy nki.isa API implemented by trnsim",
        code="err_unsupported_api",
        values={"api": f"nisa.{name}"},
        hint="see docs/coverage.md for the implemented API",
    )


# An always-false mask (a loop-index predicate that does not hold in this iteration, or an empty ragged box)
# makes the call a no-op; keep this at the end of the module so that it covers every API function above.
wrap_masked_apis(globals(), __name__)
