"""Vector engine (and the element-wise instructions that may also run on Scalar / GpSimd).

Numerics: inputs converted to fp32, computed in fp32, rounded to the destination dtype (RNE, integers
saturate); bit-vector operators work on integer bit patterns; same-dtype copies are bit exact.
Costs (engine cycles, N = elements per partition, MIN_II ~64): tensor_scalar / tensor_copy max(MIN_II, N),
tensor_tensor max(MIN_II, 2N) unless a fast case applies, tensor_reduce N (N/2 for bf16 add/max), memset
max(MIN_II, N) (N/2 for bf16 zeros), reciprocal max(MIN_II, 8N). NeuronCore-v3 performance modes: 4x for
bf16/fp16 SBUF->SBUF unit-stride tensor_copy / tensor_scalar, 2x for the partially qualifying cases and for
all-bf16 SBUF tensor_tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
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

_TWO_BYTE = (dtypes.bfloat16, dtypes.float16)


def _engine_of(instr: Instruction) -> str:
    return instr.engine if instr.engine in ("Vector", "Scalar", "GpSimd") else "Vector"


def _perf_mode_factor(instr: Instruction, arch: Arch, full: float, partial: float) -> float:
    """Throughput factor of NeuronCore-v3 Vector performance modes (1.0 where they do not apply)."""
    if not arch.vector_perf_modes or _engine_of(instr) != "Vector":
        return 1.0
    a = instr.attrs
    if instr.in_dtype in _TWO_BYTE and instr.out_dtype in _TWO_BYTE:
        if a.get("all_sbuf") and a.get("unit_stride"):
            return full
        return partial
    return 1.0


def _cycles_ns(instr: Instruction, arch: Arch, cycles: float) -> float:
    eng = _engine_of(instr)
    cycles = max(cycles, arch.min_ii_cycles)
    return cycles / arch.clock_ghz[eng]


def copy_like_cost(instr: Instruction, arch: Arch) -> float:
    return _cycles_ns(instr, arch, instr.free / _perf_mode_factor(instr, arch, 4.0, 2.0))


def tensor_tensor_cost(instr: Instruction, arch: Arch) -> float:
    """max(MIN_II, N) when at most one operand streams through the SBUF read port (the other in PSUM, or a
    partition-broadcast row that the compiler materialises on the PE array into PSUM, as the fused_mamba
    tutorial describes), or for unit-stride all-bf16 SBUF add/multiply/subtract; else max(MIN_II, 2N).
    NeuronCore-v3 performance mode: 2x when both inputs and the output are bf16/fp16 in SBUF."""
    a = instr.attrs
    n = instr.free
    fast = (
        a.get("one_psum")
        or a.get("p_broadcast", 0) >= 1
        or (
            a.get("all_sbuf")
            and instr.in_dtype == dtypes.bfloat16
            and a.get("op") in ("add", "multiply", "subtract")
            and a.get("unit_stride")
        )
    )
    cycles = n if fast else 2 * n
    if (
        arch.vector_perf_modes
        and a.get("all_sbuf")
        and instr.in_dtype in _TWO_BYTE
        and instr.out_dtype in _TWO_BYTE
        and _engine_of(instr) == "Vector"
    ):
        cycles /= 2
    return _cycles_ns(instr, arch, cycles)


def reduce_cost(instr: Instruction, arch: Arch) -> float:
    n = instr.free
    if (
        instr.in_dtype == dtypes.bfloat16
        and instr.out_dtype == dtypes.bfloat16
        and instr.attrs.get("op")
        in (
            "add",
            "maximum",
        )
    ):
        n = n / 2
    return _cycles_ns(instr, arch, n)


def memset_cost(instr: Instruction, arch: Arch) -> float:
    n = instr.free
    if instr.attrs.get("zero") and instr.out_dtype in _TWO_BYTE:
        n = n / 2
    return _cycles_ns(instr, arch, n)


def reciprocal_cost(instr: Instruction, arch: Arch) -> float:
    return _cycles_ns(instr, arch, 8 * instr.free)


TENSOR_TENSOR = c.spec("tensor_tensor", Engine.VECTOR, "TENSOR_TENSOR", tensor_tensor_cost, "dst = data1 op data2")
TENSOR_SCALAR = c.spec("tensor_scalar", Engine.VECTOR, "TENSOR_SCALAR", copy_like_cost, "dst = (data op0 s0) op1 s1")
TENSOR_REDUCE = c.spec("tensor_reduce", Engine.VECTOR, "TENSOR_REDUCE", reduce_cost, "reduce free axes")
TENSOR_COPY = c.spec("tensor_copy", Engine.VECTOR, "TENSOR_COPY", copy_like_cost, "copy / cast")
MEMSET = c.spec("memset", Engine.VECTOR, "MEMSET", memset_cost, "fill with a constant")
RECIPROCAL = c.spec("reciprocal", Engine.VECTOR, "RECIPROCAL", reciprocal_cost, "1/x in fp32")
TRANSPOSE_VE = c.spec("nc_transpose_vector", Engine.VECTOR, "TRANSPOSE", copy_like_cost, "32x32 transpose")


def resolve_engine(engine: Any, default: str = Engine.VECTOR) -> str:
    """Map nisa.engine values / names to engine names; 'unknown' picks `default`."""
    if engine is None:
        return default
    name = getattr(engine, "name", None) or str(engine)
    name = name.lower().replace("engine.", "")
    return {
        "vector": Engine.VECTOR,
        "scalar": Engine.SCALAR,
        "act": Engine.SCALAR,
        "activation": Engine.SCALAR,
        "gpsimd": Engine.GPSIMD,
        "pool": Engine.GPSIMD,
        "tensor": Engine.TENSOR,
        "pe": Engine.TENSOR,
        "sync": Engine.SYNC,
    }.get(name, default)


def _layout_attrs(ins: Sequence[Tensor], outs: Sequence[Tensor]) -> dict[str, Any]:
    all_sbuf = unit = True
    n_psum = n_pbc = 0
    for t in ins:
        if t is None:
            continue
        kind = t.storage.buffer.kind
        if kind != "sbuf":
            all_sbuf = False
            if kind == "psum":
                n_psum += 1
        if unit and not _unit_stride(t):
            unit = False
        if _partition_broadcast(t):
            n_pbc += 1
    for t in outs:
        if t is None:
            continue
        if t.storage.buffer.kind != "sbuf":
            all_sbuf = False
        if unit and not _unit_stride(t):
            unit = False
    return {"all_sbuf": all_sbuf, "one_psum": n_psum == 1, "unit_stride": unit, "p_broadcast": n_pbc}


def _partition_broadcast(t: Tensor) -> bool:
    """A view that repeats one partition's data on several partitions (stride 0 on the partition axis)."""
    a = t.array
    return t.index is None and a.ndim >= 1 and a.shape[0] > 1 and a.strides[0] == 0


def _unit_stride(t: Tensor) -> bool:
    a = t.array
    if t.index is not None or a.ndim < 2:
        return True
    return a.strides[-1] == a.itemsize or a.shape[-1] == 1


def _check_engine_access(api: str, loc: SourceLoc, engine: str, **tensors: Tensor) -> None:
    if engine == Engine.GPSIMD:
        c.check_not_psum(api, loc, "GpSimd", **tensors)


def _as_2d(v: np.ndarray, parts: int) -> np.ndarray:
    return v.reshape(parts, -1)


# ----------------------------------------------------------------------------------------- tensor_tensor
def tensor_tensor(
    dst: Tensor,
    data1: Tensor,
    data2: Tensor,
    op: Any,
    *,
    engine: Any = None,
    allow_broadcast: bool = False,
    loc: SourceLoc | None = None,
    api: str = "tensor_tensor",
) -> Instruction:
    """dst = data1 op data2, element-wise (fp32 math, bit-vector ops on integers)."""
    loc = loc or c.here()
    run = current()
    key = c.check_key("tensor_tensor", (op, engine, allow_broadcast), data1, data2, dst)
    hit = c.cached_checks(run, key)
    if hit is not None:  # same operand signature already checked in this run
        name, eng, layout, in_dt, size, parts, free = hit
    else:
        name = alu.op_name(op)
        eng = resolve_engine(engine, Engine.GPSIMD if name == "power" else Engine.VECTOR)
        c.check_operands(api, loc, data1=data1, data2=data2, dst=dst)
        c.check_not_both_psum(api, loc, data1, data2, ("data1", "data2"))
        _check_engine_access(api, loc, eng, data1=data1, data2=data2, dst=dst)
        if not allow_broadcast:
            c.check_partitions_match(api, loc, data1=data1, data2=data2, dst=dst)
            c.check_free_match(api, loc, data1=data1, data2=data2, dst=dst)
        if name in alu.BITVEC:
            for nm, t in (("data1", data1), ("data2", data2)):
                if not dtypes.is_int(t.dtype):
                    raise NkiTypeError(
                        f"{api}: bit-vector operator {name} needs integer operands, '{nm}' is {dtypes.name_of(t.dtype)}",
                        code="err_unsupported_dtype",
                        values={nm: dtypes.name_of(t.dtype)},
                        loc=loc,
                    )
        layout = _layout_attrs([data1, data2], [dst])
        in_dt = dtypes.promote(data1.dtype, data2.dtype)
        # sizes are functions of the key (shapes, strides, memory) as the checks are
        size, parts, free = dst.size, dst.partitions, dst.free_size
        c.remember_checks(run, key, (name, eng, layout, in_dt, size, parts, free))
    if run.numerics:
        a = c.read_operand(data1, api, "data1", loc)
        b = c.read_operand(data2, api, "data2", loc)
        if allow_broadcast:
            res = _binary_values(name, a, b, dst)
            res = np.broadcast_to(res, dst.shape)
        else:
            if a.ndim != 2 or a.shape[0] != parts:
                a = _as_2d(a, parts)
            if b.ndim != 2 or b.shape[0] != parts:
                b = _as_2d(b, parts)
            res = _binary_values(name, a, b, dst)
            dshape = dst.shape
            if res.shape != dshape:
                res = res.reshape(dshape)
        dst.write(res)
    ins = [data1, data2]
    return c.emit(
        TENSOR_TENSOR,
        loc,
        ins,
        [dst],
        engine=eng,
        flops=size,
        partitions=parts,
        free=free,
        in_dtype=in_dt,
        out_dtype=dst.dtype,
        attrs={"op": name, **layout},
    )


def _binary_values(name: str, a: np.ndarray, b: np.ndarray, dst: Tensor) -> np.ndarray:
    if name in alu.BITVEC:
        return alu.apply_binary(name, a, b)
    if (
        name in ("add", "subtract", "multiply")
        and a.dtype.kind in "iu"
        and b.dtype.kind in "iu"
        and dst.dtype.kind in "iu"
    ):
        # int32 add/subtract/multiply are exact integer ops (GpSimd path on hardware).
        return alu.binary(name)(a.astype(np.int64), b.astype(np.int64))
    return alu.apply_binary(name, dtypes.to_fp32(a), dtypes.to_fp32(b))


# ----------------------------------------------------------------------------------------- tensor_scalar
def tensor_scalar(
    dst: Tensor,
    data: Tensor,
    op0: Any,
    operand0: Any,
    reverse0: bool = False,
    op1: Any = None,
    operand1: Any = None,
    reverse1: bool = False,
    *,
    engine: Any = None,
    loc: SourceLoc | None = None,
    api: str = "tensor_scalar",
) -> Instruction:
    """dst = (data op0 operand0) op1 operand1 with scalar or [P,1] operands."""
    loc = loc or c.here()
    run = current()
    key = c.check_key("tensor_scalar", (op0, op1, engine), data, dst, operand0, operand1)
    hit = c.cached_checks(run, key)
    if hit is not None:  # same operand signature already checked in this run
        eng, n0, n1, layout, p, size, free = hit
    else:
        n0 = alu.op_name(op0)
        n1 = alu.op_name(op1) if op1 is not None else ""
        eng = resolve_engine(engine, Engine.GPSIMD if n0 == "rsqrt" else Engine.VECTOR)
        c.check_operands(api, loc, data=data, dst=dst)
        c.check_partitions_match(api, loc, data=data, dst=dst)
        c.check_free_match(api, loc, data=data, dst=dst)
        _check_engine_access(api, loc, eng, data=data, dst=dst)
        bit0, bit1 = n0 in alu.BITVEC, (n1 in alu.BITVEC) if n1 else (n0 in alu.BITVEC)
        if bit0 != bit1:
            raise NkiValidationError(
                f"{api}: op0={n0} and op1={n1} must both be bit-vector or both arithmetic operators",
                code="err_invalid_operator_combination",
                values={"op0": n0, "op1": n1},
                loc=loc,
            )
        if eng == Engine.SCALAR and run.arch.nc_version >= 3:
            if (n0, n1) not in (("multiply", "add"), ("multiply", ""), ("add", "")):
                raise NkiValidationError(
                    f"{api}: the Scalar engine supports only (multiply, add), (multiply) and (add), got ({n0}, {n1 or None})",
                    code="err_invalid_operator_combination",
                    values={"op0": n0, "op1": n1},
                    loc=loc,
                )
        _check_tensor_scalar_engine(api, loc, run.arch.nc_version, eng, n0, n1, bit0)
        layout = _layout_attrs([data], [dst])
        # sizes are functions of the key (shapes, strides, memory) as the checks are
        p, size, free = data.partitions, dst.size, dst.free_size
        c.remember_checks(run, key, (eng, n0, n1, layout, p, size, free))
    s0 = operand0 if type(operand0) is float else c.scalar_or_vector(api, loc, "operand0", operand0, p)
    s1 = c.scalar_or_vector(api, loc, "operand1", operand1, p) if n1 else None
    if run.numerics:
        x = c.read_operand(data, api, "data", loc)
        if x.ndim != 2 or x.shape[0] != p:
            x = _as_2d(x, p)
        res = _scalar_step(n0, x, s0, reverse0)
        if n1:
            res = _scalar_step(n1, res, s1, reverse1)
        dshape = dst.shape
        dst.write(res if type(res) is np.ndarray and res.shape == dshape else np.asarray(res).reshape(dshape))
    ins = [data]
    if isinstance(operand0, Tensor):
        ins.append(operand0)
    if isinstance(operand1, Tensor):
        ins.append(operand1)
    return c.emit(
        TENSOR_SCALAR,
        loc,
        ins,
        [dst],
        engine=eng,
        flops=size * (2 if n1 else 1),
        partitions=p,
        free=free,
        in_dtype=data.dtype,
        out_dtype=dst.dtype,
        attrs={"op0": n0, "op1": n1, **layout},
    )


def _check_tensor_scalar_engine(api: str, loc: SourceLoc, nc: int, eng: str, n0: str, n1: str, bitvec: bool) -> None:
    """Engine rules of tensor_scalar (nki-api.md 5.2 / 5.4): bit-vector ops only on Vector; GpSimd only for rsqrt;
    Vector has no rsqrt; the NeuronCore-v2 Scalar engine only has the unary abs / reciprocal / rsqrt."""
    ops = (n0, n1) if n1 else (n0,)
    rule = ""
    if bitvec and eng != Engine.VECTOR:
        rule = "bit-vector operators run on the Vector engine only"
    elif eng == Engine.GPSIMD and ops != ("rsqrt",):
        rule = "the GpSimd engine runs tensor_scalar only for rsqrt"
    elif eng == Engine.VECTOR and "rsqrt" in ops:
        rule = "the Vector engine has no rsqrt (use the GpSimd or Scalar engine)"
    elif eng == Engine.SCALAR and nc < 3 and not (n1 == "" and n0 in ("abs", "reciprocal", "rsqrt")):
        rule = "the NeuronCore-v2 Scalar engine runs tensor_scalar only for abs, reciprocal and rsqrt"
    elif eng == Engine.TENSOR or eng == Engine.SYNC:
        rule = "tensor_scalar runs on the Vector, Scalar or GpSimd engine"
    if rule:
        raise NkiValidationError(
            f"{api}: {rule}; got op0={n0}, op1={n1 or None} on the {eng} engine",
            code="err_invalid_operator_combination",
            values={"op0": n0, "op1": n1 or None, "engine": eng},
            loc=loc,
        )


def _scalar_step(name: str, x: np.ndarray, s: Any, reverse: bool) -> np.ndarray:
    if name == "invert":  # bit-vector unary: on the integer bit pattern, no fp32 conversion
        return np.invert(np.asarray(x))
    if name in alu.UNARY and name not in alu.BINARY:
        with np.errstate(all="ignore"):
            return np.asarray(alu.unary(name)(dtypes.to_fp32(np.asarray(x))), dtype=np.float32)
    if name in alu.BITVEC:
        sv = np.asarray(s).astype(x.dtype) if not isinstance(s, np.ndarray) else s.astype(x.dtype)
        return alu.apply_binary(name, sv, x) if reverse else alu.apply_binary(name, x, sv)
    xf = dtypes.to_fp32(np.asarray(x))
    sf = np.float32(s) if not isinstance(s, np.ndarray) else s
    return alu.apply_binary(name, sf, xf) if reverse else alu.apply_binary(name, xf, sf)


# ----------------------------------------------------------------------------------------- tensor_reduce
def tensor_reduce(
    dst: Tensor,
    op: Any,
    data: Tensor,
    axis: Any,
    *,
    negate: bool = False,
    keepdims: bool = False,
    loc: SourceLoc | None = None,
    api: str = "tensor_reduce",
) -> Instruction:
    """Reduce data along free axes (fp32 math) into dst."""
    loc = loc or c.here()
    run = current()
    name = alu.op_name(op)
    if name not in alu.REDUCIBLE:
        raise NkiValidationError(
            f"{api}: operator {name} cannot be used as a reduction",
            code="err_invalid_operator",
            values={"op": name},
            loc=loc,
        )
    c.check_operands(api, loc, data=data, dst=dst)
    c.check_partitions_match(api, loc, data=data, dst=dst)
    axes = normalize_axes(axis, data.ndim, api, loc)
    if name in alu.BITVEC and not (dtypes.is_int(data.dtype) and dtypes.is_int(dst.dtype)):
        raise NkiTypeError(
            f"{api}: bit-vector reduction {name} needs integer input and output, got {dtypes.name_of(data.dtype)} -> "
            f"{dtypes.name_of(dst.dtype)}",
            code="err_unsupported_dtype",
            values={"data": dtypes.name_of(data.dtype), "dst": dtypes.name_of(dst.dtype)},
            loc=loc,
        )
    if negate and name in alu.BITVEC:
        raise NkiValidationError(
            f"{api}: negate applies to arithmetic reductions only, not to {name}",
            code="err_invalid_operator",
            values={"op": name, "negate": negate},
            loc=loc,
        )
    if run.numerics:
        x = c.read_operand(data, api, "data", loc)
        xv = x if name in alu.BITVEC else dtypes.to_fp32(x)
        res = alu.reduce(name, xv, axes, keepdims=True)
        if negate:
            res = -res
        dst.write(np.asarray(res).reshape(dst.shape))
    n = data.free_size
    return c.emit(
        TENSOR_REDUCE,
        loc,
        [data],
        [dst],
        flops=data.size,
        partitions=data.partitions,
        free=n,
        in_dtype=data.dtype,
        out_dtype=dst.dtype,
        attrs={"op": name, "axes": axes},
    )


def normalize_axes(axis: Any, ndim: int, api: str, loc: SourceLoc) -> tuple[int, ...]:
    if isinstance(axis, (list, tuple)):
        axes = tuple(int(a) % ndim for a in axis)
    else:
        axes = (int(axis) % ndim,)
    if 0 in axes:
        raise NkiValidationError(
            f"{api}: cannot reduce along the partition axis 0 (axes={axes}); reductions run along free axes",
            code="err_reduce_partition_axis",
            values={"axis": axis},
            loc=loc,
            hint="transpose with nc_transpose, or use nisa.tensor_partition_reduce / a matmul with a ones vector",
        )
    return tuple(sorted(set(axes)))


# ----------------------------------------------------------------------------------------- copies / memset
def tensor_copy(
    dst: Tensor, src: Tensor, *, engine: Any = None, loc: SourceLoc | None = None, api: str = "tensor_copy"
) -> Instruction:
    """Copy src to dst (same partitions and elements per partition); casts through fp32 unless dtypes match."""
    loc = loc or c.here()
    run = current()
    key = c.check_key("tensor_copy", (engine,), src, dst)
    hit = c.cached_checks(run, key)
    if hit is not None:  # same operand signature already checked in this run
        eng, layout = hit
    else:
        eng = resolve_engine(engine, Engine.VECTOR)
        c.check_operands(api, loc, src=src, dst=dst)
        c.check_partitions_match(api, loc, src=src, dst=dst)
        c.check_free_match(api, loc, src=src, dst=dst)
        _check_engine_access(api, loc, eng, src=src, dst=dst)
        layout = _layout_attrs([src], [dst])
        c.remember_checks(run, key, (eng, layout))
    if run.numerics:
        v = c.read_operand(src, api, "src", loc)
        if v.dtype == dst.dtype and eng != Engine.SCALAR:
            dst.write(v.reshape(dst.shape))
        else:
            dst.write(dtypes.to_fp32(v).reshape(dst.shape))
    return c.emit(
        TENSOR_COPY,
        loc,
        [src],
        [dst],
        engine=eng,
        partitions=dst.partitions,
        free=dst.free_size,
        in_dtype=src.dtype,
        out_dtype=dst.dtype,
        attrs=dict(layout),
    )


def memset(
    dst: Tensor, value: Any, *, engine: Any = None, loc: SourceLoc | None = None, api: str = "memset"
) -> Instruction:
    """Fill dst with a compile-time constant."""
    loc = loc or c.here()
    run = current()
    eng = resolve_engine(engine, Engine.VECTOR)
    c.check_operands(api, loc, dst=dst)
    _check_engine_access(api, loc, eng, dst=dst)
    if run.numerics:
        if dtypes.is_int(dst.dtype) and isinstance(value, (int, np.integer)):
            dst.write(np.asarray(value, dtype=np.int64))
        else:
            dst.write(np.float32(value))
    return c.emit(
        MEMSET,
        loc,
        [],
        [dst],
        engine=eng,
        partitions=dst.partitions,
        free=dst.free_size,
        out_dtype=dst.dtype,
        attrs={"zero": value == 0, **_layout_attrs([], [dst])},
    )


def reciprocal(dst: Tensor, data: Tensor, *, loc: SourceLoc | None = None, api: str = "reciprocal") -> Instruction:
    """dst = 1 / data on the Vector engine (fp32, more precise than the Scalar engine's table)."""
    loc = loc or c.here()
    run = current()
    c.check_operands(api, loc, data=data, dst=dst)
    c.check_partitions_match(api, loc, data=data, dst=dst)
    c.check_free_match(api, loc, data=data, dst=dst)
    if run.numerics:
        x = dtypes.to_fp32(c.read_operand(data, api, "data", loc))
        with np.errstate(divide="ignore"):
            dst.write((np.float32(1.0) / x).reshape(dst.shape))
    return c.emit(
        RECIPROCAL,
        loc,
        [data],
        [dst],
        partitions=dst.partitions,
        free=dst.free_size,
        in_dtype=data.dtype,
        out_dtype=dst.dtype,
    )


def nc_transpose_vector(
    dst: Tensor, data: Tensor, *, loc: SourceLoc | None = None, api: str = "nc_transpose"
) -> Instruction:
    """Vector-engine transpose of up to [32, 32] (SBUF or PSUM in and out)."""
    loc = loc or c.here()
    run = current()
    c.check_operands(api, loc, data=data, dst=dst)
    p, f = data.partitions, data.free_size
    if p > 32 or f > 32:
        raise NkiValidationError(
            f"{api}: Vector-engine transpose takes at most [32, 32], got [{p}, {f}]",
            code="err_size_of_dimension_exceed_arch_limit",
            values={"data": data.shape},
            loc=loc,
            hint="use engine=nisa.tensor_engine for tiles up to [128, 128]",
        )
    c.check_transposed(api, loc, dst, data)
    if run.numerics:
        v = c.read_operand(data, api, "data", loc).reshape(p, f)
        dst.write(v.T.reshape(dst.shape))
    return c.emit(TRANSPOSE_VE, loc, [data], [dst], partitions=p, free=f, in_dtype=data.dtype, out_dtype=dst.dtype)


SELECT = c.spec("select", Engine.VECTOR, "SELECT", tensor_tensor_cost, "dst = where(pred, on_true, on_false)")


def select(
    dst: Tensor, predicate: Any, on_true: Any, on_false: Any, *, loc: SourceLoc | None = None, api: str = "select"
) -> Instruction:
    """dst = on_true where predicate != 0 else on_false (tensors broadcast NumPy-style, or scalars)."""
    loc = loc or c.here()
    run = current()
    c.check_operands(api, loc, dst=dst)
    ins = [t for t in (predicate, on_true, on_false) if isinstance(t, Tensor)]
    for t in ins:
        c.check_on_chip(t, api, "operand", loc)
    if run.numerics:

        def val(v: Any) -> Any:
            return dtypes.to_fp32(c.read_operand(v, api, "operand", loc)) if isinstance(v, Tensor) else np.float32(v)

        pred = val(predicate) != 0
        res = np.where(pred, val(on_true), val(on_false))
        dst.write(np.broadcast_to(res, dst.shape))
    return c.emit(
        SELECT,
        loc,
        ins,
        [dst],
        partitions=dst.partitions,
        free=dst.free_size,
        in_dtype=dst.dtype,
        out_dtype=dst.dtype,
        attrs={"op": "select", **_layout_attrs(ins, [dst])},
    )


# ========================================================================================= accumulator registers
# Per-lane Vector-engine accumulator registers (nki-api.md 5.5), shared by tensor_scalar_reduce, select_reduce,
# range_select (and the current API's tensor_scalar_cumulative / exponential): reset / reset_reduce start from the
# identity of the reduce op, load_reduce from reduce_init, reduce folds into the current value, idle leaves the
# registers in an unspecified state (trnsim keeps the values and warns if a later `reduce` relies on them).
VECTOR_ACC_REDUCE_OPS = ("add", "subtract", "multiply", "maximum", "minimum")
_ACC_UNSPECIFIED = "vector_acc_unspecified"


def vector_reduce_cmd(cmd: Any, api: str, loc: SourceLoc, allowed: Sequence[str] | None = None) -> str:
    """Canonical reduce_cmd name ('idle', 'reset', 'reduce', 'reset_reduce', 'load_reduce')."""
    from .scalar_engine import REDUCE_CMDS, reduce_cmd_name

    try:
        name = reduce_cmd_name(cmd)
    except (IndexError, ValueError, TypeError):
        name = repr(cmd)
    ok = allowed if allowed is not None else REDUCE_CMDS
    if name not in ok:
        raise NkiValidationError(
            f"{api}: reduce_cmd must be one of {', '.join(ok)}, got {name}",
            code="err_invalid_reduce_cmd",
            values={"reduce_cmd": cmd},
            loc=loc,
        )
    return name


def _check_vector_reduce_op(api: str, loc: SourceLoc, op: Any, allowed: Sequence[str]) -> str:
    name = alu.op_name(op) if op is not None else ""
    if name not in allowed:
        raise NkiValidationError(
            f"{api}: reduce_op must be one of {', '.join(allowed)}, got {name or None}",
            code="err_invalid_operator",
            values={"reduce_op": name or None},
            loc=loc,
        )
    return name


def _check_reduce_res(api: str, loc: SourceLoc, reduce_res: Any, partitions: int, float_only: bool = False) -> Tensor:
    rr = c.check_tensor(reduce_res, api, "reduce_res", loc)
    c.check_on_chip(rr, api, "reduce_res", loc)
    if rr.partitions != partitions or rr.free_size != 1:
        raise NkiValidationError(
            f"{api}: reduce_res must have shape [{partitions}, 1] (one element per partition of the input), "
            f"got {rr.shape}",
            code="err_shape_mismatch",
            values={"reduce_res": rr.shape, "partitions": partitions},
            loc=loc,
        )
    if float_only and not dtypes.is_float(rr.dtype):
        raise NkiTypeError(
            f"{api}: reduce_res must have a float dtype, got {dtypes.name_of(rr.dtype)}",
            code="err_unsupported_dtype",
            values={"reduce_res": dtypes.name_of(rr.dtype)},
            loc=loc,
        )
    return rr


def _fold_rows(rop: str, acc: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """acc (p,) folded with every element of each row of vals (p, n), in fp32."""
    if vals.shape[0] == 0 or vals.shape[1] == 0:
        return acc
    with np.errstate(all="ignore"):
        if rop == "add":
            return acc + np.add.reduce(vals, axis=1, dtype=np.float32)
        if rop == "subtract":
            return acc - np.add.reduce(vals, axis=1, dtype=np.float32)
        if rop == "multiply":
            return acc * np.multiply.reduce(vals, axis=1, dtype=np.float32)
        if rop == "maximum":
            return np.maximum(acc, vals.max(axis=1))
        if rop == "minimum":
            return np.minimum(acc, vals.min(axis=1))
    raise NkiTypeError(f"operator {rop!r} cannot accumulate into the Vector registers", values={"reduce_op": rop})


def vector_accumulate(
    run: Any, api: str, loc: SourceLoc, rop: str, vals: np.ndarray, cmd: str, init: Any = None
) -> np.ndarray:
    """Apply reduce_cmd to the Vector accumulator lanes [0, p) with the fp32 rows `vals` (p, n); returns them."""
    acc = run.accumulator("Vector")
    p = vals.shape[0]
    if cmd == "idle":
        run.extra[_ACC_UNSPECIFIED] = True
        return acc[:p]
    if cmd in ("reset", "reset_reduce"):
        acc[:p] = alu.REDUCE_IDENTITY.get(rop, 0.0)
        run.extra[_ACC_UNSPECIFIED] = False
    elif cmd == "load_reduce":
        acc[:p] = np.broadcast_to(np.asarray(0.0 if init is None else init, dtype=np.float32).reshape(-1), (p,))
        run.extra[_ACC_UNSPECIFIED] = False
    elif cmd == "reduce" and run.extra.get(_ACC_UNSPECIFIED):
        run.warn(
            "warn_accumulator_state_unspecified",
            f"{api} accumulates (reduce_cmd=reduce) into Vector-engine accumulator registers whose state is "
            "unspecified after an instruction that ran with reduce_cmd=idle; start the chain with reset_reduce",
            loc,
        )
    if cmd in ("reduce", "reset_reduce", "load_reduce"):
        acc[:p] = _fold_rows(rop, acc[:p], vals)
    return acc[:p]


def _readout(reduce_res: Tensor | None, regs: np.ndarray, negate: bool = False) -> None:
    if reduce_res is not None:
        v = -regs if negate else regs
        reduce_res.write(np.asarray(v, dtype=np.float32).reshape(reduce_res.shape))


def _check_arith(api: str, loc: SourceLoc, **ops: str) -> None:
    for k, n in ops.items():
        if n in alu.BITVEC:
            raise NkiValidationError(
                f"{api}: {k}={n} is a bit-vector operator; this instruction takes arithmetic operators only",
                code="err_invalid_operator",
                values={k: n},
                loc=loc,
            )
        if n and n not in alu.BINARY:
            raise NkiValidationError(
                f"{api}: {k}={n} is not a binary ALU operator",
                code="err_invalid_operator",
                values={k: n},
                loc=loc,
            )


def _cycles_plus_ii(instr: Instruction, arch: Arch, cycles: float) -> float:
    return _cycles_ns(instr, arch, cycles) + arch.min_ii_cycles / arch.clock_ghz[_engine_of(instr)]


# ----------------------------------------------------------------------------------------- costs of the rest
def per_element_cost(instr: Instruction, arch: Arch) -> float:
    """max(MIN_II, N) engine cycles."""
    return _cycles_ns(instr, arch, instr.free)


def two_pass_cost(instr: Instruction, arch: Arch) -> float:
    """max(MIN_II, 2N) engine cycles (tensor_tensor_scan)."""
    return _cycles_ns(instr, arch, 2 * instr.free)


def tensor_scalar_reduce_cost(instr: Instruction, arch: Arch) -> float:
    """max(MIN_II, N) + MIN_II Vector cycles (the reduction read-out costs one more MIN_II)."""
    return _cycles_plus_ii(instr, arch, instr.free)


def scalar_tensor_tensor_cost(instr: Instruction, arch: Arch) -> float:
    """N cycles for bf16 (subtract, multiply) with even N, else 2N."""
    return _cycles_ns(instr, arch, instr.free if instr.attrs.get("fast") else 2 * instr.free)


def bn_aggr_cost(instr: Instruction, arch: Arch) -> float:
    """max(MIN_II, 13 * N / 3) Vector cycles."""
    return _cycles_ns(instr, arch, 13 * instr.free / 3)


def predicated_cost(instr: Instruction, arch: Arch) -> float:
    """max(MIN_II, N) when one of the two inputs is in PSUM and the other in SBUF, else max(MIN_II, 2N)."""
    cycles = instr.free if instr.attrs.get("one_psum") else 2 * instr.free
    if instr.attrs.get("reduce_readout"):
        return _cycles_plus_ii(instr, arch, cycles)
    return _cycles_ns(instr, arch, cycles)


def dynamic_copy_cost(instr: Instruction, arch: Arch) -> float:
    """max(MIN_II_DYNAMIC, N) with MIN_II_DYNAMIC ~ 600 cycles (runtime address generation)."""
    cycles = max(instr.free, arch.extra.get("min_ii_dynamic_cycles", 600))
    return _cycles_ns(instr, arch, cycles)


TENSOR_SCALAR_REDUCE = c.spec(
    "tensor_scalar_reduce",
    Engine.VECTOR,
    "TENSOR_SCALAR_REDUCE",
    tensor_scalar_reduce_cost,
    "dst = data op0 operand0; accumulators (op)= reduce(dst)",
)
TENSOR_TENSOR_SCAN = c.spec(
    "tensor_tensor_scan", Engine.VECTOR, "TENSOR_TENSOR_SCAN", two_pass_cost, "r[i] = op1(op0(data0[i], r[i-1]), data1[i])"
)
SCALAR_TENSOR_TENSOR = c.spec(
    "scalar_tensor_tensor",
    Engine.VECTOR,
    "SCALAR_TENSOR_TENSOR",
    scalar_tensor_tensor_cost,
    "dst = (data op0 operand0) op1 operand1",
)
BN_STATS = c.spec("bn_stats", Engine.VECTOR, "BN_STATS", per_element_cost, "count/mean/M2 of even and odd elements")
BN_AGGR = c.spec("bn_aggr", Engine.VECTOR, "BN_AGGR", bn_aggr_cost, "combine bn_stats triples into mean, variance")
DROPOUT = c.spec("dropout", Engine.VECTOR, "DROPOUT", per_element_cost, "zero elements with probability prob")
SELECT_REDUCE = c.spec(
    "select_reduce", Engine.VECTOR, "SELECT_REDUCE", predicated_cost, "dst = where(pred, on_true, on_false); max"
)
RANGE_SELECT = c.spec(
    "range_select", Engine.VECTOR, "RANGE_SELECT", per_element_cost, "keep elements whose index is in range; max"
)
MAX8 = c.spec("max8", Engine.VECTOR, "MAX8", per_element_cost, "8 largest values per partition")
FIND_INDEX8 = c.spec("nc_find_index8", Engine.VECTOR, "FIND_INDEX8", per_element_cost, "indices of 8 values")
MATCH_REPLACE8 = c.spec(
    "nc_match_replace8", Engine.VECTOR, "MATCH_REPLACE8", per_element_cost, "replace first matches of 8 values"
)
STREAM_SHUFFLE = c.spec(
    "nc_stream_shuffle", Engine.VECTOR, "STREAM_SHUFFLE", per_element_cost, "shuffle partitions within quadrants"
)
COPY_PREDICATED = c.spec(
    "tensor_copy_predicated", Engine.VECTOR, "COPY_PREDICATED", predicated_cost, "dst = src where predicate"
)
COPY_DYNAMIC_SRC = c.spec(
    "tensor_copy_dynamic_src", Engine.VECTOR, "TENSOR_COPY_DYNAMIC", dynamic_copy_cost, "copy from a runtime offset"
)
COPY_DYNAMIC_DST = c.spec(
    "tensor_copy_dynamic_dst", Engine.VECTOR, "TENSOR_COPY_DYNAMIC", dynamic_copy_cost, "copy to a runtime offset"
)


def _rows(t: Tensor, api: str, name: str, loc: SourceLoc) -> np.ndarray:
    """fp32 values of t as (partitions, elements per partition)."""
    return dtypes.to_fp32(c.read_operand(t, api, name, loc)).reshape(t.partitions, -1)


# ----------------------------------------------------------------------------------------- tensor_scalar_reduce
def tensor_scalar_reduce(
    dst: Tensor,
    data: Tensor,
    op0: Any,
    operand0: Any,
    reduce_op: Any,
    reduce_res: Tensor | None = None,
    reverse0: bool = False,
    *,
    reduce_cmd: Any = "reset_reduce",
    reduce_init: Any = None,
    reduce_res_negate: bool = False,
    loc: SourceLoc | None = None,
    api: str = "tensor_scalar_reduce",
) -> Instruction:
    """dst = data op0 operand0; the fp32 result is reduced along all free axes into the Vector accumulators
    (reduce_cmd, default reset_reduce) and read out into reduce_res [P, 1]."""
    loc = loc or c.here()
    run = current()
    c.check_operands(api, loc, data=data, dst=dst)
    p = c.check_partitions_match(api, loc, data=data, dst=dst)
    c.check_free_match(api, loc, data=data, dst=dst)
    n0 = alu.op_name(op0)
    if n0 in alu.BITVEC:
        raise NkiValidationError(
            f"{api}: op0={n0} is a bit-vector operator; only arithmetic operators are supported",
            code="err_invalid_operator",
            values={"op0": n0},
            loc=loc,
        )
    rop = _check_vector_reduce_op(api, loc, reduce_op, VECTOR_ACC_REDUCE_OPS)
    cmd = vector_reduce_cmd(reduce_cmd, api, loc)
    rr = _check_reduce_res(api, loc, reduce_res, p) if reduce_res is not None else None
    s0 = c.scalar_or_vector(api, loc, "operand0", operand0, p)
    init = c.scalar_or_vector(api, loc, "reduce_init", reduce_init, p) if reduce_init is not None else None
    if run.numerics:
        x = _as_2d(c.read_operand(data, api, "data", loc), p)
        res = np.asarray(_scalar_step(n0, x, s0, reverse0), dtype=np.float32)
        dst.write(res.reshape(dst.shape))
        regs = vector_accumulate(run, api, loc, rop, res.reshape(p, -1), cmd, init)
        _readout(rr, regs, reduce_res_negate)
    reads = [data] + [t for t in (operand0, reduce_init) if isinstance(t, Tensor)]
    return c.emit(
        TENSOR_SCALAR_REDUCE,
        loc,
        reads,
        [dst] + ([rr] if rr is not None else []),
        flops=2 * dst.size,
        partitions=p,
        free=data.free_size,
        in_dtype=data.dtype,
        out_dtype=dst.dtype,
        attrs={"op0": n0, "reduce_op": rop, "reduce_cmd": cmd, "reduce_readout": rr is not None},
    )


# ----------------------------------------------------------------------------------------- tensor_tensor_scan
def tensor_tensor_scan(
    dst: Tensor,
    data0: Tensor,
    data1: Tensor,
    initial: Any,
    op0: Any,
    op1: Any,
    reverse0: bool = False,
    reverse1: bool = False,
    *,
    loc: SourceLoc | None = None,
    api: str = "tensor_tensor_scan",
) -> Instruction:
    """Per partition: r[0] = op1(op0(data0[0], initial), data1[0]); r[i] = op1(op0(data0[i], r[i-1]), data1[i])
    (reverse0 swaps op0's operands, reverse1 op1's); fp32 math over the flattened free axes."""
    loc = loc or c.here()
    run = current()
    c.check_operands(api, loc, data0=data0, data1=data1, dst=dst)
    c.check_not_both_psum(api, loc, data0, data1, ("data0", "data1"))
    p = c.check_partitions_match(api, loc, data0=data0, data1=data1, dst=dst)
    c.check_free_match(api, loc, data0=data0, data1=data1, dst=dst)
    n0, n1 = alu.op_name(op0), alu.op_name(op1)
    _check_arith(api, loc, op0=n0, op1=n1)
    init = c.scalar_or_vector(api, loc, "initial", initial, p)
    if run.numerics:
        a = _rows(data0, api, "data0", loc)
        b = _rows(data1, api, "data1", loc)
        f0, f1 = alu.binary(n0), alu.binary(n1)
        prev = np.broadcast_to(np.asarray(init, dtype=np.float32).reshape(-1), (p,)).astype(np.float32)
        out = np.empty(a.shape, dtype=np.float32)
        with np.errstate(all="ignore"):
            for i in range(a.shape[1]):
                t = np.asarray(f0(prev, a[:, i]) if reverse0 else f0(a[:, i], prev), dtype=np.float32)
                prev = np.asarray(f1(b[:, i], t) if reverse1 else f1(t, b[:, i]), dtype=np.float32)
                out[:, i] = prev
        dst.write(out.reshape(dst.shape))
    return c.emit(
        TENSOR_TENSOR_SCAN,
        loc,
        [data0, data1] + ([initial] if isinstance(initial, Tensor) else []),
        [dst],
        flops=2 * dst.size,
        partitions=p,
        free=data0.free_size,
        in_dtype=dtypes.promote(data0.dtype, data1.dtype),
        out_dtype=dst.dtype,
        attrs={"op0": n0, "op1": n1},
    )


# ----------------------------------------------------------------------------------------- scalar_tensor_tensor
def scalar_tensor_tensor(
    dst: Tensor,
    data: Tensor,
    op0: Any,
    operand0: Any,
    op1: Any,
    operand1: Tensor,
    reverse0: bool = False,
    reverse1: bool = False,
    *,
    loc: SourceLoc | None = None,
    api: str = "scalar_tensor_tensor",
) -> Instruction:
    """dst = (data op0 operand0) op1 operand1: operand0 a scalar or [P,1] vector, operand1 a full tile (fp32 math)."""
    loc = loc or c.here()
    run = current()
    c.check_operands(api, loc, data=data, operand1=operand1, dst=dst)
    c.check_not_both_psum(api, loc, data, operand1, ("data", "operand1"))
    p = c.check_partitions_match(api, loc, data=data, operand1=operand1, dst=dst)
    c.check_free_match(api, loc, data=data, operand1=operand1, dst=dst)
    n0, n1 = alu.op_name(op0), alu.op_name(op1)
    _check_arith(api, loc, op0=n0, op1=n1)
    s0 = c.scalar_or_vector(api, loc, "operand0", operand0, p)
    if run.numerics:
        x = _rows(data, api, "data", loc)
        y = _rows(operand1, api, "operand1", loc)
        t = _scalar_step(n0, x, s0, reverse0)
        with np.errstate(all="ignore"):
            res = alu.apply_binary(n1, y, t) if reverse1 else alu.apply_binary(n1, t, y)
        dst.write(np.asarray(res, dtype=np.float32).reshape(dst.shape))
    n = data.free_size
    fast = (
        data.dtype == dtypes.bfloat16
        and operand1.dtype == dtypes.bfloat16
        and (n0, n1) == ("subtract", "multiply")
        and n % 2 == 0
    )
    ins = [data, operand1] + ([operand0] if isinstance(operand0, Tensor) else [])
    return c.emit(
        SCALAR_TENSOR_TENSOR,
        loc,
        ins,
        [dst],
        flops=2 * dst.size,
        partitions=p,
        free=n,
        in_dtype=dtypes.promote(data.dtype, operand1.dtype),
        out_dtype=dst.dtype,
        attrs={"op0": n0, "op1": n1, "fast": fast, **_layout_attrs([data, operand1], [dst])},
    )


# ----------------------------------------------------------------------------------------- bn_stats / bn_aggr
BN_STATS_FMAX = 512


def bn_stats(dst: Tensor, data: Tensor, *, loc: SourceLoc | None = None, api: str = "bn_stats") -> Instruction:
    """Per partition: (count, mean, variance*count) of the even elements, then of the odd elements (fp32)."""
    loc = loc or c.here()
    run = current()
    c.check_operands(api, loc, data=data, dst=dst)
    p = c.check_partitions_match(api, loc, data=data, dst=dst)
    n = data.free_size
    if n > BN_STATS_FMAX:
        raise NkiValidationError(
            f"{api}: data has {n} elements per partition, more than bn_stats_fmax={BN_STATS_FMAX}",
            code="err_size_of_dimension_exceed_arch_limit",
            values={"data": data.shape, "bn_stats_fmax": BN_STATS_FMAX},
            loc=loc,
            hint="run bn_stats on 512-element slices into one stats tile and combine them with one bn_aggr",
        )
    if dst.free_size != 6:
        raise NkiValidationError(
            f"{api}: the output holds 6 elements per partition, got dst of shape {dst.shape}",
            code="err_shape_mismatch",
            values={"dst": dst.shape},
            loc=loc,
        )
    if run.numerics:
        x = _rows(data, api, "data", loc)
        out = np.zeros((p, 6), dtype=np.float32)
        with np.errstate(all="ignore"):
            for k, half in enumerate((x[:, 0::2], x[:, 1::2])):
                cnt = half.shape[1]
                if cnt == 0:
                    continue
                mean = np.add.reduce(half, axis=1, dtype=np.float32) / np.float32(cnt)
                dev = half - mean[:, None]
                out[:, 3 * k] = cnt
                out[:, 3 * k + 1] = mean
                out[:, 3 * k + 2] = np.add.reduce(dev * dev, axis=1, dtype=np.float32)
        dst.write(out.reshape(dst.shape))
    return c.emit(
        BN_STATS, loc, [data], [dst], flops=3 * data.size, partitions=p, free=n, in_dtype=data.dtype,
        out_dtype=dst.dtype,
    )


def bn_aggr(dst: Tensor, data: Tensor, *, loc: SourceLoc | None = None, api: str = "bn_aggr") -> Instruction:
    """Combine (count, mean, variance*count) triples per partition into (mean, variance) (fp32)."""
    loc = loc or c.here()
    run = current()
    c.check_operands(api, loc, data=data, dst=dst)
    p = c.check_partitions_match(api, loc, data=data, dst=dst)
    n = data.free_size
    if n == 0 or n % 3:
        raise NkiValidationError(
            f"{api}: data must hold (count, mean, variance*count) triples, but has {n} elements per partition "
            "(not a multiple of 3)",
            code="err_shape_mismatch",
            values={"data": data.shape},
            loc=loc,
        )
    if dst.free_size != 2:
        raise NkiValidationError(
            f"{api}: the output holds 2 elements per partition (mean, variance), got dst of shape {dst.shape}",
            code="err_shape_mismatch",
            values={"dst": dst.shape},
            loc=loc,
        )
    if run.numerics:
        d = _rows(data, api, "data", loc).reshape(p, -1, 3)
        cnt, mean, m2 = d[:, :, 0], d[:, :, 1], d[:, :, 2]
        with np.errstate(all="ignore"):
            total = np.add.reduce(cnt, axis=1, dtype=np.float32)
            mu = np.add.reduce(cnt * mean, axis=1, dtype=np.float32) / total
            dev = mean - mu[:, None]
            m2_all = np.add.reduce(m2, axis=1, dtype=np.float32) + np.add.reduce(cnt * dev * dev, axis=1, dtype=np.float32)
            out = np.stack([mu, m2_all / total], axis=1).astype(np.float32)
        dst.write(out.reshape(dst.shape))
    return c.emit(
        BN_AGGR, loc, [data], [dst], flops=3 * data.size, partitions=p, free=n, in_dtype=data.dtype,
        out_dtype=dst.dtype,
    )


# ----------------------------------------------------------------------------------------- dropout
def dropout(dst: Tensor, data: Tensor, prob: Any, *, loc: SourceLoc | None = None, api: str = "dropout") -> Instruction:
    """Zero each element with probability prob (scalar or [P,1] vector); kept elements are unchanged (no rescale)."""
    loc = loc or c.here()
    run = current()
    c.check_operands(api, loc, data=data, dst=dst)
    p = c.check_partitions_match(api, loc, data=data, dst=dst)
    c.check_free_match(api, loc, data=data, dst=dst)
    is_int = dtypes.is_int(data.dtype)
    if isinstance(prob, Tensor):
        if is_int and prob.dtype != dtypes.float32:
            raise NkiTypeError(
                f"{api}: with integer data ({dtypes.name_of(data.dtype)}) prob must be float32, got "
                f"{dtypes.name_of(prob.dtype)}",
                code="err_unsupported_dtype",
                values={"prob": dtypes.name_of(prob.dtype), "data": dtypes.name_of(data.dtype)},
                loc=loc,
            )
        if not is_int and not dtypes.is_float(prob.dtype):
            raise NkiTypeError(
                f"{api}: prob must have a float dtype, got {dtypes.name_of(prob.dtype)}",
                code="err_unsupported_dtype",
                values={"prob": dtypes.name_of(prob.dtype)},
                loc=loc,
            )
    if is_int and dst.dtype != data.dtype:
        raise NkiTypeError(
            f"{api}: with integer data the output dtype must equal the input dtype {dtypes.name_of(data.dtype)}, got "
            f"{dtypes.name_of(dst.dtype)}",
            code="err_unsupported_dtype",
            values={"data": dtypes.name_of(data.dtype), "dst": dtypes.name_of(dst.dtype)},
            loc=loc,
        )
    pr = c.scalar_or_vector(api, loc, "prob", prob, p)
    if not isinstance(pr, np.ndarray) and not 0.0 <= float(pr) <= 1.0:
        raise NkiValidationError(
            f"{api}: prob must be a probability in [0, 1], got {pr}",
            code="err_invalid_operand",
            values={"prob": pr},
            loc=loc,
        )
    if run.numerics:
        raw = c.read_operand(data, api, "data", loc).reshape(p, -1)
        x = raw if is_int else dtypes.to_fp32(raw)
        keep = run.rng.random(x.shape, dtype=np.float32) >= np.asarray(pr, dtype=np.float32)
        out = np.where(keep, x, np.zeros((), dtype=x.dtype))
        dst.write(out.reshape(dst.shape))
    return c.emit(
        DROPOUT,
        loc,
        [data] + ([prob] if isinstance(prob, Tensor) else []),
        [dst],
        partitions=p,
        free=data.free_size,
        in_dtype=data.dtype,
        out_dtype=dst.dtype,
    )


# ----------------------------------------------------------------------------------------- select_reduce
_PREDICATE_DTYPES = (dtypes.int8, dtypes.uint8, dtypes.int16, dtypes.uint16, dtypes.bool_)
_COPY_PREDICATE_DTYPES = (dtypes.uint8, dtypes.uint16, dtypes.uint32, dtypes.bool_)


def _predicate_rows(pred: Tensor, api: str, loc: SourceLoc, reverse: bool) -> np.ndarray:
    v = c.read_operand(pred, api, "predicate", loc).reshape(pred.partitions, -1) != 0
    return ~v if reverse else v


def select_reduce(
    dst: Tensor,
    predicate: Tensor,
    on_true: Tensor,
    on_false: Any,
    reduce_res: Tensor | None = None,
    reduce_cmd: Any = "idle",
    reduce_op: Any = "maximum",
    reverse_pred: bool = False,
    *,
    loc: SourceLoc | None = None,
    api: str = "select_reduce",
) -> Instruction:
    """dst = where(predicate (negated by reverse_pred), on_true, on_false); optional max into the Vector
    accumulators (reduce_cmd) with read-out into reduce_res."""
    loc = loc or c.here()
    run = current()
    c.check_operands(api, loc, predicate=predicate, on_true=on_true, dst=dst)
    c.check_not_both_psum(api, loc, on_true, predicate, ("on_true", "predicate"))
    p = c.check_partitions_match(api, loc, predicate=predicate, on_true=on_true, dst=dst)
    c.check_free_match(api, loc, predicate=predicate, on_true=on_true, dst=dst)
    if on_true.dtype in (dtypes.int32, dtypes.uint32):
        raise NkiTypeError(
            f"{api}: on_true cannot be {dtypes.name_of(on_true.dtype)} (tfloat32, int32 and uint32 are not supported)",
            code="err_unsupported_dtype",
            values={"on_true": dtypes.name_of(on_true.dtype)},
            loc=loc,
        )
    c.check_dtype(api, loc, "predicate", predicate, _PREDICATE_DTYPES, "predicates are 8/16-bit integers")
    rop = _check_vector_reduce_op(api, loc, reduce_op, ("maximum",))
    cmd = vector_reduce_cmd(reduce_cmd, api, loc, ("idle", "reset", "reduce", "reset_reduce"))
    rr = _check_reduce_res(api, loc, reduce_res, p, float_only=True) if reduce_res is not None else None
    if rr is not None and cmd == "idle":
        run.warn(
            "warn_reduce_cmd_idle",
            f"{api}: reduce_res is given but reduce_cmd is idle, so it receives the unspecified accumulator state; "
            "pass reduce_cmd=reset_reduce to reduce this instruction's result",
            loc,
        )
    off = c.scalar_or_vector(api, loc, "on_false", on_false, p)
    if run.numerics:
        pred = _predicate_rows(predicate, api, loc, reverse_pred)
        x = _rows(on_true, api, "on_true", loc)
        res = np.where(pred, x, np.asarray(off, dtype=np.float32)).astype(np.float32)
        dst.write(res.reshape(dst.shape))
        regs = vector_accumulate(run, api, loc, rop, res, cmd)
        _readout(rr, regs)
    ins = [predicate, on_true] + ([on_false] if isinstance(on_false, Tensor) else [])
    one_psum = (on_true.storage.buffer.kind == "psum") != (predicate.storage.buffer.kind == "psum")
    return c.emit(
        SELECT_REDUCE,
        loc,
        ins,
        [dst] + ([rr] if rr is not None else []),
        partitions=p,
        free=on_true.free_size,
        in_dtype=on_true.dtype,
        out_dtype=dst.dtype,
        attrs={"reduce_cmd": cmd, "one_psum": one_psum, "reduce_readout": rr is not None},
    )


# ----------------------------------------------------------------------------------------- range_select
FP32_MIN = float(np.float32(-3.4028235e38))
_RANGE_CMP = ("equal", "less", "less_equal", "greater", "greater_equal")


def range_select(
    dst: Tensor,
    on_true_tile: Tensor,
    comp_op0: Any,
    comp_op1: Any,
    bound0: Tensor,
    bound1: Tensor,
    reduce_cmd: Any = "reset_reduce",
    reduce_res: Tensor | None = None,
    reduce_op: Any = "maximum",
    range_start: int = 0,
    on_false_value: Any = FP32_MIN,
    *,
    loc: SourceLoc | None = None,
    api: str = "range_select",
) -> Instruction:
    """Keep on_true_tile[p, i] where comp_op0(range_start + i, bound0[p]) and comp_op1(range_start + i, bound1[p])
    (fp32 compares over the flattened free index), else FP32_MIN; max-reduce into the Vector accumulators."""
    loc = loc or c.here()
    run = current()
    c.check_nc_version(api, loc, run, 3)
    c.check_operands(api, loc, on_true_tile=on_true_tile, bound0=bound0, bound1=bound1, dst=dst)
    p = c.check_partitions_match(api, loc, on_true_tile=on_true_tile, bound0=bound0, bound1=bound1, dst=dst)
    c.check_free_match(api, loc, on_true_tile=on_true_tile, dst=dst)
    for nm, b in (("bound0", bound0), ("bound1", bound1)):
        if b.free_size != 1:
            raise NkiValidationError(
                f"{api}: {nm} must have one element per partition, got shape {b.shape}",
                code="err_shape_mismatch",
                values={nm: b.shape},
                loc=loc,
            )
        c.check_dtype(api, loc, nm, b, (dtypes.float32,), "bounds are compared in fp32")
    if not dtypes.is_float(on_true_tile.dtype):
        raise NkiTypeError(
            f"{api}: on_true_tile must have a float dtype, got {dtypes.name_of(on_true_tile.dtype)}",
            code="err_unsupported_dtype",
            values={"on_true_tile": dtypes.name_of(on_true_tile.dtype)},
            loc=loc,
        )
    ops = {}
    for nm, op in (("comp_op0", comp_op0), ("comp_op1", comp_op1)):
        ops[nm] = alu.op_name(op)
        if ops[nm] not in _RANGE_CMP:
            raise NkiValidationError(
                f"{api}: {nm} must be one of {', '.join(_RANGE_CMP)}, got {ops[nm]}",
                code="err_invalid_operator",
                values={nm: ops[nm]},
                loc=loc,
            )
    if not isinstance(range_start, (int, np.integer)) or isinstance(range_start, bool):
        raise NkiValidationError(
            f"{api}: range_start must be a compile-time integer, got {range_start!r}",
            code="err_invalid_operand",
            values={"range_start": range_start},
            loc=loc,
        )
    if np.float32(on_false_value) != np.float32(FP32_MIN):
        raise NkiValidationError(
            f"{api}: on_false_value must be FP32_MIN (nl.fp32.min = -3.4028235e38), got {on_false_value!r}",
            code="err_invalid_operand",
            values={"on_false_value": on_false_value},
            loc=loc,
        )
    rop = _check_vector_reduce_op(api, loc, reduce_op, ("maximum",))
    cmd = vector_reduce_cmd(reduce_cmd, api, loc, ("idle", "reset", "reduce", "reset_reduce"))
    rr = _check_reduce_res(api, loc, reduce_res, p) if reduce_res is not None else None
    n = on_true_tile.free_size
    if run.numerics:
        x = _rows(on_true_tile, api, "on_true_tile", loc)
        idx = (np.float32(range_start) + np.arange(n, dtype=np.float32))[None, :]
        b0 = _rows(bound0, api, "bound0", loc)
        b1 = _rows(bound1, api, "bound1", loc)
        keep = (alu.apply_binary(ops["comp_op0"], idx, b0) != 0) & (alu.apply_binary(ops["comp_op1"], idx, b1) != 0)
        res = np.where(keep, x, np.float32(FP32_MIN)).astype(np.float32)
        dst.write(res.reshape(dst.shape))
        regs = vector_accumulate(run, api, loc, rop, res, cmd)
        if rr is not None and cmd == "idle":
            run.warn(
                "warn_reduce_cmd_idle",
                f"{api}: reduce_res is given but reduce_cmd is idle, so it receives the unspecified accumulator "
                "state; pass reduce_cmd=reset_reduce to reduce this instruction's result",
                loc,
            )
        _readout(rr, regs)
    return c.emit(
        RANGE_SELECT,
        loc,
        [on_true_tile, bound0, bound1],
        [dst] + ([rr] if rr is not None else []),
        partitions=p,
        free=n,
        in_dtype=on_true_tile.dtype,
        out_dtype=dst.dtype,
        attrs={"comp_op0": ops["comp_op0"], "comp_op1": ops["comp_op1"], "reduce_cmd": cmd},
    )


# ----------------------------------------------------------------------------------------- max8 / find / replace
MAX8_FMAX = 16384


def _check_elems(api: str, loc: SourceLoc, name: str, t: Tensor, lo: int, hi: int) -> None:
    n = t.free_size
    if not lo <= n <= hi:
        raise NkiValidationError(
            f"{api}: '{name}' must have between {lo} and {hi} elements per partition, got {n}",
            code="err_size_of_dimension_exceed_arch_limit",
            values={name: t.shape},
            loc=loc,
        )


def _check_eight(api: str, loc: SourceLoc, name: str, t: Tensor) -> None:
    if t.free_size != 8:
        raise NkiValidationError(
            f"{api}: '{name}' must have exactly 8 elements per partition, got shape {t.shape}",
            code="err_shape_mismatch",
            values={name: t.shape},
            loc=loc,
        )


def max8(dst: Tensor, src: Tensor, *, loc: SourceLoc | None = None, api: str = "max8") -> Instruction:
    """The 8 largest values of each partition (fp32 compares), in descending order, into dst [P, 8]."""
    loc = loc or c.here()
    run = current()
    c.check_operands(api, loc, src=src, dst=dst)
    p = c.check_partitions_match(api, loc, src=src, dst=dst)
    _check_elems(api, loc, "src", src, 8, MAX8_FMAX)
    _check_eight(api, loc, "dst", dst)
    if run.numerics:
        x = _rows(src, api, "src", loc)
        top = -np.sort(-x, axis=1)[:, :8]
        dst.write(top.reshape(dst.shape))
    return c.emit(
        MAX8, loc, [src], [dst], partitions=p, free=src.free_size, in_dtype=src.dtype, out_dtype=dst.dtype
    )


_NOT_FOUND = np.uint64(0xFFFFFFFF)


def _warn_unmatched(run: Any, api: str, loc: SourceLoc, missing: int) -> None:
    if missing:
        run.warn(
            "warn_undefined_behavior",
            f"{api}: {missing} of the searched values do not occur in data; hardware behaviour is undefined "
            "(trnsim writes all-ones indices)",
            loc,
        )


def nc_find_index8(
    dst: Tensor, data: Tensor, vals: Tensor, *, loc: SourceLoc | None = None, api: str = "nc_find_index8"
) -> Instruction:
    """dst[p, j] = flattened index of the first occurrence of vals[p, j] in data[p] (fp32 compares); a value that
    appears k times in vals takes successive occurrences."""
    loc = loc or c.here()
    run = current()
    c.check_operands(api, loc, data=data, vals=vals, dst=dst)
    p = c.check_partitions_match(api, loc, data=data, vals=vals, dst=dst)
    _check_elems(api, loc, "data", data, 8, MAX8_FMAX)
    _check_eight(api, loc, "vals", vals)
    _check_eight(api, loc, "dst", dst)
    c.check_dtype(api, loc, "dst", dst, (dtypes.uint32, dtypes.uint16), "indices are uint16 or uint32")
    if run.numerics:
        x = _rows(data, api, "data", loc)
        v = _rows(vals, api, "vals", loc)
        out = np.full((p, 8), _NOT_FOUND, dtype=np.uint64)
        rows = np.arange(p)
        for j in range(8):
            eq = x == v[:, j : j + 1]
            k = np.sum(v[:, :j] == v[:, j : j + 1], axis=1)  # earlier duplicates take earlier occurrences
            cs = np.cumsum(eq, axis=1)
            hit = eq & (cs == (k + 1)[:, None])
            found = hit.any(axis=1)
            out[rows[found], j] = np.argmax(hit[found], axis=1)
        _warn_unmatched(run, api, loc, int(np.sum(out == _NOT_FOUND)))
        dst.write(out.reshape(dst.shape))
    return c.emit(
        FIND_INDEX8,
        loc,
        [data, vals],
        [dst],
        partitions=p,
        free=data.free_size,
        in_dtype=data.dtype,
        out_dtype=dst.dtype,
    )


def nc_match_replace8(
    dst: Tensor,
    data: Tensor,
    vals: Tensor,
    imm: Any,
    dst_idx: Tensor | None = None,
    *,
    loc: SourceLoc | None = None,
    api: str = "nc_match_replace8",
) -> Instruction:
    """dst = data with the first occurrence of each of the 8 vals (taken in order j = 0..7, fp32 compares)
    replaced by imm; optional dst_idx [P, 8] receives the flattened indices of the matches."""
    loc = loc or c.here()
    run = current()
    c.check_operands(api, loc, data=data, vals=vals, dst=dst)
    p = c.check_partitions_match(api, loc, data=data, vals=vals, dst=dst)
    c.check_free_match(api, loc, data=data, dst=dst)
    _check_elems(api, loc, "data", data, 1, MAX8_FMAX)
    _check_eight(api, loc, "vals", vals)
    if dst_idx is not None:
        dst_idx = c.check_tensor(dst_idx, api, "dst_idx", loc)
        c.check_on_chip(dst_idx, api, "dst_idx", loc)
        c.check_partitions_match(api, loc, data=data, dst_idx=dst_idx)
        _check_eight(api, loc, "dst_idx", dst_idx)
        if not dtypes.is_int(dst_idx.dtype):
            raise NkiTypeError(
                f"{api}: dst_idx must have an integer dtype, got {dtypes.name_of(dst_idx.dtype)}",
                code="err_unsupported_dtype",
                values={"dst_idx": dtypes.name_of(dst_idx.dtype)},
                loc=loc,
            )
    if isinstance(imm, Tensor) or not isinstance(imm, (int, float, np.integer, np.floating)):
        raise NkiTypeError(
            f"{api}: imm must be a float32 compile-time constant, got {type(imm).__name__}",
            code="err_invalid_operand",
            values={"imm": imm},
            loc=loc,
        )
    if run.numerics:
        x = _rows(data, api, "data", loc).copy()
        v = _rows(vals, api, "vals", loc)
        idx = np.full((p, 8), _NOT_FOUND, dtype=np.uint64)
        rows = np.arange(p)
        for j in range(8):
            eq = x == v[:, j : j + 1]
            found = eq.any(axis=1)
            first = np.argmax(eq, axis=1)
            r = rows[found]
            x[r, first[found]] = np.float32(imm)
            idx[r, j] = first[found]
        _warn_unmatched(run, api, loc, int(np.sum(idx == _NOT_FOUND)))
        dst.write(x.reshape(dst.shape))
        if dst_idx is not None:
            dst_idx.write(idx.reshape(dst_idx.shape))
    return c.emit(
        MATCH_REPLACE8,
        loc,
        [data, vals],
        [dst] + ([dst_idx] if dst_idx is not None else []),
        partitions=p,
        free=data.free_size,
        in_dtype=data.dtype,
        out_dtype=dst.dtype,
    )


# ----------------------------------------------------------------------------------------- nc_stream_shuffle
def _quadrant_start_ok(start: int, active: int) -> bool:
    if active > 64:
        return start == 0
    if active > 32:
        return start in (0, 64)
    return start in (0, 32, 64, 96)


def nc_stream_shuffle(
    dst: Tensor,
    src: Tensor,
    shuffle_mask: Sequence[Any],
    *,
    where: np.ndarray | None = None,
    loc: SourceLoc | None = None,
    api: str = "nc_stream_shuffle",
) -> Instruction:
    """Within each 32-partition quadrant, dst partition i receives src partition shuffle_mask[i] (255 leaves dst
    partition i unchanged); the same mask applies to every quadrant. `where` (dst-shaped) limits the writes."""
    loc = loc or c.here()
    run = current()
    c.check_operands(api, loc, src=src, dst=dst)
    c.check_free_match(api, loc, src=src, dst=dst)
    if src.dtype != dst.dtype:
        raise NkiTypeError(
            f"{api}: dst dtype {dtypes.name_of(dst.dtype)} must equal src dtype {dtypes.name_of(src.dtype)}",
            code="err_unsupported_dtype",
            values={"src": dtypes.name_of(src.dtype), "dst": dtypes.name_of(dst.dtype)},
            loc=loc,
        )
    mask = list(shuffle_mask) if isinstance(shuffle_mask, (list, tuple, np.ndarray)) else None
    if mask is None or len(mask) != 32:
        raise NkiValidationError(
            f"{api}: shuffle_mask must be a list of 32 partition indices, got {shuffle_mask!r}",
            code="err_invalid_operand",
            values={"shuffle_mask": shuffle_mask},
            loc=loc,
        )
    try:
        mask = [int(m) for m in mask]
    except (TypeError, ValueError):
        mask = [-1]
    bad = [m for m in mask if not (0 <= m < 32 or m == 255)]
    if bad:
        raise NkiValidationError(
            f"{api}: shuffle_mask entries must be source partitions 0..31 within the quadrant or 255 (keep), "
            f"got {bad[0]!r}",
            code="err_invalid_operand",
            values={"shuffle_mask": shuffle_mask},
            loc=loc,
        )
    ps, pd = src.partitions, dst.partitions
    active = -(-max(ps, pd) // 32) * 32
    for nm, t in (("src", src), ("dst", dst)):
        start = t.region()[0] if t.size else 0
        if not _quadrant_start_ok(start, active):
            raise NkiValidationError(
                f"{api}: '{nm}' starts at partition {start}, but with {active} active partitions the start "
                f"partition must be {'0' if active > 64 else '0 or 64' if active > 32 else '0, 32, 64 or 96'}",
                code="err_unsupported_start_partition",
                values={nm: t.shape, "start_partition": start, "active_partitions": active},
                loc=loc,
            )
    d_rows = np.arange(pd)
    m = np.asarray(mask)[d_rows % 32]
    sel = m != 255
    s_rows = (d_rows // 32) * 32 + np.where(sel, m, 0)
    if np.any(sel & (s_rows >= ps)):
        k = int(np.flatnonzero(sel & (s_rows >= ps))[0])
        raise NkiIndexError(
            f"{api}: dst partition {k} reads src partition {int(s_rows[k])}, but src has only {ps} partitions",
            values={"dst_partition": k, "src_partition": int(s_rows[k]), "src": src.shape},
            loc=loc,
        )
    if run.numerics:
        v = np.array(c.read_operand(src, api, "src", loc)).reshape(ps, -1)
        out = v[np.where(sel, s_rows, 0)]
        w = np.broadcast_to(sel[:, None], out.shape).reshape(dst.shape)
        if where is not None:
            w = w & np.broadcast_to(where, dst.shape)
        dst.write(out.reshape(dst.shape), where=w)
    return c.emit(
        STREAM_SHUFFLE,
        loc,
        [src],
        [dst],
        partitions=max(ps, pd),
        free=src.free_size,
        in_dtype=src.dtype,
        out_dtype=dst.dtype,
        attrs={"shuffle_mask": tuple(mask)},
    )


# ----------------------------------------------------------------------------------------- predicated / dynamic copies
def tensor_copy_predicated(
    dst: Tensor,
    src: Any,
    predicate: Tensor,
    reverse_pred: bool = False,
    *,
    loc: SourceLoc | None = None,
    api: str = "tensor_copy_predicated",
) -> Instruction:
    """dst[i] = src[i] (or the scalar src) where predicate[i] != 0 (== 0 with reverse_pred); other elements keep
    their value. Same-dtype copies are bit exact."""
    loc = loc or c.here()
    run = current()
    c.check_operands(api, loc, predicate=predicate, dst=dst)
    c.check_dtype(api, loc, "predicate", predicate, _COPY_PREDICATE_DTYPES, "predicates are unsigned integers")
    is_tensor = isinstance(src, Tensor) or hasattr(src, "_resolve_plain")
    if is_tensor:
        src = c.check_tensor(src, api, "src", loc)
        c.check_on_chip(src, api, "src", loc)
        c.check_not_both_psum(api, loc, src, predicate, ("src", "predicate"))
        p = c.check_partitions_match(api, loc, src=src, predicate=predicate, dst=dst)
        c.check_free_match(api, loc, src=src, predicate=predicate, dst=dst)
        if src.dtype != dst.dtype:
            raise NkiTypeError(
                f"{api}: src dtype {dtypes.name_of(src.dtype)} must equal dst dtype {dtypes.name_of(dst.dtype)}",
                code="err_unsupported_dtype",
                values={"src": dtypes.name_of(src.dtype), "dst": dtypes.name_of(dst.dtype)},
                loc=loc,
            )
    else:
        p = c.check_partitions_match(api, loc, predicate=predicate, dst=dst)
        c.check_free_match(api, loc, predicate=predicate, dst=dst)
        c.scalar_or_vector(api, loc, "src", src, p)
    if run.numerics:
        pred = _predicate_rows(predicate, api, loc, reverse_pred).reshape(dst.shape)
        if is_tensor:
            vals = np.array(c.read_operand(src, api, "src", loc)).reshape(dst.shape)
        else:
            exact_int = isinstance(src, (int, np.integer)) and dtypes.is_int(dst.dtype)
            vals = np.broadcast_to(np.asarray(src, dtype=np.int64 if exact_int else np.float32), dst.shape)
        dst.write(vals, where=pred)
    ins = ([src] if is_tensor else []) + [predicate]
    one_psum = is_tensor and (src.storage.buffer.kind == "psum") != (predicate.storage.buffer.kind == "psum")
    return c.emit(
        COPY_PREDICATED,
        loc,
        ins + [dst],
        [dst],
        partitions=p,
        free=dst.free_size,
        in_dtype=dst.dtype,
        out_dtype=dst.dtype,
        attrs={"one_psum": one_psum},
    )


def _tensor_copy_dynamic(
    s: c.InstrSpec, dst: Tensor, src: Tensor, offsets: Sequence[Tensor], engine: Any, loc: SourceLoc, api: str
) -> Instruction:
    run = current()
    eng = resolve_engine(engine, Engine.VECTOR)
    if eng not in (Engine.VECTOR, Engine.SCALAR, Engine.GPSIMD):
        raise NkiValidationError(
            f"{api}: runs on the Vector, Scalar or GpSimd engine, not {eng}",
            code="err_invalid_engine",
            values={"engine": eng},
            loc=loc,
        )
    c.check_operands(api, loc, src=src, dst=dst)
    c.check_partitions_match(api, loc, src=src, dst=dst)
    c.check_free_match(api, loc, src=src, dst=dst)
    _check_engine_access(api, loc, eng, src=src, dst=dst)
    for k, o in enumerate(offsets):
        c.check_on_chip(o, api, f"offset{k}", loc, ("sbuf",))
        if not dtypes.is_int(o.dtype):
            raise NkiTypeError(
                f"{api}: a dynamic offset must be an integer scalar in SBUF, got {dtypes.name_of(o.dtype)}",
                code="err_unsupported_dtype",
                values={"offset": dtypes.name_of(o.dtype)},
                loc=loc,
            )
    if run.numerics:
        v = c.read_operand(src, api, "src", loc)
        exact = v.dtype == dst.dtype and (eng != Engine.SCALAR or run.arch.nc_version >= 3)
        dst.write((v if exact else dtypes.to_fp32(v)).reshape(dst.shape))
    return c.emit(
        s,
        loc,
        [src] + list(offsets),
        [dst],
        engine=eng,
        partitions=dst.partitions,
        free=dst.free_size,
        in_dtype=src.dtype,
        out_dtype=dst.dtype,
        attrs={"dynamic": "src" if s is COPY_DYNAMIC_SRC else "dst"},
    )


def tensor_copy_dynamic_src(
    dst: Tensor,
    src: Tensor,
    *,
    offsets: Sequence[Tensor] = (),
    engine: Any = None,
    loc: SourceLoc | None = None,
    api: str = "tensor_copy_dynamic_src",
) -> Instruction:
    """Copy from src, addressed at runtime offsets (`offsets`: the SBUF scalars used to address src)."""
    return _tensor_copy_dynamic(COPY_DYNAMIC_SRC, dst, src, offsets, engine, loc or c.here(), api)


def tensor_copy_dynamic_dst(
    dst: Tensor,
    src: Tensor,
    *,
    offsets: Sequence[Tensor] = (),
    engine: Any = None,
    loc: SourceLoc | None = None,
    api: str = "tensor_copy_dynamic_dst",
) -> Instruction:
    """Copy into dst, addressed at runtime offsets (`offsets`: the SBUF scalars used to address dst)."""
    return _tensor_copy_dynamic(COPY_DYNAMIC_DST, dst, src, offsets, engine, loc or c.here(), api)


# ----------------------------------------------------------------------------------------- random numbers
# One pseudo-random stream per run (`Run.rng`, seeded 0 at launch); `set_rng_seed` reseeds it, so the same
# seed reproduces the same sequence. trnsim does not reproduce the hardware's XORWOW bit stream.
RNG = c.spec("rng", Engine.VECTOR, "RNG", copy_like_cost, "uniform random numbers in [0, 1)")
RNG_SEED = c.spec("set_rng_seed", Engine.VECTOR, "RNG_SEED", lambda i, a: _cycles_ns(i, a, 1), "seed the PRNG")


def random_uniform(
    dst: Tensor, *, engine: Any = None, loc: SourceLoc | None = None, api: str = "rand"
) -> Instruction:
    """dst = uniform random values in [0, 1) (drawn in fp32, rounded to dst's dtype)."""
    loc = loc or c.here()
    run = current()
    eng = resolve_engine(engine, Engine.VECTOR)
    c.check_operands(api, loc, dst=dst)
    _check_engine_access(api, loc, eng, dst=dst)
    if run.numerics:
        dst.write(run.rng.random(dst.shape, dtype=np.float32))
    return c.emit(
        RNG,
        loc,
        [],
        [dst],
        engine=eng,
        partitions=dst.partitions,
        free=dst.free_size,
        out_dtype=dst.dtype,
        attrs=_layout_attrs([], [dst]),
    )


def set_rng_seed(seed: Any, *, loc: SourceLoc | None = None, api: str = "set_rng_seed") -> Instruction:
    """Reseed the random stream from a 32-bit scalar or the first element of an on-chip tensor."""
    loc = loc or c.here()
    run = current()
    reads = []
    if isinstance(seed, Tensor):
        c.check_on_chip(seed, api, "seed", loc)
        reads = [seed]
        if run.numerics:
            v = np.asarray(c.read_operand(seed, api, "seed", loc)).reshape(-1)
            if v.size == 0:
                raise NkiValidationError(f"{api}: the seed tensor is empty", values={"seed": seed.shape}, loc=loc)
            first = v[0] if v.dtype.kind in "iub" else dtypes.to_fp32(v[:1])[0]
            run.rng = np.random.default_rng(int(first) & 0xFFFFFFFF)
    elif isinstance(seed, (int, np.integer, float, np.floating)) and not isinstance(seed, bool):
        run.rng = np.random.default_rng(int(seed) & 0xFFFFFFFF)
    else:
        raise NkiTypeError(
            f"{api}: seed must be a 32-bit integer or an on-chip tensor, got {type(seed).__name__}",
            code="err_invalid_operand",
            values={"seed": seed},
            loc=loc,
        )
    return c.emit(RNG_SEED, loc, reads, [], partitions=1, free=1, attrs={"op": "seed"})


# ---------------------------------------------------------------------------------- current-API (NKI 0.6) additions
# Vector-engine accumulator registers (one fp32 per lane) are shared by tensor_scalar_reduce,
# tensor_scalar_cumulative, select_reduce, range_select and exponential; see `vector_acc_begin`.
TENSOR_SCALAR_CUMULATIVE = c.spec(
    "tensor_scalar_cumulative", Engine.VECTOR, "TENSOR_SCALAR_CUMULATIVE", copy_like_cost, "running scan along free"
)
EXPONENTIAL = c.spec("exponential", Engine.VECTOR, "EXPONENTIAL", copy_like_cost, "exp(src - max) (+ running sum)")
QUANTIZE_MX = c.spec("quantize_mx", Engine.VECTOR, "QUANTIZE_MX", copy_like_cost, "bf16/fp16 -> MXFP8 data + scales")
RNG_BITS = c.spec("rng_bits", Engine.VECTOR, "RNG", copy_like_cost, "32 random bits per element (XORWOW)")
RAND2 = c.spec("rand2", Engine.VECTOR, "RAND2", copy_like_cost, "uniform random values in [min, max] (XORWOW)")
RNG_STATE = c.spec("rng_state", Engine.VECTOR, "RNG_STATE", copy_like_cost, "load/store/seed PRNG state")

_SCAN_OPS = ("add", "subtract", "multiply", "maximum", "minimum")


def vector_acc_begin(run, cmd: str, op: str, p: int, init: Any, api: str, loc: SourceLoc) -> np.ndarray | None:
    """Prepare the Vector-engine accumulators for a reduce_cmd; returns the per-lane register array (or None
    for idle). reset_reduce starts from the identity of `op`, load_reduce from `init` (scalar or [P,1])."""
    if cmd == "idle":
        return None
    acc = run.accumulator("Vector")
    run.extra[_ACC_UNSPECIFIED] = False
    if cmd in ("reset", "reset_reduce"):
        acc[:p] = np.float32(alu.REDUCE_IDENTITY.get(op, 0.0))
    elif cmd == "load_reduce":
        v = c.scalar_or_vector(api, loc, "reduce_init", init, p)
        acc[:p] = np.asarray(v, dtype=np.float32).reshape(-1) if isinstance(v, np.ndarray) else np.float32(v)
    elif cmd != "reduce":
        raise NkiValidationError(
            f"{api}: unsupported reduce_cmd {cmd}", code="err_invalid_reduce_cmd", values={"reduce_cmd": cmd}, loc=loc
        )
    return acc


def tensor_scalar_cumulative(
    dst: Tensor,
    src: Tensor,
    op0: Any,
    op1: Any,
    imm0: Any,
    imm1: Any = None,
    *,
    reduce_cmd: Any = "reset_reduce",
    reverse0: bool = False,
    loc: SourceLoc | None = None,
    api: str = "tensor_scalar_cumulative",
) -> Instruction:
    """reg = op1(op0(src[i], imm0), reg); dst[i] = reg, along the free elements of each partition."""
    from .scalar_engine import reduce_cmd_name

    loc = loc or c.here()
    run = current()
    n0, n1 = alu.op_name(op0), alu.op_name(op1)
    if n0 in alu.BITVEC or n1 not in _SCAN_OPS:
        raise NkiValidationError(
            f"{api}: op0 must be arithmetic and op1 one of {', '.join(_SCAN_OPS)} (got {n0}, {n1})",
            code="err_invalid_operator",
            values={"op0": n0, "op1": n1},
            loc=loc,
        )
    for nm, t in (("src", src), ("dst", dst)):
        c.check_on_chip(c.check_tensor(t, api, nm, loc), api, nm, loc)
        if t.dtype in (dtypes.int32, dtypes.uint32):
            raise NkiTypeError(
                f"{api}: int32/uint32 '{nm}' is not supported", values={nm: dtypes.name_of(t.dtype)}, loc=loc
            )
    p = c.check_partitions_match(api, loc, src=src, dst=dst)
    c.check_free_match(api, loc, src=src, dst=dst)
    cmd = reduce_cmd_name(reduce_cmd)
    s0 = c.scalar_or_vector(api, loc, "imm0", imm0, p)
    if run.numerics:
        acc = vector_acc_begin(run, "reset_reduce" if cmd == "idle" else cmd, n1, p, imm1, api, loc)
        x = dtypes.to_fp32(c.read_operand(src, api, "src", loc)).reshape(p, -1)
        t = _scalar_step(n0, x, s0, reverse0)
        reg = acc[:p].copy()
        out = np.empty_like(t, dtype=np.float32)
        if n1 in ("add", "multiply", "maximum", "minimum"):
            full = np.concatenate([reg[:, None], t], axis=1)
            uf = {"add": np.add, "multiply": np.multiply, "maximum": np.maximum, "minimum": np.minimum}[n1]
            out[...] = uf.accumulate(full, axis=1, dtype=np.float32)[:, 1:]
        else:
            for i in range(t.shape[1]):
                reg = alu.apply_binary(n1, t[:, i], reg)
                out[:, i] = reg
        if out.shape[1]:
            acc[:p] = out[:, -1]
        dst.write(out.reshape(dst.shape))
    reads = [src] + [v for v in (imm0, imm1) if isinstance(v, Tensor)]
    return c.emit(
        TENSOR_SCALAR_CUMULATIVE,
        loc,
        reads,
        [dst],
        flops=2 * dst.size,
        partitions=p,
        free=dst.free_size,
        in_dtype=src.dtype,
        out_dtype=dst.dtype,
        attrs={"op0": n0, "op1": n1, "reduce_cmd": cmd},
    )


def exponential(
    dst: Tensor,
    src: Tensor,
    *,
    max_value: Any = 0.0,
    reduce_res: Tensor | None = None,
    reduce_cmd: Any = "idle",
    reduce_init: Any = 0.0,
    loc: SourceLoc | None = None,
    api: str = "exponential",
) -> Instruction:
    """dst = exp(src - max_value) on the Vector engine (NeuronCore-v4), optionally summed into the accumulators."""
    from .scalar_engine import reduce_cmd_name

    loc = loc or c.here()
    run = current()
    c.check_nc_version(api, loc, run, 4)
    for nm, t in (("src", src), ("dst", dst)):
        c.check_on_chip(c.check_tensor(t, api, nm, loc), api, nm, loc)
        if t.ndim > 4:
            raise NkiValidationError(
                f"{api}: '{nm}' may have at most 4 dimensions, got {t.shape}",
                code="err_exceed_max_supported_dimension",
                values={nm: t.shape},
                loc=loc,
            )
    p = c.check_partitions_match(api, loc, src=src, dst=dst)
    c.check_free_match(api, loc, src=src, dst=dst)
    cmd = reduce_cmd_name(reduce_cmd)
    if cmd not in ("idle", "reset_reduce", "reduce", "load_reduce"):
        raise NkiValidationError(
            f"{api}: unsupported reduce_cmd {cmd}", code="err_invalid_reduce_cmd", values={"reduce_cmd": cmd}, loc=loc
        )
    if cmd != "load_reduce" and not (isinstance(reduce_init, (int, float)) and reduce_init == 0):
        raise NkiValidationError(
            f"{api}: reduce_init is only used with reduce_cmd=load_reduce",
            code="err_invalid_operand",
            values={"reduce_cmd": cmd},
            loc=loc,
        )
    mv = c.scalar_or_vector(api, loc, "max_value", max_value, p)
    if run.numerics:
        x = dtypes.to_fp32(c.read_operand(src, api, "src", loc)).reshape(p, -1)
        with np.errstate(all="ignore"):
            out = np.exp(x - (np.float32(mv) if not isinstance(mv, np.ndarray) else mv)).astype(np.float32)
        dst.write(out.reshape(dst.shape))
        init = c.scalar_or_vector(api, loc, "reduce_init", reduce_init, p) if cmd == "load_reduce" else None
        vector_accumulate(run, api, loc, "add", out, cmd, init)
        if reduce_res is not None:
            c.check_on_chip(reduce_res, api, "reduce_res", loc)
            reduce_res.write(run.accumulator("Vector")[: reduce_res.partitions].reshape(reduce_res.shape))
    reads = [src] + [v for v in (max_value, reduce_init) if isinstance(v, Tensor)]
    return c.emit(
        EXPONENTIAL,
        loc,
        reads,
        [dst] + ([reduce_res] if reduce_res is not None else []),
        flops=2 * dst.size,
        partitions=p,
        free=dst.free_size,
        in_dtype=src.dtype,
        out_dtype=dst.dtype,
        attrs={"reduce_cmd": cmd},
    )


_MX_EMAX = {dtypes.float8_e4m3fn_x4: 8, dtypes.float8_e5m2_x4: 15}


def quantize_mx(
    dst: Tensor, src: Tensor, dst_scale: Tensor, *, loc: SourceLoc | None = None, api: str = "quantize_mx"
) -> Instruction:
    """MXFP8 quantisation (NeuronCore-v4): per group of 8 partitions x 4 elements, scale = 2^(floor(log2(amax)) -
    (Emax - 1)) (E8M0 exponent, 2^-127 for an all-zero group), data = fp8(src / scale) packed four per element."""
    from .tensor_engine import mx_scale_rows

    loc = loc or c.here()
    run = current()
    c.check_nc_version(api, loc, run, 4)
    c.check_operands(api, loc, ("sbuf",), src=src, dst=dst, dst_scale=dst_scale)
    if src.dtype not in (dtypes.float16, dtypes.bfloat16):
        raise NkiTypeError(
            f"{api}: src must be float16 or bfloat16, got {dtypes.name_of(src.dtype)}",
            values={"src": dtypes.name_of(src.dtype)},
            loc=loc,
        )
    if dst.dtype not in _MX_EMAX:
        raise NkiTypeError(
            f"{api}: dst must be float8_e5m2_x4 or float8_e4m3fn_x4, got {dtypes.name_of(dst.dtype)}",
            values={"dst": dtypes.name_of(dst.dtype)},
            loc=loc,
        )
    if dst_scale.dtype not in (dtypes.uint8, dtypes.float8_e8m0fnu):
        raise NkiTypeError(
            f"{api}: dst_scale must be uint8, got {dtypes.name_of(dst_scale.dtype)}",
            values={"dst_scale": dtypes.name_of(dst_scale.dtype)},
            loc=loc,
        )
    p = c.check_partitions_match(api, loc, src=src, dst=dst)
    f = src.free_size
    if p % 32 or f % 4 or dst.free_size * 4 != f:
        raise NkiValidationError(
            f"{api}: src partitions must be a multiple of 32 (got {p}), its free size a multiple of 4 (got {f}) and "
            f"dst's free size a quarter of it (got {dst.free_size})",
            code="err_shape_mismatch",
            values={"src": src.shape, "dst": dst.shape},
            loc=loc,
        )
    rows = mx_scale_rows(p, dst_scale.partitions)
    if rows is None or dst_scale.free_size != dst.free_size:
        raise NkiValidationError(
            f"{api}: dst_scale {dst_scale.shape} does not fit the MX scale layout of dst {dst.shape} (same free size; "
            f"as many partitions as dst for the quadrant layout, or partitions/8)",
            code="err_shape_mismatch",
            values={"dst_scale": dst_scale.shape, "dst": dst.shape},
            loc=loc,
        )
    if run.numerics:
        elem = dtypes.X4_TYPES[dst.dtype][0]
        x = dtypes.to_fp32(c.read_operand(src, api, "src", loc)).reshape(p // 8, 8, f // 4, 4)
        amax = np.abs(x).max(axis=(1, 3))  # [groups, F/4]
        with np.errstate(divide="ignore"):
            e = np.where(amax > 0, np.floor(np.log2(np.where(amax > 0, amax, 1.0))), -127.0)
        sexp = np.where(amax > 0, e - (_MX_EMAX[dst.dtype] - 1), -127.0)
        sexp = np.clip(sexp, -127, 127).astype(np.int32)
        scale = np.ldexp(np.float32(1.0), sexp).astype(np.float32)
        q = (x / scale[:, None, :, None]).astype(elem)  # RNE cast to fp8
        packed = np.ascontiguousarray(q.reshape(p, f)).view(np.uint8).reshape(p, f // 4, 4)
        dst.write(packed.view(dst.dtype).reshape(dst.shape))
        sc = dst_scale.read().reshape(dst_scale.partitions, -1).copy()
        sbits = (sexp + 127).astype(np.uint8)
        sc[rows] = sbits.view(sc.dtype) if sc.dtype.itemsize == 1 else sbits
        dst_scale.write(sc.reshape(dst_scale.shape), where=_rows_mask(dst_scale, rows))
    return c.emit(
        QUANTIZE_MX,
        loc,
        [src],
        [dst, dst_scale],
        flops=3 * src.size,
        partitions=p,
        free=f,
        in_dtype=src.dtype,
        out_dtype=dst.dtype,
    )


def _rows_mask(t: Tensor, rows: np.ndarray) -> np.ndarray:
    m = np.zeros(t.shape[0], dtype=bool)
    m[rows] = True
    return np.broadcast_to(m.reshape((-1,) + (1,) * (t.ndim - 1)), t.shape)


# ---- XORWOW per-lane generators: Vector lanes hold 4 generators (24 state words), GpSimd lanes 1 (6 words).
_XORWOW_WORDS = 6
_GENERATORS = {Engine.VECTOR: 4, Engine.GPSIMD: 1}


def _rng_state(run, engine: str) -> np.ndarray:
    key = ("xorwow", run.core, engine)
    st = run.extra.get(key)
    if st is None:
        seed = 0x9E3779B9 ^ (run.core * 0x85EBCA6B) ^ (1 if engine == Engine.GPSIMD else 0)
        st = _seed_states(seed, _GENERATORS[engine])
        run.extra[key] = st
    return st


def _seed_states(seed: int, ngen: int) -> np.ndarray:
    g = np.random.default_rng(int(seed) & 0xFFFFFFFF)
    st = g.integers(1, 2**32, size=(PMAX_LANES, ngen, _XORWOW_WORDS), dtype=np.uint64).astype(np.uint32)
    st[..., 5] = 0  # the Weyl counter d
    return st


PMAX_LANES = 128


def _xorwow_bits(state: np.ndarray, lanes: int, n: int) -> np.ndarray:
    """n 32-bit outputs per lane (lanes [0, lanes)); generator i % ngen produces element i. Updates `state`."""
    ngen = state.shape[1]
    out = np.empty((lanes, -(-n // ngen) * ngen), dtype=np.uint32)
    s = state[:lanes]
    with np.errstate(over="ignore"):
        for step in range(out.shape[1] // ngen):
            x, y, z, w, v, d = (s[:, :, k] for k in range(6))
            t = x ^ (x >> np.uint32(2))
            nv = (v ^ (v << np.uint32(4))) ^ (t ^ (t << np.uint32(1)))
            nd = d + np.uint32(362437)
            s[:, :, 0], s[:, :, 1], s[:, :, 2], s[:, :, 3] = y, z, w, v
            s[:, :, 4], s[:, :, 5] = nv, nd
            out[:, step * ngen : (step + 1) * ngen] = nv + nd
    return out[:, :n]


def _rng_engine(engine: Any, run, api: str, loc: SourceLoc, default: str, allowed_v3: tuple[str, ...]) -> str:
    eng = resolve_engine(engine, default)
    allowed = (Engine.VECTOR,) if run.arch.nc_version < 3 else allowed_v3
    if run.arch.nc_version >= 4:
        allowed = (Engine.VECTOR, Engine.GPSIMD)
    if eng not in allowed:
        raise NkiValidationError(
            f"{api}: engine {eng} is not supported on {run.arch.name} (allowed: {', '.join(allowed)})",
            code="err_unsupported_engine",
            values={"engine": eng},
            loc=loc,
        )
    return eng


def rng_bits(dst: Tensor, *, engine: Any = None, loc: SourceLoc | None = None, api: str = "rng") -> Instruction:
    """32 random bits per element (per-lane XORWOW), truncated to dst's integer dtype (least significant bits)."""
    loc = loc or c.here()
    run = current()
    eng = _rng_engine(engine, run, api, loc, Engine.VECTOR, (Engine.VECTOR, Engine.GPSIMD))
    c.check_operands(api, loc, dst=dst)
    _check_engine_access(api, loc, eng, dst=dst)
    if dst.dtype not in (dtypes.int8, dtypes.int16, dtypes.int32, dtypes.uint8, dtypes.uint16, dtypes.uint32):
        raise NkiTypeError(
            f"{api}: dst must be an integer type (int8..uint32), got {dtypes.name_of(dst.dtype)}",
            values={"dst": dtypes.name_of(dst.dtype)},
            loc=loc,
        )
    if run.numerics:
        bits = _xorwow_bits(_rng_state(run, eng), dst.partitions, dst.free_size)
        raw = bits.astype(np.dtype(f"u{dst.dtype.itemsize}")).view(dst.dtype)
        dst.write(raw.reshape(dst.shape))
    return c.emit(RNG_BITS, loc, [], [dst], engine=eng, partitions=dst.partitions, free=dst.free_size, out_dtype=dst.dtype)


def rand2(dst: Tensor, lo: Any, hi: Any, *, loc: SourceLoc | None = None, api: str = "rand2") -> Instruction:
    """Uniform random values in [lo, hi] (fp32 from XORWOW bits) cast to dst's dtype (NeuronCore-v4, Vector)."""
    loc = loc or c.here()
    run = current()
    c.check_nc_version(api, loc, run, 4)
    c.check_operands(api, loc, dst=dst)
    p = dst.partitions
    a = c.scalar_or_vector(api, loc, "min", lo, p)
    b = c.scalar_or_vector(api, loc, "max", hi, p)
    if not isinstance(a, np.ndarray) and not isinstance(b, np.ndarray) and not float(a) < float(b):
        raise NkiValidationError(
            f"{api}: min must be smaller than max (got {a}, {b})", code="err_invalid_operand", loc=loc
        )
    if run.numerics:
        bits = _xorwow_bits(_rng_state(run, Engine.VECTOR), p, dst.free_size)
        u = (bits.astype(np.float64) * 2.0**-32).astype(np.float32)
        av = np.float32(a) if not isinstance(a, np.ndarray) else a
        bv = np.float32(b) if not isinstance(b, np.ndarray) else b
        dst.write((av + u * (bv - av)).astype(np.float32).reshape(dst.shape))
    reads = [t for t in (lo, hi) if isinstance(t, Tensor)]
    return c.emit(RAND2, loc, reads, [dst], partitions=p, free=dst.free_size, out_dtype=dst.dtype)


def seed_rng_lanes(src_seeds: Tensor, *, loc: SourceLoc | None = None, api: str = "set_rng_seed") -> Instruction:
    """Seed every lane of the Vector-engine PRNG (and the run's stream used by dropout) from a [1, 1] 32-bit value."""
    loc = loc or c.here()
    run = current()
    c.check_operands(api, loc, src_seeds=src_seeds)
    if src_seeds.size != 1 or src_seeds.dtype.itemsize != 4:
        raise NkiValidationError(
            f"{api}: src_seeds must be a [1, 1] 32-bit tensor, got {src_seeds.shape} {dtypes.name_of(src_seeds.dtype)}",
            code="err_shape_mismatch",
            values={"src_seeds": src_seeds.shape},
            loc=loc,
        )
    if run.numerics:
        seed = int(np.asarray(c.read_operand(src_seeds, api, "src_seeds", loc)).reshape(-1).view(np.uint32)[0])
        run.extra[("xorwow", run.core, Engine.VECTOR)] = _seed_states(seed, _GENERATORS[Engine.VECTOR])
        run.rng = np.random.default_rng(seed)
    return c.emit(RNG_STATE, loc, [src_seeds], [], partitions=1, free=1, attrs={"what": "seed"})


def rand_set_state(
    src_seeds: Tensor, *, engine: Any = None, loc: SourceLoc | None = None, api: str = "rand_set_state"
) -> Instruction:
    """Load per-lane XORWOW states (uint32; 6 words per lane on GpSimd, 24 on Vector) from SBUF."""
    loc = loc or c.here()
    run = current()
    c.check_nc_version(api, loc, run, 3)
    eng = _rng_engine(engine, run, api, loc, Engine.GPSIMD, (Engine.GPSIMD,))
    c.check_operands(api, loc, ("sbuf",), src_seeds=src_seeds)
    words = _XORWOW_WORDS * _GENERATORS[eng]
    if src_seeds.dtype != dtypes.uint32 or src_seeds.free_size != words:
        raise NkiValidationError(
            f"{api}: src_seeds must be uint32 with {words} elements per partition on the {eng} engine, got "
            f"{src_seeds.shape} {dtypes.name_of(src_seeds.dtype)}",
            code="err_shape_mismatch",
            values={"src_seeds": src_seeds.shape},
            loc=loc,
        )
    if run.numerics:
        st = _rng_state(run, eng)
        v = np.asarray(c.read_operand(src_seeds, api, "src_seeds", loc)).reshape(src_seeds.partitions, -1)
        st[: src_seeds.partitions] = v.reshape(src_seeds.partitions, _GENERATORS[eng], _XORWOW_WORDS)
    return c.emit(
        RNG_STATE, loc, [src_seeds], [], engine=eng, partitions=src_seeds.partitions, free=words, attrs={"what": "set"}
    )


def rand_get_state(dst: Tensor, *, engine: Any = None, loc: SourceLoc | None = None, api: str = "rand_get_state") -> Instruction:
    """Store per-lane XORWOW states (uint32; 6 words per lane on GpSimd, 24 on Vector)."""
    loc = loc or c.here()
    run = current()
    c.check_nc_version(api, loc, run, 3)
    eng = _rng_engine(engine, run, api, loc, Engine.GPSIMD, (Engine.GPSIMD,))
    allowed = ("sbuf", "psum") if (eng == Engine.VECTOR and run.arch.nc_version >= 4) else ("sbuf",)
    c.check_operands(api, loc, allowed, dst=dst)
    words = _XORWOW_WORDS * _GENERATORS[eng]
    if dst.dtype != dtypes.uint32 or dst.free_size != words:
        raise NkiValidationError(
            f"{api}: dst must be uint32 with {words} elements per partition on the {eng} engine, got "
            f"{dst.shape} {dtypes.name_of(dst.dtype)}",
            code="err_shape_mismatch",
            values={"dst": dst.shape},
            loc=loc,
        )
    if run.numerics:
        st = _rng_state(run, eng)
        dst.write(st[: dst.partitions].reshape(dst.shape).astype(np.uint32))
    return c.emit(RNG_STATE, loc, [], [dst], engine=eng, partitions=dst.partitions, free=words, attrs={"what": "get"})
