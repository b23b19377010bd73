"""GpSimd engine: 8 general-purpose SIMD cores (iota, affine_select, gathers, partition reductions, ...).

GpSimd cannot access PSUM. Costs follow the API docs' examples: a ~150-cycle start-up plus about one
cycle per element per partition.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.context import current
from ..core.errors import NkiValidationError
from ..core.instruction import Engine, Instruction
from ..core.source import SourceLoc
from ..core.tensor import Tensor
from ..timing.arch import Arch
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
