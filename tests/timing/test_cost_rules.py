"""Per-instruction cost rules against hand-computed cycle counts (trn-hardware.md sections 2-3)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from trnsim.core.instruction import Engine, Instruction
from trnsim.core.source import UNKNOWN
from trnsim.isa import dma, gpsimd_engine, scalar_engine, tensor_engine, vector_engine
from trnsim.timing.arch import get_arch
from trnsim.timing.model import dma_descriptor_ns, dma_efficiency

BF16 = np.dtype(ml_dtypes.bfloat16)
F32 = np.dtype(np.float32)
FP8 = np.dtype(ml_dtypes.float8_e4m3)
TRN1, TRN2 = get_arch("trn1"), get_arch("trn2")


def mk(engine, free, in_dt=F32, out_dt=None, partitions=128, **attrs) -> Instruction:
    return Instruction(engine, "X", [], [], UNKNOWN, free=free, partitions=partitions, in_dtype=in_dt,
                       out_dtype=out_dt if out_dt is not None else in_dt, attrs=attrs)


def cycles(ns: float, arch, engine: str) -> float:
    return ns * arch.clock_ghz[engine]


# ------------------------------------------------------------------------------------------------ Tensor engine
@pytest.mark.parametrize(
    ("n", "dt", "attrs", "expect"),
    [
        (512, BF16, {}, 512),  # max(N, 64)
        (128, BF16, {}, 128),
        (3, BF16, {}, 64),  # MM_INIT_LATENCY floor
        (512, F32, {}, 4 * 512),  # fp32 at quarter rate
        (16, F32, {}, 4 * 64),
        (512, FP8, {"perf_mode": "double_row"}, 256),  # NC-v3 double-row fp8: 2x
        (512, FP8, {}, 512),
    ],
)
def test_matmul_initiation_interval(n, dt, attrs, expect):
    ins = mk(Engine.TENSOR, n, dt, **attrs)
    assert cycles(tensor_engine.matmul_cost(ins, TRN2), TRN2, "Tensor") == pytest.approx(expect)


def test_matmul_trn1_fp8_double_row_has_no_effect():
    ins = mk(Engine.TENSOR, 512, FP8, perf_mode="double_row")
    assert cycles(tensor_engine.matmul_cost(ins, TRN1), TRN1, "Tensor") == pytest.approx(512)


def test_fp32_transpose_is_2x_faster_on_trn2_only():
    ins = mk(Engine.TENSOR, 128, F32, transpose=True)
    assert cycles(tensor_engine.matmul_cost(ins, TRN2), TRN2, "Tensor") == pytest.approx(2 * 128)
    assert cycles(tensor_engine.matmul_cost(ins, TRN1), TRN1, "Tensor") == pytest.approx(4 * 128)


def test_fast_loadstationary_is_4x_faster_than_a_matmul_of_the_same_free_size():
    ins = mk(Engine.TENSOR, 1, BF16, M=128)
    assert cycles(tensor_engine.loadstationary_ns(ins, TRN1), TRN1, "Tensor") == pytest.approx(32)
    ins32 = mk(Engine.TENSOR, 1, F32, M=128)
    assert cycles(tensor_engine.loadstationary_ns(ins32, TRN1), TRN1, "Tensor") == pytest.approx(128)


# ------------------------------------------------------------------------------------------------ Vector engine
@pytest.mark.parametrize(
    ("attrs", "dt", "expect"),
    [
        ({"all_sbuf": True, "unit_stride": True, "op": "multiply"}, F32, 1024),  # two SBUF reads: 2N
        ({"one_psum": True, "op": "add"}, F32, 512),  # PSUM + SBUF: N
        ({"all_sbuf": True, "p_broadcast": 1, "op": "multiply"}, F32, 512),  # broadcast row: N
        ({"all_sbuf": True, "unit_stride": True, "op": "add"}, BF16, 512),  # bf16 add, unit stride: N
        ({"all_sbuf": True, "unit_stride": True, "op": "maximum"}, BF16, 1024),  # not add/mul/sub: 2N
    ],
)
def test_tensor_tensor_trn1(attrs, dt, expect):
    ins = mk(Engine.VECTOR, 512, dt, **attrs)
    assert cycles(vector_engine.tensor_tensor_cost(ins, TRN1), TRN1, "Vector") == pytest.approx(expect)


def test_tensor_tensor_trn2_performance_mode_halves_all_bf16_sbuf():
    ins = mk(Engine.VECTOR, 512, BF16, all_sbuf=True, unit_stride=True, op="maximum")
    assert cycles(vector_engine.tensor_tensor_cost(ins, TRN2), TRN2, "Vector") == pytest.approx(512)
    ins = mk(Engine.VECTOR, 512, BF16, all_sbuf=True, unit_stride=True, op="add")
    assert cycles(vector_engine.tensor_tensor_cost(ins, TRN2), TRN2, "Vector") == pytest.approx(256)
    ins = mk(Engine.VECTOR, 512, F32, all_sbuf=True, unit_stride=True, op="add")
    assert cycles(vector_engine.tensor_tensor_cost(ins, TRN2), TRN2, "Vector") == pytest.approx(1024)


@pytest.mark.parametrize(
    ("arch", "dt", "attrs", "expect"),
    [
        (TRN1, F32, {"all_sbuf": True, "unit_stride": True}, 512),  # max(MIN_II, N)
        (TRN1, BF16, {"all_sbuf": True, "unit_stride": True}, 512),  # no perf modes on NC-v2
        (TRN2, BF16, {"all_sbuf": True, "unit_stride": True}, 128),  # NC-v3: 4x
        (TRN2, BF16, {"all_sbuf": False, "unit_stride": True}, 256),  # one side in PSUM: 2x
        (TRN2, F32, {"all_sbuf": True, "unit_stride": True}, 512),  # fp32: no perf mode
    ],
)
def test_tensor_scalar_and_copy(arch, dt, attrs, expect):
    ins = mk(Engine.VECTOR, 512, dt, **attrs)
    assert cycles(vector_engine.copy_like_cost(ins, arch), arch, "Vector") == pytest.approx(expect)


def test_min_ii_floor_for_tiny_instructions():
    ins = mk(Engine.VECTOR, 1, F32, all_sbuf=True, unit_stride=True)
    assert cycles(vector_engine.copy_like_cost(ins, TRN1), TRN1, "Vector") == pytest.approx(64)
    act = mk(Engine.SCALAR, 1, F32)
    assert cycles(scalar_engine.activation_cost(act, TRN1), TRN1, "Scalar") == pytest.approx(64)


def test_activation_and_reduce_readout():
    act = mk(Engine.SCALAR, 512, F32)
    assert cycles(scalar_engine.activation_cost(act, TRN1), TRN1, "Scalar") == pytest.approx(512)
    red = mk(Engine.SCALAR, 512, F32, reduce_readout=True)
    assert cycles(scalar_engine.activation_cost(red, TRN1), TRN1, "Scalar") == pytest.approx(512 + 64)


def test_memset_reciprocal_reduce():
    z = mk(Engine.VECTOR, 512, BF16, zero=True)
    assert cycles(vector_engine.memset_cost(z, TRN1), TRN1, "Vector") == pytest.approx(256)
    r = mk(Engine.VECTOR, 512, F32)
    assert cycles(vector_engine.reciprocal_cost(r, TRN1), TRN1, "Vector") == pytest.approx(8 * 512)
    red = mk(Engine.VECTOR, 512, BF16, op="add")
    assert cycles(vector_engine.reduce_cost(red, TRN1), TRN1, "Vector") == pytest.approx(256)


def test_gpsimd_start_up_plus_n():
    ins = mk(Engine.GPSIMD, 100, F32)
    assert cycles(gpsimd_engine.gpsimd_cost(ins, TRN2), TRN2, "GpSimd") == pytest.approx(150 + 100)


# ------------------------------------------------------------------------------------------------ DMA
def test_descriptor_time_is_a_soft_maximum_of_overhead_and_transfer():
    # tiny descriptors cost the fixed ~107 ns (trn2), big ones bytes / 23 B/ns
    assert dma_descriptor_ns(TRN2, 4) == pytest.approx(107.0, rel=1e-3)
    assert dma_descriptor_ns(TRN2, 32768) == pytest.approx(32768 / 23.0, rel=1e-3)
    assert dma_descriptor_ns(TRN2, 2048) > max(107.0, 2048 / 23.0)


@pytest.mark.parametrize(
    ("bpp", "rel"), [(128, 0.05), (256, 0.10), (512, 0.21), (1024, 0.42), (2048, 0.81), (4096, 0.97), (16384, 0.99)]
)
def test_efficiency_follows_the_published_curve(bpp, rel):
    # row A36: throughput vs bytes per partition, relative to 32 KiB
    assert dma_efficiency(TRN2, bpp) / dma_efficiency(TRN2, 32768) == pytest.approx(rel, abs=0.07)
    assert dma.dma_efficiency(bpp, TRN2) == pytest.approx(dma_efficiency(TRN2, bpp))


def test_single_engine_transfer_a29():
    # [4, 4096] bf16: 4 partitions -> one engine, four 8 KiB descriptors at 23 B/ns ~ 1425 ns
    ins = mk(Engine.DMA, 4096, BF16, partitions=4, bytes=32768, desc_bytes=8192)
    assert dma.dma_cost(ins, TRN2) == pytest.approx(4 * 8192 / 23.0, rel=0.01)
    assert dma.dma_engines_used(4, TRN2) == 1
    assert dma.dma_engines_used(128, TRN2) == 16


def test_non_contiguous_rows_cost_one_descriptor_per_chunk():
    # 128 partitions x 2 KiB, but in 64 B chunks: 32 descriptors per partition, overhead-bound
    whole = mk(Engine.DMA, 512, F32, bytes=128 * 2048, desc_bytes=2048)
    chunky = mk(Engine.DMA, 512, F32, bytes=128 * 2048, desc_bytes=64)
    assert dma.dma_cost(chunky, TRN2) == pytest.approx(8 * 32 * dma_descriptor_ns(TRN2, 64))
    assert dma.dma_cost(chunky, TRN2) > 5 * dma.dma_cost(whole, TRN2)


def test_dma_transpose_efficiency():
    plain = mk(Engine.DMA, 512, BF16, bytes=128 * 1024, desc_bytes=1024)
    tr = mk(Engine.DMA, 512, BF16, bytes=128 * 1024, desc_bytes=1024, transpose=True)
    assert dma.dma_cost(tr, TRN2) == pytest.approx(dma.dma_cost(plain, TRN2) / 0.9)
