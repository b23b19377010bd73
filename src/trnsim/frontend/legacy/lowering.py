"""Helpers every legacy API function uses to lower a call onto ISA instructions.

A legacy call (`nl.exp(x[i_p, i_f], mask=...)`) resolves its operands under the mask's restriction,
allocates its result tile at the full (unmasked) shape, writes only the masked box, and remembers that box
(`tile.valid`) so that `t[...] = result` copies exactly the written part.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core import dtypes
from ...core.errors import NkiTypeError
from ...core.memory import SBUF, Buffer
from ...core.tensor import Tensor
from .indexing import Predicate
from .tensor import LazyAccess, LegacyTensor, new_tile, resolve_access, restrict_tensor

NO_MASK: tuple[dict, list] = ({}, [])


class MaskedView(LegacyTensor):
    """A destination view whose writes are limited by a non-separable mask."""

    __slots__ = ("where_mask",)

    def write(self, values, where=None, state=1):  # type: ignore[override]
        w = self.where_mask if where is None else (where & self.where_mask)
        super().write(values, where=np.broadcast_to(w, self.shape), state=state)


def mask_info(mask: Any) -> tuple[dict[int, tuple[int, int]], list]:
    if mask is None or mask is True:
        return NO_MASK
    if isinstance(mask, Predicate):
        ranges, rest, _ = mask.analyse()
        return ranges, rest
    raise NkiTypeError(
        f"unsupported mask {mask!r}: a mask is a comparison of nl.arange / loop index expressions joined with &",
        code="err_unsupported_expression_in_mask",
        values={"mask": mask},
    )


def is_tensorish(x: Any) -> bool:
    return isinstance(x, (Tensor, LazyAccess))


def operand(x: Any, minfo: tuple[dict, list] = NO_MASK) -> Any:
    """Resolve a tensor-like operand under the mask; scalars pass through."""
    ranges, rest = minfo
    if isinstance(x, LazyAccess):
        t, _ = resolve_access(x.base, x.key, ranges, rest)
        return t
    if isinstance(x, Tensor):
        return restrict_tensor(x, ranges)
    return x


def full_shape(*xs: Any) -> tuple[int, ...]:
    shapes = [tuple(x.shape) for x in xs if is_tensorish(x)]
    if not shapes:
        return ()
    if all(s == shapes[0] for s in shapes):
        return shapes[0]
    nd = max(len(s) for s in shapes)
    shapes = [(1,) * (nd - len(s)) + s for s in shapes]
    return tuple(np.broadcast_shapes(*shapes))


def result_tile(
    shape: tuple[int, ...],
    dtype: Any,
    minfo: tuple[dict, list] = NO_MASK,
    buffer: Buffer = SBUF,
    name: str = "",
) -> tuple[LegacyTensor, Tensor]:
    """Allocate the full result tile and return (tile, the view instructions should write)."""
    tile = new_tile(shape, dtypes.normalize(dtype), buffer=buffer, name=name)
    ranges, rest = minfo
    if not ranges and not rest:
        return tile, tile
    view = restrict_tensor(tile, ranges)
    tile.valid = (ranges, rest)
    if rest:
        where = Predicate.evaluate_parts(rest, ranges)
        mv = MaskedView.__new__(MaskedView)
        Tensor.__init__(mv, view.storage, view.mem, view.array, view.wmask, view.index)
        mv.where_mask = np.broadcast_to(where, view.shape) if where is not None else True
        view = mv
    return tile, view


def dtype_of(x: Any) -> np.dtype | None:
    if is_tensorish(x):
        return x.dtype
    return dtypes.scalar_dtype(x)


def default_binary_dtype(x: Any, y: Any) -> np.dtype:
    """Output dtype of an nl binary op: tensors' promotion; weak Python scalars do not widen tensors."""
    dx, dy = dtype_of(x), dtype_of(y)
    tx, ty = is_tensorish(x), is_tensorish(y)
    if tx and not ty:
        if isinstance(y, float) and not dtypes.is_float(dx):
            return dtypes.float32
        return dx
    if ty and not tx:
        if isinstance(x, float) and not dtypes.is_float(dy):
            return dtypes.float32
        return dy
    return dtypes.promote(dx, dy)


def as_column(x: Any, parts: int) -> bool:
    """Is x usable as a tensor_scalar operand (a scalar or a [P,1] column)?"""
    if not is_tensorish(x):
        return True
    shp = tuple(x.shape)
    return len(shp) >= 1 and shp[0] in (parts,) and int(np.prod(shp[1:])) == 1
