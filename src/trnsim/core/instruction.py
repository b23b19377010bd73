"""The instruction record: the contract between numerics, checks, timing and profiling.

Every ISA call (and every front-end function lowered onto ISA calls) appends one `Instruction` to the
run's stream. Timing, profiling, liveness and race checks all consume these records and nothing else.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .source import SourceLoc

if TYPE_CHECKING:
    from .memory import Storage
    from .tensor import Tensor


class Engine:
    """Engine names as they appear in instruction records and profiles."""

    TENSOR = "Tensor"
    VECTOR = "Vector"
    SCALAR = "Scalar"
    GPSIMD = "GpSimd"
    SYNC = "Sync"
    DMA = "DMA"
    ALL = (TENSOR, VECTOR, SCALAR, GPSIMD, SYNC)


class Access:
    """One operand's footprint: a box in (partition-or-row, byte) space of one storage."""

    __slots__ = ("storage", "p_lo", "p_hi", "f_lo", "f_hi", "nbytes", "shape", "dtype", "accumulate", "tensor")

    def __init__(self, tensor: Tensor, accumulate: bool = False, keep_tensor: bool = False) -> None:
        st = tensor.storage
        self.storage: Storage = st
        dt = st.dtype
        if tensor.index is None:
            arr = tensor.array
            self.shape = arr.shape
            self.nbytes = arr.size * dt.itemsize
        else:
            shape = self.shape = tensor.shape
            self.nbytes = math.prod(shape) * dt.itemsize
        r = tensor._reg  # the view's cached box (Tensor.region computes it once per view)
        self.p_lo, self.p_hi, self.f_lo, self.f_hi = r if r is not None else tensor.region()
        self.dtype = dt
        self.accumulate = accumulate
        self.tensor = tensor if keep_tensor else None

    def overlaps(self, other: Access) -> bool:
        return (
            self.storage is other.storage
            and self.p_lo < other.p_hi
            and other.p_lo < self.p_hi
            and self.f_lo < other.f_hi
            and other.f_lo < self.f_hi
        )

    def describe(self) -> str:
        dims = "x".join(str(s) for s in self.shape)
        return f"{self.storage.buffer.name}:{self.storage.name}[{dims}] {self.dtype.name}"

    def __repr__(self) -> str:
        return (
            f"Access({self.describe()} p[{self.p_lo}:{self.p_hi}] f[{self.f_lo}:{self.f_hi}]"
            f"{' acc' if self.accumulate else ''})"
        )


class Instruction:
    """One executed hardware instruction (or DMA transfer)."""

    __slots__ = (
        "idx",
        "engine",
        "opcode",
        "reads",
        "writes",
        "loc",
        "core",
        "flops",
        "partitions",
        "free",
        "in_dtype",
        "out_dtype",
        "attrs",
        "spec",
        "iteration",
    )

    def __init__(
        self,
        engine: str,
        opcode: str,
        reads: list[Access],
        writes: list[Access],
        loc: SourceLoc,
        spec: Any = None,
        flops: int = 0,
        partitions: int = 0,
        free: int = 0,
        in_dtype: np.dtype | None = None,
        out_dtype: np.dtype | None = None,
        attrs: dict[str, Any] | None = None,
    ) -> None:
        self.idx = -1
        self.engine = engine
        self.opcode = opcode
        self.reads = reads
        self.writes = writes
        self.loc = loc
        self.core = 0
        self.flops = flops
        self.partitions = partitions
        self.free = free
        self.in_dtype = in_dtype
        self.out_dtype = out_dtype
        self.attrs = attrs if attrs is not None else {}
        self.spec = spec
        self.iteration: tuple[int, ...] = ()

    @property
    def is_dma(self) -> bool:
        return self.engine == Engine.DMA

    @property
    def dma_bytes(self) -> int:
        return self.writes[0].nbytes if self.writes else 0

    def __repr__(self) -> str:
        return f"<{self.idx} {self.engine}.{self.opcode} P={self.partitions} N={self.free} @ {self.loc.short}>"
