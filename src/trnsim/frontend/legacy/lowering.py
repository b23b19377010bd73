"""Helpers every legacy API function uses to lower a call onto ISA instructions.

A legacy call (`nl.exp(x[i_p, i_f], mask=...)`) resolves its operands under the mask's restriction,
allocates its result tile at the full (unmasked) shape, writes only the masked box, and remembers that box
(`tile.valid`) so that `t[...] = result` copies exactly the written part.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from ...core import dtypes
from ...core.errors import NkiTypeError, NkiValidationError
from ...core.memory import SBUF, Buffer
from ...core.source import caller_location
from ...core.tensor import Tensor, broadcast_shapes
from .indexing import MaskRanges, Predicate, placement, positional
from .tensor import LazyAccess, LegacyTensor, new_tile, resolve_access, restrict_tensor

NO_MASK: tuple[dict, list] = ({}, [])


class MaskedView(LegacyTensor):
    """A destination view whose writes are limited by a non-separable mask."""

    __slots__ = ("where_mask",)

    def write(self, values, where=None, state=1):  # type: ignore[override]
        w = self.where_mask if where is None else (where & self.where_mask)
        super().write(values, where=np.broadcast_to(w, self.shape), state=state)


class MaskedOff(Exception):
    """Raised by `mask_info` for a mask no element satisfies; the API call is then not executed."""


class DeadTile:
    """What an API call returns when its mask is always false, e.g. a loop-index predicate such as
    `mask=(k * 512 <= q * 128)` in an iteration where it does not hold (trnsim runs loops eagerly, so such
    masks arrive as Python bools), or a ragged-tile mask whose box is empty. Nothing is executed or recorded;
    assigning the result (`t[...] = r`, `t[...] += r`) is a no-op, and using it as an operand is an error."""

    __slots__ = ("api",)

    def __init__(self, api: str) -> None:
        self.api = api

    def __getitem__(self, key: Any) -> DeadTile:
        return self  # indexing a masked-off result (to pass it to a call with the same mask) stays dead

    def __repr__(self) -> str:
        return f"DeadTile({self.api})"


def skip_when_masked_off(fn: Any) -> Any:
    """Wrap a legacy API function so that an always-false mask turns the call into a no-op (a DeadTile)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        mask = kwargs.get("mask")
        if mask is None or mask is True:  # (a loop-index predicate that holds arrives as True)
            try:
                return fn(*args, **kwargs)
            except MaskedOff:
                return DeadTile(fn.__name__)
        stack = _calls()
        stack.append([x for x in (*args, *kwargs.values()) if isinstance(x, LazyAccess)])
        try:
            mask_info(mask)  # decide before the call looks at its (possibly dead) operands
            return fn(*args, **kwargs)
        except MaskedOff:
            return DeadTile(fn.__name__)
        finally:
            stack.pop()

    return wrapper


_CALL_STATE = threading.local()


def _calls() -> list:
    """Indexed operands (LazyAccess arguments) of the masked API calls in progress on this thread, innermost last."""
    st = getattr(_CALL_STATE, "stack", None)
    if st is None:
        st = _CALL_STATE.stack = []
    return st


def _bind(vars_: list, sources: list) -> dict:
    """Result position of each mask variable in the first indexed operand of the call that uses it."""
    pos: dict = {}
    for src in sources:
        final = src.plan.final
        for v in vars_:
            if v not in pos and v in final:
                pos[v] = final[v]
    return pos


def wrap_masked_apis(namespace: dict[str, Any], module: str) -> None:
    """Apply `skip_when_masked_off` to every public function of `module` that takes a `mask` argument."""
    import inspect

    for name, fn in list(namespace.items()):
        if name.startswith("_") or not inspect.isfunction(fn) or fn.__module__ != module:
            continue
        if getattr(fn, "_masked_off_handled", False):  # does what skip_when_masked_off adds itself
            continue
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            continue
        if "mask" in params:
            namespace[name] = skip_when_masked_off(fn)


def _is_false(mask: Any) -> bool:
    return mask is False or (isinstance(mask, np.bool_) and not mask)


def mask_info(mask: Any) -> tuple[dict[int, tuple[int, int]], list]:
    if mask is None or mask is True or (isinstance(mask, np.bool_) and mask):
        return NO_MASK
    if _is_false(mask):
        raise MaskedOff
    if isinstance(mask, Predicate):
        ranges, rest, _ = mask.analyse()
        if -1 in ranges or any(hi <= lo for lo, hi in ranges.values()):
            raise MaskedOff
        stack = _calls()
        pos = _bind(mask.variables(), stack[-1]) if stack and stack[-1] else None
        return MaskRanges(ranges, pos=pos), rest
    raise NkiTypeError(
        f"unsupported mask {mask!r}: a mask is a comparison of nl.arange / loop index expressions joined with &",
        code="err_unsupported_expression_in_mask",
        values={"mask": mask},
    )


def is_tensorish(x: Any) -> bool:
    return isinstance(x, (Tensor, LazyAccess))


def operand(x: Any, minfo: tuple[dict, list] = NO_MASK) -> Any:
    """Resolve a tensor-like operand under the mask; scalars pass through."""
    if isinstance(x, DeadTile):
        raise NkiValidationError(
            f"an operand is the result of a {x.api} call whose mask is always false (nothing was computed)",
            code="err_read_of_masked_off_result",
            hint="give the consuming instruction the same mask, or assign the masked result into a tile first",
        )
    ranges, rest = minfo
    if isinstance(x, LazyAccess):
        if not ranges and not rest:
            t = x.plain_view()  # no mask to apply: the plain view (resolved once, see LazyAccess.plain_view)
            if t is not None:
                return _check_tile_layout(t)
        t, _ = resolve_access(x.base, x.key, ranges, rest, plan=x._plan)
        return _check_tile_layout(t)
    if isinstance(x, Tensor):
        return _check_tile_layout(restrict_tensor(x, ranges))
    return x


def _check_tile_layout(t: Tensor) -> Tensor:
    """A compute operand of a tensor with leading block dims must be one block: a tile whose first axis is the
    partition dimension (err_failed_to_infer_tile_from_local_tensor otherwise)."""
    st = t.storage
    if st.nblocks > 1 and t.index is None and st.buffer.on_chip:
        arr = t.array
        if arr.ndim and arr.shape[0] > 1 and arr.strides[0] not in (st.row_bytes, 0):
            raise NkiValidationError(
                f"tensor '{st.name}' of shape {tuple(t.shape)} is used as a tile, but its first dimension is not "
                f"the partition dimension (it has block dimensions {st.block_shape} before the partition dim)",
                code="err_failed_to_infer_tile_from_local_tensor",
                values={"tensor": st.name, "shape": tuple(t.shape)},
                hint="index the block dimensions first, e.g. t[i] or t[i, j], to get a [P, ...] tile",
            )
    return t


def full_shape(*xs: Any) -> tuple[int, ...]:
    shapes = [tuple(x.shape) for x in xs if is_tensorish(x)]
    if not shapes:
        return ()
    if all(s == shapes[0] for s in shapes):
        return shapes[0]
    nd = max(len(s) for s in shapes)
    # A tile's first dimension is always its partition dimension, so a lower-rank tile (e.g. the [P] result of
    # nl.sum(x, axis=1)) lines up with the others on the partition axis: it gets trailing size-1 free dims.
    shapes = [s + (1,) * (nd - len(s)) for s in shapes]
    try:
        return broadcast_shapes(*shapes)
    except ValueError:
        raise NkiValidationError(
            f"operand shapes {' and '.join(str(tuple(x.shape)) for x in xs if is_tensorish(x))} cannot be "
            f"broadcast to a common shape (NumPy broadcasting rules after aligning the partition dimensions)",
            code="err_shape_mismatch",
            values={"shapes": [tuple(x.shape) for x in xs if is_tensorish(x)]},
            hint="size-1 dimensions broadcast; use keepdims=True on reductions to keep a [P, 1] column",
        ) from None


def pad_rank(t: Any, nd: int) -> Any:
    """A lower-rank tile operand viewed with trailing size-1 free dims up to rank `nd` (partition-aligned, see
    `full_shape`); other values pass through."""
    if not isinstance(t, Tensor) or len(t.shape) >= nd:
        return t
    extra = (1,) * (nd - len(t.shape))
    if t.index is not None:
        return t.indirect(tuple(np.asarray(i).reshape(np.shape(i) + extra) for i in t.index))
    return t.reshaped(tuple(t.shape) + extra)


def result_tile(
    shape: tuple[int, ...],
    dtype: Any,
    minfo: tuple[dict, list] = NO_MASK,
    buffer: Buffer = SBUF,
    name: str = "",
    overwritten: bool = False,
    loc: Any = None,
) -> tuple[LegacyTensor, Tensor]:
    """Allocate the full result tile and return (tile, the view instructions should write)."""
    # `overwritten`: the calling instruction writes the whole (unmasked) tile, see new_tile
    full = overwritten and not minfo[0] and not minfo[1]
    if loc is None:
        loc = caller_location(2)
    tile = new_tile(shape, dtypes.normalize(dtype), buffer=buffer, name=name, overwritten=full, loc=loc)
    ranges, rest = minfo
    if not ranges and not rest:
        return tile, tile
    view = restrict_tensor(tile, ranges)
    tile.valid = (ranges, rest)
    if rest:
        where = where_on_tile(rest, ranges, len(shape))
        mv = MaskedView.__new__(MaskedView)
        Tensor.__init__(mv, view.storage, view.mem, view.array, view.wmask, view.index)
        mv.where_mask = np.broadcast_to(where, view.shape) if where is not None else True
        view = mv
    return tile, view


def where_on_tile(rest: list, ranges: dict, rank: int) -> np.ndarray | None:
    """A mask's non-separable parts as a boolean array over the restricted box of a `rank`-D tile that is not
    indexed by the mask's variables (they sit at their call positions, see `indexing.positional`)."""
    if not rest:
        return None
    vs = [v for lhs, _, rhs in rest for side in (lhs, rhs) for v in getattr(side, "terms", ())]
    return Predicate.evaluate_parts(rest, positional(ranges, rank), placement(vs, ranges, rank), rank)


def dtype_of(x: Any) -> np.dtype | None:
    if is_tensorish(x):
        return x.dtype
    return dtypes.scalar_dtype(x)


def default_binary_dtype(x: Any, y: Any) -> np.dtype:
    """Output dtype of an nl binary op (nki-api.md 3.2): the promotion of both operands' dtypes, where a weakly
    typed Python scalar counts as the widest hardware type (bool -> uint8, int -> int32, float -> float32), so
    `(int8 tile, 2) -> int32` and `(float16 tile, 1.2) -> float32`; typed scalars (`np.float16(2)`) keep theirs."""
    dx, dy = dtype_of(x), dtype_of(y)
    if dx is None:
        return dy if dy is not None else dtypes.float32
    if dy is None:
        return dx
    return dtypes.promote(dx, dy)


def as_column(x: Any, parts: int) -> bool:
    """Is x usable as a tensor_scalar operand (a scalar or a [P,1] column)?"""
    if not is_tensorish(x):
        return True
    shp = tuple(x.shape)
    return len(shp) >= 1 and shp[0] in (parts,) and int(math.prod(shp[1:])) == 1
