"""Chrome JSON traces, checked against the trace-event format with a generic validator (not trnsim code).

The validator follows the Trace Event Format document (the format chrome://tracing and Perfetto's JSON
importer read): a JSON object with a `traceEvents` array; each event has `ph`, `pid`, `tid` (integers),
`ts` in microseconds (number); 'X' complete events need a non-negative `dur`; 'M' metadata events name
processes / threads; 'C' counters carry numeric `args`; 's' / 'f' flow events share an `id`, and 'f' with
`bp: "e"` binds to the enclosing slice.
"""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
from profkernels import matmul_tiled, small_tiles

from trnsim.profile.trace import TraceOptions, write_trace

_PHASES = {"X", "B", "E", "M", "C", "s", "t", "f", "i", "I", "b", "e", "n"}
_META = {"process_name", "thread_name", "process_sort_index", "thread_sort_index", "process_labels"}


def validate_trace_events(doc: object) -> list[str]:
    """Return schema violations (empty list: valid)."""
    errs: list[str] = []
    if isinstance(doc, dict):
        events = doc.get("traceEvents")
        if not isinstance(events, list):
            return ["top-level object without a traceEvents array"]
        unit = doc.get("displayTimeUnit", "ms")
        if unit not in ("ms", "ns"):
            errs.append(f"displayTimeUnit {unit!r} is not ms or ns")
    elif isinstance(doc, list):
        events = doc
    else:
        return ["trace is neither an object nor an array"]
    flows_s, flows_f = set(), set()
    for k, ev in enumerate(events):
        where = f"event {k}"
        if not isinstance(ev, dict):
            errs.append(f"{where}: not an object")
            continue
        ph = ev.get("ph")
        if ph not in _PHASES:
            errs.append(f"{where}: unknown ph {ph!r}")
            continue
        if not isinstance(ev.get("pid"), int):
            errs.append(f"{where}: pid must be an integer")
        if ph != "C" and not isinstance(ev.get("tid"), int):
            errs.append(f"{where}: tid must be an integer")
        if ph == "M":
            if ev.get("name") not in _META:
                errs.append(f"{where}: unknown metadata event {ev.get('name')!r}")
            if not isinstance(ev.get("args"), dict):
                errs.append(f"{where}: metadata without args")
            continue
        if not isinstance(ev.get("ts"), (int, float)) or ev["ts"] < 0:
            errs.append(f"{where}: ts must be a non-negative number")
        if not isinstance(ev.get("name"), str):
            errs.append(f"{where}: name must be a string")
        if ph == "X" and (not isinstance(ev.get("dur"), (int, float)) or ev["dur"] < 0):
            errs.append(f"{where}: X event needs dur >= 0")
        if ph == "C":
            args = ev.get("args")
            if not isinstance(args, dict) or not args or not all(isinstance(v, (int, float)) for v in args.values()):
                errs.append(f"{where}: counter args must be numbers")
        if ph in ("s", "f", "t"):
            if "id" not in ev:
                errs.append(f"{where}: flow event without id")
            (flows_s if ph == "s" else flows_f).add(ev.get("id"))
            if ph == "f" and ev.get("bp") not in (None, "e"):
                errs.append(f"{where}: bad flow binding point")
        if "args" in ev and not isinstance(ev["args"], dict):
            errs.append(f"{where}: args must be an object")
    if flows_f - flows_s:
        errs.append(f"flow ends without starts: {sorted(flows_f - flows_s)[:5]}")
    return errs


def test_json_trace_is_valid_trace_event_format(tmp_path, launch_of, bf16):
    rng = np.random.default_rng()
    rec, est = launch_of(matmul_tiled, rng.standard_normal((256, 256)).astype(bf16),
                         rng.standard_normal((256, 512)).astype(bf16))
    path = str(tmp_path / "t.json")
    stats = write_trace(rec, path, est, options=TraceOptions(flows=True))
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    assert validate_trace_events(doc) == []
    assert stats.format == "json"
    ev = doc["traceEvents"]
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "thread_name"}
    procs = {e["pid"]: e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "process_name"}
    assert procs == {1: "NeuronCore 0"}
    xs = [e for e in ev if e["ph"] == "X"]
    by_idx = {e["args"]["idx"]: e for e in xs if "idx" in e["args"]}
    assert len(by_idx) == len(rec.stream)
    for i, (ins, t) in enumerate(zip(rec.stream, est.timings)):
        e = by_idx[i]
        assert e["name"] == ins.opcode
        assert abs(e["ts"] * 1000 - t.start) <= 0.5 and abs((e["ts"] + e["dur"]) * 1000 - t.end) <= 1.0
        name = threads[(e["pid"], e["tid"])]
        assert name.split(" #")[0] == {"Tensor": "Tensor MultiplyMoving", "DMA": "DMA " + t.queue}.get(
            ins.engine, ins.engine)
    # complete events on one thread never overlap
    per = defaultdict(list)
    for e in xs:
        per[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"]))
    for spans in per.values():
        spans.sort()
        assert all(a[1] <= b[0] + 1e-9 for a, b in zip(spans, spans[1:]))
    counters = {e["name"] for e in ev if e["ph"] == "C"}
    assert any(n.startswith("SBUF bytes/partition") for n in counters)
    assert any(n.startswith("Pending DMAs") for n in counters)
    assert sum(1 for e in ev if e["ph"] == "f") == sum(1 for t in est.timings if t.wait_on >= 0)


def test_validator_rejects_bad_traces():
    assert validate_trace_events({"traceEvents": [{"ph": "X", "pid": 1, "tid": 1, "ts": 0, "name": "a"}]})
    assert validate_trace_events({"traceEvents": [{"ph": "Q", "pid": 1, "tid": 1, "ts": 0}]})
    assert validate_trace_events({"traceEvents": [{"ph": "f", "id": 3, "pid": 1, "tid": 1, "ts": 0, "name": "x"}]})
    assert validate_trace_events({"events": []})


def test_json_aggregate_mode(tmp_path, launch_of):
    rec, est = launch_of(small_tiles, np.random.default_rng().standard_normal((128, 16)).astype(np.float32))
    path = str(tmp_path / "a.json")
    write_trace(rec, path, est, options=TraceOptions(detail="aggregate", merge_gap_ns=1e9, max_span_ns=1e12))
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    assert validate_trace_events(doc) == []
    xs = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert sum(e["args"]["instructions"] for e in xs) == len(rec.stream)
