"""`nki.language.NkiTensor`: a core Tensor with the current API's view methods and access patterns.

Every view (slicing, `slice`, `select`, `permute`, `reshape`, `.ap(...)`, ...) is a NumPy view of the storage
(or, for runtime indirection, a gather/scatter index over the flattened storage); nothing is copied, so a
write through one view is visible through every other. Indexing follows the current API: on-chip tensors
keep the partition dimension and at least two dimensions; HBM tensors drop integer-indexed dimensions like
NumPy. Out-of-range static indices are errors (NumPy would clip slices silently).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ...core import dtypes
from ...core.context import current, maybe_current
from ...core.errors import NkiDataDependentError, NkiError, NkiIndexError, NkiTypeError, NkiValidationError
from ...core.memory import WRITTEN, Buffer
from ...core.source import caller_location
from ...core.tensor import Tensor
from ...isa.sync import Register


class DynSlice:
    """nl.ds(start, size[, step]): start may be a Python int or a VirtualRegister (runtime offset)."""

    __slots__ = ("start", "size", "step")

    def __init__(self, start: Any, size: int, step: int = 1) -> None:
        self.start, self.size, self.step = start, int(size), int(step)

    def resolve(self, api: str) -> slice:
        start = _int_value(self.start, api)
        return slice(start, start + self.size * self.step, self.step)

    def __repr__(self) -> str:
        return f"ds({self.start}, {self.size})"


def _int_value(v: Any, api: str) -> int:
    """A compile-time int, or the current value of a register / 1-element SBUF tensor (runtime offset)."""
    if isinstance(v, Register):
        return v.get(api, caller_location())
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return int(v)
    if isinstance(v, Tensor):
        run = current()
        if not run.numerics:
            raise NkiDataDependentError(
                f"{api}: a tensor-valued (runtime) index depends on data and cannot be used in timing-only mode",
                loc=caller_location(),
            )
        if v.size != 1:
            raise NkiValidationError(
                f"{api}: a runtime index must be a single-element tensor, got shape {v.shape}",
                code="err_invalid_index",
                values={"index": v.shape},
                loc=caller_location(),
            )
        return int(np.asarray(v.read()).reshape(-1)[0])
    raise NkiTypeError(
        f"{api}: index must be an int, got {type(v).__name__}",
        code="err_invalid_index",
        values={"index": v},
        loc=caller_location(),
    )


def _idx_error(msg: str, **values: Any) -> NkiIndexError:
    return NkiIndexError(msg, code="err_tensor_access_out_of_bound", values=values, loc=caller_location())


def _view_error(msg: str, code: str = "err_invalid_view", **values: Any) -> NkiValidationError:
    return NkiValidationError(msg, code=code, values=values, loc=caller_location())


class NkiTensor(Tensor):
    """A view of an HBM / SBUF / PSUM storage (current API)."""

    __slots__ = ("oob",)

    def __init__(self, storage, mem, array, wmask=None, index=None) -> None:
        super().__init__(storage, mem, array, wmask, index)
        self.oob = None

    def same_kind(self, storage, array, wmask, index=None):  # type: ignore[override]
        t = super().same_kind(storage, array, wmask, index)
        t.oob = None
        return t

    @classmethod
    def wrap(cls, storage, mem, array, wmask, index=None) -> NkiTensor:
        t = cls.__new__(cls)
        Tensor.__init__(t, storage, mem, array, wmask, index)
        t.oob = None
        return t

    # ------------------------------------------------------------------ attributes
    @property
    def dtype(self) -> np.dtype:  # type: ignore[override]
        return self.array.dtype

    @property
    def itemsize(self) -> int:  # type: ignore[override]
        return self.array.dtype.itemsize

    @property
    def buffer(self) -> Buffer:  # type: ignore[override]
        return self.storage.buffer

    @property
    def strides(self) -> tuple[int, ...]:
        """Element strides of the view over its storage."""
        if self.index is not None:
            raise _view_error("an indirect (gathered) view has no strides", code="err_indirect_view")
        return tuple(s // self.itemsize for s in self.array.strides)

    @property
    def offset(self) -> int:
        """Element offset of the view's first element from the start of its storage."""
        if self.index is not None:
            return 0
        return (self.array.__array_interface__["data"][0] - self.storage.base_ptr) // self.itemsize

    @property
    def on_chip(self) -> bool:
        return self.storage.buffer.on_chip

    def write(self, values, where=None, state: int = WRITTEN) -> None:  # type: ignore[override]
        """Store engine results cast to this view's dtype (which may reinterpret the storage's dtype)."""
        self.mem.invalidate()
        dt = self.array.dtype
        if dt in dtypes.X4_TYPES and not (isinstance(values, np.ndarray) and values.dtype == dt):
            v = np.asarray(values)
            if v.size and np.any(v != 0):
                raise NkiValidationError(
                    f"packed type {dtypes.name_of(dt)} can only be written with zeros or packed data",
                    code="err_invalid_memset_value",
                    loc=caller_location(),
                )
            values = np.zeros(self.shape, dtype=dt)
        if isinstance(values, np.ndarray):
            vals = dtypes.cast_to(values, dt)
        else:
            vals = dtypes.cast_to(np.asarray(values, dtype=np.float64 if dt.kind == "f" else None), dt)
        wm = self.wmask
        if wm is not None and wm.itemsize > 1:
            state = state * (0x0101010101010101 & ((1 << (8 * wm.itemsize)) - 1))
        if self.index is not None:
            if where is not None:
                where = np.broadcast_to(where, self.shape)
                idx = tuple(np.broadcast_to(i, where.shape)[where] for i in self.index)
                self.array[idx] = np.broadcast_to(vals, where.shape)[where]
                if wm is not None:
                    wm[idx] = state
            else:
                self.array[self.index] = vals
                if wm is not None:
                    wm[self.index] = state
            return
        if where is None:
            self.array[...] = vals
            if wm is not None:
                wm[...] = state
        else:
            np.copyto(self.array, np.broadcast_to(vals, self.array.shape), where=where)
            if wm is not None:
                np.copyto(wm, np.asarray(state, dtype=wm.dtype), where=where)

    # ------------------------------------------------------------------ indexing
    def __getitem__(self, key: Any) -> NkiTensor:
        if self.index is not None:
            raise _view_error("cannot index an indirect (gathered) view", code="err_indirect_view")
        if not isinstance(key, tuple):
            key = (key,)
        nd = self.ndim
        if any(k is None for k in key):
            raise _view_error("np.newaxis / None is not supported in NKI indexing; use expand_dim", key=key)
        n_ell = sum(1 for k in key if k is Ellipsis)
        if n_ell > 1:
            raise _view_error("an index can only have a single ellipsis ('...')", key=key)
        if n_ell:
            i = next(j for j, k in enumerate(key) if k is Ellipsis)
            key = key[:i] + (slice(None),) * (nd - len(key) + 1) + key[i + 1 :]
        if len(key) > nd:
            raise _idx_error(f"too many indices ({len(key)}) for tensor '{self.name}' of shape {self.shape}", key=key)
        key = key + (slice(None),) * (nd - len(key))
        np_key: list[Any] = []
        dropped: list[int] = []
        for dim, (k, n) in enumerate(zip(key, self.shape)):
            if isinstance(k, DynSlice):
                k = k.resolve("indexing")
            if isinstance(k, (Register, Tensor)):
                k = _int_value(k, "indexing")
            if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
                k = int(k)
                if not -n <= k < n:
                    raise _idx_error(
                        f"index {k} is out of bounds for dim {dim} of '{self.name}' with size {n}",
                        index=k, dim=dim, size=n, shape=self.shape,
                    )
                k = k % n
                np_key.append(slice(k, k + 1))
                dropped.append(dim)
            elif isinstance(k, slice):
                np_key.append(_check_slice(k, n, dim, self.name, self.shape))
            else:
                raise _view_error(
                    f"unsupported index {k!r} (use ints, slices, '...' or nl.ds; runtime indices go through "
                    f"tensor.select / .ap(scalar_offset=...))",
                    code="err_invalid_index",
                    index=repr(k),
                )
        arr = self.array[tuple(np_key)]
        wm = self.wmask[tuple(np_key)] if self.wmask is not None else None
        drop = dropped
        if self.on_chip:
            drop = [d for d in dropped if d != 0]
            keep_dims = nd - len(drop)
            while keep_dims < 2 and drop:
                drop = drop[:-1]
                keep_dims += 1
        if drop:
            sel = tuple(0 if d in drop else slice(None) for d in range(nd))
            arr = arr[sel]
            wm = wm[sel] if wm is not None else None
        return self.same_kind(self.storage, arr, wm)  # type: ignore[return-value]

    def __setitem__(self, key: Any, value: Any) -> None:
        from . import isa as nisa

        dst = self[key]
        if isinstance(value, Tensor):
            if dst.buffer.kind == "hbm" or value.storage.buffer.kind == "hbm":
                nisa.dma_copy(dst, value)
            else:
                nisa.tensor_copy(dst, value)
        else:
            nisa.memset(dst, value)

    # ------------------------------------------------------------------ view methods
    def _new(self, arr: np.ndarray, wm: np.ndarray | None) -> NkiTensor:
        return self.same_kind(self.storage, arr, wm)  # type: ignore[return-value]

    def _dim(self, dim: int, what: str) -> int:
        nd = self.ndim
        if not -nd <= dim < nd:
            raise _view_error(f"{what}: dim {dim} is out of range for a {nd}-D tensor", dim=dim, shape=self.shape)
        return dim % nd

    def _no_partition(self, dim: int, what: str) -> None:
        if self.on_chip and dim == 0:
            raise _view_error(
                f"{what}: cannot change the partition dimension (dim 0) of on-chip tensor '{self.name}'",
                code="err_partition_dim_view",
                dim=dim,
            )

    def slice(self, dim: int, start: int, end: int, step: int = 1) -> NkiTensor:
        """Restrict `dim` to [start, end) with `step` (0 <= start < end <= size, step >= 1)."""
        self._no_indirect()
        d = self._dim(dim, "slice")
        n = self.shape[d]
        start, end, step = int(start), int(end), int(step)
        if not (0 <= start < end <= n) or step < 1:
            raise _idx_error(
                f"slice(dim={d}, start={start}, end={end}, step={step}) is out of range for size {n} of '{self.name}'",
                dim=d, start=start, end=end, step=step, size=n,
            )
        key = tuple(slice(start, end, step) if i == d else slice(None) for i in range(self.ndim))
        return self._new(self.array[key], self.wmask[key] if self.wmask is not None else None)

    def select(self, dim: int, index: Any) -> NkiTensor:
        """Remove `dim` by picking one index (an int, or a 1-element SBUF tensor / register at runtime)."""
        self._no_indirect()
        d = self._dim(dim, "select")
        self._no_partition(d, "select")
        i = _int_value(index, "select")
        n = self.shape[d]
        if not 0 <= i < n:
            raise _idx_error(f"select index {i} is out of range for dim {d} (size {n}) of '{self.name}'", index=i, size=n)
        key = tuple(i if j == d else slice(None) for j in range(self.ndim))
        arr = self.array[key]
        wm = self.wmask[key] if self.wmask is not None else None
        if self.on_chip and arr.ndim < 2:
            arr, wm = arr[:, None], (wm[:, None] if wm is not None else None)
        return self._new(arr, wm)

    def vector_select(self, dim: int, vector_offset: Tensor) -> NkiTensor:
        """Per-partition row selection of an HBM tensor: row p of the result is row vector_offset[p] (runtime)."""
        if dim != 0:
            raise _view_error("vector_select: dim must be 0", dim=dim)
        p = vector_offset.partitions
        pattern = [[math.prod(self.storage.shape[1:]), p]] + [[s, n] for s, n in zip(_c_strides(self.storage.shape[1:]), self.storage.shape[1:])]
        return self.ap(pattern, vector_offset=vector_offset, indirect_dim=0)

    def permute(self, dims: Any) -> NkiTensor:
        self._no_indirect()
        dims = tuple(int(d) % self.ndim for d in dims)
        if sorted(dims) != list(range(self.ndim)):
            raise _view_error(f"permute: {dims} is not a permutation of the {self.ndim} dims", dims=dims)
        if self.on_chip and dims[0] != 0:
            raise _view_error(
                "permute: the partition dimension of an on-chip tensor must stay first (dims[0] == 0)",
                code="err_partition_dim_view",
                dims=dims,
            )
        return self.transposed(dims)  # type: ignore[return-value]

    def broadcast(self, dim: int, size: int) -> NkiTensor:
        self._no_indirect()
        d = self._dim(dim, "broadcast")
        self._no_partition(d, "broadcast")
        if self.shape[d] != 1:
            raise _view_error(f"broadcast: dim {d} has size {self.shape[d]}, only size-1 dims can broadcast", dim=d)
        shape = tuple(int(size) if i == d else n for i, n in enumerate(self.shape))
        strides = tuple(0 if i == d else s for i, s in enumerate(self.array.strides))
        arr = as_strided(self.array, shape, strides, writeable=False)
        wm = as_strided(self.wmask, shape, tuple(0 if i == d else s for i, s in enumerate(self.wmask.strides)),
                        writeable=False) if self.wmask is not None else None
        return self._new(arr, wm)

    def expand_dim(self, dim: int) -> NkiTensor:
        self._no_indirect()
        nd = self.ndim + 1
        if not -nd <= dim < nd:
            raise _view_error(f"expand_dim: dim {dim} out of range", dim=dim)
        d = dim % nd
        self._no_partition(d, "expand_dim")
        arr = np.expand_dims(self.array, d)
        return self._new(arr, np.expand_dims(self.wmask, d) if self.wmask is not None else None)

    def squeeze_dim(self, dim: int) -> NkiTensor:
        self._no_indirect()
        d = self._dim(dim, "squeeze_dim")
        self._no_partition(d, "squeeze_dim")
        if self.shape[d] != 1:
            raise _view_error(f"squeeze_dim: dim {d} has size {self.shape[d]}, not 1", dim=d)
        return self._new(np.squeeze(self.array, d), np.squeeze(self.wmask, d) if self.wmask is not None else None)

    def reshape_dim(self, dim: int, shape: Any) -> NkiTensor:
        """Split one dimension into `shape` (one -1 allowed)."""
        self._no_indirect()
        d = self._dim(dim, "reshape_dim")
        self._no_partition(d, "reshape_dim")
        parts = [int(s) for s in shape]
        n = self.shape[d]
        if parts.count(-1) > 1:
            raise _view_error("reshape_dim: at most one -1 is allowed", shape=tuple(parts))
        if -1 in parts:
            known = math.prod(p for p in parts if p != -1)
            if known == 0 or n % known:
                raise _view_error(f"reshape_dim: cannot split size {n} into {tuple(parts)}", shape=tuple(parts))
            parts[parts.index(-1)] = n // known
        if math.prod(parts) != n:
            raise _view_error(f"reshape_dim: {tuple(parts)} does not multiply to size {n}", shape=tuple(parts), size=n)
        new_shape = self.shape[:d] + tuple(parts) + self.shape[d + 1 :]
        return self._reshape_view(new_shape, "reshape_dim")

    def flatten_dims(self, start_dim: int, end_dim: int) -> NkiTensor:
        self._no_indirect()
        s, e = self._dim(start_dim, "flatten_dims"), self._dim(end_dim, "flatten_dims")
        if s > e:
            raise _view_error(f"flatten_dims: start_dim {s} > end_dim {e}", start_dim=s, end_dim=e)
        if self.on_chip and s == 0 and e > 0:
            raise _view_error(
                "flatten_dims: cannot merge the partition dimension of an on-chip tensor (start_dim must be > 0)",
                code="err_partition_dim_view",
                start_dim=s,
            )
        new_shape = self.shape[:s] + (math.prod(self.shape[s : e + 1]),) + self.shape[e + 1 :]
        return self._reshape_view(new_shape, "flatten_dims")

    def reshape(self, *shape: Any) -> NkiTensor:
        self._no_indirect()
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = [int(s) for s in shape]
        if shape.count(-1) == 1:
            known = math.prod(s for s in shape if s != -1)
            shape[shape.index(-1)] = self.size // known if known else 0
        shape = tuple(shape)
        if math.prod(shape) != self.size:
            raise _view_error(
                f"cannot reshape tensor '{self.name}' of shape {self.shape} ({self.size} elements) to {shape}",
                code="err_reshape_size_mismatch",
                shape=self.shape,
                new_shape=shape,
            )
        if self.on_chip and (not shape or shape[0] != self.shape[0]):
            raise _view_error(
                f"reshape of on-chip tensor '{self.name}' must keep the partition dimension {self.shape[0]}, got {shape}",
                code="err_partition_dim_view",
                new_shape=shape,
            )
        return self._reshape_view(shape, "reshape")

    def _reshape_view(self, shape: tuple[int, ...], what: str) -> NkiTensor:
        try:
            arr = self.array.view()
            arr.shape = shape  # raises instead of copying for non-contiguous layouts
            wm = None
            if self.wmask is not None:
                wm = self.wmask.view()
                wm.shape = shape
        except (AttributeError, ValueError):
            raise _view_error(
                f"{what}: the view of '{self.name}' with shape {self.shape} and element strides {self.strides} cannot "
                f"be reshaped to {shape} without a copy",
                code="err_non_contiguous_reshape",
                shape=self.shape,
                new_shape=shape,
            ) from None
        return self._new(arr, wm)

    def rearrange(self, src_pattern: Any, dst_pattern: Any, fixed_sizes: dict[str, int] | None = None) -> NkiTensor:
        """einops-style split / permute / merge: rearrange("p (a b) c", "p b a c", {"a": 4})."""
        self._no_indirect()
        src = _parse_pattern(src_pattern)
        dst = _parse_pattern(dst_pattern)
        if len(src) != self.ndim:
            raise _view_error(f"rearrange: pattern {src_pattern!r} has {len(src)} groups for a {self.ndim}-D tensor")
        sizes = dict(fixed_sizes or {})
        for group, n in zip(src, self.shape):
            unknown = [a for a in group if a not in sizes]
            known = math.prod(sizes[a] for a in group if a in sizes)
            if len(unknown) > 1:
                raise _view_error(f"rearrange: sizes of {unknown} are ambiguous; pass them in fixed_sizes")
            if unknown:
                if known == 0 or n % known:
                    raise _view_error(f"rearrange: cannot split size {n} by {known}")
                sizes[unknown[0]] = n // known
            elif known != n:
                raise _view_error(f"rearrange: group {group} has size {known}, tensor dim has {n}")
        axes = [a for g in src for a in g]
        if sorted(axes) != sorted(a for g in dst for a in g) or len(set(axes)) != len(axes):
            raise _view_error(f"rearrange: {src_pattern!r} and {dst_pattern!r} must use the same axis names once each")
        t = self._reshape_view(tuple(sizes[a] for a in axes), "rearrange")
        order = [axes.index(a) for g in dst for a in g]
        if self.on_chip and order[0] != 0:
            raise _view_error("rearrange: the partition axis of an on-chip tensor must stay first",
                              code="err_partition_dim_view")
        t = t.transposed(tuple(order))
        return t._reshape_view(tuple(math.prod(sizes[a] for a in g) for g in dst), "rearrange")  # type: ignore[attr-defined]

    def view(self, dtype: Any) -> NkiTensor:
        """Reinterpret the bits as `dtype`; the last dimension scales by the size ratio (must be contiguous)."""
        from .access import raw_view

        self._no_indirect()
        dt = dtypes.normalize(dtype)
        arr = self.array
        if dt == arr.dtype:
            return self
        if arr.ndim == 0 or (arr.shape[-1] > 1 and arr.strides[-1] != arr.itemsize):
            raise _view_error(f"view({dtypes.name_of(dt)}): the last dimension of '{self.name}' must be contiguous")
        if (arr.shape[-1] * arr.itemsize) % dt.itemsize:
            raise _view_error(
                f"view({dtypes.name_of(dt)}): last dimension of {arr.shape[-1]} x {arr.itemsize} bytes is not a "
                f"multiple of {dt.itemsize} bytes",
                shape=self.shape,
            )
        shape = arr.shape[:-1] + (arr.shape[-1] * arr.itemsize // dt.itemsize,)
        strides = arr.strides[:-1] + (dt.itemsize,)
        off = arr.__array_interface__["data"][0] - self.storage.base_ptr
        return raw_view(self, off, shape, strides, dt)

    reinterpret_cast = view

    def ap(
        self,
        pattern: Any = None,
        offset: Any = None,
        scalar_offset: Any = None,
        vector_offset: Any = None,
        indirect_dim: int = 0,
        dtype: Any = None,
    ) -> NkiTensor:
        """Raw access pattern over the flattened storage: element [i0, i1, ...] = flat[offset + sum(step_k * i_k)].

        For on-chip storages the first [step, num] pair steps over whole partitions. `scalar_offset` (a register
        or [1,1] SBUF tensor) adds value * prod(storage_shape[indirect_dim+1:]); `vector_offset` ([P,1] SBUF
        indices, HBM side only) picks a runtime row per index of the first pattern dimension."""
        from .access import access_pattern

        return access_pattern(self, pattern, offset, scalar_offset, vector_offset, indirect_dim, dtype)

    def indirect(self, index: Any, num_elem: Any = None) -> NkiTensor:
        """Tensor indirection (TI, NeuronCore-v4+): a (P, num_elem) view whose column i is column offset_i of this
        (P, F) on-chip view, for gathers (operand) and scatters (dst) of compute instructions.

        Offsets come from the SBUF integer tensor `index` (P, K) in "snake" order per group of G partitions
        (G = 16 for Vector / Scalar / GpSimd instructions, 32 for Tensor-engine instructions): in the group that
        starts at partition g, offset i is index[g + i % G, i // G], and all G partitions of the group use the
        group's offsets. `num_elem` defaults to index.size. The offsets are read when an nki.isa instruction
        consumes the view (and once at creation, for nl.* functions). Internally (a tuple of NumPy index arrays)
        this is the core gather view."""
        if isinstance(index, tuple) and all(isinstance(i, np.ndarray) for i in index):
            return Tensor.indirect(self, index)  # type: ignore[return-value]
        return TiView.create(self, index, num_elem, caller_location())

    # ------------------------------------------------------------------ queries
    def is_contiguous(self) -> bool:
        return self.index is None and self.array.flags.c_contiguous

    def is_indirect(self) -> bool:
        return self.index is not None

    def get_pattern(self) -> list[list[int]]:
        """[[step, num], ...] in elements of the storage (the view's offset is `.offset`)."""
        return [[s, n] for s, n in zip(self.strides, self.shape)]

    def _no_indirect(self) -> None:
        if self.index is not None:
            raise _view_error("views cannot be taken of an indirect (gathered) access pattern", code="err_indirect_view")

    # ------------------------------------------------------------------ Python protocol guards
    def __bool__(self) -> bool:
        raise NkiError(
            "the truth value of an NkiTensor is undefined (kernel control flow cannot depend on tensor values)",
            code="err_dynamic_control_flow_not_supported",
            hint="load the value into a register (nisa.register_load) and use nl.while_loop / nl.dynamic_range",
        )

    def __len__(self) -> int:
        return self.shape[0]

    def __iter__(self):
        raise NkiError("iterating over an NkiTensor is not supported", code="err_unsupported_iteration")

    def __array__(self, dtype=None, copy=None):
        raise NkiError(
            f"tensor '{self.name}' cannot be converted to a NumPy array inside a kernel",
            code="err_tensor_to_numpy",
            hint="return it from the kernel (or store it into an output) and inspect the result",
        )

    def __repr__(self) -> str:
        return (
            f"NkiTensor({self.storage.buffer.name}:{self.storage.name}, shape={self.shape}, "
            f"dtype={dtypes.name_of(self.dtype)})"
        )

    @property
    def element_shape(self) -> tuple[int, ...]:
        return self.shape


#: snake group size of tensor indirection per engine kind
TI_GROUP_VECTOR, TI_GROUP_TENSOR = 16, 32
#: number of live tensor-indirection views (instructions skip looking for them while it is 0)
TI_LIVE = [0]


class TiView(NkiTensor):
    """The result of `NkiTensor.indirect` (tensor indirection, NeuronCore-v4+): a gather / scatter view of shape
    (P, num_elem) over a (P, F) on-chip view. Its gather index is (re)computed from the index tensor's current
    values by `resolve(group)` whenever an instruction consumes it, with the consuming engine's group size."""

    __slots__ = ("ti_base", "ti_index", "ti_num", "ti_group", "ti_loc")

    @classmethod
    def create(cls, base: NkiTensor, index: Any, num_elem: Any, loc: Any) -> TiView:
        from ...core.errors import NkiUnsupportedError
        from ...isa import common as c

        api = "NkiTensor.indirect"
        run = current()
        c.check_nc_version(api, loc, run, 4)
        if base.index is not None:
            raise NkiValidationError(
                f"{api}: '{base.name}' is already an indirect view; indirect views cannot be re-indirected",
                code="err_indirect_view", loc=loc,
            )
        if not base.on_chip:
            raise NkiValidationError(
                f"{api}: tensor indirection addresses SBUF / PSUM tensors, '{base.name}' is in "
                f"{base.storage.buffer.name.upper()}",
                code="err_unsupported_memory", values={"tensor": base.name}, loc=loc,
                hint="for HBM gathers / scatters use .ap(vector_offset=..., indirect_dim=0) with nisa.dma_copy",
            )
        if base.ndim != 2:
            raise NkiUnsupportedError(
                f"{api}: '{base.name}' has shape {tuple(base.shape)}; the documented form gathers columns of a "
                f"(P, F) view, and how offsets address more than one free dim is not specified",
                code="err_unsupported_api", values={"shape": tuple(base.shape)}, loc=loc,
                hint="flatten the free dims first, e.g. t.flatten_dims(1, t.ndim - 1) or t.reshape((P, F))",
            )
        if not isinstance(index, Tensor):
            raise NkiTypeError(
                f"{api}: index must be an SBUF tensor of free-dim offsets, got {type(index).__name__}",
                code="err_invalid_operand", loc=loc,
            )
        if index.storage.buffer.kind != "sbuf" or index.index is not None:
            raise NkiValidationError(
                f"{api}: index must be a plain SBUF tensor, '{index.storage.name}' is "
                + ("an indirect view" if index.index is not None else f"in {index.storage.buffer.name.upper()}"),
                code="err_unsupported_memory", values={"index": index.storage.name}, loc=loc,
            )
        if not dtypes.is_int(index.dtype):
            raise NkiTypeError(
                f"{api}: index must hold integer offsets (e.g. uint16 / uint32), got {dtypes.name_of(index.dtype)}",
                code="err_unsupported_dtype", values={"index": dtypes.name_of(index.dtype)}, loc=loc,
            )
        p = base.shape[0]
        if index.ndim != 2 or index.shape[0] != p:
            raise NkiValidationError(
                f"{api}: index must have shape (P, K) with P == {p} (the partitions of '{base.name}'), got "
                f"{tuple(index.shape)}",
                code="err_shape_mismatch", values={"index": tuple(index.shape), "P": p}, loc=loc,
            )
        if p % TI_GROUP_VECTOR:
            raise NkiUnsupportedError(
                f"{api}: tensor indirection reads offsets per group of 16 (Vector / Scalar / GpSimd) or 32 (Tensor "
                f"engine) partitions; '{base.name}' has {p} partitions, and a partial group is not specified",
                code="err_unsupported_api", values={"partitions": p}, loc=loc,
                hint="use a multiple of 16 partitions (of 32 for nc_matmul operands)",
            )
        k = index.shape[1]
        if num_elem is None:
            num = index.size
            if num > TI_GROUP_TENSOR * k:
                raise NkiValidationError(
                    f"{api}: num_elem defaults to index.size = {num}, but a snake group holds at most {TI_GROUP_TENSOR} "
                    f"x {k} offsets (one index column per {TI_GROUP_TENSOR} offsets, 16 on Vector / Scalar / GpSimd); "
                    f"pass num_elem",
                    code="err_shape_mismatch", values={"index": tuple(index.shape)}, loc=loc,
                    hint=f"e.g. base.indirect(index, num_elem={16 * k}) for a Vector-engine gather",
                )
        else:
            if isinstance(num_elem, bool) or not isinstance(num_elem, (int, np.integer)) or int(num_elem) < 1:
                raise NkiValidationError(
                    f"{api}: num_elem must be a positive compile-time int, got {num_elem!r}",
                    code="err_invalid_operand", loc=loc,
                )
            num = int(num_elem)
            if num > TI_GROUP_TENSOR * k:
                raise NkiValidationError(
                    f"{api}: num_elem={num} needs {-(-num // TI_GROUP_TENSOR)} index columns even with 32-partition "
                    f"groups, index has {k}",
                    code="err_shape_mismatch", values={"num_elem": num, "index": tuple(index.shape)}, loc=loc,
                )
        v = cls.__new__(cls)
        TI_LIVE[0] += 1  # balanced by __del__
        # placeholder gather index of the right shape; resolve() fills in the offsets
        Tensor.__init__(v, base.storage, base.mem, base.array, base.wmask,
                        (np.arange(p)[:, None], np.zeros((p, num), dtype=np.int64)))
        v.oob = None
        v.ti_base, v.ti_index, v.ti_num, v.ti_group, v.ti_loc = base, index, num, 0, loc
        # offsets as of creation (what nl.* functions see); nisa instructions re-read them for their engine
        fits16 = num <= TI_GROUP_VECTOR * k or p % TI_GROUP_TENSOR
        v.resolve(TI_GROUP_VECTOR if fits16 else TI_GROUP_TENSOR, api, loc)
        return v

    def resolve(self, group: int, api: str, loc: Any) -> None:
        """Read the index tensor and point this view at the offsets for snake groups of `group` partitions."""
        from ...core.errors import NkiUnsupportedError
        from ...isa import common as c

        run = current()
        base, index, num = self.ti_base, self.ti_index, self.ti_num
        p, f = base.shape
        k = index.shape[1]
        eng = "Tensor-engine" if group == TI_GROUP_TENSOR else "Vector / Scalar / GpSimd"
        if p % group:
            raise NkiUnsupportedError(
                f"{api}: tensor indirection reads offsets per group of {group} partitions on {eng} instructions; "
                f"'{base.name}' has {p} partitions, and a partial group is not specified",
                code="err_unsupported_api", values={"partitions": p, "group": group}, loc=loc,
                hint=f"use a multiple of {group} partitions",
            )
        if num > group * k:
            raise NkiValidationError(
                f"{api}: num_elem={num} offsets need {-(-num // group)} index columns per {group}-partition group on "
                f"{eng} instructions, index has {k}",
                code="err_shape_mismatch", values={"num_elem": num, "index": tuple(index.shape), "group": group},
                loc=loc,
            )
        if not run.numerics:
            raise NkiDataDependentError(
                f"{api}: tensor indirection offsets depend on tensor values and cannot be used in timing-only mode",
                loc=loc,
            )
        vals = np.asarray(c.read_operand(index, api, "index", loc)).reshape(p, k).astype(np.int64)
        i = np.arange(num)
        rows = (np.arange(p) // group * group)[:, None] + (i % group)[None, :]
        offs = vals[rows, np.broadcast_to(i // group, rows.shape)]
        bad = (offs < 0) | (offs >= f)
        if bad.any():
            r, col = np.argwhere(bad)[0]
            raise NkiIndexError(
                f"{api}: {int(bad.sum())} tensor-indirection offsets are outside the {f} columns of '{base.name}' "
                f"(first: offset {int(offs[r, col])} for partition {int(r)}, element {int(col)}, read from "
                f"index[{int(rows[r, col])}, {int(col // group)}])",
                code="err_tensor_access_out_of_bound",
                values={"offset": int(offs[r, col]), "size": f, "index": index.storage.name}, loc=loc,
            )
        self.index = (np.arange(p)[:, None], offs)
        self._reg = None
        self.ti_group = group

    def __del__(self) -> None:
        try:
            TI_LIVE[0] -= 1
        except TypeError:  # interpreter shutdown: module globals already cleared
            pass

    def same_kind(self, storage, array, wmask, index=None):  # type: ignore[override]
        """Views derived inside the simulator are plain NkiTensors (only the user's view re-reads its index)."""
        t = NkiTensor.__new__(NkiTensor)
        Tensor.__init__(t, storage, self.mem, array, wmask, index)
        t.oob = None
        return t

    def __repr__(self) -> str:
        return (
            f"TiView({self.storage.buffer.name}:{self.storage.name}, shape={self.shape}, "
            f"dtype={dtypes.name_of(self.dtype)}, index={self.ti_index.storage.name})"
        )


def _c_strides(shape: tuple[int, ...]) -> list[int]:
    out, acc = [], 1
    for n in reversed(shape):
        out.append(acc)
        acc *= n
    return out[::-1]


def _check_slice(k: slice, n: int, dim: int, name: str, shape: tuple[int, ...]) -> slice:
    step = 1 if k.step is None else int(k.step)
    if step == 0:
        raise _view_error("slice step cannot be zero", dim=dim)
    start = None if k.start is None else _int_value(k.start, "indexing")
    stop = None if k.stop is None else _int_value(k.stop, "indexing")
    for v in (start, stop):
        if v is not None and not -n <= v <= n:
            raise _idx_error(
                f"slice {start}:{stop} is out of bounds for dim {dim} of '{name}' with size {n} (shape {shape})",
                dim=dim, start=start, stop=stop, size=n,
            )
    s = slice(start, stop, step)
    if len(range(*s.indices(n))) == 0:
        raise _idx_error(f"slice {start}:{stop}:{step} selects no element of dim {dim} of '{name}' (size {n})",
                         dim=dim, start=start, stop=stop, size=n)
    return s


_TOKEN = re.compile(r"\(|\)|[A-Za-z_][A-Za-z0-9_]*")


def _parse_pattern(pat: Any) -> list[tuple[str, ...]]:
    if isinstance(pat, (tuple, list)):
        return [tuple(g) if isinstance(g, (tuple, list)) else (g,) for g in pat]
    groups: list[tuple[str, ...]] = []
    cur: list[str] | None = None
    for tok in _TOKEN.findall(str(pat)):
        if tok == "(":
            cur = []
        elif tok == ")":
            groups.append(tuple(cur or ()))
            cur = None
        elif cur is not None:
            cur.append(tok)
        else:
            groups.append((tok,))
    return groups


def is_nki_tensor(x: Any) -> bool:
    return isinstance(x, NkiTensor)


def require_run():
    return maybe_current()
