"""Memory spaces and storages.

A `Storage` is one allocation: a NumPy array plus where it lives. On-chip storages (SBUF, PSUM) are laid
out partition-first, shape (P, blocks..., free...), so that a user shape with leading block dimensions
(B, par_dim(P), F) is a transposed view of it and every element's (partition, byte-in-partition) address
follows from pointer arithmetic. HBM storages keep the user's shape; their "rows" (axis 0) play the role
of partitions when regions are computed.
"""

from __future__ import annotations

import itertools
import math
import weakref
from dataclasses import dataclass

import numpy as np

from . import dtypes
from .source import SourceLoc


@dataclass(frozen=True, slots=True)
class Buffer:
    """A memory space a tensor can be allocated in (nl.sbuf, nl.psum, nl.hbm, ...)."""

    name: str
    kind: str  # "hbm" | "sbuf" | "psum"
    shared: bool = False

    @property
    def on_chip(self) -> bool:
        return self.kind != "hbm"

    def __repr__(self) -> str:
        return self.name

    # G2's MemoryRegion compares equal to its string value.
    def __eq__(self, other: object) -> bool:
        if isinstance(other, Buffer):
            return self.name == other.name
        if isinstance(other, str):
            return self.name == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.name)


HBM = Buffer("hbm", "hbm")
PRIVATE_HBM = Buffer("private_hbm", "hbm")
SHARED_HBM = Buffer("shared_hbm", "hbm", shared=True)
SBUF = Buffer("sbuf", "sbuf")
PSUM = Buffer("psum", "psum")

_ids = itertools.count(1)


#: bits of the per-element state array kept next to every storage's data
WRITTEN = 1  # the element has been written since allocation
ACC_OPEN = 2  # PSUM: the element holds a matmul partial sum that a later matmul may accumulate into


class Mem:
    """The arrays behind a storage. Only tensors (views) hold it, so it is freed when the last view dies,
    while the `Storage` metadata lives on in instruction records for timing and liveness analysis.
    `written` is a uint8 array of WRITTEN / ACC_OPEN bits, or None in timing-only mode."""

    __slots__ = ("data", "written", "__weakref__")

    def __init__(self, data: np.ndarray, written: np.ndarray | None) -> None:
        self.data = data
        self.written = written


class Storage:
    """One allocation in HBM, SBUF or PSUM (metadata; the arrays are in `Mem`)."""

    __slots__ = (
        "id",
        "buffer",
        "_mem",
        "name",
        "loc",
        "dtype",
        "shape",
        "core",
        "row_bytes",
        "base_ptr",
        "nblocks",
        "block_shape",
        "is_param",
        "is_output",
        "tf32",
        "__weakref__",
        "new_mem",
    )

    def __init__(
        self,
        data: np.ndarray,
        buffer: Buffer,
        *,
        name: str = "",
        loc: SourceLoc | None = None,
        core: int = 0,
        nblocks: int = 1,
        block_shape: tuple[int, ...] = (),
        track_writes: bool = True,
        initialized: bool = False,
    ) -> None:
        self.id = next(_ids)
        self.buffer = buffer
        self.dtype = data.dtype
        self.shape = data.shape
        self.name = name or f"t{self.id}"
        self.loc = loc
        self.core = core
        self.row_bytes = data.strides[0] if data.ndim else data.itemsize
        self.base_ptr = data.__array_interface__["data"][0]
        self.nblocks = nblocks
        self.block_shape = block_shape
        written = np.full(data.shape, WRITTEN if initialized else 0, dtype=np.uint8) if track_writes else None
        self.new_mem = Mem(data, written)
        self._mem = weakref.ref(self.new_mem)
        self.is_param = False
        self.is_output = False
        self.tf32 = False

    def take_mem(self) -> Mem:
        """Hand the freshly allocated arrays to their first tensor (the storage keeps only a weak ref)."""
        mem = self.new_mem
        self.new_mem = None
        return mem

    @property
    def mem(self) -> Mem | None:
        return self._mem()

    @property
    def partitions(self) -> int:
        return self.shape[0] if self.shape else 1

    @property
    def bytes_per_partition(self) -> int:
        """Bytes each partition of this allocation occupies (all blocks)."""
        return self.row_bytes

    @property
    def block_bytes(self) -> int:
        return self.row_bytes // max(self.nblocks, 1)

    def __repr__(self) -> str:
        return f"<{self.buffer.name} {self.name} {self.shape} {dtypes.name_of(self.dtype)}>"


def allocate(
    shape: tuple[int, ...],
    dtype: np.dtype,
    buffer: Buffer,
    *,
    pdim: int = 0,
    name: str = "",
    loc: SourceLoc | None = None,
    core: int = 0,
    fill: object = "poison",
    track_writes: bool = True,
) -> tuple[Storage, Mem, np.ndarray, np.ndarray | None]:
    """Allocate a storage; return it, its arrays, and the user-shaped views of its data and written-mask.

    `pdim` is the index of the partition dimension in `shape` (non-zero only for legacy block dims).
    `fill` is "poison", "empty" (timing-only mode: no fill) or a value.
    """
    shape = tuple(int(s) for s in shape)
    if not isinstance(dtype, np.dtype):
        dtype = dtypes.normalize(dtype)
    if pdim and buffer.on_chip:
        order = (pdim,) + tuple(i for i in range(len(shape)) if i != pdim)
        phys_shape = tuple(shape[i] for i in order)
    else:
        order = None
        phys_shape = shape
    if fill == "empty":
        data = np.empty(phys_shape, dtype=dtype)
        initialized = False
    elif fill == "poison":
        data = np.full(phys_shape, dtypes.poison_value(dtype), dtype=dtype)
        initialized = False
    else:
        data = np.full(phys_shape, fill, dtype=dtype)
        initialized = True
    nblocks = math.prod(shape[:pdim]) if pdim else 1
    st = Storage(
        data,
        buffer,
        name=name,
        loc=loc,
        core=core,
        nblocks=nblocks,
        block_shape=shape[:pdim],
        track_writes=track_writes,
        initialized=initialized,
    )
    mem = st.take_mem()
    if order is not None:
        inverse = tuple(int(i) for i in np.argsort(order))
        return st, mem, data.transpose(inverse), None if mem.written is None else mem.written.transpose(inverse)
    return st, mem, data, mem.written


def wrap_host_array(
    arr: np.ndarray, buffer: Buffer, *, name: str, core: int = 0, copy: bool = True, track_writes: bool = True
) -> Storage:
    """Make an HBM storage holding a copy of a caller's array (the caller's array is never modified)."""
    data = np.array(arr, copy=True, order="C") if copy else np.ascontiguousarray(arr)
    if data.ndim == 0:
        data = data.reshape(1)
    return Storage(data, buffer, name=name, core=core, track_writes=track_writes, initialized=True)


def region(arr: np.ndarray, storage: Storage) -> tuple[int, int, int, int]:
    """Bounding box of a view in (partition-or-row, byte-in-row) space: (p_lo, p_hi, f_lo, f_hi), hi exclusive."""
    off = arr.__array_interface__["data"][0] - storage.base_ptr
    rb = storage.row_bytes
    p_lo, f_lo = divmod(off, rb)
    p_hi = p_lo + 1
    f_hi = f_lo + arr.itemsize
    for n, s in zip(arr.shape, arr.strides):
        if n <= 1 or s == 0:
            continue
        span = (n - 1) * s
        if s % rb == 0 and abs(s) >= rb:
            if span > 0:
                p_hi += span // rb
            else:
                p_lo += span // rb
        elif span > 0:
            f_hi += span
        else:
            f_lo += span
    if f_hi > rb or f_lo < 0:
        # The view wraps across rows (e.g. a flattened HBM view): widen the box to whole rows.
        p_hi += (f_hi - 1) // rb
        p_lo += f_lo // rb
        f_lo, f_hi = 0, rb
    return p_lo, p_hi, f_lo, f_hi
