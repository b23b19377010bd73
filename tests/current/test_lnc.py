"""LNC=2 launches: two cores in one instruction stream, sendrecv / core_barrier / collectives, deadlock and
cross-core race detection on shared HBM."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import trnsim
import trnsim.frontend.current as nki
import trnsim.frontend.current.collectives as ncc
import trnsim.frontend.current.isa as nisa
import trnsim.frontend.current.language as nl
from trnsim.timing.model import estimate_launch


@nki.jit
def exchange(a):
    """Each core loads its half of the rows and sends it to the other core, which stores it."""
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    pid = nl.program_id(0)
    rows = a.shape[0] // nl.num_programs()
    mine = nl.ndarray((rows, a.shape[1]), dtype=a.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=mine, src=a[pid * rows : (pid + 1) * rows, :])
    theirs = nl.ndarray((rows, a.shape[1]), dtype=a.dtype, buffer=nl.sbuf)
    nisa.sendrecv(src=mine, dst=theirs, send_to_rank=1 - pid, recv_from_rank=1 - pid, pipe_id=0)
    nisa.dma_copy(dst=out[pid * rows : (pid + 1) * rows, :], src=theirs)
    return out


def test_two_cores_exchange_and_one_stream(rng):
    a = rng.standard_normal((256, 32)).astype(np.float32)
    out, rec = exchange[2].launch(a)
    np.testing.assert_array_equal(out[:128], a[128:])
    np.testing.assert_array_equal(out[128:], a[:128])
    assert rec.grid == (2,)
    cores = [i.core for i in rec.stream]
    assert set(cores) == {0, 1}
    sends = [i for i in rec.stream if i.opcode == "SENDRECV"]
    assert sorted((i.core, i.attrs["dst_core"]) for i in sends) == [(0, 1), (1, 0)]
    est = estimate_launch(rec)
    assert est.extra["cores"] == 2 and est.total_ns > 0
    # per-core SBUF storages
    sb = {a.storage.core for i in rec.stream for a in i.writes if a.storage.buffer.kind == "sbuf"}
    assert sb == {0, 1}


def test_program_id_and_num_programs():
    seen = []

    @nki.jit
    def k(x):
        seen.append((nl.program_id(0), nl.num_programs(), nl.program_ndim()))
        return x

    x = np.zeros((2, 2), np.float32)
    nki.simulate(k)(x)
    nki.simulate(k[1])(x)
    nki.simulate(k[2])(x)
    assert seen == [(0, 1, 0), (0, 1, 1), (0, 2, 1), (1, 2, 1)]


def test_deadlock_names_both_cores(lineof):
    @nki.jit
    def k(a):
        out = nl.ndarray((128, 8), dtype=a.dtype, buffer=nl.shared_hbm)
        t = nl.ndarray((128, 8), dtype=a.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=a)
        if nl.program_id(0) == 0:
            nisa.sendrecv(src=t, dst=t, send_to_rank=1, recv_from_rank=1, pipe_id=0)  # L:core0
        else:
            nisa.core_barrier(out, cores=(0, 1))  # L:core1
        nisa.dma_copy(dst=out, src=t)
        return out

    with pytest.raises(trnsim.NkiDeadlockError) as e:
        k[2](np.zeros((128, 8), np.float32))
    err = e.value
    assert err.code == "err_deadlock"
    assert f"{__file__}:{lineof('core0')}" in err.values["core0"]
    assert f"{__file__}:{lineof('core1')}" in err.values["core1"]
    assert err.loc.line == lineof("core0")


def test_deadlock_when_peer_returns_and_on_mismatched_pipes(lineof):
    @nki.jit
    def k(a):
        t = nl.ndarray((128, 8), dtype=a.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=a)
        if nl.program_id(0) == 1:
            nisa.sendrecv(src=t, dst=t, send_to_rank=0, recv_from_rank=0, pipe_id=1)  # L:lonely
        return a

    with pytest.raises(trnsim.NkiDeadlockError) as e:
        k[2](np.zeros((128, 8), np.float32))
    assert "core 0 has returned from the kernel" in str(e.value)
    assert e.value.loc.line == lineof("lonely")

    @nki.jit
    def k2(a):
        t = nl.ndarray((128, 8), dtype=a.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=a)
        pid = nl.program_id(0)
        nisa.sendrecv(src=t, dst=t, send_to_rank=1 - pid, recv_from_rank=1 - pid, pipe_id=pid)  # L:pipes
        return a

    with pytest.raises(trnsim.NkiDeadlockError) as e:
        k2[2](np.zeros((128, 8), np.float32))
    assert "pipe 0" in str(e.value) and "pipe 1" in str(e.value)


def test_sendrecv_and_barrier_need_two_cores(lineof):
    @nki.jit
    def k(a):
        t = nl.ndarray((128, 8), dtype=a.dtype, buffer=nl.sbuf)
        nisa.sendrecv(src=t, dst=t, send_to_rank=1, recv_from_rank=1, pipe_id=0)  # L:one
        return a

    with pytest.raises(trnsim.NkiValidationError) as e:
        k(np.zeros((128, 8), np.float32))
    assert e.value.code == "err_invalid_rank" and e.value.loc.line == lineof("one")
    assert "kernel[2]" in e.value.hint

    with pytest.raises(trnsim.NkiValidationError) as e:
        exchange[2].launch(np.zeros((256, 8), np.float32), target="trn1")
    assert e.value.code == "err_invalid_launch_grid"


def test_race_read_before_barrier_and_fixed_with_barrier(rng, lineof):
    a = rng.standard_normal((256, 16)).astype(np.float32)

    def make(with_barrier):
        @nki.jit
        def k(x):
            out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
            res = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
            pid = nl.program_id(0)
            t = nl.ndarray((128, 16), dtype=x.dtype, buffer=nl.sbuf)
            nisa.dma_copy(dst=t, src=x[pid * 128 : (pid + 1) * 128, :])
            nisa.dma_copy(dst=out[pid * 128 : (pid + 1) * 128, :], src=t)  # L:write
            if with_barrier:
                nisa.core_barrier(out, cores=(0, 1))
            u = nl.ndarray((128, 16), dtype=x.dtype, buffer=nl.sbuf)
            nisa.dma_copy(dst=u, src=out[(1 - pid) * 128 : (2 - pid) * 128, :])  # L:read
            nisa.dma_copy(dst=res[pid * 128 : (pid + 1) * 128, :], src=u)
            return res

        return k

    got = make(True)[2](a)
    np.testing.assert_array_equal(got, np.concatenate([a[128:], a[:128]]))
    with pytest.raises(trnsim.NkiRaceError) as e:
        make(False)[2](a)
    err = e.value
    assert err.code == "err_cross_core_race"
    lines = {lineof("write"), lineof("read")}
    assert err.loc.line in lines
    assert {int(v.rsplit(":", 1)[1]) for k, v in err.values.items() if k.startswith("core")} == lines


def test_race_write_write_different_values_and_identical_values(rng, lineof):
    a = rng.standard_normal((256, 16)).astype(np.float32)

    @nki.jit
    def clash(x):
        out = nl.ndarray((128, 16), dtype=x.dtype, buffer=nl.shared_hbm)
        pid = nl.program_id(0)
        t = nl.ndarray((128, 16), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x[pid * 128 : (pid + 1) * 128, :])
        nisa.dma_copy(dst=out, src=t)  # L:clash
        return out

    with pytest.raises(trnsim.NkiRaceError) as e:
        clash[2](a)
    assert e.value.loc.line == lineof("clash") and "different values" in str(e.value)

    @nki.jit
    def same(x):
        out = nl.ndarray((128, 16), dtype=x.dtype, buffer=nl.shared_hbm)
        t = nl.ndarray((128, 16), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x[0:128, :])
        nisa.dma_copy(dst=out, src=t)
        return out

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        got = same[2](a)
    np.testing.assert_array_equal(got, a[:128])
    assert any("warn_cross_core_duplicate_write" in str(x.message) for x in w)


def test_collectives_between_the_two_cores(rng):
    a = rng.standard_normal((2, 64, 16)).astype(np.float32)

    @nki.jit
    def k(x):
        pid = nl.program_id(0)
        rg = ncc.ReplicaGroup([[0, 1]])
        t = nl.ndarray((64, 16), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x[pid])
        summed = nl.ndarray((64, 16), dtype=x.dtype, buffer=nl.sbuf)
        ncc.all_reduce(srcs=[t], dsts=[summed], replica_group=rg, op=nl.add)
        gathered = nl.ndarray((128, 16), dtype=x.dtype, buffer=nl.sbuf)
        ncc.all_gather(srcs=[t], dsts=[gathered], replica_group=rg, collective_dim=0)
        scattered = nl.ndarray((32, 16), dtype=x.dtype, buffer=nl.sbuf)
        ncc.reduce_scatter(srcs=[t], dsts=[scattered], replica_group=rg, collective_dim=0, op=nl.maximum)
        permuted = nl.ndarray((64, 16), dtype=x.dtype, buffer=nl.sbuf)
        ncc.collective_permute(srcs=[t], dsts=[permuted], source_target_pairs=[(0, 1), (1, 0)])
        rid = ncc.rank_id()
        outs = []
        for tile_ in (summed, gathered, scattered, permuted):
            o = nl.ndarray((2,) + tuple(tile_.shape), dtype=x.dtype, buffer=nl.shared_hbm)
            nisa.dma_copy(dst=o[pid], src=tile_)
            outs.append(o)
        r = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
        nisa.register_store(r, rid)
        ro = nl.ndarray((2, 1), dtype=nl.int32, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=ro[pid : pid + 1, :], src=r)
        return tuple(outs) + (ro,)

    summed, gathered, scattered, permuted, ranks = k[2](a)
    a64 = a.astype(np.float64)
    for c in range(2):
        np.testing.assert_allclose(summed[c], a64[0] + a64[1], rtol=1e-6)
        np.testing.assert_array_equal(gathered[c], np.concatenate([a[0], a[1]]))
        np.testing.assert_array_equal(scattered[c], np.maximum(a[0], a[1])[32 * c : 32 * (c + 1)])
        np.testing.assert_array_equal(permuted[c], a[1 - c])
    np.testing.assert_array_equal(ranks[:, 0], [0, 1])


def test_collective_with_ranks_outside_the_launch_is_rejected(lineof):
    @nki.jit
    def k(x):
        t = nl.ndarray((8, 8), dtype=x.dtype, buffer=nl.sbuf)
        ncc.all_reduce(srcs=[t], dsts=[t], replica_group=ncc.ReplicaGroup([[0, 1, 2, 3]]), op=nl.add)  # L:rg
        return x

    with pytest.raises(trnsim.NkiValidationError) as e:
        k[2](np.zeros((8, 8), np.float32))
    assert e.value.code == "err_invalid_rank" and e.value.loc.line == lineof("rg")


def test_lnc2_kernels_split_work_and_match_numpy(rng):
    from trnsim.kernels.current import lnc2

    x = rng.standard_normal((160, 256)).astype(np.float32)
    g = rng.uniform(0.5, 1.5, 256).astype(np.float32)
    for kern in (lnc2.rmsnorm_tp[2], lnc2.rmsnorm_tp):
        out, rec = kern.launch(x, g)
        np.testing.assert_allclose(out, lnc2.rmsnorm_reference(x, g), rtol=1e-5, atol=1e-5)
    assert {i.core for i in rec.stream} == {0}
    out, rec = lnc2.rmsnorm_tp[2].launch(x, g)
    assert any(i.opcode == "SENDRECV" for i in rec.stream) and {i.core for i in rec.stream} == {0, 1}

    a = rng.standard_normal((512, 256)).astype(np.float32)
    b = rng.standard_normal((512, 512)).astype(np.float32)
    out, rec = lnc2.matmul_ksplit[2].launch(a, b)
    np.testing.assert_allclose(out, lnc2.matmul_reference(a, b), rtol=1e-4, atol=1e-3)
    assert any(i.opcode == "CORE_BARRIER" for i in rec.stream)
    flops = {c: sum(i.flops for i in rec.stream if i.core == c and i.engine == "Tensor") for c in (0, 1)}
    assert flops[0] == flops[1] > 0  # the contraction is split evenly


def test_ring_collectives_and_all_to_all(rng):
    a = rng.standard_normal((2, 64, 8)).astype(np.float32)
    b = rng.standard_normal((2, 64, 8)).astype(np.float32)

    @nki.jit
    def k(x, y):
        pid = nl.program_id(0)
        rg = ncc.ReplicaGroup([[0, 1]])
        outs = [nl.ndarray((2, 64, 8), dtype=x.dtype, buffer=nl.shared_hbm) for _ in range(3)]
        mine = nl.ndarray((64, 8), dtype=x.dtype, buffer=nl.private_hbm)
        other = nl.ndarray((64, 8), dtype=x.dtype, buffer=nl.private_hbm)
        nisa.dma_copy(dst=mine, src=x[pid])
        nisa.dma_copy(dst=other, src=y[pid])
        ring = nl.ndarray((64, 8), dtype=x.dtype, buffer=nl.private_hbm)
        ncc.collective_permute_implicit(srcs_by_channel=[mine], dsts_by_channel=[ring], replica_group=rg)
        red = nl.ndarray((64, 8), dtype=x.dtype, buffer=nl.private_hbm)
        ncc.collective_permute_implicit_reduce([mine], [other], [red], rg, nl.add)
        a2a = nl.ndarray((64, 8), dtype=x.dtype, buffer=nl.private_hbm)
        ncc.all_to_all(srcs=[mine], dsts=[a2a], replica_group=rg, collective_dim=0)
        for o, src in zip(outs, (ring, red, a2a)):
            t = nl.ndarray((64, 8), dtype=x.dtype, buffer=nl.sbuf)
            nisa.dma_copy(dst=t, src=src)
            nisa.dma_copy(dst=o[pid], src=t)
        step1 = ncc.collective_permute_implicit_current_processing_rank_id(1, rg)
        r = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
        nisa.register_store(r, step1)
        ro = nl.ndarray((2, 1), dtype=nl.int32, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=ro[pid : pid + 1, :], src=r)
        return tuple(outs) + (ro,)

    ring, red, a2a, proc = k[2](a, b)
    for c in range(2):
        np.testing.assert_array_equal(ring[c], a[1 - c])
        np.testing.assert_allclose(red[c], a[1 - c].astype(np.float64) + b[c], rtol=1e-6)
        np.testing.assert_array_equal(a2a[c], np.concatenate([a[0][32 * c : 32 * c + 32], a[1][32 * c : 32 * c + 32]]))
    np.testing.assert_array_equal(proc[:, 0], [1, 0])


def test_single_core_collective_and_barrier_rules(rng):
    a = rng.standard_normal((32, 8)).astype(np.float32)

    @nki.jit
    def k(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        t = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x)
        s = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
        ncc.all_reduce([t], [s], ncc.ReplicaGroup([[0]]), nl.add)
        nisa.dma_copy(dst=out, src=s)
        return out

    np.testing.assert_array_equal(k(a), a)

    @nki.jit
    def b(x):
        nisa.core_barrier(x, cores=(0, 1))
        return x

    with pytest.raises(trnsim.NkiValidationError) as e:
        b(a)
    assert e.value.code == "err_invalid_rank"
    with pytest.raises(trnsim.NkiUnsupportedError) as e:
        b.launch(a, target="trn1")
    assert e.value.code == "err_unsupported_on_target"
