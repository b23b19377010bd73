"""Profiler tests: small kernels in profkernels.py, launched on the simulator."""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


@pytest.fixture
def launch_of():
    """launch_of(kernel, *args) -> (Launch, Estimate) of one simulated launch."""
    from trnsim.timing.model import estimate_launch

    def run(kernel, *args, numerics=True):
        _, rec = kernel.launch(*args, numerics=numerics)
        return rec, estimate_launch(rec)

    return run


@pytest.fixture
def bf16():
    import ml_dtypes

    return ml_dtypes.bfloat16
