"""End-to-end checks on the calibration kernels (timing-only, reduced sizes where the full ones are slow)."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import ml_dtypes
import numpy as np
import pytest

import trnsim
from trnsim.frontend.legacy.typing import tensor
from trnsim.kernels import mamba, matmul
from trnsim.kernels.calibration import kernel_opt_matmul as kopt

BF16 = ml_dtypes.bfloat16
F32 = np.float32
ROOT = pathlib.Path(__file__).parents[2]


@pytest.fixture(scope="module")
def calibrate():
    spec = importlib.util.spec_from_file_location("trnsim_calibrate", ROOT / "benchmarks" / "calibrate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_every_published_row_is_covered(calibrate):
    ids = {r.id.split("-")[0] for r in calibrate.build_rows()}
    expected = {f"A{k}" for k in range(1, 27)} | {"A29", "A30", "A31", "A32", "A33", "A34", "A35", "A36"}
    assert expected <= ids


def test_microbenchmark_rows(calibrate):
    rows = [r for r in calibrate.build_rows() if r.id in ("A29", "A30", "A35") or r.id.startswith("A36-")]
    res = calibrate.evaluate(rows, {}, verbose=False)
    for rid in ("A29", "A30", "A35"):
        assert abs(res[rid]["err"]) < 0.05, (rid, res[rid])
    for rid, rec in res.items():
        if rid.startswith("A36-"):
            assert rec["pred"] == pytest.approx(rec["row"].measured, abs=0.06), rid


def test_mamba_v1_toy_shape_a6():
    c, s, n = 256, 512, 16
    est = trnsim.estimate(mamba.mamba_v1, tensor[[1, c, s], F32], tensor[[1, c, s], F32], tensor[[c, n], F32],
                          tensor[[1, n, s], F32], tensor[[1, n, s], F32], target="trn1")
    assert est.total_us == pytest.approx(172.93, rel=0.2)


def test_matmul_ladder_order_at_reduced_size():
    args = (tensor[[2048, 1024], BF16], tensor[[2048, 2048], BF16])
    t = [trnsim.estimate(k, *args, target="trn1").total_ns for k in
         (matmul.matmul_tiled, matmul.matmul_hoisted, matmul.matmul_blocked, matmul.matmul_optimized)]
    assert t[0] > t[1] > t[2] > t[3]
    # hoisting saves the lhsT traffic, blocking halves the rhs traffic, blocking K makes it compute-bound
    assert t[0] / t[1] == pytest.approx(1.2, rel=0.25)
    assert t[1] / t[2] == pytest.approx(2.0, rel=0.25)


def test_kernel_optimisation_ladder_at_reduced_size():
    args = (tensor[[2048, 2048], F32], tensor[[2048, 2048], F32])
    est = {n: trnsim.estimate(k, *args, target="trn2") for n, k in kopt.KERNELS.items()}
    util = {n: e.engine_utilisation() for n, e in est.items()}
    # rows A31-A34: the tiled version keeps the DMA queues busy, blocking all dimensions frees them and puts the
    # partial-sum accumulation on the Vector engine; blocking M, N keeps TensorE busier than the tiled version
    assert util["kopt_v2"]["DMA"] > 0.95 and util["kopt_v5"]["DMA"] < 0.4
    assert util["kopt_v4"]["Tensor"] > util["kopt_v2"]["Tensor"]
    assert util["kopt_v5"]["Vector"] > 2 * util["kopt_v2"]["Vector"]
    for v in ("kopt_v3", "kopt_v4", "kopt_v5"):
        assert est[v].total_ns < 1.05 * est["kopt_v2"].total_ns
