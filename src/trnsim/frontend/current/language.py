"""`nki.language` (current API, NKI 0.6): allocation (`ndarray` with optional manual `address=`), dtypes,
buffers, tile sizes, loops (including device loops on registers), SPMD queries, and the experimental element-wise
/ reduction / matmul convenience functions, each lowered onto `nki.isa` instructions.

Unlike the legacy API, binary functions do not broadcast (shapes must match; scalars are allowed), comparisons
return 1 / 0 in the input dtype, and results are new SBUF tiles (PSUM for matmul / transpose).
"""

from __future__ import annotations

import builtins
import contextlib
import enum
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ...core import dtypes as _dt
from ...core.context import current, maybe_current
from ...core.errors import NkiError, NkiTypeError, NkiUnsupportedError, NkiValidationError
from ...core.memory import HBM, PRIVATE_HBM, PSUM, SBUF, SHARED_HBM, Buffer, allocate, wrap_host_array
from ...core.source import caller_location, name_from_source
from ...core.tensor import Tensor
from ...isa import alu
from ...isa import gpsimd_engine as _gp
from ...isa import scalar_engine as _se
from ...isa import tensor_engine as _te
from ...isa import vector_engine as _ve
from . import isa as nisa
from .isa import VirtualRegister
from .lnc import scheduler
from .tensor import DynSlice, NkiTensor

# ================================================================================================ dtypes
bool_ = _dt.bool_
int8, int16, int32 = _dt.int8, _dt.int16, _dt.int32
uint8, uint16, uint32 = _dt.uint8, _dt.uint16, _dt.uint32
float16, float32, bfloat16 = _dt.float16, _dt.float32, _dt.bfloat16
tfloat32 = _dt.tfloat32_marker
float8_e4m3, float8_e5m2 = _dt.float8_e4m3, _dt.float8_e5m2
float8_e4m3fn, float8_e8m0fnu = _dt.float8_e4m3fn, _dt.float8_e8m0fnu
float8_e5m2_x4, float8_e4m3fn_x4, float4_e2m1fn_x4 = _dt.float8_e5m2_x4, _dt.float8_e4m3fn_x4, _dt.float4_e2m1fn_x4

# ================================================================================================ buffers
sbuf: Buffer = SBUF
psum: Buffer = PSUM
hbm: Buffer = HBM
private_hbm: Buffer = PRIVATE_HBM
shared_hbm: Buffer = SHARED_HBM


class MemoryRegion(str, enum.Enum):
    """Memory regions; members compare equal to their names and to the nl buffer objects."""

    sbuf = "sbuf"
    psum = "psum"
    hbm = "hbm"
    private_hbm = "private_hbm"
    shared_hbm = "shared_hbm"


class NKIObject:
    """Base class of user classes passed to kernels (config objects, dataclasses)."""


def is_hbm(buffer: Any) -> bool:
    """True for nl.hbm / private_hbm / shared_hbm."""
    return _as_buffer(buffer).kind == "hbm"


def is_sbuf(buffer: Any) -> bool:
    """True when `buffer` is SBUF."""
    return _as_buffer(buffer).kind == "sbuf"


def is_psum(buffer: Any) -> bool:
    """True when `buffer` is PSUM."""
    return _as_buffer(buffer).kind == "psum"


def is_on_chip(buffer: Any) -> bool:
    """True when `buffer` is on chip (SBUF or PSUM)."""
    return _as_buffer(buffer).on_chip


def _as_buffer(buffer: Any) -> Buffer:
    if isinstance(buffer, Tensor):
        return buffer.storage.buffer
    if isinstance(buffer, Buffer):
        return buffer
    if isinstance(buffer, MemoryRegion):
        return {"sbuf": SBUF, "psum": PSUM, "hbm": HBM, "private_hbm": PRIVATE_HBM, "shared_hbm": SHARED_HBM}[buffer.value]
    raise NkiTypeError(
        f"expected an NKI buffer (nl.sbuf, nl.psum, nl.hbm, nl.private_hbm, nl.shared_hbm), got {buffer!r}",
        code="err_unsupported_memory",
        values={"buffer": repr(buffer)},
        loc=caller_location(),
        hint="string buffer names are rejected since NKI 0.3",
    )


# ================================================================================================ tile sizes
class _TileSize:
    """nl.tile_size: hardware tile limits of the selected target (G2 names; deprecated names still work)."""

    pmax = 128
    psum_bank_fmax = 512
    psum_bank_fmax_bytes = 2048
    gemm_stationary_fmax = 128
    bn_stats_fmax = 512
    psum_min_align = 4
    sbuf_min_align = 1

    @staticmethod
    def _arch():
        from ...timing.arch import get_arch

        run = maybe_current()
        return run.arch if run else get_arch(os.environ.get("NEURON_PLATFORM_TARGET_OVERRIDE") or "trn2")

    def _deprecated(self, old: str, new: str) -> None:
        run = maybe_current()
        if run is not None:
            run.warn("warn_deprecated_tile_size", f"nl.tile_size.{old} is deprecated since NKI 0.4; use {new}", caller_location())

    @property
    def psum_fmax(self) -> int:
        self._deprecated("psum_fmax", "nl.tile_size.psum_bank_fmax")
        return 512

    @property
    def psum_num_banks(self) -> int:
        return self._arch().psum_banks

    @property
    def gemm_moving_fmax(self) -> int:
        return 512

    @property
    def sbuf_fmax_bytes(self) -> int:
        return self._arch().sbuf_usable_bytes_per_partition

    @property
    def total_available_sbuf_size(self) -> int:
        self._deprecated("total_available_sbuf_size", "nl.tile_size.sbuf_fmax_bytes")
        return self._arch().sbuf_usable_bytes_per_partition

    @property
    def sbuf_fmax(self) -> int:
        return self._arch().sbuf_usable_bytes_per_partition // 4

    @property
    def sbuf_size_bytes(self) -> int:
        return 128 * self._arch().sbuf_bytes_per_partition


tile_size = _TileSize()


# ================================================================================================ op constants
class _OpConst:
    """An operator passed as a value (nl.bypass, nl.prelu, nl.average)."""

    def __init__(self, name: str) -> None:
        self._nki_op = name
        self.__name__ = name

    def __repr__(self) -> str:
        return f"nl.{self.__name__}"


bypass = _OpConst("bypass")
prelu = _OpConst("prelu")
average = _OpConst("average")


# ================================================================================================ allocation
def _dtype(dtype: Any, api: str) -> tuple[np.dtype, bool]:
    if dtype is None:
        raise NkiTypeError(f"nl.{api}: dtype is required", code="err_invalid_dtype", loc=caller_location())
    try:
        return _dt.normalize(dtype), isinstance(dtype, _dt.TFloat32)
    except TypeError:
        raise NkiTypeError(
            f"nl.{api}: {dtype!r} is not an NKI dtype", code="err_invalid_dtype", values={"dtype": repr(dtype)},
            loc=caller_location(),
        ) from None


def _shape(shape: Any, api: str) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        shp = tuple(int(s) for s in shape)
    except TypeError:
        raise NkiTypeError(f"nl.{api}: shape must be a tuple of ints, got {shape!r}", code="err_invalid_shape",
                           loc=caller_location()) from None
    if any(s < 1 for s in shp):
        raise NkiValidationError(f"nl.{api}: every dimension must be >= 1, got {shp}", code="err_invalid_shape",
                                 values={"shape": shp}, loc=caller_location())
    return shp


def ndarray(shape: Any, dtype: Any, buffer: Any = None, name: str = "", address: Any = None, **kwargs: Any) -> NkiTensor:
    """Allocate an uninitialised tensor (NaN / integer sentinel poison). `address=(partition, byte_offset)`
    places an on-chip tensor by hand (checked for bounds, bank alignment and overlap with live tensors)."""
    return _alloc(shape, dtype, buffer, name, address, "ndarray")


def _alloc(shape: Any, dtype: Any, buffer: Any, name: str, address: Any, api: str) -> NkiTensor:
    run = current()
    loc = caller_location()
    buf = SBUF if buffer is None else _as_buffer(buffer)
    shp = _shape(shape, api)
    dt, tf32 = _dtype(dtype, api)
    if buf.on_chip and shp[0] > 128:
        raise NkiValidationError(
            f"nl.{api}: size of partition dimension {shp[0]} exceeds architecture limitation of 128",
            code="err_num_partition_exceed_arch_limit",
            values={"shape": shp},
            loc=loc,
        )
    nm = name or name_from_source(loc)

    def make() -> NkiTensor:
        packed = dt in _dt.X4_TYPES
        fill = ("empty" if not run.numerics else (0 if packed else "poison"))
        st, mem, arr, wm = allocate(
            shp, dt, buf, name=nm, loc=loc, core=0 if buf.shared else run.core, fill=fill, track_writes=run.numerics
        )
        if packed and mem.written is not None:
            mem.written[...] = 0
        st.tf32 = tf32
        return NkiTensor.wrap(st, mem, arr, wm)

    if buf.kind == "hbm" and buf.shared:
        if address is not None:
            raise NkiValidationError(f"nl.{api}: address= applies to SBUF / PSUM tensors only", code="err_invalid_address", loc=loc)
        sched = scheduler()
        return sched.shared_alloc(shp, dt, make) if sched is not None else make()
    t = make()
    if address is not None:
        _place(t, address, buf, loc, api)
    return t


def _place(t: NkiTensor, address: Any, buf: Buffer, loc, api: str) -> None:
    run = current()
    if not buf.on_chip:
        raise NkiValidationError(f"nl.{api}: address= applies to SBUF / PSUM tensors only", code="err_invalid_address", loc=loc)
    try:
        p0, f0 = (int(a) for a in address)
    except (TypeError, ValueError):
        raise NkiValidationError(
            f"nl.{api}: address must be (partition_offset, free_offset_bytes), got {address!r}", code="err_invalid_address", loc=loc
        ) from None
    st = t.storage
    nparts, nbytes = st.partitions, st.row_bytes
    cap = run.arch.sbuf_usable_bytes_per_partition if buf.kind == "sbuf" else run.arch.psum_bytes_per_partition
    align = 4 if buf.kind == "psum" else 1
    problems = []
    if p0 < 0 or p0 + nparts > 128:
        problems.append(f"partitions [{p0}, {p0 + nparts}) exceed the 128 partitions")
    if f0 < 0 or f0 + nbytes > cap:
        problems.append(f"bytes [{f0}, {f0 + nbytes}) exceed the {cap} bytes per partition of {buf.name.upper()}")
    if f0 % align:
        problems.append(f"free offset {f0} is not {align}-byte aligned")
    if buf.kind == "psum" and f0 % run.arch.psum_bank_bytes:
        problems.append(f"PSUM tensors must start at a bank boundary (multiple of {run.arch.psum_bank_bytes} bytes)")
    if problems:
        raise NkiValidationError(
            f"nl.{api}: invalid address {tuple(address)} for {buf.name.upper()} tensor '{st.name}' "
            f"({nparts} partitions x {nbytes} bytes): " + "; ".join(problems),
            code="err_invalid_address",
            values={"address": tuple(address), "shape": tuple(t.shape)},
            loc=loc,
        )
    run.extra.setdefault("placements", []).append((st, run.core, buf.kind, p0, p0 + nparts, f0, f0 + nbytes, loc))


def zeros(shape: Any, dtype: Any, buffer: Any = None, name: str = "") -> NkiTensor:
    """Allocate and fill with 0 (on-chip buffers only)."""
    return _filled(shape, 0, dtype, buffer, name, "zeros")


def ones(shape: Any, dtype: Any, buffer: Any = None, name: str = "") -> NkiTensor:
    """Allocate and fill with 1 (on-chip buffers only)."""
    return _filled(shape, 1, dtype, buffer, name, "ones")


def full(shape: Any, fill_value: Any, dtype: Any, buffer: Any = None, name: str = "") -> NkiTensor:
    """Allocate and fill with `fill_value` (on-chip buffers only)."""
    return _filled(shape, fill_value, dtype, buffer, name, "full")


def zeros_like(x: Any, dtype: Any = None, buffer: Any = None, name: str = "") -> NkiTensor:
    """A tensor like `x` (shape; dtype and buffer unless given) filled with 0."""
    return _filled(x.shape, 0, dtype or x.dtype, buffer or _like_buffer(x), name, "zeros_like")


def ones_like(x: Any, dtype: Any = None, buffer: Any = None, name: str = "") -> NkiTensor:
    """A tensor like `x` (shape; dtype and buffer unless given) filled with 1."""
    return _filled(x.shape, 1, dtype or x.dtype, buffer or _like_buffer(x), name, "ones_like")


def empty_like(x: Any, dtype: Any = None, buffer: Any = None, name: str = "") -> NkiTensor:
    """Uninitialised tensor shaped like x (buffer defaults to x's buffer)."""
    return _alloc(x.shape, dtype or x.dtype, buffer or x.buffer, name, None, "empty_like")


def _like_buffer(x: Any) -> Buffer:
    b = x.buffer if isinstance(x, Tensor) else SBUF
    return b if b.on_chip else SBUF


def _filled(shape: Any, value: Any, dtype: Any, buffer: Any, name: str, api: str) -> NkiTensor:
    buf = SBUF if buffer is None else _as_buffer(buffer)
    if buf.kind == "hbm":
        raise NkiValidationError(
            f"nl.{api} cannot create an HBM tensor with an initial value",
            code="err_hbm_tensor_with_init_value_not_supported",
            values={"buffer": buf.name},
            loc=caller_location(),
        )
    t = _alloc(shape, dtype, buf, name, None, api)
    v = value
    if _dt.is_int(t.dtype) and isinstance(v, float) and v.is_integer():
        v = int(v)
    _ve.memset(t, v, loc=caller_location(), api=f"nl.{api}")
    return t


def shared_constant(constant: Any, dtype: Any = None) -> NkiTensor:
    """A shared-HBM tensor holding a host constant (NumPy array or a .npy path)."""
    run = current()
    loc = caller_location()
    arr = np.load(constant) if isinstance(constant, (str, os.PathLike)) else np.asarray(constant)
    if dtype is not None:
        arr = _dt.cast_to(arr.astype(np.float32) if arr.dtype.kind in "iub" and _dt.is_float(_dt.normalize(dtype)) else arr,
                          _dt.normalize(dtype))

    def make() -> NkiTensor:
        st = wrap_host_array(
            arr, SHARED_HBM, name=name_from_source(loc) or "constant", track_writes=run.numerics, copy=run.numerics
        )
        st.loc = loc
        mem = st.take_mem()
        return NkiTensor.wrap(st, mem, mem.data, mem.written)

    sched = scheduler()
    return sched.shared_alloc(arr.shape or (1,), arr.dtype, make) if sched is not None else make()


def shared_identity_matrix(n: int, dtype: Any = uint8, dst: Any = None) -> NkiTensor:
    """An n x n identity in SBUF (loaded from a shared constant), or written into `dst`."""
    loc = caller_location()
    dt = _dt.normalize(dtype)
    const = shared_constant(np.eye(int(n), dtype=np.float32).astype(dt) if dt not in _dt.X4_TYPES else np.eye(int(n)), None)
    if dst is None:
        dst = _alloc((int(n), int(n)), dt, SBUF, "identity", None, "shared_identity_matrix")
    nisa._dma_copy(dst, const, None, nisa.oob_mode.error, nisa.dge_mode.unknown, nisa.engine.unknown, loc,
                   "nl.shared_identity_matrix")
    return dst


def rand(shape: Any, dtype: Any, buffer: Any = None, name: str = "") -> NkiTensor:
    """Uniform random values in [0, 1) (nisa.rand2 on NeuronCore-v4, else the Vector engine's generator)."""
    run = current()
    t = _alloc(shape, dtype, buffer, name, None, "rand")
    loc = caller_location()
    if run.arch.nc_version >= 4:
        _ve.rand2(t, 0.0, 1.0, loc=loc, api="nl.rand")
    else:
        _ve.random_uniform(t, loc=loc, api="nl.rand")
    return t


def random_seed(seed: Any) -> None:
    """Seed the on-device generator from a [1, 1] SBUF / PSUM tensor."""
    if not isinstance(seed, Tensor):
        raise NkiTypeError("nl.random_seed takes a [1, 1] tensor holding the seed", code="err_invalid_operand",
                           loc=caller_location())
    _ve.seed_rng_lanes(seed, loc=caller_location(), api="nl.random_seed")


# ================================================================================================ helpers
def _on_chip_operand(x: Any, api: str, name: str = "x") -> NkiTensor:
    if not isinstance(x, Tensor):
        raise NkiTypeError(f"nl.{api}: '{name}' must be a tensor, got {type(x).__name__}", code="err_invalid_operand",
                           loc=caller_location())
    if not x.storage.buffer.on_chip:
        raise NkiValidationError(
            f"nl.{api}: operand '{name}' is in HBM; compute instructions read SBUF or PSUM",
            code="err_unsupported_memory",
            values={name: x.storage.name},
            loc=caller_location(),
            hint="load it with nl.load / nisa.dma_copy first",
        )
    return x  # type: ignore[return-value]


def _new_tile(shape: tuple[int, ...], dtype: Any, buffer: Buffer = SBUF) -> NkiTensor:
    return _alloc(shape, dtype, buffer, "", None, "tile")


def _weak(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating, bool, np.bool_))


def _result_dtype(x: Any, y: Any) -> np.dtype:
    tx, ty = isinstance(x, Tensor), isinstance(y, Tensor)
    if tx and ty:
        return _dt.promote(x.dtype, y.dtype)
    t, s = (x, y) if tx else (y, x)
    if isinstance(s, float) and not _dt.is_float(t.dtype):
        return _dt.float32
    return t.dtype


# ================================================================================================ movement
def load(src: Any, dtype: Any = None) -> NkiTensor:
    """HBM -> new SBUF tile (optionally cast through fp32)."""
    loc = caller_location()
    if not isinstance(src, Tensor) or src.storage.buffer.kind != "hbm":
        raise NkiValidationError("nl.load: src must be an HBM tensor", code="err_unsupported_memory", loc=loc)
    t = _new_tile(tuple(src.shape), dtype or src.dtype)
    nisa._dma_copy(t, src, None, nisa.oob_mode.error, nisa.dge_mode.unknown, nisa.engine.unknown, loc, "nl.load")
    return t


def store(dst: Any, value: Any) -> None:
    """SBUF tile -> HBM (a PSUM tile must be copied to SBUF first)."""
    loc = caller_location()
    if not isinstance(dst, Tensor) or dst.storage.buffer.kind != "hbm":
        raise NkiValidationError("nl.store: dst must be an HBM tensor", code="err_unsupported_memory", loc=loc)
    if not isinstance(value, Tensor) or value.storage.buffer.kind != "sbuf":
        raise NkiValidationError(
            "nl.store: value must be an SBUF tile (copy PSUM tiles to SBUF with nl.copy / nisa.tensor_copy first)",
            code="err_unsupported_memory",
            loc=loc,
        )
    nisa._dma_copy(dst, value, None, nisa.oob_mode.error, nisa.dge_mode.unknown, nisa.engine.unknown, loc, "nl.store")


def load_transpose2d(src: Any, dtype: Any = None) -> NkiTensor:
    """HBM [a, b] -> SBUF [b, a] through a DMA transpose."""
    loc = caller_location()
    if not isinstance(src, Tensor) or src.storage.buffer.kind != "hbm" or src.ndim != 2:
        raise NkiValidationError("nl.load_transpose2d: src must be a 2-D HBM tensor", code="err_unsupported_memory", loc=loc)
    t = _new_tile((src.shape[1], src.shape[0]), dtype or src.dtype)
    after = nisa._hbm_guard([src], [], loc)
    from ...isa import dma as _dma

    _dma.dma_transpose(t, src, axes=(1, 0), loc=loc, api="nl.load_transpose2d")
    after()
    return t


def copy(x: Any, dtype: Any = None) -> NkiTensor:
    """New SBUF tile copied from an on-chip tile (Vector engine; bit exact when dtypes match)."""
    x = _on_chip_operand(x, "copy")
    t = _new_tile(tuple(x.shape), dtype or x.dtype)
    _ve.tensor_copy(t, x, loc=caller_location(), api="nl.copy")
    return t


copy._nki_op = "copy"  # type: ignore[attr-defined]


def broadcast_to(x: Any, shape: Any, dtype: Any = None) -> NkiTensor:
    """Broadcast size-1 dims of x to `shape` (same rank) into a new SBUF tile."""
    x = _on_chip_operand(x, "broadcast_to")
    shp = _shape(shape, "broadcast_to")
    if len(shp) != x.ndim or any(a != b and a != 1 for a, b in zip(x.shape, shp)):
        raise NkiValidationError(
            f"nl.broadcast_to: cannot broadcast {tuple(x.shape)} to {shp} (same rank, size-1 dims only)",
            code="err_shape_mismatch",
            loc=caller_location(),
        )
    t = _new_tile(shp, dtype or x.dtype)
    _ve.tensor_tensor(t, x, x, "bypass", allow_broadcast=True, loc=caller_location(), api="nl.broadcast_to")
    return t


def gather_flattened(data: Any, indices: Any, axis: int = 0, dtype: Any = None) -> NkiTensor:
    """Per-partition gather from the flattened free dims of data with uint32 indices (GpSimd nc_n_gather)."""
    data = _on_chip_operand(data, "gather_flattened", "data")
    t = _new_tile(tuple(indices.shape), data.dtype)
    _gp.nc_n_gather(t, data, indices, loc=caller_location(), api="nl.gather_flattened")
    if dtype is not None and _dt.normalize(dtype) != data.dtype:
        return copy(t, dtype)
    return t


# ================================================================================================ element-wise
_SIM_ONLY = {"divide", "mod", "fmod"}


def _binary(op: str, x: Any, y: Any, dtype: Any, api: str) -> Any:
    loc = caller_location()
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):
        return alu.apply_binary(op, np.float32(x), np.float32(y)).item()
    if op in _SIM_ONLY:
        current().warn(
            "warn_simulator_only_api",
            f"nl.{api} is not lowered to hardware by the NKI compiler (it only runs in simulation); multiply by "
            f"nl.reciprocal / use nisa instructions for device kernels",
            loc,
        )
    for nm, v in (("x", x), ("y", y)):
        if isinstance(v, Tensor):
            _on_chip_operand(v, api, nm)
        elif not _weak(v):
            raise NkiTypeError(f"nl.{api}: '{nm}' must be a tile or a scalar, got {type(v).__name__}",
                               code="err_invalid_operand", loc=loc)
    out_dt = _dt.normalize(dtype) if dtype is not None else _result_dtype(x, y)
    if isinstance(x, Tensor) and isinstance(y, Tensor):
        if tuple(x.shape) != tuple(y.shape):
            raise NkiValidationError(
                f"nl.{api}: operand shapes {tuple(x.shape)} and {tuple(y.shape)} differ; the current API's nl functions "
                f"do not broadcast",
                code="err_shape_mismatch",
                values={"x": tuple(x.shape), "y": tuple(y.shape)},
                loc=loc,
                hint="use nisa.tensor_scalar with a [P, 1] operand, or nl.broadcast_to",
            )
        t = _new_tile(tuple(x.shape), out_dt)
        eng = "gpsimd" if op == "power" else None
        _ve.tensor_tensor(t, x, y, op, engine=eng, loc=loc, api=f"nl.{api}")
        return t
    if op == "power" and not isinstance(y, Tensor):
        raise NkiValidationError("nl.power: the exponent must be a tile in the current API", code="err_invalid_operand", loc=loc)
    tile = x if isinstance(x, Tensor) else y
    scalar = y if isinstance(x, Tensor) else x
    t = _new_tile(tuple(tile.shape), out_dt)
    _ve.tensor_scalar(t, tile, op, float(scalar) if not isinstance(scalar, (int, np.integer)) or op not in alu.BITVEC else int(scalar),
                      reverse0=not isinstance(x, Tensor), loc=loc, api=f"nl.{api}")
    return t


def _make_binary(op: str, api: str) -> Callable:
    def fn(x: Any, y: Any, dtype: Any = None) -> Any:
        return _binary(op, x, y, dtype, api)

    fn.__name__ = fn.__qualname__ = api
    fn.__doc__ = f"Element-wise {api}(x, y) into a new SBUF tile (same shapes or a scalar operand; fp32 math)."
    fn._nki_op = op  # type: ignore[attr-defined]
    return fn


add = _make_binary("add", "add")
subtract = _make_binary("subtract", "subtract")
multiply = _make_binary("multiply", "multiply")
divide = _make_binary("divide", "divide")
power = _make_binary("power", "power")
maximum = _make_binary("maximum", "maximum")
minimum = _make_binary("minimum", "minimum")
abs_max = _make_binary("abs_max", "abs_max")
abs_min = _make_binary("abs_min", "abs_min")
fmod = _make_binary("fmod", "fmod")
mod = _make_binary("mod", "mod")
equal = _make_binary("equal", "equal")
not_equal = _make_binary("not_equal", "not_equal")
greater = _make_binary("greater", "greater")
greater_equal = _make_binary("greater_equal", "greater_equal")
less = _make_binary("less", "less")
less_equal = _make_binary("less_equal", "less_equal")
logical_and = _make_binary("logical_and", "logical_and")
logical_or = _make_binary("logical_or", "logical_or")
logical_xor = _make_binary("logical_xor", "logical_xor")
bitwise_and = _make_binary("bitwise_and", "bitwise_and")
bitwise_or = _make_binary("bitwise_or", "bitwise_or")
bitwise_xor = _make_binary("bitwise_xor", "bitwise_xor")
left_shift = _make_binary("left_shift", "left_shift")
right_shift = _make_binary("right_shift", "right_shift")


def _unary(op: str, x: Any, dtype: Any, api: str) -> Any:
    loc = caller_location()
    if not isinstance(x, Tensor):
        return float(alu.unary(op)(np.float32(x))) if op in alu.UNARY else x
    x = _on_chip_operand(x, api)
    t = _new_tile(tuple(x.shape), dtype or x.dtype)
    if op == "rsqrt":
        if x.storage.buffer.kind == "psum":
            raise NkiValidationError("nl.rsqrt: input cannot be in PSUM (GpSimd)", code="err_unsupported_memory", loc=loc)
        _ve.tensor_scalar(t, x, "rsqrt", None, engine="gpsimd", loc=loc, api="nl.rsqrt")
    elif op == "negative":
        _ve.tensor_scalar(t, x, "multiply", -1.0, loc=loc, api="nl.negative")
    elif op == "logical_not":
        _ve.tensor_scalar(t, x, "equal", 0.0, loc=loc, api="nl.logical_not")
    elif op in alu.ACTIVATIONS and op not in ("abs", "sign"):
        _se.activation(t, op, x, loc=loc, api=f"nl.{api}")
    else:
        _ve.tensor_scalar(t, x, op, None, loc=loc, api=f"nl.{api}")
    return t


def _make_unary(op: str, api: str) -> Callable:
    def fn(x: Any, dtype: Any = None) -> Any:
        return _unary(op, x, dtype, api)

    fn.__name__ = fn.__qualname__ = api
    fn.__doc__ = f"Element-wise {api}(x) into a new SBUF tile (fp32 math)."
    fn._nki_op = op  # type: ignore[attr-defined]
    return fn


abs = _make_unary("abs", "abs")  # noqa: A001 - NKI's name
negative = _make_unary("negative", "negative")
sign = _make_unary("sign", "sign")
trunc = _make_unary("trunc", "trunc")
floor = _make_unary("floor", "floor")
ceil = _make_unary("ceil", "ceil")
exp = _make_unary("exp", "exp")
log = _make_unary("log", "log")
cos = _make_unary("cos", "cos")
tan = _make_unary("tan", "tan")
tanh = _make_unary("tanh", "tanh")
arctan = _make_unary("arctan", "arctan")
sqrt = _make_unary("sqrt", "sqrt")
rsqrt = _make_unary("rsqrt", "rsqrt")
square = _make_unary("square", "square")
reciprocal = _make_unary("reciprocal", "reciprocal")
sigmoid = _make_unary("sigmoid", "sigmoid")
relu = _make_unary("relu", "relu")
gelu = _make_unary("gelu", "gelu")
gelu_dx = _make_unary("gelu_dx", "gelu_dx")
gelu_apprx_tanh = _make_unary("gelu_apprx_tanh", "gelu_apprx_tanh")
gelu_apprx_sigmoid = _make_unary("gelu_apprx_sigmoid", "gelu_apprx_sigmoid")
gelu_apprx_sigmoid_dx = _make_unary("gelu_apprx_sigmoid_dx", "gelu_apprx_sigmoid_dx")
silu = _make_unary("silu", "silu")
silu_dx = _make_unary("silu_dx", "silu_dx")
erf = _make_unary("erf", "erf")
erf_dx = _make_unary("erf_dx", "erf_dx")
softplus = _make_unary("softplus", "softplus")
mish = _make_unary("mish", "mish")
invert = _make_unary("invert", "invert")
logical_not = _make_unary("logical_not", "logical_not")


def sin(x: Any, dtype: Any = None) -> Any:
    """Sine with range reduction to [-pi, pi] (two Vector ops) before the Scalar engine's sin."""
    loc = caller_location()
    if not isinstance(x, Tensor):
        return math.sin(x)
    x = _on_chip_operand(x, "sin")
    red = _new_tile(tuple(x.shape), float32)
    _ve.tensor_scalar(red, x, "add", float(np.pi), op1="mod", operand1=float(2 * np.pi), loc=loc, api="nl.sin")
    _ve.tensor_scalar(red, red, "subtract", float(np.pi), loc=loc, api="nl.sin")
    t = _new_tile(tuple(x.shape), dtype or x.dtype)
    _se.activation(t, "sin", red, loc=loc, api="nl.sin")
    return t


sin._nki_op = "sin"  # type: ignore[attr-defined]


# ================================================================================================ reductions
def _reduce_shape(x: NkiTensor, axis: Any, keepdims: bool, api: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    axes = _ve.normalize_axes(axis, x.ndim, f"nl.{api}", caller_location())
    if keepdims:
        shape = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
    else:
        shape = tuple(n for i, n in enumerate(x.shape) if i not in axes)
    if len(shape) < 2:
        shape = shape + (1,) * (2 - len(shape))
    return axes, shape


def _reduce(op: str, x: Any, axis: Any, dtype: Any, keepdims: bool, api: str) -> NkiTensor:
    x = _on_chip_operand(x, api)
    axes, shape = _reduce_shape(x, axis, keepdims, api)
    t = _new_tile(shape, dtype or x.dtype)
    _ve.tensor_reduce(t, op, x, axes, keepdims=keepdims, loc=caller_location(), api=f"nl.{api}")
    return t


def _make_reduce(op: str, api: str) -> Callable:
    def fn(x: Any, axis: Any, dtype: Any = None, keepdims: bool = False) -> Any:
        return _reduce(op, x, axis, dtype, keepdims, api)

    fn.__name__ = fn.__qualname__ = api
    fn.__doc__ = f"{api} over free axes (Vector engine tensor_reduce, fp32 math)."
    fn._nki_op = op  # type: ignore[attr-defined]
    return fn


sum = _make_reduce("add", "sum")  # noqa: A001
prod = _make_reduce("multiply", "prod")
max = _make_reduce("maximum", "max")  # noqa: A001
min = _make_reduce("minimum", "min")  # noqa: A001


def all(x: Any, axis: Any, dtype: Any = None) -> NkiTensor:  # noqa: A001
    """Logical AND over free axes (1 / 0)."""
    return _reduce("logical_and", x, axis, dtype, False, "all")


all._nki_op = "logical_and"  # type: ignore[attr-defined]


def mean(x: Any, axis: Any, dtype: Any = None, keepdims: bool = False) -> NkiTensor:
    """Mean over free axes (fp32 sum, then a scale)."""
    loc = caller_location()
    x = _on_chip_operand(x, "mean")
    s = _reduce("add", x, axis, float32, keepdims, "mean")
    axes = _ve.normalize_axes(axis, x.ndim, "nl.mean", loc)
    n = int(math.prod([x.shape[a] for a in axes]))
    t = _new_tile(tuple(s.shape), dtype or x.dtype)
    _ve.tensor_scalar(t, s, "multiply", 1.0 / n, loc=loc, api="nl.mean")
    return t


def var(x: Any, axis: Any, dtype: Any = None, keepdims: bool = False) -> NkiTensor:
    """Population variance over free axes (result kept 2-D): mean((x - mean)^2)."""
    loc = caller_location()
    x = _on_chip_operand(x, "var")
    axes = _ve.normalize_axes(axis, x.ndim, "nl.var", loc)
    n = int(math.prod([x.shape[a] for a in axes]))
    flat = x.reshape((x.shape[0], x.free_size)) if x.ndim > 2 and axes == tuple(range(1, x.ndim)) else x
    m = _new_tile((x.shape[0], 1), float32)
    _ve.tensor_reduce(m, "add", flat, tuple(range(1, flat.ndim)), keepdims=True, loc=loc, api="nl.var")
    _ve.tensor_scalar(m, m, "multiply", 1.0 / n, loc=loc, api="nl.var")
    centered = _new_tile(tuple(flat.shape), float32)
    _ve.tensor_scalar(centered, flat, "subtract", m, loc=loc, api="nl.var")
    sq = _new_tile((x.shape[0], 1), float32)
    _se.activation(centered, "square", centered, reduce_res=sq, reduce_op="add", reduce_cmd="reset_reduce", loc=loc, api="nl.var")
    t = _new_tile((x.shape[0], 1), dtype or x.dtype)
    _ve.tensor_scalar(t, sq, "multiply", 1.0 / n, loc=loc, api="nl.var")
    return t


# ================================================================================================ composite
def softmax(x: Any, axis: Any = -1, dtype: Any = None) -> NkiTensor:
    """exp(x - max) / sum(exp(x - max)) along the last free axis."""
    loc = caller_location()
    x = _on_chip_operand(x, "softmax")
    if int(axis) % x.ndim != x.ndim - 1:
        raise NkiValidationError("nl.softmax: only the last axis is supported", code="err_invalid_reduce_axis", loc=loc)
    p = x.shape[0]
    flat = x.reshape((p, x.free_size)) if x.ndim > 2 else x
    neg_max = _new_tile((p, 1), float32)
    _ve.tensor_reduce(neg_max, "maximum", flat, (1,), negate=True, loc=loc, api="nl.softmax")
    e = _new_tile(tuple(flat.shape), float32)
    total = _new_tile((p, 1), float32)
    _se.activation(e, "exp", flat, bias=neg_max, reduce_op="add", reduce_res=total, reduce_cmd="reset_reduce", loc=loc,
                   api="nl.softmax")
    inv = _new_tile((p, 1), float32)
    _ve.reciprocal(inv, total, loc=loc, api="nl.softmax")
    t = _new_tile(tuple(x.shape), dtype or x.dtype)
    tf = t.reshape((p, t.free_size)) if t.ndim > 2 else t
    _ve.tensor_scalar(tf, e, "multiply", inv, loc=loc, api="nl.softmax")
    return t


def rms_norm(x: Any, w: Any, axis: Any, n: int, epsilon: float = 1e-6, dtype: Any = None, compute_dtype: Any = None) -> NkiTensor:
    """x / sqrt(sum(x^2) / n + epsilon) * w along the free axis."""
    loc = caller_location()
    x = _on_chip_operand(x, "rms_norm")
    w = _on_chip_operand(w, "rms_norm", "w")
    p = x.shape[0]
    sq = _new_tile(tuple(x.shape), float32)
    ssum = _new_tile((p, 1), float32)
    _se.activation(sq, "square", x, reduce_op="add", reduce_res=ssum, reduce_cmd="reset_reduce", loc=loc, api="nl.rms_norm")
    rstd = _new_tile((p, 1), float32)
    _ve.tensor_scalar(rstd, ssum, "multiply", 1.0 / float(n), op1="add", operand1=float(epsilon), loc=loc, api="nl.rms_norm")
    _ve.tensor_scalar(rstd, rstd, "rsqrt", None, engine="gpsimd", loc=loc, api="nl.rms_norm")
    normed = _new_tile(tuple(x.shape), float32)
    _ve.tensor_scalar(normed, x, "multiply", rstd, loc=loc, api="nl.rms_norm")
    t = _new_tile(tuple(x.shape), dtype or x.dtype)
    if tuple(w.shape) == tuple(x.shape):
        _ve.tensor_tensor(t, normed, w, "multiply", loc=loc, api="nl.rms_norm")
    else:
        _ve.tensor_tensor(t, normed, w, "multiply", allow_broadcast=True, loc=loc, api="nl.rms_norm")
    return t


def dropout(x: Any, rate: Any, dtype: Any = None) -> NkiTensor:
    """Zero elements with probability `rate` (scalar or [P, 1])."""
    x = _on_chip_operand(x, "dropout")
    t = _new_tile(tuple(x.shape), x.dtype)
    _ve.dropout(t, x, rate, loc=caller_location(), api="nl.dropout")
    if dtype is not None and _dt.normalize(dtype) != x.dtype:
        return copy(t, dtype)
    return t


def where(condition: Any, x: Any, y: Any, dtype: Any = None) -> NkiTensor:
    """x where condition (a 1.0 / 0.0 tile) is nonzero, else y."""
    loc = caller_location()
    c = _on_chip_operand(condition, "where", "condition")
    shape = tuple(c.shape)
    for nm, v in (("x", x), ("y", y)):
        if isinstance(v, Tensor):
            _on_chip_operand(v, "where", nm)
            if tuple(v.shape) != shape:
                raise NkiValidationError(f"nl.where: '{nm}' shape {tuple(v.shape)} differs from condition {shape}",
                                         code="err_shape_mismatch", loc=loc)
    ref = x if isinstance(x, Tensor) else (y if isinstance(y, Tensor) else c)
    t = _new_tile(shape, dtype or ref.dtype)
    _ve.select(t, c, x, y, loc=loc, api="nl.where")
    return t


def ds(start: Any, size: int) -> DynSlice:
    """Dynamic slice ds(start, size) == start:start+size (start may be a register)."""
    return DynSlice(start, size)


def expand_dims(x: Any, axis: int) -> NkiTensor:
    """Insert a size-1 dimension (a view)."""
    return x.expand_dim(axis)


# ================================================================================================ matmul
def matmul(x: Any, y: Any, transpose_x: bool = False) -> NkiTensor:
    """x @ y on the Tensor engine into a new fp32 PSUM tile (transpose_x=True: x is already [K, M])."""
    loc = caller_location()
    x = _on_chip_operand(x, "matmul")
    y = _on_chip_operand(y, "matmul", "y")
    if not transpose_x:
        m, k = x.shape[0], x.free_size
        xt_psum = _new_tile((k, m), x.dtype, PSUM)
        _te.nc_transpose_pe(xt_psum, x, loc=loc, api="nl.matmul(transpose)")
        xt = _new_tile((k, m), x.dtype)
        _ve.tensor_copy(xt, xt_psum, loc=loc, api="nl.matmul(transpose)")
        x = xt
    t = _new_tile((x.free_size, y.free_size), float32, PSUM)
    _te.nc_matmul(t, x, y, accumulate=False, loc=loc, api="nl.matmul")
    return t


def transpose(x: Any, dtype: Any = None) -> NkiTensor:
    """Swap partition and free dimension of a 2-D tile (<= 128 x 128) on the PE array -> PSUM."""
    loc = caller_location()
    x = _on_chip_operand(x, "transpose")
    if x.ndim != 2:
        raise NkiValidationError(f"nl.transpose needs a 2-D tile, got {tuple(x.shape)}",
                                 code="err_exceed_max_supported_dimension", loc=loc)
    t = _new_tile((x.shape[1], x.shape[0]), dtype or x.dtype, PSUM)
    _te.nc_transpose_pe(t, x, loc=loc, api="nl.transpose")
    return t


# ================================================================================================ loops
def _range_args(start: Any, stop: Any, step: Any, api: str) -> range:
    for v in (start, stop, step):
        if isinstance(v, VirtualRegister):
            raise NkiTypeError(
                f"nl.{api}: bounds must be compile-time ints; use nl.dynamic_range / nl.fori_loop for register bounds",
                code="err_register_in_python_control_flow",
                loc=caller_location(),
            )
    return range(int(start)) if stop is None else range(int(start), int(stop), int(step))


def affine_range(start: Any, stop: Any = None, step: Any = 1) -> range:
    """Deprecated alias of range() in the current API (fully unrolled)."""
    return _range_args(start, stop, step, "affine_range")


def sequential_range(start: Any, stop: Any = None, step: Any = 1) -> range:
    """Deprecated alias of range()."""
    return _range_args(start, stop, step, "sequential_range")


def static_range(start: Any, stop: Any = None, step: Any = 1) -> range:
    """Deprecated alias of range()."""
    return _range_args(start, stop, step, "static_range")


def _reg_or_int(v: Any, api: str) -> int:
    if isinstance(v, VirtualRegister):
        return v.get(api, caller_location())
    return int(v)


def dynamic_range(start: Any, stop: Any = None, step: Any = 1) -> Iterator[VirtualRegister]:
    """On-device loop; bounds may be registers; yields a frozen register per iteration (deprecated in 0.6)."""
    run = current()
    run.warn("warn_deprecated_dynamic_range", "nl.dynamic_range is deprecated since NKI 0.6; use nl.fori_loop",
             caller_location())
    lo, hi = (0, _reg_or_int(start, "dynamic_range")) if stop is None else (
        _reg_or_int(start, "dynamic_range"), _reg_or_int(stop, "dynamic_range"))
    st = _reg_or_int(step, "dynamic_range")
    if st == 0:
        raise NkiValidationError("nl.dynamic_range: step cannot be 0", code="err_invalid_loop", loc=caller_location())
    return _dynamic_iter(lo, hi, st, _enter_dynamic_loop("dynamic_range", caller_location()))


def _dynamic_iter(lo: int, hi: int, st: int, prev: tuple[int, ...]) -> Iterator[VirtualRegister]:
    try:
        for i in range(lo, hi, st):
            yield VirtualRegister(i, frozen=True, name="i")
    finally:
        nisa._scope.loops = prev


def _enter_dynamic_loop(api: str, loc: Any) -> tuple[int, ...]:
    """Check that a register-based loop may start here and enter it (returns the enclosing loop path)."""
    sc = nisa._scope
    if getattr(sc, "no_reorder", 0):
        raise NkiValidationError(
            f"nl.{api}: register-based dynamic loops are not supported inside an nl.no_reorder() block",
            code="err_dynamic_loop_in_no_reorder",
            loc=loc,
            hint="move the loop out of the block, or use a static loop (range / nl.static_range is unrolled)",
        )
    prev = getattr(sc, "loops", ())
    sc.loop_ids = getattr(sc, "loop_ids", 0) + 1
    sc.loops = prev + (sc.loop_ids,)
    return prev


def fori_loop(lower: Any, upper: Any, body_fun: Callable[[VirtualRegister], Any], step: int = 1) -> None:
    """Device loop: body_fun(i) for i in [lower, upper) (i a frozen register; bounds may be registers)."""
    loc = caller_location()
    if isinstance(step, VirtualRegister) or int(step) <= 0:
        raise NkiValidationError("nl.fori_loop: step must be a positive compile-time int", code="err_invalid_loop", loc=loc)
    lo, hi = _reg_or_int(lower, "fori_loop"), _reg_or_int(upper, "fori_loop")
    prev = _enter_dynamic_loop("fori_loop", loc)
    try:
        for i in range(lo, hi, int(step)):
            ret = body_fun(VirtualRegister(i, frozen=True, name="i"))
            if ret is not None:
                raise NkiValidationError("nl.fori_loop: body_fun must not return a value", code="err_invalid_loop",
                                         loc=loc)
    finally:
        nisa._scope.loops = prev


def while_loop(init: Any, body_fun: Callable[[VirtualRegister], VirtualRegister]) -> VirtualRegister:
    """Device while loop: while the register is nonzero, r = body_fun(r); a zero initial value skips the body."""
    loc = caller_location()
    r = init if isinstance(init, VirtualRegister) else VirtualRegister(int(init))
    limit = int(os.environ.get("TRNSIM_MAX_WHILE_ITERATIONS", "1000000"))
    n = 0
    prev = _enter_dynamic_loop("while_loop", loc)
    try:
        while r.get("while_loop", loc) != 0:
            r = body_fun(r)
            if not isinstance(r, VirtualRegister):
                raise NkiTypeError("nl.while_loop: body_fun must return the next condition register",
                                   code="err_invalid_loop", loc=loc)
            n += 1
            if n >= limit:
                raise NkiError(f"nl.while_loop ran {limit} iterations without its condition becoming 0",
                               code="err_infinite_loop", loc=loc, hint="raise TRNSIM_MAX_WHILE_ITERATIONS if intended")
    finally:
        nisa._scope.loops = prev
    return r


@contextlib.contextmanager
def no_reorder() -> Iterator[None]:
    """Instructions inside keep program order. trnsim always executes in program order; the block's instruction
    records get `attrs["no_reorder"]` (a block id), and register-based dynamic loops inside are an error."""
    run = current()
    sc = nisa._scope
    sc.no_reorder = getattr(sc, "no_reorder", 0) + 1
    sc.blocks = block = getattr(sc, "blocks", 0) + 1
    core = run.core
    first = len(run.stream)
    try:
        yield
    finally:
        sc.no_reorder -= 1
        for ins in run.stream[first:]:
            if ins.core == core:
                ins.attrs.setdefault("no_reorder", block)


# ================================================================================================ SPMD
def program_id(axis: int = 0) -> int:
    """Logical-core index of this program (0 or 1 under kernel[2])."""
    run = current()
    if axis != 0:
        raise NkiValidationError(f"nl.program_id: only axis 0 exists in the current API, got {axis}",
                                 code="err_invalid_program_axis", values={"axis": axis}, loc=caller_location())
    return int(run.program_id[0]) if run.program_id else 0


def num_programs(axes: Any = 0) -> int:
    """Number of programs (the LNC degree)."""
    run = current()
    if axes not in (0, None, (0,)):
        raise NkiValidationError(f"nl.num_programs: only axis 0 exists, got {axes}", code="err_invalid_program_axis",
                                 loc=caller_location())
    return int(run.grid[0]) if run.grid else 1


def program_ndim() -> int:
    """Rank of the launch grid (0 without a bracket launch)."""
    return len(current().grid)


# ================================================================================================ misc
def device_print(print_prefix: str, tensor: Any) -> None:
    """Print a tensor's values with a prefix."""
    run = current()
    if not run.numerics:
        return
    if not isinstance(tensor, Tensor):
        text = f"{print_prefix}{tensor}"
    else:
        v = tensor.read()
        v = v.astype(np.float64) if v.dtype in _dt.LOW_PRECISION_FLOATS else v
        text = f"{print_prefix}{np.array2string(np.asarray(v))}"
    if run.num_cores > 1:
        text = f"[core {run.core}] {text}"
    run.printed.append(text)
    builtins.print(text)


class _MissingApi(NkiUnsupportedError, AttributeError):
    pass


_LEGACY_ONLY = {
    "arange": "use slices / nl.ds and NkiTensor views",
    "mgrid": "use slices / nl.ds and NkiTensor views",
    "par_dim": "the partition dimension is always dim 0 in the current API",
    "nc": "launch with kernel[2] and use nl.program_id(0)",
    "spmd_dim": "launch with kernel[2] and use nl.program_id(0)",
    "all_reduce": "use nki.collectives.all_reduce",
    "atomic_rmw": "use nisa.dma_compute",
    "loop_reduce": "accumulate explicitly",
    "static_cast": "cast on the host with NumPy / ml_dtypes",
}


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    hint = _LEGACY_ONLY.get(name)
    raise _MissingApi(
        f"nl.{name} is not part of the current nki.language API" + (" (legacy API only)" if hint else ""),
        code="err_unsupported_api",
        values={"api": f"nl.{name}"},
        loc=caller_location(),
        hint=hint,
    )
