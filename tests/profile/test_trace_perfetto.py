"""Perfetto protobuf traces, read back with Perfetto's own protos (not trnsim's encoder)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

pfreader = pytest.importorskip("pfreader")

from profkernels import matmul_tiled, one_matmul, small_tiles  # noqa: E402

from trnsim.profile.trace import TraceOptions, write_trace  # noqa: E402


def _ns(x: float) -> int:
    return int(math.floor(x + 0.5))


def _check_no_overlap(tr) -> None:
    by = {}
    for s in tr.slices:
        by.setdefault(s.track, []).append(s)
    for u, ss in by.items():
        ss.sort(key=lambda s: s.ts)
        for a, b in zip(ss, ss[1:]):
            assert a.ts + a.dur <= b.ts, f"overlapping slices on track {tr.track_name(u)}: {a.name} / {b.name}"


def test_every_instruction_is_a_slice_on_its_engine_track(tmp_path, launch_of, bf16):
    rng = np.random.default_rng()
    a = rng.standard_normal((256, 256)).astype(bf16)
    b = rng.standard_normal((256, 1024)).astype(bf16)
    rec, est = launch_of(matmul_tiled, a, b)
    path = str(tmp_path / "m.pftrace")
    stats = write_trace(rec, path, est)
    tr = pfreader.read(path)
    assert not tr.unbalanced
    _check_no_overlap(tr)
    names = {t.name for t in tr.tracks.values()}
    assert {"NeuronCore 0", "Tensor LoadStationary", "Tensor MultiplyMoving", "Vector"} <= names
    assert {"DMA " + t.queue for ins, t in zip(rec.stream, est.timings) if ins.engine == "DMA"} <= names
    # the group track is a process, every other track hangs below it
    group = [t for t in tr.tracks.values() if t.name == "NeuronCore 0"][0]
    assert group.HasField("process")
    # one slice per instruction (plus LoadStationary slices), at the scheduled times, with its opcode
    inst = {s.args["idx"]: s for s in tr.slices if "idx" in s.args}
    assert len(inst) == len(rec.stream) == stats.instructions
    for i, (ins, t) in enumerate(zip(rec.stream, est.timings)):
        s = inst[i]
        assert s.name == ins.opcode
        assert s.ts == _ns(t.start) and s.ts + s.dur == _ns(t.end)
        track = tr.track_name(s.track)
        if ins.engine == "DMA":
            assert track == "DMA " + t.queue
        elif ins.engine == "Tensor":
            assert track == "Tensor MultiplyMoving"
        else:
            assert track == ins.engine
        assert s.args["nki_source_location"] == f"{ins.loc.file}:{ins.loc.line}"
        assert s.source == (ins.loc.file, ins.loc.func, ins.loc.line)
    # a matmul's arguments: shapes, dtypes, bytes and flops computed by hand, what it waited on
    mm = [s for s in inst.values() if s.name == "MATMUL"]
    assert len(mm) == 2 * 2 * 2
    for s in mm:
        assert s.args["flops"] == 2 * 128 * 128 * 512
        assert s.args["partitions"] == 128 and s.args["free"] == 512
        assert s.args["in_dtype"] == "bfloat16" and s.args["out_dtype"] == "float32"
        # reads: stationary [128, 128] + moving [128, 512] bf16; write: [128, 512] fp32 PSUM
        assert s.args["bytes"] == 128 * 128 * 2 + 128 * 512 * 2 + 128 * 512 * 4
        assert s.args["read0"].startswith("sbuf:lhsT_tile[128x128] bfloat16")
        assert s.args["write0"].startswith("psum:res_psum[128x512] float32") and "accumulate" in s.args["write0"]
        assert "waited_on" in s.args and s.args["waited_on"].startswith("#")
        assert s.args["wait_ns"] >= 0
    ls = [s for s in tr.slices if s.name == "LoadStationary"]
    assert ls and all(tr.track_name(s.track) == "Tensor LoadStationary" for s in ls)
    # each LoadStationary lies inside the window the timing model gives its instruction
    for s in ls:
        m = inst[s.args["for_idx"]]
        assert m.ts <= s.ts and s.ts + s.dur <= m.ts + m.dur


def test_flows_join_each_instruction_to_what_released_it(tmp_path, launch_of):
    rng = np.random.default_rng()
    rec, est = launch_of(one_matmul, rng.standard_normal((128, 128)).astype(np.float32),
                         rng.standard_normal((128, 512)).astype(np.float32))
    path = str(tmp_path / "f.pftrace")
    write_trace(rec, path, est, options=TraceOptions(flows=True))
    tr = pfreader.read(path)
    by_idx = {s.args["idx"]: s for s in tr.slices if "idx" in s.args}
    origin = {}
    for s in by_idx.values():
        for fid in s.flow_ids:
            origin[fid] = s.args["idx"]
    n_flows = 0
    for i, t in enumerate(est.timings):
        s = by_idx[i]
        if t.wait_on >= 0:
            assert len(s.terminating_flow_ids) == 1
            assert origin[s.terminating_flow_ids[0]] == t.wait_on
            n_flows += 1
        else:
            assert not s.terminating_flow_ids
    assert n_flows >= 2  # at least: matmul <- load, copy <- matmul


def test_counter_tracks(tmp_path, launch_of):
    rng = np.random.default_rng()
    rec, est = launch_of(one_matmul, rng.standard_normal((128, 128)).astype(np.float32),
                         rng.standard_normal((128, 512)).astype(np.float32))
    path = str(tmp_path / "c.pftrace")
    write_trace(rec, path, est)
    tr = pfreader.read(path)
    sbuf = tr.counter_by_name("NeuronCore 0", "SBUF bytes/partition")
    psum = tr.counter_by_name("NeuronCore 0", "PSUM bytes/partition")
    pend = tr.counter_by_name("NeuronCore 0", "Pending DMAs")
    thr = tr.counter_by_name("NeuronCore 0", "DMA throughput")
    assert sbuf and psum and pend and thr
    # tiles: a [128,128] fp32 (512 B/partition), b [128,512] fp32 (2048), sb [128,512] fp32 (2048);
    # PSUM: ps [128,512] fp32 (2048). Everything is freed by the end.
    vals = [v for _, v in sbuf]
    assert max(vals) <= 512 + 2048 + 2048 and max(vals) >= 2048 and vals[-1] == 0
    assert max(v for _, v in psum) == 2048 and psum[-1][1] == 0
    assert max(v for _, v in pend) >= 1 and pend[-1][1] == 0
    # throughput integrates to the bytes moved: sum(rate * dt) == DMA bytes (to rounding of ns timestamps)
    total = sum(v * (t1 - t0) for (t0, v), (t1, _) in zip(thr, thr[1:]))
    moved = 128 * 128 * 4 + 128 * 512 * 4 + 128 * 512 * 4
    assert total == pytest.approx(moved, rel=0.01)
    units = {tr.track_name(u): tr.tracks[u].counter.unit for u in tr.counters}
    assert units[[k for k in units if k.startswith("SBUF")][0]] == pfreader.pb.CounterDescriptor.UNIT_SIZE_BYTES


def test_aggregate_and_sample_keep_traces_small(tmp_path, launch_of):
    from profkernels import long_loop

    x = np.ones((128, 512), np.float32)
    rec, est = launch_of(long_loop, x, 300, numerics=False)
    n = len(rec.stream)
    full = str(tmp_path / "full.pftrace")
    agg = str(tmp_path / "agg.pftrace")
    smp = str(tmp_path / "smp.pftrace")
    s_full = write_trace(rec, full, est, options=TraceOptions(detail="full", counters=False))
    s_agg = write_trace(rec, agg, est, options=TraceOptions(detail="aggregate", merge_gap_ns=10_000, max_span_ns=1e9, counters=False))
    s_smp = write_trace(rec, smp, est, options=TraceOptions(detail="full", sample=10, max_counter_points=50))
    assert s_agg.bytes < s_full.bytes / 20 and s_smp.bytes < s_full.bytes / 4
    assert s_smp.counter_points <= 4 * (50 + 1)
    tr = pfreader.read(agg)
    assert not tr.unbalanced
    _check_no_overlap(tr)
    # aggregated slices account for every instruction exactly once
    assert sum(s.args["instructions"] for s in tr.slices) == n
    assert not tr.counters
    tr = pfreader.read(smp)
    per_track = {}
    for s in tr.slices:
        per_track[tr.track_name(s.track)] = per_track.get(tr.track_name(s.track), 0) + 1
    assert per_track["Scalar"] == 30  # 300 exp instructions, every 10th kept
    assert os.path.getsize(full) == s_full.bytes


def test_overlapping_transfers_of_one_queue_go_to_same_named_lanes(tmp_path, launch_of):
    rec, est = launch_of(small_tiles, np.random.default_rng().standard_normal((128, 16)).astype(np.float32))
    dma = [i for i, ins in enumerate(rec.stream) if ins.engine == "DMA"]
    # make every transfer of the kernel overlap the first one, on one queue
    t0 = est.timings[dma[0]]
    for k, i in enumerate(dma):
        t = est.timings[i]
        t.queue = "qTest"
        t.start, t.end = t0.start + 10.0 * k, t0.end + 10.0 * k
    path = str(tmp_path / "s.pftrace")
    write_trace(rec, path, est)
    tr = pfreader.read(path)
    _check_no_overlap(tr)
    lanes = [t for t in tr.tracks.values() if t.name == "DMA qTest"]
    assert len(lanes) == len(dma)
    assert all(t.sibling_merge_behavior == pfreader.pb.TrackDescriptor.SIBLING_MERGE_BEHAVIOR_BY_TRACK_NAME
               for t in lanes)
