"""Helpers for the kernel-library tests: per-dtype tolerances (from tests/conftest.py) and a comparison that
reports the error it found."""

from __future__ import annotations

import importlib.util
import os
import pathlib

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location(
    "_trnsim_tests_root_conftest", pathlib.Path(__file__).parents[1] / "conftest.py"
)
_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root)

#: rtol / atol per dtype name, for results compared with a float64 NumPy reference
TOLERANCES: dict[str, dict[str, float]] = _root.TOLERANCES
#: dtype name -> NumPy / ml_dtypes scalar type
DTYPES = _root.DTYPES


def _single_threaded_blas() -> None:
    """Run NumPy's bundled OpenBLAS on one thread. Simulated matmuls are tiny (<= 128 x 128 x 512); on a busy
    2-core machine OpenBLAS's thread hand-offs made them ~6x slower (flash attention at seqlen 4096: 31 s instead
    of 5 s). Best effort: silently does nothing where the library or symbol is not found."""
    import ctypes
    import glob
    import os

    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in glob.glob(os.path.join(libs, "*openblas*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for sym in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads"):
            fn = getattr(lib, sym, None)
            if fn is not None:
                fn(1)
                return


if os.environ.get("OPENBLAS_NUM_THREADS") is None:
    _single_threaded_blas()


def assert_close(got: np.ndarray, ref: np.ndarray, dtype_name: str, scale: float = 1.0) -> float:
    """Check got (any dtype) against a float64 reference with the dtype's tolerance times `scale`;
    return the max abs error."""
    tol = TOLERANCES[dtype_name]
    g = np.asarray(got).astype(np.float64)
    assert g.shape == ref.shape, f"shape {g.shape} != reference {ref.shape}"
    np.testing.assert_allclose(g, ref, rtol=tol["rtol"] * scale, atol=tol["atol"] * scale)
    return float(np.abs(g - ref).max())


@pytest.fixture
def close():
    return assert_close
