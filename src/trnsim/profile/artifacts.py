"""Files written by nki.benchmark / nki.baremetal(save_*) / nki.profile: the simulated program and trace."""

from __future__ import annotations

import json
import os
from typing import Any


def program_dump(launch: Any) -> dict:
    """A JSON-able dump of the simulated program (stands in for the NEFF a compiler would write)."""
    return {
        "format": "trnsim-program/1",
        "kernel": launch.kernel_name,
        "target": launch.arch.name,
        "grid": list(launch.grid),
        "instructions": [
            {
                "idx": ins.idx,
                "core": ins.core,
                "engine": ins.engine,
                "opcode": ins.opcode,
                "partitions": ins.partitions,
                "free": ins.free,
                "flops": ins.flops,
                "reads": [a.describe() for a in ins.reads],
                "writes": [a.describe() for a in ins.writes],
                "loc": str(ins.loc),
            }
            for ins in launch.stream
        ],
    }


def write_artifacts(
    launch: Any, neff: str | None, trace: str | None, directory: str, estimate: Any = None
) -> list[str]:
    """Write the program dump to `neff` and a Perfetto trace to `trace` (paths relative to `directory`)."""
    written = []
    if neff:
        path = neff if os.path.isabs(neff) else os.path.join(directory, neff)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(program_dump(launch), f)
        written.append(path)
    if trace:
        from .trace import write_trace

        path = trace if os.path.isabs(trace) else os.path.join(directory, trace)
        write_trace(launch, path, estimate=estimate)
        written.append(path)
    return written


def write_profile(launch: Any, working_directory: str, neff: str, trace: str, overwrite: bool = False) -> list[str]:
    """nki.profile: program dump, trace and summary JSON in `working_directory`."""
    from ..timing.model import estimate_launch
    from .summary import summarize

    os.makedirs(working_directory, exist_ok=True)
    est = estimate_launch(launch)
    out = write_artifacts(launch, neff, trace, working_directory, estimate=est)
    base = os.path.splitext(trace)[0]
    path = os.path.join(working_directory, base + ".json")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists (pass overwrite=True)")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(summarize(launch, est), f, indent=1)
    out.append(path)
    return out
