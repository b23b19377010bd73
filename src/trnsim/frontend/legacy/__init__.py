"""The legacy NKI API (`neuronxcc.nki`) on trnsim: `import trnsim.frontend.legacy as nki`.

Under `python -m trnsim run|pytest` this package is also importable as `neuronxcc.nki`.
"""

from __future__ import annotations

from . import compiler, isa, language, typing
from .runner import baremetal, benchmark, jit, profile, simulate_kernel, trace
from .tensor import LegacyTensor as tensor


class FrameworkKernel:
    """Hook for third-party frameworks (accepted for compatibility; trnsim runs NumPy / torch arrays)."""

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs


__all__ = [
    "FrameworkKernel",
    "baremetal",
    "benchmark",
    "compiler",
    "isa",
    "jit",
    "language",
    "profile",
    "simulate_kernel",
    "tensor",
    "trace",
    "typing",
]
