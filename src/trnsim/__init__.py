"""trnsim: AWS Trainium (Trn1 / Trn2) in software.

Runs unmodified NKI kernels on any CPU with hardware-faithful numerics and strict checks, predicts their
latency with an engine-level performance model, and writes instruction-level profiles.

Programmatic entry points (no import aliases needed):

    import trnsim
    out = trnsim.simulate_kernel(my_kernel, a, b)            # NumPy in, NumPy out
    est = trnsim.estimate(my_kernel, a, b, target="trn2")     # modeled latency and utilisation
"""

from __future__ import annotations

from typing import Any

from .core.errors import (
    NkiDataDependentError,
    NkiDeadlockError,
    NkiError,
    NkiIndexError,
    NkiMemoryError,
    NkiRaceError,
    NkiTypeError,
    NkiUnsupportedError,
    NkiValidationError,
    NkiWarning,
)
from .core.launch import Launch, last_launch

__version__ = "0.1.0"


def _as_kernel(kernel: Any, target: str | None):
    from .frontend.legacy.runner import LegacyKernel

    if isinstance(kernel, LegacyKernel):
        k = LegacyKernel(kernel.func, kernel.mode, kernel.grid, **kernel.options)
    else:
        current_kernel = getattr(kernel, "_trnsim_current", None)
        if current_kernel is not None:
            return current_kernel
        k = LegacyKernel(kernel)
    if target:
        k.options["platform_target"] = target
    return k


def simulate_kernel(kernel: Any, *args: Any, target: str | None = None, **kwargs: Any) -> Any:
    """Run a kernel (legacy or current API, optionally gridded) on the simulator; NumPy in, NumPy out."""
    k = _as_kernel(kernel, target)
    out, _ = k.launch(*args, **kwargs)
    return out


def estimate(kernel: Any, *args: Any, target: str | None = "trn2", numerics: bool | None = None, **kwargs: Any):
    """Predict latency: returns a `trnsim.timing.model.Estimate` (total_ns, engine busy time, MFU, MBU, ...).

    Arguments may be arrays or shape placeholders (`nki.typing.tensor[[M, K], nl.bfloat16]`); with
    placeholders (or numerics=False) the kernel runs in timing-only mode, skipping numerics.
    """
    from .frontend.legacy.typing import TensorType
    from .timing.model import estimate_launch

    placeholders = any(isinstance(a, TensorType) for a in list(args) + list(kwargs.values()))
    if numerics is None:
        numerics = not placeholders
    args = tuple(_materialise(a) for a in args)
    kwargs = {k: _materialise(v) for k, v in kwargs.items()}
    k = _as_kernel(kernel, target)
    _, rec = k.launch(*args, numerics=numerics, **kwargs)
    est = estimate_launch(rec)
    est.extra["launch"] = rec
    return est


def _materialise(a: Any) -> Any:
    from .frontend.legacy.typing import TensorType

    if isinstance(a, TensorType):
        import numpy as np

        return np.empty(a.shape, dtype=a.dtype)
    return a


__all__ = [
    "Launch",
    "NkiDataDependentError",
    "NkiDeadlockError",
    "NkiError",
    "NkiIndexError",
    "NkiMemoryError",
    "NkiRaceError",
    "NkiTypeError",
    "NkiUnsupportedError",
    "NkiValidationError",
    "NkiWarning",
    "estimate",
    "last_launch",
    "simulate_kernel",
]
