"""DMA: data movement between HBM and SBUF (dma_copy, loads, stores, DMA transposes).

Numerics: raw bytes move when dtypes match; otherwise values convert through fp32 (RNE); `dst_rmw_op=add`
accumulates into the destination in fp32. Out-of-bounds indirect rows follow `oob_mode` (error or skip).
Cost: a transfer is split over the DMA engines serving its partitions (about one engine per 8 partitions),
each moving bytes at the per-engine bandwidth scaled by an efficiency that depends on the bytes per
partition, plus a fixed descriptor/semaphore latency; queueing and shared HBM bandwidth are modelled by
the timing pass (`trnsim.timing`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core import dtypes
from ..core.context import current
from ..core.errors import NkiValidationError
from ..core.imports import lazy_module
from ..core.instruction import Engine, Instruction
from ..core.source import SourceLoc
from ..core.tensor import Tensor
from ..timing.arch import Arch
from . import common as c

# Relative DMA throughput over bytes per partition, digitised from the DMA overview figure (trn-hardware.md
# section 4, row A36). The cost rule below does not read this table: it follows from the per-descriptor
# model (max~(dma_descriptor_ns, bytes / engine bandwidth)); the table is what calibration compares against.
_EFF_X = np.array([32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768], dtype=np.float64)
_EFF_Y = np.array([0.01, 0.03, 0.05, 0.10, 0.21, 0.42, 0.81, 0.97, 0.98, 0.99, 1.00], dtype=np.float64)


_timing_model = lazy_module("trnsim.timing.model")  # (imports this module)


def dma_efficiency(bytes_per_partition: float, arch: Arch) -> float:
    """Throughput of one DMA engine on contiguous chunks of `bytes_per_partition`, relative to its peak."""
    return _timing_model().dma_efficiency(arch, bytes_per_partition)


def dma_engines_used(partitions: int, arch: Arch) -> int:
    return max(1, min(arch.dma_engines, math.ceil(partitions / max(1, arch.dma_partitions_per_engine))))


def contiguous_bytes(t: Tensor) -> int:
    """Bytes of the longest contiguous run of `t`'s innermost dimensions (the size of one DMA descriptor)."""
    item = t.itemsize
    if t.index is not None:
        return item
    arr = t.array
    run = item
    for n, s in zip(reversed(arr.shape), reversed(arr.strides)):
        if n == 1:
            continue
        if s != run:
            break
        run *= n
    return run


def dma_cost(instr: Instruction, arch: Arch) -> float:
    """ns one transfer keeps its DMA engines busy, without queueing: each engine serves its partitions'
    descriptors (one per contiguous chunk) at max~(dma_descriptor_ns, chunk bytes / engine bandwidth) each.
    The timing pass adds the fixed trigger-to-start latency, queue order and shared engine / HBM bandwidth."""
    dma_descriptor_ns = _timing_model().dma_descriptor_ns
    nbytes = instr.attrs.get("bytes", 0)
    parts = max(1, instr.partitions)
    engines = dma_engines_used(parts, arch)
    bpp = nbytes / parts
    desc = min(float(instr.attrs.get("desc_bytes") or bpp), bpp) if bpp > 0 else 1.0
    per_engine_parts = math.ceil(parts / engines)
    t = per_engine_parts * math.ceil(bpp / max(desc, 1e-9)) * dma_descriptor_ns(arch, desc)
    if instr.attrs.get("transpose"):
        t /= max(arch.dma_transpose_efficiency, 1e-3)
    return t


DMA_COPY = c.spec("dma_copy", Engine.DMA, "DMA", dma_cost, "HBM<->SBUF transfer")
DMA_TRANSPOSE = c.spec("dma_transpose", Engine.DMA, "DMA_TRANSPOSE", dma_cost, "transpose while moving")


def _side_partitions(t: Tensor) -> int:
    return t.partitions if t.storage.buffer.on_chip else 0


def _check_dma_operands(dst: Tensor, src: Tensor, allow_psum_src: bool, sizes_must_match: bool, api: str, loc) -> None:
    """Memories, partition counts and element counts a DMA transfer accepts."""
    for nm, t in (("dst", dst), ("src", src)):
        kind = t.storage.buffer.kind
        allowed = ("hbm", "sbuf", "psum") if (nm == "src" and allow_psum_src) else ("hbm", "sbuf")
        if kind not in allowed:
            raise NkiValidationError(
                f"{api}: '{nm}' cannot be in {kind.upper()} (allowed: {', '.join(a.upper() for a in allowed)})",
                code="err_unsupported_memory",
                values={nm: t.storage.name},
                loc=loc,
            )
        if t.storage.buffer.on_chip and t.partitions > c.PMAX:
            raise NkiValidationError(
                f"{api}: size of partition dimension {t.partitions} of '{nm}' exceeds architecture limitation of 128",
                code="err_num_partition_exceed_arch_limit",
                values={nm: t.shape},
                loc=loc,
            )
    if src.size != dst.size and sizes_must_match:
        raise NkiValidationError(
            f"{api}: source and destination element counts differ ({src.size} vs {dst.size}): src {src.shape}, "
            f"dst {dst.shape}",
            code="err_shape_mismatch",
            values={"src": src.shape, "dst": dst.shape},
            loc=loc,
        )


def dma_copy(
    dst: Tensor,
    src: Tensor,
    *,
    dst_rmw_op: Any = None,
    where: np.ndarray | None = None,
    queue: str | None = None,
    dge_mode: str = "unknown",
    oob_mode: str = "error",
    allow_psum_src: bool = True,
    opcode_spec: c.InstrSpec = DMA_COPY,
    values: np.ndarray | None = None,
    loc: SourceLoc | None = None,
    api: str = "dma_copy",
) -> Instruction:
    """dst = src through the DMA engines (element counts must match; dtype conversion through fp32)."""
    loc = loc or c.here()
    run = current()
    dst = c.check_tensor(dst, api, "dst", loc)
    src = c.check_tensor(src, api, "src", loc)
    key = c.check_key("dma_copy", (allow_psum_src, values is None), dst, src)
    shape_facts = c.cached_checks(run, key)  # (partitions, bytes, free size, descriptor bytes, direction)
    if shape_facts is None:
        _check_dma_operands(dst, src, allow_psum_src, values is None, api, loc)
        sb = dst if dst.storage.buffer.on_chip else src
        shape_facts = (
            sb.partitions if sb.storage.buffer.on_chip else min(c.PMAX, dst.shape[0] if dst.shape else 1),
            dst.size * dst.itemsize,
            dst.free_size,
            min(contiguous_bytes(src), contiguous_bytes(dst)),
            f"{src.storage.buffer.kind}->{dst.storage.buffer.kind}",
        )
        c.remember_checks(run, key, shape_facts)
    parts, nbytes, free, desc_bytes, direction = shape_facts
    rmw = ""
    if dst_rmw_op is not None:
        from . import alu  # (only read-modify-write DMAs need it; a function-level import costs on every call)

        rmw = alu.op_name(dst_rmw_op)
    if run.numerics:
        v = values if values is not None else c.read_operand(src, api, "src", loc)
        v = v.reshape(dst.shape) if v.size == dst.size else np.broadcast_to(v, dst.shape)
        if rmw:  # (`alu` was imported above with the op)
            prev = dtypes.to_fp32(dst.read())
            v = alu.apply_binary(rmw, prev, dtypes.to_fp32(v))
        elif v.dtype != dst.dtype:
            v = dtypes.to_fp32(v)
        dst.write(v, where=where)
    q = queue or ("qSyncIO" if dge_mode in ("unknown", "none", "hwdge") else "qGpSimdDynamic")
    return c.emit(
        opcode_spec,
        loc,
        [src] + ([dst] if rmw else []),
        [dst],
        partitions=parts,
        free=free,
        in_dtype=src.storage.dtype,
        out_dtype=dst.storage.dtype,
        attrs={
            "bytes": nbytes,
            "queue": q,
            "dge_mode": dge_mode,
            "direction": direction,
            "transpose": opcode_spec is DMA_TRANSPOSE,
            "rmw": rmw,
            "src_name": src.storage.name,
            "src_is_param": src.storage.is_param,
            "desc_bytes": desc_bytes,
        },
        run=run,
    )


def dma_transpose(
    dst: Tensor,
    src: Tensor,
    *,
    axes: tuple[int, ...] | None = None,
    loc: SourceLoc | None = None,
    api: str = "dma_transpose",
) -> Instruction:
    """Transpose while moving (2-D (1,0), 3-D (2,1,0), 4-D (3,1,2,0) permutations)."""
    loc = loc or c.here()
    run = current()
    nd = src.ndim
    if axes is None:
        axes = {2: (1, 0), 3: (2, 1, 0), 4: (3, 1, 2, 0)}.get(nd)
        if axes is None:
            raise NkiValidationError(
                f"{api}: unsupported rank {nd}",
                code="err_exceed_max_supported_dimension",
                values={"src": src.shape},
                loc=loc,
            )
    axes = tuple(axes)
    want = tuple(src.shape[a] for a in axes)
    if tuple(dst.shape) != want and int(math.prod(dst.shape)) != int(math.prod(want)):
        raise NkiValidationError(
            f"{api}: dst shape {dst.shape} must equal the transposed source shape {want}",
            code="err_shape_mismatch",
            values={"dst": dst.shape, "src": src.shape, "axes": axes},
            loc=loc,
        )
    values = None
    if run.numerics:
        values = np.transpose(c.read_operand(src, api, "src", loc), axes)
    return dma_copy(dst, src, values=values, opcode_spec=DMA_TRANSPOSE, loc=loc, api=api)


DMA_ATOMIC_RMW = c.spec("atomic_rmw", Engine.DMA, "DMA_RMW", dma_cost, "atomic dst = op(dst, src) into HBM")
SPMD_ALL_REDUCE = c.spec(
    "spmd_all_reduce", Engine.DMA, "ALL_REDUCE", dma_cost, "reduce a tile across the SPMD programs of a grid"
)


def atomic_rmw(
    dst: Tensor, src: Any, op: Any, *, loc: SourceLoc | None = None, api: str = "atomic_rmw"
) -> Instruction:
    """Atomic dst = op(dst, src) on HBM (op: add). Repeated destination indices all take effect, in order."""
    from . import alu

    loc = loc or c.here()
    run = current()
    dst = c.check_tensor(dst, api, "dst", loc)
    if dst.storage.buffer.kind != "hbm":
        raise NkiValidationError(
            f"{api}: 'dst' must be an HBM tensor, but '{dst.storage.name}' is in {dst.storage.buffer.name.upper()}",
            code="err_unsupported_memory",
            values={"dst": dst.storage.name},
            loc=loc,
        )
    name = alu.op_name(op)
    if name != "add":
        raise NkiValidationError(
            f"{api}: only add (np.add / nl.add) is supported as the atomic operation, got {name}",
            code="err_unsupported_atomic_operation",
            values={"op": name},
            loc=loc,
        )
    if isinstance(src, Tensor):
        c.check_on_chip(src, api, "value", loc, ("sbuf", "psum"))
        if src.size != dst.size:
            try:
                np.broadcast_shapes(tuple(src.shape), tuple(dst.shape))
            except ValueError:
                raise NkiValidationError(
                    f"{api}: value shape {src.shape} does not match the destination access {dst.shape}",
                    code="err_shape_mismatch",
                    values={"value": src.shape, "dst": dst.shape},
                    loc=loc,
                ) from None
    if run.numerics:
        v = c.read_operand(src, api, "value", loc) if isinstance(src, Tensor) else np.asarray(src)
        exact = dtypes.is_int(dst.dtype) and v.dtype.kind in "iub"
        v = v.astype(np.int64) if exact else dtypes.to_fp32(np.asarray(v))
        v = v.reshape(dst.shape) if v.size == dst.size else np.broadcast_to(v, dst.shape)
        if dst.index is None:
            prev = dst.read().astype(np.int64) if exact else dst.read_fp32()
            dst.write(prev + v)
        else:
            acc = dst.array.astype(np.int64 if exact else np.float32)
            np.add.at(acc, dst.index, v)
            dst.write(acc[dst.index])
    parts = min(c.PMAX, dst.shape[0] if dst.shape else 1)
    return c.emit(
        DMA_ATOMIC_RMW,
        loc,
        [src] if isinstance(src, Tensor) else [],
        [dst],
        partitions=parts,
        free=dst.free_size,
        in_dtype=src.dtype if isinstance(src, Tensor) else None,
        out_dtype=dst.dtype,
        accumulate=True,
        attrs={"bytes": 2 * dst.size * dst.itemsize, "queue": "qGpSimdDynamic", "direction": "sbuf->hbm", "rmw": name},
    )


def spmd_all_reduce(
    dst: Tensor,
    src: Tensor,
    contributions: list[np.ndarray] | None,
    op: Any,
    *,
    group_size: int,
    loc: SourceLoc | None = None,
    api: str = "all_reduce",
) -> Instruction:
    """dst = op-reduction (fp32) of `contributions`: one array per program of the reduction group, in program
    order, this program's own `src` values among them (None in timing-only runs). This is the legacy
    `nl.all_reduce` over the programs of an SPMD grid (which run one after another on one core, so each program
    emits its own record); collectives between the ranks of an LNC launch are `isa/collectives.py`."""
    from . import alu

    loc = loc or c.here()
    run = current()
    name = alu.op_name(op)
    if name not in ("add", "multiply", "maximum", "minimum"):
        raise NkiValidationError(
            f"{api}: reduction operator must be add, multiply, maximum or minimum, got {name}",
            code="err_invalid_operator",
            values={"op": name},
            loc=loc,
        )
    c.check_operands(api, loc, x=src, dst=dst)
    c.check_partitions_match(api, loc, x=src, dst=dst)
    c.check_free_match(api, loc, x=src, dst=dst)
    if run.numerics:
        if contributions is None:
            contributions = [c.read_operand(src, api, "x", loc)]
        stack = np.stack([dtypes.to_fp32(np.asarray(a)).reshape(dst.shape) for a in contributions])
        dst.write(alu.reduce(name, stack, (0,)))
    nbytes = dst.size * dst.itemsize
    moved = nbytes if group_size <= 1 else int(2 * (group_size - 1) * nbytes / group_size)
    return c.emit(
        SPMD_ALL_REDUCE,
        loc,
        [src],
        [dst],
        partitions=dst.partitions,
        free=dst.free_size,
        in_dtype=src.dtype,
        out_dtype=dst.dtype,
        attrs={"bytes": moved, "queue": "qCollective", "direction": "sbuf->sbuf", "op": name, "group": group_size},
    )


# ---------------------------------------------------------------------------------- current-API DMA instructions
DMA_COMPUTE = c.spec("dma_compute", Engine.DMA, "DMA_COMPUTE", dma_cost, "dst = sum(srcs) computed in the DMA engines")
SENDRECV = c.spec("sendrecv", Engine.DMA, "SENDRECV", dma_cost, "SBUF -> peer core SBUF transfer (LNC=2)")

#: bytes per partition the GpSimd SB-to-SB DMA of sendrecv(dma_engine=gpsimd_dma) can move, by element size
GPSIMD_DMA_LIMIT = {4: 1024, 2: 512, 1: 256}


def dma_compute(
    dst: Tensor,
    srcs: list[Tensor],
    reduce_op: Any,
    *,
    scales: list[float] | None = None,
    where: np.ndarray | None = None,
    loc: SourceLoc | None = None,
    api: str = "dma_compute",
) -> Instruction:
    """dst = reduce_op(srcs[0] * scales[0], srcs[1] * scales[1], ...) in fp32 inside the DMA engines."""
    from . import alu

    loc = loc or c.here()
    run = current()
    dst = c.check_tensor(dst, api, "dst", loc)
    srcs = [c.check_tensor(s, api, f"srcs[{i}]", loc) for i, s in enumerate(srcs)]
    if not srcs or len(srcs) > 16:
        raise NkiValidationError(
            f"{api}: needs 1 to 16 source tensors, got {len(srcs)}",
            code="err_invalid_operand",
            values={"num_srcs": len(srcs)},
            loc=loc,
        )
    op = alu.op_name(reduce_op)
    if op != "add":
        raise NkiValidationError(
            f"{api}: only reduce_op=nl.add is supported, got {op}",
            code="err_invalid_operator",
            values={"reduce_op": op},
            loc=loc,
        )
    scales = [1.0] * len(srcs) if scales is None else [float(s) for s in scales]
    if len(scales) != len(srcs) or any(s != 1.0 for s in scales):
        raise NkiValidationError(
            f"{api}: scales must be None or all 1.0 (one per source), got {scales}",
            code="err_invalid_operand",
            values={"scales": scales},
            loc=loc,
        )
    for i, t in enumerate([dst] + srcs):
        nm = "dst" if i == 0 else f"srcs[{i - 1}]"
        if t.storage.buffer.kind not in ("hbm", "sbuf"):
            raise NkiValidationError(
                f"{api}: '{nm}' must be in HBM or SBUF, not {t.storage.buffer.name.upper()}",
                code="err_unsupported_memory",
                values={nm: t.storage.name},
                loc=loc,
            )
        if t.size != dst.size:
            raise NkiValidationError(
                f"{api}: element counts differ: dst {dst.shape} vs {nm} {t.shape}",
                code="err_shape_mismatch",
                values={"dst": dst.shape, nm: t.shape},
                loc=loc,
            )
    if run.numerics:
        acc = np.zeros(dst.size, dtype=np.float32)
        for i, s in enumerate(srcs):
            acc = acc + dtypes.to_fp32(c.read_operand(s, api, f"srcs[{i}]", loc)).reshape(-1)
        dst.write(acc.reshape(dst.shape), where=where)
    sb = dst if dst.storage.buffer.on_chip else srcs[0]
    parts = sb.partitions if sb.storage.buffer.on_chip else min(c.PMAX, dst.shape[0] if dst.shape else 1)
    return c.emit(
        DMA_COMPUTE,
        loc,
        srcs,
        [dst],
        partitions=parts,
        free=dst.free_size,
        flops=dst.size * max(len(srcs) - 1, 1),
        in_dtype=srcs[0].dtype,
        out_dtype=dst.dtype,
        attrs={
            "bytes": dst.size * dst.itemsize * (len(srcs) + 1),
            "queue": "qGpSimdDynamic",
            "direction": f"{srcs[0].storage.buffer.kind}->{dst.storage.buffer.kind}",
            "rmw": op,
        },
    )


def sendrecv(
    dst: Tensor,
    src: Tensor,
    *,
    src_core: int,
    dst_core: int,
    pipe_id: int = 0,
    dma_engine: str = "dma",
    loc: SourceLoc | None = None,
    api: str = "sendrecv",
) -> Instruction:
    """Move `src` (SBUF of core `src_core`) into `dst` (SBUF of core `dst_core`); emitted as a record of src_core.

    The pairing of the two cores' sendrecv calls is done by the launcher; this is the data movement."""
    loc = loc or c.here()
    run = current()
    c.check_nc_version(api, loc, run, 3)
    c.check_in_sbuf(api, loc, src=src, dst=dst)
    if src.dtype != dst.dtype or tuple(src.shape) != tuple(dst.shape):
        raise NkiValidationError(
            f"{api}: src of core {src_core} ({tuple(src.shape)}, {dtypes.name_of(src.dtype)}) and dst of core "
            f"{dst_core} ({tuple(dst.shape)}, {dtypes.name_of(dst.dtype)}) must have the same shape and dtype",
            code="err_shape_mismatch",
            values={"src": (tuple(src.shape), dtypes.name_of(src.dtype)), "dst": (tuple(dst.shape), dtypes.name_of(dst.dtype))},
            loc=loc,
        )
    per_partition = src.free_size * src.itemsize
    if dma_engine == "gpsimd_dma":
        limit = GPSIMD_DMA_LIMIT.get(src.itemsize, 256)
        if per_partition > limit:
            raise NkiValidationError(
                f"{api}: dma_engine=gpsimd_dma moves at most {limit} bytes per partition for "
                f"{8 * src.itemsize}-bit data, got {per_partition}",
                code="err_size_of_dimension_exceed_arch_limit",
                values={"bytes_per_partition": per_partition, "limit": limit},
                loc=loc,
            )
    if run.numerics:
        dst.write(c.read_operand(src, api, "src", loc).reshape(dst.shape))
    return c.emit(
        SENDRECV,
        loc,
        [src],
        [dst],
        engine=Engine.GPSIMD if dma_engine == "gpsimd_dma" else Engine.DMA,
        partitions=src.partitions,
        free=src.free_size,
        in_dtype=src.dtype,
        out_dtype=dst.dtype,
        attrs={
            "bytes": src.size * src.itemsize,
            "queue": "qSendRecv",
            "direction": "sbuf->sbuf",
            "pipe_id": pipe_id,
            "src_core": src_core,
            "dst_core": dst_core,
        },
    )
