"""GpSimd engine: 8 general-purpose SIMD cores (iota, affine_select, gathers, partition reductions, ...).

GpSimd cannot access PSUM. Costs follow the API docs' examples: a ~150-cycle start-up plus about one
cycle per element per partition.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core import dtypes
from ..core.context import current
from ..core.errors import NkiIndexError, NkiTypeError, NkiValidationError
from ..core.instruction import Engine, Instruction
from ..core.source import SourceLoc
from ..core.tensor import Tensor
from ..timing.arch import Arch
from . import alu
from . import common as c

GPSIMD_START_CYCLES = 150


def gpsimd_cost(instr: Instruction, arch: Arch) -> float:
    return (arch.extra.get("gpsimd_start_cycles", GPSIMD_START_CYCLES) + instr.free) / arch.clock_ghz["GpSimd"]


IOTA = c.spec("iota", Engine.GPSIMD, "IOTA", gpsimd_cost, "integer pattern generation")
AFFINE_SELECT = c.spec("affine_select", Engine.GPSIMD, "AFFINE_SELECT", gpsimd_cost, "select by affine predicate")


def iota(dst: Tensor, values: np.ndarray, *, loc: SourceLoc | None = None, api: str = "iota") -> Instruction:
    """Write an integer pattern (computed in int32 by the front end) into dst, cast to dst's dtype."""
    loc = loc or c.here()
    run = current()
    c.check_on_chip(dst, api, "dst", loc, ("sbuf",))
    if run.numerics:
        v = np.asarray(values, dtype=np.int64).astype(np.int32)
        dst.write(
            np.broadcast_to(v, dst.shape)
            if v.dtype.kind in "iu" and dst.dtype.kind in "iu"
            else np.broadcast_to(v, dst.shape).astype(np.float32)
        )
    return c.emit(IOTA, loc, [], [dst], partitions=dst.partitions, free=dst.free_size, out_dtype=dst.dtype)


def affine_select(
    dst: Tensor,
    predicate: np.ndarray,
    on_true: Tensor,
    on_false_value: Any,
    *,
    loc: SourceLoc | None = None,
    api: str = "affine_select",
) -> Instruction:
    """dst = on_true where the (front-end evaluated) affine predicate holds, else on_false_value."""
    loc = loc or c.here()
    run = current()
    c.check_on_chip(dst, api, "dst", loc, ("sbuf",))
    c.check_on_chip(on_true, api, "on_true_tile", loc, ("sbuf",))
    c.check_partitions_match(api, loc, on_true_tile=on_true, dst=dst)
    if on_true.size != dst.size:
        raise NkiValidationError(
            f"{api}: on_true_tile {on_true.shape} and dst {dst.shape} differ in size",
            code="err_shape_mismatch",
            values={"on_true_tile": on_true.shape, "dst": dst.shape},
            loc=loc,
        )
    if run.numerics:
        x = c.read_fp32(on_true, api, "on_true_tile", loc).reshape(dst.shape)
        pred = np.broadcast_to(np.asarray(predicate, dtype=bool), dst.shape)
        dst.write(np.where(pred, x, np.float32(on_false_value)))
    return c.emit(
        AFFINE_SELECT,
        loc,
        [on_true],
        [dst],
        partitions=dst.partitions,
        free=dst.free_size,
        in_dtype=on_true.dtype,
        out_dtype=dst.dtype,
    )


# ----------------------------------------------------------------------------------------- tensor_partition_reduce
PARTITION_REDUCE_OPS = ("add", "maximum", "bitwise_or", "bitwise_and", "average")

TENSOR_PARTITION_REDUCE = c.spec(
    "tensor_partition_reduce", Engine.GPSIMD, "PARTITION_REDUCE", gpsimd_cost, "reduce across partitions"
)


def tensor_partition_reduce(
    dst: Tensor, op: Any, data: Tensor, *, loc: SourceLoc | None = None, api: str = "tensor_partition_reduce"
) -> Instruction:
    """dst[0, ...] = op over the partitions of data (add / maximum / average in fp32, exact for integer tiles;
    bitwise_or / bitwise_and on integer bit patterns). SBUF only."""
    loc = loc or c.here()
    run = current()
    name = alu.op_name(op)
    if name not in PARTITION_REDUCE_OPS:
        raise NkiValidationError(
            f"{api}: op must be one of {', '.join(PARTITION_REDUCE_OPS)}, got {name}",
            code="err_invalid_operator",
            values={"op": name},
            loc=loc,
        )
    c.check_operands(api, loc, ("sbuf",), data=data, dst=dst)
    if dst.partitions != 1 or dst.free_size != data.free_size:
        raise NkiValidationError(
            f"{api}: dst must have 1 partition and the {data.free_size} elements per partition of data, got "
            f"{dst.shape}",
            code="err_shape_mismatch",
            values={"dst": dst.shape, "data": data.shape},
            loc=loc,
        )
    integer = dtypes.is_int(data.dtype)
    if name in alu.BITVEC and not (integer and dtypes.is_int(dst.dtype)):
        raise NkiTypeError(
            f"{api}: bit-vector operator {name} needs integer tiles, got {dtypes.name_of(data.dtype)} -> "
            f"{dtypes.name_of(dst.dtype)}",
            code="err_unsupported_dtype",
            values={"data": dtypes.name_of(data.dtype), "dst": dtypes.name_of(dst.dtype)},
            loc=loc,
        )
    p = data.partitions
    if run.numerics and p:
        raw = c.read_operand(data, api, "data", loc).reshape(p, -1)
        if name in alu.BITVEC:
            res = alu.reduce(name, raw, (0,))
        elif integer and dtypes.is_int(dst.dtype) and name in ("add", "maximum"):
            # integer partition reductions are exact on GpSimd
            res = raw.astype(np.int64).sum(axis=0) if name == "add" else raw.max(axis=0).astype(np.int64)
        else:
            x = dtypes.to_fp32(raw)
            with np.errstate(all="ignore"):
                if name == "maximum":
                    res = x.max(axis=0)
                else:
                    res = np.add.reduce(x, axis=0, dtype=np.float32)
                    if name == "average":
                        res = res / np.float32(p)
        dst.write(np.asarray(res).reshape(dst.shape))
    return c.emit(
        TENSOR_PARTITION_REDUCE,
        loc,
        [data],
        [dst],
        flops=data.size,
        partitions=p,
        free=data.free_size,
        in_dtype=data.dtype,
        out_dtype=dst.dtype,
        attrs={"op": name},
    )


# ----------------------------------------------------------------------------------------- local_gather
GPSIMD_CORES = 8
PARTITIONS_PER_CORE = 16
LOCAL_GATHER_MAX_INDICES = 4096


def local_gather_cost(instr: Instruction, arch: Arch) -> float:
    """150 + valid_indices * elem_per_idx / C GpSimd cycles, C = ((28 + t*E) / (t*E)) / min(4 / dtype_size, E)."""
    e = instr.attrs.get("num_elem_per_idx", 1)
    nv = instr.attrs.get("num_valid_indices", instr.free)
    size = instr.in_dtype.itemsize if instr.in_dtype is not None else 4
    t = 4
    cdiv = ((28 + t * e) / (t * e)) / min(4 / size, e)
    start = arch.extra.get("gpsimd_start_cycles", GPSIMD_START_CYCLES)
    return (start + nv * e / cdiv) / arch.clock_ghz["GpSimd"]


LOCAL_GATHER = c.spec("local_gather", Engine.GPSIMD, "LOCAL_GATHER", local_gather_cost, "gather within 16 partitions")


def local_gather(
    dst: Tensor,
    src_buffer: Tensor,
    index: Tensor,
    num_elem_per_idx: int = 1,
    num_valid_indices: int | None = None,
    *,
    loc: SourceLoc | None = None,
    api: str = "local_gather",
) -> Instruction:
    """Each GpSimd core (16 partitions) flattens its uint16 index slice partition-first, takes the first
    num_valid_indices, and every one of its partitions gathers num_elem_per_idx contiguous elements starting at
    each index (an element offset within the partition). dst: [P, num_valid_indices * num_elem_per_idx]."""
    loc = loc or c.here()
    run = current()
    c.check_operands(api, loc, ("sbuf",), src_buffer=src_buffer, index=index, dst=dst)
    p = c.check_partitions_match(api, loc, src_buffer=src_buffer, index=index, dst=dst)
    if p % PARTITIONS_PER_CORE:
        raise NkiValidationError(
            f"{api}: the partition count {p} must be a multiple of {PARTITIONS_PER_CORE} (one GpSimd core per 16 "
            "partitions)",
            code="err_num_partition_mismatch",
            values={"src_buffer": src_buffer.shape, "index": index.shape},
            loc=loc,
        )
    c.check_dtype(api, loc, "index", index, (dtypes.uint16,), "local_gather indices are uint16")
    if dst.dtype != src_buffer.dtype:
        raise NkiTypeError(
            f"{api}: no dtype cast: dst dtype {dtypes.name_of(dst.dtype)} must equal src_buffer dtype "
            f"{dtypes.name_of(src_buffer.dtype)}",
            code="err_unsupported_dtype",
            values={"src_buffer": dtypes.name_of(src_buffer.dtype), "dst": dtypes.name_of(dst.dtype)},
            loc=loc,
        )
    e = num_elem_per_idx
    if isinstance(e, bool) or not isinstance(e, (int, np.integer)) or e not in (1, 2, 4, 8, 16, 32):
        raise NkiValidationError(
            f"{api}: num_elem_per_idx must be one of 1, 2, 4, 8, 16, 32, got {e!r}",
            code="err_invalid_operand",
            values={"num_elem_per_idx": e},
            loc=loc,
        )
    per_core = PARTITIONS_PER_CORE * index.free_size
    if per_core > LOCAL_GATHER_MAX_INDICES:
        raise NkiValidationError(
            f"{api}: {per_core} indices per GpSimd core exceed the limit of {LOCAL_GATHER_MAX_INDICES}",
            code="err_size_of_dimension_exceed_arch_limit",
            values={"index": index.shape},
            loc=loc,
        )
    nv = per_core if num_valid_indices is None else num_valid_indices
    if isinstance(nv, bool) or not isinstance(nv, (int, np.integer)) or not 0 < nv <= per_core:
        raise NkiValidationError(
            f"{api}: num_valid_indices must be an integer in [1, {per_core}] (the indices per core), got {nv!r}",
            code="err_invalid_operand",
            values={"num_valid_indices": num_valid_indices, "index": index.shape},
            loc=loc,
        )
    nv = int(nv)
    if dst.free_size != nv * e:
        raise NkiValidationError(
            f"{api}: dst must hold num_valid_indices * num_elem_per_idx = {nv * e} elements per partition, got "
            f"shape {dst.shape}",
            code="err_shape_mismatch",
            values={"dst": dst.shape, "num_valid_indices": nv, "num_elem_per_idx": e},
            loc=loc,
        )
    f = src_buffer.free_size
    if run.numerics and p:
        src = c.read_operand(src_buffer, api, "src_buffer", loc).reshape(p, f)
        idx = c.read_operand(index, api, "index", loc).reshape(p, -1).astype(np.int64)
        out = np.empty((p, nv * e), dtype=src.dtype)
        offs = np.arange(e, dtype=np.int64)
        for core in range(p // PARTITIONS_PER_CORE):
            rows = slice(core * PARTITIONS_PER_CORE, (core + 1) * PARTITIONS_PER_CORE)
            ind = idx[rows].flatten(order="F")[:nv]
            cols = (ind[:, None] + offs[None, :]).reshape(-1)
            if cols.size and (cols.min() < 0 or cols.max() >= f):
                bad = int(ind[(ind < 0) | (ind + e > f)][0])
                raise NkiIndexError(
                    f"{api}: index {bad} (+{e} elements) of GpSimd core {core} is outside the {f} elements per "
                    "partition of src_buffer (out-of-bound gathers are undefined on hardware)",
                    values={"index": bad, "core": core, "elements_per_partition": f},
                    loc=loc,
                )
            out[rows] = src[rows][:, cols]
        dst.write(out.reshape(dst.shape))
    return c.emit(
        LOCAL_GATHER,
        loc,
        [src_buffer, index],
        [dst],
        partitions=p,
        free=nv * e,
        in_dtype=src_buffer.dtype,
        out_dtype=dst.dtype,
        attrs={"num_elem_per_idx": e, "num_valid_indices": nv},
    )


# ----------------------------------------------------------------------------------------- sequence_bounds
SEQUENCE_BOUNDS = c.spec("sequence_bounds", Engine.GPSIMD, "SEQUENCE_BOUNDS", gpsimd_cost, "segment start/end")


def sequence_bounds(
    dst: Tensor, segment_ids: Tensor, *, loc: SourceLoc | None = None, api: str = "sequence_bounds"
) -> Instruction:
    """For segment ids [1, N] write [1, 2, N]: the start index and the end index (exclusive) of each element's
    segment (a run of equal ids); id 0 is padding with start N and end -1."""
    loc = loc or c.here()
    run = current()
    for nm, t in (("segment_ids", segment_ids), ("dst", dst)):
        c.check_on_chip(c.check_tensor(t, api, nm, loc), api, nm, loc, ("sbuf",))
        c.check_dtype(api, loc, nm, t, (dtypes.float32, dtypes.int32), "sequence_bounds works on fp32 or int32")
    if segment_ids.partitions != 1 or dst.partitions != 1:
        raise NkiValidationError(
            f"{api}: the partition dimension must be 1, got segment_ids {segment_ids.shape} and dst {dst.shape}",
            code="err_num_partition_mismatch",
            values={"segment_ids": segment_ids.shape, "dst": dst.shape},
            loc=loc,
        )
    n = segment_ids.free_size
    if dst.free_size != 2 * n:
        raise NkiValidationError(
            f"{api}: dst must have shape [1, 2, {n}] for segment_ids {segment_ids.shape}, got {dst.shape}",
            code="err_shape_mismatch",
            values={"dst": dst.shape, "segment_ids": segment_ids.shape},
            loc=loc,
        )
    if run.numerics and n:
        seq = c.read_operand(segment_ids, api, "segment_ids", loc).reshape(-1)
        if np.any(seq < 0):
            raise NkiValidationError(
                f"{api}: segment ids must be non-negative, got {seq[seq < 0][0]}",
                code="err_invalid_operand",
                values={"segment_ids": segment_ids.storage.name},
                loc=loc,
            )
        change = np.ones(n, dtype=bool)
        change[1:] = seq[1:] != seq[:-1]
        run_id = np.cumsum(change) - 1
        starts = np.flatnonzero(change)
        ends = np.append(starts[1:], n)
        start = starts[run_id].astype(np.int64)
        end = ends[run_id].astype(np.int64)
        pad = seq == 0
        start[pad] = n
        end[pad] = -1
        dst.write(np.stack([start, end]).reshape(dst.shape))
    return c.emit(
        SEQUENCE_BOUNDS,
        loc,
        [segment_ids],
        [dst],
        partitions=1,
        free=n,
        in_dtype=segment_ids.dtype,
        out_dtype=dst.dtype,
    )


NC_N_GATHER = c.spec("nc_n_gather", Engine.GPSIMD, "GATHER", gpsimd_cost, "per-partition gather over flat free dims")


def nc_n_gather(
    dst: Tensor, data: Tensor, indices: Tensor, *, loc: SourceLoc | None = None, api: str = "nc_n_gather"
) -> Instruction:
    """dst[p, j] = data[p, :].flat[indices[p, j]] with uint32 indices (out-of-range indices give garbage)."""
    from ..core import dtypes
    from ..core.errors import NkiTypeError

    loc = loc or c.here()
    run = current()
    c.check_operands(api, loc, ("sbuf",), data=data, indices=indices, dst=dst)
    p = c.check_partitions_match(api, loc, data=data, indices=indices, dst=dst)
    c.check_free_match(api, loc, indices=indices, dst=dst)
    if indices.dtype != dtypes.uint32:
        raise NkiTypeError(
            f"{api}: indices must be uint32, got {dtypes.name_of(indices.dtype)}",
            code="err_unsupported_dtype",
            values={"indices": dtypes.name_of(indices.dtype)},
            loc=loc,
            hint="produce the indices as uint32 (nisa.iota(..., dtype=nl.uint32) or a uint32 load / copy)",
        )
    if run.numerics:
        d = c.read_operand(data, api, "data", loc).reshape(p, -1)
        idx = c.read_operand(indices, api, "indices", loc).reshape(p, -1).astype(np.int64)
        n = d.shape[1]
        oob = idx >= n
        vals = np.take_along_axis(d, np.minimum(idx, n - 1), axis=1)
        if oob.any():
            run.warn(
                "warn_gather_index_out_of_bounds",
                f"{api}: {int(oob.sum())} indices are >= {n} (elements per partition of 'data'); on hardware those "
                f"outputs are garbage (trnsim writes the poison value)",
                loc,
            )
            vals = np.where(oob, np.asarray(dtypes.poison_value(d.dtype), dtype=d.dtype), vals)
        dst.write(vals.reshape(dst.shape))
    return c.emit(
        NC_N_GATHER,
        loc,
        [data, indices],
        [dst],
        partitions=p,
        free=dst.free_size,
        in_dtype=data.dtype,
        out_dtype=dst.dtype,
    )


# ---------------------------------------------------------------------------------- current-API (NKI 0.6) additions
NONZERO_WITH_COUNT = c.spec("nonzero_with_count", Engine.GPSIMD, "NONZERO", gpsimd_cost, "indices of nonzeros + count")


def topk_cost(instr: Instruction, arch: Arch) -> float:
    """4 * n + K GpSimd cycles per partition (n: elements of the 16-partition snake, K: results)."""
    cycles = 4 * instr.attrs.get("n", instr.free) + instr.attrs.get("k", 0)
    return cycles / arch.clock_ghz["GpSimd"]


TOPK = c.spec("topk", Engine.GPSIMD, "TOPK", topk_cost, "top-K values/indices of a 16-partition snake")


def nonzero_with_count(
    dst: Tensor,
    src: Tensor,
    *,
    index_offset: int = 0,
    padding_val: int = -1,
    loc: SourceLoc | None = None,
    api: str = "nonzero_with_count",
) -> Instruction:
    """On partitions 0, 16, ..., 112 only: dst = [indices of nonzeros + index_offset..., padding..., count]."""
    from ..core import dtypes
    from ..core.errors import NkiTypeError

    loc = loc or c.here()
    run = current()
    c.check_nc_version(api, loc, run, 3)
    c.check_operands(api, loc, ("sbuf",), src=src, dst=dst)
    c.check_partitions_match(api, loc, src=src, dst=dst)
    if src.dtype not in (dtypes.float32, dtypes.int32) or dst.dtype != dtypes.int32:
        raise NkiTypeError(
            f"{api}: src must be float32 or int32 and dst int32, got {dtypes.name_of(src.dtype)} / "
            f"{dtypes.name_of(dst.dtype)}",
            values={"src": dtypes.name_of(src.dtype), "dst": dtypes.name_of(dst.dtype)},
            loc=loc,
        )
    n = src.free_size
    if dst.free_size != n + 1:
        raise NkiValidationError(
            f"{api}: dst must have exactly one more element per partition than src ({n + 1}), got {dst.free_size}",
            code="err_shape_mismatch",
            values={"src": src.shape, "dst": dst.shape},
            loc=loc,
        )
    p0 = src.region()[0]
    rows = [i for i in range(src.partitions) if (p0 + i) % 16 == 0]
    if run.numerics and rows:
        x = c.read_operand(src, api, "src", loc).reshape(src.partitions, n)
        out = dst.read().reshape(dst.partitions, n + 1).astype(np.int64).copy()
        for r in rows:
            nz = np.flatnonzero(x[r] != 0)
            out[r, :] = int(padding_val)
            out[r, : nz.size] = nz + int(index_offset)
            out[r, n] = nz.size
        mask = np.zeros((dst.partitions, n + 1), dtype=bool)
        mask[rows] = True
        dst.write(out.reshape(dst.shape), where=mask.reshape(dst.shape))
    return c.emit(
        NONZERO_WITH_COUNT,
        loc,
        [src],
        [dst],
        partitions=len(rows),
        free=n,
        in_dtype=src.dtype,
        out_dtype=dst.dtype,
    )


def topk(
    val_dst: Tensor, idx_dst: Tensor, src: Tensor, n: int, *, loc: SourceLoc | None = None, api: str = "topk"
) -> Instruction:
    """Per group of 16 partitions: the K largest of the n BF16 values of the group's snake (element i at partition
    i % 16, column i // 16), K = val_dst's free size, in ascending order, with their uint32 indices; every partition
    of the group receives the group's K results."""
    from ..core import dtypes
    from ..core.errors import NkiTypeError

    loc = loc or c.here()
    run = current()
    c.check_operands(api, loc, ("sbuf",), val_dst=val_dst, idx_dst=idx_dst, src=src)
    p = c.check_partitions_match(api, loc, val_dst=val_dst, idx_dst=idx_dst, src=src)
    if src.dtype != dtypes.bfloat16 or val_dst.dtype != dtypes.bfloat16 or idx_dst.dtype != dtypes.uint32:
        raise NkiTypeError(
            f"{api}: src and val_dst must be bfloat16 and idx_dst uint32",
            values={"src": dtypes.name_of(src.dtype), "val_dst": dtypes.name_of(val_dst.dtype),
                    "idx_dst": dtypes.name_of(idx_dst.dtype)},
            loc=loc,
        )
    k = val_dst.free_size
    n = int(n)
    if p % 16 or not 8 <= n < 65536 or not 1 <= k <= n or idx_dst.free_size != k or src.free_size * 16 < n:
        raise NkiValidationError(
            f"{api}: needs partitions a multiple of 16 (got {p}), 8 <= n < 65536 (got {n}), 1 <= K <= n (K={k}), "
            f"idx_dst with K elements per partition and src with at least ceil(n/16) columns",
            code="err_shape_mismatch",
            values={"src": src.shape, "val_dst": val_dst.shape, "idx_dst": idx_dst.shape, "n": n},
            loc=loc,
        )
    if run.numerics:
        x = dtypes.to_fp32(c.read_operand(src, api, "src", loc)).reshape(p, -1)
        vals = np.empty((p, k), dtype=np.float32)
        idxs = np.empty((p, k), dtype=np.uint32)
        for g in range(p // 16):
            snake = x[16 * g : 16 * g + 16].T.reshape(-1)[:n]  # element i = partition i % 16, column i // 16
            order = np.argsort(-snake, kind="stable")[:k][::-1]
            vals[16 * g : 16 * g + 16] = snake[order]
            idxs[16 * g : 16 * g + 16] = order.astype(np.uint32)
        val_dst.write(vals.reshape(val_dst.shape))
        idx_dst.write(idxs.reshape(idx_dst.shape))
    return c.emit(
        TOPK,
        loc,
        [src],
        [val_dst, idx_dst],
        partitions=p,
        free=src.free_size,
        in_dtype=src.dtype,
        out_dtype=val_dst.dtype,
        attrs={"n": n, "k": k},
    )
