"""NKI data types, hardware-faithful casts and poison values.

All low-precision floats are held as ml_dtypes arrays, so every store rounds exactly like the hardware's
round-to-nearest-even. Engines compute in fp32; `cast_to` is the single place where an engine result is
written back in a destination dtype.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

bool_ = np.dtype(np.bool_)
int8 = np.dtype(np.int8)
int16 = np.dtype(np.int16)
int32 = np.dtype(np.int32)
uint8 = np.dtype(np.uint8)
uint16 = np.dtype(np.uint16)
uint32 = np.dtype(np.uint32)
float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
bfloat16 = np.dtype(ml_dtypes.bfloat16)
float8_e4m3 = np.dtype(ml_dtypes.float8_e4m3)
float8_e5m2 = np.dtype(ml_dtypes.float8_e5m2)
float8_e4m3fn = np.dtype(ml_dtypes.float8_e4m3fn)
float8_e8m0fnu = np.dtype(ml_dtypes.float8_e8m0fnu)

# MX packed types (current API, NeuronCore-v4): four fp8 (or fp4) values in one 32-bit (16-bit) element, held as
# structured dtypes so that each packed type is a distinct NumPy dtype of the right size.
float8_e5m2_x4 = np.dtype([("float8_e5m2_x4", np.uint8, (4,))])
float8_e4m3fn_x4 = np.dtype([("float8_e4m3fn_x4", np.uint8, (4,))])
float4_e2m1fn_x4 = np.dtype([("float4_e2m1fn_x4", np.uint8, (2,))])
#: packed dtype -> (element dtype, elements per packed value)
X4_TYPES = {
    float8_e5m2_x4: (np.dtype(ml_dtypes.float8_e5m2), 4),
    float8_e4m3fn_x4: (np.dtype(ml_dtypes.float8_e4m3fn), 4),
    float4_e2m1fn_x4: (np.dtype(ml_dtypes.float4_e2m1fn), 4),
}


class TFloat32:
    """Marker for NKI's tfloat32: stored as fp32, mantissa cut to 10 bits when used as a matmul operand."""

    name = "tfloat32"
    itemsize = 4

    def __repr__(self) -> str:
        return "tfloat32"


tfloat32_marker = TFloat32()

# Names users see (nl.<name>) -> storage dtype.
NAMED_DTYPES: dict[str, np.dtype] = {
    "bool_": bool_,
    "int8": int8,
    "int16": int16,
    "int32": int32,
    "uint8": uint8,
    "uint16": uint16,
    "uint32": uint32,
    "float16": float16,
    "float32": float32,
    "bfloat16": bfloat16,
    "tfloat32": float32,
    "float8_e4m3": float8_e4m3,
    "float8_e5m2": float8_e5m2,
    "float8_e4m3fn": float8_e4m3fn,
    "float8_e8m0fnu": float8_e8m0fnu,
    "float8_e5m2_x4": float8_e5m2_x4,
    "float8_e4m3fn_x4": float8_e4m3fn_x4,
    "float4_e2m1fn_x4": float4_e2m1fn_x4,
}

LOW_PRECISION_FLOATS = (bfloat16, float16, float8_e4m3, float8_e5m2, float8_e4m3fn)
FP8_TYPES = (float8_e4m3, float8_e5m2, float8_e4m3fn)


def normalize(dtype: Any) -> np.dtype:
    """Turn anything a kernel may pass as a dtype (nl.bfloat16, np.float32, 'bfloat16', torch dtype) into
    the NumPy storage dtype."""
    if dtype is None:
        raise TypeError("dtype is None")
    if isinstance(dtype, np.dtype):
        return dtype
    if isinstance(dtype, TFloat32):
        return float32
    if isinstance(dtype, str):
        if dtype in NAMED_DTYPES:
            return NAMED_DTYPES[dtype]
        return np.dtype(dtype)
    name = getattr(dtype, "__name__", None) or str(dtype)
    if isinstance(name, str) and name.startswith("torch."):
        name = name[len("torch.") :]
    if name in NAMED_DTYPES:
        return NAMED_DTYPES[name]
    return np.dtype(dtype)


def is_float(dtype: np.dtype) -> bool:
    return (
        dtype.kind == "f"
        or dtype in LOW_PRECISION_FLOATS
        or dtype == float8_e8m0fnu
        or (dtype.kind == "V" and dtype.itemsize <= 2)
    )


def is_int(dtype: np.dtype) -> bool:
    return dtype.kind in "iu"


def is_fp8(dtype: np.dtype) -> bool:
    return dtype in FP8_TYPES


def name_of(dtype: np.dtype) -> str:
    if dtype == bool_:
        return "bool"
    if dtype.names:
        return dtype.names[0]
    return str(dtype.name) if hasattr(dtype, "name") else str(dtype)


def poison_value(dtype: np.dtype) -> Any:
    """Value new allocations are filled with, so reads of uninitialised memory show up in results.

    Floats get NaN. Integers get a sentinel: the most negative value for signed types, the largest value
    for unsigned types; booleans get True.
    """
    if dtype == bool_:
        return True
    if is_int(dtype):
        info = np.iinfo(dtype)
        return info.min if dtype.kind == "i" else info.max
    return np.nan


def to_fp32(values: np.ndarray) -> np.ndarray:
    """Engine input conversion: any stored dtype -> float32 (integers beyond 2^24 lose precision as on hw)."""
    if values.dtype == float32:
        return values
    return values.astype(np.float32)


def cast_to(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round an engine result to `dtype`: round-to-nearest-even for floats; for integers RNE then saturate."""
    if values.dtype == dtype:
        return values
    if is_int(dtype):
        src = values
        if src.dtype.kind in "iu":
            info = np.iinfo(dtype)
            return np.clip(src, info.min, info.max).astype(dtype)
        if src.dtype == bool_:
            return src.astype(dtype)
        f = np.rint(np.asarray(src, dtype=np.float64))
        info = np.iinfo(dtype)
        f = np.nan_to_num(f, nan=0.0, posinf=info.max, neginf=info.min)
        return np.clip(f, info.min, info.max).astype(dtype)
    if dtype == bool_:
        return values != 0
    if values.dtype.kind in "iu" and dtype in LOW_PRECISION_FLOATS:
        return values.astype(np.float32).astype(dtype)
    return values.astype(dtype)


def round_tf32(values: np.ndarray) -> np.ndarray:
    """Round fp32 values to tfloat32 precision (10 mantissa bits, RNE), returned as fp32."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    lsb = (bits >> 13) & 1
    rounded = (bits + np.uint32(0x0FFF) + lsb) & np.uint32(0xFFFFE000)
    finite = np.isfinite(values)
    out = np.where(finite, rounded, bits).astype(np.uint32)
    return out.view(np.float32)


def promote(a: np.dtype, b: np.dtype) -> np.dtype:
    """NKI's documented binary promotion rules (nki-api.md section 3.2)."""
    if a == b:
        return a
    af, bf = is_float(a), is_float(b)
    if af and not bf:
        return a
    if bf and not af:
        return b
    if af and bf:
        if float32 in (a, b):
            return float32
        pair = {a, b}
        if pair == {float16, bfloat16}:
            return float32
        if any(is_fp8(x) for x in pair):
            other = [x for x in pair if not is_fp8(x)]
            if other:
                return other[0]
            return bfloat16
        return float32
    if a == bool_:
        return b
    if b == bool_:
        return a
    # int x int
    if {a, b} == {int32, uint32}:
        return float32
    signed = a.kind == "i" or b.kind == "i"
    size = max(a.itemsize, b.itemsize)
    if signed and (a.kind == "u" and a.itemsize >= b.itemsize or b.kind == "u" and b.itemsize >= a.itemsize):
        size = min(size * 2, 4)
    return np.dtype(f"{'i' if signed else 'u'}{size}")


def scalar_dtype(value: Any) -> np.dtype | None:
    """Dtype of a 'weak' Python scalar operand (bool -> uint8, int -> int32, float -> float32)."""
    if isinstance(value, (bool, np.bool_)):
        return uint8
    if isinstance(value, (int,)):
        return int32
    if isinstance(value, float):
        return float32
    if isinstance(value, np.generic):
        return value.dtype
    return None
