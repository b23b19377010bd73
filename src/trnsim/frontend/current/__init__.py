"""The current NKI API (`import nki`, NKI 0.6) on trnsim: `import trnsim.frontend.current as nki`.

Under `python -m trnsim run|pytest` this package is also importable as `nki` (with `nki.language`, `nki.isa`,
`nki.collectives`, `nki.typing`). `nki.jit` kernels run on the simulator: always for NumPy arguments, and for
PyTorch / JAX tensors when TRNSIM_SIMULATOR=1 (or NKI_SIMULATOR=1) is set; `nki.simulate(kernel)(*args)` always
simulates. `kernel[2](...)` runs an LNC=2 kernel on two simulated NeuronCores.
"""

from __future__ import annotations

import numpy as _np

from . import collectives, isa, language, typing
from .kernel import Kernel, jit, simulate, simulator_requested
from .tensor import NkiTensor

#: the type of dtype values in annotations (`def k(x, dt: nki.dtype)`)
dtype = _np.dtype

__all__ = [
    "Kernel",
    "NkiTensor",
    "collectives",
    "dtype",
    "isa",
    "jit",
    "language",
    "simulate",
    "simulator_requested",
    "typing",
]


def __getattr__(name: str):
    if name in ("baremetal", "benchmark", "profile", "simulate_kernel"):
        from ...core.errors import NkiUnsupportedError

        raise NkiUnsupportedError(
            f"nki.{name} is not available in the current NKI API (removed in NKI 0.2)",
            code="err_unsupported_api",
            hint="use nki.jit / nki.simulate (or trnsim.simulate_kernel / trnsim.estimate for timing)",
        )
    raise AttributeError(name)
