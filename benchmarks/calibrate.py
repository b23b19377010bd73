"""Calibrate trnsim's timing model against the published measurements of trn-hardware.md section 4.

Runs every calibration kernel in timing-only mode (shape placeholders, no numerics), compares the model with
the measured numbers and regenerates docs/calibration.md and docs/calibration.png:

    python benchmarks/calibrate.py                     # all rows, writes docs/calibration.{md,png}
    python benchmarks/calibrate.py --rows A1 A29 A30   # a subset, printed only
    python benchmarks/calibrate.py --set trn2.buffer_rotation=3 --no-write   # what-if on an arch parameter

Targets: latencies within +-20%, optimisation ladders in the measured order with speed-up ratios within +-25%.
Utilisation percentages (profiles give no latency for rows A31-A34) are compared in percentage points.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import ml_dtypes
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "src"))

import trnsim  # noqa: E402
from trnsim.frontend.legacy.typing import tensor  # noqa: E402
from trnsim.kernels import mamba, matmul  # noqa: E402
from trnsim.kernels.calibration import kernel_opt_matmul as kopt  # noqa: E402
from trnsim.kernels.calibration import microbench  # noqa: E402
from trnsim.timing.arch import get_arch  # noqa: E402

BF16 = ml_dtypes.bfloat16
F32 = np.float32
F16 = np.float16

LATENCY_TOL = 0.20
RATIO_TOL = 0.25


# ============================================================================================ experiments
@dataclass
class Experiment:
    """One kernel launch in timing-only mode; several rows may read different metrics of it."""

    key: str
    kernel: Any
    args: tuple
    target: str
    kwargs: dict = field(default_factory=dict)


def _matmul(name: str, kernel) -> Experiment:
    return Experiment(name, kernel, (tensor[[8192, 4096], BF16], tensor[[8192, 8192], BF16]), "trn1")


def _mamba(version: str, channels: int, seq: int) -> Experiment:
    k = mamba.KERNELS[f"mamba_{version}"]
    s = 16
    args = (
        tensor[[1, channels, seq], F32],
        tensor[[1, channels, seq], F32],
        tensor[[channels, s], F32],
        tensor[[1, s, seq], F32],
        tensor[[1, s, seq], F32],
    )
    return Experiment(f"mamba_{version}_c{channels}_s{seq}", k, args, "trn1")


def _kopt(version: str) -> Experiment:
    k = kopt.KERNELS[f"kopt_{version}"]
    return Experiment(f"kopt_{version}", k, (tensor[[8192, 4096], F32], tensor[[8192, 8192], F32]), "trn2")


def _dma(rows: int, bytes_per_row: int, target: str) -> Experiment:
    return Experiment(
        f"dma_{rows}x{bytes_per_row}_{target}", microbench.single_dma, (tensor[[rows, bytes_per_row // 2], BF16],), target
    )


EXPERIMENTS: dict[str, Experiment] = {}


def _exp(e: Experiment) -> str:
    EXPERIMENTS[e.key] = e
    return e.key


# ============================================================================================ metrics
def m_latency_ms(est, launch) -> float:
    return est.total_ns / 1e6


def m_latency_us(est, launch) -> float:
    return est.total_ns / 1e3


def m_first_dma_ns(est, launch) -> float:
    i = next(k for k, ins in enumerate(launch.stream) if ins.engine == "DMA")
    return est.timings[i].end - est.timings[i].start


def m_activation_ii_ns(est, launch) -> float:
    idx = [k for k, ins in enumerate(launch.stream) if ins.opcode == "ACTIVATE"]
    t = est.timings
    return (t[idx[-1]].start - t[idx[0]].start) / (len(idx) - 1)


def m_matmul_latency_ns(est, launch) -> float:
    i = next(k for k, ins in enumerate(launch.stream) if ins.opcode == "MATMUL")
    return est.timings[i].done - est.timings[i].start


def m_util(engine: str):
    def f(est, launch) -> float:
        return 100.0 * est.engine_utilisation().get(engine, 0.0)

    f.__name__ = f"util_{engine}"
    return f


def m_hfu(est, launch) -> float:
    return 100.0 * est.hfu


@dataclass
class Row:
    """A calibration row: a measured number and how to read the model's prediction of it."""

    id: str
    what: str
    chip: str
    exp: str
    metric: Any
    measured: float
    unit: str
    kind: str = "latency"  # latency | percent | relative
    note: str = ""


def build_rows() -> list[Row]:
    rows: list[Row] = []
    mm = [
        ("A1", "matmul tutorial, original tiled", "matmul_tiled", 51.80, 10.98),
        ("A2", "matmul tutorial, opt 1 (hoisted loads)", "matmul_hoisted", 42.96, 13.24),
        ("A3", "matmul tutorial, opt 2 (blocked M, N)", "matmul_blocked", 22.07, 26.51),
        ("A4", "matmul tutorial, opt 3 (blocked M, N, K)", "matmul_optimized", 6.97, 85.24),
    ]
    for rid, what, name, ms, hfu in mm:
        e = _exp(_matmul(name, getattr(matmul, name)))
        rows.append(Row(rid, what + ", [4096,8192]@[8192,8192] bf16", "trn1", e, m_latency_ms, ms, "ms"))
        rows.append(Row(rid + "-HFU", what + ": HFU", "trn1", e, m_hfu, hfu, "%", "percent"))
    rows.append(
        Row("A5", "Mamba PyTorch/compiler reference", "trn1", "", None, 151.83, "ms", "n/a",
            "compiler output of the PyTorch graph, not an NKI kernel: not modelled")
    )
    mam = [
        ("A6", "mamba_v1, channels 256, seq 512", "v1", 256, 512, 172.93, "us", 98.71),
        ("A7", "mamba_v1, channels 4096, seq 512", "v1", 4096, 512, 2.34, "ms", 92.16),
        ("A8", "mamba_v2, channels 4096, seq 512", "v2", 4096, 512, 1.61, "ms", 99.63),
        ("A9", "mamba_v2, channels 4096, seq 8192", "v2", 4096, 8192, 52.2, "ms", 58.93),
        ("A10", "mamba_v3, channels 4096, seq 8192", "v3", 4096, 8192, 27.8, "ms", 94.85),
    ]
    for rid, what, ver, ch, seq, val, unit, vec in mam:
        e = _exp(_mamba(ver, ch, seq))
        rows.append(Row(rid, what + ", fp32", "trn1", e, m_latency_us if unit == "us" else m_latency_ms, val, unit))
        rows.append(Row(rid + "-Vec", what + ": VectorE active", "trn1", e, m_util("Vector"), vec, "%", "percent"))
    scaling = {
        1024: (4.4, 3.3), 2048: (8.9, 6.6), 3072: (13.1, 10.1), 4096: (17.6, 13.3),
        5120: (23.7, 17.3), 6144: (27.5, 19.6), 7168: (41.3, 24.2), 8192: (52.2, 27.8),
    }
    for j, (seq, (v2, v3)) in enumerate(scaling.items()):
        for k, (ver, val) in enumerate((("v2", v2), ("v3", v3))):
            e = _exp(_mamba(ver, 4096, seq))
            rows.append(
                Row(f"A{11 + 2 * j + k}", f"mamba_{ver} scaling, channels 4096, seq {seq}", "trn1", e, m_latency_ms,
                    val, "ms")
            )
    e = _exp(_dma(4, 8192, "trn2"))
    rows.append(Row("A29", "single DMA, [4,4096] bf16 HBM->SBUF (1 engine): duration", "trn2", e, m_first_dma_ns,
                    1416.0, "ns"))
    e = _exp(Experiment("act_chain", microbench.dependent_activations, (tensor[[128, 1], F32],), "trn1",
                        {"n_steps": 64}))
    rows.append(Row("A30", "dependent 1-element activations [128,1] fp32: issue interval", "trn1", e,
                    m_activation_ii_ns, 189.0, "ns"))
    ko = [
        ("A31", "v2 (tiled)", "v2", 99.93, 87.28, None),
        ("A32", "v3 (hoisted loads)", "v3", 99.73, 99.85, None),
        ("A33", "v4 (blocked M, N)", "v4", 95.70, 99.52, None),
        ("A34", "v5 (blocked M, N, K)", "v5", 21.54, 99.50, 10.55),
    ]
    for rid, what, ver, dma, pe, vec in ko:
        e = _exp(_kopt(ver))
        base = f"kernel-optimisation fp32 matmul {what}"
        rows.append(Row(rid + "-DMA", base + ": DMA active", "trn2", e, m_util("DMA"), dma, "%", "percent"))
        rows.append(Row(rid + "-PE", base + ": TensorE active", "trn2", e, m_util("Tensor"), pe, "%", "percent"))
        if vec is not None:
            rows.append(Row(rid + "-Vec", base + ": VectorE active", "trn2", e, m_util("Vector"), vec, "%", "percent"))
    e = _exp(Experiment("mm3", microbench.single_matmul, (tensor[[128, 128], F16], tensor[[128, 3], F16]), "trn1"))
    rows.append(Row("A35", "one MATMUL, fp16, moving free 3 ('3*128'): instruction latency", "trn1 (assumed)", e,
                    m_matmul_latency_ns, 148.0, "ns"))
    curve = [32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768]
    rel = [0.01, 0.03, 0.05, 0.10, 0.21, 0.42, 0.81, 0.97, 0.98, 0.99, 1.00]
    for b, r in zip(curve, rel):
        e = _exp(_dma(128, b, "trn2"))
        rows.append(Row(f"A36-{b}", f"DMA throughput at {b} B/partition (relative to 32 KiB)", "trn2", e,
                        ("relative", b), r, "x", "relative"))
    return rows


LADDERS = [
    ("matmul tutorial (trn1)", ["A1", "A2", "A3", "A4"]),
    ("mamba v1 -> v2 (4096 channels, seq 512)", ["A7", "A8"]),
    ("mamba v2 -> v3 (seq 8192)", ["A9", "A10"]),
] + [(f"mamba v2 -> v3 (seq {seq})", [f"A{11 + 2 * j}", f"A{12 + 2 * j}"])
     for j, seq in enumerate([1024, 2048, 3072, 4096, 5120, 6144, 7168])]


# ============================================================================================ running
def parse_sets(sets: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for s in sets:
        lhs, val = s.split("=", 1)
        target, param = lhs.split(".", 1)
        try:
            v: Any = json.loads(val)
        except json.JSONDecodeError:
            v = val
        out.setdefault(target, {})[param] = v
    return out


def arch_for(target: str, overrides: dict[str, dict[str, Any]]):
    a = get_arch(target)
    ch = overrides.get(target)
    if ch:
        a = a.variant(a.name, **ch)
    return a


def run_experiment(e: Experiment, overrides) -> tuple[Any, Any, float]:
    t0 = time.time()
    est = trnsim.estimate(e.kernel, *e.args, target=arch_for(e.target, overrides), **e.kwargs)
    launch = est.extra.pop("launch")
    return est, launch, time.time() - t0


def evaluate(rows: list[Row], overrides, verbose: bool = True) -> dict[str, dict]:
    needed = []
    for r in rows:
        if r.exp and r.exp not in needed:
            needed.append(r.exp)
    results: dict[str, Any] = {}
    for key in needed:
        e = EXPERIMENTS[key]
        try:
            est, launch, wall = run_experiment(e, overrides)
            results[key] = (est, launch, wall, None)
            if verbose:
                print(f"  {key:<28} {est.total_ns / 1e3:12.1f} us  ({len(launch.stream)} instr, {wall:.1f} s)",
                      flush=True)
        except Exception as ex:  # noqa: BLE001 - reported in the table
            results[key] = (None, None, 0.0, f"{type(ex).__name__}: {str(ex).splitlines()[0][:160]}")
            if verbose:
                print(f"  {key:<28} FAILED {results[key][3]}", flush=True)
    # relative DMA throughput needs the 32 KiB reference
    ref_key = _dma(128, 32768, "trn2").key
    out: dict[str, dict] = {}
    for r in rows:
        rec: dict[str, Any] = {"row": r, "pred": None, "err": None, "status": ""}
        if r.kind == "n/a":
            rec["status"] = "n/a"
            out[r.id] = rec
            continue
        est, launch, wall, err = results[r.exp]
        if est is None:
            rec["status"] = err
            out[r.id] = rec
            continue
        if isinstance(r.metric, tuple) and r.metric[0] == "relative":
            b = r.metric[1]
            d = m_first_dma_ns(est, launch)
            rest, rlaunch = results[ref_key][0], results[ref_key][1]
            dref = m_first_dma_ns(rest, rlaunch)
            pred = (b / d) / (32768 / dref)
        else:
            pred = r.metric(est, launch)
        rec["pred"] = pred
        if r.kind in ("latency", "relative"):
            rec["err"] = pred / r.measured - 1.0
            ok = abs(rec["err"]) <= LATENCY_TOL if r.kind == "latency" else abs(pred - r.measured) <= 0.05 + 0.1 * r.measured
        else:
            rec["err"] = pred - r.measured
            ok = abs(rec["err"]) <= 15.0
        rec["status"] = "ok" if ok else "MISS"
        out[r.id] = rec
    return out


def ladder_report(res: dict[str, dict]) -> list[dict]:
    out = []
    for name, ids in LADDERS:
        meas = [res[i]["row"].measured for i in ids]
        pred = [res[i]["pred"] for i in ids]
        steps = []
        if any(p is None for p in pred):
            out.append({"name": name, "ids": ids, "steps": [], "order_ok": False, "status": "missing"})
            continue
        for a in range(len(ids) - 1):
            rm = meas[a] / meas[a + 1]
            rp = pred[a] / pred[a + 1]
            steps.append({"from": ids[a], "to": ids[a + 1], "measured": rm, "pred": rp, "err": rp / rm - 1.0})
        order_ok = all((s["pred"] > 1.0) == (s["measured"] > 1.0) for s in steps)
        ratio_ok = all(abs(s["err"]) <= RATIO_TOL for s in steps)
        out.append({"name": name, "ids": ids, "steps": steps, "order_ok": order_ok,
                    "status": "ok" if order_ok and ratio_ok else "MISS"})
    return out


# ============================================================================================ speed
SPEED_REPEATS = 5


def _speed_cases() -> list[tuple]:
    """(name, kernel, arrays, placeholders, target) of the kernels whose simulation speed is measured."""
    rng = np.random.default_rng(0)
    cases = []
    a = rng.standard_normal((2048, 1024)).astype(BF16)
    b = rng.standard_normal((2048, 2048)).astype(BF16)
    ph = (tensor[[2048, 1024], BF16], tensor[[2048, 2048], BF16])
    for name in ("matmul_tiled", "matmul_hoisted", "matmul_blocked"):
        cases.append((f"{name} bf16 [1024,2048]@[2048,2048]", getattr(matmul, name), (a, b), ph, "trn2"))
    margs = mamba.make_inputs(batch=1, channels=1024, seq_len=2048, state_size=16, rng=rng)
    mph = tuple(tensor[list(x.shape), F32] for x in margs)
    for name in ("mamba_v2", "mamba_v3"):
        cases.append((f"{name} fp32 channels 1024, seq 2048", mamba.KERNELS[name], margs, mph, "trn1"))
    return cases


def machine_description() -> str:
    """CPU model, logical CPUs, load and software versions of the machine measuring the speed."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = f", load average {os.getloadavg()[0]:.1f}"
    except (AttributeError, OSError):
        load = ""
    return (f"{cpu}, {os.cpu_count()} logical CPUs{load}; Python {platform.python_version()}, "
            f"NumPy {np.__version__}")


def _predictions(est) -> tuple:
    """Everything an estimate predicts (per-instruction times and waits, per-engine busy and idle time)."""
    return (
        est.total_ns,
        [(t.start, t.end, t.done, t.issue, t.wait_on, t.wait_ns, t.queue, t.reason) for t in est.timings],
        est.engine_busy_ns,
        est.idle,
        est.critical_path,
    )


def measure_speed(repeats: int = SPEED_REPEATS) -> list[dict]:
    """Wall time of full simulation, of the timing pass over its instruction stream, and of a timing-only
    estimate (shape placeholders: front end without numerics + timing pass), best of `repeats` each."""
    from trnsim.timing.model import schedule

    out = []
    for name, kernel, arrays, placeholders, target in _speed_cases():
        k = trnsim._as_kernel(kernel, target)
        k.launch(*[np.empty(p.shape, p.dtype) for p in placeholders], numerics=False)  # warm-up: imports, caches
        t_full = t_model = t_only = t_explain = math.inf
        est_full = est_only = None
        rec = None
        for _ in range(repeats):
            t0 = time.perf_counter()
            _, rec = k.launch(*arrays)
            t_full = min(t_full, time.perf_counter() - t0)
            t0 = time.perf_counter()
            est_full = schedule(rec.stream, rec.arch, rec.uses)  # (as `estimate` does after a launch)
            t_model = min(t_model, time.perf_counter() - t0)
            t0 = time.perf_counter()
            est_only = trnsim.estimate(kernel, *placeholders, target=target)
            t_only = min(t_only, time.perf_counter() - t0)
            t0 = time.perf_counter()
            est_only.timings, est_only.idle, est_only.critical_path  # noqa: B018 (built when first read)
            t_explain = min(t_explain, time.perf_counter() - t0)
        n = len(rec.stream)
        same = _predictions(est_full) == _predictions(est_only)
        r = {"kernel": name, "instructions": n, "full_s": t_full, "model_s": t_model, "timing_only_s": t_only,
             "explain_s": t_explain, "same_prediction": same}
        out.append(r)
        print(f"  {name}: {n} instr; full simulation {t_full:.3f} s, timing pass {t_model:.3f} s "
              f"({1e6 * t_model / n:.1f} us/instr, +{100 * t_model / t_full:.0f}%), timing-only estimate "
              f"{t_only:.3f} s ({t_full / t_only:.1f}x faster; its explanation records {1e3 * t_explain:.1f} ms when "
              f"read){'' if same else '  PREDICTIONS DIFFER'}", flush=True)
    return out


def speed_section(speed: list[dict], machine: str) -> list[str]:
    """Markdown lines of the "Speed of the model" section."""
    lines = [
        "## Speed of the model",
        "",
        "Measured by `python benchmarks/calibrate.py` (or `python benchmarks/calibrate.py --speed-only`, which prints",
        f"the table without rewriting this file), best of {SPEED_REPEATS} runs each, on: {machine}.",
        "",
        "* full simulation: `launch(kernel, *arrays)`: numerics, strict checks, race checks, instruction stream;",
        "* timing pass: `trnsim.timing.model.schedule` over that stream, as `estimate` runs it (the model's cost on top",
        "  of a full simulation);",
        "* timing-only: `trnsim.estimate(kernel, *placeholders)` with `nki.typing.tensor[[...], dtype]` arguments:",
        "  the front ends with shape, buffer and dtype checks but no numerics, plus the timing pass. An estimate builds",
        "  its explanation records (per-instruction timings, idle breakdown, critical path) when they are first read,",
        "  which a caller after the latency alone never does; reading them is the last column, timed on its own.",
        "",
        "Targets: timing-only at least 5x faster than full simulation; the timing pass adds at most 30% to it.",
        "Two speed-ups are shown: against the full simulation alone (`launch`, the stricter one), and against the",
        "estimate the same call gives from real arrays (`trnsim.estimate(kernel, *arrays)`: full simulation + timing",
        "pass), which is what a timing-only estimate replaces.",
        "",
        "| kernel | instructions | full simulation | timing pass (per instruction) | full + timing pass | model overhead "
        "| timing-only | speed-up vs full simulation | speed-up vs estimate from arrays | bound with a free timing pass "
        "| same prediction | explanation records, when read |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in speed:
        full, model, only, n = r["full_s"], r["model_s"], r["timing_only_s"], r["instructions"]
        front = max(only - model, 1e-9)  # the front end without numerics: the part both modes run
        lines.append(
            f"| {r['kernel']} | {n} | {full:.3f} s | {model:.3f} s ({1e6 * model / n:.1f} us) | {full + model:.3f} s "
            f"| +{100 * model / full:.0f}% | {only:.3f} s | {full / only:.1f}x | {(full + model) / only:.1f}x "
            f"| {full / front:.1f}x | {'yes' if r['same_prediction'] else 'NO'} | {1e3 * r['explain_s']:.1f} ms |"
        )
    met = [r["kernel"].split()[0] for r in speed if r["full_s"] / r["timing_only_s"] >= 5.0]
    missed = [r["kernel"].split()[0] for r in speed if r["full_s"] / r["timing_only_s"] < 5.0]
    missed_est = [r["kernel"].split()[0] for r in speed
                  if (r["full_s"] + r["model_s"]) / r["timing_only_s"] < 5.0]
    per_pass = [1e6 * r["model_s"] / r["instructions"] for r in speed]
    per_front = [1e6 * max(r["timing_only_s"] - r["model_s"], 0.0) / r["instructions"] for r in speed]
    worst = max(100 * r["model_s"] / r["full_s"] for r in speed)
    lines += [
        "",
        f"The timing pass costs {min(per_pass):.0f}-{max(per_pass):.0f} us per instruction (dependency graph on the boxes",
        "touched, then the event loop over engines, DMA queues and the fluid DMA model) and adds at most "
        f"{worst:.0f}% to a full",
        "simulation (target: 30%). A timing-only run skips every value read, cast, written-state update, poison fill",
        "and input copy (shape, buffer and dtype checks still run), so what remains is the front ends' own work per",
        f"instruction (running the kernel's Python, subscripts, checks, tiles, records: {min(per_front):.0f}-"
        f"{max(per_front):.0f} us here) plus",
        "the timing pass. The speed-up is therefore set by how much arithmetic each instruction carries in a full",
        "simulation: " + (f"{', '.join(met)} meet{'s' if len(met) == 1 else ''} the 5x target against the full"
                          if met else "no kernel here meets the 5x target against the full"),
        "simulation alone" + ("; in" if missed else "."),
    ]
    if missed:
        lines += [
            f"{', '.join(missed)} (cheap arithmetic per instruction) the timing-only time is mostly front-end work, so",
            "it is not 5x shorter. The front end (timing-only minus timing pass) is the same Python in both modes, so",
            "full / front end (\"bound with a free timing pass\") is the most a timing-only run could gain even if the",
            "timing pass cost nothing; where that bound is near or below 5x, meeting the target takes a faster front end",
            "(fewer Python steps per API call), not a faster model.",
        ]
    lines.append("Against the estimate from arrays, " + (
        "every kernel here meets the 5x target." if not missed_est else
        f"{', '.join(missed_est)} {'does' if len(missed_est) == 1 else 'do'} not meet the 5x target."))
    lines.append("")
    return lines


# ============================================================================================ output
def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit in ("%",):
        return f"{v:.2f}"
    if unit == "x":
        return f"{v:.3f}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.3g}" if abs(v) < 10 else f"{v:.2f}"



def _known_gaps(res: dict[str, dict], ladders: list[dict]) -> list[str]:
    """The "Known gaps" bullets: the current errors come from this run; the figures of the alternatives that were
    tried (other spill policies) were measured once, when the trn1 policy was chosen (2026-11-26)."""

    def err(rid: str, pt: bool = False) -> str:
        e = res.get(rid, {}).get("err")
        if e is None:
            return "n/a"
        return f"{e:+.1f} pt" if pt else f"{100 * e:+.1f}%"

    def percents(rid: str) -> str:
        rec = res.get(rid, {})
        return "n/a" if rec.get("pred") is None else f"{rec['pred']:.0f}% vs {rec['row'].measured:.1f}% measured"

    def span(rids: list[str]) -> str:
        es = sorted(100 * abs(res[r]["err"]) for r in rids if res.get(r, {}).get("err") is not None)
        return f"{es[0]:.0f}-{es[-1]:.0f}%" if es else "n/a"

    v2 = [f"A{i}" for i in range(11, 23, 2)]
    v3 = [f"A{i}" for i in range(12, 23, 2)]
    steps = [s for lad in ladders for s in lad["steps"] if s["from"] in v2 and s["to"] in v3]
    measured = sorted(s["measured"] for s in steps)
    predicted = sorted(s["pred"] for s in steps)
    gap = (f"the measured v2/v3 gap ({measured[0]:.2f}-{measured[-1]:.2f}x) is larger than the model's "
           f"({predicted[0]:.2f}-{predicted[-1]:.2f}x)") if steps else "the ladder did not run"
    return [
        f"* A9 / A25 / A23 (mamba_v2, seq 8192 / 7168) fit with trn1's spill policy ({err('A9')} / {err('A25')} /",
        f"  {err('A23')} in this run). The working set exceeds SBUF by 48 KiB per partition at seq 8192 (20 KiB at",
        "  7168); the model drops the input copies delta_t / u_t and the B row (no saves) instead of saving the",
        f"  accumulator, and each 28-32 KiB reload stalls its reader. VectorE at seq 8192: {percents('A9-Vec')}.",
        "  Measured once when the policy was chosen (2026-11-26): with the plain policy A9 / A23 were +110% / -2.0%",
        "  (the A23 fit then resting on redundant re-saves of u_t); without on-demand reloads A23 is -25% (the",
        "  reload hides behind compute), without dropping clean tiles first A9 is +89% (accumulator saved and",
        "  reloaded every state); reusing saved copies and room waits change these rows by < 4%; moving only the",
        "  overflowing bytes would also fit (A23 -0.5%, A9 +4.6%) but splits a tile's contiguous address range.",
        "  Not enabled on trn2 / trn3: there the kernel-optimisation v4 / v5 profiles (A33 / A34, TensorE 99.5% with",
        "  no visible stall) dropped to 38% / 43% TensorE (on-demand reloads of v4's many small spilled tiles; v5",
        "  evicting clean tiles it needs soon, since clean-first ignores the next use). A traffic-aware victim",
        "  choice (next-use distance per byte moved) kept v5 at 91% and the trn1 rows unchanged, but v4 stayed",
        "  low; the model's SBUF liveness of v4 (329 KiB live vs 208 KiB) is suspect.",
        f"* mamba_v2 vs v3 at seq 1024-6144 (A11-A22): v2 is off by {span(v2)}, v3 by {span(v3)};",
        f"  {gap}.",
        f"* Engine-utilisation rows: VectorE of mamba_v1 (A6, A7) is predicted {err('A6-Vec', True)} /",
        f"  {err('A7-Vec', True)} off because the model makes v1 DMA-bound (the profiles show VectorE nearly always",
        f"  busy while the latencies match); TensorE of kernel-optimisation v4 (A33) is {err('A33-PE', True)} off:",
        "  that kernel overflows SBUF with fp32 tiles and the spill model makes it partly DMA-bound (trn2 keeps the",
        "  plain spill policy, see above).",
    ]

def write_markdown(path: str, res: dict[str, dict], ladders: list[dict], overrides, wall: float,
                   speed: list[dict] | None = None, machine: str | None = None) -> None:
    t1, t2 = get_arch("trn1"), get_arch("trn2")
    lines = [
        "# Timing-model calibration",
        "",
        "Generated by `python benchmarks/calibrate.py` (timing-only mode: shapes and dtypes only) from the published",
        "measurements of `trn-hardware.md` section 4. Do not edit by hand.",
        "",
        f"Targets: latencies within +-{int(100 * LATENCY_TOL)}%, optimisation ladders in the measured order with",
        f"speed-up ratios within +-{int(100 * RATIO_TOL)}%. Engine-utilisation rows (the profiles of rows A31-A34",
        "publish no latency) are compared in percentage points and are informative, not targets.",
        "",
        f"Run time: {wall:.0f} s." + (f" Parameter overrides: `{overrides}`." if overrides else ""),
        "",
        "![predicted vs measured](calibration.png)",
        "",
        "## Latencies",
        "",
        "| row | kernel | chip | measured | predicted | error | |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    n_ok = n_all = 0
    for rid, rec in res.items():
        r = rec["row"]
        if r.kind not in ("latency", "n/a"):
            continue
        if r.kind == "latency":
            n_all += 1
            n_ok += rec["status"] == "ok"
        err = f"{100 * rec['err']:+.1f}%" if rec["err"] is not None else "-"
        status = rec["status"] if rec["status"] in ("ok", "MISS", "n/a") else f"not run: {rec['status']}"
        if r.kind == "n/a":
            status = f"n/a: {r.note}"
        lines.append(
            f"| {rid} | {r.what} | {r.chip} | {_fmt(r.measured, r.unit)} {r.unit} | {_fmt(rec['pred'], r.unit)} "
            f"{r.unit if rec['pred'] is not None else ''} | {err} | {status} |"
        )
    lines += ["", f"{n_ok} of {n_all} latency rows within +-{int(100 * LATENCY_TOL)}%.", "",
              "## Optimisation ladders (speed-up of each step = latency before / latency after)", "",
              "| ladder | step | measured speed-up | predicted | error | |", "|---|---|---:|---:|---:|---|"]
    for lad in ladders:
        if not lad["steps"]:
            lines.append(f"| {lad['name']} | - | - | - | - | {lad['status']} |")
        for s in lad["steps"]:
            ok = "ok" if abs(s["err"]) <= RATIO_TOL and (s["pred"] > 1) == (s["measured"] > 1) else "MISS"
            lines.append(f"| {lad['name']} | {s['from']} -> {s['to']} | {s['measured']:.3f}x | {s['pred']:.3f}x | "
                         f"{100 * s['err']:+.1f}% | {ok} |")
    lines += ["", "## Engine utilisation and HFU (percent, compared in percentage points)", "",
              "| row | quantity | chip | measured % | predicted % | difference |", "|---|---|---|---:|---:|---:|"]
    for rid, rec in res.items():
        r = rec["row"]
        if r.kind != "percent":
            continue
        diff = f"{rec['err']:+.1f} pt" if rec["err"] is not None else "-"
        lines.append(f"| {rid} | {r.what} | {r.chip} | {r.measured:.2f} | {_fmt(rec['pred'], '%')} | {diff} |")
    lines += ["", "## DMA throughput vs bytes per partition (row A36, trn2, relative to 32 KiB per partition)", "",
              "| bytes / partition | measured | predicted |", "|---:|---:|---:|"]
    for rec in res.values():
        r = rec["row"]
        if r.kind == "relative":
            lines.append(f"| {r.metric[1]} | {r.measured:.2f} | {_fmt(rec['pred'], 'x')} |")
    lines += ["", "## Calibrated parameters", "",
              "Physically meaningful numbers in `src/trnsim/timing/archs/*.json`; each file's `comments` says which row",
              "fixed a value. The ones the rows above constrain:", "",
              "| parameter | trn1 | trn2 | source |", "|---|---|---|---|"]
    for p in ("dma_bytes_per_ns_per_engine", "dma_descriptor_ns", "dma_knee", "dma_fixed_ns", "dma_issue_ns",
              "dma_issuers", "dma_queues", "pipeline_latency_cycles", "buffer_rotation", "reorder_window"):
        v1, v2 = getattr(t1, p), getattr(t2, p)
        src = t1.comments.get(p) or t2.comments.get(p) or ""
        lines.append(f"| `{p}` | {v1} | {v2} | {src} |")
    lines += ["", "## What the model does", "",
              "* Engines (Tensor, Vector, Scalar, GpSimd, Sync) run one instruction at a time; the compiler's list",
              "  scheduler may move an instruction ahead of up to `reorder_window - 1` earlier, not-yet-ready ones.",
              "* Dependencies on the (partition, byte) boxes touched: read-after-write waits for the producer's result",
              "  (`pipeline_latency_cycles` after its last issue slot), write-after-read for the reader's end.",
              "* Buffer rotation: tiles of one allocation site rotate through `buffer_rotation` x live instances buffers",
              "  (fewer when SBUF/PSUM is short); a new tile waits until the tile that last held its buffer is done.",
              "* DMA: statements spread over queues (FIFO); each transfer is triggered by its issuer (`dma_issue_ns`),",
              "  starts `dma_fixed_ns` later, is capped by its descriptors (max~(`dma_descriptor_ns`, bytes / engine",
              "  bandwidth) each, 8 partitions per engine), and shares the core's DMA data path and the HBM domain",
              "  with the other transfers in flight (max-min fair sharing).",
              "* SBUF overflow in timing-only runs: whole tiles are evicted to HBM when the live tiles exceed",
              "  `sbuf_usable_bytes_per_partition` and reloaded before their next use. On trn1 the compiler-like policy",
              "  is on: a tile that only holds loads of a read-only input (`spill_drop_clean_tiles`) is dropped without",
              "  a save and reloaded from the input, and such tiles are evicted first (then farthest next use, Belady);",
              "  a tile not written since its save is not saved again (`spill_reuse_saved_copies`); a reload needs",
              "  room (`spill_reload_waits_for_room`) and is issued on demand from the stream of the engine that reads",
              "  the tile, after that engine's previous instruction, not prefetched (`spill_reload_on_demand`: the",
              "  fused_mamba profile at seq 8192 shows VectorE blocked on `qSyncSpillReload0` and poor overlap of",
              "  compute and data movement). `spill_whole_tiles` false would move only the overflowing bytes.",
              "* Cores (SPMD programs, LNC=2) run in parallel; latency is the makespan.",
              "",
              "## Known gaps", ""] + _known_gaps(res, ladders) + [
              "* A5 (compiler output of the PyTorch graph) is not an NKI kernel and is not modelled.",
              "",
              "Cost rules that the Mamba rows (A6-A26) exercise: `tensor_tensor` is max(MIN_II, N) when at most one",
              "operand streams through the SBUF read port (the other in PSUM, or a partition-broadcast row that the",
              "compiler materialises on the PE array, as the fused_mamba tutorial says) and 2N otherwise;",
              "`tensor_tensor_scan` is 2N; `activation` max(MIN_II, N).", ""]
    if speed:
        lines += speed_section(speed, machine or machine_description())
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


def write_plot(path: str, res: dict[str, dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.5))
    xs, ys, labels, cols = [], [], [], []
    for rid, rec in res.items():
        r = rec["row"]
        if r.kind != "latency" or rec["pred"] is None:
            continue
        scale = {"ms": 1e6, "us": 1e3, "ns": 1.0}[r.unit]
        xs.append(r.measured * scale)
        ys.append(rec["pred"] * scale)
        labels.append(rid)
        cols.append("tab:green" if rec["status"] == "ok" else "tab:red")
    if xs:
        lo, hi = min(xs + ys) / 2, max(xs + ys) * 2
        g = np.geomspace(lo, hi, 50)
        ax1.fill_between(g, g * (1 - LATENCY_TOL), g * (1 + LATENCY_TOL), color="0.9", label="+-20%")
        ax1.plot(g, g, "k--", lw=0.8)
        ax1.scatter(xs, ys, c=cols, zorder=3)
        for x, y, t in zip(xs, ys, labels):
            ax1.annotate(t, (x, y), textcoords="offset points", xytext=(4, 2), fontsize=7)
        ax1.set_xscale("log")
        ax1.set_yscale("log")
        ax1.set_xlim(lo, hi)
        ax1.set_ylim(lo, hi)
    ax1.set_xlabel("measured latency (ns)")
    ax1.set_ylabel("predicted latency (ns)")
    ax1.set_title("Latency rows (A1-A30, A35)")
    ax1.legend(loc="upper left")
    bx, by, bl = [], [], []
    for rid, rec in res.items():
        r = rec["row"]
        if r.kind == "percent" and rec["pred"] is not None:
            bx.append(r.measured)
            by.append(rec["pred"])
            bl.append(rid)
    cx, cm, cp = [], [], []
    for rec in res.values():
        r = rec["row"]
        if r.kind == "relative" and rec["pred"] is not None:
            cx.append(r.metric[1])
            cm.append(r.measured)
            cp.append(rec["pred"])
    ax2.plot([0, 100], [0, 100], "k--", lw=0.8)
    ax2.scatter(bx, by, c="tab:blue", zorder=3, label="utilisation / HFU rows")
    for x, y, t in zip(bx, by, bl):
        ax2.annotate(t, (x, y), textcoords="offset points", xytext=(4, 2), fontsize=7)
    ax2.set_xlabel("measured %")
    ax2.set_ylabel("predicted %")
    ax2.set_xlim(0, 105)
    ax2.set_ylim(0, 105)
    ax2.set_title("Utilisation rows; inset: DMA throughput curve (A36)")
    ax2.legend(loc="upper left")
    if cx:
        ins = ax2.inset_axes([0.55, 0.08, 0.42, 0.38])
        ins.plot(cx, cm, "o-", label="measured")
        ins.plot(cx, cp, "s--", label="model")
        ins.set_xscale("log", base=2)
        ins.set_xlabel("bytes/partition", fontsize=7)
        ins.tick_params(labelsize=6)
        ins.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", nargs="*", help="row ids (prefix match, e.g. A1 A36); default all")
    ap.add_argument("--set", action="append", default=[], metavar="TARGET.PARAM=VALUE",
                    help="override an arch parameter for this run (JSON value)")
    ap.add_argument("--no-write", action="store_true", help="print only; do not rewrite docs/calibration.*")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs"), help="folder for calibration.md / .png")
    ap.add_argument("--no-speed", action="store_true", help="skip the full-simulation speed comparison")
    ap.add_argument("--speed-only", action="store_true", help="only measure (and print) the speed of the model")
    ns = ap.parse_args(argv)
    overrides = parse_sets(ns.set)
    if ns.speed_only:
        machine = machine_description()
        print(f"speed ({machine}):")
        print("\n".join(speed_section(measure_speed(), machine)))
        return 0
    rows = build_rows()
    if ns.rows:
        rows = [r for r in rows if any(r.id == p or r.id.startswith(p + "-") for p in ns.rows)]
        # relative DMA rows need their 32 KiB reference
        if any(r.kind == "relative" for r in rows):
            _exp(_dma(128, 32768, "trn2"))
            if not any(r.exp == _dma(128, 32768, "trn2").key for r in rows):
                rows.append(next(r for r in build_rows() if r.id == "A36-32768"))
    t0 = time.time()
    res = evaluate(rows, overrides)
    ladders = ladder_report(res) if not ns.rows else []
    wall = time.time() - t0
    print()
    for rid, rec in res.items():
        r = rec["row"]
        if rec["pred"] is None:
            print(f"{rid:<10} {r.what[:60]:<60} {rec['status']}")
            continue
        err = f"{100 * rec['err']:+6.1f}%" if r.kind in ("latency", "relative") else f"{rec['err']:+6.1f}pt"
        print(f"{rid:<10} {r.what[:60]:<60} meas {_fmt(r.measured, r.unit):>9} {r.unit:<2} pred "
              f"{_fmt(rec['pred'], r.unit):>9}  {err}  {rec['status']}")
    for lad in ladders:
        steps = ", ".join(f"{s['from']}->{s['to']} {s['measured']:.2f}x/{s['pred']:.2f}x" for s in lad["steps"])
        print(f"ladder {lad['name']}: {steps}  {lad['status']}")
    print(f"\n{wall:.0f} s")
    speed = None
    if not ns.rows and not ns.no_speed:
        print("\nspeed:")
        speed = measure_speed()
    if not ns.no_write and not ns.rows:
        os.makedirs(ns.out, exist_ok=True)
        write_markdown(os.path.join(ns.out, "calibration.md"), res, ladders, overrides, wall, speed)
        write_plot(os.path.join(ns.out, "calibration.png"), res)
        print(f"wrote {os.path.join(ns.out, 'calibration.md')} and calibration.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
