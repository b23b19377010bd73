"""Files written by nki.benchmark / nki.baremetal(save_*) / nki.profile / `trnsim profile`.

* program dump (stands in for the NEFF a compiler would write): JSON, one instruction per line, streamed;
* trace: Perfetto protobuf (or Chrome JSON when the name ends in .json), see `trace.py`;
* summary: JSON (`summary.py`), plus its text form;
* report: one self-contained HTML page (`report.py`, needs matplotlib for the pictures).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from .trace import TraceOptions, TraceStats, write_trace


def _header(launch: Any) -> dict:
    return {
        "format": "trnsim-program/1",
        "kernel": launch.kernel_name,
        "target": launch.arch.name,
        "grid": list(launch.grid),
        "instruction_count": len(launch.stream),
    }


def _record(ins: Any) -> dict:
    return {
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


def write_program_dump(launch: Any, path: str) -> None:
    """The simulated program as JSON, written one instruction at a time (bounded memory)."""
    with open(path, "w", encoding="utf-8", buffering=1 << 20) as f:
        f.write(json.dumps(_header(launch))[:-1] + ', "instructions": [\n')
        for k, ins in enumerate(launch.stream):
            f.write(("" if k == 0 else ",\n") + json.dumps(_record(ins)))
        f.write("\n]}\n")


def program_dump(launch: Any) -> dict:
    """The program dump as a dict (small kernels; `write_program_dump` streams it to a file)."""
    return {**_header(launch), "instructions": [_record(ins) for ins in launch.stream]}


def _resolve(name: str, directory: str) -> str:
    return name if os.path.isabs(name) else os.path.join(directory, name)


def write_artifacts(
    launch: Any, neff: str | None, trace: str | None, directory: str, estimate: Any = None
) -> list[str]:
    """Write the program dump to `neff` and a Perfetto trace to `trace` (paths relative to `directory`)."""
    written = []
    if neff:
        path = _resolve(neff, directory)
        write_program_dump(launch, path)
        written.append(path)
    if trace:
        path = _resolve(trace, directory)
        write_trace(launch, path, estimate=estimate)
        written.append(path)
    return written


@dataclass
class LaunchProfile:
    """What profiling one launch produced: the summary, the files, and its report section."""

    summary: dict
    files: dict[str, str] = field(default_factory=dict)
    trace: TraceStats | None = None
    section: str = ""


def profile_launch(
    launch: Any,
    directory: str,
    stem: str,
    *,
    estimate: Any = None,
    trace_name: str | None = None,
    trace_format: str | None = None,
    options: TraceOptions | None = None,
    neff_name: str | None = None,
    section: bool = True,
    anchor: str = "",
) -> LaunchProfile:
    """Schedule `launch` and write its trace, summary JSON / text and (optionally) its report section."""
    from ..timing.model import estimate_launch
    from .data import ProfileData
    from .summary import format_text, summarize

    os.makedirs(directory, exist_ok=True)
    est = estimate if estimate is not None else estimate_launch(launch)
    data = ProfileData(launch, est)
    files: dict[str, str] = {}
    if neff_name:
        files["program"] = _resolve(neff_name, directory)
        write_program_dump(launch, files["program"])
    ext = ".json" if (trace_format or "").lower() in ("json", "chrome") else ".pftrace"
    tpath = _resolve(trace_name or stem + ext, directory)
    if trace_format is None and trace_name and not trace_name.lower().endswith(".json"):
        trace_format = "perfetto"
    stats = write_trace(launch, tpath, fmt=trace_format, options=options, data=data)
    files["trace"] = tpath
    summ = summarize(launch, est, data)
    summ["trace"] = {k: v for k, v in stats.__dict__.items() if k != "path"} | {"file": os.path.basename(tpath)}
    spath = _resolve(stem + ".summary.json", directory)
    with open(spath, "w", encoding="utf-8") as f:
        json.dump(summ, f, indent=1)
    files["summary"] = spath
    tpath_txt = _resolve(stem + ".summary.txt", directory)
    with open(tpath_txt, "w", encoding="utf-8") as f:
        f.write(format_text(summ) + "\n")
    files["summary text"] = tpath_txt
    sec = ""
    if section:
        from .report import launch_section

        sec = launch_section(data, summ, {"trace": tpath, "summary": spath}, anchor=anchor)
    return LaunchProfile(summ, files, stats, sec)


def write_profile(
    launch: Any,
    working_directory: str,
    neff: str = "file.neff",
    trace: str = "profile.ntff",
    overwrite: bool = False,
    report: bool = True,
) -> list[str]:
    """nki.profile: program dump (`neff` name), trace (`trace` name, Perfetto protobuf), summary JSON / text
    (`<trace stem>.summary.json|txt`) and an HTML report (`<trace stem>.html`) in `working_directory`."""
    from .report import have_matplotlib, write_report

    os.makedirs(working_directory, exist_ok=True)
    stem = os.path.splitext(os.path.basename(trace))[0]
    targets = [_resolve(neff, working_directory), _resolve(trace, working_directory),
               _resolve(stem + ".summary.json", working_directory)]
    if not overwrite:
        for p in targets:
            if os.path.exists(p):
                raise FileExistsError(f"{p} exists (pass overwrite=True to nki.profile)")
    lp = profile_launch(
        launch, working_directory, stem, trace_name=trace, neff_name=neff, section=report and have_matplotlib()
    )
    out = [lp.files["program"], lp.files["trace"], lp.files["summary"], lp.files["summary text"]]
    if lp.section:
        hpath = _resolve(stem + ".html", working_directory)
        write_report(hpath, [(launch.kernel_name, lp.section)], title=f"trnsim profile: {launch.kernel_name}")
        out.append(hpath)
    return out
