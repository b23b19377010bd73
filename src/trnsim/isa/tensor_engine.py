"""Tensor engine: the 128x128 systolic array (nc_matmul, nc_transpose on TensorE).

Numerics: operands are used at their storage precision (bf16 / fp8 / fp16 / fp32, tf32 rounded), products
are summed in fp32 into PSUM. PSUM accumulation: `accumulate=False` overwrites, `True` adds, `None` (the
current API's default) overwrites elements with no open partial sum and adds to the others; any
non-matmul read or write of a PSUM element closes its accumulation group.

Cost: a matmul streams the moving tensor through the array in max(N, 64) Tensor-engine cycles for 2-byte
and fp8 inputs (fp32 / tf32 at quarter rate, fp8 double-row twice as fast on NeuronCore-v3+), plus a
LoadStationary of the stationary operand that is hidden when the same stationary tile is reused or the
moving free size is short (fast weight load).
"""

from __future__ import annotations

import numpy as np

from ..core import dtypes
from ..core.context import current
from ..core.errors import NkiValidationError
from ..core.instruction import Engine, Instruction
from ..core.memory import ACC_OPEN, WRITTEN
from ..core.source import SourceLoc
from ..core.tensor import Tensor
from ..timing.arch import Arch
from . import common as c

GEMM_STATIONARY_FMAX = 128
GEMM_MOVING_FMAX = 512

_MATMUL_DTYPES = (
    dtypes.float8_e4m3,
    dtypes.float8_e5m2,
    dtypes.bfloat16,
    dtypes.float16,
    dtypes.float32,
)


def matmul_cost(instr: Instruction, arch: Arch) -> float:
    """ns the PE array is occupied by one matmul (MultiplyMoving): max(N, 64) cycles for 2-byte / fp8 inputs,
    4x for fp32 (2x for an fp32 transpose on NeuronCore-v3+), half for fp8 double-row on NeuronCore-v3+.
    A LoadStationary overlaps the previous matmul (`loadstationary_ns`, applied by the timing pass)."""
    n = instr.free
    cycles = max(n, arch.matmul_min_cycles)
    dt = instr.in_dtype
    if dt == dtypes.float32:
        if instr.attrs.get("transpose") and arch.nc_version >= 3:
            cycles *= arch.fp32_matmul_factor / 2
        else:
            cycles *= arch.fp32_matmul_factor
    elif instr.attrs.get("perf_mode") == "double_row" and arch.fp8_double_rate:
        cycles /= 2
    return cycles / arch.clock_ghz["Tensor"]


def loadstationary_ns(instr: Instruction, arch: Arch) -> float:
    """ns of loading a new stationary tile (fast LoadStationary: 4x faster than a matmul of the same free
    size, fp32 at quarter rate). It runs in the background of the previous matmul, so a matmul whose
    stationary differs from its predecessor's costs max(matmul_cost, loadstationary_ns)."""
    m = int(instr.attrs.get("M", 128) or 0)
    cycles = m / max(arch.loadstationary_speedup, 1e-9)
    if instr.in_dtype == dtypes.float32:
        cycles *= arch.fp32_matmul_factor
    return cycles / arch.clock_ghz["Tensor"]


MATMUL = c.spec("nc_matmul", Engine.TENSOR, "MATMUL", matmul_cost, "PSUM[M,N] (+)= stationary[K,M].T @ moving[K,N]")
TRANSPOSE_PE = c.spec("nc_transpose_tensor", Engine.TENSOR, "TRANSPOSE", matmul_cost, "PE-array transpose via identity")


def _matmul_dtype_check(api: str, loc: SourceLoc, run, stationary: Tensor, moving: Tensor) -> None:
    allowed = _MATMUL_DTYPES + ((dtypes.float8_e4m3fn,) if run.arch.nc_version >= 4 else ())
    c.check_dtype(api, loc, "stationary", stationary, allowed, "Tensor engine input")
    c.check_dtype(api, loc, "moving", moving, allowed, "Tensor engine input")
    s32 = stationary.dtype == dtypes.float32
    m32 = moving.dtype == dtypes.float32
    if s32 != m32:
        raise NkiValidationError(
            f"{api}: if one matmul operand is fp32/tf32 the other must be too "
            f"(stationary {dtypes.name_of(stationary.dtype)}, moving {dtypes.name_of(moving.dtype)})",
            code="err_unsupported_dtype",
            values={"stationary": dtypes.name_of(stationary.dtype), "moving": dtypes.name_of(moving.dtype)},
            loc=loc,
        )


def _as_matrix(t: Tensor, api: str, name: str, loc: SourceLoc) -> np.ndarray:
    """fp32 [K, F] values of a matmul operand (read-only: fp32 data is not copied, low-precision tiles come
    from their cached fp32 copy, see Tensor.read_fp32_shadowed)."""
    v = c.read_operand(t, api, name, loc)
    if t.storage.tf32:
        v = v.reshape(v.shape[0], -1)
        return dtypes.round_tf32(v.astype(np.float32))
    if v.dtype != np.float32:
        v = t.read_fp32_shadowed()
    return v.reshape(v.shape[0], -1)


def nc_matmul(
    dst: Tensor,
    stationary: Tensor,
    moving: Tensor,
    *,
    accumulate: bool | None = None,
    is_transpose: bool = False,
    is_stationary_onezero: bool = False,
    is_moving_onezero: bool = False,
    perf_mode: str | None = None,
    tile_position: tuple = (),
    tile_size: tuple = (),
    loc: SourceLoc | None = None,
    api: str = "nc_matmul",
) -> Instruction:
    """dst[M, N] (+)= stationary[K, M].T @ moving[K, N] on the Tensor engine (fp32 accumulation in PSUM)."""
    loc = loc or c.here()
    run = current()
    key = c.check_key("nc_matmul", (perf_mode,), stationary, moving, dst)
    hit = c.cached_checks(run, key)
    if hit is not None:  # same operand signature already checked in this run
        k, m, n, pm = hit
    else:
        stationary = c.check_tensor(stationary, api, "stationary", loc)
        moving = c.check_tensor(moving, api, "moving", loc)
        dst = c.check_tensor(dst, api, "dst", loc)
        c.check_on_chip(stationary, api, "stationary", loc, ("sbuf",))
        c.check_on_chip(moving, api, "moving", loc, ("sbuf",))
        c.check_on_chip(dst, api, "dst", loc, ("psum",))
        k = c.check_partitions_match(api, loc, stationary=stationary, moving=moving)
        m = stationary.free_size
        n = moving.free_size
        if m > GEMM_STATIONARY_FMAX:
            raise NkiValidationError(
                f"{api}: stationary free size {m} exceeds gemm_stationary_fmax={GEMM_STATIONARY_FMAX}",
                code="err_size_of_dimension_exceed_arch_limit",
                values={"stationary.shape": stationary.shape},
                loc=loc,
                hint="tile the M dimension into blocks of 128",
            )
        moving_max = GEMM_MOVING_FMAX if run.arch.nc_version < 4 else 4096
        if n > moving_max:
            raise NkiValidationError(
                f"{api}: moving free size {n} exceeds gemm_moving_fmax={moving_max}",
                code="err_size_of_dimension_exceed_arch_limit",
                values={"moving.shape": moving.shape},
                loc=loc,
                hint="tile the N dimension into blocks of 512 (one PSUM bank of fp32)",
            )
        _matmul_dtype_check(api, loc, run, stationary, moving)
        if dst.partitions != m or dst.free_size != n:
            raise NkiValidationError(
                f"{api}: dst shape {dst.shape} does not match the result [{m}, {n}] of stationary {stationary.shape}"
                f" and moving {moving.shape}",
                code="err_shape_mismatch",
                values={"dst": dst.shape, "stationary": stationary.shape, "moving": moving.shape},
                loc=loc,
            )
        bank = run.arch.psum_bank_bytes
        if dst.free_size * dst.itemsize > bank:
            raise NkiValidationError(
                f"{api}: a PSUM matmul result of {dst.free_size * dst.itemsize} bytes per partition spans more than "
                f"one {bank}-byte PSUM bank",
                code="err_psum_tile_exceeds_bank",
                values={"dst": dst.shape, "dtype": dtypes.name_of(dst.dtype)},
                loc=loc,
            )
        pm = None
        if perf_mode not in (None, "none", ""):
            pm = "double_row" if "double_row" in str(perf_mode) else str(perf_mode)
            c.check_nc_version(api + "(perf_mode=double_row)", loc, run, 3)
            if not (dtypes.is_fp8(stationary.dtype) and dtypes.is_fp8(moving.dtype)):
                raise NkiValidationError(
                    f"{api}: perf_mode=double_row needs fp8 operands",
                    code="err_unsupported_dtype",
                    values={"stationary": dtypes.name_of(stationary.dtype), "moving": dtypes.name_of(moving.dtype)},
                    loc=loc,
                )
        c.remember_checks(run, key, (k, m, n, pm))
    if run.numerics:
        a = _as_matrix(stationary, api, "stationary", loc)
        b = _as_matrix(moving, api, "moving", loc)
        out = None if is_transpose else dst.direct_fp32()
        if out is not None and accumulate is False and out.flags.c_contiguous:
            np.matmul(a.T, b, out=out.reshape(m, n))  # straight into PSUM: no temporary, no copy
            dst.mark_written(WRITTEN | ACC_OPEN)
        else:
            if is_transpose:
                prod = a.T.copy() if n == k else a.T @ b
            else:
                prod = a.T @ b
            prod = prod.reshape(dst.shape)
            if accumulate is False:
                res = prod
            else:
                open_ = None if accumulate is True else dst.acc_open()
                if out is not None and (accumulate is True or (open_ is not None and open_.all())):
                    np.add(out, prod, out=out)  # every element accumulates: add in place
                    dst.mark_written(WRITTEN | ACC_OPEN)
                    res = None
                else:
                    prev = dst.read_fp32()
                    if accumulate is True:
                        res = prev + prod
                    else:
                        res = np.where(open_, prev + prod, prod) if open_ is not None else prod
            if res is not None:
                dst.write(res if res.dtype == np.float32 else res.astype(np.float32), state=WRITTEN | ACC_OPEN)
    return c.emit(
        TRANSPOSE_PE if is_transpose else MATMUL,
        loc,
        [stationary, moving],
        [dst],
        flops=2 * k * m * n,
        partitions=k,
        free=n,
        in_dtype=moving.storage.dtype,
        out_dtype=dst.storage.dtype,
        attrs={
            "M": m,
            "K": k,
            "N": n,
            "perf_mode": pm,
            "transpose": bool(is_transpose),
            "stationary_id": id(stationary.storage),
        },
        accumulate=accumulate is not False,
        run=run,
    )


def nc_transpose_pe(
    dst: Tensor, data: Tensor, *, loc: SourceLoc | None = None, api: str = "nc_transpose"
) -> Instruction:
    """PE-array transpose (matmul against an identity): SBUF [P<=128, F<=128] -> PSUM [F, P]."""
    loc = loc or c.here()
    run = current()
    c.check_on_chip(data, api, "data", loc, ("sbuf",))
    c.check_on_chip(dst, api, "dst", loc, ("psum",))
    p, f = data.partitions, data.free_size
    if f > 128:
        raise NkiValidationError(
            f"{api}: Tensor-engine transpose takes at most 128 elements per partition, got {f}",
            code="err_size_of_dimension_exceed_arch_limit",
            values={"data": data.shape},
            loc=loc,
        )
    c.check_transposed(api, loc, dst, data)
    if run.numerics:
        v = c.read_operand(data, api, "data", loc).reshape(p, f)
        dst.write(v.T.reshape(dst.shape).astype(np.float32) if dst.dtype == np.float32 else v.T.reshape(dst.shape))
    return c.emit(
        TRANSPOSE_PE,
        loc,
        [data],
        [dst],
        flops=2 * p * p * f,
        partitions=p,
        free=p,
        in_dtype=data.dtype,
        out_dtype=dst.dtype,
        attrs={"M": f, "K": p, "N": p, "transpose": True},
    )


# ---------------------------------------------------------------------------------- current-API: MX matmul
MATMUL_MX = c.spec(
    "nc_matmul_mx", Engine.TENSOR, "MATMUL_MX", matmul_cost, "PSUM[M,N] (+)= dequant(stationary).T @ dequant(moving)"
)


def unpack_x4(raw: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Packed MX data [..., n] (x4 dtype) -> fp32 values [..., n, 4] (the x4 axis is part of the contraction).

    fp8 x4: byte i of the 32-bit element is value i; fp4 x4: value 2b is the low nibble of byte b, 2b+1 the high."""
    elem, count = dtypes.X4_TYPES[dtype]
    b = np.ascontiguousarray(raw).view(np.uint8).reshape(raw.shape + (dtype.itemsize,))
    if elem.itemsize == 1 and dtype.itemsize == count:
        return b.view(elem).astype(np.float32)
    nib = np.stack([b & 0x0F, b >> 4], axis=-1).reshape(raw.shape + (count,))
    return nib.astype(np.uint8).view(elem).astype(np.float32)


def mx_scale_rows(partitions: int, scale_partitions: int) -> np.ndarray | None:
    """Row of the scale tensor holding the scale of each 8-partition group, or None if the layout is invalid.

    Scales follow the SBUF quadrant layout (group g of quadrant q at partition 32q + g, as quantize_mx writes
    them when the scale tensor spans the data's partitions) or a compact layout (row 4q + g)."""
    groups = np.arange(partitions // 8)
    q, g = groups // 4, groups % 4
    quad = 32 * q + g
    if scale_partitions >= int(quad.max()) + 1 and scale_partitions > partitions // 8:
        return quad
    if scale_partitions == partitions // 8:
        return 4 * q + g
    return None


def _mx_operand(t: Tensor, scale: Tensor, api: str, name: str, loc: SourceLoc) -> np.ndarray:
    """Dequantised [K * 4, F] fp32 matrix of an MX operand (contraction index = partition * 4 + x4 slot)."""
    k, f = t.partitions, t.free_size
    vals = unpack_x4(c.read_operand(t, api, name, loc).reshape(k, f), t.dtype)  # [K, F, 4]
    rows = mx_scale_rows(k, scale.partitions)
    used = scale.indirect((rows,)) if scale.index is None else scale  # only the scale rows the groups use
    sv = c.read_operand(used, api, name + "_scale", loc).reshape(-1, f) if scale.index is None else (
        c.read_operand(scale, api, name + "_scale", loc).reshape(scale.partitions, -1)[rows])
    sbits = sv.view(np.uint8).astype(np.int32)
    exps = np.ldexp(np.float32(1.0), sbits - 127).astype(np.float32)  # [K/8, F]
    vals = vals * np.repeat(exps, 8, axis=0)[:, :, None]
    return vals.transpose(0, 2, 1).reshape(k * 4, f)


def nc_matmul_mx(
    dst: Tensor,
    stationary: Tensor,
    moving: Tensor,
    stationary_scale: Tensor,
    moving_scale: Tensor,
    *,
    accumulate: bool | None = None,
    tile_position: object = None,
    tile_size: object = None,
    loc: SourceLoc | None = None,
    api: str = "nc_matmul_mx",
) -> Instruction:
    """dst[M, N] (+)= sum over (k, i) of stationary[k, m, i] * 2^s_stat * moving[k, n, i] * 2^s_mov (NeuronCore-v4)."""
    loc = loc or c.here()
    run = current()
    c.check_nc_version(api, loc, run, 4)
    c.check_operands(
        api, loc, ("sbuf",), stationary=stationary, moving=moving, stationary_scale=stationary_scale,
        moving_scale=moving_scale,
    )
    c.check_operands(api, loc, ("psum",), dst=dst)
    for nm, t in (("stationary", stationary), ("moving", moving)):
        if t.dtype not in dtypes.X4_TYPES:
            raise NkiValidationError(
                f"{api}: '{nm}' must be float8_e5m2_x4, float8_e4m3fn_x4 or float4_e2m1fn_x4, got "
                f"{dtypes.name_of(t.dtype)}",
                code="err_unsupported_dtype",
                values={nm: dtypes.name_of(t.dtype)},
                loc=loc,
            )
    for nm, t in (("stationary_scale", stationary_scale), ("moving_scale", moving_scale)):
        if t.dtype not in (dtypes.uint8, dtypes.float8_e8m0fnu):
            raise NkiValidationError(
                f"{api}: '{nm}' must be uint8 (E8M0 exponents), got {dtypes.name_of(t.dtype)}",
                code="err_unsupported_dtype",
                values={nm: dtypes.name_of(t.dtype)},
                loc=loc,
            )
    if dst.dtype not in (dtypes.float32, dtypes.bfloat16):
        raise NkiValidationError(
            f"{api}: dst must be float32 or bfloat16, got {dtypes.name_of(dst.dtype)}",
            code="err_unsupported_dtype",
            values={"dst": dtypes.name_of(dst.dtype)},
            loc=loc,
        )
    k = c.check_partitions_match(api, loc, stationary=stationary, moving=moving)
    m, n = stationary.free_size, moving.free_size
    nmax = 512 if dst.dtype == dtypes.float32 else 1024
    if k % 32 or m % 2 or m > GEMM_STATIONARY_FMAX or n > nmax:
        raise NkiValidationError(
            f"{api}: partition size must be a multiple of 32 (got {k}), stationary free size even and <= 128 (got "
            f"{m}), moving free size <= {nmax} (got {n})",
            code="err_size_of_dimension_exceed_arch_limit",
            values={"stationary": stationary.shape, "moving": moving.shape},
            loc=loc,
        )
    for nm, t, data in (("stationary_scale", stationary_scale, stationary), ("moving_scale", moving_scale, moving)):
        if mx_scale_rows(k, t.partitions) is None or t.free_size != data.free_size:
            raise NkiValidationError(
                f"{api}: '{nm}' {t.shape} does not match the MX scale layout of {data.shape} (one scale per 8 "
                f"partitions x 1 packed element, in quadrant or compact layout)",
                code="err_shape_mismatch",
                values={nm: t.shape, "data": data.shape},
                loc=loc,
            )
    if dst.partitions != m or dst.free_size != n:
        raise NkiValidationError(
            f"{api}: dst shape {dst.shape} does not match the result [{m}, {n}]",
            code="err_shape_mismatch",
            values={"dst": dst.shape, "stationary": stationary.shape, "moving": moving.shape},
            loc=loc,
        )
    if run.numerics:
        a = _mx_operand(stationary, stationary_scale, api, "stationary", loc)
        b = _mx_operand(moving, moving_scale, api, "moving", loc)
        prod = (a.T @ b).astype(np.float32).reshape(dst.shape)
        if accumulate is False:
            res = prod
        else:
            prev = dst.read_fp32()
            open_ = dst.acc_open() if accumulate is None else None
            res = prev + prod if accumulate is True else (np.where(open_, prev + prod, prod) if open_ is not None else prod)
        dst.write(res.astype(np.float32), state=WRITTEN | ACC_OPEN)
    return c.emit(
        MATMUL_MX,
        loc,
        [stationary, moving, stationary_scale, moving_scale],
        [dst],
        flops=2 * 4 * k * m * n,
        partitions=k,
        free=n,
        in_dtype=dtypes.float8_e4m3,
        out_dtype=dst.dtype,
        attrs={"M": m, "K": 4 * k, "N": n, "perf_mode": "double_row", "stationary_id": id(stationary.storage)},
        accumulate=accumulate is not False,
    )
