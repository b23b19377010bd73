"""A streaming writer for Perfetto's protobuf trace format (TrackEvent), with no protobuf dependency.

A Perfetto trace is `message Trace { repeated TracePacket packet = 1; }`; on the wire that is simply one
length-delimited field after another, so packets are encoded one at a time and appended to the file: memory
stays bounded however long the trace. Strings that repeat (event names, argument names, common argument
values, source locations) are interned once per sequence (`InternedData`) and referred to by id afterwards.

Only the fields used by trnsim are encoded; field numbers come from Perfetto's
`protos/perfetto/trace/{trace_packet,track_event/*,interned_data/*}.proto`.
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

# wire types
_VARINT, _I64, _LEN = 0, 1, 2

# TracePacket
_P_TIMESTAMP = 8
_P_SEQ_ID = 10
_P_TRACK_EVENT = 11
_P_INTERNED = 12
_P_SEQ_FLAGS = 13
_P_TRACK_DESCRIPTOR = 60
SEQ_INCREMENTAL_STATE_CLEARED = 1
SEQ_NEEDS_INCREMENTAL_STATE = 2

# TrackEvent
_E_DEBUG = 4
_E_TYPE = 9
_E_NAME_IID = 10
_E_TRACK_UUID = 11
_E_CATEGORIES = 22
_E_COUNTER_VALUE = 30
_E_SOURCE_LOCATION_IID = 34
_E_DOUBLE_COUNTER_VALUE = 44
_E_FLOW_IDS = 47
_E_TERMINATING_FLOW_IDS = 48
TYPE_SLICE_BEGIN, TYPE_SLICE_END, TYPE_INSTANT, TYPE_COUNTER = 1, 2, 3, 4

# DebugAnnotation
_D_NAME_IID = 1
_D_BOOL = 2
_D_UINT = 3
_D_INT = 4
_D_DOUBLE = 5
_D_STRING = 6
_D_STRING_IID = 17

# InternedData
_I_SOURCE_LOCATIONS = 4
_I_EVENT_NAMES = 2
_I_ANNOTATION_NAMES = 3
_I_ANNOTATION_STRINGS = 29

# TrackDescriptor
_T_UUID = 1
_T_NAME = 2
_T_PROCESS = 3
_T_PARENT = 5
_T_COUNTER = 8
_T_CHILD_ORDERING = 11
_T_SIBLING_RANK = 12
_T_DESCRIPTION = 14
_T_SIBLING_MERGE = 15
ORDERING_EXPLICIT = 3
MERGE_BY_TRACK_NAME = 1
UNIT_COUNT = 2
UNIT_SIZE_BYTES = 3

_SEQ_ID = 1  # one writer sequence per file
_MAX_INTERNED_STRINGS = 200_000  # argument values past this many distinct strings are written inline


_SMALL = [bytes((v,)) for v in range(0x80)]


def varint(v: int) -> bytes:
    if v < 0:
        v += 1 << 64
    if v < 0x80:
        return _SMALL[v]
    if v < 0x4000:
        return bytes(((v & 0x7F) | 0x80, v >> 7))
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


_KEYS: dict[int, bytes] = {}


def _key(field: int, wire: int) -> bytes:
    k = (field << 3) | wire
    hit = _KEYS.get(k)
    if hit is None:
        hit = _KEYS[k] = varint(k)
    return hit


def f_varint(field: int, v: int) -> bytes:
    return _key(field, _VARINT) + varint(int(v))


def f_bytes(field: int, data: bytes) -> bytes:
    return _key(field, _LEN) + varint(len(data)) + data


def f_str(field: int, s: str) -> bytes:
    return f_bytes(field, s.encode("utf-8", "replace"))


def f_double(field: int, v: float) -> bytes:
    return _key(field, _I64) + struct.pack("<d", float(v))


def f_fixed64(field: int, v: int) -> bytes:
    return _key(field, _I64) + struct.pack("<Q", int(v) & 0xFFFFFFFFFFFFFFFF)


_PACKET_KEY = _key(1, _LEN)
_SEQ = f_varint(_P_SEQ_ID, _SEQ_ID)
_NEEDS_STATE = f_varint(_P_SEQ_FLAGS, SEQ_NEEDS_INCREMENTAL_STATE)
_END_TYPE = f_varint(_E_TYPE, TYPE_SLICE_END)
_BEGIN_TYPE = f_varint(_E_TYPE, TYPE_SLICE_BEGIN)
_COUNTER_TYPE = f_varint(_E_TYPE, TYPE_COUNTER)


class PerfettoWriter:
    """Append TracePackets to a binary file; intern names and repeated strings."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.bytes_written = 0
        self.packets = 0
        self._names: dict[str, int] = {}
        self._arg_names: dict[str, int] = {}
        self._strings: dict[str, int] = {}
        self._locs: dict[tuple[str, str, int], int] = {}
        self._first = True
        self._annot_cache: dict[tuple[str, Any], bytes] = {}

    # ------------------------------------------------------------------ packets
    def _packet(self, body: bytes) -> None:
        data = _PACKET_KEY + varint(len(body)) + body
        self.f.write(data)
        self.bytes_written += len(data)
        self.packets += 1

    def _seq_prefix(self, interned: bytes) -> bytes:
        if self._first:
            self._first = False
            flags = f_varint(_P_SEQ_FLAGS, SEQ_INCREMENTAL_STATE_CLEARED | SEQ_NEEDS_INCREMENTAL_STATE)
        else:
            flags = _NEEDS_STATE
        return _SEQ + flags + (f_bytes(_P_INTERNED, interned) if interned else b"")

    # ------------------------------------------------------------------ interning
    def _intern(self, table: dict, key: Any, field: int, build, pending: list[bytes]) -> int:
        iid = table.get(key)
        if iid is None:
            iid = len(table) + 1
            table[key] = iid
            pending.append(f_bytes(field, build(iid)))
        return iid

    def _name_iid(self, name: str, pending: list[bytes]) -> int:
        return self._intern(
            self._names, name, _I_EVENT_NAMES, lambda i: f_varint(1, i) + f_str(2, name), pending
        )

    def _annotation(self, name: str, value: Any, pending: list[bytes]) -> bytes:
        """Encoded DebugAnnotation (name interned; short repeated string values interned)."""
        # cache the encoding of repeated (name, value) pairs: strings, bools and small integers
        key = (name, value) if (isinstance(value, str) or (isinstance(value, int) and -1 < value < 4096)) else None
        if key is not None:
            hit = self._annot_cache.get(key)
            if hit is not None:
                return hit
        nid = self._intern(
            self._arg_names, name, _I_ANNOTATION_NAMES, lambda i: f_varint(1, i) + f_str(2, name), pending
        )
        body = f_varint(_D_NAME_IID, nid)
        cacheable = True
        if isinstance(value, bool):
            body += f_varint(_D_BOOL, int(value))
        elif isinstance(value, int):
            body += f_varint(_D_INT, value) if value < 0 else f_varint(_D_UINT, value)
        elif isinstance(value, float):
            body += f_double(_D_DOUBLE, value)
            cacheable = False
        else:
            s = str(value)
            if s in self._strings or len(self._strings) < _MAX_INTERNED_STRINGS:
                sid = self._intern(
                    self._strings,
                    s,
                    _I_ANNOTATION_STRINGS,
                    lambda i: f_varint(1, i) + f_bytes(2, s.encode("utf-8", "replace")),
                    pending,
                )
                body += f_varint(_D_STRING_IID, sid)
            else:
                body += f_str(_D_STRING, s)
                cacheable = False
        enc = f_bytes(_E_DEBUG, body)
        if cacheable and key is not None and len(self._annot_cache) < 500_000:
            self._annot_cache[key] = enc
        return enc

    def _loc_iid(self, file: str, func: str, line: int, pending: list[bytes]) -> int:
        key = (file, func, line)
        return self._intern(
            self._locs,
            key,
            _I_SOURCE_LOCATIONS,
            lambda i: f_varint(1, i) + f_str(2, file) + f_str(3, func) + f_varint(4, line),
            pending,
        )

    # ------------------------------------------------------------------ tracks
    def track(
        self,
        uuid: int,
        name: str,
        *,
        parent: int = 0,
        pid: int | None = None,
        counter_unit: int | None = None,
        counter_unit_name: str = "",
        rank: int | None = None,
        explicit_child_order: bool = False,
        merge_by_name: bool = False,
        description: str = "",
    ) -> None:
        body = f_varint(_T_UUID, uuid)
        if parent:
            body += f_varint(_T_PARENT, parent)
        if pid is not None:
            body += f_bytes(_T_PROCESS, f_varint(1, pid) + f_str(6, name))
        body += f_str(_T_NAME, name)
        if counter_unit is not None:
            cd = f_varint(3, counter_unit)
            if counter_unit_name:
                cd += f_str(6, counter_unit_name)
            body += f_bytes(_T_COUNTER, cd)
        if explicit_child_order:
            body += f_varint(_T_CHILD_ORDERING, ORDERING_EXPLICIT)
        if rank is not None:
            body += f_varint(_T_SIBLING_RANK, rank)
        if merge_by_name:
            body += f_varint(_T_SIBLING_MERGE, MERGE_BY_TRACK_NAME)
        if description:
            body += f_str(_T_DESCRIPTION, description)
        self._packet(f_bytes(_P_TRACK_DESCRIPTOR, body) + _SEQ)

    # ------------------------------------------------------------------ events
    def begin(
        self,
        track: int,
        ts: int,
        name: str,
        args: list[tuple[str, Any]] | None = None,
        *,
        category: str = "",
        loc: tuple[str, str, int] | None = None,
        flows: list[int] | None = None,
        terminating_flows: list[int] | None = None,
    ) -> None:
        pending: list[bytes] = []
        ev = [_BEGIN_TYPE, f_varint(_E_TRACK_UUID, track), f_varint(_E_NAME_IID, self._name_iid(name, pending))]
        if category:
            ev.append(f_str(_E_CATEGORIES, category))
        if loc is not None:
            ev.append(f_varint(_E_SOURCE_LOCATION_IID, self._loc_iid(loc[0], loc[1], loc[2], pending)))
        if args:
            for k, v in args:
                ev.append(self._annotation(k, v, pending))
        if flows:
            ev.extend(f_fixed64(_E_FLOW_IDS, x) for x in flows)
        if terminating_flows:
            ev.extend(f_fixed64(_E_TERMINATING_FLOW_IDS, x) for x in terminating_flows)
        self._packet(
            f_varint(_P_TIMESTAMP, ts) + f_bytes(_P_TRACK_EVENT, b"".join(ev)) + self._seq_prefix(b"".join(pending))
        )

    def end(self, track: int, ts: int) -> None:
        self._packet(
            f_varint(_P_TIMESTAMP, ts)
            + f_bytes(_P_TRACK_EVENT, _END_TYPE + f_varint(_E_TRACK_UUID, track))
            + _SEQ
        )

    def counter(self, track: int, ts: int, value: float) -> None:
        if float(value).is_integer() and abs(value) < 2**62:
            v = f_varint(_E_COUNTER_VALUE, int(value))
        else:
            v = f_double(_E_DOUBLE_COUNTER_VALUE, value)
        self._packet(
            f_varint(_P_TIMESTAMP, ts)
            + f_bytes(_P_TRACK_EVENT, _COUNTER_TYPE + f_varint(_E_TRACK_UUID, track) + v)
            + _SEQ
        )
