"""`nki.isa` (current API, NKI 0.6): every instruction writes `dst` (first parameter) and returns an
`NkiInstruction` handle; no `dtype=` / `mask=`. Each function checks the current API's extra rules (enum members
only, dst shape / dtype against the operation, runtime out-of-bounds accesses) and calls the one definition of
the instruction in `trnsim.isa`.
"""

from __future__ import annotations

import enum
import functools
import inspect
import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...core import dtypes as _dt
from ...core.context import current
from ...core.errors import (
    NkiIndexError,
    NkiTypeError,
    NkiUnsupportedError,
)
from ...core.errors import NkiValidationError as _CoreValidationError
from ...core.instruction import Engine, Instruction
from ...core.source import SourceLoc, caller_location
from ...core.tensor import Tensor
from ...isa import alu
from ...isa import dma as _dma
from ...isa import gpsimd_engine as _gp
from ...isa import scalar_engine as _se
from ...isa import sync as _sync
from ...isa import tensor_engine as _te
from ...isa import vector_engine as _ve
from .lnc import scheduler
from .tensor import TI_GROUP_TENSOR as _TI_GROUP_TENSOR
from .tensor import TI_GROUP_VECTOR as _TI_GROUP_VECTOR
from .tensor import TI_LIVE as _TI_LIVE
from .tensor import TiView as _TiView

FP32_MIN = float(np.float32(-3.4028235e38))

#: the current API's validation error is trnsim's (`except nisa.NkiValidationError` catches trnsim's checks)
NkiValidationError = _CoreValidationError


# ================================================================================================ enums
class engine(enum.Enum):  # noqa: N801 - NKI's name
    """Neuron Device engines."""

    unknown = 0
    tensor = 1
    scalar = 2
    gpsimd = 3
    dma = 4
    vector = 5
    sync = 6


class reduce_cmd(enum.Enum):  # noqa: N801
    """Engine accumulator-register commands."""

    idle = 0
    reset = 1
    reduce = 2
    reset_reduce = 3
    load_reduce = 4


class dge_mode(enum.Enum):  # noqa: N801
    """Descriptor Generation Engine mode (note: numbered differently from the legacy API's dge_mode)."""

    unknown = 0
    swdge = 1
    hwdge = 2
    none = 3


class oob_mode(enum.Enum):  # noqa: N801
    """Out-of-bounds access mode of indirect DMA."""

    error = 0
    skip = 1


class matmul_perf_mode(enum.Enum):  # noqa: N801
    """Tensor-engine performance mode."""

    none = "none"
    double_row = "double_row"


class nc_version(enum.Enum):  # noqa: N801
    """NeuronCore generation."""

    gen2 = 2
    gen3 = 3
    gen4 = 4

    def __lt__(self, other: Any) -> bool:
        return self.value < _version_value(other)

    def __le__(self, other: Any) -> bool:
        return self.value <= _version_value(other)

    def __gt__(self, other: Any) -> bool:
        return self.value > _version_value(other)

    def __ge__(self, other: Any) -> bool:
        return self.value >= _version_value(other)


def _version_value(v: Any) -> int:
    return v.value if isinstance(v, nc_version) else int(v)


class dma_engine(enum.Enum):  # noqa: N801
    """DMA transfer engine of sendrecv."""

    dma = 1
    gpsimd_dma = 2


# deprecated module-level engine aliases
tensor_engine = engine.tensor
vector_engine = engine.vector
scalar_engine = engine.scalar
gpsimd_engine = engine.gpsimd
unknown_engine = engine.unknown



def _enum(value: Any, cls: type[enum.Enum], name: str, loc: SourceLoc) -> enum.Enum:
    """Only members of the current API's enum are accepted (raw ints and legacy enums are rejected)."""
    if isinstance(value, cls):
        return value
    if value is None and cls is engine:
        return engine.unknown
    legacy = type(value).__module__.endswith("legacy.isa")
    raise NkiTypeError(
        f"{name} must be a member of nki.isa.{cls.__name__}, got {value!r}"
        + (" (a legacy neuronxcc.nki enum: the numbering differs between the two APIs)" if legacy else ""),
        code="err_invalid_enum_value",
        values={name: repr(value)},
        loc=loc,
        hint=f"pass nki.isa.{cls.__name__}.<member>; raw integers are rejected since NKI 0.3",
    )


_ENGINE_NAMES = {
    engine.unknown: None,
    engine.tensor: "tensor",
    engine.scalar: "scalar",
    engine.gpsimd: "gpsimd",
    engine.vector: "vector",
    engine.sync: "sync",
    engine.dma: "dma",
}


def _engine(value: Any, loc: SourceLoc) -> str | None:
    return _ENGINE_NAMES[_enum(value, engine, "engine", loc)]


def _cmd(value: Any, loc: SourceLoc) -> str:
    if isinstance(value, str):  # internal callers
        return value
    return _enum(value, reduce_cmd, "reduce_cmd", loc).name


# ================================================================================================ handles
class VirtualRegister(_sync.Register):
    """A virtual engine-sequencer register (`nisa.register_alloc`): dynamic loop bounds, while conditions,
    runtime access-pattern offsets. Holds a 32-bit value per core."""

    __slots__ = ()

    def __init__(self, state: Any = None, frozen: bool = False, name: str = "") -> None:
        super().__init__(state if isinstance(state, (int, np.integer)) else None, frozen, name)

    def __bool__(self) -> bool:
        loc = caller_location()
        run = current()
        run.warn(
            "warn_deprecated_register_while",
            "`while register:` (a dynamic while loop on a register) is deprecated since NKI 0.6; use nl.while_loop",
            loc,
        )
        return self.get("while", loc) != 0

    def __int__(self) -> int:
        raise NkiTypeError(
            "a VirtualRegister holds a runtime value; it cannot be converted with int() / used in range() or if",
            code="err_register_in_python_control_flow",
            loc=caller_location(),
            hint="use nl.dynamic_range / nl.fori_loop / nl.while_loop for loops over register values",
        )

    __index__ = __int__


class dependency(enum.Enum):  # noqa: N801
    """Kind of an explicit dependency (`NkiInstruction.depends_on`, `Kernel.with_schedule`)."""

    runtime = "runtime"
    schedule = "schedule"


#: per core thread (each core of a launch runs in its own thread): the dynamic (register) loops the core is
#: inside (`loops`, a tuple of loop ids) and its nl.no_reorder nesting (`no_reorder`)
_scope = threading.local()


class NkiInstruction:
    """Handle returned by every nisa call: `.depends_on(*producers, kind=...)` adds explicit dependency edges.
    trnsim executes in program order, which satisfies every edge; the edges are checked (producer at the same
    dynamic-loop nesting or in an enclosing scope) and recorded in the instruction records."""

    __slots__ = ("instr", "name", "deps", "loops")

    def __init__(self, instr: Instruction | None, name: str | None) -> None:
        self.instr = instr
        self.name = name
        self.deps: list[NkiInstruction] = []
        self.loops = getattr(_scope, "loops", ())
        if instr is not None and name:
            instr.attrs["name"] = name

    def depends_on(self, *producers: Any, kind: Any = None) -> NkiInstruction:
        loc = caller_location()
        if kind is not None:
            _enum(kind, dependency, "kind", loc)
        for p in producers:
            if not isinstance(p, NkiInstruction):
                raise NkiTypeError(
                    f"depends_on takes instruction handles returned by nisa calls, got {type(p).__name__}",
                    code="err_invalid_operand",
                    loc=loc,
                )
            if p.loops != self.loops[: len(p.loops)]:
                raise NkiValidationError(
                    "depends_on: an explicit dependency is a semaphore wait fixed at compile time, so the producer must "
                    "sit at the same dynamic-loop nesting as this instruction or in an enclosing scope; here it is "
                    + ("inside a dynamic loop (nl.fori_loop / nl.while_loop / nl.dynamic_range) this instruction is "
                       "not in" if len(p.loops) > len(self.loops) else "in a different dynamic loop"),
                    code="err_dependency_across_dynamic_loop",
                    values={"producer": p.name or repr(p.instr), "consumer": self.name or repr(self.instr)},
                    loc=loc,
                    hint="static Python loops are unrolled and do not count; move the producer out of the dynamic loop",
                )
            self.deps.append(p)
        if self.instr is not None:
            self.instr.attrs["depends_on"] = [d.instr.idx for d in self.deps if d.instr is not None]
            if kind is not None:
                self.instr.attrs["dependency_kind"] = kind.value
        return self

    def __repr__(self) -> str:
        return f"NkiInstruction({self.instr!r})"


def _ret(instr: Instruction | None, name: str | None) -> NkiInstruction:
    return NkiInstruction(instr, name)


# ================================================================================================ helpers
def get_nc_version() -> nc_version:
    """The target's NeuronCore generation (gen2 trn1, gen3 trn2, gen4 trn3)."""
    return nc_version(current().arch.nc_version)


def get_nc_sub_version() -> int:
    """Silicon revision within a generation (trnsim models revision 0)."""
    current()
    return 0


def _t(x: Any, api: str, name: str, loc: SourceLoc) -> Tensor:
    if not isinstance(x, Tensor):
        raise NkiTypeError(
            f"{api}: '{name}' must be an NkiTensor, got {type(x).__name__}",
            code="err_invalid_operand",
            values={name: repr(x)[:60]},
            loc=loc,
        )
    if type(x) is _TiView:
        _ti_issue(x, api, name, loc)
    return x


#: instructions that consume tensor-indirection views with 32-partition snake groups (the Tensor engine)
_TI_TENSOR_APIS = frozenset({"nisa.nc_matmul", "nisa.nc_matmul_mx"})
#: data movement: tensor indirection is documented for compute instructions only
_TI_DMA_APIS = frozenset({"nisa.dma_copy", "nisa.dma_transpose", "nisa.dma_compute", "nisa.sendrecv", "nl.load",
                          "nl.store", "nl.load_transpose2d"})


def _ti_issue(x: _TiView, api: str, name: str, loc: SourceLoc, group: int | None = None) -> None:
    """Re-read a tensor-indirection view's offsets for the instruction consuming it (its engine's group size)."""
    if api in _TI_DMA_APIS:
        raise NkiUnsupportedError(
            f"{api}: operand '{name}' is a tensor-indirection view (NkiTensor.indirect); tensor indirection is "
            f"documented for compute-engine instructions only",
            code="err_unsupported_api",
            values={name: x.storage.name},
            loc=loc,
            hint="gather / scatter with DMA through .ap(vector_offset=..., indirect_dim=0) on the HBM side, or copy "
            "through the view with nisa.tensor_copy",
        )
    if group is None:
        group = _TI_GROUP_TENSOR if api in _TI_TENSOR_APIS else _TI_GROUP_VECTOR
    x.resolve(group, api, loc)


def _ti_aware(fn: Any) -> Any:
    """Wrap an instruction so that tensor-indirection operands read their offsets when it is issued, with the
    snake group size of the engine that runs it (data movement rejects them)."""
    api = f"nisa.{fn.__name__}"

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _TI_LIVE[0]:  # no tensor-indirection view exists
            return fn(*args, **kwargs)
        for a in args:
            if type(a) is _TiView or (type(a) in (list, tuple) and any(type(b) is _TiView for b in a)):
                break
        else:
            for a in kwargs.values():
                if type(a) is _TiView or (type(a) in (list, tuple) and any(type(b) is _TiView for b in a)):
                    break
            else:
                return fn(*args, **kwargs)
        loc = caller_location()
        params = list(inspect.signature(fn).parameters)
        named = {**dict(zip(params, args)), **kwargs}
        for nm, a in named.items():
            for b in a if type(a) in (list, tuple) else (a,):
                if type(b) is _TiView:
                    _ti_issue(b, api, nm, loc)
        return fn(*args, **kwargs)

    return wrapper


def _no_oob(api: str, loc: SourceLoc, **tensors: Any) -> None:
    for k, t in tensors.items():
        if isinstance(t, Tensor) and getattr(t, "oob", None) is not None and t.oob.any():
            raise NkiIndexError(
                f"{api}: operand '{k}' addresses {int(t.oob.sum())} elements out of bounds of '{t.storage.name}' "
                f"(runtime offset)",
                code="err_tensor_access_out_of_bound",
                values={k: t.storage.name},
                loc=loc,
            )


def _op(op: Any, api: str, name: str, loc: SourceLoc) -> str:
    try:
        return alu.op_name(op)
    except NkiTypeError:
        raise NkiTypeError(
            f"{api}: {name}={op!r} is not an NKI operator (pass nl.add, nl.maximum, nl.exp, ...)",
            code="err_invalid_operator",
            values={name: repr(op)},
            loc=loc,
        ) from None


def _hbm_guard(reads: Sequence[Any], writes: Sequence[Any], loc: SourceLoc):
    """Cross-core race check of the shared-HBM operands of one instruction (no-op with one core)."""
    sched = scheduler()
    if sched is None:
        return lambda: None
    return sched.check_access(
        [t for t in reads if isinstance(t, Tensor)], [t for t in writes if isinstance(t, Tensor)], loc
    )


def _check_dst_like(api: str, loc: SourceLoc, dst: Tensor, src: Tensor, src_name: str) -> None:
    if dst.partitions != src.partitions or dst.free_size != src.free_size:
        raise NkiValidationError(
            f"{api}: dst shape {tuple(dst.shape)} does not match '{src_name}' {tuple(src.shape)} (same partition count "
            f"and elements per partition required)",
            code="err_shape_mismatch",
            values={"dst": tuple(dst.shape), src_name: tuple(src.shape)},
            loc=loc,
        )


# ================================================================================================ Tensor engine
def nc_matmul(
    dst: Any,
    stationary: Any,
    moving: Any,
    is_stationary_onezero: bool = False,
    is_moving_onezero: bool = False,
    is_transpose: bool = False,
    accumulate: bool | None = None,
    tile_position: Any = (),
    tile_size: Any = (),
    perf_mode: Any = matmul_perf_mode.none,
    name: str | None = None,
) -> NkiInstruction:
    """dst[M, N] (+)= stationary[K, M].T @ moving[K, N] (accumulate=None: first write overwrites, later add)."""
    loc = caller_location()
    api = "nisa.nc_matmul"
    run = current()
    for nm, t in (("dst", dst), ("stationary", stationary), ("moving", moving)):
        _t(t, api, nm, loc)
    _no_oob(api, loc, dst=dst, stationary=stationary, moving=moving)
    pm = _enum(perf_mode, matmul_perf_mode, "perf_mode", loc)
    allowed = (_dt.float32, _dt.bfloat16) if run.arch.nc_version >= 4 else (_dt.float32,)
    if dst.dtype not in allowed and not is_transpose:
        raise NkiValidationError(
            f"{api}: dst must be " + " or ".join(_dt.name_of(d) for d in allowed) + f" on {run.arch.name}, got "
            f"{_dt.name_of(dst.dtype)}",
            code="err_unsupported_dtype",
            values={"dst": _dt.name_of(dst.dtype)},
            loc=loc,
        )
    _check_tiling(api, loc, run, tile_position, tile_size, stationary, pm)
    if accumulate is True:
        _warn_accumulate_unwritten(api, loc, dst)
    if pm is matmul_perf_mode.double_row:
        return _ret(_double_row(dst, stationary, moving, accumulate, loc, api), name)
    return _ret(
        _te.nc_matmul(
            dst,
            stationary,
            moving,
            accumulate=accumulate,
            is_transpose=is_transpose,
            is_stationary_onezero=is_stationary_onezero,
            is_moving_onezero=is_moving_onezero,
            tile_position=tuple(tile_position or ()),
            tile_size=tuple(tile_size or ()),
            loc=loc,
            api=api,
        ),
        name,
    )


def _warn_accumulate_unwritten(api: str, loc: SourceLoc, dst: Tensor) -> None:
    """accumulate=True adds to whatever PSUM holds: warn when some of it was never written."""
    wm = dst.wmask
    if wm is None or dst.mem.full or not current().numerics:
        return
    w = wm[dst.index] if dst.index is not None else wm
    if w.size and not w.min():
        bad = int(w.size - np.count_nonzero(w))
        current().warn(
            "warn_accumulate_uninitialized_psum",
            f"{api}: accumulate=True adds to {bad} of {w.size} elements of PSUM tile '{dst.storage.name}' that were "
            f"never written (garbage on hardware)",
            loc,
        )


def _check_tiling(api, loc, run, tile_position, tile_size, stationary, pm) -> None:
    tp, ts = tuple(tile_position or ()), tuple(tile_size or ())
    if not tp and not ts:
        return
    if len(tp) != 2 or len(ts) != 2:
        raise NkiValidationError(
            f"{api}: tile_position and tile_size must both be set as 2-tuples (got {tp}, {ts})",
            code="err_invalid_tiling",
            loc=loc,
        )
    ok_sizes = (32, 64, 128) if run.arch.nc_version >= 3 else (64, 128)
    rs, cs = int(ts[0]), int(ts[1])
    r0, c0 = int(tp[0]), int(tp[1])
    if rs not in ok_sizes or cs not in ok_sizes or r0 % rs or c0 % cs or r0 + rs > 128 or c0 + cs > 128:
        raise NkiValidationError(
            f"{api}: invalid PE tiling tile_position={tp} tile_size={ts} (sizes in {ok_sizes}, positions multiples "
            f"of the size inside the 128x128 array)",
            code="err_invalid_tiling",
            values={"tile_position": tp, "tile_size": ts},
            loc=loc,
        )
    if run.arch.nc_version == 2 and rs == 32 and cs == 32:
        raise NkiValidationError(f"{api}: 32x32 tiles are not supported on {run.arch.name}", code="err_invalid_tiling", loc=loc)
    if stationary.partitions > rs or stationary.free_size > cs:
        raise NkiValidationError(
            f"{api}: stationary {tuple(stationary.shape)} does not fit the PE tile {ts}",
            code="err_invalid_tiling",
            values={"stationary": tuple(stationary.shape), "tile_size": ts},
            loc=loc,
        )
    if pm is matmul_perf_mode.double_row and cs != 128:
        raise NkiValidationError(f"{api}: double_row cannot be combined with column tiling", code="err_invalid_tiling", loc=loc)


def _double_row(dst, stationary, moving, accumulate, loc, api) -> Instruction:
    """double_row: the contraction is split between the partition dim and a first free dim of size 2."""
    if stationary.ndim < 3 or moving.ndim < 3 or stationary.shape[1] != 2 or moving.shape[1] != 2:
        raise NkiValidationError(
            f"{api}: perf_mode=double_row needs stationary [K, 2, M] and moving [K, 2, N] (first free dim 2), got "
            f"{tuple(stationary.shape)} and {tuple(moving.shape)}",
            code="err_shape_mismatch",
            values={"stationary": tuple(stationary.shape), "moving": tuple(moving.shape)},
            loc=loc,
        )
    instr = None
    for h in range(2):
        s = stationary[:, h]
        m = moving[:, h]
        s = s.reshape((s.shape[0], s.free_size)) if s.ndim > 2 else s
        m = m.reshape((m.shape[0], m.free_size)) if m.ndim > 2 else m
        instr = _te.nc_matmul(
            dst, s, m, accumulate=accumulate if h == 0 else True, perf_mode="double_row", loc=loc, api=api
        )
    return instr


def nc_matmul_mx(
    dst: Any,
    stationary: Any,
    moving: Any,
    stationary_scale: Any,
    moving_scale: Any,
    tile_position: Any = None,
    tile_size: Any = None,
    accumulate: bool | None = None,
    name: str | None = None,
) -> NkiInstruction:
    """MX (OCP microscaling) matmul with on-the-fly dequantisation (NeuronCore-v4)."""
    loc = caller_location()
    if accumulate is True and isinstance(dst, Tensor):
        _warn_accumulate_unwritten("nisa.nc_matmul_mx", loc, dst)
    return _ret(
        _te.nc_matmul_mx(
            dst, stationary, moving, stationary_scale, moving_scale, accumulate=accumulate,
            tile_position=tile_position, tile_size=tile_size, loc=loc, api="nisa.nc_matmul_mx",
        ),
        name,
    )


def _check_same_dtype(api: str, loc: SourceLoc, dst: Any, data: Any) -> None:
    if dst.dtype != data.dtype:
        raise NkiValidationError(
            f"{api}: dst dtype {_dt.name_of(dst.dtype)} must equal data dtype {_dt.name_of(data.dtype)}",
            code="err_unsupported_dtype",
            values={"dst": _dt.name_of(dst.dtype), "data": _dt.name_of(data.dtype)},
            loc=loc,
        )


def nc_transpose(dst: Any, data: Any, engine: Any = engine.unknown, name: str | None = None) -> NkiInstruction:
    """Partition <-> free transpose on the Tensor engine (SBUF -> PSUM, <= 128x128) or Vector (<= 32x32)."""
    loc = caller_location()
    api = "nisa.nc_transpose"
    _t(dst, api, "dst", loc)
    _t(data, api, "data", loc)
    _no_oob(api, loc, dst=dst, data=data)
    _check_same_dtype(api, loc, dst, data)
    eng = _engine(engine, loc)
    if eng is None:
        eng = "vector" if data.partitions <= 32 and data.free_size <= 32 else "tensor"
    if eng == "tensor":
        for nm, t in (("dst", dst), ("data", data)):
            if type(t) is _TiView:
                _ti_issue(t, api, nm, loc, _TI_GROUP_TENSOR)
        return _ret(_te.nc_transpose_pe(dst, data, loc=loc, api=api), name)
    if eng == "vector":
        return _ret(_ve.nc_transpose_vector(dst, data, loc=loc, api=api), name)
    raise NkiValidationError(f"{api}: engine must be tensor or vector, got {eng}", code="err_unsupported_engine", loc=loc)


# ================================================================================================ Scalar engine
def activation(
    dst: Any,
    op: Any,
    data: Any,
    bias: Any = None,
    scale: Any = 1.0,
    reduce_op: Any = None,
    reduce_res: Any = None,
    reduce_cmd: Any = reduce_cmd.idle,
    name: str | None = None,
) -> NkiInstruction:
    """dst = op(data * scale + bias) on the Scalar engine; optional free-axis add-reduction into the per-lane
    accumulators (reduce_cmd) read out into reduce_res."""
    loc = caller_location()
    api = "nisa.activation"
    _t(dst, api, "dst", loc)
    _t(data, api, "data", loc)
    _no_oob(api, loc, dst=dst, data=data)
    if reduce_op is not None and _op(reduce_op, api, "reduce_op", loc) != "add":
        raise NkiValidationError(
            f"{api}: reduce_op must be nl.add, got {alu.op_name(reduce_op)}",
            code="err_invalid_operator",
            values={"reduce_op": alu.op_name(reduce_op)},
            loc=loc,
        )
    if reduce_res is not None:
        _check_column(api, loc, "reduce_res", reduce_res, data.partitions)
    return _ret(
        _se.activation(
            dst, op, data, bias=bias, scale=scale, reduce_op=reduce_op, reduce_res=reduce_res,
            reduce_cmd=_cmd(reduce_cmd, loc), loc=loc, api=api,
        ),
        name,
    )


def _check_column(api: str, loc: SourceLoc, nm: str, t: Any, p: int) -> None:
    t = _t(t, api, nm, loc)
    if t.partitions != p or t.free_size != 1:
        raise NkiValidationError(
            f"{api}: '{nm}' must have shape [{p}, 1], got {tuple(t.shape)}",
            code="err_shape_mismatch",
            values={nm: tuple(t.shape)},
            loc=loc,
        )


def activation_reduce(
    dst: Any, op: Any, data: Any, reduce_op: Any, reduce_res: Any, bias: Any = None, scale: Any = 1.0, name: str | None = None
) -> NkiInstruction:
    """activation with reduce_cmd=reset_reduce and a mandatory [P, 1] reduce_res."""
    loc = caller_location()
    api = "nisa.activation_reduce"
    _t(dst, api, "dst", loc)
    _t(data, api, "data", loc)
    _check_column(api, loc, "reduce_res", reduce_res, data.partitions)
    return _ret(
        _se.activation(
            dst, op, data, bias=bias, scale=scale, reduce_op=reduce_op, reduce_res=reduce_res,
            reduce_cmd="reset_reduce", loc=loc, api=api,
        ),
        name,
    )


def activate2(
    dst: Any,
    op: Any,
    data: Any,
    imm0: Any,
    imm1: Any,
    op0: Any,
    op1: Any,
    relu_param: Any = 0.0,
    reverse0: bool = False,
    reverse1: bool = False,
    reduce_op: Any = None,
    reduce_res: Any = None,
    reduce_cmd: Any = reduce_cmd.idle,
    name: str | None = None,
) -> NkiInstruction:
    """dst = op((data op0 imm0) op1 imm1) with PReLU slope and optional reduction (NeuronCore-v4)."""
    loc = caller_location()
    return _ret(
        _se.activate2(
            dst, op, data, imm0, imm1, op0, op1, relu_param=relu_param, reverse0=reverse0, reverse1=reverse1,
            reduce_op=reduce_op, reduce_res=reduce_res, reduce_cmd=_cmd(reduce_cmd, loc), loc=loc, api="nisa.activate2",
        ),
        name,
    )


# ================================================================================================ Vector engine
def tensor_tensor(dst: Any, data1: Any, data2: Any, op: Any, engine: Any = engine.unknown, name: str | None = None) -> NkiInstruction:
    """dst = data1 op data2 element-wise (same partitions and elements per partition; int32 -> GpSimd)."""
    loc = caller_location()
    api = "nisa.tensor_tensor"
    for nm, t in (("dst", dst), ("data1", data1), ("data2", data2)):
        _t(t, api, nm, loc)
    _no_oob(api, loc, dst=dst, data1=data1, data2=data2)
    eng = _engine(engine, loc)
    opn = _op(op, api, "op", loc)
    ints = (_dt.int32, _dt.uint32)
    if (
        eng is None
        and opn in ("add", "subtract", "multiply")
        and data1.dtype in ints
        and data2.dtype in ints
        and dst.dtype in ints
        and all(t.storage.buffer.kind != "psum" for t in (dst, data1, data2))
    ):
        eng = "gpsimd"
    return _ret(_ve.tensor_tensor(dst, data1, data2, op, engine=eng, loc=loc, api=api), name)


def tensor_scalar(
    dst: Any,
    data: Any,
    op0: Any,
    operand0: Any,
    reverse0: bool = False,
    op1: Any = None,
    operand1: Any = None,
    reverse1: bool = False,
    engine: Any = engine.unknown,
    name: str | None = None,
) -> NkiInstruction:
    """dst = (data op0 operand0) op1 operand1 with scalar or [P, 1] fp32 operands."""
    loc = caller_location()
    api = "nisa.tensor_scalar"
    _t(dst, api, "dst", loc)
    _t(data, api, "data", loc)
    _no_oob(api, loc, dst=dst, data=data)
    for nm, v in (("operand0", operand0), ("operand1", operand1)):
        if isinstance(v, Tensor) and v.dtype != _dt.float32 and _op(op0 if nm == "operand0" else op1, api, nm, loc) not in alu.BITVEC:
            raise NkiTypeError(
                f"{api}: vector {nm} must be float32 for arithmetic operators, got {_dt.name_of(v.dtype)}",
                code="err_unsupported_dtype",
                values={nm: _dt.name_of(v.dtype)},
                loc=loc,
            )
    return _ret(
        _ve.tensor_scalar(
            dst, data, op0, operand0, reverse0, op1, operand1, reverse1, engine=_engine(engine, loc), loc=loc, api=api
        ),
        name,
    )


def scalar_tensor_tensor(
    dst: Any, data: Any, op0: Any, operand0: Any, op1: Any, operand1: Any, reverse0: bool = False,
    reverse1: bool = False, name: str | None = None,
) -> NkiInstruction:
    """dst = (data op0 operand0) op1 operand1 with operand0 scalar / [P,1] and operand1 a full tile."""
    loc = caller_location()
    return _ret(
        _ve.scalar_tensor_tensor(
            dst, data, op0, operand0, op1, operand1, reverse0, reverse1, loc=loc, api="nisa.scalar_tensor_tensor"
        ),
        name,
    )


def tensor_reduce(
    dst: Any, op: Any, data: Any, axis: Any, negate: bool = False, keepdims: bool = False, name: str | None = None
) -> NkiInstruction:
    """Reduce the trailing free axes `axis` of data into dst (Vector engine, fp32 math)."""
    loc = caller_location()
    api = "nisa.tensor_reduce"
    _t(dst, api, "dst", loc)
    _t(data, api, "data", loc)
    _no_oob(api, loc, dst=dst, data=data)
    nd = data.ndim
    axes = _ve.normalize_axes(axis, nd, api, loc)
    if axes != tuple(range(nd - len(axes), nd)):
        fix, how = _reduce_axis_fix(data, dst, axes)
        raise NkiValidationError(
            f"{api}: axis={axis!r} on data {tuple(data.shape)}: NKI 0.3+ numbers the reduced axes like NumPy and they "
            f"must be the trailing dims of data; {how} into dst {tuple(dst.shape)}",
            code="err_invalid_reduce_axis",
            values={"axis": axis, "data": tuple(data.shape), "dst": tuple(dst.shape), "use": fix},
            loc=loc,
            hint="NKI 0.2 (and the legacy API's axis=[1], [1, 2], ...) counted reduction axes from the innermost "
            f"free dim, so axis=1 on a {nd}-D tile meant axis={(nd - 1,)}; see docs/migration.md",
        )
    kept = [n for i, n in enumerate(data.shape) if i not in axes]
    want = int(math.prod(kept[1:])) if len(kept) > 1 else 1
    if dst.partitions != data.partitions or dst.free_size != want:
        raise NkiValidationError(
            f"{api}: dst shape {tuple(dst.shape)} does not match the reduction of data {tuple(data.shape)} over axes "
            f"{axes} ([{data.partitions}, {want}] elements)",
            code="err_shape_mismatch",
            values={"dst": tuple(dst.shape), "data": tuple(data.shape), "axis": axes},
            loc=loc,
        )
    opn = _op(op, api, "op", loc)
    if negate and opn in alu.BITVEC:
        raise NkiValidationError(f"{api}: negate needs an arithmetic operator", code="err_invalid_operator", loc=loc)
    return _ret(_ve.tensor_reduce(dst, op, data, axes, negate=negate, keepdims=keepdims, loc=loc, api=api), name)


def _reduce_axis_fix(data: Tensor, dst: Tensor, axes: tuple[int, ...]) -> tuple[tuple[int, ...], str]:
    """What a tensor_reduce call with non-trailing axes most likely means, as (trailing axes, advice): the k
    innermost dims whose reduction gives dst's element count (the NKI 0.2 numbering), else the NumPy meaning of
    `axes` made trailing with a permuted view."""
    nd = data.ndim
    for k in range(1, nd):
        if int(math.prod(data.shape[1 : nd - k])) == dst.free_size:
            fix = tuple(range(nd - k, nd))
            what = "the innermost dim" if k == 1 else f"the {k} innermost dims"
            return fix, f"pass axis={fix} to reduce {what}"
    kept = [d for d in range(1, nd) if d not in axes]
    fix = tuple(range(nd - len(axes), nd))
    if int(math.prod([data.shape[d] for d in kept])) == dst.free_size:
        perm = (0, *kept, *axes)
        return fix, f"pass data.permute({perm}) with axis={fix} to reduce dims {axes}"
    return fix, f"pass axis={fix} (the {len(axes)} innermost dims) with a dst of matching shape"


def tensor_partition_reduce(dst: Any, op: Any, data: Any, name: str | None = None) -> NkiInstruction:
    """Reduce across partitions (GpSimd): add, maximum, bitwise_or, bitwise_and (average)."""
    loc = caller_location()
    return _ret(_gp.tensor_partition_reduce(dst, op, data, loc=loc, api="nisa.tensor_partition_reduce"), name)


def tensor_scalar_reduce(
    dst: Any, data: Any, op0: Any, operand0: Any, reduce_op: Any, reduce_res: Any = None, reverse0: bool = False,
    reduce_cmd: Any = reduce_cmd.reset_reduce, reduce_init: Any = None, reduce_res_negate: bool = False,
    name: str | None = None,
) -> NkiInstruction:
    """dst = data op0 operand0 and a free-axis reduction into the Vector accumulators / reduce_res."""
    loc = caller_location()
    return _ret(
        _ve.tensor_scalar_reduce(
            dst, data, op0, operand0, reduce_op, reduce_res, reverse0, reduce_cmd=_cmd(reduce_cmd, loc),
            reduce_init=reduce_init, reduce_res_negate=reduce_res_negate, loc=loc, api="nisa.tensor_scalar_reduce",
        ),
        name,
    )


def tensor_scalar_cumulative(
    dst: Any, src: Any, op0: Any, op1: Any, imm0: Any, imm1: Any = None, reduce_cmd: Any = reduce_cmd.reset_reduce,
    name: str | None = None,
) -> NkiInstruction:
    """Running scan: reg = op1(op0(src[i], imm0), reg); dst[i] = reg."""
    loc = caller_location()
    return _ret(
        _ve.tensor_scalar_cumulative(
            dst, src, op0, op1, imm0, imm1, reduce_cmd=_cmd(reduce_cmd, loc), loc=loc,
            api="nisa.tensor_scalar_cumulative",
        ),
        name,
    )


def tensor_tensor_scan(
    dst: Any, data0: Any, data1: Any, initial: Any, op0: Any, op1: Any, reverse0: bool = False,
    reverse1: bool = False, name: str | None = None,
) -> NkiInstruction:
    """r[i] = op1(op0(data0[i], r[i-1]), data1[i]) along the free axis, r[-1] = initial."""
    loc = caller_location()
    return _ret(
        _ve.tensor_tensor_scan(dst, data0, data1, initial, op0, op1, reverse0, reverse1, loc=loc, api="nisa.tensor_tensor_scan"),
        name,
    )


def reciprocal(dst: Any, data: Any, name: str | None = None) -> NkiInstruction:
    """dst = 1 / data (Vector engine, fp32)."""
    loc = caller_location()
    _no_oob("nisa.reciprocal", loc, dst=dst, data=data)
    return _ret(_ve.reciprocal(dst, data, loc=loc, api="nisa.reciprocal"), name)


def exponential(
    dst: Any, src: Any, max_value: Any = 0.0, reduce_res: Any = None, reduce_cmd: Any = reduce_cmd.idle,
    reduce_init: Any = 0.0, name: str | None = None,
) -> NkiInstruction:
    """dst = exp(src - max_value), optionally summed into the Vector accumulators (NeuronCore-v4)."""
    loc = caller_location()
    return _ret(
        _ve.exponential(
            dst, src, max_value=max_value, reduce_res=reduce_res, reduce_cmd=_cmd(reduce_cmd, loc),
            reduce_init=reduce_init, loc=loc, api="nisa.exponential",
        ),
        name,
    )


def bn_stats(dst: Any, data: Any, name: str | None = None) -> NkiInstruction:
    """Per partition: count/mean/var*count of the even and of the odd elements (free size <= 512)."""
    loc = caller_location()
    return _ret(_ve.bn_stats(dst, data, loc=loc, api="nisa.bn_stats"), name)


def bn_aggr(dst: Any, data: Any, name: str | None = None) -> NkiInstruction:
    """Combine bn_stats triples into [mean, variance] per partition."""
    loc = caller_location()
    return _ret(_ve.bn_aggr(dst, data, loc=loc, api="nisa.bn_aggr"), name)


def dropout(dst: Any, data: Any, prob: Any, name: str | None = None) -> NkiInstruction:
    """Zero elements with probability `prob` (dst dtype must equal data dtype)."""
    loc = caller_location()
    api = "nisa.dropout"
    _t(dst, api, "dst", loc)
    _t(data, api, "data", loc)
    _check_same_dtype(api, loc, dst, data)
    return _ret(_ve.dropout(dst, data, prob, loc=loc, api=api), name)


def memset(dst: Any, value: Any, engine: Any = engine.unknown, name: str | None = None) -> NkiInstruction:
    """Fill dst with a compile-time constant whose type matches dst's dtype (x4 packed types: 0 only)."""
    loc = caller_location()
    api = "nisa.memset"
    _t(dst, api, "dst", loc)
    _no_oob(api, loc, dst=dst)
    dt = dst.dtype
    if isinstance(value, Tensor) or not isinstance(value, (int, float, np.integer, np.floating, bool, np.bool_)):
        raise NkiTypeError(
            f"{api}: value must be a compile-time constant, got {type(value).__name__}",
            code="err_invalid_operand",
            loc=loc,
        )
    if dt in _dt.X4_TYPES and value != 0:
        raise NkiValidationError(
            f"{api}: packed type {_dt.name_of(dt)} can only be set to 0, got {value}",
            code="err_invalid_memset_value",
            values={"value": value},
            loc=loc,
        )
    if _dt.is_int(dt) and isinstance(value, (float, np.floating)) and not float(value).is_integer():
        raise NkiTypeError(
            f"{api}: value {value} does not match the integer dtype {_dt.name_of(dt)} of dst",
            code="err_invalid_memset_value",
            values={"value": value, "dst": _dt.name_of(dt)},
            loc=loc,
        )
    if dt in _dt.X4_TYPES:
        value = 0
    return _ret(_ve.memset(dst, value, engine=_engine(engine, loc), loc=loc, api=api), name)


def tensor_copy(dst: Any, src: Any, engine: Any = engine.unknown, name: str | None = None) -> NkiInstruction:
    """Copy SBUF/PSUM -> SBUF/PSUM (bit exact for equal dtypes on Vector / GpSimd, else through fp32)."""
    loc = caller_location()
    api = "nisa.tensor_copy"
    run = current()
    _t(dst, api, "dst", loc)
    _t(src, api, "src", loc)
    _no_oob(api, loc, dst=dst, src=src)
    eng = _engine(engine, loc)
    if eng == "scalar" and run.arch.nc_version < 3:
        raise NkiValidationError(
            f"{api}: tensor_copy on the Scalar engine is not supported on {run.arch.name}; use nisa.activation(op=nl.copy)",
            code="err_unsupported_engine",
            loc=loc,
        )
    return _ret(_ve.tensor_copy(dst, src, engine=eng, loc=loc, api=api), name)


def tensor_copy_predicated(dst: Any, src: Any, predicate: Any, reverse_pred: bool = False, name: str | None = None) -> NkiInstruction:
    """dst = src where predicate (uint8/16/32) is nonzero (or zero with reverse_pred), else unchanged."""
    loc = caller_location()
    return _ret(_ve.tensor_copy_predicated(dst, src, predicate, reverse_pred, loc=loc, api="nisa.tensor_copy_predicated"), name)


def select_reduce(
    dst: Any, predicate: Any, on_true: Any, on_false: Any, reduce_res: Any = None, reduce_cmd: Any = reduce_cmd.idle,
    reduce_op: Any = None, reverse_pred: bool = False, name: str | None = None,
) -> NkiInstruction:
    """dst = where(predicate, on_true, on_false) with optional max-reduction into the accumulators."""
    loc = caller_location()
    return _ret(
        _ve.select_reduce(
            dst, predicate, on_true, on_false, reduce_res, _cmd(reduce_cmd, loc),
            reduce_op if reduce_op is not None else "maximum", reverse_pred, loc=loc, api="nisa.select_reduce",
        ),
        name,
    )


def range_select(
    dst: Any, on_true_tile: Any, comp_op0: Any, comp_op1: Any, bound0: Any, bound1: Any,
    reduce_cmd: Any = reduce_cmd.reset_reduce, reduce_res: Any = None, reduce_op: Any = None, range_start: int = 0,
    on_false_value: Any = FP32_MIN, name: str | None = None,
) -> NkiInstruction:
    """Keep on_true_tile where both index comparisons hold, else FP32_MIN; max-reduce (NeuronCore-v3+)."""
    loc = caller_location()
    return _ret(
        _ve.range_select(
            dst, on_true_tile, comp_op0, comp_op1, bound0, bound1, _cmd(reduce_cmd, loc), reduce_res,
            reduce_op if reduce_op is not None else "maximum", range_start, on_false_value, loc=loc,
            api="nisa.range_select",
        ),
        name,
    )


def max8(dst: Any, src: Any, name: str | None = None) -> NkiInstruction:
    """The 8 largest values per partition in descending order."""
    loc = caller_location()
    return _ret(_ve.max8(dst, src, loc=loc, api="nisa.max8"), name)


def nc_find_index8(dst: Any, data: Any, vals: Any, name: str | None = None) -> NkiInstruction:
    """Index of the first occurrence of each of 8 values per partition."""
    loc = caller_location()
    return _ret(_ve.nc_find_index8(dst, data, vals, loc=loc, api="nisa.nc_find_index8"), name)


def nc_match_replace8(dst: Any, data: Any, vals: Any, imm: float, dst_idx: Any = None, name: str | None = None) -> NkiInstruction:
    """Replace the first occurrence of each of 8 values with imm (optionally writing their indices)."""
    loc = caller_location()
    return _ret(_ve.nc_match_replace8(dst, data, vals, imm, dst_idx, loc=loc, api="nisa.nc_match_replace8"), name)


def nc_stream_shuffle(dst: Any, src: Any, shuffle_mask: Any, name: str | None = None) -> NkiInstruction:
    """Cross-partition shuffle inside each 32-partition quadrant (note: dst first, unlike the legacy API)."""
    loc = caller_location()
    return _ret(_ve.nc_stream_shuffle(dst, src, shuffle_mask, loc=loc, api="nisa.nc_stream_shuffle"), name)


def quantize_mx(dst: Any, src: Any, dst_scale: Any, name: str | None = None) -> NkiInstruction:
    """bf16/fp16 -> MXFP8 packed data + E8M0 scales (NeuronCore-v4)."""
    loc = caller_location()
    return _ret(_ve.quantize_mx(dst, src, dst_scale, loc=loc, api="nisa.quantize_mx"), name)


def rng(dst: Any, engine: Any = engine.unknown, name: str | None = None) -> NkiInstruction:
    """32 random bits per element, truncated to dst's integer dtype."""
    loc = caller_location()
    return _ret(_ve.rng_bits(dst, engine=_engine(engine, loc), loc=loc, api="nisa.rng"), name)


def rand2(dst: Any, min: Any, max: Any, name: str | None = None) -> NkiInstruction:  # noqa: A002 - NKI's names
    """Uniform random values in [min, max] (NeuronCore-v4)."""
    loc = caller_location()
    return _ret(_ve.rand2(dst, min, max, loc=loc, api="nisa.rand2"), name)


def set_rng_seed(src_seeds: Any, name: str | None = None) -> NkiInstruction:
    """Seed the Vector-engine PRNG from a [1, 1] 32-bit tensor."""
    loc = caller_location()
    return _ret(_ve.seed_rng_lanes(src_seeds, loc=loc, api="nisa.set_rng_seed"), name)


def rand_set_state(src_seeds: Any, engine: Any = engine.unknown, name: str | None = None) -> NkiInstruction:
    """Load per-lane PRNG states (NeuronCore-v3+)."""
    loc = caller_location()
    return _ret(_ve.rand_set_state(src_seeds, engine=_engine(engine, loc), loc=loc, api="nisa.rand_set_state"), name)


def rand_get_state(dst: Any, engine: Any = engine.unknown, name: str | None = None) -> NkiInstruction:
    """Store per-lane PRNG states (NeuronCore-v3+)."""
    loc = caller_location()
    return _ret(_ve.rand_get_state(dst, engine=_engine(engine, loc), loc=loc, api="nisa.rand_get_state"), name)


# ================================================================================================ GpSimd engine
def _pattern_values(api: str, loc: SourceLoc, dst: Tensor, pattern: Any, offset: int, channel_multiplier: int) -> np.ndarray:
    try:
        pat = [(int(s), int(n)) for s, n in pattern]
    except (TypeError, ValueError):
        raise NkiValidationError(
            f"{api}: pattern must be a list of [step, num] pairs, got {pattern!r}", code="err_invalid_access_pattern", loc=loc
        ) from None
    if not 1 <= len(pat) <= 4:
        raise NkiValidationError(f"{api}: pattern has 1 to 4 [step, num] pairs, got {len(pat)}", code="err_invalid_access_pattern", loc=loc)
    count = int(math.prod([n for _, n in pat]))
    if count != dst.free_size:
        raise NkiValidationError(
            f"{api}: the pattern generates {count} elements per partition but dst {tuple(dst.shape)} has {dst.free_size}",
            code="err_shape_mismatch",
            values={"pattern": pattern, "dst": tuple(dst.shape)},
            loc=loc,
        )
    v = np.int64(offset) + np.arange(dst.partitions, dtype=np.int64)[:, None] * np.int64(channel_multiplier)
    free = np.zeros(1, dtype=np.int64)
    for s, n in pat:
        free = (free[:, None] + np.arange(n, dtype=np.int64)[None, :] * s).reshape(-1)
    vals = (v + free[None, :]).astype(np.int64)
    vals = ((vals + 2**31) % 2**32) - 2**31  # int32 arithmetic
    return vals.reshape(dst.shape)


def iota(dst: Any, pattern: Any, offset: int = 0, channel_multiplier: int = 0, name: str | None = None) -> NkiInstruction:
    """dst[p, ...] = offset + p * channel_multiplier + sum(step_k * i_k) (int32 math, cast to dst's dtype)."""
    loc = caller_location()
    api = "nisa.iota"
    _t(dst, api, "dst", loc)
    vals = _pattern_values(api, loc, dst, pattern, int(offset), int(channel_multiplier))
    return _ret(_gp.iota(dst, vals, loc=loc, api=api), name)


def affine_select(
    dst: Any, pattern: Any, channel_multiplier: int, on_true_tile: Any, on_false_value: Any, cmp_op: Any = None,
    offset: int = 0, name: str | None = None,
) -> NkiInstruction:
    """dst = on_true_tile where cmp_op(offset + p * channel_multiplier + pattern, 0) holds, else on_false_value."""
    loc = caller_location()
    api = "nisa.affine_select"
    _t(dst, api, "dst", loc)
    vals = _pattern_values(api, loc, dst, pattern, int(offset), int(channel_multiplier))
    opn = _op(cmp_op, api, "cmp_op", loc) if cmp_op is not None else "equal"
    if opn not in ("equal", "not_equal", "greater", "greater_equal", "less", "less_equal"):
        raise NkiValidationError(f"{api}: cmp_op must be a comparison, got {opn}", code="err_invalid_operator", loc=loc)
    pred = alu.apply_binary(opn, vals.astype(np.float64), 0.0) != 0
    return _ret(_gp.affine_select(dst, pred, on_true_tile, float(on_false_value), loc=loc, api=api), name)


def local_gather(dst: Any, src_buffer: Any, index: Any, num_elem_per_idx: int = 1, num_valid_indices: Any = None, name: str | None = None) -> NkiInstruction:
    """Gather within each 16-partition group with uint16 partition-offset indices (GpSimd)."""
    loc = caller_location()
    return _ret(_gp.local_gather(dst, src_buffer, index, num_elem_per_idx, num_valid_indices, loc=loc, api="nisa.local_gather"), name)


def nc_n_gather(dst: Any, data: Any, indices: Any, name: str | None = None) -> NkiInstruction:
    """dst[p, j] = data[p].flat[indices[p, j]] (uint32 indices; GpSimd, SBUF only)."""
    loc = caller_location()
    api = "nisa.nc_n_gather"
    _t(dst, api, "dst", loc)
    _t(data, api, "data", loc)
    if dst.dtype != data.dtype:
        raise NkiValidationError(
            f"{api}: dst dtype {_dt.name_of(dst.dtype)} must equal data dtype {_dt.name_of(data.dtype)}",
            code="err_unsupported_dtype",
            loc=loc,
        )
    return _ret(_gp.nc_n_gather(dst, data, indices, loc=loc, api=api), name)


def sequence_bounds(dst: Any, segment_ids: Any, name: str | None = None) -> NkiInstruction:
    """[start, end] of each element's segment (segment id 0 = padding)."""
    loc = caller_location()
    return _ret(_gp.sequence_bounds(dst, segment_ids, loc=loc, api="nisa.sequence_bounds"), name)


def nonzero_with_count(dst: Any, src: Any, index_offset: int = 0, padding_val: int = -1, name: str | None = None) -> NkiInstruction:
    """Indices of nonzero elements + count, on partitions 0, 16, ..., 112 (NeuronCore-v3+)."""
    loc = caller_location()
    return _ret(
        _gp.nonzero_with_count(dst, src, index_offset=index_offset, padding_val=padding_val, loc=loc, api="nisa.nonzero_with_count"),
        name,
    )


def topk(val_dst: Any, idx_dst: Any, src: Any, n: int, name: str | None = None) -> NkiInstruction:
    """Top-K BF16 values (ascending) and uint32 indices of each 16-partition snake of n elements."""
    loc = caller_location()
    return _ret(_gp.topk(val_dst, idx_dst, src, n, loc=loc, api="nisa.topk"), name)


# ================================================================================================ DMA
_DGE = {dge_mode.unknown: "unknown", dge_mode.swdge: "swdge", dge_mode.hwdge: "hwdge", dge_mode.none: "none"}


def _dma_where(api: str, loc: SourceLoc, dst: Tensor, src: Tensor, mode: oob_mode) -> np.ndarray | None:
    bad = None
    for t in (src, dst):
        o = getattr(t, "oob", None)
        if o is not None and o.any():
            o = np.asarray(o).reshape(dst.shape) if o.size == dst.size else np.broadcast_to(o, dst.shape)
            bad = o if bad is None else (bad | o)
    if bad is None:
        return None
    if mode is oob_mode.error:
        raise NkiIndexError(
            f"{api}: {int(bad.sum())} elements are addressed out of bounds at runtime (indirect / dynamic offset)",
            code="err_tensor_access_out_of_bound",
            values={"dst": dst.storage.name, "src": src.storage.name},
            loc=loc,
            hint="pass oob_mode=nisa.oob_mode.skip to drop out-of-range transfers",
        )
    return ~bad


def dma_copy(
    dst: Any, src: Any, priority: Any = None, oob_mode: Any = oob_mode.error, dge_mode: Any = dge_mode.unknown,
    engine: Any = engine.unknown, name: str | None = None,
) -> NkiInstruction:
    """dst = src between HBM and SBUF (no PSUM source); dtype conversion through fp32 except with HWDGE."""
    return _ret(_dma_copy(dst, src, priority, oob_mode, dge_mode, engine, caller_location(), "nisa.dma_copy"), name)


def _dma_copy(dst, src, priority, oob, dge, eng, loc, api) -> Instruction:
    run = current()
    _t(dst, api, "dst", loc)
    _t(src, api, "src", loc)
    om = _enum(oob, oob_mode, "oob_mode", loc)
    dm = _DGE[_enum(dge, dge_mode, "dge_mode", loc)]
    e = _engine(eng, loc)
    if src.storage.buffer.kind == "psum":
        raise NkiValidationError(
            f"{api}: DMA cannot read PSUM ('{src.storage.name}'); copy it to SBUF with nisa.tensor_copy first",
            code="err_unsupported_memory",
            values={"src": src.storage.name},
            loc=loc,
        )
    if dm == "hwdge":
        if run.arch.nc_version < 3:
            raise NkiValidationError(f"{api}: hardware DGE needs NeuronCore-v3+", code="err_unsupported_on_target", loc=loc)
        if src.dtype != dst.dtype:
            raise NkiValidationError(
                f"{api}: with dge_mode=hwdge src and dst dtypes must match ({_dt.name_of(src.dtype)} vs "
                f"{_dt.name_of(dst.dtype)}); reinterpret with .view()",
                code="err_unsupported_dtype",
                loc=loc,
            )
    if e is not None and e not in ("sync", "scalar"):
        raise NkiValidationError(f"{api}: engine must be sync or scalar (HWDGE), got {e}", code="err_unsupported_engine", loc=loc)
    if priority is not None and run.arch.nc_version < 4:
        raise NkiValidationError(f"{api}: priority needs NeuronCore-v4", code="err_unsupported_on_target", loc=loc)
    where = _dma_where(api, loc, dst, src, om)
    after = _hbm_guard([src], [dst], loc)
    instr = _dma.dma_copy(dst, src, where=where, dge_mode=dm, oob_mode=om.name, allow_psum_src=False, loc=loc, api=api)
    after()
    return instr


def dma_transpose(
    dst: Any, src: Any, axes: Any = None, priority: Any = None, dge_mode: Any = dge_mode.unknown,
    oob_mode: Any = oob_mode.error, name: str | None = None,
) -> NkiInstruction:
    """Transpose while moving: (1,0), (2,1,0) or (3,1,2,0); dst in SBUF, dst shape = transposed src shape."""
    loc = caller_location()
    api = "nisa.dma_transpose"
    _t(dst, api, "dst", loc)
    _t(src, api, "src", loc)
    _enum(dge_mode, globals()["dge_mode"], "dge_mode", loc)
    _enum(oob_mode, globals()["oob_mode"], "oob_mode", loc)
    if dst.storage.buffer.kind != "sbuf":
        raise NkiValidationError(f"{api}: dst must be in SBUF", code="err_unsupported_memory", loc=loc)
    if src.dtype != dst.dtype:
        raise NkiValidationError(
            f"{api}: src and dst dtypes must match ({_dt.name_of(src.dtype)} vs {_dt.name_of(dst.dtype)})",
            code="err_unsupported_dtype",
            loc=loc,
        )
    ax = tuple(axes) if axes is not None else {2: (1, 0), 3: (2, 1, 0), 4: (3, 1, 2, 0)}.get(src.ndim)
    if ax not in ((1, 0), (2, 1, 0), (3, 1, 2, 0)) or len(ax) != src.ndim:
        raise NkiValidationError(
            f"{api}: axes must be (1, 0), (2, 1, 0) or (3, 1, 2, 0) matching src rank {src.ndim}, got {axes}",
            code="err_exceed_max_supported_dimension",
            loc=loc,
        )
    want = tuple(src.shape[a] for a in ax)
    if tuple(dst.shape) != want:
        raise NkiValidationError(
            f"{api}: dst shape {tuple(dst.shape)} must equal the transposed src shape {want}",
            code="err_shape_mismatch",
            values={"dst": tuple(dst.shape), "src": tuple(src.shape), "axes": ax},
            loc=loc,
        )
    _no_oob(api, loc, dst=dst, src=src)
    after = _hbm_guard([src], [dst], loc)
    instr = _dma.dma_transpose(dst, src, axes=ax, loc=loc, api=api)
    after()
    return _ret(instr, name)


def dma_compute(
    dst: Any, srcs: Any, reduce_op: Any, scales: Any = None, unique_indices: bool = True,
    oob_mode: Any = oob_mode.error, name: str | None = None,
) -> NkiInstruction:
    """dst = reduce_op(srcs[0] * scales[0], ...) computed in the DMA engines (add only, scales 1.0)."""
    loc = caller_location()
    api = "nisa.dma_compute"
    _t(dst, api, "dst", loc)
    srcs = list(srcs)
    for i, src in enumerate(srcs):
        if type(src) is _TiView:
            _ti_issue(src, api, f"srcs[{i}]", loc)
    om = _enum(oob_mode, globals()["oob_mode"], "oob_mode", loc)
    if not unique_indices:
        raise NkiValidationError(f"{api}: unique_indices=False is not supported", code="err_unsupported_api", loc=loc)
    where = None
    for s in srcs:
        w = _dma_where(api, loc, dst, s, om)
        where = w if where is None else (where & w if w is not None else where)
    after = _hbm_guard(srcs, [dst], loc)
    instr = _dma.dma_compute(dst, srcs, reduce_op, scales=scales, where=where, loc=loc, api=api)
    after()
    return _ret(instr, name)


# ================================================================================================ cross-core
def sendrecv(
    src: Any, dst: Any, send_to_rank: int, recv_from_rank: int, pipe_id: int, dma_engine: Any = dma_engine.dma,
    name: str | None = None,
) -> NkiInstruction:
    """Send src to core send_to_rank's dst while receiving dst from recv_from_rank (LNC=2, NeuronCore-v3+)."""
    loc = caller_location()
    api = "nisa.sendrecv"
    run = current()
    _t(src, api, "src", loc)
    _t(dst, api, "dst", loc)
    eng = _enum(dma_engine, globals()["dma_engine"], "dma_engine", loc)
    from ...isa import common as _c

    _c.check_nc_version(api, loc, run, 3)
    _c.check_in_sbuf(api, loc, src=src, dst=dst)
    if src.dtype != dst.dtype or tuple(src.shape) != tuple(dst.shape):
        raise NkiValidationError(
            f"{api}: src {tuple(src.shape)} {_dt.name_of(src.dtype)} and dst {tuple(dst.shape)} {_dt.name_of(dst.dtype)} "
            f"must have the same shape and dtype",
            code="err_shape_mismatch",
            loc=loc,
        )
    sched = scheduler()
    n = run.num_cores
    for nm, r in (("send_to_rank", send_to_rank), ("recv_from_rank", recv_from_rank)):
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or not 0 <= int(r) < max(n, 1):
            raise NkiValidationError(
                f"{api}: {nm}={r!r} is not a core of this launch (LNC={n}; ranks are 0..{n - 1})",
                code="err_invalid_rank",
                values={nm: r, "lnc": n},
                loc=loc,
                hint="launch the kernel on two cores with kernel[2](...)" if n == 1 else None,
            )
    if sched is None:
        raise NkiUnsupportedError(f"{api} needs a current-API launch", code="err_unsupported_api", loc=loc)
    sched.sendrecv(src, dst, int(send_to_rank), int(recv_from_rank), int(pipe_id), eng.name, loc)
    return _ret(None, name)


def core_barrier(data: Any = None, cores: Any = (0, 1), engine: Any = engine.gpsimd, name: str | None = None) -> NkiInstruction:
    """Block the chosen engine of every listed core until all of them reach the barrier (NeuronCore-v3+, LNC=2)."""
    loc = caller_location()
    api = "nisa.core_barrier"
    eng = _engine(engine, loc) or "gpsimd"
    eng_name = {"gpsimd": Engine.GPSIMD, "vector": Engine.VECTOR, "scalar": Engine.SCALAR, "sync": Engine.SYNC,
                "tensor": Engine.TENSOR}.get(eng, Engine.GPSIMD)
    instr = _sync.core_barrier(data, tuple(cores), engine=eng_name, loc=loc, api=api)
    sched = scheduler()
    if sched is not None:
        sched.barrier(tuple(int(c) for c in cores), loc)
    return _ret(instr, name)


# ================================================================================================ registers
def register_alloc(x: int | None = None) -> VirtualRegister:
    """A new virtual register, optionally initialised with an int."""
    current()
    if x is not None and (isinstance(x, bool) or not isinstance(x, (int, np.integer))):
        raise NkiTypeError(
            f"nisa.register_alloc: x must be an int or None, got {type(x).__name__}",
            code="err_invalid_operand",
            loc=caller_location(),
        )
    return VirtualRegister(x)


def register_move(dst: Any, src: Any) -> NkiInstruction:
    """dst_reg = src (int constant or register)."""
    loc = caller_location()
    return _ret(_sync.register_move(dst, src, loc=loc, api="nisa.register_move"), None)


def register_load(dst: Any, src: Any) -> NkiInstruction:
    """dst_reg = the single 32-bit value in src (HBM or SBUF, shape [1] or [1, 1])."""
    loc = caller_location()
    after = _hbm_guard([src], [], loc)
    instr = _sync.register_load(dst, src, loc=loc, api="nisa.register_load")
    after()
    return _ret(instr, None)


def register_store(dst: Any, src: Any) -> NkiInstruction:
    """Store the register into a 1-element HBM / SBUF tensor."""
    loc = caller_location()
    after = _hbm_guard([], [dst], loc)
    instr = _sync.register_store(dst, src, loc=loc, api="nisa.register_store")
    after()
    return _ret(instr, None)


#: every instruction resolves tensor-indirection operands when it is issued: the ones below through _ti_aware, the
#: others (nc_matmul, tensor_tensor, tensor_copy, ... whose tensor operands all pass through _t) in _t
for _name in (
    "nc_matmul_mx", "activate2", "scalar_tensor_tensor", "tensor_partition_reduce", "tensor_scalar_reduce",
    "tensor_scalar_cumulative", "tensor_tensor_scan", "reciprocal", "exponential", "bn_stats", "bn_aggr",
    "tensor_copy_predicated", "select_reduce", "range_select", "max8", "nc_find_index8", "nc_match_replace8",
    "nc_stream_shuffle", "quantize_mx", "rng", "rand2", "affine_select", "local_gather", "sequence_bounds",
    "nonzero_with_count", "topk",
):
    globals()[_name] = _ti_aware(globals()[_name])
del _name

from . import isa_constants as constants  # noqa: E402, F401 - needs the enums above

#: every documented instruction of nki.isa 0.6 (for coverage reports and tests)
INSTRUCTIONS = (
    "nc_matmul", "nc_matmul_mx", "nc_transpose", "activation", "activation_reduce", "activate2", "tensor_tensor",
    "tensor_scalar", "scalar_tensor_tensor", "tensor_reduce", "tensor_partition_reduce", "tensor_scalar_reduce",
    "tensor_scalar_cumulative", "tensor_tensor_scan", "reciprocal", "exponential", "bn_stats", "bn_aggr",
    "dropout", "memset", "tensor_copy", "tensor_copy_predicated", "select_reduce", "range_select", "max8",
    "nc_find_index8", "nc_match_replace8", "nc_stream_shuffle", "quantize_mx", "rng", "rand2", "set_rng_seed",
    "rand_set_state", "rand_get_state", "iota", "affine_select", "local_gather", "nc_n_gather", "sequence_bounds",
    "nonzero_with_count", "topk", "dma_copy", "dma_transpose", "dma_compute", "sendrecv", "core_barrier",
    "register_alloc", "register_move", "register_load", "register_store",
)


class _MissingIsaApi(NkiUnsupportedError, AttributeError):
    pass


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    legacy = {"tensor_copy_dynamic_src", "tensor_copy_dynamic_dst", "builtin_custom_op"}
    raise _MissingIsaApi(
        f"nki.isa.{name} is not part of the current NKI API"
        + (" (it was removed in NKI 0.4; use nisa.tensor_copy with .ap(scalar_offset=...))" if name in legacy else ""),
        code="err_unsupported_api",
        values={"api": f"nki.isa.{name}"},
        loc=caller_location(),
    )
