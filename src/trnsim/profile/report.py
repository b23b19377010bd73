"""One self-contained HTML report: timeline picture, engine utilisation, roofline, warnings, hottest lines.

Pictures are drawn with matplotlib (the optional 'report' extra) and embedded as base64 PNGs, so the file
can be mailed, attached to a CI run or opened from disk with no server. Each launch contributes one section
(`launch_section`), built right after the launch so the instruction stream need not be kept; `write_report`
puts the sections into one page.
"""

from __future__ import annotations

import base64
import html
import io
import os
from typing import Any

import numpy as np

from .data import ENGINE_TRACKS, ProfileData, downsample
from .summary import ENGINE_KEYS

_COLORS = {
    "Tensor LoadStationary": "#9ecae1",
    "Tensor MultiplyMoving": "#2171b5",
    "Vector": "#31a354",
    "Scalar": "#e6550d",
    "GpSimd": "#756bb1",
    "Sync": "#636363",
    "DMA": "#d6616b",
}
EXACT_BAR_LIMIT = 30_000  # more instructions than this: per-bin busy fraction instead of one bar each


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _tight(fig) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig.tight_layout()


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _color(track: str) -> str:
    return _COLORS.get(track, _COLORS["DMA"] if track.startswith("DMA") else "#888888")


def timeline_figure(data: ProfileData):
    """Engines and DMA queues over time (one row each, per core) above SBUF/PSUM use and DMA throughput."""
    plt = _plt()
    rows: list[tuple[str, str, np.ndarray, np.ndarray]] = []
    for c in data.cores:
        got = {name: (s, e) for name, s, e in data.engine_intervals(c)}
        order = [t for t in ENGINE_TRACKS if t in got] + sorted(t for t in got if t not in ENGINE_TRACKS)
        for t in order:
            label = t if len(data.cores) == 1 else f"core {c} {t}"
            rows.append((label, t, got[t][0], got[t][1]))
    total = max(data.total_ns, 1.0)
    scale, unit = (1e3, "us") if total >= 5e3 else (1.0, "ns")
    height = 1.2 + 0.32 * max(len(rows), 1)
    fig, (ax, ax2) = plt.subplots(
        2, 1, figsize=(12, height + 1.8), sharex=True, gridspec_kw={"height_ratios": [height, 1.8]}
    )
    exact = data.n <= EXACT_BAR_LIMIT
    nbins = 1200
    for k, (_label, track, s, e) in enumerate(rows):
        y = len(rows) - 1 - k
        if exact:
            ax.broken_barh(
                list(zip(s / scale, np.maximum(e - s, total * 1e-5) / scale)),
                (y - 0.4, 0.8),
                facecolors=_color(track),
                edgecolor="none",
            )
        else:
            edges = np.linspace(0, total, nbins + 1)
            busy = np.zeros(nbins)
            b = np.clip((s / total * nbins).astype(np.int64), 0, nbins - 1)
            np.add.at(busy, b, e - s)
            frac = np.clip(busy / (total / nbins), 0, 1)
            ax.bar(edges[:-1] / scale, 0.8 * frac, width=total / nbins / scale, bottom=y - 0.4, align="edge",
                   color=_color(track), linewidth=0)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r[0] for r in reversed(rows)], fontsize=8)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_title(
        f"{data.launch.kernel_name}: {data.total_ns / 1e3:.2f} us on {data.arch.name}"
        + ("" if exact else f"  (busy fraction per {total / nbins / scale:.2g} {unit} bin)"),
        fontsize=10,
    )
    ax.grid(axis="x", alpha=0.3)
    mem = data.memory() if data.n else {}
    for (kind, c), (t, v, cap) in mem.items():
        t, v = downsample(t, v, 3000, "max")
        if len(t):
            tt = np.concatenate(([0.0], t, [total]))
            vv = np.concatenate(([0.0], v, [v[-1]]))
            lbl = f"{kind.upper()} % of capacity" + ("" if len(data.cores) == 1 else f" (core {c})")
            ax2.step(tt / scale, 100.0 * vv / max(cap, 1), where="post", label=lbl, linewidth=1.2)
    ax2.set_ylabel("% capacity", fontsize=8)
    ax2.set_zorder(2)
    ax2.patch.set_visible(False)
    ax3 = ax2.twinx()
    ax3.set_zorder(1)
    for c in data.cores:
        _, (tt, tv) = data.dma(c)
        tt, tv = downsample(tt, tv, 3000, "mean")
        if len(tt):
            ax3.fill_between(np.concatenate(([0.0], tt)) / scale, np.concatenate(([0.0], tv)), step="post",
                             color="#d6616b", alpha=0.25, linewidth=0, label="DMA GB/s" if c == data.cores[0] else None)
    ax3.set_ylabel("DMA GB/s", fontsize=8)
    h1, l1 = ax2.get_legend_handles_labels()
    h2, l2 = ax3.get_legend_handles_labels()
    if h1 or h2:
        ax2.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper right")
    ax2.set_xlabel(f"time ({unit})")
    ax2.set_xlim(0, total / scale)
    _tight(fig)
    return fig


def utilisation_figure(summary: dict):
    plt = _plt()
    names, active, waits = [], [], []
    total = max(summary["total_time_ns"], 1e-9)
    for eng, key in ENGINE_KEYS.items():
        if summary.get(f"{key}_instruction_count"):
            names.append(eng)
            active.append(summary[f"{key}_active_time_percent"])
            waits.append(100.0 * summary["engines"].get(eng, {}).get("wait_on_dma_ns", 0.0) / total)
    names.append("DMA")
    active.append(summary["dma_active_time_percent"])
    waits.append(0.0)
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(names)))
    y = np.arange(len(names))[::-1]
    ax.barh(y, active, color=[_color("Tensor MultiplyMoving" if n == "Tensor" else n) for n in names], label="active")
    ax.barh(y, waits, left=active, color="#fdae6b", alpha=0.8, label="idle waiting on DMA")
    for yy, a in zip(y, active):
        ax.text(min(a, 100) + 1, yy, f"{a:.1f}%", va="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels(names)
    ax.set_xlim(0, 110)
    ax.set_xlabel("% of kernel time")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 1.0 + 0.9 / max(len(names), 3)), ncol=2, frameon=False)
    ax.set_title("Engine utilisation", fontsize=10, pad=22)
    _tight(fig)
    return fig


def roofline_figure(summary: dict, arch: Any, cores: int):
    plt = _plt()
    peak = arch.peak_bf16_flops_per_ns * cores / 1e3  # TFLOP/s
    bw = arch.hbm_bytes_per_ns * cores / 1e3  # TB/s
    ridge = peak / bw
    ai = summary["mm_arithmetic_intensity"]
    achieved = summary["model_flops"] / max(summary["total_time_ns"], 1e-9) / 1e3
    xs = np.logspace(-1, 4, 200)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.loglog(xs, np.minimum(peak, xs * bw), color="#333", label=f"roof: {peak:.0f} TFLOP/s bf16, {bw:.2f} TB/s HBM")
    ax.axvline(ridge, color="#999", linestyle=":", linewidth=1)
    ax.text(ridge * 1.1, peak * 0.02, f"ridge {ridge:.0f} flop/B", fontsize=7, color="#666")
    if ai > 0 and achieved > 0:
        ax.loglog([ai], [achieved], "o", color="#d62728", markersize=8,
                  label=f"{summary['kernel']}: {achieved:.2f} TFLOP/s ({summary['mfu_estimated_percent']:.1f}% MFU)")
        ax.loglog([ai], [min(peak, ai * bw)], "_", color="#d62728", markersize=14)
    else:
        ax.text(0.5, 0.5, "no matmul flops", transform=ax.transAxes, ha="center", fontsize=9, color="#666")
    ax.set_xlabel("arithmetic intensity (flop per HBM byte)")
    ax.set_ylabel("TFLOP/s")
    ax.set_ylim(peak * 1e-4, peak * 2)
    ax.grid(True, which="both", alpha=0.2)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Roofline", fontsize=10)
    _tight(fig)
    return fig


def _table(headers: list[str], rows: list[list[Any]], cls: str = "") -> str:
    h = "".join(f"<th>{html.escape(x)}</th>" for x in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>'


def _e(x: Any) -> str:
    return html.escape(str(x))


def launch_section(data: ProfileData, summary: dict, files: dict[str, str] | None = None, anchor: str = "") -> str:
    """The HTML of one launch (pictures rendered now, so the stream can be dropped afterwards)."""
    s = summary
    files = files or {}
    parts = [f'<section id="{_e(anchor)}"><h2>{_e(s["kernel"])} <small>{_e(s["target"])}, grid '
             f'{_e(tuple(s["grid"]))}, cores {_e(s["cores"])}</small></h2>']
    links = " · ".join(f'<a href="{_e(os.path.basename(p))}">{_e(k)}</a>' for k, p in files.items())
    if links:
        parts.append(f'<p class="files">{links}</p>')
    metrics = [
        ("total_time", f"{s['total_time_us']:.3f} us"),
        ("instructions", s["instruction_count"]),
        ("MFU / HFU / MBU", f"{s['mfu_estimated_percent']:.1f}% / {s['hfu_estimated_percent']:.1f}% / "
                            f"{s['mbu_estimated_percent']:.1f}%"),
        ("roofline ceiling", f"{s['mfu_max_achievable_estimated_percent']:.1f}% MFU"),
        ("arithmetic intensity", f"{s['mm_arithmetic_intensity']:.1f} flop/B"),
        ("DMA", f"{s['dma_transfer_count']} transfers, {s['dma_bytes'] / 2**20:.2f} MiB, average "
                f"{s['dma_average_transfer_bytes'] / 1024:.1f} KiB, {s['dma_throughput_gbps']:.1f} GB/s"),
        ("HBM read / write", f"{s['hbm_read_bytes'] / 2**20:.2f} / {s['hbm_write_bytes'] / 2**20:.2f} MiB"),
        ("SBUF / PSUM peak", f"{s['sbuf_peak_percent']:.1f}% / {s['psum_peak_percent']:.1f}% of capacity"),
        ("tensors loaded > 2x", s["tensors_loaded_more_than_twice"]),
    ]
    parts.append('<div class="metrics">' + "".join(
        f'<div class="metric"><div class="k">{_e(k)}</div><div class="v">{_e(v)}</div></div>' for k, v in metrics
    ) + "</div>")
    if have_matplotlib():
        parts.append('<h3>Timeline</h3>' + _img(_png(timeline_figure(data)), "timeline"))
        parts.append('<div class="row">' + _img(_png(utilisation_figure(s)), "engine utilisation")
                     + _img(_png(roofline_figure(s, data.arch, len(data.cores))), "roofline") + "</div>")
    else:
        parts.append("<p><em>matplotlib is not installed (pip install 'trnsim[report]'): no pictures.</em></p>")
    sev = {"error": "sev-error", "warning": "sev-warning", "info": "sev-info"}
    wrows = []
    for w in s["warnings"]:
        where = "<br>".join(
            f"<code>{_e(r['location'])}</code> {_e(r.get('detail', ''))}"
            + (f" <span class='code'>{_e(r['code'])}</span>" if r.get("code") else "")
            for r in w["lines"][:6]
        )
        wrows.append([f'<span class="{sev.get(w["severity"], "")}">{_e(w["severity"])}</span>',
                      f"<code>{_e(w['code'])}</code>", _e(w["message"]), where])
    parts.append("<h3>Warnings</h3>" + (_table(["", "code", "what", "where"], wrows, "warn") if wrows
                                        else "<p>none</p>"))
    lrows = []
    for r in s["source_lines"][:15]:
        per = ", ".join(f"{e} {v / 1e3:.2f}" for e, v in r["busy_ns_per_engine"].items())
        lrows.append([f"<code>{_e(r['location'])}</code>", f"<span class='code'>{_e(r['code'])}</span>",
                      r["instructions"], f"{r['critical_path_percent']:.1f}%", f"{r['busy_ns'] / 1e3:.3f}",
                      _e(per), f"{r['wait_ns'] / 1e3:.3f}"])
    parts.append("<h3>Hottest source lines</h3>" + _table(
        ["line", "code", "instr.", "critical path", "busy us", "busy us per engine", "wait us"], lrows))
    orows = [[_e(o["engine"]), f"<code>{_e(o['opcode'])}</code>", o["count"], f"{o['busy_ns'] / 1e3:.3f}"]
             for o in s["opcodes"][:12]]
    parts.append("<h3>Instructions by opcode</h3>" + _table(["engine", "opcode", "count", "busy us"], orows))
    parts.append("</section>")
    return "\n".join(parts)


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
h2 small{font-weight:normal;color:#777;font-size:13px}h3{font-size:15px;margin-top:20px}
table{border-collapse:collapse;font-size:12px;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 6px;
vertical-align:top;text-align:left}th{background:#f3f3f3}.code{font-family:monospace;color:#555}
.metrics{display:flex;flex-wrap:wrap;gap:8px}.metric{border:1px solid #ddd;border-radius:4px;padding:6px 10px}
.metric .k{font-size:11px;color:#777}.metric .v{font-size:14px}img{max-width:100%}.row{display:flex;gap:16px;
flex-wrap:wrap;align-items:flex-start}.row img{max-width:49%}.sev-error{color:#b10026;font-weight:bold}
.sev-warning{color:#d95f0e;font-weight:bold}.sev-info{color:#2c7fb8}.files{font-size:13px}
.toc{font-size:13px}
"""


def write_report(path: str, sections: list[tuple[str, str]], title: str = "trnsim profile", note: str = "") -> None:
    """Write one HTML page with the given (anchor title, section html) parts."""
    toc = ""
    if len(sections) > 1:
        toc = '<ul class="toc">' + "".join(
            f'<li><a href="#s{k}">{_e(t)}</a></li>' for k, (t, _) in enumerate(sections)
        ) + "</ul>"
    body = "\n".join(sec for _, sec in sections)
    doc = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{_CSS}</style>"
        f"</head><body><h1>{_e(title)}</h1>"
        f"<p>{_e(note)} Times come from trnsim's timing model. Open a <code>.pftrace</code> file at "
        f"<a href='https://ui.perfetto.dev'>ui.perfetto.dev</a> (Open trace file) for the instruction-level "
        f"timeline.</p>{toc}{body}</body></html>"
    )
    with open(path, "w", encoding="utf-8") as f:
        f.write(doc)
