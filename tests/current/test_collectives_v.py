"""nki.collectives.all_gather_v / all_to_all_v: flat element buffers driven by per-rank uint32 metadata."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim
import trnsim.frontend.current as nki
import trnsim.frontend.current.collectives as ncc
import trnsim.frontend.current.isa as nisa
import trnsim.frontend.current.language as nl


def _v_kernel(kind, dst_elems, rows=3, recv_counts_known=False, has_rdispls=False, meta_in_sbuf=False):
    """Each core: src = x[pid] (flat, in private HBM), metadata rows = meta[pid] ([rows, 2]), dst initialised to -1.
    Returns every core's dst and metadata."""

    @nki.jit
    def k(x, meta):
        pid = nl.program_id(0)
        n = x.shape[1]
        outs = nl.ndarray((2, dst_elems), dtype=x.dtype, buffer=nl.shared_hbm)
        metas = nl.ndarray((2, rows, 2), dtype=nl.uint32, buffer=nl.shared_hbm)
        src = nl.ndarray((n,), dtype=x.dtype, buffer=nl.hbm)
        t = nl.ndarray((1, n), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x[pid : pid + 1, :])
        nisa.dma_copy(dst=src.reshape((1, n)), src=t)
        dst = nl.ndarray((dst_elems,), dtype=x.dtype, buffer=nl.hbm)
        fill = nl.ndarray((1, dst_elems), dtype=x.dtype, buffer=nl.sbuf)
        nisa.memset(dst=fill, value=-1.0)
        nisa.dma_copy(dst=dst.reshape((1, dst_elems)), src=fill)
        m_sb = nl.ndarray((1, rows, 2), dtype=nl.uint32, buffer=nl.sbuf)
        nisa.dma_copy(dst=m_sb, src=meta[pid : pid + 1])
        if meta_in_sbuf:
            m = m_sb
        else:
            m = nl.ndarray((rows, 2), dtype=nl.uint32, buffer=nl.hbm)
            nisa.dma_copy(dst=m.reshape((1, rows, 2)), src=m_sb)
        fn = ncc.all_gather_v if kind == "all_gather_v" else ncc.all_to_all_v
        fn([src], [dst], ncc.ReplicaGroup([[0, 1]]), m, recv_counts_known=recv_counts_known, has_rdispls=has_rdispls)
        o = nl.ndarray((1, dst_elems), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=o, src=dst.reshape((1, dst_elems)))
        nisa.dma_copy(dst=outs[pid : pid + 1, :], src=o)
        mo = nl.ndarray((1, rows, 2), dtype=nl.uint32, buffer=nl.sbuf)
        nisa.dma_copy(dst=mo, src=m if meta_in_sbuf else m.reshape((1, rows, 2)))
        nisa.dma_copy(dst=metas[pid : pid + 1], src=mo)
        return outs, metas

    return k[2]


@pytest.mark.parametrize("meta_in_sbuf", [False, True])
def test_all_gather_v_slots_and_recv_counts(rng, meta_in_sbuf):
    x = rng.standard_normal((2, 8)).astype(np.float32)
    meta = np.zeros((2, 3, 2), np.uint32)
    meta[0, 0], meta[0, 1] = [3, 99], [2, 99]  # rank 0 broadcasts x0[2:5] (only column 0 is read)
    meta[1, 0], meta[1, 1] = [5, 0], [0, 0]  # rank 1 broadcasts x1[0:5]
    outs, metas = nki.simulate(_v_kernel("all_gather_v", 12, meta_in_sbuf=meta_in_sbuf))(x, meta)
    want = np.full(12, -1.0, np.float32)
    want[0:3], want[6:11] = x[0, 2:5], x[1, 0:5]
    np.testing.assert_array_equal(outs, np.stack([want, want]))
    np.testing.assert_array_equal(metas[:, 2], [[3, 5], [3, 5]])  # recv counts written by the collective
    np.testing.assert_array_equal(metas[:, :2], meta[:, :2])


def test_all_to_all_v_with_and_without_rdispls(rng):
    x = rng.standard_normal((2, 10)).astype(np.float32)
    meta = np.zeros((2, 4, 2), np.uint32)
    meta[0, 0], meta[0, 1] = [2, 4], [0, 6]  # rank 0: x0[0:2] to rank 0, x0[6:10] to rank 1
    meta[1, 0], meta[1, 1] = [1, 3], [9, 1]  # rank 1: x1[9:10] to rank 0, x1[1:4] to rank 1
    meta[:, 2] = 77  # recv counts: left alone with recv_counts_known=True
    outs, metas = nki.simulate(_v_kernel("all_to_all_v", 8, rows=3))(x, meta[:, :3].copy())
    want = np.full((2, 8), -1.0, np.float32)
    want[0, 0:2], want[0, 4:5] = x[0, 0:2], x[1, 9:10]
    want[1, 0:4], want[1, 4:7] = x[0, 6:10], x[1, 1:4]
    np.testing.assert_array_equal(outs, want)
    np.testing.assert_array_equal(metas[:, 2], [[2, 1], [4, 3]])

    meta[0, 3], meta[1, 3] = [6, 0], [4, 0]  # receive displacements: rank 0 puts rank 0's chunk at 6, rank 1's at 0
    outs, metas = nki.simulate(_v_kernel("all_to_all_v", 8, rows=4, recv_counts_known=True, has_rdispls=True))(x, meta)
    want = np.full((2, 8), -1.0, np.float32)
    want[0, 6:8], want[0, 0:1] = x[0, 0:2], x[1, 9:10]
    want[1, 4:8], want[1, 0:3] = x[0, 6:10], x[1, 1:4]
    np.testing.assert_array_equal(outs, want)
    np.testing.assert_array_equal(metas[:, 2], [[77, 77], [77, 77]])


@pytest.mark.parametrize(
    "meta_patch, dst_elems, rows, code, text",
    [
        ({(0, 0, 0): 9}, 12, 3, "err_collective_metadata", "reach element 9 of its src"),
        ({(1, 0, 0): 7}, 12, 3, "err_collective_metadata", "dst slots hold 6"),
        ({}, 11, 3, "err_collective_metadata", "equal slots"),
        ({}, 12, 4, "err_shape_mismatch", "(3, 2)"),
    ],
)
def test_metadata_errors(rng, meta_patch, dst_elems, rows, code, text):
    x = rng.standard_normal((2, 8)).astype(np.float32)
    meta = np.zeros((2, rows, 2), np.uint32)
    meta[:, 0] = 4
    for k, v in meta_patch.items():
        meta[k] = v
    with pytest.raises(trnsim.NkiValidationError) as e:
        nki.simulate(_v_kernel("all_gather_v", dst_elems, rows=rows))(x, meta)
    assert e.value.code == code and text in str(e.value), str(e.value)


def test_metadata_must_be_uint32(rng):
    @nki.jit
    def k(x):
        src = nl.ndarray((8,), dtype=x.dtype, buffer=nl.hbm)
        dst = nl.ndarray((16,), dtype=x.dtype, buffer=nl.hbm)
        m = nl.ndarray((3, 2), dtype=nl.int32, buffer=nl.hbm)
        ncc.all_to_all_v([src], [dst], ncc.ReplicaGroup([[0, 1]]), m)
        return x

    with pytest.raises(trnsim.NkiValidationError) as e:
        nki.simulate(k[2])(np.zeros((2, 2), np.float32))
    assert e.value.code == "err_unsupported_dtype" and ".view(nl.uint32)" in e.value.hint


def test_all_gather_v_rdispls_warns(rng):
    x = rng.standard_normal((2, 8)).astype(np.float32)
    meta = np.zeros((2, 4, 2), np.uint32)
    meta[:, 0] = 2
    meta[:, 3] = [[2, 0], [2, 0]]
    with pytest.warns(trnsim.NkiWarning, match="not yet supported"):
        outs, _ = nki.simulate(_v_kernel("all_gather_v", 4, rows=4, has_rdispls=True))(x, meta)
    np.testing.assert_array_equal(outs[:, 0:2], np.stack([x[1, 0:2]] * 2))
    np.testing.assert_array_equal(outs[:, 2:4], np.stack([x[0, 0:2]] * 2))
