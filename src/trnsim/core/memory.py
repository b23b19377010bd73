"""Memory spaces and storages.

A `Storage` is one allocation: a NumPy array plus where it lives. On-chip storages (SBUF, PSUM) are laid
out partition-first, shape (P, blocks..., free...), so that a user shape with leading block dimensions
(B, par_dim(P), F) is a transposed view of it and every element's (partition, byte-in-partition) address
follows from pointer arithmetic. HBM storages keep the user's shape; their "rows" (axis 0) play the role
of partitions when regions are computed.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import sys
import threading
import weakref
from collections.abc import Iterator
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
    `written` is a uint8 array of WRITTEN / ACC_OPEN bits, or None in timing-only mode.

    Summary flags let hot paths skip whole-array scans; they are conservative (False = "look at the bits"):
    `full`: every element has been written (WRITTEN bits are never cleared once set, so this only goes
    False -> True; set by `Tensor.write` of the whole storage or by a read check that saw all bits set).
    `shadow`: an fp32 copy of `data` for low-precision tiles that are read many times (matmul operands),
    dropped by every write into the storage (`invalidate`)."""

    __slots__ = ("data", "written", "full", "shadow", "hits", "views", "__weakref__")

    def __init__(self, data: np.ndarray, written: np.ndarray | None) -> None:
        self.data = data
        self.written = written
        self.full = False
        self.shadow: np.ndarray | None = None
        self.hits = 0  # fp32 reads of part of the data since the last write (see Tensor.read_fp32_shadowed)
        self.views: dict[int, tuple] | None = None  # the arrays built from view recipes (Tensor.from_recipe)

    def invalidate(self) -> None:
        """The data changed: drop the fp32 shadow."""
        self.shadow = None
        self.hits = 0

    def fp32(self) -> np.ndarray:
        """fp32 values of the whole storage (cached until the next write)."""
        sh = self.shadow
        if sh is None:
            sh = self.shadow = self.data.astype(np.float32)
        return sh


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
        "_base_ptr",
        "_full_box",
        "nblocks",
        "block_shape",
        "is_param",
        "is_output",
        "tf32",
        "__weakref__",
        "new_mem",
        "sig_kind",
        "layout",
    )

    def __init__(
        self,
        data: np.ndarray,
        buffer: Buffer,
        name: str = "",
        loc: SourceLoc | None = None,
        core: int = 0,
        written: np.ndarray | None = None,
        nblocks: int = 1,
        block_shape: tuple[int, ...] = (),
        layout: TileLayout | None = None,
        mem: Mem | None = None,
    ) -> None:
        """`written`: the per-element state array (see `state_array`), None when writes are not tracked.
        `layout`: the facts `data` shares with every plain tile of its shape, dtype and memory (`allocate_tile`).
        `mem`: the arrays, when the caller made them and hands them to their first tensor itself (else the
        storage holds them until `take_mem`)."""
        self.id = i = next(_ids)
        self.buffer = buffer
        self.name = name or f"t{i}"
        self.loc = loc
        self.core = core
        self._base_ptr = None  # looked up on first use (the pointer lookup costs about a microsecond)
        self.layout = layout
        if layout is not None:
            self.dtype = layout.dtype
            self.shape = layout.shape
            self.row_bytes = layout.row_bytes
            self._full_box = layout.full_box
        else:
            self.dtype = data.dtype
            shape = self.shape = data.shape
            rb = self.row_bytes = data.strides[0] if data.ndim else data.itemsize
            # region of the whole data (see Tensor.region): known up front for a C-contiguous, non-empty array
            # (rows are its first axis), else computed on first use
            self._full_box = (0, shape[0], 0, rb) if data.ndim and data.size and data.flags.c_contiguous else None
        self.nblocks = nblocks
        self.block_shape = block_shape
        if mem is None:
            mem = self.new_mem = Mem(data, written)
        else:
            self.new_mem = None
        self._mem = weakref.ref(mem)
        self.is_param = False
        self.is_output = False
        self.tf32 = False
        self.sig_kind: tuple | None = None  # what operand check signatures take from the storage (isa.common)

    def take_mem(self) -> Mem:
        """Hand the freshly allocated arrays to their first tensor (the storage keeps only a weak ref)."""
        mem = self.new_mem
        self.new_mem = None
        return mem

    @property
    def mem(self) -> Mem | None:
        return self._mem()

    @property
    def base_ptr(self) -> int:
        """Address of the first byte of the storage's data (only meaningful while its arrays are alive)."""
        p = self._base_ptr
        if p is None:
            mem = self._mem() if self.new_mem is None else self.new_mem
            if mem is None:
                raise RuntimeError(f"the arrays of storage {self.name} have been freed")
            p = self._base_ptr = mem.data.__array_interface__["data"][0]
        return p

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


class TileLayout:
    """What every plain on-chip tile (no block dims) of one shape, dtype and memory kind has in common, worked out
    once by `allocate_tile` instead of from each new array."""

    __slots__ = ("shape", "dtype", "row_bytes", "full_box", "sigs", "no_values")

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.shape = shape
        self.dtype = dtype
        rb = self.row_bytes = math.prod(shape[1:]) * dtype.itemsize  # (C-contiguous: the first axis' stride)
        self.full_box = (0, shape[0], 0, rb)  # region of the whole tile (see Tensor.region)
        # tensor class -> operand-check signature of a view of the whole tile (isa.common.check_key fills it)
        self.sigs: dict[type, int] = {}
        self.no_values: Mem | None = None  # the arrays every tile of a timing-only run shares (see allocate_tile)


_LAYOUTS: dict[tuple, TileLayout] = {}
_POISON: dict[np.dtype, object] = {}


def _poisoned(data: np.ndarray) -> np.ndarray:
    """Fill a fresh allocation with its dtype's poison value (NaN / the integer sentinel) and return it."""
    pv = _POISON.get(data.dtype)
    if pv is None:
        pv = _POISON[data.dtype] = dtypes.poison_value(data.dtype)
    data.fill(pv)
    return data


def state_array(shape: tuple[int, ...], track_writes: bool, initialized: bool) -> np.ndarray | None:
    """The WRITTEN / ACC_OPEN bits kept next to a storage's data: all WRITTEN for initialised data, none set for a
    fresh allocation, None when writes are not tracked (timing-only runs)."""
    if not track_writes:
        return None
    if initialized:
        written = np.empty(shape, dtype=np.uint8)
        written.fill(WRITTEN)
        return written
    return np.zeros(shape, dtype=np.uint8)


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
    if not _tuned:
        tune_allocator()
    shape = tuple(map(int, shape))
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
        data = _poisoned(np.empty(phys_shape, dtype=dtype))
        initialized = False
    else:
        data = np.full(phys_shape, fill, dtype=dtype)
        initialized = True
    nblocks = math.prod(shape[:pdim]) if pdim else 1
    st = Storage(
        data,
        buffer,
        name,
        loc,
        core,
        state_array(data.shape, track_writes, initialized),
        nblocks,
        shape[:pdim] if pdim else (),
    )
    mem = st.take_mem()
    if order is not None:
        inverse = tuple(int(i) for i in np.argsort(order))
        return st, mem, data.transpose(inverse), None if mem.written is None else mem.written.transpose(inverse)
    return st, mem, data, mem.written


def allocate_tile(
    shape: tuple[int, ...],
    dtype: np.dtype,
    buffer: Buffer,
    name: str,
    loc: SourceLoc | None,
    core: int,
    poison: bool,
    numerics: bool,
) -> tuple[Storage, Mem, np.ndarray, np.ndarray | None]:
    """`allocate` for the common case of an on-chip tile without block dims whose shape is a tuple of ints (the result
    tile of nearly every instruction): the same storage, arrays and fill, with less argument handling.

    `numerics` False (a timing-only run: no value is ever read or written, no written state is kept): the tiles of
    one layout share one array, which only gives their views their shapes and byte offsets."""
    key = (shape, dtype, buffer.kind)
    try:
        layout = _LAYOUTS.get(key)
    except TypeError:  # (an unhashable shape, such as a list: the general path below)
        layout = None
    if layout is None:
        general = not _tuned or type(shape) is not tuple or not shape
        for n in shape:
            if type(n) is not int or n <= 0:
                general = True
                break
        if general:
            return allocate(shape, dtype, buffer, name=name, loc=loc, core=core,
                            fill="poison" if poison else "empty", track_writes=numerics)
        if len(_LAYOUTS) >= 4096:
            _LAYOUTS.clear()
        layout = _LAYOUTS[key] = TileLayout(shape, dtype)
    if not numerics:
        mem = layout.no_values
        if mem is None:
            mem = layout.no_values = Mem(np.empty(shape, dtype=dtype), None)
        data = mem.data
        # (positional: keyword arguments cost a tenth of a microsecond per tile)
        return Storage(data, buffer, name, loc, core, None, 1, (), layout, mem), mem, data, None
    data = np.empty(shape, dtype=dtype)
    if poison:
        _poisoned(data)
    written = state_array(shape, True, False)
    mem = Mem(data, written)
    return Storage(data, buffer, name, loc, core, written, 1, (), layout, mem), mem, data, written


def wrap_host_array(
    arr: np.ndarray, buffer: Buffer, *, name: str, core: int = 0, copy: bool = True, track_writes: bool = True
) -> Storage:
    """Make an HBM storage holding a copy of a caller's array (the caller's array is never modified)."""
    if not _tuned:
        tune_allocator()
    data = np.array(arr, copy=True, order="C") if copy else np.ascontiguousarray(arr)
    if data.ndim == 0:
        data = data.reshape(1)
    return Storage(data, buffer, name, None, core, state_array(data.shape, track_writes, True))


_REGIONS: dict[tuple, tuple[int, int, int, int]] = {}


def region(arr: np.ndarray, storage: Storage, off: int | None = None) -> tuple[int, int, int, int]:
    """Bounding box of a view in (partition-or-row, byte-in-row) space: (p_lo, p_hi, f_lo, f_hi), hi exclusive.
    `off` is the view's byte offset from the start of the storage when the caller knows it (else looked up)."""
    if off is None:
        off = arr.__array_interface__["data"][0] - storage.base_ptr
    # The box depends only on the view's geometry; loops revisit the same few geometries, so a lookup of the
    # (row size, offset, shape, strides, item size) key replaces the per-dimension arithmetic below.
    key = (storage.row_bytes, off, arr.shape, arr.strides, arr.itemsize)
    box = _REGIONS.get(key)
    if box is None:
        if len(_REGIONS) > 200_000:
            _REGIONS.clear()
        box = _REGIONS[key] = _region(arr.shape, arr.strides, arr.itemsize, storage.row_bytes, off)
    return box


def _region(shape: tuple, strides: tuple, itemsize: int, rb: int, off: int) -> tuple[int, int, int, int]:
    p_lo, f_lo = divmod(off, rb)
    p_hi = p_lo + 1
    f_hi = f_lo + itemsize
    for n, s in zip(shape, strides):
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


# ------------------------------------------------------------------------------------------ allocator tuning
_tuned = False


def tune_allocator() -> None:
    """Keep freed memory in the C heap instead of returning it to the OS after every temporary array.

    A simulated kernel allocates and frees tile-sized NumPy arrays (tens to hundreds of KiB) for every
    instruction. With glibc's default thresholds such blocks are mmap'ed / trimmed back to the OS and every
    reuse page-faults again, which costs more than the arithmetic. Raising M_MMAP_THRESHOLD / M_TRIM_THRESHOLD
    makes freed blocks reusable (the process keeps its peak heap). No-op where mallopt is unavailable (non-glibc);
    set TRNSIM_NO_MALLOC_TUNING=1 to skip it."""
    global _tuned
    _tuned = True
    if os.environ.get("TRNSIM_NO_MALLOC_TUNING") or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = getattr(libc, "mallopt", None)
        if mallopt is None:
            return
        mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        mallopt.restype = ctypes.c_int
        m_trim_threshold, m_mmap_threshold = -1, -3
        mallopt(m_mmap_threshold, 32 << 20)  # blocks below 32 MiB come from the heap ...
        mallopt(m_trim_threshold, 512 << 20)  # ... which is only trimmed when 512 MiB sit free at its top
    except (OSError, AttributeError, TypeError):
        pass


@contextlib.contextmanager
def relaxed_gc(gen0: int = 100_000) -> Iterator[None]:
    """Run the cyclic garbage collector less often while a kernel is simulated.

    A launch creates millions of small, acyclic, long-lived objects (instruction records); with CPython's default
    generation-0 threshold of 700 the collector keeps re-scanning them, which costs ~10% of the simulation. Objects
    of a kernel launch form (almost) no cycles, so collecting every `gen0` allocations instead bounds any cyclic
    garbage while removing most of that cost. The previous thresholds are restored afterwards.

    The objects that survive a collection during the launch are also moved out of the collector's generations
    (`gc.freeze`), so the growing instruction stream is not re-scanned by every later (and every full) collection;
    `gc.unfreeze` hands them back to the collector at the end. Skipped when the process has frozen objects itself."""
    import gc

    old = gc.get_threshold()
    if old[0] >= gen0:
        yield
        return
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.callbacks.append(_freeze_survivors)
    gc.set_threshold(gen0, *old[1:])
    try:
        yield
    finally:
        if freeze:
            gc.callbacks.remove(_freeze_survivors)
            # The objects made since the last collection go straight to the oldest generation too: with the old
            # threshold back, the next allocation would otherwise trigger a young-generation pass over all of them
            # (milliseconds per launch); cyclic garbage among them waits for the next full collection instead.
            gc.freeze()
        gc.set_threshold(*old)
        if freeze:
            gc.unfreeze()


def _freeze_survivors(phase: str, info: dict) -> None:
    """gc callback of `relaxed_gc`: after a collection, what survived it is kept out of later ones."""
    if phase == "stop":
        import gc

        gc.freeze()


# ------------------------------------------------------------------------------------------ BLAS threads
_blas: list = []  # [(set_num_threads, get_num_threads)] once looked up; [] = not looked up yet
_blas_lock = threading.Lock()
_blas_depth = 0
_blas_saved = 0


def _openblas() -> tuple | None:
    """(set, get) thread-count functions of the OpenBLAS that NumPy loaded, or None (other BLAS, not Linux)."""
    if _blas:
        return _blas[0]
    found = None
    try:
        import ctypes

        with open("/proc/self/maps") as f:
            paths = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and ".so" in ln.split()[-1]})
        for path in paths:
            lib = ctypes.CDLL(path)
            for prefix in ("scipy_openblas", "openblas"):
                for suffix in ("64_", ""):
                    st = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                    gt = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                    if st is not None and gt is not None:
                        st.argtypes, st.restype, gt.restype = (ctypes.c_int,), None, ctypes.c_int
                        found = (st, gt)
                        break
                if found:
                    break
            if found:
                break
    except (OSError, AttributeError, ValueError):
        found = None
    _blas.append(found)
    return found


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run NumPy's BLAS on one thread while a kernel is simulated.

    Every matmul the simulator issues is one Tensor-engine tile (at most 128 x 128 x 512 on NeuronCore-v2/v3), far
    too small to gain from BLAS threads: OpenBLAS splitting them costs more than it saves and, on a loaded machine,
    idle-spinning worker threads make it several times slower. The caller's thread count is restored afterwards.
    TRNSIM_BLAS_THREADS=N picks another count (0: leave BLAS alone). Only OpenBLAS (NumPy's default) is handled."""
    global _blas_depth, _blas_saved
    want = os.environ.get("TRNSIM_BLAS_THREADS", "1")
    fns = _openblas() if want.strip() not in ("0", "") else None
    if fns is None:
        yield
        return
    with _blas_lock:
        if _blas_depth == 0:
            _blas_saved = fns[1]()
            fns[0](max(1, int(want)))
        _blas_depth += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0:
                fns[0](_blas_saved)


@contextlib.contextmanager
def host_tuning() -> Iterator[None]:
    """Host-side settings for the duration of a kernel launch: fewer GC passes, single-threaded tile BLAS."""
    with relaxed_gc(), single_threaded_blas():
        yield
