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
from ...core.memory import PSUM
from ...core.source import SourceLoc, caller_location
from ...core.tensor import Tensor
from ...isa import dma as _dma
from ...isa import gpsimd_engine as _gp
from ...isa import scalar_engine as _se
from ...isa import tensor_engine as _te
from ...isa import vector_engine as _ve
from .indexing import IndexExpr, Predicate
from .lowering import NO_MASK, default_binary_dtype, is_tensorish, mask_info, operand, result_tile
from .tensor import LegacyTensor


class engine(enum.IntEnum):  # noqa: N801 - NKI's name
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
    idle = 0
    reset = 1
    reduce = 2
    reset_reduce = 3


class dge_mode(enum.IntEnum):  # noqa: N801
    none = 0
    swdge = 1
    hwdge = 2
    unknown = 3


class oob_mode(enum.IntEnum):  # noqa: N801
    error = 0
    skip = 1


class nc_version(enum.IntEnum):  # noqa: N801
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
    tile, dst = result_tile((s.free_size, m.free_size), out_dt, buffer=PSUM)
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
        tile, dst = result_tile((f, p), dtype or d.dtype, buffer=PSUM)
        tile.producer = _te.nc_transpose_pe(dst, d, loc=loc, api="nisa.nc_transpose")
    else:
        tile, dst = result_tile((f, p), dtype or d.dtype)
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
    tile, dst = result_tile(tuple(data.shape), dtype or d.dtype, minfo)
    rr = operand(reduce_res) if reduce_res is not None else None
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
    tile, dst = result_tile(tuple(data1.shape), dtype or default_binary_dtype(a, b), minfo)
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
    tile, dst = result_tile(tuple(data.shape), dtype or d.dtype, minfo)
    o0 = operand(operand0, minfo) if is_tensorish(operand0) else operand0
    o1 = operand(operand1, minfo) if is_tensorish(operand1) else operand1
    tile.producer = _ve.tensor_scalar(
        dst, d, op0, o0, reverse0, op1, o1, reverse1, engine=_engine_name(engine), loc=loc, api="nisa.tensor_scalar"
    )
    return tile


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
    axes = _ve.normalize_axes(axis, len(data.shape), "nisa.tensor_reduce", loc)
    shape = (
        tuple(1 if i in axes else n for i, n in enumerate(data.shape))
        if keepdims
        else tuple(n for i, n in enumerate(data.shape) if i not in axes)
    )
    if len(shape) == 1:
        shape = shape + (1,)
    ranges = {0: minfo[0][0]} if 0 in minfo[0] else {}
    tile, dst = result_tile(shape, dtype or d.dtype, (ranges, []))
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
    tile, dst = result_tile(tuple(src.shape), dtype or s.dtype, minfo)
    tile.producer = _ve.tensor_copy(dst, s, engine=_engine_name(engine), loc=loc, api="nisa.tensor_copy")
    return tile


def reciprocal(data: Any, *, dtype: Any = None, mask: Any = None, **kwargs: Any) -> LegacyTensor:
    """1/x on the Vector engine (fp32)."""
    loc = caller_location()
    minfo = mask_info(mask)
    d = operand(data, minfo)
    _hbm_error("reciprocal", "data", d, loc)
    tile, dst = result_tile(tuple(data.shape), dtype or d.dtype, minfo)
    tile.producer = _ve.reciprocal(dst, d, loc=loc, api="nisa.reciprocal")
    return tile


def memset(
    shape: Any, value: Any, dtype: Any, *, mask: Any = None, engine: Any = engine.unknown, **kwargs: Any
) -> LegacyTensor:
    """New SBUF tile of `shape` filled with `value` (the first dimension is the partition dimension)."""
    loc = caller_location()
    minfo = mask_info(mask)
    tile, dst = result_tile(tuple(int(s) for s in shape), dtype, minfo)
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
    tile, dst = result_tile(shape, dtype, minfo)
    vals = np.broadcast_to(vals, shape)
    r = minfo[0]
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
    tile, dst = result_tile(tuple(on_true_tile.shape), dtype or t.dtype, minfo)
    predicate = Predicate.evaluate_parts(list(pred.parts), minfo[0])
    tile.producer = _gp.affine_select(dst, predicate, t, on_false_value, loc=loc, api="nisa.affine_select")
    return tile


# ------------------------------------------------------------------------------------------------ DMA
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
    """dst = src between HBM and SBUF (optionally dst = dst_rmw_op(dst, src))."""
    loc = caller_location()
    minfo = mask_info(mask)
    d, s = operand(dst, minfo), operand(src, minfo)
    mode = dge_mode.name if isinstance(dge_mode, enum.Enum) else str(dge_mode)
    _dma.dma_copy(d, s, dst_rmw_op=dst_rmw_op, dge_mode=mode, loc=loc, api="nisa.dma_copy")


def dma_transpose(src: Any, *, axes: Any = None, mask: Any = None, dtype: Any = None, **kwargs: Any) -> LegacyTensor:
    """Transpose while moving HBM -> SBUF."""
    loc = caller_location()
    s = operand(src, NO_MASK)
    ax = tuple(axes) if axes is not None else {2: (1, 0), 3: (2, 1, 0), 4: (3, 1, 2, 0)}.get(len(s.shape))
    if ax is None:
        raise NkiValidationError(
            f"nisa.dma_transpose: unsupported rank {len(s.shape)}", code="err_exceed_max_supported_dimension", loc=loc
        )
    shape = tuple(s.shape[a] for a in ax)
    tile, dst = result_tile(shape, dtype or s.dtype)
    tile.producer = _dma.dma_transpose(dst, s, axes=ax, loc=loc, api="nisa.dma_transpose")
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
