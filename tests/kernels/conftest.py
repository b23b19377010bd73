"""Helpers for the kernel-library tests: per-dtype tolerances (from tests/conftest.py) and a comparison that
reports the error it found."""

from __future__ import annotations

import importlib.util
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
