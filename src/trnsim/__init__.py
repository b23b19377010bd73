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
            return current_kernel.with_target(target) if target else current_kernel
        k = LegacyKernel(kernel)
    if target:
        k.options["platform_target"] = target
    return k


def simulate_kernel(kernel: Any, *args: Any, target: str | None = None, **kwargs: Any) -> Any:
    """Run a kernel (legacy or current API, optionally gridded) on the simulator; NumPy in, NumPy out."""
    k = _as_kernel(kernel, target)
    out, _ = k.launch(*args, **kwargs)
    return out


def estimate(kernel: Any, *args: Any, target: Any = "trn2", numerics: bool | None = None, **kwargs: Any):
    """Predict a kernel's latency on `target` (a name such as "trn1" / "trn2", a variant's name or JSON path, or
    a `trnsim.timing.arch.Arch`). Returns a `trnsim.timing.model.Estimate`: total_ns / total_us, per-engine busy
    time (`engine_busy_ns`, `engine_utilisation()`), `mfu`, `hfu`, `mbu`, `hbm_bytes`, `dma_bytes`, `flops`,
    `timings` per instruction, `critical_path`, `idle` (per engine: idle time by cause) and `report()`.

    Arguments may be arrays or shape placeholders (`nki.typing.tensor[[M, K], nl.bfloat16]`); with
    placeholders (or numerics=False) the kernel runs in timing-only mode: shapes and dtypes only, no
    numerics, no race checks. Control flow that depends on tensor values raises NkiDataDependentError there.
    """
    from .frontend.legacy.typing import TensorType
    from .timing.arch import available_archs, get_arch
    from .timing.model import schedule

    arch = get_arch(target) if target is not None else None
    placeholders = any(isinstance(a, TensorType) for a in list(args) + list(kwargs.values()))
    if numerics is None:
        numerics = not placeholders
    args = tuple(_materialise(a) for a in args)
    kwargs = {k: _materialise(v) for k, v in kwargs.items()}
    launch_target = None
    if arch is not None:
        launch_target = arch.name
        if arch.name not in available_archs():
            launch_target = {2: "trn1", 3: "trn2"}.get(arch.nc_version, "trn3")
    k = _as_kernel(kernel, launch_target)
    _, rec = k.launch(*args, numerics=numerics, **kwargs)
    est = schedule(rec.stream, arch if arch is not None else rec.arch, rec.uses)
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
