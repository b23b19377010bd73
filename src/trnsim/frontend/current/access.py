"""Raw access patterns (`NkiTensor.ap`) and bit-reinterpreting views over a storage's flat bytes.

An access pattern addresses the storage as one flat array of elements (of the pattern's dtype):
element [i0, i1, ...] = flat[offset + step0 * i0 + step1 * i1 + ...]. Static patterns become strided NumPy
views (no copy); runtime offsets (`scalar_offset`, `vector_offset`) become gather/scatter indices over the flat
storage, with out-of-range addresses clamped and flagged in the view's `oob` mask so that DMA instructions can
honour `oob_mode` (error / skip).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ...core import dtypes
from ...core.context import current
from ...core.errors import NkiDataDependentError, NkiIndexError, NkiTypeError, NkiValidationError
from ...core.source import caller_location
from ...core.tensor import Tensor
from ...isa.sync import Register
from .tensor import NkiTensor, _int_value


def _flat_bytes(t: Tensor) -> np.ndarray:
    data = t.mem.data
    if not data.flags.c_contiguous:
        raise NkiValidationError("storage is not contiguous", code="err_invalid_access_pattern", loc=caller_location())
    return data.reshape(-1).view(np.uint8)


def raw_view(t: NkiTensor, byte_off: int, shape: tuple[int, ...], byte_strides: tuple[int, ...], dt: np.dtype) -> NkiTensor:
    """A view of `t`'s storage bytes as `dt` with the given shape and byte strides (written-mask view where the
    element size is a whole multiple of the storage's)."""
    st, mem = t.storage, t.mem
    u8 = _flat_bytes(t)
    shape, byte_strides = tuple(int(s) for s in shape), tuple(int(s) for s in byte_strides)
    arr = as_strided(u8[byte_off:], shape + (dt.itemsize,), byte_strides + (1,)).view(dt)[..., 0]
    wm = None
    if mem.written is not None:
        old = st.dtype.itemsize
        if byte_off % old == 0 and all(s % old == 0 for s in byte_strides) and dt.itemsize % old == 0:
            r = dt.itemsize // old
            w8 = mem.written.reshape(-1)
            wstr = tuple(s // old for s in byte_strides)
            if r == 1:
                wm = as_strided(w8[byte_off // old :], shape, wstr)
            elif r in (2, 4, 8):
                wm = as_strided(w8[byte_off // old :], shape + (r,), wstr + (1,)).view(np.dtype(f"u{r}"))[..., 0]
    return NkiTensor.wrap(st, mem, arr, wm)


def _flat_view(t: NkiTensor, dt: np.dtype) -> tuple[np.ndarray, np.ndarray | None]:
    """The whole storage as a 1-D array of `dt` (plus its written mask where it maps element to element)."""
    u8 = _flat_bytes(t)
    n = u8.size // dt.itemsize
    v = raw_view(t, 0, (n,), (dt.itemsize,), dt)
    return v.array, v.wmask


def _pattern_error(msg: str, **values: Any) -> NkiValidationError:
    return NkiValidationError(msg, code="err_invalid_access_pattern", values=values, loc=caller_location(2))


def access_pattern(
    t: NkiTensor,
    pattern: Any,
    offset: Any,
    scalar_offset: Any,
    vector_offset: Any,
    indirect_dim: int,
    dtype: Any,
) -> NkiTensor:
    st = t.storage
    dt = dtypes.normalize(dtype) if dtype is not None else t.dtype
    if pattern is None:
        if offset is None and scalar_offset is None and vector_offset is None and dtype is None:
            return t
        if t.index is not None:
            raise _pattern_error("ap() without a pattern on an indirect view")
        pattern = [[s * t.itemsize // dt.itemsize, n] for s, n in zip(t.strides, t.shape)]
        if offset is None:
            offset = t.offset * t.itemsize // dt.itemsize
    try:
        pat = [(int(p[0]), int(p[1])) for p in pattern]
    except (TypeError, ValueError, IndexError):
        raise _pattern_error(f"access pattern must be a list of [step, num] pairs, got {pattern!r}") from None
    if not pat or any(n < 1 for _, n in pat):
        raise _pattern_error(f"access pattern {pattern!r} must have at least one [step, num] pair with num >= 1")
    if scalar_offset is not None and vector_offset is not None:
        raise _pattern_error("scalar_offset and vector_offset are mutually exclusive")
    off = 0 if offset is None else _int_value(offset, "ap")
    total_bytes = st.row_bytes * st.shape[0] if st.shape else st.dtype.itemsize
    total = total_bytes // dt.itemsize
    on_chip = st.buffer.on_chip
    pstride = st.row_bytes // dt.itemsize if on_chip else 0
    if on_chip and pat[0][1] > 1 and pat[0][0] != pstride:
        raise _pattern_error(
            f"for on-chip tensor '{st.name}' the first [step, num] pair must step over whole partitions "
            f"(step {pstride} elements of {dtypes.name_of(dt)}), got {list(pat[0])}",
            pattern=pattern,
            partition_stride=pstride,
        )
    shape = tuple(n for _, n in pat)
    base_shape = st.shape
    if not 0 <= indirect_dim < max(len(base_shape), 1):
        raise _pattern_error(f"indirect_dim {indirect_dim} is out of range for storage shape {base_shape}")
    row_elems = math.prod(base_shape[indirect_dim + 1 :]) * st.dtype.itemsize // dt.itemsize

    if vector_offset is not None:
        return _vector_indirect(t, pat, off, vector_offset, indirect_dim, row_elems, total, dt, shape)

    extra = 0
    if scalar_offset is not None:
        if not isinstance(scalar_offset, (Register, Tensor, int, np.integer)):
            raise NkiTypeError(
                f"scalar_offset must be a VirtualRegister or a [1, 1] SBUF tensor, got {type(scalar_offset).__name__}",
                code="err_invalid_operand",
                loc=caller_location(2),
            )
        extra = _int_value(scalar_offset, "ap(scalar_offset)") * row_elems
    lo = off + extra + sum(min(0, s * (n - 1)) for s, n in pat)
    hi = off + extra + sum(max(0, s * (n - 1)) for s, n in pat)
    if lo < 0 or hi >= total or (on_chip and not _within_partition(off + extra, pat, pstride)):
        if scalar_offset is None:
            raise NkiIndexError(
                f"access pattern {[list(p) for p in pat]} with offset {off} reaches elements [{lo}, {hi}] of "
                f"'{st.name}', which has {total} elements of {dtypes.name_of(dt)}"
                + (f" ({pstride} per partition)" if on_chip else ""),
                code="err_tensor_access_out_of_bound",
                values={"pattern": [list(p) for p in pat], "offset": off, "size": total},
                loc=caller_location(2),
            )
        # runtime offset out of bounds: every element is flagged; DMA oob_mode decides what happens
        idx = np.zeros(shape, dtype=np.int64)
        flat, fwm = _flat_view(t, dt)
        v = NkiTensor.wrap(st, t.mem, flat, fwm, (idx,))
        v.oob = np.ones(shape, dtype=bool)
        return v
    strides = tuple(s * dt.itemsize for s, _ in pat)
    return raw_view(t, (off + extra) * dt.itemsize, shape, strides, dt)


def _within_partition(start: int, pat: list[tuple[int, int]], pstride: int) -> bool:
    """The non-partition part of an on-chip pattern must stay inside one partition's row."""
    f0 = start % pstride
    lo = f0 + sum(min(0, s * (n - 1)) for s, n in pat[1:])
    hi = f0 + sum(max(0, s * (n - 1)) for s, n in pat[1:])
    return lo >= 0 and hi < pstride


def _vector_indirect(t, pat, off, vector_offset, indirect_dim, row_elems, total, dt, shape) -> NkiTensor:
    st = t.storage
    run = current()
    if st.buffer.kind != "hbm":
        raise _pattern_error(
            f"vector_offset indirection applies to HBM tensors only, '{st.name}' is in {st.buffer.name}",
            tensor=st.name,
        )
    if not isinstance(vector_offset, Tensor) or vector_offset.storage.buffer.kind != "sbuf":
        raise _pattern_error("vector_offset must be an SBUF tensor of per-partition row indices")
    if not dtypes.is_int(vector_offset.dtype):
        raise NkiTypeError(
            f"vector_offset must hold integers, got {dtypes.name_of(vector_offset.dtype)}",
            code="err_unsupported_dtype",
            loc=caller_location(3),
        )
    if not run.numerics:
        raise NkiDataDependentError(
            "vector_offset indirection depends on tensor values and cannot be used in timing-only mode",
            loc=caller_location(3),
        )
    from ...isa import common as c

    vals = c.read_operand(vector_offset, "ap(vector_offset)", "vector_offset", caller_location(3))
    rows = np.asarray(vals).reshape(vector_offset.partitions, -1).T.reshape(-1).astype(np.int64)
    if vector_offset.dtype.kind == "u":
        rows = rows.astype(np.uint64).astype(np.int64)
    n_ind = pat[indirect_dim][1]
    if rows.size < n_ind:
        raise _pattern_error(
            f"vector_offset provides {rows.size} indices but the pattern's dim {indirect_dim} has {n_ind} entries",
            indices=rows.size,
        )
    idx = np.full(shape, off, dtype=np.int64)
    for k, (s, n) in enumerate(pat):
        ar = np.arange(n, dtype=np.int64)
        term = rows[:n] * row_elems if k == indirect_dim else ar * s
        idx = idx + term.reshape(tuple(n if j == k else 1 for j in range(len(pat))))
    oob = (idx < 0) | (idx >= total)
    idx = np.clip(idx, 0, max(total - 1, 0))
    flat, fwm = _flat_view(t, dt)
    v = NkiTensor.wrap(st, t.mem, flat, fwm, (idx,))
    v.oob = oob if oob.any() else None
    return v
