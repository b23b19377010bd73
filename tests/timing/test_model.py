"""The timing pass: engines, dependencies on boxes, buffer rotation, DMA queues, cores, Estimate fields, APIs."""

from __future__ import annotations

import os
import warnings

import ml_dtypes
import numpy as np
import pytest

import trnsim
import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl
from trnsim.core.errors import NkiDataDependentError, NkiMemoryError
from trnsim.frontend.legacy.typing import tensor
from trnsim.kernels import matmul
from trnsim.kernels.calibration import microbench
from trnsim.timing.arch import get_arch
from trnsim.timing.model import schedule

BF16 = ml_dtypes.bfloat16
F32 = np.float32


def _est(kernel, *args, target="trn2", **kw):
    return trnsim.estimate(kernel, *args, target=target, **kw)


def _idx(est, opcode):
    return [i for i, ins in enumerate(est.extra["launch"].stream) if ins.opcode == opcode]


# ------------------------------------------------------------------------------------------------ engines
@nki.jit
def independent_activations(x):
    out = nl.ndarray((128, 8), dtype=x.dtype, buffer=nl.shared_hbm)
    t = nl.load(x)
    res = nl.ndarray((128, 8), dtype=x.dtype, buffer=nl.sbuf)
    for j in nl.static_range(8):
        res[:, j : j + 1] = nisa.activation(op=nl.copy, data=t[:, j : j + 1])
    nl.store(out, value=res)
    return out


def test_dependent_chain_pays_the_pipeline_latency_a30():
    est = _est(microbench.dependent_activations, tensor[[128, 1], F32], target="trn1", n_steps=16)
    s = [est.timings[i].start for i in _idx(est, "ACTIVATE")]
    # MIN_II (64) + pipeline latency (200) Scalar cycles at 1.4 GHz = 188.6 ns
    assert np.diff(s) == pytest.approx(np.full(15, 264 / 1.4))


def test_independent_instructions_issue_every_min_ii():
    est = _est(independent_activations, tensor[[128, 8], F32], target="trn1")
    s = [est.timings[i].start for i in _idx(est, "ACTIVATE")]
    assert np.diff(s) == pytest.approx(np.full(7, 64 / 1.4))


# ------------------------------------------------------------------------------------------------ boxes
@nki.jit
def halves(a):
    out = nl.ndarray((64, 512), dtype=a.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray((128, 512), dtype=a.dtype, buffer=nl.sbuf)
    t[0:64, :] = nl.load(a[0:64, :])
    t[64:128, :] = nl.load(a[64:128, :])
    r = nisa.activation(op=nl.exp, data=t[0:64, :])
    nl.store(out, value=r)
    return out


def test_raw_on_the_partition_box_actually_read():
    est = _est(halves, tensor[[128, 512], F32])
    dmas = _idx(est, "DMA")
    act = _idx(est, "ACTIVATE")[0]
    assert est.timings[act].wait_on == dmas[0]  # only the first half's load
    assert est.timings[act].reason == "data"


@nki.jit
def overwrite_after_read(a, b):
    out = nl.ndarray((128, 512), dtype=a.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray((128, 512), dtype=a.dtype, buffer=nl.sbuf)
    t[...] = nl.load(a)
    r = nisa.activation(op=nl.exp, data=t)
    t[...] = nl.load(b)  # must wait until the activation has read t (WAR)
    nl.store(out, value=nisa.tensor_tensor(r, t, op=nl.add))
    return out


def test_war_waits_for_the_reader():
    est = _est(overwrite_after_read, tensor[[128, 512], F32], tensor[[128, 512], F32])
    act = _idx(est, "ACTIVATE")[0]
    second = _idx(est, "DMA")[1]
    assert est.timings[second].start >= est.timings[act].end
    assert est.timings[second].issue >= est.timings[act].end


# ------------------------------------------------------------------------------------------------ buffers, queues
def test_buffer_rotation_limits_how_far_loads_run_ahead():
    args = (tensor[[1024, 128], BF16], tensor[[1024, 512], BF16])
    one = _est(matmul.matmul_tiled, *args, target=get_arch("trn2").variant("r1", buffer_rotation=1))
    four = _est(matmul.matmul_tiled, *args, target=get_arch("trn2").variant("r4", buffer_rotation=4))
    assert one.total_ns > 1.3 * four.total_ns
    reasons = {t.reason for t, ins in zip(one.timings, one.extra["launch"].stream) if ins.engine == "DMA"}
    assert "buffer" in reasons  # with one buffer a load waits for the matmul that used the previous tile


def test_dma_bandwidth_is_shared_not_multiplied():
    # four concurrent 4 MiB loads on different queues cannot beat the aggregate 16 x 23 B/ns
    est = _est(four_loads, tensor[[4, 128, 8192], F32])
    total_bytes = 4 * 128 * 8192 * 4
    dmas = _idx(est, "DMA")[:4]
    span = max(est.timings[i].end for i in dmas) - min(est.timings[i].start for i in dmas)
    assert span >= total_bytes / (16 * 23.0) * 0.99


@nki.jit
def four_loads(a):
    out = nl.ndarray((128, 4), dtype=a.dtype, buffer=nl.shared_hbm)
    t0 = nl.load(a[0])
    t1 = nl.load(a[1])
    t2 = nl.load(a[2])
    t3 = nl.load(a[3])
    s = nisa.tensor_tensor(nisa.tensor_tensor(t0, t1, op=nl.add), nisa.tensor_tensor(t2, t3, op=nl.add), op=nl.add)
    nl.store(out, value=s[:, 0:4])
    return out


def test_small_transfer_is_not_stuck_behind_a_big_one():
    est = _est(big_and_small, tensor[[128, 16384], F32], tensor[[128, 1], F32])
    big, small = _idx(est, "DMA")[:2]
    assert est.timings[small].end < est.timings[big].end
    assert est.timings[small].end - est.timings[small].start < 0.2 * (est.timings[big].end - est.timings[big].start)


@nki.jit
def big_and_small(a, s):
    out = nl.ndarray((128, 1), dtype=a.dtype, buffer=nl.shared_hbm)
    t = nl.load(a)
    u = nl.load(s)
    nl.store(out, value=nisa.tensor_tensor(t[:, 0:1], u, op=nl.add))
    return out


# ------------------------------------------------------------------------------------------------ cores
@nki.jit
def add_grid(a, b):
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    i = nl.program_id(0)
    x = nl.load(a[i * 128 : (i + 1) * 128, :])
    y = nl.load(b[i * 128 : (i + 1) * 128, :])
    nl.store(out[i * 128 : (i + 1) * 128, :], value=nl.add(x, y))
    return out


def test_spmd_programs_on_two_cores_run_in_parallel():
    args = (tensor[[256, 2048], F32], tensor[[256, 2048], F32])
    serial = _est(add_grid[2], *args)
    parallel = _est(add_grid[nl.nc(2)], *args)
    one = _est(add_grid[1], tensor[[128, 2048], F32], tensor[[128, 2048], F32])
    assert parallel.cores == 2 and serial.cores == 1
    # latency is the makespan: two cores take as long as one program; one core runs both (overlapped)
    assert parallel.total_ns == pytest.approx(one.total_ns, rel=0.05)
    assert parallel.total_ns < 0.8 * serial.total_ns
    cores = {ins.core for ins in parallel.extra["launch"].stream}
    assert cores == {0, 1}


# ------------------------------------------------------------------------------------------------ Estimate / APIs
def test_estimate_fields_and_report():
    est = _est(matmul.matmul_hoisted, tensor[[512, 256], BF16], tensor[[512, 1024], BF16], target="trn1")
    n = len(est.extra["launch"].stream)
    assert len(est.timings) == n and est.total_ns > 0
    assert est.total_ns == pytest.approx(max(t.done for t in est.timings))
    for t in est.timings:
        assert t.end >= t.start >= 0 and t.wait_ns >= 0 and t.done >= t.end
    assert est.flops == 2 * 512 * 256 * 1024 and est.pe_flops == est.flops
    # lhsT once per m (2 x 4 tiles of 32 KiB), rhs once per (m, n) (4 x 4 tiles of 128 KiB), result stored once
    assert est.hbm_bytes == est.dma_bytes == (2 * 4 * 32 + 4 * 4 * 128 + 512) * 1024
    assert 0 < est.mfu < 1 and est.hfu == pytest.approx(est.mfu) and 0 < est.mbu < 1
    assert set(est.engine_busy_ns) >= {"Tensor", "Vector", "DMA"}
    assert est.critical_path and est.critical_path[-1] == max(range(n), key=lambda i: est.timings[i].done)
    assert all(0 <= i < n for i in est.critical_path)
    assert {t.queue for t in est.timings if t.queue} <= set(est.extra["dma_queues"])
    text = est.report()
    assert "where time is lost" in text and "matmul.py:" in text and "Tensor engine idle" in text


def test_timing_only_matches_full_simulation(rng):
    a = rng.standard_normal((512, 256)).astype(BF16)
    b = rng.standard_normal((512, 1024)).astype(BF16)
    full = _est(matmul.matmul_blocked, a, b)
    timing_only = _est(matmul.matmul_blocked, tensor[[512, 256], BF16], tensor[[512, 1024], BF16])
    assert timing_only.total_ns == pytest.approx(full.total_ns)


@nki.jit
def gather_rows(table, idx):
    out = nl.ndarray((128, 64), dtype=table.dtype, buffer=nl.shared_hbm)
    i = nl.load(idx)
    rows = nl.load(table[i, nl.arange(64)[None, :]])
    nl.store(out, value=rows)
    return out


def test_data_dependent_addressing_raises_in_timing_only_mode(rng):
    with pytest.raises(NkiDataDependentError, match="timing-only"):
        _est(gather_rows, tensor[[1024, 64], F32], tensor[[128, 1], np.int32])
    table = rng.standard_normal((1024, 64)).astype(F32)
    idx = rng.integers(0, 1024, (128, 1)).astype(np.int32)
    assert _est(gather_rows, table, idx).total_ns > 0  # fine with real data


@nki.jit
def too_big_for_sbuf(a):
    out = nl.ndarray((128, 4), dtype=a.dtype, buffer=nl.shared_hbm)
    tiles = [nl.load(a[k]) for k in range(8)]  # 8 x 32 KiB per partition live at once
    acc = tiles[0]
    for k in range(1, 8):
        acc = nisa.tensor_tensor(acc, tiles[k], op=nl.add)
    nl.store(out, value=acc[:, 0:4])
    return out


def test_sbuf_overflow_is_an_error_in_simulation_and_spills_in_timing_only_mode(rng):
    with pytest.raises(NkiMemoryError):
        nki.simulate_kernel(too_big_for_sbuf, rng.standard_normal((8, 128, 8192)).astype(F32))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        est = _est(too_big_for_sbuf, tensor[[8, 128, 8192], F32])
    assert any("warn_sbuf_spill" in str(x.message) for x in w)
    assert est.extra["spills"] and est.extra["spill_save_bytes"] == est.extra["spill_reload_bytes"] > 0
    # trn1's spill policy: the tiles are unmodified loads of the input, dropped and reloaded from it, never saved
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = _est(too_big_for_sbuf, tensor[[8, 128, 8192], F32], target="trn1")
    assert est.extra["spills"] and est.extra["spill_reload_bytes"] > 0 and est.extra["spill_save_bytes"] == 0


def test_benchmark_api_latency_percentiles_and_artifacts(tmp_path, monkeypatch, rng):
    monkeypatch.chdir(tmp_path)
    a = rng.standard_normal((512, 256)).astype(BF16)
    b = rng.standard_normal((512, 1024)).astype(BF16)
    bench = nki.benchmark(warmup=2, iters=10, save_neff_name="file.neff", save_trace_name="profile.ntff")(
        matmul.matmul_tiled
    )
    bench(a, b)
    res = bench.benchmark_result.nc_latency
    expect = _est(matmul.matmul_tiled, a, b).total_us
    for p in (0, 1, 10, 25, 50, 90, 99, 100):
        assert res.get_latency_percentile(p) == pytest.approx(expect)
    assert os.path.exists(tmp_path / "file.neff") and os.path.exists(tmp_path / "profile.ntff")


def test_schedule_is_deterministic():
    est = _est(matmul.matmul_optimized, tensor[[1024, 256], BF16], tensor[[1024, 1024], BF16])
    launch = est.extra["launch"]
    again = schedule(launch.stream, launch.arch)
    assert [(t.start, t.end) for t in again.timings] == [(t.start, t.end) for t in est.timings]
