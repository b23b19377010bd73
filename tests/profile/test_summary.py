"""Summary metrics against hand-computed values, and warnings with their source lines."""

from __future__ import annotations

import inspect
import json

import numpy as np
import profkernels as pk
import pytest

from trnsim.profile.summary import format_text, summarize


def line_of(kernel, text: str) -> str:
    """'profkernels.py:N' of the first line of `kernel` containing `text`."""
    func = getattr(kernel, "func", kernel)
    src, first = inspect.getsourcelines(func)
    for k, line in enumerate(src):
        if text in line:
            return f"profkernels.py:{first + k}"
    raise AssertionError(text)


def _union(intervals):
    total, end = 0.0, -np.inf
    for s, e in sorted(intervals):
        if s > end:
            total += e - s
            end = e
        elif e > end:
            total += e - end
            end = e
    return total


def test_one_matmul_metrics_by_hand(launch_of, bf16):
    rng = np.random.default_rng()
    rec, est = launch_of(pk.one_matmul, rng.standard_normal((128, 128)).astype(bf16),
                         rng.standard_normal((128, 512)).astype(bf16))
    s = summarize(rec, est)
    T = est.total_ns
    assert s["total_time"] == pytest.approx(T / 1e9) and s["total_time_ns"] == pytest.approx(T)
    flops = 2 * 128 * 128 * 512
    assert s["model_flops"] == flops and s["hardware_flops"] == flops and s["transpose_flops"] == 0
    peak = 2 * 128 * 128 * 2.4  # trn2 bf16 flop per ns, one core
    assert s["mfu_estimated_percent"] == pytest.approx(100 * flops / (peak * T))
    assert s["hfu_estimated_percent"] == pytest.approx(100 * flops / (peak * T))
    lhs, rhs, out = 128 * 128 * 2, 128 * 512 * 2, 128 * 512 * 4
    assert s["dma_transfer_count"] == 3
    assert s["dma_bytes"] == lhs + rhs + out
    assert s["hbm_read_bytes"] == lhs + rhs and s["hbm_write_bytes"] == out
    assert s["dma_average_transfer_bytes"] == pytest.approx((lhs + rhs + out) / 3)
    assert s["dma_average_bytes_per_partition"] == pytest.approx((256 + 1024 + 2048) / 3)
    assert s["mbu_estimated_percent"] == pytest.approx(100 * (lhs + rhs + out) / (362.0 * T))
    assert s["mm_arithmetic_intensity"] == pytest.approx(flops / (lhs + rhs + out))
    assert s["peak_flops_bandwidth_ratio"] == pytest.approx(peak / 362.0)
    assert s["mfu_max_achievable_estimated_percent"] == pytest.approx(100 * flops / (lhs + rhs + out) / (peak / 362))
    # on-chip traffic: matmul reads both SBUF tiles, the copy reads PSUM and writes SBUF, the store reads SBUF
    assert s["sbuf_read_bytes"] == lhs + rhs + out and s["sbuf_write_bytes"] == lhs + rhs + out
    assert s["psum_write_bytes"] == 128 * 512 * 4 and s["psum_read_bytes"] == 128 * 512 * 4
    assert s["tensor_engine_instruction_count"] == 1 and s["vector_engine_instruction_count"] == 1
    # active time: union of each engine's intervals over the total (DMA: the three transfers)
    dma = [(t.start, t.end) for ins, t in zip(rec.stream, est.timings) if ins.engine == "DMA"]
    assert s["dma_active_time_percent"] == pytest.approx(100 * _union(dma) / T)
    vec = [(t.start, t.end) for ins, t in zip(rec.stream, est.timings) if ins.engine == "Vector"]
    assert s["vector_engine_active_time_percent"] == pytest.approx(100 * _union(vec) / T)
    mm = [t for ins, t in zip(rec.stream, est.timings) if ins.engine == "Tensor"][0]
    # the LoadStationary lies inside the matmul's window (the timing model charges max(LS, MM))
    assert s["tensor_engine_active_time_percent"] == pytest.approx(100 * (mm.end - mm.start) / T)
    assert s["sbuf_peak_bytes_per_partition"] == max(u.peak for u in rec.usage if u.kind == "sbuf")
    assert s["psum_peak_bytes_per_partition"] == 128 * 512 * 4 // 128
    assert s["tensors_loaded_more_than_twice"] == 0
    w = {w["code"]: w for w in s["warnings"]}
    assert "fp32_matmul" not in w
    # the [128, 128] bf16 load moves 256 bytes per partition: the one small transfer
    assert w["small_dma_transfers"]["value"] == 1
    assert [r["location"] for r in w["small_dma_transfers"]["lines"]] == [line_of(pk.one_matmul, "a = nl.load")]
    # per-line: the matmul line carries the flops, the load lines the bytes
    lines = {r["location"]: r for r in s["source_lines"]}
    assert lines[line_of(pk.one_matmul, "nc_matmul")]["flops"] == flops
    assert lines[line_of(pk.one_matmul, "b = nl.load")]["dma_bytes"] == rhs
    assert json.loads(json.dumps(s)) == s  # JSON-able as is
    text = format_text(s)
    assert "total_time" in text and "one_matmul" in text


def _codes(s):
    return {w["code"]: w for w in s["warnings"]}


def _where(w):
    return [r["location"] for r in w["lines"]]


def test_small_tiles_warnings(launch_of):
    rec, est = launch_of(pk.small_tiles, np.random.default_rng().standard_normal((128, 16)).astype(np.float32))
    s = summarize(rec, est)
    w = _codes(s)
    assert w["small_dma_transfers"]["value"] == 8  # 32 partitions x 16 fp32 = 64 bytes per partition
    assert s["dma_small_transfer_count"] == 8
    assert set(_where(w["small_dma_transfers"])) == {line_of(pk.small_tiles, "nl.load"),
                                                     line_of(pk.small_tiles, "nl.store")}
    assert _where(w["low_partition_usage"]) == [line_of(pk.small_tiles, "nl.multiply")]
    assert w["low_partition_usage"]["lines"][0]["detail"] == "min partitions 32"
    assert _where(w["tiny_free_size"]) == [line_of(pk.small_tiles, "nl.multiply")]
    assert "engine_waits_on_dma" in w
    assert line_of(pk.small_tiles, "nl.load") in _where(w["engine_waits_on_dma"])


def test_fp32_matmul_warning(launch_of):
    rng = np.random.default_rng()
    rec, est = launch_of(pk.one_matmul, rng.standard_normal((128, 128)).astype(np.float32),
                         rng.standard_normal((128, 512)).astype(np.float32))
    w = _codes(summarize(rec, est))
    assert _where(w["fp32_matmul"]) == [line_of(pk.one_matmul, "nc_matmul")]


def test_transpose_warning(launch_of):
    rec, est = launch_of(pk.pe_transposes, np.random.default_rng().standard_normal((128, 128)).astype(np.float32))
    s = summarize(rec, est)
    w = _codes(s)
    assert _where(w["tensor_engine_transposes"]) == [line_of(pk.pe_transposes, "nc_transpose")]
    assert s["transpose_flops"] == s["hardware_flops"] > 0 and s["model_flops"] == 0


def test_uninitialised_read_warning(launch_of):
    with pytest.warns(Warning):
        rec, est = launch_of(pk.reads_uninitialised, np.ones((128, 64), np.float32))
    w = _codes(summarize(rec, est))
    assert w["uninitialized_read"]["severity"] == "error"
    assert _where(w["uninitialized_read"]) == [line_of(pk.reads_uninitialised, "nl.add")]


def test_sbuf_near_capacity_warning(launch_of):
    rec, est = launch_of(pk.big_sbuf, np.ones((128, 24500), np.float32), numerics=False)
    s = summarize(rec, est)
    w = _codes(s)
    assert s["sbuf_peak_bytes_per_partition"] == 2 * 24500 * 4
    assert w["sbuf_near_capacity"]["value"] == pytest.approx(100 * 196000 / 212984)
    assert "psum_near_capacity" not in w


def test_reloaded_tensor(launch_of, bf16):
    rng = np.random.default_rng()
    # M = 512: every rhs tile is loaded M / 128 = 4 times, every lhsT tile N / 512 = 2 times
    rec, est = launch_of(pk.matmul_tiled, rng.standard_normal((256, 512)).astype(bf16),
                         rng.standard_normal((256, 1024)).astype(bf16), numerics=False)
    s = summarize(rec, est)
    assert s["tensors_loaded_more_than_twice"] == 1
    r = s["reloaded_tensors"][0]
    assert r["tensor"] == "rhs" and r["max_loads_of_one_region"] == 4
    assert r["loads"] == 4 * 2 * 2 and r["regions"] == 2 * 2
    assert r["extra_load_bytes"] == 3 * 256 * 1024 * 2
    assert "tensor_reloaded" in _codes(s)
