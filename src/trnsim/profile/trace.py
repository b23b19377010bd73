"""Perfetto trace (Chrome JSON trace-event format) of a scheduled launch."""

from __future__ import annotations

import json
from typing import Any


def trace_events(launch: Any, estimate: Any) -> list[dict]:
    events: list[dict] = []
    tids: dict[tuple[int, str], int] = {}
    for ins, t in zip(launch.stream, estimate.timings):
        track = ins.engine if ins.engine != "DMA" else f"DMA {t.queue}"
        key = (ins.core, track)
        if key not in tids:
            tids[key] = len(tids) + 1
            events.append(
                {"ph": "M", "name": "thread_name", "pid": ins.core, "tid": tids[key], "args": {"name": track}}
            )
        events.append(
            {
                "ph": "X",
                "name": ins.opcode,
                "pid": ins.core,
                "tid": tids[key],
                "ts": t.start / 1000.0,
                "dur": max(t.end - t.start, 0.001) / 1000.0,
                "args": {"loc": str(ins.loc), "partitions": ins.partitions, "free": ins.free},
            }
        )
    return events


def write_trace(launch: Any, path: str, estimate: Any = None) -> None:
    from ..timing.model import estimate_launch

    est = estimate or estimate_launch(launch)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"traceEvents": trace_events(launch, est), "displayTimeUnit": "ns"}, f)
