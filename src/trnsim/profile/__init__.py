"""Profiles: Perfetto traces, Neuron-style metrics and warnings, HTML reports (docs/profiling.md).

- `trace.write_trace(launch, path, estimate, options=TraceOptions(...))`: Perfetto protobuf or Chrome JSON
- `summary.summarize(launch, estimate)` / `summary.format_text(summary)`: metrics, warnings, hot lines
- `report.launch_section(...)` / `report.write_report(...)`: the HTML report
- `artifacts.profile_launch(launch, directory, stem)`: all of the above for one launch; `write_profile` is
  `nki.profile`'s back end
- `cli.profile_command` / `diff.diff_command`: `python -m trnsim profile|diff`
"""

from __future__ import annotations

from .summary import format_text, summarize
from .trace import TraceOptions, TraceStats, write_trace

__all__ = ["TraceOptions", "TraceStats", "format_text", "summarize", "write_trace"]
