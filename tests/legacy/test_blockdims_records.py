"""Tensors with leading block dims (`nl.ndarray((B, nl.par_dim(P), F))`): instruction records over several blocks
count P partitions and B*F elements per partition, whole-tensor assignments are lowered the way the compiler does
(one memset for a constant, one copy per block for a tile), and the capacity check counts the blocks that are live
at the same time, not the declared size."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.frontend.legacy as nki
import trnsim.frontend.legacy.isa as nisa
import trnsim.frontend.legacy.language as nl
from trnsim.core.errors import NkiError
from trnsim.core.launch import last_launch
from trnsim.core.memory import SBUF, allocate
from trnsim.frontend.legacy.tensor import LegacyTensor


def _run(kernel, *args):
    return nki.simulate_kernel(nki.jit(kernel), *args)


def _records(opcode: str, line_marker: str | None = None):
    return [i for i in last_launch().stream if i.opcode == opcode]


def _tile(shape, pdim):
    st, mem, arr, wm = allocate(shape, np.dtype(np.float32), SBUF, pdim=pdim, fill=0.0)
    return LegacyTensor(st, mem, arr, wm)


# ------------------------------------------------------------------------------------------------ views
def test_partitions_and_free_size_of_block_views():
    t = _tile((4, 128, 64), pdim=1)
    assert (t.partitions, t.free_size) == (128, 4 * 64)
    assert (t[2].partitions, t[2].free_size) == (128, 64)
    assert (t[1:3].partitions, t[1:3].free_size) == (128, 2 * 64)
    assert (t[:, 0:32].partitions, t[:, 0:32].free_size) == (32, 4 * 64)
    pf = t.transposed((1, 0, 2))  # partition-first view of all blocks
    assert (pf.partitions, pf.free_size) == (128, 256)
    two = _tile((2, 3, 16, 8), pdim=2)
    assert (two.partitions, two.free_size) == (16, 2 * 3 * 8)
    assert (two[1].partitions, two[1].free_size) == (16, 3 * 8)
    assert (two[1, 2].partitions, two[1, 2].free_size) == (16, 8)
    plain = _tile((128, 4, 64), pdim=0)  # no block dims: the first axis is the partition axis
    assert (plain.partitions, plain.free_size) == (128, 256)


# ------------------------------------------------------------------------------------------------ records
def test_fill_records_partitions_and_per_partition_size():
    def kernel(a):
        out = nl.ndarray((3, 128, 64), dtype=a.dtype, buffer=nl.shared_hbm)
        z = nl.zeros((3, nl.par_dim(128), 64), dtype=nl.float32)
        acc = nl.zeros((2, nl.par_dim(64), 512), dtype=nl.float32, buffer=nl.psum)
        for i in nl.affine_range(3):
            nl.store(out[i], nl.add(z[i], acc[0, 0:1, 0:64]))
        return out

    got = _run(kernel, np.zeros(1, np.float32))
    np.testing.assert_array_equal(got, np.zeros((3, 128, 64), np.float32))
    fills = _records("MEMSET")
    assert [(i.partitions, i.free) for i in fills] == [(128, 3 * 64), (64, 2 * 512)]


def test_whole_tensor_dma_records_partitions_and_blocks_per_partition(rng):
    x = rng.standard_normal((4, 128, 64)).astype(np.float32)

    def kernel(a):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        t = nl.ndarray((4, nl.par_dim(128), 64), dtype=nl.float32)
        nisa.dma_copy(dst=t, src=a)
        for i in nl.affine_range(4):
            nl.store(out[i], nl.multiply(t[i], 2.0))
        return out

    np.testing.assert_array_equal(_run(kernel, x), 2 * x)
    dmas = _records("DMA")
    assert (dmas[0].partitions, dmas[0].free) == (128, 4 * 64)
    assert dmas[0].writes[0].p_hi - dmas[0].writes[0].p_lo == 128
    assert all((d.partitions, d.free) == (128, 64) for d in dmas[1:])
    assert all((i.partitions, i.free) == (128, 64) for i in _records("TENSOR_SCALAR"))


def test_constant_assignment_to_all_blocks_is_one_memset():
    def kernel(a):
        out = nl.ndarray((200, 128, 4), dtype=a.dtype, buffer=nl.shared_hbm)
        t = nl.ndarray((200, nl.par_dim(128), 4), dtype=nl.float32)
        t[...] = 3.0
        for i in nl.affine_range(200):
            nl.store(out[i], t[i])
        return out

    np.testing.assert_array_equal(_run(kernel, np.zeros(1, np.float32)), np.full((200, 128, 4), 3.0, np.float32))
    (fill,) = _records("MEMSET")
    assert (fill.partitions, fill.free) == (128, 800)


def test_tile_assignment_to_all_blocks_is_lowered_per_block(rng):
    x = rng.standard_normal((3, 128, 32)).astype(np.float32)
    row = rng.standard_normal((128, 32)).astype(np.float32)

    def kernel(a, r):
        out = nl.ndarray((3, 3, 128, 32), dtype=a.dtype, buffer=nl.shared_hbm)
        src = nl.ndarray((3, nl.par_dim(128), 32), dtype=nl.float32)
        for i in nl.affine_range(3):
            src[i] = nl.load(a[i])
        copied = nl.ndarray((3, nl.par_dim(128), 32), dtype=nl.float32)
        copied[...] = src  # same block layout: block i <- block i
        loaded = nl.ndarray((3, nl.par_dim(128), 32), dtype=nl.float32)
        loaded[...] = a  # from HBM: one DMA per block
        bcast = nl.ndarray((3, nl.par_dim(128), 32), dtype=nl.float32)
        bcast[...] = nl.load(r)  # one [P, F] tile into every block
        for i in nl.affine_range(3):
            nl.store(out[0, i], copied[i])
            nl.store(out[1, i], loaded[i])
            nl.store(out[2, i], bcast[i])
        return out

    got = _run(kernel, x, row)
    np.testing.assert_array_equal(got[0], x)
    np.testing.assert_array_equal(got[1], x)
    np.testing.assert_array_equal(got[2], np.broadcast_to(row, (3, 128, 32)))
    copies = _records("TENSOR_COPY")
    assert len(copies) == 6 and all((i.partitions, i.free) == (128, 32) for i in copies)
    dmas = [i for i in _records("DMA") if i.writes[0].storage.buffer.on_chip]
    assert all((i.partitions, i.free) == (128, 32) for i in dmas)


def test_assigning_a_tile_of_other_partitions_to_all_blocks_is_reported(rng):
    def kernel(a):
        out = nl.ndarray((4, 128, 64), dtype=a.dtype, buffer=nl.shared_hbm)
        t = nl.ndarray((4, nl.par_dim(128), 64), dtype=nl.float32)
        t[...] = nl.load(a)  # <- a [4, 128, 64] tile has 4 partitions
        for i in nl.affine_range(4):
            nl.store(out[i], t[i])
        return out

    with pytest.raises(NkiError) as ei:
        _run(kernel, rng.standard_normal((4, 128, 64)).astype(np.float32))
    assert ei.value.code == "err_num_partition_mismatch"
    assert ei.value.loc.file == __file__


# ------------------------------------------------------------------------------------------------ capacity
# (16, 8192) fp32 blocks: 32 KiB per partition each; 8 of them (256 KiB) exceed trn2's ~208 KiB SBUF partition.
_BLOCKS, _P, _F = 8, 16, 8192


def _stream_kernel(a):
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    buf = nl.ndarray((_BLOCKS, nl.par_dim(_P), _F), dtype=nl.float32)
    for i in nl.affine_range(_BLOCKS):
        buf[i] = nl.load(a[i])
        nl.store(out[i], buf[i])
    return out


def _all_live_kernel(a):
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    buf = nl.ndarray((_BLOCKS, nl.par_dim(_P), _F), dtype=nl.float32)
    for i in nl.affine_range(_BLOCKS):
        buf[i] = nl.load(a[i])
    for i in nl.affine_range(_BLOCKS):
        nl.store(out[i], buf[i])  # <- every block is live here
    return out


def _whole_dma_kernel(a):
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    buf = nl.ndarray((_BLOCKS, nl.par_dim(_P), _F), dtype=nl.float32)
    nisa.dma_copy(dst=buf, src=a)
    for i in nl.affine_range(_BLOCKS):
        nl.store(out[i], buf[i])
    return out


def test_capacity_counts_blocks_live_at_the_same_time(rng):
    x = rng.standard_normal((_BLOCKS, _P, _F)).astype(np.float32)
    np.testing.assert_array_equal(_run(_stream_kernel, x), x)
    (sbuf,) = [u for u in last_launch().usage if u.kind == "sbuf"]
    assert sbuf.peak <= 2 * _F * 4 < sbuf.capacity < _BLOCKS * _F * 4


@pytest.mark.parametrize("kernel", [_all_live_kernel, _whole_dma_kernel])
def test_capacity_exceeded_when_all_blocks_are_live(kernel, rng):
    x = rng.standard_normal((_BLOCKS, _P, _F)).astype(np.float32)
    with pytest.raises(NkiError) as ei:
        _run(kernel, x)
    assert ei.value.code == "err_sbuf_capacity_exceeded"
    assert ei.value.values["live_bytes_per_partition"] >= _BLOCKS * _F * 4
    assert ei.value.loc.file == __file__


def test_psum_blocks_count_against_psum_capacity():
    def kernel(a):
        out = nl.ndarray((9, 128, 512), dtype=a.dtype, buffer=nl.shared_hbm)
        acc = nl.zeros((9, nl.par_dim(128), 512), dtype=nl.float32, buffer=nl.psum)  # 9 x 2 KiB > 16 KiB
        for i in nl.affine_range(9):
            nl.store(out[i], acc[i])
        return out

    with pytest.raises(NkiError) as ei:
        _run(kernel, np.zeros(1, np.float32))
    assert ei.value.code == "err_psum_capacity_exceeded"
