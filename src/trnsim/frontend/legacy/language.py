"""`neuronxcc.nki.language` (legacy `nl`): allocation, data movement, element-wise math, reductions,
iterators and launch-grid queries, each lowered onto the ISA instructions of `trnsim.isa`."""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ...core import dtypes as _dt
from ...core.context import current, maybe_current
from ...core.errors import NkiTypeError, NkiUnsupportedError, NkiValidationError
from ...core.memory import HBM, PRIVATE_HBM, PSUM, SBUF, SHARED_HBM, Buffer, allocate
from ...core.source import caller_location, name_from_source
from ...core.tensor import Tensor
from ...isa import alu, dma, scalar_engine, tensor_engine, vector_engine
from .indexing import Arange1D, MGrid
from .lowering import (
    NO_MASK,
    as_column,
    default_binary_dtype,
    full_shape,
    is_tensorish,
    mask_info,
    operand,
    result_tile,
)
from .tensor import DynSlice, LazyAccess, LegacyTensor

# ------------------------------------------------------------------------------------------------ dtypes
bool_ = _dt.bool_
int8, int16, int32 = _dt.int8, _dt.int16, _dt.int32
uint8, uint16, uint32 = _dt.uint8, _dt.uint16, _dt.uint32
float16, float32, bfloat16 = _dt.float16, _dt.float32, _dt.bfloat16
tfloat32 = _dt.tfloat32_marker
float8_e4m3, float8_e5m2 = _dt.float8_e4m3, _dt.float8_e5m2

# ------------------------------------------------------------------------------------------------ buffers
sbuf: Buffer = SBUF
psum: Buffer = PSUM
hbm: Buffer = HBM
private_hbm: Buffer = PRIVATE_HBM
shared_hbm: Buffer = SHARED_HBM


class par_dim(int):  # noqa: N801 - NKI's name
    """Marks the partition dimension inside a shape: nl.par_dim(128)."""

    def __repr__(self) -> str:
        return f"par_dim({int(self)})"


class _TileSize:
    """nl.tile_size: hardware tile limits (per the selected target where they differ)."""

    pmax = 128
    psum_fmax = 512
    psum_bank_fmax = 512
    gemm_stationary_fmax = 128
    gemm_moving_fmax = 512
    bn_stats_fmax = 512
    psum_min_align = 4
    sbuf_min_align = 1
    psum_num_banks = 8
    psum_bank_fmax_bytes = 2048

    @property
    def total_available_sbuf_size(self) -> int:
        run = maybe_current()
        from ...timing.arch import get_arch

        return (run.arch if run else get_arch("trn2")).sbuf_usable_bytes_per_partition

    @property
    def sbuf_fmax_bytes(self) -> int:
        return self.total_available_sbuf_size

    @property
    def sbuf_fmax(self) -> int:
        return self.total_available_sbuf_size // 4


tile_size = _TileSize()


class _FloatConst:
    def __init__(self, min_value: float) -> None:
        self.min = min_value


fp32 = _FloatConst(float(np.float32(-3.4028235e38)))
bfp16 = _FloatConst(float("-inf"))


def _nki_op(name: str) -> Callable[[Callable], Callable]:
    def deco(fn: Callable) -> Callable:
        fn._nki_op = name  # type: ignore[attr-defined]
        return fn

    return deco


def _loc():
    return caller_location(3)


# ------------------------------------------------------------------------------------------------ creation
def _split_shape(shape: Any) -> tuple[tuple[int, ...], int]:
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    shape = tuple(shape)
    pdims = [i for i, s in enumerate(shape) if isinstance(s, par_dim)]
    if len(pdims) > 1:
        raise NkiValidationError(f"shape {shape} has more than one par_dim", code="err_invalid_shape")
    return tuple(int(s) for s in shape), (pdims[0] if pdims else 0)


def _resolve_buffer(buffer: Any) -> Buffer:
    if buffer is None:
        return SBUF
    if isinstance(buffer, Buffer):
        return buffer
    kind = getattr(buffer, "_trnsim_buffer", None)
    if kind is not None:
        return kind
    if isinstance(buffer, str):
        return {"sbuf": SBUF, "psum": PSUM, "hbm": HBM, "private_hbm": PRIVATE_HBM, "shared_hbm": SHARED_HBM}[buffer]
    raise NkiTypeError(f"unknown buffer {buffer!r}", code="err_unsupported_memory", values={"buffer": buffer})


def ndarray(shape: Any, dtype: Any, *, buffer: Any = None, name: str = "", **kwargs: Any) -> LegacyTensor:
    """Allocate an uninitialised tensor (poisoned: NaN for floats, a sentinel for integers)."""
    run = current()
    loc = caller_location()
    shp, pdim = _split_shape(shape)
    buf = _resolve_buffer(buffer)
    dt = _dt.normalize(dtype)
    if buf.on_chip:
        if not shp or shp[pdim] > 128:
            raise NkiValidationError(
                f"size of partition dimension {shp[pdim] if shp else 0} exceeds architecture limitation of 128",
                code="err_num_partition_exceed_arch_limit",
                values={"shape": shp},
                loc=loc,
            )
    if buf.kind == "hbm" and buf.shared:
        cached = run.shared_hbm_lookup(shp, dt)
        if cached is not None:
            return cached  # type: ignore[return-value]
    st, mem, arr, wm = allocate(
        shp,
        dt,
        buf,
        pdim=pdim if buf.on_chip else 0,
        name=name or name_from_source(loc),
        loc=loc,
        core=run.core,
        fill="poison" if run.numerics else "empty",
        track_writes=run.numerics,
    )
    if isinstance(dtype, _dt.TFloat32):
        st.tf32 = True
    t = LegacyTensor(st, mem, arr, wm)
    if buf.kind == "hbm" and buf.shared:
        run.shared_hbm_record(t)
    return t


def _filled(shape: Any, value: Any, dtype: Any, buffer: Any, name: str, api: str) -> LegacyTensor:
    buf = _resolve_buffer(buffer)
    if buf.kind == "hbm":
        raise NkiValidationError(
            f"nl.{api} cannot create an HBM tensor with an initial value",
            code="err_hbm_tensor_with_init_value_not_supported",
            values={"buffer": buf.name},
            loc=caller_location(2),
        )
    t = ndarray(shape, dtype, buffer=buf, name=name)
    from . import isa as nisa

    nisa._memset_into(t, value, caller_location(2))
    return t


def zeros(shape: Any, dtype: Any, *, buffer: Any = None, name: str = "", **kwargs: Any) -> LegacyTensor:
    """Allocate and fill with 0."""
    return _filled(shape, 0, dtype, buffer, name, "zeros")


def ones(shape: Any, dtype: Any, *, buffer: Any = None, name: str = "", **kwargs: Any) -> LegacyTensor:
    """Allocate and fill with 1."""
    return _filled(shape, 1, dtype, buffer, name, "ones")


def full(shape: Any, fill_value: Any, dtype: Any, *, buffer: Any = None, name: str = "", **kwargs: Any) -> LegacyTensor:
    """Allocate and fill with `fill_value`."""
    return _filled(shape, fill_value, dtype, buffer, name, "full")


def zeros_like(a: Any, dtype: Any = None, *, buffer: Any = None, name: str = "", **kwargs: Any) -> LegacyTensor:
    return zeros(a.shape, dtype or a.dtype, buffer=buffer, name=name)


def ones_like(a: Any, dtype: Any = None, *, buffer: Any = None, name: str = "", **kwargs: Any) -> LegacyTensor:
    return ones(a.shape, dtype or a.dtype, buffer=buffer, name=name)


def empty_like(a: Any, dtype: Any = None, *, buffer: Any = None, name: str = "", **kwargs: Any) -> LegacyTensor:
    return ndarray(a.shape, dtype or a.dtype, buffer=buffer or getattr(a, "buffer", None), name=name)


# ------------------------------------------------------------------------------------------------ movement
def load(src: Any, *, mask: Any = None, dtype: Any = None, **kwargs: Any) -> LegacyTensor:
    """HBM -> new SBUF tile (optionally casting)."""
    loc = caller_location()
    _require_buffer(src, ("hbm",), "load", "src", loc)
    minfo = mask_info(mask)
    shape = tuple(src.shape)
    tile, dst = result_tile(shape, dtype or src.dtype, minfo)
    s = operand(src, minfo)
    instr = dma.dma_copy(dst, s, loc=loc, api="nl.load")
    tile.producer = instr
    return tile


def store(dst: Any, value: Any, *, mask: Any = None, **kwargs: Any) -> None:
    """SBUF (or PSUM, copied through SBUF) tile -> HBM."""
    loc = caller_location()
    _require_buffer(dst, ("hbm",), "store", "dst", loc)
    minfo = mask_info(mask)
    d = operand(dst, minfo)
    v = operand(value, minfo)
    if not isinstance(v, Tensor):
        raise NkiTypeError(
            "nl.store: value must be a tile", code="err_invalid_operand", values={"value": value}, loc=loc
        )
    if v.storage.buffer.kind == "psum":
        tmp, tv = result_tile(tuple(v.shape), v.dtype)
        vector_engine.tensor_copy(tv, v, loc=loc, api="nl.store(psum->sbuf)")
        v = tmp
    if v.storage.buffer.kind == "hbm":
        raise NkiValidationError(
            "nl.store: value must be an on-chip tile, not an HBM tensor", code="err_unsupported_memory", loc=loc
        )
    if v.size != d.size:
        v = v.broadcast(tuple(d.shape))
    dma.dma_copy(d, v, loc=loc, api="nl.store")


def load_transpose2d(src: Any, *, mask: Any = None, dtype: Any = None, **kwargs: Any) -> LegacyTensor:
    """HBM [a, b] -> SBUF [b, a] via a DMA transpose."""
    loc = caller_location()
    _require_buffer(src, ("hbm",), "load_transpose2d", "src", loc)
    if isinstance(src, LazyAccess) and any(isinstance(k, (Tensor, LazyAccess)) for k in src.key):
        raise NkiValidationError(
            "nl.load_transpose2d does not take indirect indices",
            code="err_indirect_indices_are_not_supported_with_nki_api",
            loc=loc,
        )
    s = operand(src, mask_info(mask))  # the mask restricts the source box (ragged edge tiles)
    if len(s.shape) != 2:
        raise NkiValidationError(
            f"nl.load_transpose2d needs a 2-D source, got {s.shape}", code="err_exceed_max_supported_dimension", loc=loc
        )
    tile, dst = result_tile((s.shape[1], s.shape[0]), dtype or s.dtype)
    tile.producer = dma.dma_transpose(dst, s, axes=(1, 0), loc=loc, api="nl.load_transpose2d")
    return tile


def copy(src: Any, *, mask: Any = None, dtype: Any = None, **kwargs: Any) -> LegacyTensor:
    """New SBUF tile copied (and optionally cast) from an on-chip tile."""
    loc = caller_location()
    minfo = mask_info(mask)
    s = operand(src, minfo)
    if s.storage.buffer.kind == "hbm":
        raise NkiValidationError(
            "nl.copy: source must be on chip (use nl.load for HBM)", code="err_unsupported_memory", loc=loc
        )
    tile, dst = result_tile(tuple(src.shape), dtype or src.dtype, minfo)
    tile.producer = vector_engine.tensor_copy(dst, s, loc=loc, api="nl.copy")
    return tile


def broadcast_to(src: Any, *, shape: Any, **kwargs: Any) -> LegacyTensor:
    """Broadcast a tile to `shape` (NumPy rules; partition broadcast allowed)."""
    loc = caller_location()
    s = operand(src)
    shape = tuple(shape)
    tile, dst = result_tile(shape, s.dtype)
    tile.producer = vector_engine.tensor_tensor(
        dst, s, s, "bypass", allow_broadcast=True, loc=loc, api="nl.broadcast_to"
    )
    return tile


def _require_buffer(x: Any, kinds: tuple[str, ...], api: str, name: str, loc) -> None:
    if not is_tensorish(x):
        raise NkiTypeError(
            f"nl.{api}: '{name}' must be a tensor, got {type(x).__name__}",
            code="err_invalid_operand",
            values={name: x},
            loc=loc,
        )
    kind = x.buffer.kind
    if kind not in kinds:
        raise NkiValidationError(
            f"nl.{api}: '{name}' must be in {'/'.join(k.upper() for k in kinds)}, but it is in {x.buffer.name.upper()}",
            code="err_unsupported_memory",
            values={name: getattr(x.storage, "name", "?"), "buffer": x.buffer.name},
            loc=loc,
        )


# ------------------------------------------------------------------------------------------------ element-wise
def _binary(opname: str, x: Any, y: Any, dtype: Any, mask: Any, api: str, default_dtype: Any = None) -> Any:
    loc = caller_location(2)
    if not is_tensorish(x) and not is_tensorish(y):
        return alu.apply_binary(opname, np.float32(x), np.float32(y)).item()
    for nm, v in (("x", x), ("y", y)):
        if is_tensorish(v) and v.buffer.kind == "hbm":
            raise NkiValidationError(
                f"nl.{api}: operand '{nm}' is in HBM; compute instructions read SBUF or PSUM",
                code="err_unsupported_memory",
                values={nm: v.storage.name},
                loc=loc,
                hint="load it with nl.load first",
            )
    minfo = mask_info(mask)
    shape = full_shape(x, y)
    out_dt = dtype or default_dtype or default_binary_dtype(x, y)
    tile, dst = result_tile(shape, out_dt, minfo)
    xo, yo = operand(x, minfo), operand(y, minfo)
    parts = shape[0] if shape else 1
    if is_tensorish(x) and is_tensorish(y):
        x_full = tuple(xo.shape) == tuple(dst.shape)
        y_full = tuple(yo.shape) == tuple(dst.shape)
        if x_full and y_full:
            instr = vector_engine.tensor_tensor(dst, xo, yo, opname, loc=loc, api=f"nl.{api}")
        elif x_full and as_column(yo, dst.partitions) and len(yo.shape) == len(dst.shape):
            instr = vector_engine.tensor_scalar(dst, xo, opname, yo, loc=loc, api=f"nl.{api}")
        elif y_full and as_column(xo, dst.partitions) and len(xo.shape) == len(dst.shape):
            instr = vector_engine.tensor_scalar(dst, yo, opname, xo, reverse0=True, loc=loc, api=f"nl.{api}")
        else:
            instr = vector_engine.tensor_tensor(dst, xo, yo, opname, allow_broadcast=True, loc=loc, api=f"nl.{api}")
    elif is_tensorish(x):
        data = xo if tuple(xo.shape) == tuple(dst.shape) else xo.broadcast(tuple(dst.shape))
        instr = vector_engine.tensor_scalar(dst, data, opname, y, loc=loc, api=f"nl.{api}")
    else:
        data = yo if tuple(yo.shape) == tuple(dst.shape) else yo.broadcast(tuple(dst.shape))
        instr = vector_engine.tensor_scalar(dst, data, opname, x, reverse0=True, loc=loc, api=f"nl.{api}")
    del parts
    tile.producer = instr
    return tile


def _make_binary(opname: str, api: str, default_dtype: Any = None, doc: str = "") -> Callable:
    def fn(x: Any, y: Any, *, dtype: Any = None, mask: Any = None, **kwargs: Any) -> Any:
        return _binary(opname, x, y, dtype, mask, api, default_dtype)

    fn.__name__ = api
    fn.__qualname__ = api
    fn.__doc__ = doc or f"Element-wise {api}(x, y) (NumPy broadcasting; fp32 math)."
    fn._nki_op = opname  # type: ignore[attr-defined]
    return fn


add = _make_binary("add", "add")
subtract = _make_binary("subtract", "subtract")
multiply = _make_binary("multiply", "multiply")
divide = _make_binary("divide", "divide")
power = _make_binary("power", "power")
maximum = _make_binary("maximum", "maximum")
minimum = _make_binary("minimum", "minimum")
fmod = _make_binary("fmod", "fmod")
mod = _make_binary("mod", "mod")
equal = _make_binary("equal", "equal", _dt.bool_)
not_equal = _make_binary("not_equal", "not_equal", _dt.bool_)
greater = _make_binary("greater", "greater", _dt.bool_)
greater_equal = _make_binary("greater_equal", "greater_equal", _dt.bool_)
less = _make_binary("less", "less", _dt.bool_)
less_equal = _make_binary("less_equal", "less_equal", _dt.bool_)
logical_and = _make_binary("logical_and", "logical_and", _dt.bool_)
logical_or = _make_binary("logical_or", "logical_or", _dt.bool_)
logical_xor = _make_binary("logical_xor", "logical_xor", _dt.bool_)
bitwise_and = _make_binary("bitwise_and", "bitwise_and")
bitwise_or = _make_binary("bitwise_or", "bitwise_or")
bitwise_xor = _make_binary("bitwise_xor", "bitwise_xor")
left_shift = _make_binary("left_shift", "left_shift")
right_shift = _make_binary("right_shift", "right_shift")


def _unary(
    opname: str, x: Any, dtype: Any, mask: Any, api: str, engine: str = "scalar", default_dtype: Any = None
) -> Any:
    loc = caller_location(2)
    if not is_tensorish(x):
        return float(alu.unary(opname)(np.float32(x)))
    if x.buffer.kind == "hbm":
        raise NkiValidationError(
            f"nl.{api}: operand is in HBM; compute instructions read SBUF or PSUM",
            code="err_unsupported_memory",
            values={"x": x.storage.name},
            loc=loc,
            hint="load it with nl.load first",
        )
    minfo = mask_info(mask)
    tile, dst = result_tile(tuple(x.shape), dtype or default_dtype or x.dtype, minfo)
    xo = operand(x, minfo)
    if engine == "scalar":
        instr = scalar_engine.activation(dst, opname, xo, loc=loc, api=f"nl.{api}")
    else:
        instr = vector_engine.tensor_scalar(dst, xo, opname, None, loc=loc, api=f"nl.{api}")
    tile.producer = instr
    return tile


def _make_unary(opname: str, api: str, engine: str = "scalar", default_dtype: Any = None) -> Callable:
    def fn(x: Any, *, dtype: Any = None, mask: Any = None, **kwargs: Any) -> Any:
        return _unary(opname, x, dtype, mask, api, engine, default_dtype)

    fn.__name__ = api
    fn.__qualname__ = api
    fn.__doc__ = (
        f"Element-wise {api}(x) ({'Scalar-engine activation' if engine == 'scalar' else 'Vector engine'}; fp32 math)."
    )
    fn._nki_op = opname  # type: ignore[attr-defined]
    return fn


exp = _make_unary("exp", "exp")
log = _make_unary("log", "log")
tanh = _make_unary("tanh", "tanh")
sqrt = _make_unary("sqrt", "sqrt")
rsqrt = _make_unary("rsqrt", "rsqrt")
square = _make_unary("square", "square")
sigmoid = _make_unary("sigmoid", "sigmoid")
relu = _make_unary("relu", "relu")
gelu = _make_unary("gelu", "gelu")
gelu_dx = _make_unary("gelu_dx", "gelu_dx")
gelu_apprx_tanh = _make_unary("gelu_apprx_tanh", "gelu_apprx_tanh")
gelu_apprx_sigmoid = _make_unary("gelu_apprx_sigmoid", "gelu_apprx_sigmoid")
silu = _make_unary("silu", "silu")
silu_dx = _make_unary("silu_dx", "silu_dx")
erf = _make_unary("erf", "erf")
erf_dx = _make_unary("erf_dx", "erf_dx")
softplus = _make_unary("softplus", "softplus")
mish = _make_unary("mish", "mish")
arctan = _make_unary("arctan", "arctan")
sign = _make_unary("sign", "sign")
abs = _make_unary("abs", "abs", "vector")  # noqa: A001 - NKI's name
reciprocal = _make_unary("reciprocal", "reciprocal")
negative = _make_unary("negative", "negative", "vector")
floor = _make_unary("floor", "floor", "vector")
ceil = _make_unary("ceil", "ceil", "vector")
trunc = _make_unary("trunc", "trunc", "vector")
cos = _make_unary("cos", "cos")
tan = _make_unary("tan", "tan")
invert = _make_unary("invert", "invert", "vector")
logical_not = _make_unary("logical_not", "logical_not", "vector", _dt.bool_)


def sin(x: Any, *, dtype: Any = None, mask: Any = None, **kwargs: Any) -> Any:
    """Sine with range reduction to [-pi, pi] (two Vector ops) before the Scalar engine's sin."""
    loc = caller_location()
    if not is_tensorish(x):
        return math.sin(x)
    minfo = mask_info(mask)
    xo = operand(x, minfo)
    red, rv = result_tile(tuple(x.shape), _dt.float32, minfo)
    vector_engine.tensor_scalar(
        rv, xo, "add", float(np.pi), op1="mod", operand1=float(2 * np.pi), loc=loc, api="nl.sin"
    )
    vector_engine.tensor_scalar(rv, rv, "subtract", float(np.pi), loc=loc, api="nl.sin")
    tile, dst = result_tile(tuple(x.shape), dtype or x.dtype, minfo)
    tile.producer = scalar_engine.activation(dst, "sin", rv, loc=loc, api="nl.sin")
    return tile


sin._nki_op = "sin"  # type: ignore[attr-defined]

# `nl.copy` is also used as the identity activation op.
copy._nki_op = "copy"  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------------ reductions
def _reduce(opname: str, x: Any, axis: Any, dtype: Any, mask: Any, keepdims: bool, api: str) -> LegacyTensor:
    loc = caller_location(2)
    minfo = mask_info(mask)
    xo = operand(x, minfo)
    axes = vector_engine.normalize_axes(axis, len(x.shape), f"nl.{api}", loc)
    shape = (
        tuple(1 if i in axes else n for i, n in enumerate(x.shape))
        if keepdims
        else tuple(n for i, n in enumerate(x.shape) if i not in axes)
    )
    ranges = {a: r for a, r in minfo[0].items() if a not in axes}
    tile, dst = result_tile(
        shape, dtype or x.dtype, (ranges, []) if keepdims else ({k: v for k, v in ranges.items() if k == 0}, [])
    )
    tile.producer = vector_engine.tensor_reduce(dst, opname, xo, axes, keepdims=keepdims, loc=loc, api=f"nl.{api}")
    return tile


def _make_reduce(opname: str, api: str) -> Callable:
    def fn(x: Any, axis: Any, *, dtype: Any = None, mask: Any = None, keepdims: bool = False, **kwargs: Any) -> Any:
        return _reduce(opname, x, axis, dtype, mask, keepdims, api)

    fn.__name__ = api
    fn.__qualname__ = api
    fn.__doc__ = f"{api} over free axes (Vector engine tensor_reduce)."
    fn._nki_op = opname  # type: ignore[attr-defined]
    return fn


sum = _make_reduce("add", "sum")  # noqa: A001
prod = _make_reduce("multiply", "prod")
max = _make_reduce("maximum", "max")  # noqa: A001
min = _make_reduce("minimum", "min")  # noqa: A001


def all(x: Any, axis: Any, *, dtype: Any = _dt.bool_, mask: Any = None, **kwargs: Any) -> Any:  # noqa: A001
    """Logical AND over free axes."""
    return _reduce("logical_and", x, axis, dtype, mask, kwargs.get("keepdims", False), "all")


all._nki_op = "logical_and"  # type: ignore[attr-defined]


def mean(x: Any, axis: Any, *, dtype: Any = None, mask: Any = None, keepdims: bool = False, **kwargs: Any) -> Any:
    """Mean over free axes (fp32 sum, then a scale)."""
    loc = caller_location()
    s = _reduce("add", x, axis, _dt.float32, mask, keepdims, "mean")
    axes = vector_engine.normalize_axes(axis, len(x.shape), "nl.mean", loc)
    n = int(np.prod([x.shape[a] for a in axes]))
    tile, dst = result_tile(tuple(s.shape), dtype or x.dtype)
    tile.producer = vector_engine.tensor_scalar(dst, s, "multiply", 1.0 / n, loc=loc, api="nl.mean")
    return tile


def var(x: Any, axis: Any, *, dtype: Any = None, mask: Any = None, **kwargs: Any) -> Any:
    """Population variance over free axes: mean((x - mean)^2)."""
    loc = caller_location()
    m = mean(x, axis, dtype=_dt.float32, mask=mask, keepdims=True)
    xo = operand(x, mask_info(mask))
    centered, cv = result_tile(tuple(xo.shape), _dt.float32)
    vector_engine.tensor_scalar(
        cv, xo, "subtract", m, loc=loc, api="nl.var"
    ) if m.free_size == 1 else vector_engine.tensor_tensor(
        cv, xo, m, "subtract", allow_broadcast=True, loc=loc, api="nl.var"
    )
    sq, sqv = result_tile(tuple(xo.shape), _dt.float32)
    scalar_engine.activation(sqv, "square", centered, loc=loc, api="nl.var")
    return mean(sq, axis, dtype=dtype or x.dtype, keepdims=kwargs.get("keepdims", False))


# ------------------------------------------------------------------------------------------------ selection
def where(condition: Any, x: Any, y: Any, *, dtype: Any = None, mask: Any = None, **kwargs: Any) -> Any:
    """Select x where condition is true, else y (Vector select)."""
    loc = caller_location()
    minfo = mask_info(mask)
    shape = full_shape(condition, x, y)
    out_dt = dtype or default_binary_dtype(x, y)
    tile, dst = result_tile(shape, out_dt, minfo)
    c = operand(condition, minfo)
    xo, yo = operand(x, minfo), operand(y, minfo)
    tile.producer = vector_engine.select(dst, c, xo, yo, loc=loc, api="nl.where")
    return tile


def ds(start: Any, size: int) -> DynSlice:
    """Dynamic slice: ds(start, size) == start:start+size."""
    return DynSlice(start, size)


def arange(*args: int) -> Arange1D:
    """1-D index vector; lift with [:, None] / [None, :] before indexing."""
    if len(args) == 1:
        return Arange1D(0, args[0])
    return Arange1D(*args)


mgrid = MGrid()


def expand_dims(data: Any, axis: int) -> Any:
    """Insert a size-1 axis (a view)."""
    return operand(data).expand_dims(axis) if isinstance(operand(data), LegacyTensor) else operand(data)


# ------------------------------------------------------------------------------------------------ matmul
def matmul(x: Any, y: Any, *, transpose_x: bool = False, mask: Any = None, **kwargs: Any) -> LegacyTensor:
    """x @ y on the Tensor engine into a new fp32 PSUM tile. transpose_x=True: x is already [K, M]."""
    loc = caller_location()
    minfo = mask_info(mask)
    xo, yo = operand(x, minfo), operand(y, minfo)
    if not transpose_x:
        # x is [M, K]: transpose it on the PE array first (as the compiler does).
        m, k = xo.shape[0], xo.free_size
        xt_psum, xtp = result_tile((k, m), _dt.float32, buffer=PSUM)
        tensor_engine.nc_transpose_pe(xtp, xo, loc=loc, api="nl.matmul(transpose)")
        xt, xtv = result_tile((k, m), xo.dtype)
        vector_engine.tensor_copy(xtv, xt_psum, loc=loc, api="nl.matmul(transpose)")
        xo = xt
    m = xo.free_size
    n = yo.free_size
    tile, dst = result_tile((m, n), _dt.float32, buffer=PSUM)
    tile.producer = tensor_engine.nc_matmul(dst, xo, yo, accumulate=False, loc=loc, api="nl.matmul")
    return tile


def transpose(x: Any, *, dtype: Any = None, mask: Any = None, **kwargs: Any) -> LegacyTensor:
    """Swap the partition and free dimension of a 2-D tile (<= [128, 128]) on the PE array -> PSUM."""
    loc = caller_location()
    xo = operand(x, mask_info(mask))
    if len(xo.shape) != 2:
        raise NkiValidationError(
            f"nl.transpose needs a 2-D tile, got {xo.shape}", code="err_exceed_max_supported_dimension", loc=loc
        )
    p, f = xo.shape
    tile, dst = result_tile((f, p), dtype or xo.dtype, buffer=PSUM)
    tile.producer = tensor_engine.nc_transpose_pe(dst, xo, loc=loc, api="nl.transpose")
    return tile


# ------------------------------------------------------------------------------------------------ iterators
class _LoopRange:
    """Iterator returned by affine_range / sequential_range / static_range."""

    __slots__ = ("kind", "rng", "loc")

    def __init__(self, kind: str, args: tuple) -> None:
        self.kind = kind
        self.rng = range(*(int(a) for a in args))
        self.loc = caller_location(3)

    def __len__(self) -> int:
        return len(self.rng)

    def __iter__(self):
        run = maybe_current()
        if run is None:
            yield from self.rng
            return
        with run.loop(self.kind, len(self.rng), self.loc) as frame:
            for i, v in enumerate(self.rng):
                frame.iteration = i
                yield v


def affine_range(*args: Any, **kwargs: Any) -> _LoopRange:
    """Parallel loop: iterations must not depend on each other (except PSUM matmul accumulation)."""
    return _LoopRange("affine", args)


def sequential_range(*args: Any, **kwargs: Any) -> _LoopRange:
    """Loop with a loop-carried dependency (iterations run in order)."""
    return _LoopRange("sequential", args)


def static_range(*args: Any, **kwargs: Any) -> _LoopRange:
    """Loop unrolled at trace time."""
    return _LoopRange("static", args)


# ------------------------------------------------------------------------------------------------ SPMD
def program_id(axis: int) -> int:
    """Index of this program along `axis` of the launch grid."""
    run = current()
    if not run.grid:
        return 0
    if not 0 <= axis < len(run.grid):
        raise NkiValidationError(
            f"program_id axis {axis} out of range for a {len(run.grid)}-D grid",
            code="err_invalid_program_axis",
            values={"axis": axis, "grid": run.grid},
        )
    return run.program_id[axis]


def num_programs(axes: Any = None) -> int:
    """Number of programs along `axes` (None: all)."""
    run = current()
    if not run.grid:
        return 1
    if axes is None:
        return int(np.prod(run.grid))
    if isinstance(axes, (tuple, list)):
        return int(np.prod([run.grid[a] for a in axes]))
    return run.grid[axes]


def program_ndim() -> int:
    """Rank of the launch grid."""
    return len(current().grid)


class nc:  # noqa: N801 - NKI's name
    """Grid dimension spread over `n` physical NeuronCores: kernel[nl.nc(2), 4]."""

    def __init__(self, n: int) -> None:
        self.n = int(n)

    def __int__(self) -> int:
        return self.n

    def __index__(self) -> int:
        return self.n

    def __mul__(self, other: int) -> spmd_dim:
        return spmd_dim(self, other)

    def __rmul__(self, other: int) -> spmd_dim:
        return spmd_dim(other, self)

    def __repr__(self) -> str:
        return f"nc({self.n})"


class spmd_dim:  # noqa: N801 - NKI's name
    """One grid dimension of size a*b built from two factors (one may be nl.nc(k))."""

    def __init__(self, a: Any, b: Any) -> None:
        self.a, self.b = a, b

    def __int__(self) -> int:
        return int(self.a) * int(self.b)

    def __index__(self) -> int:
        return int(self)

    def core_of(self, index: int) -> int:
        ib = int(self.b)
        ia, jb = divmod(index, ib)
        if isinstance(self.a, nc):
            return ia
        if isinstance(self.b, nc):
            return jb
        return 0


# ------------------------------------------------------------------------------------------------ misc
def device_print(prefix: str, x: Any, *, mask: Any = None, **kwargs: Any) -> None:
    """Print a tile's values (in simulation)."""
    run = current()
    if not run.numerics:
        return
    t = operand(x, mask_info(mask))
    text = f"{prefix}{np.array2string(np.asarray(t.read()).astype(np.float64) if t.dtype.kind == 'V' else t.read())}"
    run.printed.append(text)
    builtins.print(text)


def static_cast(input_data: Any, dtype: Any) -> Any:
    """Host-side cast of a scalar or NumPy array to an NKI dtype (round-to-nearest-even)."""
    dt = _dt.normalize(dtype)
    arr = np.asarray(input_data)
    if arr.dtype.kind in "iu" and dt in _dt.LOW_PRECISION_FLOATS:
        arr = arr.astype(np.float32)
    if _dt.is_int(dt) and arr.dtype.kind == "f":
        return _dt.cast_to(arr.astype(np.float32), dt)
    return arr.astype(dt)


def finfo(dtype: Any) -> Any:
    """NumPy-style float info of an NKI dtype."""
    import ml_dtypes

    return ml_dtypes.finfo(_dt.normalize(dtype))


def gemm_grid():
    """Index grid of a matmul result / moving tile [128, 512]."""
    return mgrid[0:128, 0:512]


def gemm_stationary_grid():
    """Index grid of a matmul stationary tile [128, 128]."""
    return mgrid[0:128, 0:128]


def _not_implemented(name: str) -> Callable:
    def fn(*args: Any, **kwargs: Any) -> Any:
        raise NkiUnsupportedError(
            f"nl.{name} is not implemented in trnsim yet",
            code="err_unsupported_api",
            values={"api": f"nl.{name}"},
            hint="see docs/coverage.md for the implemented API",
        )

    fn.__name__ = name
    fn._trnsim_missing = True  # type: ignore[attr-defined]
    return fn


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    raise NkiUnsupportedError(
        f"nl.{name} is not part of the legacy nki.language API implemented by trnsim",
        code="err_unsupported_api",
        values={"api": f"nl.{name}"},
        hint="see docs/coverage.md for the implemented API",
    )
