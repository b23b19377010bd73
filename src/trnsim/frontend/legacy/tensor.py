"""The legacy `nki.tensor`: a core Tensor with NumPy-like subscripts, operators and tile assignment."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...core import dtypes
from ...core.context import current
from ...core.errors import NkiError, NkiIndexError, NkiValidationError
from ...core.imports import lazy_module
from ...core.memory import SBUF, Mem, Storage, allocate, allocate_tile
from ...core.source import caller_location, name_from_source
from ...core.tensor import Tensor, broadcast_shapes
from .indexing import (
    Arange1D,
    EvaluatedIndex,
    IndexExpr,
    IndexVar,
    MaskRanges,
    Predicate,
    default_position,
    positional,
    slice_for,
)


class DynSlice:
    """nl.ds(start, size): a slice whose start may be a loop index."""

    __slots__ = ("start", "size")

    def __init__(self, start: Any, size: int) -> None:
        self.start, self.size = start, int(size)

    def to_slice(self) -> slice:
        return slice(int(self.start), int(self.start) + self.size)

    def __repr__(self) -> str:
        return f"ds({self.start}, {self.size})"


_ADVANCED = (IndexExpr, EvaluatedIndex)
_DYNAMIC_OPS = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply}


class DynamicIndex(EvaluatedIndex):
    """Index values read at run time from a tile: `t[ix, idx_tile[0, i] + iy]` (the G1 dynamic-offset idiom of
    tensor_copy_dynamic_src/dst). `sources` are the tiles read, so instructions can record the dependency."""

    __slots__ = ("sources",)


def dynamic_index(tile: Tensor, name: str, expr: Any, reverse: bool = False) -> DynamicIndex:
    """`tile op index-expression` inside a subscript: the tile's integer values combined with the expression."""
    from ...core.context import current
    from ...core.errors import NkiDataDependentError

    if not current().numerics:
        raise NkiDataDependentError(
            "a tile-valued (dynamic) index depends on tensor values and cannot be used in timing-only mode",
            hint="run with full simulation (numerics) for kernels with data-dependent addressing",
        )
    vals = np.asarray(tile.read()).astype(np.int64)
    e = np.asarray(expr.evaluate(), dtype=np.int64)
    fn = _DYNAMIC_OPS[name]
    out = DynamicIndex(fn(e, vals) if reverse else fn(vals, e))
    out.sources = (tile,) + tuple(getattr(expr, "sources", ()))
    return out


def _normalize_key(key: Any, ndim: int) -> tuple:
    if not isinstance(key, tuple):
        key = (key,)
    out = []
    for k in key:
        if isinstance(k, DynSlice):
            k = k.to_slice()
        elif isinstance(k, np.integer):
            k = int(k)
        out.append(k)
    if any(k is Ellipsis for k in out):
        i = next(j for j, k in enumerate(out) if k is Ellipsis)
        fill = ndim - (len(out) - 1)
        out = out[:i] + [slice(None)] * fill + out[i + 1 :]
    return tuple(out)


def _check_advanced_key(key: tuple, name: str, on_chip: bool = False) -> None:
    """Subscript rules of the legacy API, checked where the subscript is written. Tile-valued indices on a free
    dimension of an on-chip tile are the runtime offsets of tensor_copy_dynamic_src/dst and stay legal there."""
    if any(isinstance(k, Arange1D) for k in key):
        raise NkiValidationError(
            f"tensor '{name}' is indexed with a 1-D nl.arange; lift it to 2-D with [:, None] (partition) or "
            f"[None, :] (free) first",
            code="err_1d_arange_not_supported",
        )
    if any(isinstance(k, slice) and k != slice(None) for k in key) and any(isinstance(k, _ADVANCED) for k in key):
        raise NkiValidationError(
            f"tensor '{name}': basic indexing (slices) and advanced indexing (nl.arange / nl.mgrid) cannot be mixed "
            f"in one subscript",
            code="err_unsupported_mixing_basic_advanced_tensor_indexing",
            values={"key": key},
            hint="use nl.arange for every dimension, or slices / nl.ds for every dimension",
        )
    leading = True  # tile-valued (indirect) indices may only address the access's partition (leading) dim
    for k in key:
        if k is None or isinstance(k, (int, np.integer)):
            continue
        if isinstance(k, (Tensor, LazyAccess)) and not leading and not on_chip:
            raise NkiValidationError(
                f"tensor '{name}': a tile-valued (dynamic) index is used on a free dimension; indirect indices may "
                f"only address the partition (leading) dimension of an access",
                code="err_indirect_indices_free_dim",
                values={"key": key},
            )
        if not isinstance(k, Predicate):
            leading = False


def _check_basic(shape: tuple[int, ...], key: tuple, name: str) -> None:
    if len([k for k in key if k is not None]) > len(shape):
        raise NkiIndexError(
            f"too many indices for tensor '{name}' of shape {shape}: {key!r}", values={"shape": shape, "key": key}
        )
    dim = 0
    for k in key:
        if k is None:
            continue
        n = shape[dim]
        if isinstance(k, int):
            if not -n <= k < n:
                raise NkiIndexError(
                    f"index {k} is out of bounds for axis {dim} of '{name}' with size {n}",
                    values={"index": k, "axis": dim, "size": n, "shape": shape},
                )
        elif isinstance(k, slice):
            start, stop, step = k.start, k.stop, k.step
            if (step or 1) > 0:
                if (start is not None and (start < 0 or start > n)) or (stop is not None and (stop < 0 or stop > n)):
                    raise NkiIndexError(
                        f"slice {start}:{stop} is out of bounds for axis {dim} of '{name}' with size {n}",
                        values={"slice": (start, stop), "axis": dim, "size": n, "shape": shape},
                    )
        dim += 1


def _keep_free_dims(t: Tensor, key: tuple) -> tuple:
    """On-chip tiles keep their rank under integer indexing of a free dimension: `buf[:, i]` of a [P, n] tile is
    the [P, 1] column i (NKI kernels then write it as `col[:, 0]`); integers on leading block dims (`bufs[i]`) and
    on HBM tensors drop the dimension as in NumPy."""
    st = t.storage
    if not st.buffer.on_chip or t.index is not None or not any(_is_int_key(k) for k in key):
        return key
    n_free = len(st.shape) - 1 - len(st.block_shape)
    p_axis = t.ndim - 1 - n_free
    if p_axis < 0:
        return key
    out = []
    dim = 0
    for k in key:
        if k is None:
            out.append(k)
            continue
        if dim > p_axis and _is_int_key(k):
            i = int(k) + (t.shape[dim] if int(k) < 0 else 0)
            k = slice(i, i + 1)
        out.append(k)
        dim += 1
    return tuple(out)


# (both import this module)
_language = lazy_module(__package__ + ".language")
_assign_module = lazy_module(__package__ + ".assign")


class LegacyTensor(Tensor):
    """Tensor handle of the legacy API (HBM parameters, SBUF/PSUM tiles)."""

    __slots__ = ()

    # ----------------------------------------------------------------- subscripts
    def __getitem__(self, key: Any) -> Any:
        if key is Ellipsis and self.index is None:  # `t[...]`: the same view (its box and signature carry over)
            t = self.same_kind(self.storage, self.array, self.wmask)
            t._off, t._reg, t._sig = self._off, self._reg, self._sig
            return t
        if type(key) is tuple:  # the common subscripts skip the general analysis below:
            if key and type(key[0]) is slice:
                view = self._sliced(key)  # slices `a:b` / `:` in bounds
                if view is not None:
                    return view
            for k in key:  # plain slices and ints
                tk = type(k)
                if tk is not slice and tk is not int:
                    break
            else:
                _check_basic(self.shape, key, self.storage.name)
                return self.basic_view(_keep_free_dims(self, key))
            for k in key:  # affine index expressions only (no rule of _check_advanced_key can apply)
                if type(k) is not IndexExpr:
                    break
            else:
                return LazyAccess(self, key)
        key = _normalize_key(key, self.ndim)
        if any(isinstance(k, (_ADVANCED, Tensor, LazyAccess, Predicate)) for k in key):
            _check_advanced_key(key, self.storage.name, self.storage.buffer.on_chip)
            return LazyAccess(self, key)
        if any(isinstance(k, Arange1D) for k in key):
            _check_advanced_key(key, self.storage.name)
        _check_basic(self.shape, key, self.storage.name)
        return self.basic_view(_keep_free_dims(self, key))

    def __setitem__(self, key: Any, value: Any) -> None:
        _assign_module().assign(self, key, value)

    def _sliced(self, key: tuple) -> LegacyTensor | None:
        """`self[key]` for a tuple of in-bounds `a:b` / `:` slices (the HBM tiles of nearly every load and store), or
        None for any other subscript. One pass does what `_check_basic`, `_keep_free_dims` (no integer to keep a
        dimension for) and `basic_view` do for such a key: bounds, the view, and its byte offset in the storage.

        Loops slice the same tensor with the same few bounds again and again (`lhsT[k * 128:(k + 1) * 128, ...]` for
        every n): a two-slice key's first view is kept by its bounds (`_slices`), and a later one is a new tensor on
        the same arrays, with the box and check signature the first has found by then."""
        if len(key) == 2:
            k0, k1 = key
            if type(k1) is slice:  # (the caller checked k0)
                bounds = (k0.start, k0.stop, k0.step, k1.start, k1.stop, k1.step)
                views = self._slices
                if views is None:
                    views = self._slices = {}
                else:
                    first = views.get(bounds)
                    if first is not None:
                        t = self.same_kind(self.storage, first.array, first.wmask)
                        t._off, t._reg, t._sig = first._off, first._reg, first._sig
                        return t
                t = self._slice_view(key)
                if t is not None and len(views) < 1024:
                    views[bounds] = t
                return t
        return self._slice_view(key)

    def _slice_view(self, key: tuple) -> LegacyTensor | None:
        """`_sliced` without the kept views."""
        arr = self.array
        shape = arr.shape
        if self.index is not None or len(key) > len(shape):
            return None
        off = self._off
        if off is None and arr is self.mem.data:
            off = 0
        for k, n, stride in zip(key, shape, arr.strides):
            if type(k) is not slice or k.step is not None:
                return None
            a = k.start
            b = k.stop
            if a is not None:
                if type(a) is not int or a < 0 or a > n:
                    return None
                if off is not None and a < n:
                    off += a * stride
            if b is not None and (type(b) is not int or b < 0 or b > n):
                return None
        view = arr[key]
        wm = self.wmask
        t = self.same_kind(self.storage, view, None if wm is None else wm[key])
        if off is not None and view.size:
            t._off = off
        return t

    # ----------------------------------------------------------------- tensor methods
    def reshape(self, *shape: Any, **kwargs: Any) -> LegacyTensor:
        if "shape" in kwargs and not shape:  # `t.reshape(shape=(...))`, the keyword form of the NKI API
            shape = (kwargs.pop("shape"),)
        if kwargs:
            raise TypeError(f"reshape() got unexpected keyword arguments {sorted(kwargs)}")
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        if int(math.prod(shape)) != self.size:
            raise NkiValidationError(
                f"cannot reshape tensor '{self.storage.name}' of shape {self.shape} to {tuple(shape)}",
                code="err_reshape_size_mismatch",
                values={"from": self.shape, "to": tuple(shape)},
            )
        try:
            return self.reshaped(tuple(int(s) for s in shape))  # type: ignore[return-value]
        except ValueError:
            raise NkiValidationError(
                f"cannot reshape a non-contiguous view of '{self.storage.name}' of shape {self.shape} to "
                f"{tuple(shape)} without a copy",
                code="err_unsupported_reshape",
                values={"from": self.shape, "to": tuple(shape)},
                hint="reshape the whole tensor (or copy the view into a tile) first",
            ) from None

    def view(self, dtype: Any) -> LegacyTensor:
        dt = dtypes.normalize(dtype)
        arr = self.array.view(dt)
        wm = self.wmask if (self.wmask is not None and dt.itemsize == self.array.dtype.itemsize) else None
        t = self.same_kind(self.storage, arr, wm)
        return t  # type: ignore[return-value]

    def astype(self, dtype: Any) -> Any:
        nl = _language()
        return nl.copy(self, dtype=dtype)

    def broadcast_to(self, shape: Any) -> LegacyTensor:
        return self.broadcast(tuple(shape))  # type: ignore[return-value]

    def expand_dims(self, axis: int) -> LegacyTensor:
        shp = list(self.shape)
        axis = axis if axis >= 0 else len(shp) + 1 + axis
        shp.insert(axis, 1)
        return self.reshaped(tuple(shp))  # type: ignore[return-value]

    def assert_shape(self, shape: Any) -> LegacyTensor:
        if tuple(shape) != tuple(self.shape):
            raise NkiValidationError(
                f"tensor '{self.storage.name}' has shape {self.shape}, expected {tuple(shape)}",
                code="err_annotation_shape_mismatch",
                values={"shape": self.shape, "expected": tuple(shape)},
            )
        return self

    @property
    def T(self) -> Any:
        nl = _language()
        return nl.transpose(self)

    def __bool__(self) -> bool:
        raise NkiError(
            "the truth value of a tensor is ambiguous (Python control flow cannot depend on tensor values)",
            code="err_ambiguous_tensor_truth_value" if self.size > 1 else "err_dynamic_control_flow_not_supported",
            hint="use nl.where / nisa.affine_select / masks for data-dependent selection",
        )

    def __len__(self) -> int:
        return self.shape[0]

    def __iter__(self):
        raise NkiError("iterating over a tensor is not supported inside a kernel", code="err_unsupported_iteration")

    def __array__(self, dtype=None, copy=None):
        raise NkiError(
            f"tensor '{self.storage.name}' cannot be converted to a NumPy array inside a kernel",
            code="err_tensor_to_numpy",
            hint="return it from the kernel (or store it to an output) and inspect the result",
        )

    # ----------------------------------------------------------------- operators -> nl functions
    def _bin(self, name: str, other: Any, reverse: bool = False) -> Any:
        nl = _language()
        if isinstance(other, _ADVANCED) and name in _DYNAMIC_OPS:
            return dynamic_index(self, name, other, reverse)
        fn = getattr(nl, name)
        return fn(other, self) if reverse else fn(self, other)

    def __add__(self, o):
        return self._bin("add", o)

    def __radd__(self, o):
        return self._bin("add", o, True)

    def __sub__(self, o):
        return self._bin("subtract", o)

    def __rsub__(self, o):
        return self._bin("subtract", o, True)

    def __mul__(self, o):
        return self._bin("multiply", o)

    def __rmul__(self, o):
        return self._bin("multiply", o, True)

    def __truediv__(self, o):
        return self._bin("divide", o)

    def __rtruediv__(self, o):
        return self._bin("divide", o, True)

    def __pow__(self, o):
        return self._bin("power", o)

    def __mod__(self, o):
        return self._bin("mod", o)

    def __lt__(self, o):
        return self._bin("less", o)

    def __le__(self, o):
        return self._bin("less_equal", o)

    def __gt__(self, o):
        return self._bin("greater", o)

    def __ge__(self, o):
        return self._bin("greater_equal", o)

    def __eq__(self, o):  # type: ignore[override]
        return self._bin("equal", o)

    def __ne__(self, o):  # type: ignore[override]
        return self._bin("not_equal", o)

    __hash__ = Tensor.__hash__ if hasattr(Tensor, "__hash__") else object.__hash__

    def __and__(self, o):
        return self._bin("bitwise_and", o)

    def __or__(self, o):
        return self._bin("bitwise_or", o)

    def __xor__(self, o):
        return self._bin("bitwise_xor", o)

    def __lshift__(self, o):
        return self._bin("left_shift", o)

    def __rshift__(self, o):
        return self._bin("right_shift", o)

    def __rpow__(self, o):
        return self._bin("power", o, True)

    def __rmod__(self, o):
        return self._bin("mod", o, True)

    def __rand__(self, o):
        return self._bin("bitwise_and", o, True)

    def __ror__(self, o):
        return self._bin("bitwise_or", o, True)

    def __rxor__(self, o):
        return self._bin("bitwise_xor", o, True)

    def __rlshift__(self, o):
        return self._bin("left_shift", o, True)

    def __rrshift__(self, o):
        return self._bin("right_shift", o, True)

    def __pos__(self):
        return self

    def __neg__(self):
        nl = _language()
        return nl.negative(self)

    def __invert__(self):
        nl = _language()
        return nl.invert(self)

    def __abs__(self):
        nl = _language()
        return nl.abs(self)

    def __iadd__(self, o):
        inplace = _assign_module().inplace
        return inplace(self, (Ellipsis,), "add", o)

    def __isub__(self, o):
        inplace = _assign_module().inplace
        return inplace(self, (Ellipsis,), "subtract", o)

    def __imul__(self, o):
        inplace = _assign_module().inplace
        return inplace(self, (Ellipsis,), "multiply", o)


class LazyAccess:
    """`tensor[index expressions]`, resolved by the instruction that consumes it (with its mask)."""

    __slots__ = ("base", "key", "_shape", "_plan", "_plain")
    __array_priority__ = 1000

    def __init__(self, base: LegacyTensor, key: tuple) -> None:
        self.base = base
        self.key = key
        self._shape: tuple[int, ...] | None = None
        self._plan: AccessPlan | None = None
        self._plain: Tensor | None = None  # the unmasked view, when `shape` resolved it (see `plain_view`)

    @property
    def plan(self) -> AccessPlan:
        """Where this subscript puts its index variables (see `access_plan`)."""
        pl = self._plan
        if pl is None:
            pl = self._plan = access_plan(self.key)
        return pl

    @property
    def shape(self) -> tuple[int, ...]:
        if self._shape is None:
            plain = self.plain_view()
            self._shape = tuple(plain.shape) if plain is not None else access_shape(self.base, self.key, self.plan)
        return self._shape

    def plain_view(self) -> Tensor | None:
        """The view this subscript resolves to without a mask, for subscripts of index expressions, ints and slices
        (resolved once: the shape asked before the consuming instruction comes from it, and an unmasked consumer
        reuses it). None for tile-valued indices (resolving them may read data) or when the unmasked access is
        not valid on its own (a mask of the consumer may make it valid; the consumer then reports any error)."""
        t = self._plain
        if t is None:
            base = self.base
            key = self.key
            memo = base._memo
            if memo is not None:
                # Loops subscript the same tile with the very same index-expression objects (`tiles[k][i.p, i.x]`)
                # again and again: the view is the same, so the last one is reused. Identity, not equality: index
                # expressions compare lazily (`==` builds a predicate), and they never change once built.
                mkey = memo[0]
                if len(mkey) == len(key):
                    for a, b in zip(mkey, key):
                        if a is not b:
                            break
                    else:
                        t = self._plain = memo[1]
                        return t
            for k in key:
                if isinstance(k, (Tensor, LazyAccess, EvaluatedIndex)):
                    return None
            try:
                # (the access plan is computed by resolve_access only when its caches miss)
                t, where = resolve_access(base, key, {}, [], plan=self._plan)
            except NkiError:
                return None
            if where is not None:
                return None
            self._plain = t
            base._memo = (key, t)
        return t

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def buffer(self):
        return self.base.buffer

    @property
    def storage(self):
        return self.base.storage

    @property
    def itemsize(self) -> int:
        return self.base.itemsize

    def _resolve_plain(self) -> Tensor:
        t, where = resolve_access(self.base, self.key, {}, [], plan=self.plan)
        return t

    def __setitem__(self, key: Any, value: Any) -> None:
        raise NkiError("cannot assign into an indexed access of an indexed access", code="err_unsupported_indexing")

    def __bool__(self) -> bool:
        single = int(math.prod(self.shape)) == 1
        raise NkiError(
            "the truth value of a tensor is ambiguous (Python control flow cannot depend on tensor values)",
            code="err_dynamic_control_flow_not_supported" if single else "err_ambiguous_tensor_truth_value",
            hint="use nl.where / nisa.affine_select / masks for data-dependent selection",
        )

    def _bin(self, name: str, other: Any, reverse: bool = False) -> Any:
        nl = _language()
        fn = getattr(nl, name)
        return fn(other, self) if reverse else fn(self, other)

    __add__ = LegacyTensor.__add__
    __radd__ = LegacyTensor.__radd__
    __sub__ = LegacyTensor.__sub__
    __rsub__ = LegacyTensor.__rsub__
    __mul__ = LegacyTensor.__mul__
    __rmul__ = LegacyTensor.__rmul__
    __truediv__ = LegacyTensor.__truediv__
    __rtruediv__ = LegacyTensor.__rtruediv__
    __lt__ = LegacyTensor.__lt__
    __le__ = LegacyTensor.__le__
    __gt__ = LegacyTensor.__gt__
    __ge__ = LegacyTensor.__ge__
    __eq__ = LegacyTensor.__eq__
    __ne__ = LegacyTensor.__ne__
    __hash__ = object.__hash__
    __pow__ = LegacyTensor.__pow__
    __rpow__ = LegacyTensor.__rpow__
    __mod__ = LegacyTensor.__mod__
    __rmod__ = LegacyTensor.__rmod__
    __and__ = LegacyTensor.__and__
    __rand__ = LegacyTensor.__rand__
    __or__ = LegacyTensor.__or__
    __ror__ = LegacyTensor.__ror__
    __xor__ = LegacyTensor.__xor__
    __rxor__ = LegacyTensor.__rxor__
    __lshift__ = LegacyTensor.__lshift__
    __rlshift__ = LegacyTensor.__rlshift__
    __rshift__ = LegacyTensor.__rshift__
    __rrshift__ = LegacyTensor.__rrshift__
    __neg__ = LegacyTensor.__neg__
    __invert__ = LegacyTensor.__invert__
    __abs__ = LegacyTensor.__abs__

    def __pos__(self):
        return self

    def __iadd__(self, o):
        inplace = _assign_module().inplace
        return inplace(self.base, self.key, "add", o)

    def __isub__(self, o):
        inplace = _assign_module().inplace
        return inplace(self.base, self.key, "subtract", o)

    def __imul__(self, o):
        inplace = _assign_module().inplace
        return inplace(self.base, self.key, "multiply", o)

    def __repr__(self) -> str:
        return f"LazyAccess({self.base!r}[{self.key!r}])"


# --------------------------------------------------------------------------------------------- resolution
def _index_ndim(key: tuple) -> int:
    nd = 0
    for k in key:
        if isinstance(k, _ADVANCED):
            nd = max(nd, k.ndim)
        elif isinstance(k, (Tensor, LazyAccess)):
            nd = max(nd, len(k.shape))
    return nd


def _slice_axes(key: tuple) -> list[tuple[int, slice]]:
    """(position among the indexed dims, slice) of the slices of an advanced subscript such as `t[idx, :]`:
    each slice enumerates its dim along the result axis at its own position (tile layout: P first)."""
    out = []
    pos = 0
    for k in key:
        if k is None:
            continue
        if isinstance(k, slice):
            out.append((pos, k))
        pos += 1
    return out


def _gather_ndim(key: tuple) -> int:
    sl = _slice_axes(key)
    return max(_index_ndim(key), sl[-1][0] + 1 if sl else 0)


def _slice_values(k: slice, n: int, pos: int, nd: int, ranges: dict | None = None) -> np.ndarray:
    vals = np.arange(*k.indices(n), dtype=np.int64)
    if ranges and pos in ranges:
        vals = vals[slice(*ranges[pos])]
    return vals.reshape(tuple(vals.size if a == pos else 1 for a in range(nd)))


def _grid_layout(key: tuple, nd: int, vpos: dict | None = None) -> list[int] | None:
    """Result axes (grid axes, in order) of an nl.arange / nl.mgrid subscript when they are not simply range(nd).

    A grid axis that no index expression of the subscript uses carries no data (size 1): it is dropped, so
    `x[ix, iy]` with `ix, iw, iy = nl.mgrid[0:128, 0:1, 0:N]` is a [128, N] tile, as the NKI tutorials rely on
    (tiles stay at least 2-D). A size-1 partition index on a later grid axis (`g[i_one, i_f]` with i_one on the
    last axis) becomes the leading (partition) dimension. Both only move size-1 axes: data order is unchanged."""
    if nd < 2 or not all(isinstance(k, IndexExpr) or _is_int_key(k) for k in key):
        return None
    if vpos is None:
        vpos = _var_axes(key)
    used = sorted({vpos[v] for k in key if isinstance(k, IndexExpr) for v in k.terms})
    if not used:
        return None
    keep = list(used)
    for a in range(nd):
        if len(keep) >= 2:
            break
        if a not in keep:
            keep.append(a)
    keep.sort()
    first = next((k for k in key if isinstance(k, IndexExpr)), None) if isinstance(key[0], IndexExpr) else None
    sv = first.single_var() if first is not None else None
    if sv is not None and sv[0].size == 1 and keep[0] != vpos[sv[0]]:
        keep.remove(vpos[sv[0]])
        keep.insert(0, vpos[sv[0]])
    return None if keep == list(range(nd)) else keep


def _var_axes(key: tuple) -> dict[IndexVar, int]:
    """Axis of the subscript's index space each index variable enumerates.

    Variables of one grid keep their grid axes. Grids of different rank line up as NumPy broadcasts open grids,
    from the right: with `ip, jf, _ = nl.mgrid[0:128, 0:F, 0:1]` and `kb, ks = nl.mgrid[0:512, 0:6]`,
    `t[ip, kb]` spans axes (ip, kb, -) and is a [128, 512] tile. When that makes two variables of different extents
    share an axis but lining the grids up from the left does not, the left alignment is used (older trnsim code
    mixed `[:, None]` partition indices with 3-D free indices that way)."""
    vs: dict[IndexVar, None] = {}
    for k in key:
        if isinstance(k, IndexExpr):
            vs.update(dict.fromkeys(k.terms))
    if not vs:
        return {}
    ndims = {v.ndim for v in vs}
    if len(ndims) == 1:
        return {v: v.axis for v in vs}
    top = max(ndims)
    right = {v: v.axis + top - v.ndim for v in vs}
    if _axes_consistent(right):
        return right
    left = {v: v.axis for v in vs}
    return left if _axes_consistent(left) else right


def _axes_consistent(pos: dict[IndexVar, int]) -> bool:
    sizes: dict[int, int] = {}
    for v, a in pos.items():
        if v.size != 1:
            if sizes.setdefault(a, v.size) != v.size:
                return False
    return True


class AccessPlan:
    """The index space of an advanced subscript: `nd` axes before the grid layout, the axis of each index variable
    (`vpos`), the grid layout (`layout`, see `_grid_layout`; None = all axes in order) and each variable's position
    in the resolved tile (`final`)."""

    __slots__ = ("nd", "vpos", "layout", "final")

    def __init__(self, nd: int, vpos: dict[IndexVar, int], layout: list[int] | None) -> None:
        self.nd, self.vpos, self.layout = nd, vpos, layout
        self.final = {v: (layout.index(a) if layout is not None else a) for v, a in vpos.items()}

    def pre_axis(self, pos: int) -> int | None:
        """Index-space axis of resolved-tile position `pos` (None when the position is past the index dims)."""
        if self.layout is not None:
            return self.layout[pos] if pos < len(self.layout) else None
        return pos if pos < self.nd else None

    def pre_ranges(self, ranges: dict, rank: int) -> dict[int, tuple[int, int]]:
        """A mask's ranges as ranges of index-space axes: a variable of the subscript restricts its own axis; other
        variables (`MaskRanges.pos` / `default_position` on the `rank`-D tile) and int keys restrict a position."""
        if not ranges:
            return {}
        pos = getattr(ranges, "pos", None) or {}
        out: dict[int, tuple[int, int]] = {}
        for k, r in ranges.items():
            if isinstance(k, IndexVar):
                a = self.vpos.get(k)
                if a is None:
                    p = pos.get(k)
                    if p is None:
                        p = default_position(k, rank)
                    a = self.pre_axis(p) if p is not None else None
            elif k == -1:
                out[-1] = (0, 0)
                continue
            else:
                a = self.pre_axis(k)
            if a is None:
                continue
            prev = out.get(a)
            if prev is not None:
                lo = max(prev[0], r[0])
                r = (lo, max(lo, min(prev[1], r[1])))
            out[a] = r
        return out

    def placed(self, vars_: Any, ranges: dict, rank: int) -> dict[IndexVar, int]:
        """Index-space axis of each of `vars_` (mask variables the subscript does not use: by position)."""
        pos = getattr(ranges, "pos", None) or {}
        out = {}
        for v in vars_:
            a = self.vpos.get(v)
            if a is None:
                p = pos.get(v)
                if p is None:
                    p = default_position(v, rank)
                a = self.pre_axis(p) if p is not None else None
            out[v] = a if a is not None else v.axis
        return out


#: plans of subscripts made only of index expressions, by their variables (a plan depends on nothing else)
_PLANS: dict[tuple, AccessPlan] = {}


def access_plan(key: tuple) -> AccessPlan:
    """Where the index variables of subscript `key` sit (see `_var_axes` and `_grid_layout`). Plans are read-only;
    subscripts of index expressions only share one plan per tuple of (variables, rank) of their expressions, all
    a plan depends on (IndexVar objects are immutable and compare by identity)."""
    ck: tuple | None = None
    if key and all(type(k) is IndexExpr for k in key):
        ck = tuple([(tuple(k.terms), k.ndim) for k in key])
        plan = _PLANS.get(ck)
        if plan is not None:
            return plan
    plan = _make_plan(key)
    if ck is not None:
        if len(_PLANS) >= 20_000:
            _PLANS.clear()
        _PLANS[ck] = plan
    return plan


def _make_plan(key: tuple) -> AccessPlan:
    nd = len(key)
    fast: dict[IndexVar, int] = {}
    for a, k in enumerate(key):  # the common case first: t[ip, jf], one variable per axis of one grid, in order
        if type(k) is not IndexExpr or len(k.terms) != 1:
            break
        for v in k.terms:
            if v.axis != a or v.ndim != nd:
                break
            fast[v] = a
        else:
            continue
        break
    else:
        if nd:
            return AccessPlan(nd, fast, None)
    vpos = _var_axes(key)
    nd = _gather_ndim(key)
    return AccessPlan(nd, vpos, _grid_layout(key, nd, vpos))


def _is_int_key(k: Any) -> bool:
    return isinstance(k, (int, np.integer)) and not isinstance(k, bool)


def _apply_layout(shape: tuple[int, ...], layout: list[int], nd: int) -> tuple[int, ...]:
    return tuple(shape[a] for a in layout) + tuple(shape[nd:])


def _var_shapes(k: IndexExpr, vpos: dict[IndexVar, int], nd: int) -> list[tuple[int, ...]]:
    """The shape each variable of `k` spans in the index space (broadcasting them checks their extents)."""
    return [tuple(v.size if a == vpos[v] else 1 for a in range(nd)) for v in k.terms] or [(1,) * nd]


def _index_space_shape(base: Tensor, key: tuple, plan: AccessPlan) -> tuple[int, ...]:
    """Broadcast shape of the subscript's index space (before the grid layout)."""
    shapes = []
    for k in key:
        if isinstance(k, IndexExpr):
            shapes.extend(_var_shapes(k, plan.vpos, plan.nd))
        elif isinstance(k, _ADVANCED):
            shapes.append(k.shape)
        elif isinstance(k, (Tensor, LazyAccess)):
            shapes.append(tuple(k.shape))
    slices = _slice_axes(key) if shapes else []
    nd = plan.nd if shapes else 0
    shapes = [tuple(s) + (1,) * (nd - len(s)) for s in shapes]
    shapes += [_slice_values(k, base.shape[p], p, nd).shape for p, k in slices]
    try:
        return broadcast_shapes(*shapes) if shapes else ()
    except ValueError:
        ranks = sorted({v.ndim for k in key if isinstance(k, IndexExpr) for v in k.terms})
        mixed = len(ranks) > 1
        raise NkiIndexError(
            f"the index expressions of this subscript of '{base.storage.name}' span index grids that do not "
            f"broadcast together (shapes {', '.join(str(tuple(x)) for x in shapes)})"
            + (f"; they come from nl.arange / nl.mgrid grids of different rank {ranks}" if mixed else ""),
            code="err_index_grids_do_not_broadcast",
            values={"shapes": [tuple(x) for x in shapes], "ranks": ranks},
            hint=(
                "grids of different rank line up from the right as in NumPy (a 2-D grid's axes are the last two "
                "axes of a 3-D one), so indices of different extents land on the same axis here; build the "
                "indices of one subscript from one grid, or lift them so that their axes differ"
                if mixed
                else "each nl.arange / nl.mgrid axis is one dimension of the access; two indices on the same axis "
                "must have the same extent"
            ),
        ) from None


def access_shape(base: Tensor, key: tuple, plan: AccessPlan | None = None) -> tuple[int, ...]:
    plan = plan or access_plan(key)
    shp = _index_space_shape(base, key, plan)
    n_index = len([k for k in key if k is not None])
    if plan.layout is not None:
        shp = _apply_layout(tuple(shp), plan.layout, plan.nd)
    return tuple(shp) + tuple(base.shape[n_index:])


def _operand_mask_ranges(key: tuple) -> tuple[tuple, dict, list]:
    """Split operand masks written inside a subscript (matmul style) from the index entries."""
    preds = [k for k in key if isinstance(k, Predicate)]
    if not preds:
        return key, {}, []
    rest_key = tuple(k for k in key if not isinstance(k, Predicate))
    p = preds[0]
    for q in preds[1:]:
        p = p & q
    ranges, rest, _ = p.analyse()
    return rest_key, ranges, rest


def resolve_access(
    base: LegacyTensor,
    key: tuple,
    ranges: dict,
    rest: list[tuple],
    oob_skip: bool = False,
    plan: AccessPlan | None = None,
) -> tuple[Tensor, np.ndarray | None]:
    """Turn `base[key]` into a core view restricted to the mask's box; returns (view, where-or-None).
    `ranges` restrict the subscript's own index variables wherever it uses them (other variables and int keys
    restrict positions of the result, see `AccessPlan.pre_ranges`).
    With `oob_skip` (dma_copy(oob_mode=skip)) out-of-range tile-valued indices are dropped via `where`."""
    ck = _resolve_key(base, key, ranges, rest)
    if ck is not None:
        hit = _RESOLVED.get(ck)
        if hit is not None:  # the same subscript (up to its constants) of a tile with the same layout
            consts = tuple([k.const for k in key if type(k) is IndexExpr])
            exact = hit[2]
            rec = exact.get(consts)
            if rec is not None:
                return base.from_recipe(rec), None
            rec = _shifted_recipe(base, key, hit)
            if rec is not None:
                view = base.from_recipe(rec)
                if len(exact) < 4096:
                    exact[consts] = rec[:-1] + (view.region(),)
                return view, None
    stripped, own_ranges, own_rest = _operand_mask_ranges(key)
    if stripped is not key:
        key, plan = stripped, None  # planned without the in-subscript predicates
    if own_ranges or own_rest:
        ranges = MaskRanges({**ranges, **own_ranges}, pos=getattr(ranges, "pos", None))
        rest = list(rest) + own_rest
    if not any(isinstance(k, (_ADVANCED, Tensor, LazyAccess)) for k in key):
        _check_basic(base.shape, key, base.storage.name)
        view = base.basic_view(_keep_free_dims(base, key))
        return restrict_tensor(view, ranges), None
    if plan is None:
        plan = access_plan(key)
    nd = plan.nd
    rank = nd
    outside = [v for lhs, _, rhs in rest for side in (lhs, rhs) if isinstance(side, IndexExpr) for v in side.terms]
    if any(isinstance(k, IndexVar) and k not in plan.vpos for k in list(ranges) + outside):
        rank = len(access_shape(base, key, plan))  # mask variables the subscript does not use go by position
    pranges = plan.pre_ranges(ranges, rank) if ranges else {}
    exprs_only = all(not isinstance(k, (Tensor, LazyAccess, EvaluatedIndex, slice)) for k in key)
    if any(isinstance(k, slice) and k != slice(None) for k in key) and any(isinstance(k, _ADVANCED) for k in key):
        raise NkiValidationError(
            "basic indexing (slices) and advanced indexing (nl.arange / nl.mgrid) cannot be mixed in one subscript",
            code="err_unsupported_mixing_basic_advanced_tensor_indexing",
            values={"key": key},
        )
    if exprs_only and not rest:
        single = [k.single_var() if isinstance(k, IndexExpr) else None for k in key]
        axes = [plan.vpos[s[0]] for s in single if s is not None]
        if all(s is not None or not isinstance(k, IndexExpr) or not k.terms for s, k in zip(single, key)) and len(
            set(axes)
        ) == len(axes):
            view = _fast_view(base, key, single, nd, pranges, plan)
            if ck is not None:
                rec = base.view_recipe(view)
                if rec is not None:
                    consts = tuple([k.const for k in key if type(k) is IndexExpr])
                    rec = (rec, _const_reach(base, key, single, pranges, plan), {consts: rec})
                    if len(_RESOLVED) >= 100_000:
                        _RESOLVED.clear()
                    _RESOLVED[ck] = rec
            return view, None
    return _gather_view(base, key, nd, pranges, rest, oob_skip, plan, ranges, rank)


#: resolved views of whole tiles by (tile layout, subscript signature without constants, mask box): the first
#: recipe with how far each index reaches (to move it to other constants, see `_shifted_recipe`) and the recipes
#: by constants seen so far (see `_resolve_key`)
_RESOLVED: dict[tuple, tuple] = {}


def _const_reach(base: LegacyTensor, key: tuple, single: list, pranges: dict, plan: AccessPlan) -> tuple | None:
    """Per subscript entry of a fast-view resolution: (constant, base axis, lowest and highest index it reaches
    without its constant) for index expressions, None for ints / None entries; None when some entry selects nothing
    (such a view is only reused for the very same constants)."""
    out: list[Any] = []
    dim = 0
    for k, s in zip(key, single):
        if k is None:
            out.append(None)
            continue
        if type(k) is IndexExpr:
            if s is None:
                out.append((k.const, dim, 0, 0))
            else:
                v, c = s
                lo, hi = pranges.get(plan.vpos[v], (0, v.size)) if v.size > 1 else (0, 1)
                if hi <= lo:
                    return None
                a = c * (v.start + v.step * lo)
                b = a + c * v.step * (hi - lo - 1)
                out.append((k.const, dim, min(a, b), max(a, b)))
        else:
            out.append(None)
        dim += 1
    return tuple(out)


def _shifted_recipe(base: LegacyTensor, key: tuple, hit: tuple) -> tuple | None:
    """The cached view recipe moved to this subscript's constants: a fast view of affine single-variable indices
    is the same strided view wherever the constants put it, so its start moves by sum(const delta * axis stride).
    None (resolve in full, which reports the error) when an index leaves its axis."""
    rec, reach, _exact = hit
    if reach is None:
        return None
    shape = base.array.shape
    strides = base.array.strides
    wm = base.wmask
    delta = wdelta = 0
    for k, r in zip(key, reach):
        if r is None:
            continue
        c0, dim, lo, hi = r
        c = k.const
        if c != c0:
            if lo + c < 0 or hi + c >= shape[dim]:
                return None
            delta += (c - c0) * strides[dim]
            if wm is not None:
                wdelta += (c - c0) * wm.strides[dim]
    if not delta and not wdelta:
        return rec
    cls, off, vshape, vstrides, writeable, wrec, _box = rec
    if wrec is not None:
        woff, wshape, wstrides, wwriteable = wrec
        wrec = (woff + wdelta, wshape, wstrides, wwriteable)
    return (cls, off + delta, vshape, vstrides, writeable, wrec, None)



def _resolve_key(base: LegacyTensor, key: tuple, ranges: dict, rest: list) -> tuple | None:
    """Cache key of a subscript of a whole tile made only of affine index expressions and ints under a box mask.

    The view such a subscript resolves to (or the error it raises) depends only on the tile's shape and the
    expressions' structure (variables' axis/start/step/size, coefficients, constants) and the mask box, so the view's
    position in the storage is cached (`Tensor.view_recipe`) and replayed for later subscripts with the same key,
    skipping the per-access index analysis. Anything else (slices, tile-valued indices, predicates) is not cached."""
    if rest or not base.is_whole():
        return None
    parts: list[Any] = []
    for k in key:
        if type(k) is IndexExpr:
            parts.append(k.structure())
        elif k is None or type(k) is int:
            parts.append(k)
        else:
            return None
    box: tuple = ()
    if ranges:  # a mask variable is identified by its place in the subscript; others are not cached
        order: dict[IndexVar, int] = {}  # the subscript's variables, numbered by first appearance
        for k in key:
            if type(k) is IndexExpr:
                for v in k.terms:
                    order.setdefault(v, len(order))
        sig = []
        for v, r in ranges.items():
            if isinstance(v, IndexVar):
                i = order.get(v)
                if i is None:
                    return None
                sig.append((0, i, r))
            else:
                sig.append((1, v, r))
        box = tuple(sorted(sig))
    arr = base.array
    return (
        type(base),
        arr.shape,
        arr.dtype,
        base.wmask is None,
        tuple(parts),
        box,
    )


def _fast_view(
    base: LegacyTensor, key: tuple, single: list, nd: int, ranges: dict, plan: AccessPlan | None = None
) -> Tensor:
    """A basic-slicing view for single-variable index expressions on distinct axes; `ranges` are index-space axis
    ranges (`AccessPlan.pre_ranges`)."""
    if plan is None:
        plan = access_plan(key)
    vpos = plan.vpos
    np_key: list[Any] = []
    order: list[int] = []
    dim = 0
    shape = base.shape
    for k, s in zip(key, single):
        if k is None:
            continue
        if isinstance(k, IndexExpr):
            if s is None:  # constant expression
                np_key.append(slice(k.const, k.const + 1))
                order.append(-1)
            else:
                v, c = s
                lo, hi = ranges.get(vpos[v], (0, v.size)) if v.size > 1 else (0, 1)
                np_key.append(slice_for(v, c, k.const, lo, hi, shape[dim], f"axis {dim} of '{base.storage.name}'"))
                order.append(vpos[v])
        else:
            kk = int(k)
            if not -shape[dim] <= kk < shape[dim]:
                raise NkiIndexError(
                    f"index {kk} is out of bounds for axis {dim} of '{base.storage.name}' with size {shape[dim]}",
                    values={"index": kk, "axis": dim, "size": shape[dim]},
                )
            np_key.append(kk)
        dim += 1
    view = base.basic_view(tuple(np_key))
    arr, wm = view.array, view.wmask
    n_expr = len(order)
    if any(a < 0 for a in order):
        sel = tuple(0 if a < 0 else slice(None) for a in order)
        arr = arr[sel]
        wm = wm[sel] if wm is not None else None
    var_axes = [a for a in order if a >= 0]
    perm = sorted(range(len(var_axes)), key=lambda i: var_axes[i]) + list(range(len(var_axes), arr.ndim))
    if perm != list(range(arr.ndim)):
        arr = arr.transpose(perm)
        wm = wm.transpose(perm) if wm is not None else None
    sorted_axes = sorted(var_axes)
    new_shape = [arr.shape[sorted_axes.index(a)] if a in sorted_axes else 1 for a in range(nd)]
    new_shape += list(arr.shape[len(var_axes) :])
    del n_expr
    layout = plan.layout
    if layout is not None:
        new_shape = list(_apply_layout(tuple(new_shape), layout, nd))
    if tuple(new_shape) != arr.shape:
        arr = arr.reshape(new_shape)
        wm = wm.reshape(new_shape) if wm is not None else None
    return view.same_kind(view.storage, arr, wm)


def _gather_view(
    base: LegacyTensor,
    key: tuple,
    nd: int,
    ranges: dict,
    rest: list,
    oob_skip: bool = False,
    plan: AccessPlan | None = None,
    mask_ranges: dict | None = None,
    rank: int | None = None,
) -> tuple[Tensor, np.ndarray | None]:
    """Gather indices for `base[key]`; `ranges` are index-space axis ranges (`AccessPlan.pre_ranges`) and
    `mask_ranges` the mask's own ranges (placing variables of `rest` that the subscript does not use)."""
    if plan is None:
        plan = access_plan(key)
    full = _index_space_shape(base, key, plan)[:nd] if nd else ()
    box = tuple((ranges.get(a, (0, n))[1] - ranges.get(a, (0, n))[0]) if n > 1 else 1 for a, n in enumerate(full))
    where = None
    if rest:
        rvars = [v for lhs, _, rhs in rest for side in (lhs, rhs) if isinstance(side, IndexExpr) for v in side.terms]
        axes = plan.placed(rvars, mask_ranges or {}, rank if rank is not None else nd)
        where = np.broadcast_to(Predicate.evaluate_parts(rest, ranges, axes, nd), box)
    idx = []
    dim = 0
    for k in key:
        if k is None:
            continue
        n = base.shape[dim]
        if isinstance(k, slice):
            vals = _slice_values(k, n, dim, nd, ranges)
        elif isinstance(k, IndexExpr):
            vals = k.evaluate(ranges, plan.vpos, nd)
        elif isinstance(k, _ADVANCED):
            vals = k.evaluate(ranges)
            if vals.ndim < nd:
                vals = vals.reshape(vals.shape + (1,) * (nd - vals.ndim))
        elif isinstance(k, (Tensor, LazyAccess)):
            t = k if isinstance(k, Tensor) else k._resolve_plain()
            from ...core.context import current

            run = current()
            if not run.numerics:
                from ...core.errors import NkiDataDependentError

                raise NkiDataDependentError(
                    "indirect (tile-valued) indices depend on tensor values and cannot be used in timing-only mode",
                    hint="run with full simulation (numerics) for kernels with data-dependent addressing",
                )
            tt = restrict_tensor(t, ranges)  # index-space axes: the tile's own positions
            vals = tt.read().astype(np.int64)
            if vals.ndim < nd:
                vals = vals.reshape(vals.shape + (1,) * (nd - vals.ndim))
        else:
            vals = np.asarray(int(k), dtype=np.int64)
        vals = np.broadcast_to(vals, np.broadcast_shapes(np.shape(vals), box) if box else np.shape(vals))
        if oob_skip and isinstance(k, (Tensor, LazyAccess, DynamicIndex)):
            ok = (vals >= 0) & (vals < n)
            if not ok.all():
                where = ok if where is None else (np.broadcast_to(where, ok.shape) & ok)
        check = vals if where is None else vals[np.broadcast_to(where, vals.shape)]
        if check.size and (check.min() < 0 or check.max() >= n):
            raise NkiIndexError(
                f"index values [{int(check.min())}, {int(check.max())}] are out of bounds for axis {dim} of "
                f"'{base.storage.name}' with size {n}",
                values={"range": (int(check.min()), int(check.max())), "size": n, "axis": dim},
                hint="restrict the access with mask= or clamp the indices",
            )
        if where is not None:
            vals = np.clip(vals, 0, n - 1)
        idx.append(vals)
        dim += 1
    layout = plan.layout
    if layout is not None:  # only size-1 axes move: a reshape of every index array (and of the mask)
        idx = [v.reshape(_apply_layout(np.broadcast_to(v, box).shape, layout, nd)) for v in idx]
        where = where.reshape(_apply_layout(where.shape, layout, nd)) if where is not None else None
    return base.indirect(tuple(idx)), where


def restrict_tensor(t: Tensor, ranges: dict) -> Tensor:
    """Apply a mask's ranges to an already concrete tile (broadcast axes untouched): int keys restrict positions,
    variables restrict their position in the call (`MaskRanges.pos`) or `default_position` (see `positional`)."""
    if not ranges:
        return t
    shp = t.shape
    if any(isinstance(k, IndexVar) for k in ranges):
        ranges = positional(ranges, len(shp))
    key = []
    changed = False
    for a, n in enumerate(shp):
        r = ranges.get(a)
        if r is None or n == 1:
            key.append(slice(None))
        else:
            key.append(slice(r[0], min(r[1], n)))
            changed = changed or r != (0, n)
    if -1 in ranges:  # always-false mask
        key = [slice(0, 0)] + key[1:]
        changed = True
    if not changed:
        return t
    if t.index is not None:
        return t.indirect(tuple(np.asarray(i)[tuple(key[: i.ndim])] if i.ndim else i for i in t.index))
    return t.basic_view(tuple(key))


def new_tile(
    shape: tuple[int, ...],
    dtype: Any,
    buffer=SBUF,
    name: str = "",
    pdim: int = 0,
    overwritten: bool = False,
    loc: Any = None,
) -> LegacyTensor:
    """Allocate a fresh on-chip tile (poisoned), registered with the current run. `loc`: the kernel source location
    when the caller already knows it (saves a stack walk)."""
    run = current()
    if loc is None:
        loc = caller_location(2)
    dtype = dtype if isinstance(dtype, np.dtype) else dtypes.normalize(dtype)
    numerics = run.numerics
    # `overwritten`: the caller's instruction writes every element before anything can read the tile, so
    # poisoning it first would be wasted work (written-state tracking is unchanged)
    poison = numerics and not overwritten
    if not pdim and buffer.on_chip:
        st, mem, arr, wm = allocate_tile(
            shape, dtype, buffer, name or name_from_source(loc), loc, run.core, poison, numerics
        )
    else:
        st, mem, arr, wm = allocate(
            shape,
            dtype,
            buffer,
            pdim=pdim,
            name=name or name_from_source(loc),
            loc=loc,
            core=run.core,
            fill="poison" if poison else "empty",
            track_writes=numerics,
        )
    return fresh_tile(st, mem, arr, wm)


def fresh_tile(st: Storage, mem: Mem, arr: np.ndarray, wm: np.ndarray | None) -> LegacyTensor:
    """The tensor of a newly allocated storage. A plain tile's region and operand-check signature are those of its
    layout (see core.memory.TileLayout), so they are set here instead of being worked out at its first use."""
    t = LegacyTensor(st, mem, arr, wm)
    layout = st.layout
    if layout is not None:
        t._reg = layout.full_box
        if not st.tf32:
            t._sig = layout.sigs.get(LegacyTensor)
    return t
