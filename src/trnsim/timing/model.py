"""The timing pass: schedule an instruction stream on the engines and DMA rings of one or more cores.

Each engine (Tensor, Vector, Scalar, GpSimd, Sync) runs its instructions in program order. An instruction
starts when its engine is free, its inputs are produced (RAW) and earlier readers / writers of its outputs
are done (WAR / WAW), tracked on the (partition, byte) boxes actually touched. DMA transfers wait for their
dependencies, pay a fixed issue latency, then occupy as many of the core's DMA engines as their partitions
need, at the per-engine bandwidth scaled by the efficiency for their bytes per partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.instruction import Engine, Instruction
from .arch import Arch


@dataclass
class Timed:
    """Start / end of one instruction and what it waited on."""

    start: float
    end: float
    wait_on: int = -1  # index of the instruction whose completion released this one (-1: engine / none)
    wait_ns: float = 0.0
    queue: str = ""


@dataclass
class Estimate:
    """Result of the timing pass for one launch."""

    arch: Arch
    total_ns: float
    timings: list[Timed]
    engine_busy_ns: dict[str, float] = field(default_factory=dict)
    dma_bytes: int = 0
    hbm_bytes: int = 0
    flops: int = 0
    critical_path: list[int] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total_us(self) -> float:
        return self.total_ns / 1000.0

    def engine_utilisation(self) -> dict[str, float]:
        t = max(self.total_ns, 1e-9)
        return {k: v / t for k, v in self.engine_busy_ns.items()}

    @property
    def mfu(self) -> float:
        peak = self.arch.peak_bf16_flops_per_ns * max(1, self.extra.get("cores", 1))
        return self.flops / (peak * max(self.total_ns, 1e-9))

    @property
    def mbu(self) -> float:
        bw = self.arch.hbm_bytes_per_ns * max(1, self.extra.get("cores", 1))
        return self.hbm_bytes / (bw * max(self.total_ns, 1e-9))


class _RegionTracker:
    """Last writers and readers since, per storage, as boxes with completion times."""

    __slots__ = ("writes", "reads")

    def __init__(self) -> None:
        self.writes: dict[int, list[tuple[int, int, int, int, float, int]]] = {}
        self.reads: dict[int, list[tuple[int, int, int, int, float, int]]] = {}

    @staticmethod
    def _latest(entries, a) -> tuple[float, int]:
        best, who = 0.0, -1
        for p0, p1, f0, f1, end, idx in entries:
            if p0 < a.p_hi and a.p_lo < p1 and f0 < a.f_hi and a.f_lo < f1 and end > best:
                best, who = end, idx
        return best, who

    def ready(self, ins: Instruction) -> tuple[float, int]:
        best, who = 0.0, -1
        for a in ins.reads:
            e = self.writes.get(a.storage.id)
            if e:
                t, w = self._latest(e, a)
                if t > best:
                    best, who = t, w
        for a in ins.writes:
            sid = a.storage.id
            for table in (self.writes, self.reads):
                e = table.get(sid)
                if e:
                    t, w = self._latest(e, a)
                    if t > best:
                        best, who = t, w
        return best, who

    def record(self, ins: Instruction, end: float) -> None:
        idx = ins.idx
        for a in ins.reads:
            self.reads.setdefault(a.storage.id, []).append((a.p_lo, a.p_hi, a.f_lo, a.f_hi, end, idx))
        for a in ins.writes:
            sid = a.storage.id
            box = (a.p_lo, a.p_hi, a.f_lo, a.f_hi)
            for table in (self.writes, self.reads):
                lst = table.get(sid)
                if lst:
                    # Entries inside the new write's box are dominated: later accesses wait for this write.
                    table[sid] = [
                        x for x in lst if not (box[0] <= x[0] and x[1] <= box[1] and box[2] <= x[2] and x[3] <= box[3])
                    ]
            self.writes.setdefault(sid, []).append((*box, end, idx))


def schedule(stream: list[Instruction], arch: Arch) -> Estimate:
    """Run the timing pass over `stream` (instructions of any number of cores)."""
    from ..isa.dma import dma_engines_used

    engine_free: dict[tuple[int, str], float] = {}
    dma_free: dict[int, list[float]] = {}
    tracker = _RegionTracker()
    timings: list[Timed] = []
    busy: dict[str, float] = {}
    total = 0.0
    dma_bytes = 0
    hbm_bytes = 0
    flops = 0
    fixed = arch.dma_fixed_ns
    issue_ns = arch.extra.get("dma_issue_ns", 60.0)
    cores = set()
    for ins in stream:
        core = ins.core
        cores.add(core)
        dep_t, dep_i = tracker.ready(ins)
        cost = ins.spec.cost(ins, arch) if ins.spec is not None else 0.0
        if ins.engine == Engine.DMA:
            q = ins.attrs.get("queue", "q")
            qkey = (core, "DMA:" + q)
            issue = max(engine_free.get(qkey, 0.0), dep_t)
            engine_free[qkey] = issue + issue_ns
            rings = dma_free.setdefault(core, [0.0] * arch.dma_engines)
            n = dma_engines_used(ins.partitions, arch)
            order = sorted(range(len(rings)), key=rings.__getitem__)[:n]
            start = max(issue + fixed, max(rings[i] for i in order))
            end = start + cost
            for i in order:
                rings[i] = end
            nbytes = ins.attrs.get("bytes", 0)
            dma_bytes += nbytes
            if "hbm" in ins.attrs.get("direction", ""):
                hbm_bytes += nbytes
            busy["DMA"] = busy.get("DMA", 0.0) + cost * n / arch.dma_engines
            t = Timed(start, end, dep_i if dep_t >= issue else -1, max(0.0, dep_t - engine_free.get(qkey, 0.0)), q)
        else:
            key = (core, ins.engine)
            free = engine_free.get(key, 0.0)
            start = max(free, dep_t)
            end = start + cost
            engine_free[key] = end
            busy[ins.engine] = busy.get(ins.engine, 0.0) + cost
            flops += ins.flops if ins.engine == Engine.TENSOR else 0
            t = Timed(start, end, dep_i if dep_t > free else -1, max(0.0, dep_t - free))
        tracker.record(ins, end)
        timings.append(t)
        if end > total:
            total = end
    est = Estimate(arch, total, timings, busy, dma_bytes, hbm_bytes, flops)
    est.extra["cores"] = len(cores) or 1
    est.critical_path = _critical_path(timings, stream)
    return est


def _critical_path(timings: list[Timed], stream: list[Instruction]) -> list[int]:
    if not timings:
        return []
    i = max(range(len(timings)), key=lambda k: timings[k].end)
    path = [i]
    seen = {i}
    while True:
        w = timings[i].wait_on
        if w < 0 or w in seen:
            # fall back to the previous instruction on the same engine that ended when this one started
            prev = _engine_predecessor(i, timings, stream)
            if prev is None or prev in seen:
                break
            w = prev
        path.append(w)
        seen.add(w)
        i = w
        if len(path) > 100000:
            break
    return path[::-1]


def _engine_predecessor(i: int, timings: list[Timed], stream: list[Instruction]) -> int | None:
    eng = stream[i].engine
    start = timings[i].start
    for j in range(i - 1, max(-1, i - 512), -1):
        if stream[j].engine == eng and stream[j].core == stream[i].core and abs(timings[j].end - start) < 1e-6:
            return j
    return None


def estimate_launch(launch: Any) -> Estimate:
    """Timing pass over a recorded launch (see `trnsim.core.launch.Launch`)."""
    return schedule(launch.stream, launch.arch)
