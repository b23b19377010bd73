"""Shared test fixtures: fresh random generators (never fixed zeros) and dtype tolerances."""

from __future__ import annotations

import warnings

import ml_dtypes
import numpy as np
import pytest

from trnsim.core.errors import NkiWarning

#: absolute/relative tolerances per dtype for results compared with float64 NumPy references
TOLERANCES = {
    "float32": dict(rtol=1e-5, atol=1e-5),
    "bfloat16": dict(rtol=2e-2, atol=2e-2),
    "float16": dict(rtol=2e-3, atol=2e-3),
    "float8_e4m3": dict(rtol=1.5e-1, atol=1.5e-1),
    "float8_e5m2": dict(rtol=2.5e-1, atol=2.5e-1),
}

DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16,
          "float8_e4m3": ml_dtypes.float8_e4m3, "float8_e5m2": ml_dtypes.float8_e5m2}


@pytest.fixture
def rng() -> np.random.Generator:
    """A freshly seeded generator per test (seed printed on failure via the test id is not needed: inputs are
    random but every check compares against a reference computed from the same inputs)."""
    return np.random.default_rng()


@pytest.fixture(autouse=True)
def _nki_warnings_visible():
    with warnings.catch_warnings():
        warnings.simplefilter("default", NkiWarning)
        yield
