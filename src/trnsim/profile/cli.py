"""`python -m trnsim profile [OPTIONS] SCRIPT [ARGS...] [--out DIR]`: profile every kernel launch of a script.

The script runs exactly as under `python -m trnsim run` (NKI imports served by trnsim). After each kernel
launch the launch is scheduled and its trace (`NN_<kernel>.pftrace`) and summary (`NN_<kernel>.summary.json`
/ `.summary.txt`) are written at once, so nothing of the launch is kept; at the end one self-contained
`report.html` covers all launches.
"""

from __future__ import annotations

import os
import re
import sys
import time
import traceback
from collections.abc import Sequence

from .trace import TraceOptions

USAGE = """usage: python -m trnsim profile [OPTIONS] SCRIPT [ARGS...] [--out DIR]

Runs SCRIPT like `python -m trnsim run` and writes, per kernel launch, a Perfetto trace and a summary
JSON / text into DIR, plus one HTML report (DIR/report.html).

options (before SCRIPT; `--out DIR` may also come last):
  -o, --out DIR             output folder (default: trnsim-profile)
  --format perfetto|json    trace encoding: Perfetto protobuf .pftrace (default) or Chrome JSON .json
  --detail auto|full|aggregate
                            one slice per instruction (full), merged runs per track (aggregate), or full up
                            to 200000 instructions and aggregate above (auto, default)
  --merge-gap-ns NS         aggregate: merge instructions of a track closer than NS (default total/20000)
  --sample N                keep every N-th instruction of each track (full detail)
  --flows / --no-flows      dependency arrows (default: on for full traces up to 100000 instructions)
  --max-counter-points N    points per counter track before binning (default 20000)
  --no-report               skip report.html
  -q, --quiet               do not print the per-launch summaries

Open a .pftrace at https://ui.perfetto.dev (Open trace file).
"""

_VALUE_OPTS = {"-o", "--out", "--format", "--detail", "--merge-gap-ns", "--sample", "--max-counter-points"}
_FLAG_OPTS = {"--flows", "--no-flows", "--no-report", "-q", "--quiet", "-h", "--help"}


def _parse(argv: Sequence[str]) -> tuple[dict, str | None, list[str]]:
    opts: dict = {}
    args = list(argv)
    # `--out DIR` / `--out=DIR` as the last arguments (the documented form)
    if len(args) >= 2 and args[-2] in ("--out", "-o"):
        opts["out"] = args[-1]
        args = args[:-2]
    elif args and args[-1].startswith("--out="):
        opts["out"] = args[-1].split("=", 1)[1]
        args = args[:-1]
    i = 0
    while i < len(args):
        a = args[i]
        name, eq, val = a.partition("=")
        if name in _VALUE_OPTS:
            if not eq:
                if i + 1 >= len(args):
                    raise SystemExit(f"trnsim profile: {a} needs a value\n\n{USAGE}")
                val = args[i + 1]
                i += 1
            opts[name.lstrip("-").replace("-", "_") if name != "-o" else "out"] = val
        elif a in _FLAG_OPTS:
            opts[a.lstrip("-").replace("-", "_")] = True
        elif a.startswith("-"):
            raise SystemExit(f"trnsim profile: unknown option {a}\n\n{USAGE}")
        else:
            return opts, a, args[i + 1 :]
        i += 1
    return opts, None, []


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60] or "kernel"


def profile_command(argv: Sequence[str]) -> int:
    try:
        opts, script, script_args = _parse(argv)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 2
    if opts.get("h") or opts.get("help"):
        print(USAGE)
        return 0
    if script is None:
        print(USAGE, file=sys.stderr)
        return 2
    from ..core.launch import add_launch_hook, remove_launch_hook
    from .artifacts import profile_launch
    from .report import have_matplotlib, write_report

    out = os.path.abspath(opts.get("out") or "trnsim-profile")
    os.makedirs(out, exist_ok=True)
    flows = True if opts.get("flows") else (False if opts.get("no_flows") else None)
    try:
        topts = TraceOptions(
            detail=opts.get("detail", "auto"),
            merge_gap_ns=float(opts["merge_gap_ns"]) if "merge_gap_ns" in opts else None,
            sample=int(opts.get("sample", 1)),
            flows=flows,
            max_counter_points=int(opts.get("max_counter_points", 20_000)),
        )
    except ValueError as e:
        print(f"trnsim profile: {e}", file=sys.stderr)
        return 2
    fmt = opts.get("format")
    if fmt not in (None, "perfetto", "pftrace", "json", "chrome"):
        print(f"trnsim profile: unknown --format {fmt!r} (perfetto or json)", file=sys.stderr)
        return 2
    report = not opts.get("no_report") and have_matplotlib()
    quiet = bool(opts.get("q") or opts.get("quiet"))
    sections: list[tuple[str, str]] = []
    written: list[str] = []
    failures: list[str] = []

    def hook(launch) -> None:
        k = len(sections) + len(failures)
        stem = f"{k:02d}_{_slug(launch.kernel_name)}"
        t0 = time.perf_counter()
        try:
            lp = profile_launch(
                launch, out, stem, trace_format=fmt, options=topts, section=report, anchor=f"s{len(sections)}"
            )
        except Exception:  # noqa: BLE001 - a profiler failure must not hide the script's own result
            failures.append(stem)
            print(f"trnsim profile: could not profile launch {stem}:", file=sys.stderr)
            traceback.print_exc()
            return
        sections.append((f"{stem} ({lp.summary['total_time_us']:.2f} us)", lp.section))
        written.extend(lp.files.values())
        if not quiet:
            from .summary import format_text

            print(format_text(lp.summary, lines=5), file=sys.stderr)
            print(
                f"  -> {os.path.relpath(lp.files['trace'])} ({lp.trace.slices} slices, {lp.trace.bytes / 1e6:.2f} MB, "
                f"{lp.trace.detail}), profiled in {time.perf_counter() - t0:.2f} s",
                file=sys.stderr,
            )

    from ..cli import run_script

    add_launch_hook(hook)  # run_script installs the NKI import aliases (frontend.shims.install)
    try:
        rc = run_script(script, script_args)
    finally:
        remove_launch_hook(hook)
    if not sections and not failures:
        print("trnsim profile: the script launched no kernel", file=sys.stderr)
    if report and sections:
        path = os.path.join(out, "report.html")
        write_report(path, sections, title=f"trnsim profile: {os.path.basename(script)}",
                     note=f"{len(sections)} kernel launch(es) of {' '.join([script, *script_args])}.")
        written.append(path)
    if sections:
        print(f"trnsim profile: wrote {len(written)} files to {out}", file=sys.stderr)
    return rc if rc else (1 if failures else 0)
