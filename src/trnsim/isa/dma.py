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
from ..core.instruction import Engine, Instruction
from ..core.source import SourceLoc
from ..core.tensor import Tensor
from ..timing.arch import Arch
from . import common as c

# Relative DMA throughput over bytes per partition (trn-hardware.md section 4, figure digitised).
_EFF_X = np.array([32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768], dtype=np.float64)
_EFF_Y = np.array([0.01, 0.03, 0.05, 0.10, 0.21, 0.42, 0.81, 0.97, 0.98, 0.99, 1.00], dtype=np.float64)


def dma_efficiency(bytes_per_partition: float, arch: Arch) -> float:
    curve = arch.extra.get("dma_efficiency_curve")
    xs, ys = (np.array(curve[0]), np.array(curve[1])) if curve else (_EFF_X, _EFF_Y)
    if bytes_per_partition <= xs[0]:
        return float(ys[0] * bytes_per_partition / xs[0])
    return float(np.interp(np.log2(bytes_per_partition), np.log2(xs), ys))


def dma_engines_used(partitions: int, arch: Arch) -> int:
    return max(1, min(arch.dma_engines, math.ceil(partitions / 8)))


def dma_cost(instr: Instruction, arch: Arch) -> float:
    """Transfer time in ns on its engines, without queueing (the timing pass adds fixed latency and sharing)."""
    nbytes = instr.attrs.get("bytes", 0)
    parts = max(1, instr.partitions)
    engines = dma_engines_used(parts, arch)
    eff = dma_efficiency(nbytes / parts, arch)
    if instr.attrs.get("transpose"):
        eff *= arch.extra.get("dma_transpose_efficiency", 0.9 if arch.nc_version >= 3 else 0.25)
    bw = arch.dma_bytes_per_ns_per_engine * engines * max(eff, 1e-3)
    return nbytes / bw


DMA_COPY = c.spec("dma_copy", Engine.DMA, "DMA", dma_cost, "HBM<->SBUF transfer")
DMA_TRANSPOSE = c.spec("dma_transpose", Engine.DMA, "DMA_TRANSPOSE", dma_cost, "transpose while moving")


def _side_partitions(t: Tensor) -> int:
    return t.partitions if t.storage.buffer.on_chip else 0


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
    from . import alu

    loc = loc or c.here()
    run = current()
    dst = c.check_tensor(dst, api, "dst", loc)
    src = c.check_tensor(src, api, "src", loc)
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
    if src.size != dst.size and values is None:
        raise NkiValidationError(
            f"{api}: source and destination element counts differ ({src.size} vs {dst.size}): src {src.shape}, "
            f"dst {dst.shape}",
            code="err_shape_mismatch",
            values={"src": src.shape, "dst": dst.shape},
            loc=loc,
        )
    rmw = alu.op_name(dst_rmw_op) if dst_rmw_op is not None else ""
    if run.numerics:
        v = values if values is not None else c.read_operand(src, api, "src", loc)
        v = v.reshape(dst.shape) if v.size == dst.size else np.broadcast_to(v, dst.shape)
        if rmw:
            prev = dtypes.to_fp32(dst.read())
            v = alu.apply_binary(rmw, prev, dtypes.to_fp32(v))
        elif v.dtype != dst.dtype:
            v = dtypes.to_fp32(v)
        dst.write(v, where=where)
    sb = dst if dst.storage.buffer.on_chip else src
    parts = sb.partitions if sb.storage.buffer.on_chip else min(c.PMAX, dst.shape[0] if dst.shape else 1)
    nbytes = dst.size * dst.itemsize
    q = queue or ("qSyncIO" if dge_mode in ("unknown", "none", "hwdge") else "qGpSimdDynamic")
    return c.emit(
        opcode_spec,
        loc,
        [src] + ([dst] if rmw else []),
        [dst],
        partitions=parts,
        free=dst.free_size,
        in_dtype=src.dtype,
        out_dtype=dst.dtype,
        attrs={
            "bytes": nbytes,
            "queue": q,
            "dge_mode": dge_mode,
            "direction": f"{src.storage.buffer.kind}->{dst.storage.buffer.kind}",
            "transpose": opcode_spec is DMA_TRANSPOSE,
            "rmw": rmw,
            "src_name": src.storage.name,
            "src_is_param": src.storage.is_param,
        },
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
    if tuple(dst.shape) != want and int(np.prod(dst.shape)) != int(np.prod(want)):
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
