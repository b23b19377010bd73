"""Tensors: views over a Storage.

A `Tensor` is a NumPy view (basic indexing, transposes, reshapes) of its storage's data, plus the matching
view of the storage's written-mask. Truly indirect accesses (tile-valued indices) are expressed with an
`index` tuple of integer arrays applied to the view (gather on read, scatter on write).
Front ends subclass `Tensor` to add their language surface (legacy operators and arange indexing, current
API view methods); the ISA layer only relies on what is defined here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import dtypes
from .memory import ACC_OPEN, WRITTEN, Buffer, Mem, Storage, region


class Tensor:
    """A view of (part of) one storage."""

    __slots__ = (
        "storage",
        "mem",
        "array",
        "wmask",
        "index",
        "valid",
        "producer",
        "raw",
        "_reg",
        "_off",
        "_sig",
        "_memo",
        "_inplace_done",
        "_slices",
        "__weakref__",
    )

    def __init__(
        self,
        storage: Storage,
        mem: Mem,
        array: np.ndarray,
        wmask: np.ndarray | None = None,
        index: tuple[np.ndarray, ...] | None = None,
    ) -> None:
        self.storage = storage
        self.mem = mem
        self.array = array
        self.wmask = wmask
        self.index = index
        self.valid = None  # region of a masked (legacy) result that was actually written
        self.producer = None  # instruction that produced this temporary, for write retargeting
        self.raw = None  # fp32 engine values before the final cast, for retargeting
        self._reg = None  # cached region box
        self._off = None  # byte offset of `array` in the storage's data when known (saves a pointer lookup)
        self._sig = None  # check-cache signature of this view (isa.common.check_key), computed on first use
        self._memo = None  # (subscript, view): the last plain subscript of this tensor a front end resolved
        # `t[k] op= v` already applied (Python's follow-up `t[k] = view` is then a no-op; legacy front end). A plain
        # field, not left unset: getattr with a default on an unset slot raises inside (0.14 vs 0.02 us, measured)
        self._inplace_done = False
        self._slices: dict | None = None  # views of two-slice subscripts by their bounds (legacy front end)

    # ----------------------------------------------------------------- basic properties
    @property
    def shape(self) -> tuple[int, ...]:
        if self.index is None:
            return self.array.shape
        return broadcast_shapes(*(i.shape for i in self.index)) + self.array.shape[len(self.index) :]

    @property
    def dtype(self) -> np.dtype:
        return self.storage.dtype

    @property
    def buffer(self) -> Buffer:
        return self.storage.buffer

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def itemsize(self) -> int:
        return self.storage.dtype.itemsize

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def partition_axis(self) -> int:
        """The axis of this view that runs over partitions: 0, except for a view spanning several blocks of an
        on-chip storage with leading block dims (`[B, par_dim(P), F]`), where it is the axis whose stride is the
        storage's row (storages are partition-first, see core.memory)."""
        st = self.storage
        if st.nblocks > 1 and self.index is None:
            arr = self.array
            rb = st.row_bytes
            if arr.ndim > 1 and arr.strides[0] != rb and st.buffer.on_chip:
                for a, s in enumerate(arr.strides):
                    if s == rb:
                        return a
        return 0

    @property
    def partitions(self) -> int:
        shp = self.shape
        if not shp:
            return 1
        return shp[self.partition_axis] if self.storage.nblocks > 1 else shp[0]

    @property
    def free_size(self) -> int:
        """Elements per partition."""
        shp = self.shape
        if self.storage.nblocks > 1 and len(shp) > 1:
            a = self.partition_axis
            if a:
                return math.prod(shp) // max(shp[a], 1) if shp[a] else 0
        return math.prod(shp[1:]) if len(shp) > 1 else 1

    @property
    def name(self) -> str:
        return self.storage.name

    def same_kind(self, storage: Storage, array: np.ndarray, wmask, index=None) -> Tensor:
        """A new view of the same storage, of the same front-end class (subclasses keep their type)."""
        t = self.__class__.__new__(self.__class__)
        Tensor.__init__(t, storage, self.mem, array, wmask, index)
        return t

    # ----------------------------------------------------------------- views
    def basic_view(self, key: Any) -> Tensor:
        if self.index is not None:
            raise TypeError("cannot take a view of an indirect (gathered) access")
        arr = self.array[key]
        wm = self.wmask[key] if self.wmask is not None else None
        if not isinstance(arr, np.ndarray):  # scalar element: keep a 1-element view
            arr = self.array[_as_slices(key)]
            wm = self.wmask[_as_slices(key)] if self.wmask is not None else None
        t = self.same_kind(self.storage, arr, wm)
        base = self._off if self._off is not None else (0 if self.array is self.mem.data else None)
        if base is not None and arr.size:
            t._off = _key_offset(base, key, self.array.shape, self.array.strides)
        return t

    def transposed(self, axes: tuple[int, ...]) -> Tensor:
        return self.same_kind(
            self.storage,
            self.array.transpose(axes),
            self.wmask.transpose(axes) if self.wmask is not None else None,
        )

    def reshaped(self, shape: tuple[int, ...]) -> Tensor:
        arr = self.array.reshape(shape)
        if not np.shares_memory(arr, self.array):
            raise ValueError(f"cannot reshape {self.shape} to {shape} without a copy (non-contiguous view)")
        wm = self.wmask.reshape(shape) if self.wmask is not None else None
        return self.same_kind(self.storage, arr, wm)

    def broadcast(self, shape: tuple[int, ...]) -> Tensor:
        shape = tuple(shape)
        off = self._off
        if off is None and self.array is self.mem.data:
            off = 0
        arr = _broadcast_view(self.array, shape, self.mem.data, off)
        wm = np.broadcast_to(self.wmask, shape) if self.wmask is not None else None
        t = self.same_kind(self.storage, arr, wm)
        t._off = off
        return t

    def indirect(self, index: tuple[np.ndarray, ...]) -> Tensor:
        return self.same_kind(self.storage, self.array, self.wmask, index)

    # ----------------------------------------------------------------- view recipes (cached index resolution)
    def is_whole(self) -> bool:
        """Is this the storage's own data (and written-mask) array, not a view of part of it?"""
        mem = self.mem
        return self.index is None and self.array is mem.data and self.wmask is mem.written

    def view_recipe(self, view: Tensor) -> tuple | None:
        """Where `view` (a strided view of this whole-storage tensor's data, e.g. the result of resolving an index
        expression against it) sits in the storage: enough to rebuild the same view with `from_recipe` without
        resolving the index again. None when it cannot be described that way."""
        if not self.is_whole() or view.index is not None or view.mem is not self.mem:
            return None
        mem = self.mem
        arr, wm = view.array, view.wmask
        if arr.dtype != mem.data.dtype or (wm is None) != (mem.written is None):
            return None
        off = arr.__array_interface__["data"][0] - self.storage.base_ptr
        wrec = None
        if wm is not None:
            woff = wm.__array_interface__["data"][0] - mem.written.__array_interface__["data"][0]
            wrec = (woff, wm.shape, wm.strides, wm.flags.writeable)
        view._off = off
        return (type(view), off, arr.shape, arr.strides, arr.flags.writeable, wrec, view.region())

    def from_recipe(self, recipe: tuple) -> Tensor:
        """The view described by `view_recipe` (this tensor must be the same whole-storage tensor layout)."""
        cls, off, shape, strides, writeable, wrec, box = recipe
        mem = self.mem
        # the arrays built from this recipe on these arrays before (a loop rebuilds the same few views); kept with
        # the arrays, keyed by the recipe's identity (an entry holds its recipe, so the id is not reused meanwhile)
        views = mem.views
        if views is None:
            views = mem.views = {}
        built = views.get(id(recipe))
        if built is not None and built[0] is recipe:
            arr, wm = built[1], built[2]
        else:
            data = mem.data
            arr = np.ndarray(shape, data.dtype, data, off, strides)
            if not writeable:
                arr.flags.writeable = False
            wm = None
            if wrec is not None:
                woff, wshape, wstrides, wwriteable = wrec
                wm = np.ndarray(wshape, np.uint8, mem.written, woff, wstrides)
                if not wwriteable:
                    wm.flags.writeable = False
            if len(views) >= 256:
                views.clear()
            views[id(recipe)] = (recipe, arr, wm)
        t = cls.__new__(cls)
        Tensor.__init__(t, self.storage, mem, arr, wm)
        t._off = off
        t._reg = box
        return t

    # ----------------------------------------------------------------- data access
    def read(self) -> np.ndarray:
        """Values in the storage dtype (a view where possible; never write into it)."""
        if self.index is not None:
            return self.array[self.index]
        return self.array

    def read_fp32(self) -> np.ndarray:
        v = self.read()
        return v if v.dtype == np.float32 else v.astype(np.float32)

    def read_fp32_shadowed(self) -> np.ndarray:
        """Like `read_fp32`, for operands that are read many times (matmul operands): a low-precision storage
        keeps an fp32 copy of all its data (`Mem.shadow`, dropped by every write), and the view is taken of
        that copy, so a tile read by many instructions is converted once. The copy is made when the view covers
        at least a quarter of the storage or the storage was read this way before since its last write."""
        arr = self.array
        if arr.dtype == np.float32:
            return self.read()
        mem = self.mem
        data = mem.data
        item = data.itemsize
        if (
            self.index is not None
            or arr.dtype != data.dtype
            or data.dtype.names is not None
            or any(st < 0 or st % item for st in arr.strides)
        ):
            return self.read().astype(np.float32)
        sh = mem.shadow
        if sh is None:
            if arr.size * 4 < data.size and not mem.hits:
                mem.hits = 1
                return arr.astype(np.float32)
            sh = mem.fp32()
        if arr is data:
            return sh
        off = self._off
        if off is None:
            off = arr.__array_interface__["data"][0] - self.storage.base_ptr
        if off % item:
            return arr.astype(np.float32)
        return np.ndarray(
            arr.shape, np.float32, sh, (off // item) * 4, tuple(st // item * 4 for st in arr.strides)
        )

    def acc_open(self) -> np.ndarray | None:
        """Elements holding an open matmul accumulation (PSUM), or None when not tracked."""
        if self.wmask is None:
            return None
        wm = self.wmask[self.index] if self.index is not None else self.wmask
        return (wm & ACC_OPEN) != 0

    def is_initialized(self) -> bool:
        if self.wmask is None:
            return True
        if self.index is not None:
            return bool(self.wmask[self.index].all())
        return bool(self.wmask.all())

    def write(self, values: np.ndarray | float, where: np.ndarray | None = None, state: int = WRITTEN) -> None:
        """Cast `values` (engine result, usually fp32) to this tensor's dtype (RNE / saturate) and store.

        `state` is the element state recorded (WRITTEN, or WRITTEN | ACC_OPEN for matmul partial sums)."""
        dt = self.storage.dtype
        mem = self.mem
        mem.shadow = None
        mem.hits = 0
        if self.index is None and where is None and isinstance(values, np.ndarray) and self.array.dtype == dt:
            arr = self.array
            vd = values.dtype
            if vd == dt:
                arr[...] = values
            elif vd.kind == "f" and dt.kind not in "iub" and dt.names is None:
                # float -> float: the same RNE cast as dtypes.cast_to, done straight into the destination
                np.copyto(arr, values, casting="unsafe")
            else:
                arr[...] = dtypes.cast_to(values, dt)
            wm = self.wmask
            # (a fully written SBUF / HBM storage has every WRITTEN bit set and no other bits: nothing to update)
            if wm is not None and not (mem.full and state == WRITTEN and self.storage.buffer.kind != "psum"):
                wm.fill(state)
                if not mem.full and arr.size == mem.data.size and state & WRITTEN and 0 not in arr.strides:
                    mem.full = True  # a non-broadcast view as large as the storage covers all of it
            return
        if isinstance(values, np.ndarray):
            vals = dtypes.cast_to(values, dt)
        else:
            vals = dtypes.cast_to(np.asarray(values, dtype=np.float64 if dt.kind == "f" else None), dt)
        if self.index is not None:
            if where is not None:
                idx = tuple(np.broadcast_to(i, where.shape)[where] for i in self.index)
                self.array[idx] = np.broadcast_to(vals, where.shape)[where]
                if self.wmask is not None:
                    self.wmask[idx] = state
            else:
                self.array[self.index] = vals
                if self.wmask is not None:
                    self.wmask[self.index] = state
            return
        if where is None:
            self.array[...] = vals
            if self.wmask is not None:
                self.wmask[...] = state
                arr = self.array
                if not mem.full and arr.size == mem.data.size and state & WRITTEN and 0 not in arr.strides:
                    mem.full = True
        else:
            np.copyto(self.array, np.broadcast_to(vals, self.array.shape), where=where)
            if self.wmask is not None:
                np.copyto(self.wmask, state, where=where)

    def direct_fp32(self) -> np.ndarray | None:
        """This view's own array when an fp32 engine result can be computed straight into it (fp32 storage,
        plain view, no front-end `write` override), else None. Call `mark_written` after filling it."""
        arr = self.array
        if (
            self.index is None
            and arr.dtype == np.float32
            and self.storage.dtype == np.float32
            and type(self).write is Tensor.write
            and arr.flags.writeable
        ):
            return arr
        return None

    def mark_written(self, state: int = WRITTEN) -> None:
        """Record that every element of this (plain) view was just written in place (see `direct_fp32`)."""
        mem = self.mem
        mem.shadow = None
        mem.hits = 0
        wm = self.wmask
        if wm is not None:
            wm[...] = state
            arr = self.array
            if not mem.full and arr.size == mem.data.size and state & WRITTEN and 0 not in arr.strides:
                mem.full = True

    # ----------------------------------------------------------------- regions (for timing and checks)
    def region(self) -> tuple[int, int, int, int]:
        r = self._reg
        if r is None:
            if self.index is not None:
                r = _index_region(self.array, self.index, self.storage)
            elif self.array is self.mem.data:  # the whole storage: its box is computed once
                st = self.storage
                r = st._full_box
                if r is None:
                    r = st._full_box = region(self.array, st, 0)
            else:
                r = region(self.array, self.storage, self._off)  # (_off None: looked up from the data pointer)
            self._reg = r
        return r

    def element_offsets(self) -> np.ndarray:
        """Flat byte offsets of every element (exact overlap checks; slow path only)."""
        arr = self.array
        off0 = arr.__array_interface__["data"][0] - self.storage.base_ptr
        grids = np.indices(arr.shape, sparse=True) if arr.ndim else ()
        offs = np.asarray(off0, dtype=np.int64)
        for g, s in zip(grids, arr.strides):
            offs = offs + g.astype(np.int64) * s
        offs = np.broadcast_to(offs, arr.shape)
        if self.index is not None:
            offs = offs[self.index]
        return np.unique(offs.ravel())

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.storage.buffer.name}:{self.storage.name}, shape={self.shape}, "
            f"dtype={dtypes.name_of(self.dtype)})"
        )


def _broadcast_view(arr: np.ndarray, shape: tuple[int, ...], data: np.ndarray, off: int | None) -> np.ndarray:
    """`np.broadcast_to(arr, shape)` (read-only), built directly on the storage's contiguous data when the view's
    byte offset in it is known: NumPy's version goes through `as_strided` (several microseconds)."""
    pad = len(shape) - arr.ndim
    if off is None or pad < 0 or not data.flags.c_contiguous:
        return np.broadcast_to(arr, shape)
    strides = []
    for i, n in enumerate(shape):
        j = i - pad
        if j < 0:
            strides.append(0)
            continue
        m = arr.shape[j]
        if m == n:
            strides.append(arr.strides[j] if n > 1 else 0)
        elif m == 1:
            strides.append(0)
        else:
            return np.broadcast_to(arr, shape)  # (raises NumPy's error)
    out = np.ndarray(shape, arr.dtype, data, off, tuple(strides))
    out.flags.writeable = False
    return out


_BROADCAST: dict[tuple, tuple[int, ...]] = {}


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """`np.broadcast_shapes` for tuples of ints, memoised: the same few shape combinations recur every loop
    iteration and NumPy's version costs a couple of microseconds. Raises ValueError like NumPy."""
    hit = _BROADCAST.get(shapes)
    if hit is None:
        hit = tuple(np.broadcast_shapes(*shapes))
        if len(_BROADCAST) > 50_000:
            _BROADCAST.clear()
        _BROADCAST[shapes] = hit
    return hit


def _key_offset(base: int, key: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> int | None:
    """Byte offset of `array[key]` from the storage start, given the array's offset `base`, for keys of integers and
    slices (else None: the caller looks the pointer up, which costs microseconds for some dtypes)."""
    if not isinstance(key, tuple):
        key = (key,)
    if len(key) > len(shape):
        return None
    off = base
    for k, n, st in zip(key, shape, strides):
        if type(k) is slice:
            if k.step is None and (k.start is None or 0 <= k.start < n):  # the usual `a:b` / `:`
                if k.start:
                    off += k.start * st
            elif n:
                start = k.indices(n)[0]
                if start < n:
                    off += start * st
        elif isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            k = int(k)
            off += (k + n if k < 0 else k) * st
        else:
            return None
    return off


def _as_slices(key: Any) -> Any:
    if not isinstance(key, tuple):
        key = (key,)
    return tuple(slice(k, k + 1) if isinstance(k, (int, np.integer)) else k for k in key)


def _index_region(arr: np.ndarray, index: tuple[np.ndarray, ...], storage: Storage) -> tuple[int, int, int, int]:
    off0 = arr.__array_interface__["data"][0] - storage.base_ptr
    lo = hi = off0
    for k, ix in enumerate(index):
        s = arr.strides[k]
        if ix.size == 0:
            continue
        a, b = int(ix.min()) * s, int(ix.max()) * s
        lo += min(a, b)
        hi += max(a, b)
    for n, s in zip(arr.shape[len(index) :], arr.strides[len(index) :]):
        if n > 1:
            span = (n - 1) * s
            lo += min(span, 0)
            hi += max(span, 0)
    rb = storage.row_bytes
    p_lo, p_hi = lo // rb, hi // rb + 1
    if p_hi - p_lo > 1:
        return p_lo, p_hi, 0, rb
    return p_lo, p_hi, lo % rb, hi % rb + arr.itemsize
