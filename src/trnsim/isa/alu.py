"""ALU operators and activation functions, normalised from everything kernels pass as `op=`.

Kernels pass `nl.add`, `nl.maximum`, `nl.max`, `np.add`, `np.amax`, `nl.exp`, `np.exp`, ... All of them are
resolved here to one canonical name, with fp32 NumPy semantics. Engines compute in fp32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.errors import NkiTypeError

_F = np.float32

# ---------------------------------------------------------------------------------------------------------
# binary / unary ALU operators (tensor_tensor, tensor_scalar, tensor_reduce, ...)


def _shift_left(a, b):
    return np.left_shift(a, b)


def _shift_right(a, b):
    # Logical shift: arithmetic right shift is not supported by the hardware.
    a = np.asarray(a)
    if a.dtype.kind == "i":
        ua = a.view(np.dtype(f"u{a.dtype.itemsize}"))
        return np.right_shift(ua, np.asarray(b).astype(ua.dtype)).view(a.dtype)
    return np.right_shift(a, b)


def _abs_max(a, b):
    return np.where(np.abs(a) >= np.abs(b), a, b)


def _abs_min(a, b):
    return np.where(np.abs(a) <= np.abs(b), a, b)


def _safe_div(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.divide(a, b)


def _mod(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.mod(a, b)


def _fmod(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.fmod(a, b)


def _power(a, b):
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        return np.power(a, b)


BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "add": np.add,
    "subtract": np.subtract,
    "multiply": np.multiply,
    "divide": _safe_div,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "power": _power,
    "mod": _mod,
    "fmod": _fmod,
    "abs_max": _abs_max,
    "abs_min": _abs_min,
    "equal": lambda a, b: (a == b).astype(_F),
    "not_equal": lambda a, b: (a != b).astype(_F),
    "greater": lambda a, b: (a > b).astype(_F),
    "greater_equal": lambda a, b: (a >= b).astype(_F),
    "less": lambda a, b: (a < b).astype(_F),
    "less_equal": lambda a, b: (a <= b).astype(_F),
    "logical_and": lambda a, b: np.logical_and(a != 0, b != 0).astype(_F),
    "logical_or": lambda a, b: np.logical_or(a != 0, b != 0).astype(_F),
    "logical_xor": lambda a, b: np.logical_xor(a != 0, b != 0).astype(_F),
    "bitwise_and": np.bitwise_and,
    "bitwise_or": np.bitwise_or,
    "bitwise_xor": np.bitwise_xor,
    "left_shift": _shift_left,
    "right_shift": _shift_right,
    "bypass": lambda a, b: a,
}

BITVEC = {"bitwise_and", "bitwise_or", "bitwise_xor", "left_shift", "right_shift", "invert"}
REDUCIBLE = {
    "add",
    "multiply",
    "subtract",
    "maximum",
    "minimum",
    "bitwise_and",
    "bitwise_or",
    "bitwise_xor",
    "logical_and",
    "logical_or",
    "logical_xor",
    "abs_max",
    "abs_min",
}

REDUCE_IDENTITY = {
    "add": 0.0,
    "subtract": 0.0,
    "multiply": 1.0,
    "maximum": -np.inf,
    "minimum": np.inf,
    "logical_or": 0.0,
    "logical_and": 1.0,
    "logical_xor": 0.0,
    "bitwise_or": 0,
    "bitwise_and": -1,
    "bitwise_xor": 0,
    "abs_max": 0.0,
    "abs_min": np.inf,
}


def _erf(x):
    # Abramowitz & Stegun 7.1.26 refined with one Newton step: |error| < 1e-7, enough for fp32 engine math.
    x = np.asarray(x, dtype=np.float64)
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (
        ((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592
    ) * t * np.exp(-a * a)
    return s * y


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _softplus(x):
    with np.errstate(over="ignore"):
        return np.logaddexp(0.0, x)


def _gelu(x):
    return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))


def _gelu_dx(x):
    return 0.5 * (1.0 + _erf(x / np.sqrt(2.0))) + x * np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi)


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def _gelu_sigmoid(x):
    return x * _sigmoid(1.702 * x)


def _gelu_sigmoid_dx(x):
    s = _sigmoid(1.702 * x)
    return s + 1.702 * x * s * (1.0 - s)


def _silu_dx(x):
    s = _sigmoid(x)
    return s * (1.0 + x * (1.0 - s))


def _rsqrt(x):
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 / np.sqrt(x)


def _reciprocal(x):
    with np.errstate(divide="ignore"):
        return 1.0 / x


def _log(x):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(x)


def _sqrt(x):
    with np.errstate(invalid="ignore"):
        return np.sqrt(x)


def _exp(x):
    with np.errstate(over="ignore"):
        return np.exp(x)


UNARY: dict[str, Callable[[Any], Any]] = {
    "copy": lambda x: x,
    "identity": lambda x: x,
    "exp": _exp,
    "log": _log,
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0),
    "gelu": _gelu,
    "gelu_dx": _gelu_dx,
    "gelu_apprx_tanh": _gelu_tanh,
    "gelu_apprx_sigmoid": _gelu_sigmoid,
    "gelu_apprx_sigmoid_dx": _gelu_sigmoid_dx,
    "silu": lambda x: x * _sigmoid(x),
    "silu_dx": _silu_dx,
    "softplus": _softplus,
    "mish": lambda x: x * np.tanh(_softplus(x)),
    "erf": _erf,
    "erf_dx": lambda x: 2.0 / np.sqrt(np.pi) * np.exp(-x * x),
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "arctan": np.arctan,
    "sqrt": _sqrt,
    "rsqrt": _rsqrt,
    "reciprocal": _reciprocal,
    "square": np.square,
    "sign": np.sign,
    "abs": np.abs,
    "negative": np.negative,
    "floor": np.floor,
    "ceil": np.ceil,
    "trunc": np.trunc,
    "invert": np.invert,
    "logical_not": lambda x: (x == 0).astype(_F),
}

#: Functions the Scalar engine's activation table provides (nki-api.md section 5.3).
ACTIVATIONS = {
    "copy",
    "identity",
    "square",
    "sigmoid",
    "relu",
    "gelu",
    "gelu_dx",
    "gelu_apprx_tanh",
    "gelu_apprx_sigmoid",
    "gelu_apprx_sigmoid_dx",
    "silu",
    "silu_dx",
    "tanh",
    "softplus",
    "mish",
    "erf",
    "erf_dx",
    "exp",
    "sign",
    "abs",
    "log",
    "sin",
    "arctan",
    "sqrt",
    "rsqrt",
    "reciprocal",
    "prelu",
}

# Documented valid input ranges of the Scalar engine's piece-wise approximations.
ACTIVATION_RANGES = {
    "log": (2.0**-64, 2.0**64),
    "sin": (-np.pi, np.pi),
    "arctan": (-np.pi / 2, np.pi / 2),
    "sqrt": (2.0**-116, 2.0**118),
    "rsqrt": (2.0**-87, 2.0**97),
}

_NUMPY_NAMES: dict[Any, str] = {
    np.add: "add",
    np.subtract: "subtract",
    np.multiply: "multiply",
    np.divide: "divide",
    np.true_divide: "divide",
    np.maximum: "maximum",
    np.minimum: "minimum",
    np.max: "maximum",
    np.amax: "maximum",
    np.min: "minimum",
    np.amin: "minimum",
    np.sum: "add",
    np.prod: "multiply",
    np.power: "power",
    np.mod: "mod",
    np.fmod: "fmod",
    np.equal: "equal",
    np.not_equal: "not_equal",
    np.greater: "greater",
    np.greater_equal: "greater_equal",
    np.less: "less",
    np.less_equal: "less_equal",
    np.logical_and: "logical_and",
    np.logical_or: "logical_or",
    np.logical_xor: "logical_xor",
    np.logical_not: "logical_not",
    np.bitwise_and: "bitwise_and",
    np.bitwise_or: "bitwise_or",
    np.bitwise_xor: "bitwise_xor",
    np.invert: "invert",
    np.left_shift: "left_shift",
    np.right_shift: "right_shift",
    np.exp: "exp",
    np.log: "log",
    np.tanh: "tanh",
    np.sin: "sin",
    np.cos: "cos",
    np.tan: "tan",
    np.arctan: "arctan",
    np.sqrt: "sqrt",
    np.square: "square",
    np.reciprocal: "reciprocal",
    np.sign: "sign",
    np.abs: "abs",
    np.absolute: "abs",
    np.negative: "negative",
    np.copy: "copy",
    np.floor: "floor",
    np.ceil: "ceil",
    np.trunc: "trunc",
}

# nl names that are aliases of a canonical op when used as op= values.
_ALIASES = {"max": "maximum", "min": "minimum", "sum": "add", "prod": "multiply", "all": "logical_and"}


def op_name(op: Any) -> str:
    """Canonical name of an operator passed by a kernel (nl function, NumPy function or string)."""
    if op is None:
        return ""
    name = getattr(op, "_nki_op", None)
    if name is None:
        try:
            name = _NUMPY_NAMES.get(op)
        except TypeError:
            name = None
    if name is None and isinstance(op, str):
        name = op
    if name is None:
        raise NkiTypeError(
            f"unsupported operator {op!r}",
            values={"op": op},
            hint="pass an nl operator such as nl.add / nl.maximum, or a NumPy ufunc such as np.add",
        )
    return _ALIASES.get(name, name)


def binary(name: str) -> Callable[[Any, Any], Any]:
    fn = BINARY.get(name)
    if fn is None:
        raise NkiTypeError(f"operator {name!r} is not a binary ALU operator", values={"op": name})
    return fn


def unary(name: str) -> Callable[[Any], Any]:
    fn = UNARY.get(name)
    if fn is None:
        raise NkiTypeError(f"operator {name!r} is not a unary function", values={"op": name})
    return fn


try:  # NumPy 2: the error state is a context variable holding an opaque "extobj"; setting a prepared one is what
    # np.errstate does, minus building it (about 0.6 us) on every element-wise instruction
    from numpy._core._ufunc_config import _extobj_contextvar as _FP_STATE
    from numpy._core.umath import _make_extobj
except ImportError:  # pragma: no cover - other NumPy layouts: plain np.errstate
    _FP_STATE = None
_QUIET: dict[Any, Any] = {}


def _quiet_state() -> Any:
    """The current NumPy error state with invalid / overflow ignored (= np.errstate(invalid="ignore",
    over="ignore") entered here), cached per current state."""
    cur = _FP_STATE.get()
    q = _QUIET.get(cur)
    if q is None:
        if len(_QUIET) > 64:
            _QUIET.clear()
        q = _QUIET[cur] = _make_extobj(invalid="ignore", over="ignore")
    return q


def apply_binary(name: str, a: Any, b: Any) -> np.ndarray:
    """fp32 ALU semantics; bit-vector ops on integer bit patterns."""
    fn = BINARY.get(name)
    if fn is None:
        fn = binary(name)
    if name in BITVEC:
        return fn(np.asarray(a), np.asarray(b))
    if _FP_STATE is not None:
        q = _QUIET.get(_FP_STATE.get())
        token = _FP_STATE.set(q if q is not None else _quiet_state())
        try:
            r = fn(a, b)
        finally:
            _FP_STATE.reset(token)
        return r if type(r) is np.ndarray and r.dtype == np.float32 else np.asarray(r, dtype=np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.asarray(fn(a, b), dtype=np.float32)


def reduce(name: str, x: np.ndarray, axis: tuple[int, ...], keepdims: bool = False) -> np.ndarray:
    if name == "add":
        return np.add.reduce(x, axis=axis, keepdims=keepdims, dtype=np.float32)
    if name == "subtract":
        # The hardware folds subtract as a running difference from 0: -(x0 + x1 + ...) is what add-negate gives;
        # a documented subtract reduction is x0 - x1 - x2 ..., computed here in fp32.
        first = np.take(x, [0], axis=axis[0]) if len(axis) == 1 else None
        if first is not None:
            rest = np.add.reduce(x, axis=axis, keepdims=True, dtype=np.float32) - first
            out = first - rest
            return out if keepdims else np.squeeze(out, axis=axis)
        return -np.add.reduce(x, axis=axis, keepdims=keepdims, dtype=np.float32)
    if name == "multiply":
        return np.multiply.reduce(x, axis=axis, keepdims=keepdims, dtype=np.float32)
    if name == "maximum":
        return np.max(x, axis=axis, keepdims=keepdims)
    if name == "minimum":
        return np.min(x, axis=axis, keepdims=keepdims)
    if name in ("bitwise_and", "bitwise_or", "bitwise_xor"):
        uf = {"bitwise_and": np.bitwise_and, "bitwise_or": np.bitwise_or, "bitwise_xor": np.bitwise_xor}[name]
        return uf.reduce(x, axis=axis, keepdims=keepdims)
    if name == "logical_and":
        return np.all(x != 0, axis=axis, keepdims=keepdims).astype(np.float32)
    if name == "logical_or":
        return np.any(x != 0, axis=axis, keepdims=keepdims).astype(np.float32)
    if name == "logical_xor":
        return (np.sum(x != 0, axis=axis, keepdims=keepdims) % 2).astype(np.float32)
    if name in ("abs_max", "abs_min"):
        pick = np.argmax if name == "abs_max" else np.argmin
        ax = axis[0] if len(axis) == 1 else None
        flat = x if ax is not None else x.reshape(x.shape[0], -1)
        ax = ax if ax is not None else 1
        idx = np.expand_dims(pick(np.abs(flat), axis=ax), ax)
        out = np.take_along_axis(flat, idx, axis=ax)
        return out if keepdims else np.squeeze(out, axis=ax)
    raise NkiTypeError(f"operator {name!r} cannot be used as a reduction", values={"op": name})
