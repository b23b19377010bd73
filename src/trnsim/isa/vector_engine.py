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
from ..core.errors import NkiTypeError, NkiValidationError
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
    a = instr.attrs
    n = instr.free
    fast = a.get("one_psum") or (
        a.get("all_sbuf")
        and instr.in_dtype == dtypes.bfloat16
        and a.get("op") in ("add", "multiply", "subtract")
        and a.get("unit_stride")
    )
    cycles = n if fast else 2 * n
    if arch.vector_perf_modes and a.get("all_sbuf") and instr.in_dtype in _TWO_BYTE and _engine_of(instr) == "Vector":
        cycles = min(cycles, n) / 2 if not fast else cycles / 2
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
    bufs = [t.storage.buffer.kind for t in list(ins) + list(outs) if t is not None]
    unit = all(_unit_stride(t) for t in list(ins) + list(outs) if t is not None)
    return {
        "all_sbuf": all(b == "sbuf" for b in bufs),
        "one_psum": sum(1 for t in ins if t is not None and t.storage.buffer.kind == "psum") == 1,
        "unit_stride": unit,
    }


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
    name = alu.op_name(op)
    eng = resolve_engine(engine, Engine.GPSIMD if name == "power" else Engine.VECTOR)
    for nm, t in (("data1", data1), ("data2", data2), ("dst", dst)):
        c.check_on_chip(c.check_tensor(t, api, nm, loc), api, nm, loc)
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
    if run.numerics:
        a = c.read_operand(data1, api, "data1", loc)
        b = c.read_operand(data2, api, "data2", loc)
        if allow_broadcast:
            res = _binary_values(name, a, b, dst)
            res = np.broadcast_to(res, dst.shape)
        else:
            p = dst.partitions
            res = _binary_values(name, _as_2d(a, p), _as_2d(b, p), dst).reshape(dst.shape)
        dst.write(res)
    ins = [data1, data2]
    return c.emit(
        TENSOR_TENSOR,
        loc,
        ins,
        [dst],
        engine=eng,
        flops=dst.size,
        partitions=dst.partitions,
        free=dst.free_size,
        in_dtype=dtypes.promote(data1.dtype, data2.dtype),
        out_dtype=dst.dtype,
        attrs={"op": name, **_layout_attrs(ins, [dst])},
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
    n0 = alu.op_name(op0)
    n1 = alu.op_name(op1) if op1 is not None else ""
    eng = resolve_engine(engine, Engine.GPSIMD if n0 == "rsqrt" else Engine.VECTOR)
    for nm, t in (("data", data), ("dst", dst)):
        c.check_on_chip(c.check_tensor(t, api, nm, loc), api, nm, loc)
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
    p = data.partitions
    s0 = c.scalar_or_vector(api, loc, "operand0", operand0, p)
    s1 = c.scalar_or_vector(api, loc, "operand1", operand1, p) if n1 else None
    if run.numerics:
        x = _as_2d(c.read_operand(data, api, "data", loc), p)
        res = _scalar_step(n0, x, s0, reverse0)
        if n1:
            res = _scalar_step(n1, res, s1, reverse1)
        dst.write(np.asarray(res).reshape(dst.shape))
    return c.emit(
        TENSOR_SCALAR,
        loc,
        [data] + [t for t in (operand0, operand1) if isinstance(t, Tensor)],
        [dst],
        engine=eng,
        flops=dst.size * (2 if n1 else 1),
        partitions=p,
        free=dst.free_size,
        in_dtype=data.dtype,
        out_dtype=dst.dtype,
        attrs={"op0": n0, "op1": n1, **_layout_attrs([data], [dst])},
    )


def _scalar_step(name: str, x: np.ndarray, s: Any, reverse: bool) -> np.ndarray:
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
    for nm, t in (("data", data), ("dst", dst)):
        c.check_on_chip(c.check_tensor(t, api, nm, loc), api, nm, loc)
    c.check_partitions_match(api, loc, data=data, dst=dst)
    axes = normalize_axes(axis, data.ndim, api, loc)
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
    eng = resolve_engine(engine, Engine.VECTOR)
    for nm, t in (("src", src), ("dst", dst)):
        c.check_on_chip(c.check_tensor(t, api, nm, loc), api, nm, loc)
    c.check_partitions_match(api, loc, src=src, dst=dst)
    c.check_free_match(api, loc, src=src, dst=dst)
    _check_engine_access(api, loc, eng, src=src, dst=dst)
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
        attrs=_layout_attrs([src], [dst]),
    )


def memset(
    dst: Tensor, value: Any, *, engine: Any = None, loc: SourceLoc | None = None, api: str = "memset"
) -> Instruction:
    """Fill dst with a compile-time constant."""
    loc = loc or c.here()
    run = current()
    eng = resolve_engine(engine, Engine.VECTOR)
    c.check_on_chip(c.check_tensor(dst, api, "dst", loc), api, "dst", loc)
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
    for nm, t in (("data", data), ("dst", dst)):
        c.check_on_chip(c.check_tensor(t, api, nm, loc), api, nm, loc)
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
    for nm, t in (("data", data), ("dst", dst)):
        c.check_on_chip(c.check_tensor(t, api, nm, loc), api, nm, loc)
    p, f = data.partitions, data.free_size
    if p > 32 or f > 32:
        raise NkiValidationError(
            f"{api}: Vector-engine transpose takes at most [32, 32], got [{p}, {f}]",
            code="err_size_of_dimension_exceed_arch_limit",
            values={"data": data.shape},
            loc=loc,
            hint="use engine=nisa.tensor_engine for tiles up to [128, 128]",
        )
    if dst.partitions != f or dst.free_size != p:
        raise NkiValidationError(
            f"{api}: dst shape {dst.shape} must be the transpose [{f}, {p}] of data {data.shape}",
            code="err_shape_mismatch",
            values={"dst": dst.shape, "data": data.shape},
            loc=loc,
        )
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
    c.check_on_chip(c.check_tensor(dst, api, "dst", loc), api, "dst", loc)
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
