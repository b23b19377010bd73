"""Shared pieces of instruction definitions: operand checks, emission of instruction records, costs.

An instruction module defines, for each instruction: an `InstrSpec` (engine, opcode, cost rule), one
function that checks operands, computes with NumPy and calls `emit`. Nothing else in trnsim computes on data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from ..core import dtypes
from ..core.context import Run, current
from ..core.errors import NkiIndexError, NkiTypeError, NkiUnsupportedError, NkiValidationError
from ..core.instruction import Access, Instruction
from ..core.memory import ACC_OPEN
from ..core.source import SourceLoc, caller_location
from ..core.tensor import Tensor
from ..timing.arch import Arch

PMAX = 128

CostFn = Callable[[Instruction, Arch], float]


class InstrSpec:
    """Static description of one instruction kind: engine, opcode and cost rule (ns on a given arch)."""

    __slots__ = ("name", "engine", "opcode", "cost", "doc")

    def __init__(self, name: str, engine: str, opcode: str, cost: CostFn, doc: str = "") -> None:
        self.name = name
        self.engine = engine
        self.opcode = opcode
        self.cost = cost
        self.doc = doc

    def __repr__(self) -> str:
        return f"InstrSpec({self.name} on {self.engine})"


#: every spec by instruction name, filled as modules are imported (used by docs and the timing model)
REGISTRY: dict[str, InstrSpec] = {}


def spec(name: str, engine: str, opcode: str, cost: CostFn, doc: str = "") -> InstrSpec:
    s = InstrSpec(name, engine, opcode, cost, doc)
    REGISTRY[name] = s
    return s


# --------------------------------------------------------------------------- cost helpers
def min_ii(arch: Arch) -> int:
    return arch.min_ii_cycles


def engine_ns(arch: Arch, engine: str, cycles: float) -> float:
    return cycles / arch.clock_ghz[engine]


# --------------------------------------------------------------------------- operand checks
def here() -> SourceLoc:
    return caller_location(3)


def check_tensor(x: Any, api: str, name: str, loc: SourceLoc) -> Tensor:
    if not isinstance(x, Tensor):
        resolved = getattr(x, "_resolve_plain", None)
        if resolved is not None:
            return resolved()
        raise NkiTypeError(
            f"{api}: operand '{name}' must be a tensor, got {type(x).__name__}",
            code="err_invalid_operand",
            values={name: x},
            loc=loc,
        )
    return x


def check_on_chip(t: Tensor, api: str, name: str, loc: SourceLoc, allowed: Sequence[str] = ("sbuf", "psum")) -> None:
    kind = t.storage.buffer.kind
    if kind not in allowed:
        raise NkiValidationError(
            f"{api}: operand '{name}' must be in {' or '.join(a.upper() for a in allowed)}, but tensor "
            f"'{t.storage.name}' is in {t.storage.buffer.name.upper()}",
            code="err_unsupported_memory",
            values={name: t.storage.name, "buffer": t.storage.buffer.name, "allowed": tuple(allowed)},
            loc=loc,
            hint="load HBM data into SBUF with nl.load / nisa.dma_copy first" if kind == "hbm" else None,
        )
    shp = t.shape
    if not shp or (shp[0] > PMAX and t.partitions > PMAX):  # (leading block dims: the partition axis is later)
        raise NkiValidationError(
            f"{api}: size of partition dimension {t.partitions if shp else 0} of '{name}' exceeds architecture "
            f"limitation of {PMAX}",
            code="err_num_partition_exceed_arch_limit",
            values={name: shp},
            loc=loc,
        )


def check_operands(api: str, loc: SourceLoc, allowed: Sequence[str] = ("sbuf", "psum"), **tensors: Any) -> None:
    """check_tensor + check_on_chip for each named operand, in the order given."""
    for name, t in tensors.items():
        check_on_chip(check_tensor(t, api, name, loc), api, name, loc, allowed)


def check_in_sbuf(api: str, loc: SourceLoc, **tensors: Any) -> None:
    """check_tensor + 'must be in SBUF' (with the plain message of sendrecv-style checks) for each named operand."""
    for name, t in tensors.items():
        t = check_tensor(t, api, name, loc)
        if t.storage.buffer.kind != "sbuf":
            raise NkiValidationError(
                f"{api}: '{name}' must be in SBUF, but '{t.storage.name}' is in {t.storage.buffer.name.upper()}",
                code="err_unsupported_memory",
                values={name: t.storage.name},
                loc=loc,
            )


def check_transposed(api: str, loc: SourceLoc, dst: Tensor, data: Tensor) -> None:
    """dst must be the [free, partitions] transpose of data."""
    p, f = data.partitions, data.free_size
    if dst.partitions != f or dst.free_size != p:
        raise NkiValidationError(
            f"{api}: dst shape {dst.shape} must be the transpose [{f}, {p}] of data {data.shape}",
            code="err_shape_mismatch",
            values={"dst": dst.shape, "data": data.shape},
            loc=loc,
        )


def check_partitions_match(api: str, loc: SourceLoc, **tensors: Tensor) -> int:
    first = -1
    ok = True
    for v in tensors.values():
        if v is not None:
            p = v.array.shape[0] if v.index is None and v.array.ndim and v.storage.nblocks <= 1 else v.partitions
            if first < 0:
                first = p
            elif p != first:
                ok = False
                break
    if ok:
        return max(first, 0)
    parts = {k: v.partitions for k, v in tensors.items() if v is not None}
    vals = set(parts.values())
    if len(vals) > 1:
        raise NkiValidationError(
            f"{api}: operands have different partition counts " + ", ".join(f"{k}={v}" for k, v in parts.items()),
            code="err_num_partition_mismatch",
            values=parts,
            loc=loc,
        )
    return vals.pop() if vals else 0


def check_free_match(api: str, loc: SourceLoc, **tensors: Tensor) -> int:
    first = -1
    for v in tensors.values():
        if v is not None:
            f = v.free_size
            if first < 0:
                first = f
            elif f != first:
                break
    else:
        return max(first, 0)
    sizes = {k: v.free_size for k, v in tensors.items() if v is not None}
    vals = set(sizes.values())
    if len(vals) > 1:
        raise NkiValidationError(
            f"{api}: operands must have the same number of elements per partition, got "
            + ", ".join(f"{k}={v}" for k, v in sizes.items()),
            code="err_shape_mismatch",
            values={k: tensors[k].shape for k in sizes},
            loc=loc,
        )
    return vals.pop() if vals else 0


def check_not_both_psum(api: str, loc: SourceLoc, a: Tensor, b: Tensor, names: tuple[str, str]) -> None:
    if a.storage.buffer.kind == "psum" and b.storage.buffer.kind == "psum":
        raise NkiValidationError(
            f"{api}: '{names[0]}' and '{names[1]}' cannot both be in PSUM",
            code="err_unsupported_memory",
            values={names[0]: a.storage.name, names[1]: b.storage.name},
            loc=loc,
        )


def check_not_psum(api: str, loc: SourceLoc, engine: str, **tensors: Tensor) -> None:
    for k, t in tensors.items():
        if t is not None and t.storage.buffer.kind == "psum":
            raise NkiValidationError(
                f"{api}: the {engine} engine cannot access PSUM, but '{k}' ('{t.storage.name}') is in PSUM",
                code="err_unsupported_memory",
                values={k: t.storage.name},
                loc=loc,
            )


def check_dtype(api: str, loc: SourceLoc, name: str, t: Tensor, allowed: Iterable[np.dtype], why: str = "") -> None:
    allowed = tuple(allowed)
    if t.dtype not in allowed:
        raise NkiTypeError(
            f"{api}: dtype {dtypes.name_of(t.dtype)} of '{name}' is not supported"
            + (f" ({why})" if why else "")
            + "; allowed: "
            + ", ".join(dtypes.name_of(d) for d in allowed),
            code="err_unsupported_dtype",
            values={name: dtypes.name_of(t.dtype)},
            loc=loc,
        )


def check_nc_version(api: str, loc: SourceLoc, run: Run, minimum: int, maximum: int | None = None) -> None:
    v = run.arch.nc_version
    if v < minimum or (maximum is not None and v > maximum):
        raise NkiUnsupportedError(
            f"{api} is not available on {run.arch.name} (NeuronCore-v{v}); it needs NeuronCore-v{minimum}"
            + (f"..v{maximum}" if maximum else "+"),
            code="err_unsupported_on_target",
            values={"target": run.arch.name},
            loc=loc,
        )


def check_bounds(
    api: str, loc: SourceLoc, shape: tuple[int, ...], lo: Sequence[int], hi: Sequence[int], name: str
) -> None:
    for ax, (a, b, n) in enumerate(zip(lo, hi, shape)):
        if a < 0 or b > n:
            raise NkiIndexError(
                f"{api}: access of '{name}' out of bounds on axis {ax}: index range [{a}, {b}) but size is {n}",
                values={"axis": ax, "range": (a, b), "size": n},
                loc=loc,
            )


def scalar_or_vector(api: str, loc: SourceLoc, name: str, v: Any, partitions: int) -> np.ndarray | float:
    """An immediate operand: a Python/NumPy scalar, or a [P,1] tensor (returned as an fp32 column)."""
    if v is None:
        return 0.0
    if isinstance(v, Tensor):
        shp = v.shape
        if len(shp) < 1 or shp[0] != partitions or int(math.prod(shp[1:])) != 1:
            if shp and shp[0] == 1 and int(math.prod(shp)) == 1:
                if not current().numerics:  # timing-only: the values are never used, only that it is a column
                    return np.zeros((1, 1), np.float32)
                return read_operand(v, api, name, loc).reshape(1, 1).astype(np.float32)
            raise NkiValidationError(
                f"{api}: '{name}' must be a scalar or a [{partitions}, 1] vector, got shape {shp}",
                code="err_activation_scale_scalar_or_vector" if name == "scale" else "err_invalid_operand",
                values={name: shp},
                loc=loc,
            )
        if not current().numerics:
            return np.zeros((partitions, 1), np.float32)
        return read_operand(v, api, name, loc).reshape(partitions, 1).astype(np.float32)
    if isinstance(v, (int, float, np.integer, np.floating, bool, np.bool_)):
        return v
    resolved = getattr(v, "_resolve_plain", None)
    if resolved is not None:
        return scalar_or_vector(api, loc, name, resolved(), partitions)
    raise NkiTypeError(
        f"{api}: '{name}' must be a scalar or a tensor, got {type(v).__name__}", values={name: v}, loc=loc
    )


# --------------------------------------------------------------------------- check caching
_SCALAR_TYPES = (type(None), int, float, bool, np.float32, np.float64, np.int32, np.int64, np.bool_)
_SIGS: dict[tuple, int] = {}  # operand summary -> its number (numbers are never reused; see check_key)
_MAX_SIGS = 200_000


def check_key(tag: str, statics: tuple, *operands: Any) -> tuple | None:
    """Key under which an instruction's operand checks are cached for a run (see `cached_checks`).

    `statics` are the arguments the checks depend on by value (operators, engine, flags); each operand is summarised
    by what checks look at: its class, memory, shape, strides and dtypes (scalars: their type). None (never cached)
    for operands that cannot be summarised, such as gathered views or tile-like objects still to be resolved."""
    parts: list[Any] = [tag, statics]
    for t in operands:
        if isinstance(t, Tensor):
            if t.index is not None:
                return None
            sig = t._sig
            if sig is None:
                sig = t._sig = signature(t)
            parts.append(sig)
        elif type(t) in _SCALAR_TYPES:
            parts.append(type(t))
        else:
            return None
    return tuple(parts)


def signature(t: Tensor) -> int | tuple:
    """What the operand checks look at in a (non-gathered) view: its class, memory, shape, strides and dtypes, as a
    small number standing for that summary (cheaper to hash in a check key than the tuple). A view's array and its
    storage's fields do not change, so `check_key` keeps the number with the view."""
    a = t.array
    st = t.storage
    layout = st.layout
    # a view of a whole plain tile: the same summary as every other tile of its layout (tf32 is set per storage)
    whole = layout is not None and a is t.mem.data and not st.tf32
    if whole:
        n = layout.sigs.get(type(t))
        if n is not None:
            return n
    kind = st.sig_kind
    if kind is None:
        # (nblocks, row_bytes: what a view's partition axis depends on, see Tensor.partition_axis)
        kind = st.sig_kind = (st.buffer.kind, st.dtype, st.tf32, st.nblocks, st.row_bytes)
    sig = (type(t), kind, a.shape, a.strides, a.dtype)
    n = _SIGS.get(sig)
    if n is None:
        if len(_SIGS) >= _MAX_SIGS:
            return sig  # (table full: the tuple itself, which never equals a number)
        n = _SIGS[sig] = len(_SIGS)
    if whole:
        layout.sigs[type(t)] = n
    return n


def cached_checks(run: Run, key: tuple | None) -> Any:
    """What an instruction stored with `remember_checks` after its operand checks passed for operands with the same
    signature earlier in this run, or None. Checks are pure functions of the key (shapes, memories, dtypes, static
    arguments, the run's target), so a hit cannot hide an error; values are still read and checked every time."""
    if key is None:
        return None
    cache = run.__dict__.get("_check_cache")
    if cache is None:
        return None
    try:
        return cache.get(key)
    except TypeError:  # an unhashable static argument: never cached
        return None


def remember_checks(run: Run, key: tuple | None, value: Any) -> None:
    if key is None:
        return
    cache = run.__dict__.get("_check_cache")
    if cache is None:
        cache = run.__dict__["_check_cache"] = {}
    try:
        cache[key] = value
    except TypeError:
        pass


# --------------------------------------------------------------------------- data access with diagnostics
def read_operand(t: Tensor, api: str, name: str, loc: SourceLoc) -> np.ndarray:
    """Values of an input operand; reports reads of uninitialised memory with the reading line."""
    wm = t.wmask
    if wm is not None:
        mem = t.mem
        psum = t.storage.buffer.kind == "psum"
        if not mem.full or psum:
            w = wm[t.index] if t.index is not None else wm
            if not mem.full:
                # min() of the uint8 state bits is a cheaper "all written" test than all()
                if w.size and not w.min():
                    run = current()
                    total = w.size
                    bad = int(total - np.count_nonzero(w))
                    run.warn(
                        "warn_uninitialized_read",
                        f"{api} reads {bad} of {total} elements of '{t.storage.name}' ({t.storage.buffer.name}) "
                        f"that were never written (operand '{name}'); on hardware they hold garbage",
                        loc,
                    )
                elif t.index is None and w.size == mem.written.size and w.dtype == mem.written.dtype and 0 not in w.strides:
                    mem.full = True  # the whole storage is written (WRITTEN bits are never cleared)
            if psum and t.index is None:
                # Reading a PSUM partial sum closes its accumulation group (next matmul overwrites).
                np.bitwise_and(w, ~np.uint8(ACC_OPEN), out=w, casting="unsafe") if w.flags.writeable else None
    return t.read()


def read_fp32(t: Tensor, api: str, name: str, loc: SourceLoc) -> np.ndarray:
    v = read_operand(t, api, name, loc)
    return v if v.dtype == np.float32 else v.astype(np.float32)


def emit(
    s: InstrSpec,
    loc: SourceLoc,
    reads: Sequence[Tensor],
    writes: Sequence[Tensor],
    *,
    engine: str | None = None,
    flops: int = 0,
    partitions: int = 0,
    free: int = 0,
    in_dtype: np.dtype | None = None,
    out_dtype: np.dtype | None = None,
    attrs: dict[str, Any] | None = None,
    accumulate: bool = False,
    produced: Tensor | None = None,
    raw: np.ndarray | None = None,
    run: Run | None = None,
) -> Instruction:
    """Append an instruction record to the current run's stream (`run`: the current run, when the caller has it)."""
    if run is None:
        run = current()
    # views are kept only for the race checks of enclosing affine loops (Run.emit drops them after those)
    keep = run.check_races and run.affine_loops() is not None
    numerics = run.numerics
    # (loops, not comprehensions: a comprehension is a function call of its own, for one or two operands)
    wacc = []
    for t in writes:
        if t is not None:
            if numerics:
                mem = t.mem
                if mem is not None and mem.shadow is not None:
                    mem.shadow = None  # belt and braces: every writer's data change drops the fp32 copy
            wacc.append(Access(t, accumulate, keep))
    racc = []
    for t in reads:
        if t is not None:
            racc.append(Access(t, False, keep))
    # (positional: keyword arguments cost a quarter of a microsecond per record)
    instr = Instruction(
        engine or s.engine, s.opcode, racc, wacc, loc, s, flops, partitions, free, in_dtype, out_dtype, attrs
    )
    run.emit(instr)
    if produced is not None:
        produced.producer = instr
        produced.raw = raw
    return instr


def numerics() -> bool:
    return current().numerics
