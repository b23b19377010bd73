"""Engine sequencers and cross-core synchronisation: scalar registers and core barriers (current API).

Registers: every engine sequencer has 64 x 32-bit scalar registers; the current API exposes them as virtual
registers (`nisa.register_alloc/move/load/store`) used for dynamic loop bounds, while conditions and runtime
access-pattern offsets. trnsim keeps one Python int per virtual register (per core, since each core runs its
own program); `register_load` reads the value from memory, so it is data dependent.

Core barrier: `core_barrier(data, cores)` blocks the chosen engine of each listed core until every core has
reached the barrier. The waiting itself is done by the launch machinery (the LNC scheduler of the current
front end); this module checks operands and emits one record per core. The record reads `data`, so in the
timing model the barrier waits for the earlier writes of `data` (of both cores), the core's later accesses of
`data` wait for the barrier, and the records of one barrier meet (rendezvous).
Costs: a register instruction is one sequencer step (~MIN_II cycles of the engine it runs on); a barrier is
a remote semaphore update plus a wait (~2 us, the DMA fixed latency, on trn2).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core import dtypes
from ..core.context import current
from ..core.errors import NkiDataDependentError, NkiTypeError, NkiValidationError
from ..core.instruction import Engine, Instruction
from ..core.source import SourceLoc
from ..core.tensor import Tensor
from ..timing.arch import Arch
from . import common as c


def register_cost(instr: Instruction, arch: Arch) -> float:
    eng = instr.engine if instr.engine in arch.clock_ghz else "Sync"
    return arch.min_ii_cycles / arch.clock_ghz[eng]


def barrier_cost(instr: Instruction, arch: Arch) -> float:
    return float(arch.extra.get("core_barrier_ns", arch.dma_fixed_ns))


REGISTER_MOVE = c.spec("register_move", Engine.SYNC, "REG_MOVE", register_cost, "register <- immediate / register")
REGISTER_LOAD = c.spec("register_load", Engine.SYNC, "REG_LOAD", register_cost, "register <- 32-bit value in memory")
REGISTER_STORE = c.spec("register_store", Engine.SYNC, "REG_STORE", register_cost, "memory <- register")
CORE_BARRIER = c.spec("core_barrier", Engine.GPSIMD, "CORE_BARRIER", barrier_cost, "barrier between LNC cores")

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


class Register:
    """One virtual register: a 32-bit integer value (None while uninitialised) on the current core."""

    __slots__ = ("value", "frozen", "name", "__weakref__")

    def __init__(self, value: int | None = None, frozen: bool = False, name: str = "") -> None:
        self.value = None if value is None else _wrap32(int(value))
        self.frozen = frozen
        self.name = name

    def get(self, api: str, loc: SourceLoc) -> int:
        if self.value is None:
            run = current()
            if not run.numerics:
                raise NkiDataDependentError(
                    f"{api}: register value is unknown in timing-only mode (it was loaded from memory)",
                    loc=loc,
                    hint="run with numerics for kernels whose control flow depends on loaded values",
                )
            raise NkiValidationError(
                f"{api}: register '{self.name or 'reg'}' is read before it was initialised",
                code="err_uninitialized_register",
                loc=loc,
                hint="give register_alloc an initial value or register_move / register_load into it first",
            )
        return self.value

    def __repr__(self) -> str:
        return f"VirtualRegister({self.value})"


def _wrap32(v: int) -> int:
    """Registers are 32-bit: wrap like two's complement arithmetic."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _check_writable(reg: Any, api: str, loc: SourceLoc) -> Register:
    if not isinstance(reg, Register):
        raise NkiTypeError(
            f"{api}: dst must be a VirtualRegister from nisa.register_alloc, got {type(reg).__name__}",
            code="err_invalid_operand",
            values={"dst": reg},
            loc=loc,
        )
    if reg.frozen:
        raise NkiValidationError(
            f"{api}: register '{reg.name or 'reg'}' is a frozen loop induction variable and cannot be written",
            code="err_write_frozen_register",
            loc=loc,
            hint="copy it into another register with register_alloc / register_move if you need to modify it",
        )
    return reg


def _scalar_tensor(t: Any, api: str, name: str, loc: SourceLoc) -> Tensor:
    t = c.check_tensor(t, api, name, loc)
    if t.size != 1:
        raise NkiValidationError(
            f"{api}: '{name}' must hold exactly one element (shape [1] or [1, 1]), got shape {t.shape}",
            code="err_shape_mismatch",
            values={name: t.shape},
            loc=loc,
        )
    if t.storage.buffer.kind == "psum":
        raise NkiValidationError(
            f"{api}: '{name}' must be in HBM or SBUF, not PSUM",
            code="err_unsupported_memory",
            values={name: t.storage.name},
            loc=loc,
        )
    if t.dtype.itemsize > 4 or bool(t.dtype.names):
        raise NkiTypeError(
            f"{api}: '{name}' must be a 32-bit (or narrower) scalar, got {dtypes.name_of(t.dtype)}",
            values={name: dtypes.name_of(t.dtype)},
            loc=loc,
        )
    return t


def register_move(dst: Register, src: Any, *, loc: SourceLoc | None = None, api: str = "register_move") -> Instruction:
    """dst_reg = src (an int constant or another register)."""
    loc = loc or c.here()
    reg = _check_writable(dst, api, loc)
    if isinstance(src, Register):
        value = src.get(api, loc) if (src.value is not None or current().numerics) else None
    elif isinstance(src, (int, np.integer)) and not isinstance(src, bool):
        value = int(src)
    else:
        raise NkiTypeError(
            f"{api}: src must be an int constant or a VirtualRegister, got {type(src).__name__}",
            code="err_invalid_operand",
            values={"src": src},
            loc=loc,
        )
    reg.value = None if value is None else _wrap32(value)
    return c.emit(REGISTER_MOVE, loc, [], [], attrs={"register": reg.name})


def register_load(dst: Register, src: Tensor, *, loc: SourceLoc | None = None, api: str = "register_load") -> Instruction:
    """dst_reg = the single 32-bit value stored in `src` (HBM or SBUF)."""
    loc = loc or c.here()
    run = current()
    reg = _check_writable(dst, api, loc)
    src = _scalar_tensor(src, api, "src", loc)
    if run.numerics:
        v = c.read_operand(src, api, "src", loc).reshape(-1)[0]
        if src.dtype.kind == "f" or dtypes.is_float(src.dtype):
            fv = float(np.float32(v))
            if not np.isfinite(fv):
                raise NkiValidationError(
                    f"{api}: cannot load non-finite value {fv} into an integer register",
                    code="err_invalid_register_value",
                    loc=loc,
                )
            reg.value = _wrap32(int(fv))
        else:
            reg.value = _wrap32(int(v))
    else:
        reg.value = None
    return c.emit(
        REGISTER_LOAD, loc, [src], [], partitions=1, free=1, in_dtype=src.dtype, attrs={"register": reg.name}
    )


def register_store(dst: Tensor, src: Register, *, loc: SourceLoc | None = None, api: str = "register_store") -> Instruction:
    """Store the register value into a 1-element tensor (HBM or SBUF), cast to its dtype."""
    loc = loc or c.here()
    run = current()
    dst = _scalar_tensor(dst, api, "dst", loc)
    if not isinstance(src, Register):
        raise NkiTypeError(
            f"{api}: src must be a VirtualRegister, got {type(src).__name__}",
            code="err_invalid_operand",
            values={"src": src},
            loc=loc,
        )
    if run.numerics:
        v = src.get(api, loc)
        dst.write(np.full(dst.shape, v, dtype=np.int64) if dtypes.is_int(dst.dtype) else np.float32(v))
    return c.emit(
        REGISTER_STORE, loc, [], [dst], partitions=1, free=1, out_dtype=dst.dtype, attrs={"register": src.name}
    )


def core_barrier(
    data: Tensor | None,
    cores: tuple[int, ...],
    *,
    engine: str = Engine.GPSIMD,
    loc: SourceLoc | None = None,
    api: str = "core_barrier",
) -> Instruction:
    """Check a core barrier's operands and emit this core's barrier record (the wait is the launcher's job)."""
    loc = loc or c.here()
    run = current()
    c.check_nc_version(api, loc, run, 3)
    cores = tuple(int(x) for x in cores)
    if sorted(cores) != [0, 1]:
        raise NkiValidationError(
            f"{api}: only cores=(0, 1) is supported, got {cores}",
            code="err_invalid_core_barrier_cores",
            values={"cores": cores},
            loc=loc,
        )
    reads = []
    if data is not None:
        data = c.check_tensor(data, api, "data", loc)
        if data.storage.buffer.kind != "hbm" or not data.storage.buffer.shared:
            raise NkiValidationError(
                f"{api}: 'data' must be a tensor in shared HBM, but '{data.storage.name}' is in "
                f"{data.storage.buffer.name}",
                code="err_unsupported_memory",
                values={"data": data.storage.name, "buffer": data.storage.buffer.name},
                loc=loc,
            )
        reads = [data]
    # The barrier reads `data`, so it waits for the earlier writes of it; the timing model makes the core's later
    # accesses of `data` wait for the barrier.
    return c.emit(CORE_BARRIER, loc, reads, [], engine=engine, attrs={"cores": cores, "barrier": True})
