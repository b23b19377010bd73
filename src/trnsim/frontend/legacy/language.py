"""`neuronxcc.nki.language` (legacy `nl`): allocation, data movement, element-wise math, reductions,
iterators and launch-grid queries, each lowered onto the ISA instructions of `trnsim.isa`."""

from __future__ import annotations

import builtins
import functools
import itertools
import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from ...core import dtypes as _dt
from ...core.context import current, maybe_current
from ...core.errors import NkiDeadlockError, NkiTypeError, NkiUnsupportedError, NkiValidationError
from ...core.imports import lazy_module
from ...core.memory import HBM, PRIVATE_HBM, PSUM, SBUF, SHARED_HBM, Buffer, allocate, allocate_tile, wrap_host_array
from ...core.source import caller_location, is_internal_file, name_from_source
from ...core.tensor import Tensor
from ...isa import alu, dma, gpsimd_engine, scalar_engine, tensor_engine, vector_engine
from .indexing import Arange1D, MGrid, positional
from .lowering import (
    NO_MASK,
    DeadTile,
    MaskedOff,
    as_column,
    default_binary_dtype,
    full_shape,
    is_tensorish,
    mask_info,
    operand,
    pad_rank,
    result_tile,
    skip_when_masked_off,
    wrap_masked_apis,
)
from .tensor import DynamicIndex, DynSlice, LazyAccess, LegacyTensor, fresh_tile, new_tile

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
    if type(shape) is tuple:  # the common case, a tuple of plain ints (a par_dim is not exactly an int)
        for s in shape:
            if type(s) is not int:
                break
        else:
            return shape, 0
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


_isa = lazy_module(__package__ + ".isa")  # (imports this module)

#: (shape, dtype) as passed -> (shape, normalised dtype) of plain on-chip tiles whose shape passed the checks
_PLAIN_TILES: dict[tuple, tuple[tuple[int, ...], np.dtype]] = {}


def ndarray(shape: Any, dtype: Any, *, buffer: Any = None, name: str = "", **kwargs: Any) -> LegacyTensor:
    """Allocate an uninitialised tensor (poisoned: NaN for floats, a sentinel for integers)."""
    run = current()
    loc = caller_location()
    if type(shape) is tuple and type(buffer) is Buffer and buffer.kind != "hbm":
        # a plain SBUF / PSUM tile (loops allocate the same few shapes over and over): the shape and dtype were
        # checked and normalised the first time they came
        try:
            hit = _PLAIN_TILES.get((shape, dtype))
        except TypeError:  # an unhashable argument: the general path below
            hit = None
        if hit is None:
            shp, pdim = _split_shape(shape)
            if not pdim and shp and shp[0] <= 128:
                if len(_PLAIN_TILES) >= 4096:
                    _PLAIN_TILES.clear()
                hit = _PLAIN_TILES[(shape, dtype)] = (shp, _dt.normalize(dtype))
        if hit is not None:
            st, mem, arr, wm = allocate_tile(hit[0], hit[1], buffer, name or name_from_source(loc), loc, run.core,
                                             run.numerics and not kwargs.get("_overwritten"), run.numerics)
            if isinstance(dtype, _dt.TFloat32):
                st.tf32 = True
            return fresh_tile(st, mem, arr, wm)
    shp, pdim = _split_shape(shape)
    buf = _resolve_buffer(buffer)
    dt = _dt.normalize(dtype)
    if buffer is not buf and _is_direct_allocation(buffer) and "direct_allocation" not in run.extra:
        run.extra["direct_allocation"] = loc  # a direct-allocation kernel (ncc.sbuf / ncc.psum alloc, mod_alloc)
    if buf.on_chip:
        if not shp or shp[pdim] > 128:
            raise NkiValidationError(
                f"size of partition dimension {shp[pdim] if shp else 0} exceeds architecture limitation of 128",
                code="err_num_partition_exceed_arch_limit",
                values={"shape": shp},
                loc=loc,
            )
    if buf.kind == "hbm" and buf.shared and _in_user_loop(run):
        raise NkiValidationError(
            f"a shared_hbm tensor ('{name or name_from_source(loc) or '?'}') is created inside a loop; shared_hbm "
            f"tensors may only be created at the top level of the kernel",
            code="err_shared_hbm_must_in_kernel_level",
            values={"shape": shp},
            loc=loc,
            hint="allocate it before the loop (or use nl.hbm / nl.private_hbm for a per-iteration scratch tensor)",
        )
    if buf.kind == "hbm" and buf.shared:
        cached = run.shared_hbm_lookup(shp, dt)
        if cached is not None:
            return cached  # type: ignore[return-value]
    # (`_overwritten`: internal, nl.zeros / ones / full fill the whole tile right away, so no poison first)
    poison = run.numerics and not kwargs.get("_overwritten")
    if buf.on_chip and not pdim:  # a plain tile: the allocation fast path of instruction results
        st, mem, arr, wm = allocate_tile(shp, dt, buf, name or name_from_source(loc), loc, run.core, poison, run.numerics)
    else:
        st, mem, arr, wm = allocate(
            shp,
            dt,
            buf,
            pdim=pdim if buf.on_chip else 0,
            name=name or name_from_source(loc),
            loc=loc,
            core=run.core,
            fill="poison" if poison else "empty",
            track_writes=run.numerics,
        )
    if isinstance(dtype, _dt.TFloat32):
        st.tf32 = True
    t = fresh_tile(st, mem, arr, wm)
    if buf.kind == "hbm" and buf.shared:
        run.shared_hbm_record(t)
    return t


def _in_user_loop(run: Any) -> bool:
    """Is the kernel inside one of its own loops (not counting the launch's loop over SPMD programs)?"""
    loops = run.loops
    if loops and run.grid and loops[0].loc.func == run.kernel_name and loops[0].trip == math.prod(run.grid):
        loops = loops[1:]
    return builtins.bool(loops)


def _is_direct_allocation(buffer: Any) -> bool:
    """Is `buffer` a direct-allocation object (`ncc.sbuf.mod_alloc(...)`, `ncc.psum.alloc(func)`, ...)?"""
    return getattr(buffer, "how", None) in ("alloc", "mod_alloc") and hasattr(buffer, "_trnsim_buffer")


def _filled(
    shape: Any, value: Any, dtype: Any, buffer: Any, name: str, api: str, lazy: bool = False
) -> LegacyTensor:
    buf = _resolve_buffer(buffer)
    if buffer is not buf and _is_direct_allocation(buffer) and not lazy:
        raise NkiValidationError(
            f"nl.{api} creates an SBUF/PSUM tensor with an initial value in a direct-allocation kernel "
            f"(buffer={buffer!r}); allocated kernels cannot create on-chip tensors with init values",
            code="err_tensor_creation_on_scratchpad_with_init_value_not_supported",
            values={"buffer": repr(buffer)},
            loc=caller_location(2),
            hint="allocate it with nl.ndarray(..., buffer=...) and fill it with nisa.memset (or t[...] = value)",
        )
    if buf.kind == "hbm":
        raise NkiValidationError(
            f"nl.{api} cannot create an HBM tensor with an initial value",
            code="err_hbm_tensor_with_init_value_not_supported",
            values={"buffer": buf.name},
            loc=caller_location(2),
        )
    t = ndarray(shape, dtype, buffer=buf, name=name, _overwritten=True)
    nisa = _isa()
    nb = len(t.storage.block_shape)
    # with leading block dims (`nl.zeros((n, par_dim(128), d))`) one memset fills the allocation partition-first
    dst = t.transposed((nb,) + tuple(i for i in range(t.ndim) if i != nb)) if nb and t.ndim > nb else t
    nisa._memset_into(dst, value, caller_location(2))
    return t


def zeros(shape: Any, dtype: Any, *, buffer: Any = None, name: str = "", **kwargs: Any) -> LegacyTensor:
    """Allocate and fill with 0."""
    return _filled(shape, 0, dtype, buffer, name, "zeros", bool(kwargs.get("lazy_initialization")))


def ones(shape: Any, dtype: Any, *, buffer: Any = None, name: str = "", **kwargs: Any) -> LegacyTensor:
    """Allocate and fill with 1."""
    return _filled(shape, 1, dtype, buffer, name, "ones", bool(kwargs.get("lazy_initialization")))


def full(shape: Any, fill_value: Any, dtype: Any, *, buffer: Any = None, name: str = "", **kwargs: Any) -> LegacyTensor:
    """Allocate and fill with `fill_value`."""
    return _filled(shape, fill_value, dtype, buffer, name, "full", bool(kwargs.get("lazy_initialization")))


def zeros_like(a: Any, dtype: Any = None, *, buffer: Any = None, name: str = "", **kwargs: Any) -> LegacyTensor:
    """A new tile of `a`'s shape (and dtype unless given) filled with 0."""
    return zeros(a.shape, dtype or a.dtype, buffer=buffer, name=name)


def ones_like(a: Any, dtype: Any = None, *, buffer: Any = None, name: str = "", **kwargs: Any) -> LegacyTensor:
    """A new tile of `a`'s shape (and dtype unless given) filled with 1."""
    return ones(a.shape, dtype or a.dtype, buffer=buffer, name=name)


def empty_like(a: Any, dtype: Any = None, *, buffer: Any = None, name: str = "", **kwargs: Any) -> LegacyTensor:
    """Uninitialised tensor shaped like `a` (G1: in SBUF unless `buffer` says otherwise)."""
    return ndarray(a.shape, dtype or a.dtype, buffer=buffer, name=name)


# ------------------------------------------------------------------------------------------------ movement
def load(src: Any, *, mask: Any = None, dtype: Any = None, **kwargs: Any) -> LegacyTensor:
    """HBM -> new SBUF tile (optionally casting)."""
    if mask is None and dtype is None:
        # the common case (an HBM view or index-expression subscript, no mask, no cast): what the general path
        # does, without its operand analysis (the whole result tile is the DMA's destination)
        view = src.plain_view() if type(src) is LazyAccess else src
        if type(view) is LegacyTensor and view.index is None and view.storage.buffer.kind == "hbm":
            loc = caller_location()
            tile = new_tile(view.array.shape, view.storage.dtype, overwritten=True, loc=loc)
            tile.producer = dma.dma_copy(tile, view, loc=loc, api="nl.load")
            return tile
    return _load(src, mask=mask, dtype=dtype, **kwargs)


# (called without a mask, the fast path cannot be masked off; every other call goes through the wrapped _load)
load._masked_off_handled = True  # type: ignore[attr-defined]


@skip_when_masked_off
def _load(src: Any, *, mask: Any = None, dtype: Any = None, **kwargs: Any) -> LegacyTensor:
    """`load` with a mask, a cast or a source the fast path does not take."""
    loc = caller_location()
    _require_buffer(src, ("hbm",), "load", "src", loc)
    minfo = mask_info(mask)
    shape = tuple(src.shape)
    tile, dst = result_tile(shape, dtype or src.dtype, minfo, overwritten=True, loc=loc)
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
        tmp, tv = result_tile(tuple(v.shape), v.dtype, loc=loc)
        vector_engine.tensor_copy(tv, v, loc=loc, api="nl.store(psum->sbuf)")
        v = tmp
    if v.storage.buffer.kind == "hbm":
        raise NkiValidationError(
            "nl.store: value must be an on-chip tile, not an HBM tensor", code="err_unsupported_memory", loc=loc
        )
    if v.size != d.size:
        try:
            ok = np.broadcast_shapes(tuple(v.shape), tuple(d.shape)) == tuple(d.shape)
        except ValueError:
            ok = False
        if not ok:
            raise NkiValidationError(
                f"nl.store: value of shape {tuple(v.shape)} does not fit the destination of shape {tuple(d.shape)} "
                f"(only broadcasting the value to the destination is allowed)",
                code="err_store_dst_shape_smaller_than_other_shape",
                values={"dst": tuple(d.shape), "value": tuple(v.shape)},
                loc=loc,
            )
        v = v.broadcast(tuple(d.shape))
    dma.dma_copy(d, v, loc=loc, api="nl.store")


def load_transpose2d(src: Any, *, mask: Any = None, dtype: Any = None, **kwargs: Any) -> LegacyTensor:
    """HBM [a, b] -> SBUF [b, a] via a DMA transpose."""
    loc = caller_location()
    _require_buffer(src, ("hbm",), "load_transpose2d", "src", loc)
    if isinstance(src, LazyAccess) and any(isinstance(k, (Tensor, LazyAccess, DynamicIndex)) for k in src.key):
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
    tile, dst = result_tile((s.shape[1], s.shape[0]), dtype or s.dtype, loc=loc)
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
    tile, dst = result_tile(tuple(src.shape), dtype or src.dtype, minfo, overwritten=True, loc=loc)
    tile.producer = vector_engine.tensor_copy(dst, s, loc=loc, api="nl.copy")
    return tile


def broadcast_to(src: Any, *, shape: Any, **kwargs: Any) -> LegacyTensor:
    """Broadcast a tile to `shape` (NumPy rules; partition broadcast allowed)."""
    loc = caller_location()
    _require_on_chip(src, "broadcast_to", "src", loc)
    s = operand(src)
    shape = tuple(int(n) for n in shape)
    if tuple(s.shape) == shape:
        return src
    try:
        ok = len(s.shape) <= len(shape) and np.broadcast_shapes(tuple(s.shape), shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise NkiValidationError(
            f"nl.broadcast_to: a tile of shape {tuple(s.shape)} cannot be broadcast to {shape} (NumPy rules)",
            code="err_shape_mismatch",
            values={"src": tuple(s.shape), "shape": shape},
            loc=loc,
        )
    tile, dst = result_tile(shape, s.dtype, loc=loc)
    tile.producer = vector_engine.tensor_tensor(
        dst, s, s, "bypass", allow_broadcast=True, loc=loc, api="nl.broadcast_to"
    )
    return tile


def _require_on_chip(x: Any, api: str, name: str, loc) -> None:
    """Compute APIs read SBUF / PSUM tiles: an HBM operand is err_unsupported_memory."""
    if is_tensorish(x) and x.buffer.kind == "hbm":
        raise NkiValidationError(
            f"nl.{api}: operand '{name}' is in HBM; compute instructions read SBUF or PSUM",
            code="err_unsupported_memory",
            values={name: x.storage.name},
            loc=loc,
            hint="load it with nl.load first",
        )


def _to_sbuf(t: Any, api: str, loc) -> Any:
    """A PSUM operand of a Tensor-engine API, copied to a fresh SBUF tile (as the compiler inserts)."""
    if isinstance(t, Tensor) and t.storage.buffer.kind == "psum":
        tmp, tv = result_tile(tuple(t.shape), t.dtype)
        vector_engine.tensor_copy(tv, t, loc=loc, api=f"{api}(psum->sbuf)")
        return tmp
    _require_on_chip(t, api.removeprefix("nl."), "operand", loc)
    return t


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
_SCALAR_PROMOTED: dict[tuple[Any, type], Any] = {}  # (tile dtype, Python scalar type) -> default_binary_dtype
_API_NAMES: dict[str, str] = {}


def _api_name(api: str) -> str:
    """f"nl.{api}", built once per API."""
    n = _API_NAMES.get(api)
    if n is None:
        n = _API_NAMES[api] = f"nl.{api}"
    return n


def _binary(opname: str, x: Any, y: Any, dtype: Any, mask: Any, api: str, default_dtype: Any = None) -> Any:
    loc = caller_location(2)
    if mask is None and type(x) is LegacyTensor and x.index is None:
        # fast path for the common plain cases (whole-tile operands of the same shape, or a tile and a Python
        # scalar, no mask, on chip): what the general path below computes for them, without its shape analysis
        xs = x.storage
        shape = x.array.shape
        if xs.nblocks <= 1 and xs.buffer.kind != "hbm":
            ty = type(y)
            if ty is LegacyTensor and y.index is None:
                ys = y.storage
                if ys.nblocks <= 1 and ys.buffer.kind != "hbm" and y.array.shape == shape:
                    dx, dy = xs.dtype, ys.dtype
                    out = dtype or default_dtype or (dx if dx == dy else _dt.promote(dx, dy))
                    # (= result_tile(shape, out, overwritten=True, loc=loc) without a mask: the tile is the view)
                    tile = new_tile(shape, out, overwritten=True, loc=loc)
                    tile.producer = vector_engine.tensor_tensor(tile, x, y, opname, loc=loc, api=_api_name(api))
                    return tile
            elif ty is float or ty is int:
                out = dtype or default_dtype
                if not out:
                    # = default_binary_dtype(x, y): the promotion with the weak scalar's dtype (int32 / float32)
                    dx = xs.dtype
                    out = _SCALAR_PROMOTED.get((dx, ty))
                    if out is None:
                        out = _SCALAR_PROMOTED[(dx, ty)] = default_binary_dtype(x, y)
                tile = new_tile(shape, out, overwritten=True, loc=loc)
                tile.producer = vector_engine.tensor_scalar(tile, x, opname, y, loc=loc, api=_api_name(api))
                return tile
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
    tile, dst = result_tile(shape, out_dt, minfo, overwritten=True)
    xo, yo = pad_rank(operand(x, minfo), len(shape)), pad_rank(operand(y, minfo), len(shape))
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


def _make_binary(opname: str, api: str, default_dtype: Any = None, doc: str = "", positional: bool = False) -> Callable:
    if default_dtype is not None:  # comparisons and logical ops: G1 default dtype=bool

        def fn(x: Any, y: Any, *, dtype: Any = bool, mask: Any = None, **kwargs: Any) -> Any:
            return _binary(opname, x, y, dtype, mask, api)

    elif positional:  # fmod / mod: G1 signature (x, y, dtype=None, mask=None, **kwargs)

        def fn(x: Any, y: Any, dtype: Any = None, mask: Any = None, **kwargs: Any) -> Any:  # type: ignore[misc]
            return _binary(opname, x, y, dtype, mask, api)

    else:

        def fn(x: Any, y: Any, *, dtype: Any = None, mask: Any = None, **kwargs: Any) -> Any:  # type: ignore[misc]
            return _binary(opname, x, y, dtype, mask, api)

    fn.__name__ = api
    fn.__qualname__ = api
    fn.__doc__ = doc or f"Element-wise {api}(x, y) (NumPy broadcasting; fp32 math)."
    fn._nki_op = opname  # type: ignore[attr-defined]
    masked = skip_when_masked_off(fn)
    if positional:
        return masked
    dtype0 = bool if default_dtype is not None else None

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        # = skip_when_masked_off(fn) (what wrap_masked_apis makes of it), with the plain `op(x, y)` call (no
        # keywords, so no mask) going straight to _binary
        if kwargs or len(args) != 2:
            return masked(*args, **kwargs)
        try:
            return _binary(opname, args[0], args[1], dtype0, None, api)
        except MaskedOff:
            return DeadTile(api)

    call._masked_off_handled = True  # type: ignore[attr-defined]
    return call


add = _make_binary("add", "add")
subtract = _make_binary("subtract", "subtract")
multiply = _make_binary("multiply", "multiply")
divide = _make_binary("divide", "divide")
power = _make_binary("power", "power")
maximum = _make_binary("maximum", "maximum")
minimum = _make_binary("minimum", "minimum")
fmod = _make_binary("fmod", "fmod", positional=True)
mod = _make_binary("mod", "mod", positional=True)
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
    tile, dst = result_tile(tuple(x.shape), dtype or default_dtype or x.dtype, minfo, overwritten=True, loc=loc)
    xo = operand(x, minfo)
    if engine == "scalar":
        instr = scalar_engine.activation(dst, opname, xo, loc=loc, api=f"nl.{api}")
    else:
        instr = vector_engine.tensor_scalar(dst, xo, opname, None, loc=loc, api=f"nl.{api}")
    tile.producer = instr
    return tile


def _make_unary(opname: str, api: str, engine: str = "scalar", default_dtype: Any = None) -> Callable:
    if default_dtype is not None:  # logical_not: G1 default dtype=bool

        def fn(x: Any, *, dtype: Any = bool, mask: Any = None, **kwargs: Any) -> Any:
            return _unary(opname, x, dtype, mask, api, engine)

    else:

        def fn(x: Any, *, dtype: Any = None, mask: Any = None, **kwargs: Any) -> Any:  # type: ignore[misc]
            return _unary(opname, x, dtype, mask, api, engine)

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
    red, rv = result_tile(tuple(x.shape), _dt.float32, minfo, loc=loc)
    vector_engine.tensor_scalar(
        rv, xo, "add", float(np.pi), op1="mod", operand1=float(2 * np.pi), loc=loc, api="nl.sin"
    )
    vector_engine.tensor_scalar(rv, rv, "subtract", float(np.pi), loc=loc, api="nl.sin")
    tile, dst = result_tile(tuple(x.shape), dtype or x.dtype, minfo, loc=loc)
    tile.producer = scalar_engine.activation(dst, "sin", rv, loc=loc, api="nl.sin")
    return tile


sin._nki_op = "sin"  # type: ignore[attr-defined]

# `nl.copy` is also used as the identity activation op.
copy._nki_op = "copy"  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------------ reductions
def _reduce_setup(x: Any, axis: Any, mask: Any, keepdims: bool, api: str, loc) -> tuple:
    """Resolve a reduction's operand under its mask: (operand, axes, result shape, result mask info)."""
    _require_on_chip(x, api, "x", loc)
    minfo = mask_info(mask)
    if minfo[1]:
        raise NkiUnsupportedError(
            f"nl.{api}: a mask that is not a per-axis range (e.g. a comparison of two index variables) cannot "
            f"restrict a reduction",
            code="err_unsupported_expression_in_mask",
            loc=loc,
            hint="zero / fill the excluded elements first (nisa.affine_select or nl.where), then reduce",
        )
    xo = operand(x, minfo)
    nd = len(x.shape)
    axes = vector_engine.normalize_axes(axis, nd, f"nl.{api}", loc)
    if keepdims:
        shape = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
        remap = {i: i for i in range(nd) if i not in axes}
    else:
        kept = [i for i in range(nd) if i not in axes]
        shape = tuple(x.shape[i] for i in kept)
        remap = {old: new for new, old in enumerate(kept)}
    ranges = {remap[a]: r for a, r in positional(minfo[0], nd).items() if a in remap}
    return xo, axes, shape, (ranges, [])


def _reduce(opname: str, x: Any, axis: Any, dtype: Any, mask: Any, keepdims: bool, api: str) -> LegacyTensor:
    loc = caller_location(2)
    xo, axes, shape, rinfo = _reduce_setup(x, axis, mask, keepdims, api, loc)
    tile, dst = result_tile(shape, dtype or x.dtype, rinfo)
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


def all(x: Any, axis: Any, *, dtype: Any = bool, mask: Any = None, **kwargs: Any) -> Any:  # noqa: A001
    """Logical AND over free axes (default dtype bool; `keepdims=` accepted)."""
    return _reduce("logical_and", x, axis, dtype, mask, kwargs.get("keepdims", False), "all")


all._nki_op = "logical_and"  # type: ignore[attr-defined]


def _float_default(dtype: Any, x: Any) -> Any:
    """Default output dtype of mean/var: the input's, float32 for integer inputs."""
    if dtype is not None:
        return dtype
    return x.dtype if _dt.is_float(x.dtype) else _dt.float32


def _count(xo: Tensor, axes: tuple[int, ...]) -> int:
    return math.prod(xo.shape[a] for a in axes)


def mean(x: Any, axis: Any, *, dtype: Any = None, mask: Any = None, keepdims: bool = False, **kwargs: Any) -> Any:
    """Mean over free axes: fp32 sum (tensor_reduce), then a scale by 1/count (tensor_scalar)."""
    loc = caller_location()
    xo, axes, shape, rinfo = _reduce_setup(x, axis, mask, keepdims, "mean", loc)
    _, s = result_tile(shape, _dt.float32, rinfo, loc=loc)
    vector_engine.tensor_reduce(s, "add", xo, axes, keepdims=keepdims, loc=loc, api="nl.mean")
    tile, dst = result_tile(shape, _float_default(dtype, x), rinfo, loc=loc)
    tile.producer = vector_engine.tensor_scalar(dst, s, "multiply", 1.0 / _count(xo, axes), loc=loc, api="nl.mean")
    return tile


def var(x: Any, axis: Any, *, dtype: Any = None, mask: Any = None, **kwargs: Any) -> Any:
    """Population variance over free axes, mean((x - mean(x))^2), in fp32 (`keepdims=` accepted)."""
    loc = caller_location()
    keepdims = builtins.bool(kwargs.get("keepdims", False))
    xo, axes, kshape, kinfo = _reduce_setup(x, axis, mask, True, "var", loc)
    n = _count(xo, axes)
    _, m = result_tile(kshape, _dt.float32, kinfo, loc=loc)
    vector_engine.tensor_reduce(m, "add", xo, axes, keepdims=True, loc=loc, api="nl.var")
    vector_engine.tensor_scalar(m, m, "multiply", 1.0 / n, loc=loc, api="nl.var")
    centered, cv = result_tile(tuple(xo.shape), _dt.float32, loc=loc)
    if m.free_size == 1:
        vector_engine.tensor_scalar(cv, xo, "subtract", m, loc=loc, api="nl.var")
    else:
        vector_engine.tensor_tensor(cv, xo, m, "subtract", allow_broadcast=True, loc=loc, api="nl.var")
    scalar_engine.activation(cv, "square", cv, loc=loc, api="nl.var")
    _, _, shape, rinfo = _reduce_setup(x, axis, mask, keepdims, "var", loc)
    _, ss = result_tile(shape, _dt.float32, rinfo, loc=loc)
    vector_engine.tensor_reduce(ss, "add", centered, axes, keepdims=keepdims, loc=loc, api="nl.var")
    tile, dst = result_tile(shape, _float_default(dtype, x), rinfo, loc=loc)
    tile.producer = vector_engine.tensor_scalar(dst, ss, "multiply", 1.0 / n, loc=loc, api="nl.var")
    return tile


# ------------------------------------------------------------------------------------------------ selection
def where(condition: Any, x: Any, y: Any, *, dtype: Any = None, mask: Any = None, **kwargs: Any) -> Any:
    """Select x where condition is true, else y (Vector select)."""
    loc = caller_location()
    minfo = mask_info(mask)
    for nm, v in (("condition", condition), ("x", x), ("y", y)):
        _require_on_chip(v, "where", nm, loc)
    shape = full_shape(condition, x, y)
    tiles = [v for v in (x, y) if is_tensorish(v)]
    # Scalars do not widen the result here (they only select values): the tiles' promotion decides.
    out_dt = dtype or (
        default_binary_dtype(*tiles) if len(tiles) == 2 else tiles[0].dtype if tiles else default_binary_dtype(x, y)
    )
    tile, dst = result_tile(shape, out_dt, minfo, loc=loc)
    c = pad_rank(operand(condition, minfo), len(shape))
    xo, yo = pad_rank(operand(x, minfo), len(shape)), pad_rank(operand(y, minfo), len(shape))
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


def expand_dims(data: Any, axis: Any) -> Any:
    """Insert size-1 axes (a view). As in G1, only after the last index: `axis` (an int or a tuple of ints)
    must name positions >= data.ndim of the expanded shape."""
    loc = caller_location()
    t = operand(data)
    if not isinstance(t, Tensor):
        raise NkiTypeError(
            f"nl.expand_dims: data must be a tile, got {type(data).__name__}", code="err_invalid_operand", loc=loc
        )
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    nd = len(t.shape)
    out_nd = nd + len(axes)
    norm = sorted(int(a) % out_nd if -out_nd <= int(a) < out_nd else out_nd for a in axes)
    if norm[0] < nd or norm[-1] >= out_nd or len(set(norm)) != len(norm):
        raise NkiValidationError(
            f"nl.expand_dims: axis {axis} is not supported for a {nd}-D tile; new axes can only be added after the "
            f"last dimension (positions {nd}..{out_nd - 1})",
            code="err_unsupported_expand_dims_axis",
            values={"axis": axis, "shape": tuple(t.shape)},
            loc=loc,
        )
    return t.reshaped(tuple(t.shape) + (1,) * len(axes))


# ------------------------------------------------------------------------------------------------ matmul
def matmul(x: Any, y: Any, *, transpose_x: bool = False, mask: Any = None, **kwargs: Any) -> LegacyTensor:
    """x @ y on the Tensor engine into a new fp32 PSUM tile. transpose_x=True: x is already [K, M]."""
    if mask is None and transpose_x:
        # the common case (two plain SBUF tiles or index-expression subscripts of them, x already [K, M]): what the
        # general path does, without its operand analysis
        xv = x.plain_view() if type(x) is LazyAccess else x
        yv = y.plain_view() if type(y) is LazyAccess else y
        if (
            type(xv) is LegacyTensor
            and type(yv) is LegacyTensor
            and xv.index is None
            and yv.index is None
            and xv.storage.buffer.kind == "sbuf"
            and yv.storage.buffer.kind == "sbuf"
            and xv.storage.nblocks <= 1
            and yv.storage.nblocks <= 1
        ):
            loc = caller_location()
            tile = new_tile((xv.free_size, yv.free_size), _dt.float32, buffer=PSUM, overwritten=True, loc=loc)
            tile.producer = tensor_engine.nc_matmul(tile, xv, yv, accumulate=False, loc=loc, api="nl.matmul")
            return tile
    return _matmul(x, y, transpose_x=transpose_x, mask=mask, **kwargs)


# (as `load`: the unmasked fast path cannot be masked off, every other call goes through the wrapped _matmul)
matmul._masked_off_handled = True  # type: ignore[attr-defined]


@skip_when_masked_off
def _matmul(x: Any, y: Any, *, transpose_x: bool = False, mask: Any = None, **kwargs: Any) -> LegacyTensor:
    """`matmul` with a mask, x in [M, K] layout or operands the fast path does not take."""
    loc = caller_location()
    minfo = mask_info(mask)
    xo, yo = operand(x, minfo), operand(y, minfo)
    # The Tensor engine reads SBUF only; PSUM operands are first copied to SBUF (as the compiler does).
    xo, yo = _to_sbuf(xo, "nl.matmul", loc), _to_sbuf(yo, "nl.matmul", loc)
    if not transpose_x:
        _no_pe_transpose_when_allocated("nl.matmul(transpose_x=False) transposes x on the Tensor engine", loc)
        # x is [M, K]: transpose it on the PE array first (as the compiler does).
        m, k = xo.shape[0], xo.free_size
        xt_psum, xtp = result_tile((k, m), _dt.float32, buffer=PSUM, loc=loc)
        tensor_engine.nc_transpose_pe(xtp, xo, loc=loc, api="nl.matmul(transpose)")
        xt, xtv = result_tile((k, m), xo.dtype, loc=loc)
        vector_engine.tensor_copy(xtv, xt_psum, loc=loc, api="nl.matmul(transpose)")
        xo = xt
    m = xo.free_size
    n = yo.free_size
    # (the matmul writes the whole result: no poison fill first)
    tile, dst = result_tile((m, n), _dt.float32, buffer=PSUM, overwritten=True, loc=loc)
    tile.producer = tensor_engine.nc_matmul(dst, xo, yo, accumulate=False, loc=loc, api="nl.matmul")
    return tile


def transpose(x: Any, *, dtype: Any = None, mask: Any = None, **kwargs: Any) -> LegacyTensor:
    """Swap the partition and free dimension of a 2-D tile (<= [128, 128]) on the PE array -> PSUM."""
    loc = caller_location()
    _no_pe_transpose_when_allocated("nl.transpose transposes on the Tensor engine", loc)
    xo = _to_sbuf(operand(x, mask_info(mask)), "nl.transpose", loc)
    if len(xo.shape) != 2:
        raise NkiValidationError(
            f"nl.transpose needs a 2-D tile, got {xo.shape}", code="err_exceed_max_supported_dimension", loc=loc
        )
    p, f = xo.shape
    if f > 128:
        raise NkiValidationError(
            f"nl.transpose: a tile of shape {tuple(xo.shape)} has {f} elements per partition; the transpose takes at "
            f"most 128 (the result's partition count)",
            code="err_size_of_dimension_exceed_arch_limit",
            values={"x": tuple(xo.shape)},
            loc=loc,
        )
    tile, dst = result_tile((f, p), dtype or xo.dtype, buffer=PSUM, loc=loc)
    tile.producer = tensor_engine.nc_transpose_pe(dst, xo, loc=loc, api="nl.transpose")
    return tile


def _no_pe_transpose_when_allocated(what: str, loc) -> None:
    """Direct-allocation kernels cannot transpose on the Tensor engine (the result's PSUM is not allocated)."""
    run = current()
    first = run.extra.get("direct_allocation")
    if first is not None:
        raise NkiValidationError(
            f"{what}, which is not allowed in a direct-allocation kernel (tensors are allocated with ncc.sbuf / "
            f"ncc.psum allocation APIs, first at {first.short})",
            code="err_transpose_on_tensor_engine_not_allowed_in_allocated_kernel",
            loc=loc,
            hint="pass an already transposed operand (nl.matmul(..., transpose_x=True)), transpose with "
            "nisa.nc_matmul(is_transpose=True) into an allocated PSUM tile, or use nisa.nc_transpose(engine=vector)",
        )


# ------------------------------------------------------------------------------------------------ iterators
class _LoopRange:
    """Iterator returned by affine_range / sequential_range / static_range."""

    __slots__ = ("kind", "rng", "loc")

    def __init__(self, kind: str, args: tuple, kwargs: dict | None = None) -> None:
        self.kind = kind
        kw = {k: v for k, v in (kwargs or {}).items() if k in ("start", "stop", "step")}
        if kw:  # affine_range(0, n, step=128) / affine_range(start=0, stop=n)
            names = ("start", "stop", "step")
            vals = dict(zip(names, args)) if len(args) != 1 or "stop" in kw else {"stop": args[0]}
            vals.update(kw)
            args = (vals.get("start", 0), vals["stop"], vals.get("step", 1))
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
    return _LoopRange("affine", args, kwargs)


def sequential_range(*args: Any, **kwargs: Any) -> _LoopRange:
    """Loop with a loop-carried dependency (iterations run in order)."""
    return _LoopRange("sequential", args, kwargs)


def static_range(*args: Any) -> _LoopRange:
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
        return int(math.prod(run.grid))
    if isinstance(axes, (tuple, list)):
        return int(math.prod([run.grid[a] for a in axes]))
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


# ------------------------------------------------------------------------------------------------ random numbers
def rand(shape: Any, dtype: Any = np.float32, **kwargs: Any) -> LegacyTensor:
    """New SBUF tile of uniform random values in [0, 1) (Vector-engine random number generator)."""
    loc = caller_location()
    shp, _ = _split_shape(shape)
    tile, dst = result_tile(shp, dtype, loc=loc)
    tile.producer = vector_engine.random_uniform(dst, loc=loc, api="nl.rand")
    return tile


def random_seed(seed: Any, *, mask: Any = None, **kwargs: Any) -> None:
    """Seed the random number generator (a 32-bit scalar, or an on-chip tile whose first element is the seed);
    the same seed reproduces the same sequence of nl.rand / nl.dropout values."""
    loc = caller_location()
    if is_tensorish(seed):
        _require_on_chip(seed, "random_seed", "seed", loc)
        seed = operand(seed, mask_info(mask))
    vector_engine.set_rng_seed(seed, loc=loc, api="nl.random_seed")


def dropout(x: Any, rate: Any, *, dtype: Any = None, mask: Any = None, **kwargs: Any) -> LegacyTensor:
    """Zero each element of x with probability `rate` (a scalar, a 1-element tile or a [P,1] tile); kept
    elements are not rescaled."""
    loc = caller_location()
    _require_on_chip(x, "dropout", "x", loc)
    _require_on_chip(rate, "dropout", "rate", loc)
    minfo = mask_info(mask)
    xo = operand(x, minfo)
    r = operand(rate, minfo) if is_tensorish(rate) else rate
    tile, dst = result_tile(tuple(x.shape), dtype or x.dtype, minfo, loc=loc)
    tile.producer = vector_engine.dropout(dst, xo, r, loc=loc, api="nl.dropout")
    return tile


# ------------------------------------------------------------------------------------------------ constants
def _constant_tensor(arr: np.ndarray, key: tuple, name: str) -> LegacyTensor:
    """A kernel-visible HBM tensor holding a compile-time constant, shared by every use with the same key."""
    run = current()
    cache = run.extra.setdefault("_nl_shared_constants", {})
    hit = cache.get(key)
    if hit is not None:
        return hit
    st = wrap_host_array(arr, SHARED_HBM, name=name, core=run.core, track_writes=run.numerics, copy=run.numerics)
    mem = st.take_mem()
    t = LegacyTensor(st, mem, mem.data, mem.written)
    cache[key] = t
    return t


def shared_constant(constant: Any, dtype: Any = None, **kwargs: Any) -> LegacyTensor:
    """An HBM tensor holding the host array `constant` (cast to `dtype` with round-to-nearest-even)."""
    loc = caller_location()
    arr = np.asarray(constant)
    if dtype is not None:
        arr = np.asarray(static_cast(arr, dtype))
    elif arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    elif arr.dtype == np.int64:
        arr = arr.astype(np.int32)
    key = ("constant", arr.dtype.str, arr.shape, arr.tobytes())
    return _constant_tensor(arr, key, name_from_source(loc) or "shared_constant")


def shared_identity_matrix(n: int, dtype: Any = np.uint8, **kwargs: Any) -> LegacyTensor:
    """An n x n identity matrix in HBM (default uint8); every request for the same n and dtype shares one."""
    loc = caller_location()
    dt = _dt.normalize(dtype)
    arr = np.asarray(static_cast(np.identity(int(n), dtype=np.float32), dt))
    return _constant_tensor(arr, ("identity", int(n), dt.str), name_from_source(loc) or f"identity_{int(n)}")


# ------------------------------------------------------------------------------------------------ gathers, atomics
def atomic_rmw(dst: Any, value: Any, op: Any, *, mask: Any = None, **kwargs: Any) -> None:
    """Atomic `dst = op(dst, value)` on an HBM access (usually with tile-valued indices); op: np.add / nl.add.
    Repeated indices all take effect."""
    loc = caller_location()
    _require_buffer(dst, ("hbm",), "atomic_rmw", "dst", loc)
    _require_on_chip(value, "atomic_rmw", "value", loc)
    minfo = mask_info(mask)
    d = operand(dst, minfo)
    v = operand(value, minfo) if is_tensorish(value) else value
    dma.atomic_rmw(d, v, op, loc=loc, api="nl.atomic_rmw")


def gather_flattened(data: Any, indices: Any, *, mask: Any = None, dtype: Any = None, **kwargs: Any) -> LegacyTensor:
    """Per partition p: out[p, ...] = data[p].flat[indices[p, ...]] (uint32 indices; result shaped like indices)."""
    loc = caller_location()
    _require_on_chip(data, "gather_flattened", "data", loc)
    _require_on_chip(indices, "gather_flattened", "indices", loc)
    minfo = mask_info(mask)
    pr = positional(minfo[0], len(data.shape))
    prange = {0: pr[0]} if 0 in pr else {}
    d = operand(data, (prange, []))  # a mask restricts partitions of data, never its flattened row
    ix = operand(indices, minfo)
    tile, dst = result_tile(tuple(indices.shape), dtype or data.dtype, minfo, loc=loc)
    tile.producer = gpsimd_engine.nc_n_gather(dst, d, ix, loc=loc, api="nl.gather_flattened")
    return tile


# ------------------------------------------------------------------------------------------------ normalisation
def _mul_by(dst: Tensor, data: Tensor, factor: Any, loc, api: str) -> Any:
    """dst = data * factor, where factor is a column ([P,1]: tensor_scalar) or broadcastable (tensor_tensor)."""
    if not isinstance(factor, Tensor) or (factor.free_size == 1 and factor.partitions == data.partitions):
        return vector_engine.tensor_scalar(dst, data, "multiply", factor, loc=loc, api=api)
    same = tuple(factor.shape) == tuple(data.shape)
    return vector_engine.tensor_tensor(dst, data, factor, "multiply", allow_broadcast=not same, loc=loc, api=api)


def softmax(
    x: Any, axis: Any, *, dtype: Any = None, compute_dtype: Any = None, mask: Any = None, **kwargs: Any
) -> LegacyTensor:
    """exp(x - max(x)) / sum(exp(x - max(x))) along free `axis`: a max reduction, an exp activation with the
    negated max as bias (summing into the accumulators), a Vector reciprocal and a multiply."""
    loc = caller_location()
    api = "nl.softmax"
    xo, axes, kshape, kinfo = _reduce_setup(x, axis, mask, True, "softmax", loc)
    cdt = compute_dtype or dtype or _dt.float32
    _, negmax = result_tile(kshape, _dt.float32, kinfo, loc=loc)
    vector_engine.tensor_reduce(negmax, "maximum", xo, axes, negate=True, keepdims=True, loc=loc, api=api)
    _, e = result_tile(tuple(xo.shape), cdt, loc=loc)
    _, total = result_tile(kshape, _dt.float32, kinfo, loc=loc)
    if negmax.free_size == 1:
        scalar_engine.activation(
            e, "exp", xo, bias=negmax, reduce_op="add", reduce_res=total, reduce_cmd="reset_reduce", loc=loc, api=api
        )
    else:
        vector_engine.tensor_tensor(e, xo, negmax, "add", allow_broadcast=True, loc=loc, api=api)
        scalar_engine.activation(e, "exp", e, loc=loc, api=api)
        vector_engine.tensor_reduce(total, "add", e, axes, keepdims=True, loc=loc, api=api)
    vector_engine.reciprocal(total, total, loc=loc, api=api)
    tile, dst = result_tile(tuple(x.shape), dtype or compute_dtype or x.dtype, mask_info(mask), loc=loc)
    tile.producer = _mul_by(dst, e, total, loc, api)
    return tile


def rms_norm(
    x: Any,
    w: Any,
    axis: Any,
    n: Any,
    epsilon: float = 1e-06,
    *,
    dtype: Any = None,
    compute_dtype: Any = None,
    mask: Any = None,
    **kwargs: Any,
) -> LegacyTensor:
    """x / sqrt(sum(x^2 along axis) / n + epsilon) * w: a square activation, a sum, a scale-and-add, an rsqrt
    activation and two multiplies (w broadcasts NumPy-style, e.g. a [1, D] weight row)."""
    loc = caller_location()
    api = "nl.rms_norm"
    _require_on_chip(w, "rms_norm", "w", loc)
    minfo = mask_info(mask)
    xo, axes, kshape, kinfo = _reduce_setup(x, axis, mask, True, "rms_norm", loc)
    cdt = compute_dtype or dtype or _dt.float32
    _, sq = result_tile(tuple(xo.shape), _dt.float32, loc=loc)
    scalar_engine.activation(sq, "square", xo, loc=loc, api=api)
    _, ms = result_tile(kshape, _dt.float32, kinfo, loc=loc)
    vector_engine.tensor_reduce(ms, "add", sq, axes, keepdims=True, loc=loc, api=api)
    vector_engine.tensor_scalar(ms, ms, "multiply", 1.0 / float(n), op1="add", operand1=float(epsilon), loc=loc, api=api)
    scalar_engine.activation(ms, "rsqrt", ms, loc=loc, api=api)
    _, y = result_tile(tuple(xo.shape), cdt, loc=loc)
    _mul_by(y, xo, ms, loc, api)
    tile, dst = result_tile(tuple(x.shape), dtype or compute_dtype or x.dtype, minfo, loc=loc)
    wo = operand(w, minfo) if is_tensorish(w) else w
    if isinstance(wo, Tensor) and tuple(wo.shape) != tuple(dst.shape):
        full_shape(wo, dst)  # NumPy broadcasting rules (raises err_shape_mismatch)
    tile.producer = _mul_by(dst, y, wo, loc, api) if isinstance(wo, Tensor) else (
        vector_engine.tensor_scalar(dst, y, "multiply", wo, loc=loc, api=api)
    )
    return tile


# ------------------------------------------------------------------------------------------------ loop reductions
def _kernel_frame():
    """The innermost frame of user (kernel) code."""
    f = sys._getframe(1)
    while f is not None and is_internal_file(f.f_code.co_filename):
        f = f.f_back
    return f


def loop_reduce(x: Any, op: Any, loop_indices: Any, *, dtype: Any = None, mask: Any = None, **kwargs: Any) -> Any:
    """`acc = nl.loop_reduce(x, op, loop_indices=[i])` is `acc = op(acc, x)` (one tensor_tensor): the tile the
    statement assigns to is the accumulator (initialise it before the loop)."""
    loc = caller_location()
    api = "nl.loop_reduce"
    opname = alu.op_name(op)
    _require_on_chip(x, "loop_reduce", "x", loc)
    frame = _kernel_frame()
    name = name_from_source(loc)
    acc = frame.f_locals.get(name) if (frame is not None and name) else None
    if not is_tensorish(acc):
        raise NkiValidationError(
            "nl.loop_reduce must be assigned to the accumulator tile it reduces into "
            "(`acc = nl.loop_reduce(x, op, loop_indices=[i])`, with `acc` initialised before the loop)"
            + (f"; '{name}' is not a tile here" if name else ""),
            code="err_loop_reduce_without_accumulator",
            values={"target": name or None},
            loc=loc,
        )
    minfo = mask_info(mask)
    shape = full_shape(acc, x)
    tile, dst = result_tile(shape, dtype or x.dtype, minfo, loc=loc)
    a, xo = operand(acc, minfo), operand(x, minfo)
    if minfo != NO_MASK:  # outside the mask the accumulator keeps its value
        vector_engine.tensor_copy(tile, operand(acc), loc=loc, api=api)
    same = tuple(a.shape) == tuple(xo.shape) == tuple(dst.shape)
    tile.producer = vector_engine.tensor_tensor(dst, a, xo, opname, allow_broadcast=not same, loc=loc, api=api)
    return tile


# ------------------------------------------------------------------------------------------------ all_reduce
class _ReplayStop(BaseException):
    """Ends a replayed program at the all_reduce call whose contribution was needed."""


def _launch_call(loc) -> tuple[Callable, list, dict]:
    """The kernel function and arguments of the launch in progress (read from core.launch.launch's frame)."""
    from ...core import launch as launch_module

    code = launch_module.launch.__code__
    f = sys._getframe(1)
    while f is not None:
        if f.f_code is code:
            lv = f.f_locals
            if callable(lv.get("func")) and "call_args" in lv:
                return lv["func"], list(lv["call_args"]), dict(lv.get("call_kwargs") or {})
        f = f.f_back
    raise NkiUnsupportedError(
        "nl.all_reduce needs the kernel's launch to replay the other programs of the grid, and none was found",
        code="err_unsupported_api",
        loc=loc,
        hint="launch the kernel through nki.jit / nki.baremetal / nki.simulate_kernel with an SPMD grid",
    )


def _isolated(arg: Any) -> Any:
    """A private copy of an HBM kernel argument, so that a replayed program cannot disturb the real one."""
    if isinstance(arg, LegacyTensor) and arg.storage.buffer.kind == "hbm" and arg.index is None:
        st = wrap_host_array(np.asarray(arg.read()), arg.storage.buffer, name=arg.storage.name)
        st.is_param = arg.storage.is_param
        mem = st.take_mem()
        return LegacyTensor(st, mem, mem.data, mem.written)
    if isinstance(arg, (list, tuple)):
        return type(arg)(_isolated(a) for a in arg)
    return arg


def _replay(run: Any, program: tuple[int, ...], call: int, state: dict, loc) -> None:
    """Run `program` of the grid on a scratch run until its `call`-th nl.all_reduce, recording its operand."""
    from ...core.context import Run, activate

    func, args, kwargs = _launch_call(loc)
    scratch = Run(run.arch, numerics=True, check_races=False, kernel_name=run.kernel_name, api=run.api)
    scratch.grid = run.grid
    scratch.program_id = program
    scratch.extra["_nl_all_reduce"] = state
    scratch.extra["_nl_replay_until"] = call
    scratch.warn = lambda *a, **k: None  # diagnostics come from the real run of that program
    args = [_isolated(a) for a in args]
    kwargs = {k: _isolated(v) for k, v in kwargs.items()}
    with activate(scratch):
        scratch.begin_program()
        try:
            func(*args, **kwargs)
        except _ReplayStop:
            return
    raise NkiDeadlockError(
        f"nl.all_reduce: program {program} of the grid ends after "
        f"{scratch.extra.get('_nl_all_reduce_calls', {}).get(program, 0)} all_reduce call(s), but program "
        f"{tuple(run.program_id)} waits in call #{call + 1}; every program of a reduction group must make the same "
        f"all_reduce calls",
        code="err_all_reduce_mismatch",
        values={"program": program, "waiting": tuple(run.program_id)},
        loc=loc,
    )


def all_reduce(
    x: Any,
    op: Any,
    program_axes: Any,
    *,
    dtype: Any = None,
    mask: Any = None,
    parallel_reduce: bool = True,
    asynchronous: bool = False,
    **kwargs: Any,
) -> LegacyTensor:
    """Reduce tile `x` with `op` (add / multiply / maximum / minimum) over the SPMD programs that differ only
    along `program_axes`; every program of the group gets the result.

    Programs of a grid run one after another, so when a program reaches its k-th all_reduce, the operands of
    the group's programs that have not run yet are obtained by replaying those programs (on scratch state, with
    private copies of the kernel arguments) up to their own k-th all_reduce."""
    loc = caller_location()
    run = current()
    api = "nl.all_reduce"
    _require_on_chip(x, "all_reduce", "x", loc)
    grid = tuple(int(g) for g in run.grid)
    axes_in = program_axes if isinstance(program_axes, (tuple, list)) else (program_axes,)
    axes = tuple(int(a) for a in axes_in)
    for a in axes:
        if not 0 <= a < builtins.max(len(grid), 1):
            raise NkiValidationError(
                f"{api}: program axis {a} is out of range for a {len(grid)}-D launch grid {grid}",
                code="err_invalid_program_axis",
                values={"program_axes": program_axes, "grid": grid},
                loc=loc,
            )
    minfo = mask_info(mask)
    xo = operand(x, minfo)
    tile, dst = result_tile(tuple(x.shape), dtype or x.dtype, minfo, loc=loc)
    pid = tuple(run.program_id) if grid else ()
    group = [
        q
        for q in itertools.product(*(range(g) for g in grid))
        if builtins.all(q[i] == pid[i] for i in range(len(grid)) if i not in axes)
    ] or [pid]
    contributions = None
    if run.numerics:
        state = run.extra.setdefault("_nl_all_reduce", {})
        calls = run.extra.setdefault("_nl_all_reduce_calls", {})
        k = calls.get(pid, 0)
        calls[pid] = k + 1
        own = np.array(xo.read(), copy=True)
        prev = state.get((k, pid))
        if prev is None:
            state[(k, pid)] = own
        elif prev.shape != own.shape or not np.array_equal(prev, own, equal_nan=True):
            run.warn(
                "warn_all_reduce_replay_mismatch",
                f"{api}: program {pid} computed a different operand than when it was replayed for an earlier "
                f"program (random numbers or cross-program HBM traffic?); the group used the replayed values",
                loc,
            )
        if run.extra.get("_nl_replay_until") == k:
            raise _ReplayStop
        for q in group:
            if (k, q) not in state:
                _replay(run, q, k, state, loc)
        contributions = [state[(k, q)] for q in group]
    tile.producer = dma.spmd_all_reduce(dst, xo, contributions, op, group_size=len(group), loc=loc, api=api)
    return tile


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


# An always-false mask (a loop-index predicate that does not hold in this iteration, or an empty ragged box)
# makes the call a no-op; keep this at the end of the module so that it covers every API function above.
wrap_masked_apis(globals(), __name__)
