"""Shared pieces of the speed benchmarks: repeated timing against a NumPy baseline, progress, machine info.

Every benchmark times the simulator and its NumPy baseline alternately in the same process (sim, numpy, sim,
numpy, ...), so that a change in machine load affects both sides alike, and reports the median of the repeats.
Wall time is the headline number (it is what a kernel author waits for); CPU time (process_time, all threads of
the process) is reported next to it because it is far less sensitive to other processes on a shared machine.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Sample:
    wall: float
    cpu: float


@dataclass
class Part:
    """One piece of the simulator's work timed on its own: a lower bound of the simulator's time."""

    label: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(s.wall for s in self.samples) if self.samples else float("nan")

    @property
    def cpu(self) -> float:
        return statistics.median(s.cpu for s in self.samples) if self.samples else float("nan")


@dataclass
class Result:
    """Timings of one benchmark: simulator and NumPy baseline samples, plus what was measured."""

    name: str
    what: str
    baseline: str
    target: str
    sim: list[Sample] = field(default_factory=list)
    base: list[Sample] = field(default_factory=list)
    instructions: int = 0
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False
    check: str = ""
    parts: list[Part] = field(default_factory=list)

    @staticmethod
    def _median(xs: list[Sample], attr: str) -> float:
        return statistics.median(getattr(s, attr) for s in xs) if xs else float("nan")

    @property
    def sim_wall(self) -> float:
        return self._median(self.sim, "wall")

    @property
    def sim_cpu(self) -> float:
        return self._median(self.sim, "cpu")

    @property
    def base_wall(self) -> float:
        return self._median(self.base, "wall")

    @property
    def base_cpu(self) -> float:
        return self._median(self.base, "cpu")

    def ratio(self, attr: str = "wall") -> float:
        s, b = self._median(self.sim, attr), self._median(self.base, attr)
        return s / b if b else float("nan")

    def per_instruction_overhead_us(self, attr: str = "wall") -> float:
        """(simulator - baseline) / instructions, in microseconds."""
        if not self.instructions:
            return float("nan")
        s, b = self._median(self.sim, attr), self._median(self.base, attr)
        return (s - b) / self.instructions * 1e6

    def summary_lines(self) -> list[str]:
        n = len(self.sim)
        lines = [
            f"{self.name}: {self.what}",
            f"  simulator: median of {n}: {self.sim_wall:.3f} s wall, {self.sim_cpu:.3f} s cpu"
            + (f" ({self.instructions} instructions)" if self.instructions else ""),
            f"  numpy baseline: median of {len(self.base)}: {self.base_wall:.3f} s wall, {self.base_cpu:.3f} s cpu",
            f"  ratio simulator / numpy: {self.ratio('wall'):.2f}x wall, {self.ratio('cpu'):.2f}x cpu",
        ]
        if self.instructions:
            lines.append(
                f"  overhead per instruction: {self.per_instruction_overhead_us('wall'):.1f} us wall, "
                f"{self.per_instruction_overhead_us('cpu'):.1f} us cpu"
            )
        for part in self.parts:
            lines.append(
                f"  alone: {part.label}: {part.wall:.3f} s wall, {part.cpu:.3f} s cpu "
                f"({part.wall / self.base_wall if self.base else float('nan'):.2f}x the baseline's wall time)"
            )
        if self.check:
            lines.append(f"  check: {self.check}")
        if self.interrupted:
            lines.append("  INTERRUPTED: partial results")
        return lines


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Heartbeat:
    """Prints 'label: N s' to stderr every `every` seconds while a long step runs (daemon thread)."""

    def __init__(self, label: str, every: float = 5.0) -> None:
        self.label = label
        self.every = every
        self._stop = threading.Event()
        self._t0 = 0.0
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            log(f"    ... {self.label}: {time.perf_counter() - self._t0:.0f} s")

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()


def timed(fn: Callable[[], Any]) -> tuple[Any, Sample]:
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, Sample(time.perf_counter() - t0, time.process_time() - c0)


def run_pairs(
    res: Result,
    sim: Callable[[], Any],
    base: Callable[[], Any],
    repeats: int,
    *,
    count_instructions: Callable[[], int] | None = None,
    check: Callable[[Any, Any], str] | None = None,
) -> Result:
    """Alternate simulator and baseline runs `repeats` times. Ctrl-C stops early and keeps what was measured."""
    got = ref = None
    try:
        for r in range(repeats):
            log(f"  {res.name}: repeat {r + 1}/{repeats}: simulating ...")
            with Heartbeat(f"{res.name} simulator, repeat {r + 1}"):
                got, s = timed(sim)
            res.sim.append(s)
            if count_instructions is not None and not res.instructions:
                res.instructions = count_instructions()
            log(f"  {res.name}: repeat {r + 1}/{repeats}: numpy baseline ...")
            with Heartbeat(f"{res.name} numpy baseline, repeat {r + 1}"):
                ref, b = timed(base)
            res.base.append(b)
            log(
                f"  {res.name}: repeat {r + 1}/{repeats}: simulator {s.wall:.3f} s wall / {s.cpu:.3f} s cpu, "
                f"numpy {b.wall:.3f} s wall / {b.cpu:.3f} s cpu"
            )
    except KeyboardInterrupt:
        res.interrupted = True
        log(f"  {res.name}: interrupted after {len(res.sim)} simulator and {len(res.base)} baseline runs")
    if check is not None and got is not None and ref is not None and not res.interrupted:
        res.check = check(got, ref)
    return res


def measure_parts(res: Result, parts: list[tuple[str, Callable[[], Any]]], repeats: int) -> Result:
    """Time pieces of the simulator's work on their own (median of `repeats`), to show what its time is made of and
    how far below the target those pieces alone already are. Ctrl-C keeps what was measured."""
    try:
        for label, fn in parts:
            part = Part(label)
            res.parts.append(part)
            for r in range(repeats):
                log(f"  {res.name}: alone, repeat {r + 1}/{repeats}: {label} ...")
                part.samples.append(timed(fn)[1])
    except KeyboardInterrupt:
        res.interrupted = True
    return res


def tile_matmul_replay(stream: list[Any]) -> tuple[int, Callable[[], None]]:
    """(number of products, function): the function does the Tensor-engine products of an instruction stream as
    plain NumPy float32 GEMMs, one per matmul instruction ([K, M].T @ [K, N]), on one BLAS thread as the simulator
    runs them: the floor of a simulation that computes every nc_matmul on its own. Operands are random (values do
    not change the time)."""
    import numpy as np

    from trnsim.core.memory import single_threaded_blas

    shapes = [
        (ins.attrs["K"], ins.attrs["M"], ins.attrs["N"])
        for ins in stream
        if ins.opcode == "MATMUL" and not ins.attrs.get("transpose")
    ]
    rng = np.random.default_rng(0)
    operands: dict[tuple[int, int, int], list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for k, m, n in set(shapes):
        # enough operand sets per shape (about 32 MiB) that the products do not all run out of a warm cache, as
        # in a real kernel, whose tiles stream through memory
        sets = max(1, min(64, (32 << 20) // (4 * (k * m + k * n + m * n))))
        operands[(k, m, n)] = [
            (
                rng.standard_normal((k, m), dtype=np.float32),
                rng.standard_normal((k, n), dtype=np.float32),
                np.empty((m, n), dtype=np.float32),
            )
            for _ in range(sets)
        ]
    order = [operands[kmn][i % len(operands[kmn])] for i, kmn in enumerate(shapes)]

    def replay() -> None:
        with single_threaded_blas():
            for a, b, out in order:
                np.matmul(a.T, b, out=out)

    return len(order), replay


def measure_front_end_and_products(res: Result, timing_only: Callable[[], Any], repeats: int) -> Result:
    """`measure_parts` with the two parts of a simulation that set its floor: the same launch without numerics
    (`timing_only`) and the last launch's Tensor-engine products as plain GEMMs (`tile_matmul_replay`)."""
    import trnsim

    if res.interrupted or trnsim.last_launch() is None:
        return res
    count, products = tile_matmul_replay(trnsim.last_launch().stream)
    parts: list[tuple[str, Callable[[], Any]]] = [
        ("the front end without numerics (the same launch in timing-only mode: kernel code, checks, records)",
         timing_only)
    ]
    if count:
        parts.append(
            (f"the kernel's {count} Tensor-engine products alone, as NumPy float32 GEMMs on one BLAS "
             "thread (as the simulator computes them)", products)
        )
    return measure_parts(res, parts, repeats)


def last_instruction_count() -> int:
    import trnsim

    launch = trnsim.last_launch()
    return len(launch.stream) if launch is not None else 0


def max_rel_error(got: Any, ref: Any) -> float:
    import numpy as np

    g = np.asarray(got, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    return float(np.abs(g - r).max() / max(np.abs(r).max(), 1e-30))


# ------------------------------------------------------------------------------------------------ machine
def machine_info() -> dict[str, str]:
    info = {
        "nproc": str(os.cpu_count() or "?"),
        "cpu": "?",
        "ram": "?",
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        info["nproc"] = str(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    info["ram"] = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                    break
    except OSError:
        pass
    try:
        import ml_dtypes
        import numpy as np

        info["numpy"] = np.__version__
        info["ml_dtypes"] = ml_dtypes.__version__
        cfg = np.show_config(mode="dicts") if "mode" in np.show_config.__code__.co_varnames else None
        blas = (cfg or {}).get("Build Dependencies", {}).get("blas", {})
        if blas:
            info["blas"] = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - informational only
        pass
    threads = {k: v for k, v in os.environ.items() if k.endswith("_NUM_THREADS")}
    info["blas threads env"] = ", ".join(f"{k}={v}" for k, v in sorted(threads.items())) or "(not set: BLAS default)"
    return info


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"
