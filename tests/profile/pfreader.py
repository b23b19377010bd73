"""Read a Perfetto protobuf trace back with Perfetto's own generated protos (perfetto PyPI package).

This is deliberately independent of trnsim's encoder: it parses with google.protobuf and the
`perfetto_trace_pb2` module shipped by Perfetto, resolves interned data per sequence the way the trace
processor does, and rebuilds slices from begin/end events per track.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import pytest

pb = pytest.importorskip("perfetto.protos.perfetto.trace.perfetto_trace_pb2", reason="pip install perfetto protobuf")


@dataclass
class Slice:
    track: int
    ts: int
    dur: int
    name: str
    args: dict
    category: str = ""
    source: tuple | None = None
    flow_ids: list = field(default_factory=list)
    terminating_flow_ids: list = field(default_factory=list)


@dataclass
class Trace:
    tracks: dict  # uuid -> TrackDescriptor
    slices: list
    counters: dict  # uuid -> [(ts, value)]
    unbalanced: list

    def track_name(self, uuid: int) -> str:
        return self.tracks[uuid].name

    def group_of(self, uuid: int) -> str:
        t = self.tracks[uuid]
        while t.HasField("parent_uuid") and t.parent_uuid:
            t = self.tracks[t.parent_uuid]
        return t.name

    def by_track_name(self) -> dict:
        out = defaultdict(list)
        for s in self.slices:
            out[(self.group_of(s.track), self.track_name(s.track))].append(s)
        return out

    def counter_by_name(self, group: str, prefix: str) -> list:
        for u, pts in self.counters.items():
            if self.group_of(u) == group and self.track_name(u).startswith(prefix):
                return pts
        return []


def _value(a) -> object:
    kind = a.WhichOneof("value")
    return getattr(a, kind) if kind else None


def read(path: str) -> Trace:
    t = pb.Trace()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    names: dict = {}
    arg_names: dict = {}
    strings: dict = {}
    locs: dict = {}
    tracks: dict = {}
    open_: dict = defaultdict(list)
    slices: list = []
    counters: dict = defaultdict(list)
    unbalanced: list = []
    for p in t.packet:
        if p.HasField("track_descriptor"):
            tracks[p.track_descriptor.uuid] = p.track_descriptor
        if p.sequence_flags & pb.TracePacket.SEQ_INCREMENTAL_STATE_CLEARED:
            names.clear(), arg_names.clear(), strings.clear(), locs.clear()
        if p.HasField("interned_data"):
            i = p.interned_data
            names.update({e.iid: e.name for e in i.event_names})
            arg_names.update({e.iid: e.name for e in i.debug_annotation_names})
            strings.update({e.iid: e.str.decode() for e in i.debug_annotation_string_values})
            locs.update({e.iid: (e.file_name, e.function_name, e.line_number) for e in i.source_locations})
        if not p.HasField("track_event"):
            continue
        e = p.track_event
        if e.type == pb.TrackEvent.TYPE_SLICE_BEGIN:
            args = {}
            for a in e.debug_annotations:
                k = arg_names[a.name_iid] if a.HasField("name_iid") else a.name
                v = strings[a.string_value_iid] if a.HasField("string_value_iid") else _value(a)
                args[k] = v
            name = names[e.name_iid] if e.HasField("name_iid") else e.name
            src = locs.get(e.source_location_iid) if e.HasField("source_location_iid") else None
            s = Slice(e.track_uuid, p.timestamp, -1, name, args, ",".join(e.categories), src,
                      list(e.flow_ids), list(e.terminating_flow_ids))
            open_[e.track_uuid].append(s)
        elif e.type == pb.TrackEvent.TYPE_SLICE_END:
            stack = open_[e.track_uuid]
            if not stack:
                unbalanced.append((e.track_uuid, p.timestamp))
                continue
            s = stack.pop()
            s.dur = p.timestamp - s.ts
            slices.append(s)
        elif e.type == pb.TrackEvent.TYPE_COUNTER:
            v = e.double_counter_value if e.HasField("double_counter_value") else e.counter_value
            counters[e.track_uuid].append((p.timestamp, v))
    for u, stack in open_.items():
        unbalanced.extend((u, s.ts) for s in stack)
    return Trace(tracks, slices, dict(counters), unbalanced)
