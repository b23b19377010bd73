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
#: reduce ops of the Scalar-engine accumulators from NeuronCore-v3 on (NeuronCore-v2: add only)
SCALAR_REDUCE_OPS = ("add", "maximum", "minimum", "abs_max", "abs_min")


def reduce_cmd_name(cmd: Any) -> str:
    if cmd is None:
        return "idle"
    name = getattr(cmd, "name", None) or str(cmd)
    name = name.split(".")[-1]
    if isinstance(cmd, (int, np.integer)) and not isinstance(cmd, bool):
        name = REDUCE_CMDS[int(cmd)] if 0 <= int(cmd) < len(REDUCE_CMDS) else str(int(cmd))
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
    c.check_operands(api, loc, data=data, dst=dst)
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
    if cmd not in REDUCE_CMDS:
        raise NkiValidationError(
            f"{api}: reduce_cmd must be one of {', '.join(REDUCE_CMDS)}, got {reduce_cmd!r}",
            code="err_invalid_reduce_cmd",
            values={"reduce_cmd": reduce_cmd},
            loc=loc,
        )
    rop = alu.op_name(reduce_op) if reduce_op is not None else ""
    allowed_rops = ("add",) if run.arch.nc_version < 3 else SCALAR_REDUCE_OPS
    if rop and rop not in allowed_rops:
        raise NkiValidationError(
            f"{api}: the Scalar engine reduces with {', '.join(allowed_rops)} on {run.arch.name}, got {rop}",
            code="err_invalid_operator",
            values={"reduce_op": rop},
            loc=loc,
        )
    if reduce_res is not None:
        # reduce_res reads the accumulator registers after this instruction (nki-api.md 5.5); with reduce_cmd=idle
        # it reads them unchanged, which is rarely what a kernel that also passes reduce_op means.
        reduce_res = c.check_tensor(reduce_res, api, "reduce_res", loc)
        c.check_on_chip(reduce_res, api, "reduce_res", loc)
        if reduce_res.partitions != p or reduce_res.free_size != 1:
            raise NkiValidationError(
                f"{api}: reduce_res must have shape [{p}, 1] (one element per partition of data), got "
                f"{reduce_res.shape}",
                code="err_shape_mismatch",
                values={"reduce_res": reduce_res.shape, "partitions": p},
                loc=loc,
            )
        if cmd == "idle" and rop:
            run.warn(
                "warn_reduce_cmd_idle",
                f"{api}: reduce_op={rop} and reduce_res are given but reduce_cmd is idle, so reduce_res receives the "
                "accumulator registers unchanged; pass reduce_cmd=reset_reduce (or use activation_reduce)",
                loc,
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
            _accumulate(run, p, cmd, rop, out)
        if reduce_res is not None:
            reduce_res.write(run.accumulator("Scalar")[:p].reshape(reduce_res.shape))
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


def _accumulate(run, p: int, cmd: str, rop: str, out: np.ndarray) -> None:
    """The Scalar engine's accumulator registers after an instruction with reduce command `cmd`: reset to the
    identity of `rop` (add when none is given) and / or fold in the row reductions of `out` [p, n]."""
    acc = run.accumulator("Scalar")
    fold = rop or "add"
    if cmd in ("reset", "reset_reduce"):
        acc[:p] = alu.REDUCE_IDENTITY.get(fold, 0.0)
    if cmd in ("reduce", "reset_reduce", "load_reduce") and out.shape[1]:
        acc[:p] = alu.apply_binary(fold, acc[:p], alu.reduce(fold, out, (1,)))


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


# ---------------------------------------------------------------------------------- current-API: activate2
_ACT2_OPS = {
    ("multiply", "add"),
    ("multiply", "subtract"),
    ("multiply", "bypass"),
    ("add", "bypass"),
    ("subtract", "bypass"),
    ("bypass", "bypass"),
}
_ACT2_REDUCE = ("add", "maximum", "minimum", "abs_max", "abs_min")


def activate2(
    dst: Tensor,
    op: Any,
    data: Tensor,
    imm0: Any,
    imm1: Any,
    op0: Any,
    op1: Any,
    *,
    relu_param: Any = 0.0,
    reverse0: bool = False,
    reverse1: bool = False,
    reduce_op: Any = None,
    reduce_res: Tensor | None = None,
    reduce_cmd: Any = None,
    loc: SourceLoc | None = None,
    api: str = "activate2",
) -> Instruction:
    """dst = op((data op0 imm0) op1 imm1) with PReLU slope relu_param and an optional reduction (NeuronCore-v4)."""
    loc = loc or c.here()
    run = current()
    c.check_nc_version(api, loc, run, 4)
    name = alu.op_name(op)
    if name not in alu.ACTIVATIONS:
        raise NkiTypeError(
            f"{api}: {name} is not an activation function of the Scalar engine",
            code="err_unsupported_activation",
            values={"op": name},
            loc=loc,
        )
    n0 = alu.op_name(op0) if op0 is not None else "bypass"
    n1 = alu.op_name(op1) if op1 is not None else "bypass"
    if (n0, n1) not in _ACT2_OPS:
        raise NkiValidationError(
            f"{api}: unsupported (op0, op1) = ({n0}, {n1}); allowed: " + ", ".join(f"({a}, {b})" for a, b in sorted(_ACT2_OPS)),
            code="err_invalid_operator_combination",
            values={"op0": n0, "op1": n1},
            loc=loc,
        )
    if (reverse0 and n0 == "bypass") or (reverse1 and n1 == "bypass"):
        raise NkiValidationError(
            f"{api}: reverse0/reverse1 need op0/op1 to be set",
            code="err_invalid_operator_combination",
            values={"reverse0": reverse0, "reverse1": reverse1},
            loc=loc,
        )
    c.check_operands(api, loc, data=data, dst=dst)
    p = c.check_partitions_match(api, loc, data=data, dst=dst)
    c.check_free_match(api, loc, data=data, dst=dst)
    if isinstance(imm0, Tensor) and isinstance(imm1, Tensor) and imm0.dtype != imm1.dtype:
        raise NkiTypeError(
            f"{api}: imm0 and imm1 tensors must have the same dtype",
            values={"imm0": dtypes.name_of(imm0.dtype), "imm1": dtypes.name_of(imm1.dtype)},
            loc=loc,
        )
    cmd = reduce_cmd_name(reduce_cmd)
    if reduce_res is not None and cmd == "idle":
        cmd = "reset_reduce"
    rop = alu.op_name(reduce_op) if reduce_op is not None else ("add" if cmd != "idle" else "")
    if rop and rop not in _ACT2_REDUCE:
        raise NkiValidationError(
            f"{api}: reduce_op must be one of {', '.join(_ACT2_REDUCE)}, got {rop}",
            code="err_invalid_operator",
            values={"reduce_op": rop},
            loc=loc,
        )
    i0 = c.scalar_or_vector(api, loc, "imm0", imm0, p) if n0 != "bypass" else None
    i1 = c.scalar_or_vector(api, loc, "imm1", imm1, p) if n1 != "bypass" else None
    rp = c.scalar_or_vector(api, loc, "relu_param", relu_param, p)
    reads = [data] + [t for t in (imm0, imm1, relu_param) if isinstance(t, Tensor)]
    if run.numerics:
        x = dtypes.to_fp32(c.read_operand(data, api, "data", loc)).reshape(p, -1)
        with np.errstate(all="ignore"):
            z = x
            for nm_, imm, rev in ((n0, i0, reverse0), (n1, i1, reverse1)):
                if nm_ != "bypass":
                    iv = np.float32(imm) if not isinstance(imm, np.ndarray) else imm
                    z = alu.apply_binary(nm_, iv, z) if rev else alu.apply_binary(nm_, z, iv)
            _check_range(run, name, z, api, loc)
            if name == "prelu":
                slope = np.float32(rp) if not isinstance(rp, np.ndarray) else rp
                out = np.where(z >= 0, z, z * slope)
            else:
                out = alu.unary(name)(z)
        out = np.asarray(out, dtype=np.float32)
        dst.write(out.reshape(dst.shape))
        if cmd != "idle":
            _accumulate(run, p, cmd, rop, out)
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
        attrs={"op": name, "op0": n0, "op1": n1, "reduce_cmd": cmd, "reduce_readout": reduce_res is not None},
    )
