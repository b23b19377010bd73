"""Scalar (activation) engine: dst = func(data * scale + bias) with an optional per-lane reduction.

Numerics: fp32 pipeline. The hardware evaluates functions with piece-wise approximations that are valid only
inside documented input ranges (log, sin, arctan, sqrt, rsqrt, reciprocal); trnsim computes exact fp32
functions and warns when inputs leave the valid range, where hardware results would be wrong.
The 128 per-lane accumulator registers are shared by every activation with `reduce_cmd`.
Cost: max(MIN_II, N) Scalar-engine cycles whether or not scale/bias are used; a reduce read-out adds MIN_II.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core import dtypes
from ..core.context import current
from ..core.errors import NkiTypeError, NkiValidationError
from ..core.instruction import Engine, Instruction
from ..core.source import SourceLoc
from ..core.tensor import Tensor
from ..timing.arch import Arch
from . import alu
from . import common as c


def activation_cost(instr: Instruction, arch: Arch) -> float:
    cycles = max(instr.free, arch.min_ii_cycles)
    if instr.attrs.get("reduce_readout"):
        cycles += arch.min_ii_cycles
    return cycles / arch.clock_ghz["Scalar"]


ACTIVATE = c.spec("activation", Engine.SCALAR, "ACTIVATE", activation_cost, "dst = op(data*scale + bias)")

REDUCE_CMDS = ("idle", "reset", "reduce", "reset_reduce", "load_reduce")


def reduce_cmd_name(cmd: Any) -> str:
    if cmd is None:
        return "idle"
    name = getattr(cmd, "name", None) or str(cmd)
    name = name.split(".")[-1]
    if isinstance(cmd, (int, np.integer)) and not isinstance(cmd, bool):
        name = REDUCE_CMDS[int(cmd)]
    return name


def activation(
    dst: Tensor,
    op: Any,
    data: Tensor,
    *,
    bias: Any = None,
    scale: Any = 1.0,
    reduce_op: Any = None,
    reduce_res: Tensor | None = None,
    reduce_cmd: Any = None,
    relu_param: Any = None,
    loc: SourceLoc | None = None,
    api: str = "activation",
) -> Instruction:
    """dst = op(data * scale + bias); optional reduction of the result into the Scalar accumulators."""
    loc = loc or c.here()
    run = current()
    name = alu.op_name(op)
    if name not in alu.ACTIVATIONS and name not in alu.UNARY:
        raise NkiTypeError(
            f"{api}: {name} is not an activation function of the Scalar engine",
            code="err_unsupported_activation",
            values={"op": name},
            loc=loc,
        )
    for nm, t in (("data", data), ("dst", dst)):
        c.check_on_chip(c.check_tensor(t, api, nm, loc), api, nm, loc)
    p = c.check_partitions_match(api, loc, data=data, dst=dst)
    c.check_free_match(api, loc, data=data, dst=dst)
    if isinstance(scale, Tensor) and scale.dtype != dtypes.float32:
        raise NkiTypeError(
            f"{api}: a scale vector must be float32, got {dtypes.name_of(scale.dtype)}",
            code="err_activation_scale_invalid_type",
            values={"scale": dtypes.name_of(scale.dtype)},
            loc=loc,
        )
    if isinstance(bias, Tensor):
        if bias.dtype not in (dtypes.float32, dtypes.float16, dtypes.bfloat16):
            raise NkiTypeError(
                f"{api}: bias must be a float32/float16/bfloat16 vector, got {dtypes.name_of(bias.dtype)}",
                code="err_activation_bias_invalid_type",
                values={"bias": dtypes.name_of(bias.dtype)},
                loc=loc,
            )
    elif bias is not None and not isinstance(bias, (int, float, np.number)):
        raise NkiTypeError(
            f"{api}: bias must be a [P,1] tensor or a scalar",
            code="err_activation_bias_invalid_type",
            values={"bias": bias},
            loc=loc,
        )
    elif bias is not None and bias != 0 and run.arch.nc_version < 3:
        raise NkiValidationError(
            f"{api}: a scalar bias needs NeuronCore-v3 or later; pass a [P,1] bias tensor on {run.arch.name}",
            code="err_activation_bias_invalid_type",
            values={"bias": bias},
            loc=loc,
        )
    cmd = reduce_cmd_name(reduce_cmd)
    rop = alu.op_name(reduce_op) if reduce_op is not None else ""
    if reduce_res is not None and cmd == "idle":
        cmd = "reset_reduce"
    if rop and rop not in ("add",) and run.arch.nc_version < 4 and rop != "add":
        raise NkiValidationError(
            f"{api}: the Scalar engine reduces with add only on {run.arch.name}, got {rop}",
            code="err_invalid_operator",
            values={"reduce_op": rop},
            loc=loc,
        )
    sc = c.scalar_or_vector(api, loc, "scale", scale, p)
    bi = c.scalar_or_vector(api, loc, "bias", bias, p)
    reads = [data] + [t for t in (bias, scale) if isinstance(t, Tensor)]
    if run.numerics:
        x = dtypes.to_fp32(c.read_operand(data, api, "data", loc)).reshape(p, -1)
        with np.errstate(all="ignore"):
            z = x * np.float32(sc) if not isinstance(sc, np.ndarray) else x * sc
            z = z + (np.float32(bi) if not isinstance(bi, np.ndarray) else bi)
            _check_range(run, name, z, api, loc)
            if name == "prelu":
                slope = np.float32(relu_param or 0.0)
                out = np.where(z >= 0, z, z * slope)
            else:
                out = alu.unary(name)(z)
        out = np.asarray(out, dtype=np.float32)
        dst.write(out.reshape(dst.shape))
        if cmd != "idle":
            acc = run.accumulator("Scalar")
            if cmd in ("reset", "reset_reduce"):
                acc[:p] = 0.0
            if cmd in ("reduce", "reset_reduce"):
                acc[:p] += np.add.reduce(out, axis=1, dtype=np.float32)
        if reduce_res is not None:
            c.check_on_chip(reduce_res, api, "reduce_res", loc)
            reduce_res.write(run.accumulator("Scalar")[: reduce_res.partitions].reshape(reduce_res.shape))
    writes = [dst] + ([reduce_res] if reduce_res is not None else [])
    return c.emit(
        ACTIVATE,
        loc,
        reads,
        writes,
        flops=dst.size * 3,
        partitions=p,
        free=dst.free_size,
        in_dtype=data.dtype,
        out_dtype=dst.dtype,
        attrs={"op": name, "reduce_cmd": cmd, "reduce_readout": reduce_res is not None},
    )


def _check_range(run, name: str, z: np.ndarray, api: str, loc: SourceLoc) -> None:
    rng = alu.ACTIVATION_RANGES.get(name)
    if rng is None or z.size == 0:
        return
    finite = z[np.isfinite(z)]
    if finite.size == 0:
        return
    lo, hi = float(finite.min()), float(finite.max())
    if name in ("log", "sqrt", "rsqrt"):
        bad = lo < rng[0] and lo != 0.0 or hi > rng[1]
    else:
        bad = lo < rng[0] - 1e-6 or hi > rng[1] + 1e-6
    if bad:
        run.warn(
            "warn_activation_out_of_range",
            f"{api}({name}) input range [{lo:.6g}, {hi:.6g}] leaves the Scalar engine's valid range "
            f"[{rng[0]:.6g}, {rng[1]:.6g}]; hardware results are invalid there (trnsim computes the exact function)",
            loc,
        )
