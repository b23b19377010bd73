"""Timing of LNC=2 launches: both cores in one estimate, and the cross-core waits of sendrecv, core_barrier and
collectives (a core waits for the other core's data or arrival, not only for its own engines)."""

from __future__ import annotations

import numpy as np

import trnsim
import trnsim.frontend.current as nki
import trnsim.frontend.current.collectives as ncc
import trnsim.frontend.current.isa as nisa
import trnsim.frontend.current.language as nl
from trnsim.kernels.current.lnc2 import matmul_ksplit, rmsnorm_tp


def _stream(est):
    return est.extra["launch"].stream


def test_ksplit_barrier_orders_partials(rng):
    a = rng.standard_normal((512, 256)).astype(np.float32)
    b = rng.standard_normal((512, 512)).astype(np.float32)
    est = trnsim.estimate(matmul_ksplit[2], a, b)
    s, t = _stream(est), est.timings
    assert est.cores == 2 and {i.core for i in s} == {0, 1}
    bars = [k for k, i in enumerate(s) if i.opcode == "CORE_BARRIER"]
    assert len(bars) == 2 and {s[k].core for k in bars} == {0, 1}
    assert t[bars[0]].end == t[bars[1]].end  # the records of one barrier meet
    release = t[bars[0]].end
    part = next(a.storage.id for i in s for a in i.writes if a.storage.name == "partials")
    for k, ins in enumerate(s):
        touches = any(a.storage.id == part for a in ins.reads + ins.writes)
        if not touches or ins.opcode == "CORE_BARRIER":
            continue
        barrier = next(j for j in bars if s[j].core == ins.core)
        if k < barrier:  # a core's stores of its partials finish before its barrier starts
            assert t[k].done <= t[barrier].start + 1e-6
        else:  # every read of the partials after the barrier waits for the barrier's end
            assert t[k].start >= release - 1e-6


@nki.jit
def unbalanced_barrier(x):
    """Core 1 does extra work before the barrier, so core 0 waits there for it."""
    pid = nl.program_id(0)
    out = nl.ndarray((2, 128, 512), dtype=nl.float32, buffer=nl.shared_hbm)
    t = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=x)
    if pid == 1:
        for _ in range(8):
            nisa.activation(dst=t, op=nl.exp, data=t)
    nisa.dma_copy(dst=out[pid], src=t)
    nisa.core_barrier(out, cores=(0, 1))
    u = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=u, src=out[1 - pid])
    swapped = nl.ndarray((2, 128, 512), dtype=nl.float32, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=swapped[pid], src=u)
    return swapped


def test_barrier_wait_is_attributed_to_the_other_core(rng):
    x = (rng.standard_normal((128, 512)) * 0.01).astype(np.float32)
    est = trnsim.estimate(unbalanced_barrier[2], x)
    s, t = _stream(est), est.timings
    b0 = next(k for k, i in enumerate(s) if i.opcode == "CORE_BARRIER" and i.core == 0)
    b1 = next(k for k, i in enumerate(s) if i.opcode == "CORE_BARRIER" and i.core == 1)
    assert t[b0].reason == "barrier" and t[b0].wait_on == b1 and t[b0].wait_ns > 1000
    assert t[b0].end == t[b1].end
    idle = est.idle_reasons("GpSimd")
    assert any(key[0] == "barrier" and key[1].startswith("core 1") and ns > 1000 for key, ns in idle)
    assert "waiting at a core barrier for core 1" in est.report()
    assert est.engine_busy_ns["GpSimd"] < 2 * 1500  # the wait is idle time, not busy time


def test_sendrecv_consumer_waits_on_the_other_cores_transfer(rng):
    x = rng.standard_normal((256, 512)).astype(np.float32)
    g = rng.uniform(0.5, 1.5, 512).astype(np.float32)
    est = trnsim.estimate(rmsnorm_tp[2], x, g)
    s, t = _stream(est), est.timings
    sends = [k for k, i in enumerate(s) if i.opcode == "SENDRECV"]
    assert {s[k].attrs["src_core"] for k in sends} == {0, 1}
    cross = [k for k, i in enumerate(s) if t[k].wait_on in sends and s[t[k].wait_on].core != i.core]
    assert cross, "no instruction waited on the other core's sendrecv"
    assert "waiting on core" in est.report()


@nki.jit
def late_all_reduce(x):
    pid = nl.program_id(0)
    out = nl.ndarray((2, 128, 512), dtype=nl.float32, buffer=nl.shared_hbm)
    t = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=x)
    if pid == 1:
        for _ in range(6):
            nisa.activation(dst=t, op=nl.exp, data=t)
    r = nl.ndarray((128, 512), dtype=nl.float32, buffer=nl.sbuf)
    ncc.all_reduce([t], [r], ncc.ReplicaGroup([[0, 1]]), nl.add)
    nisa.dma_copy(dst=out[pid], src=r)
    return out


def test_collective_waits_for_the_peers_data(rng):
    x = (rng.standard_normal((128, 512)) * 0.01).astype(np.float32)
    est = trnsim.estimate(late_all_reduce[2], x)
    s, t = _stream(est), est.timings
    coll0 = next(k for k, i in enumerate(s) if i.opcode == "COLLECTIVE" and i.core == 0)
    last_exp = max(k for k, i in enumerate(s) if i.opcode == "ACTIVATE" and i.core == 1)
    assert t[coll0].wait_on == last_exp and s[last_exp].core == 1
    assert t[coll0].start >= t[last_exp].end
