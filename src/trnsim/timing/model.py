"""The timing pass: schedule an instruction stream on the engines and DMA queues of one or more cores.

Model (every number comes from the target's `Arch`, see timing/archs/*.json):

* Engines (Tensor, Vector, Scalar, GpSimd, Sync) of each core execute one instruction at a time, in the
  order the compiler's list scheduler gives them: program order, except that an instruction may move ahead
  of at most `reorder_window - 1` earlier instructions of its engine that are not ready yet.
* An instruction occupies its engine for its cost (the ISA module's cost rule); its result becomes visible
  `pipeline_latency_cycles[engine]` later. Dependencies are found on the (partition, byte) boxes actually
  touched: read-after-write waits for the producer's result, write-after-read for the reader's end,
  write-after-write for the earlier write (same-engine writes, e.g. PSUM accumulation, only keep order).
* Buffer rotation: on-chip tiles allocated at one source line share a ring of physical buffers (live
  instances x `buffer_rotation`, fewer when SBUF / PSUM would overflow); the first access of a tile waits until
  every use of the tile that previously held its buffer is done.
* DMA: each DMA statement gets a queue (per issuing engine, `dma_queues` of them, by source line; FIFO). A
  transfer is triggered by its issuer (`dma_issue_ns` each, serialised per issuer), starts moving data
  `dma_fixed_ns` after the trigger (and after the previous transfer of its queue), and is a flow in a fluid
  model: its rate is capped by its descriptors (the engines serving its partitions, `dma_partitions_per_engine`
  each, need max~(dma_descriptor_ns, descriptor bytes / engine bandwidth) per descriptor) and the flows in
  flight share the core's DMA data path (16 engines x bandwidth) max-min fairly; flows touching HBM also share
  their HBM domain (`hbm_bytes_per_ns` x `hbm_cores_per_domain`).
* SBUF overflow (timing-only runs; full simulation reports it as an error): whole tiles are saved to HBM and
  reloaded before their next use, farthest next use first (`plan_spills`).
* Cores run independently (SPMD programs / LNC=2 halves carry `Instruction.core`); latency is the makespan.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from typing import Any

from ..core.instruction import Access, Engine, Instruction
from .arch import Arch

RAW, WAR, WAW, ORD, BUF, BAR = 0, 1, 2, 3, 4, 5
KIND_NAMES = {RAW: "data", WAR: "reader", WAW: "write-order", ORD: "order", BUF: "buffer", BAR: "barrier", -1: "engine"}

COMPUTE_ENGINES = (Engine.TENSOR, Engine.VECTOR, Engine.SCALAR, Engine.GPSIMD, Engine.SYNC)


class Timed:
    """Start / end of one instruction and what it waited on.

    `start`/`end`: when the instruction occupies its engine (DMA: when data moves). `done`: when its result is
    visible to dependents. `wait_on`: index of the instruction whose completion released it (-1: it only
    waited for its engine / queue). `wait_ns`: how long it waited for that after its engine was free.
    `reason`: the kind of that dependency ("data", "reader", "buffer", ...). `issue`: DMA trigger time.
    """

    __slots__ = ("start", "end", "wait_on", "wait_ns", "queue", "done", "issue", "reason")

    def __init__(
        self,
        start: float,
        end: float,
        wait_on: int = -1,
        wait_ns: float = 0.0,
        queue: str = "",
        done: float | None = None,
        issue: float | None = None,
        reason: str = "",
    ) -> None:
        self.start = start
        self.end = end
        self.wait_on = wait_on
        self.wait_ns = wait_ns
        self.queue = queue
        self.done = end if done is None else done
        self.issue = start if issue is None else issue
        self.reason = reason

    @property
    def duration(self) -> float:
        return self.end - self.start

    def __repr__(self) -> str:
        q = f" {self.queue}" if self.queue else ""
        return f"Timed({self.start:.1f}..{self.end:.1f}{q} wait_on={self.wait_on})"


class Estimate:
    """Result of the timing pass for one launch.

    Stable fields: total_ns, timings[i] (start, end, wait_on, wait_ns, queue), engine_busy_ns, flops,
    hbm_bytes, dma_bytes, mfu, mbu, critical_path. Also: hfu, idle (per engine: idle time by reason),
    dma_active_ns, cores, and `extra` for anything else.
    """

    def __init__(
        self,
        arch: Arch,
        total_ns: float,
        timings: list[Timed],
        engine_busy_ns: dict[str, float] | None = None,
        dma_bytes: int = 0,
        hbm_bytes: int = 0,
        flops: int = 0,
        critical_path: list[int] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.arch = arch
        self.total_ns = total_ns
        self.timings = timings
        self.engine_busy_ns = engine_busy_ns or {}
        self.dma_bytes = dma_bytes
        self.hbm_bytes = hbm_bytes
        self.flops = flops
        self.critical_path = critical_path or []
        self.extra = extra or {}
        self.pe_flops = flops  # all PE-array flops incl. transposes (HFU)
        self.idle: dict[str, dict[tuple, float]] = {}
        self.dma_active_ns = 0.0
        self.cores = 1

    # ------------------------------------------------------------------ derived metrics
    @property
    def total_us(self) -> float:
        return self.total_ns / 1000.0

    @property
    def total_ms(self) -> float:
        return self.total_ns / 1e6

    def engine_utilisation(self) -> dict[str, float]:
        """Busy fraction per engine (averaged over the cores used; DMA: time with a transfer in flight)."""
        t = max(self.total_ns, 1e-9) * max(1, self.cores)
        return {k: v / t for k, v in self.engine_busy_ns.items()}

    @property
    def _peak(self) -> float:
        return self.arch.peak_bf16_flops_per_ns * max(1, self.cores) * max(self.total_ns, 1e-9)

    @property
    def mfu(self) -> float:
        """Model FLOPs utilisation: matmul flops / (bf16 peak x time x cores)."""
        return self.flops / self._peak

    @property
    def hfu(self) -> float:
        """Hardware FLOPs utilisation: every PE-array flop (transposes included) / (bf16 peak x time x cores)."""
        return self.pe_flops / self._peak

    @property
    def mbu(self) -> float:
        """Memory bandwidth utilisation: HBM bytes / (HBM bandwidth x time x cores)."""
        bw = self.arch.hbm_bytes_per_ns * max(1, self.cores)
        return self.hbm_bytes / (bw * max(self.total_ns, 1e-9))

    def idle_reasons(self, engine: str, top: int = 5) -> list[tuple[tuple, float]]:
        """Largest idle-time causes of `engine` (summed over cores): ((kind, producer, location), ns)."""
        d = self.idle.get(engine, {})
        return sorted(d.items(), key=lambda kv: -kv[1])[:top]

    def report(self, top: int = 5) -> str:
        """Text report: latency, per-engine table, top idle causes with source lines, critical path."""
        from .report import format_estimate

        return format_estimate(self, self.extra.get("launch"), top)

    def summary(self) -> str:
        util = self.engine_utilisation()
        parts = ", ".join(f"{k} {100 * v:.1f}%" for k, v in sorted(util.items()))
        return (
            f"{self.total_us:.3f} us on {self.arch.name} ({self.cores} core{'s' if self.cores > 1 else ''}); "
            f"MFU {100 * self.mfu:.1f}%, MBU {100 * self.mbu:.1f}%; busy: {parts}"
        )

    def __repr__(self) -> str:
        return f"<Estimate {self.summary()}>"


# ============================================================================================ helpers
def dma_descriptor_ns(arch: Arch, desc_bytes: float) -> float:
    """Time one DMA engine spends on one descriptor of `desc_bytes` (soft maximum of overhead and transfer)."""
    c = arch.dma_descriptor_ns
    x = desc_bytes / arch.dma_bytes_per_ns_per_engine
    if c <= 0:
        return x
    k = arch.dma_knee
    return (c**k + x**k) ** (1.0 / k)


def dma_efficiency(arch: Arch, desc_bytes: float) -> float:
    """Throughput of one engine on descriptors of `desc_bytes`, relative to its peak bandwidth."""
    if desc_bytes <= 0:
        return 1.0
    return (desc_bytes / arch.dma_bytes_per_ns_per_engine) / dma_descriptor_ns(arch, desc_bytes)


def _is_plain_dma(ins: Instruction) -> bool:
    """A data transfer costed by the DMA engine model (other DMA-queue records bring their own cost rule)."""
    from ..isa.dma import dma_cost

    spec = ins.spec
    return spec is None or spec.cost is dma_cost


def describe(ins: Instruction) -> str:
    """Short human description of what an instruction produces ("load of lhsT", "MATMUL -> res_psum")."""
    a = ins.attrs
    if a.get("spill"):
        return f"{a['spill']} of {a.get('src_name', '?')}"
    if ins.engine == Engine.DMA:
        direction = a.get("direction", "")
        dst = ins.writes[0].storage.name if ins.writes else "?"
        src = a.get("src_name") or (ins.reads[0].storage.name if ins.reads else "?")
        if direction.startswith("hbm") and not direction.endswith("hbm"):
            return f"load of {src}"
        if direction.endswith("hbm") and not direction.startswith("hbm"):
            return f"store to {dst}"
        return f"{ins.opcode} {src} -> {dst}"
    dst = ins.writes[0].storage.name if ins.writes else ""
    return f"{ins.opcode} -> {dst}" if dst else ins.opcode


def _issuer_of(queue: str) -> str:
    q = queue[1:] if queue.startswith("q") else queue
    for name in ("Sync", "Act", "Scalar", "Vector", "GpSimd", "Pool", "Tensor", "Collective"):
        if q.startswith(name):
            return name
    return "Sync"


# ============================================================================================ dependency pass
class _Graph:
    """Dependency graph over the stream plus virtual nodes (buffer releases)."""

    __slots__ = ("n", "deps", "children", "vdeps", "queue_of")

    def __init__(self, n: int) -> None:
        self.n = n
        self.deps: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        self.vdeps: list[list[tuple[int, int]]] = []  # virtual node deps (index n + k)
        self.children: list[list[tuple[int, int]]] = []
        self.queue_of: list[str] = [""] * n

    def add_virtual(self, deps: list[tuple[int, int]]) -> int:
        self.vdeps.append(deps)
        return self.n + len(self.vdeps) - 1


def _site_key(st) -> tuple:
    return (st.core, st.buffer.kind, st.loc, st.row_bytes)


def _rotation_plan(stream: list[Instruction], arch: Arch):
    """First/last stream position per on-chip storage and buffers per allocation site."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    stor: dict[int, Any] = {}
    written: set[int] = set()
    for pos, ins in enumerate(stream):
        for acc in ins.writes:
            written.add(acc.storage.id)
        for acc in ins.reads:
            st = acc.storage
            if st.buffer.kind == "hbm":
                continue
            sid = st.id
            if sid not in first:
                first[sid] = pos
                stor[sid] = st
            last[sid] = pos
        for acc in ins.writes:
            st = acc.storage
            if st.buffer.kind == "hbm":
                continue
            sid = st.id
            if sid not in first:
                first[sid] = pos
                stor[sid] = st
            last[sid] = pos
    sites: dict[tuple, list[int]] = {}
    for sid, st in stor.items():
        sites.setdefault(_site_key(st), []).append(sid)
    live_max: dict[tuple, int] = {}
    for key, sids in sites.items():
        if len(sids) == 1:
            live_max[key] = 1
            continue
        ev = []
        for sid in sids:
            ev.append((first[sid], 1))
            ev.append((last[sid] + 1, -1))
        ev.sort(key=lambda e: (e[0], e[1]))
        cur = best = 0
        for _, d in ev:
            cur += d
            best = max(best, cur)
        live_max[key] = max(best, 1)
    # Rotation depth per site: every site gets one buffer per live instance; then, while SBUF / PSUM has room,
    # sites whose buffers turn over most often (instances / live instances) get `buffer_rotation` sets.
    caps = {"sbuf": arch.sbuf_usable_bytes_per_partition, "psum": arch.psum_bytes_per_partition}
    rot: dict[tuple, int] = {}
    groups: dict[tuple, list[tuple]] = {}
    for key in sites:
        groups.setdefault((key[0], key[1]), []).append(key)
    rmax = max(1, int(arch.buffer_rotation))
    for (_core, kind), keys in groups.items():
        cap = caps.get(kind, 1 << 62)
        used = sum(live_max[k] * k[3] for k in keys)
        multi = [k for k in keys if len(sites[k]) > live_max[k]]
        multi.sort(key=lambda k: (-len(sites[k]) / live_max[k], live_max[k] * k[3], repr(k[2])))
        for r in range(2, rmax + 1):
            for k in multi:
                if rot.get(k, 1) == r - 1 and used + live_max[k] * k[3] <= cap:
                    rot[k] = r
                    used += live_max[k] * k[3]
    targets = {k: live_max[k] * rot.get(k, 1) for k in sites}
    return first, last, stor, targets, written


def _normalise_block_dims(ins: Instruction) -> None:
    """Instructions on a whole tile with leading block dimensions ([B, par_dim(P), F]) record partitions=B and
    free=P*F; the engines see P lanes of B*F elements: fix the record from the written box."""
    w = ins.writes[0]
    if not w.storage.buffer.on_chip or w.storage.nblocks <= 1:
        return
    bp = w.p_hi - w.p_lo
    p, f = ins.partitions, ins.free
    if 0 < p < bp and (p * f) % bp == 0:
        ins.free = p * f // bp
        ins.partitions = bp


def build_graph(stream: list[Instruction], arch: Arch, extra: dict[int, list[int]] | None = None) -> _Graph:
    """Dependencies of every instruction (positions in `stream`); `extra` adds buffer-kind edges pos -> deps."""
    n = len(stream)
    g = _Graph(n)
    first, last, stor, targets, written = _rotation_plan(stream, arch)
    # releases per stream position
    releases: dict[int, list[int]] = {}
    for sid, pos in last.items():
        releases.setdefault(pos, []).append(sid)
    accessors: dict[int, list[int]] = {}
    nslots: dict[tuple, int] = {}
    free: dict[tuple, deque] = {}
    release_node: dict[int, int] = {}
    writes: dict[int, list] = {}
    reads: dict[int, list] = {}
    qlines: dict[tuple, dict] = {}
    nq = max(1, int(arch.dma_queues))
    deps_all = g.deps
    for i, ins in enumerate(stream):
        eng = ins.engine
        deps: dict[int, int] = {}
        if eng != Engine.DMA and ins.writes:
            _normalise_block_dims(ins)
        # ---- buffer rotation: the first access of an on-chip tile takes a buffer of its site's ring
        for acc in (*ins.reads, *ins.writes):
            st = acc.storage
            if st.buffer.kind == "hbm":
                continue
            sid = st.id
            lst = accessors.get(sid)
            if lst is None:
                accessors[sid] = lst = []
                key = _site_key(st)
                tgt = targets.get(key, 1)
                have = nslots.get(key, 0)
                fq = free.get(key)
                if have >= tgt and fq:
                    prev = fq.popleft()
                    v = release_node.get(prev)
                    if v is None:
                        v = g.add_virtual([(j, WAR) for j in accessors.get(prev, ())])
                        release_node[prev] = v
                    deps[v] = BUF
                else:
                    nslots[key] = have + 1
            if not lst or lst[-1] != i:
                lst.append(i)
        # ---- data dependencies on the boxes touched
        for acc in ins.reads:
            if acc.storage.id not in written:
                continue  # read-only data (kernel inputs): no dependencies
            wl = writes.get(acc.storage.id)
            if wl:
                p0, p1, f0, f1 = acc.p_lo, acc.p_hi, acc.f_lo, acc.f_hi
                for e in wl:
                    if e[0] < p1 and p0 < e[1] and e[2] < f1 and f0 < e[3]:
                        deps[e[4]] = RAW
        for acc in ins.writes:
            sid = acc.storage.id
            p0, p1, f0, f1 = acc.p_lo, acc.p_hi, acc.f_lo, acc.f_hi
            wl = writes.get(sid)
            if wl:
                for e in wl:
                    if e[0] < p1 and p0 < e[1] and e[2] < f1 and f0 < e[3]:
                        j = e[4]
                        if j not in deps or deps[j] > WAW:
                            deps[j] = ORD if e[5] == eng else WAW
            rl = reads.get(sid)
            if rl:
                for e in rl:
                    j = e[4]
                    if j != i and e[0] < p1 and p0 < e[1] and e[2] < f1 and f0 < e[3] and j not in deps:
                        deps[j] = WAR
        # ---- record this instruction's accesses
        for acc in ins.reads:
            sid = acc.storage.id
            if sid in written:
                reads.setdefault(sid, []).append((acc.p_lo, acc.p_hi, acc.f_lo, acc.f_hi, i))
        for acc in ins.writes:
            sid = acc.storage.id
            box = (acc.p_lo, acc.p_hi, acc.f_lo, acc.f_hi)
            for table in (writes, reads):
                lst = table.get(sid)
                if lst:
                    table[sid] = [
                        x for x in lst if not (box[0] <= x[0] and x[1] <= box[1] and box[2] <= x[2] and x[3] <= box[3])
                    ]
            writes.setdefault(sid, []).append((*box, i, eng))
        # ---- DMA queue of this statement
        if eng == Engine.DMA:
            base = ins.attrs.get("queue") or "qSyncIO"
            lines = qlines.setdefault((ins.core, base), {})
            k = lines.get(ins.loc)
            if k is None:
                k = lines[ins.loc] = len(lines) % nq
            g.queue_of[i] = f"{base}{k}"
        if extra is not None:
            for j in extra.get(i, ()):
                deps.setdefault(j, BUF)
        if deps:
            deps_all[i] = list(deps.items())
        # ---- buffers released after this position
        rel = releases.get(i)
        if rel:
            for sid in rel:
                free.setdefault(_site_key(stor[sid]), deque()).append(sid)
    # children lists
    total = n + len(g.vdeps)
    children: list[list[tuple[int, int]]] = [[] for _ in range(total)]
    for i in range(n):
        for j, kind in deps_all[i]:
            children[j].append((i, kind))
    for k, dl in enumerate(g.vdeps):
        v = n + k
        for j, kind in dl:
            children[j].append((v, kind))
    g.children = children
    return g


# ============================================================================================ spills
def _full_access(st) -> Access:
    a = Access.__new__(Access)
    a.storage = st
    a.p_lo, a.p_hi = 0, st.shape[0] if st.shape else 1
    a.f_lo, a.f_hi = 0, st.row_bytes
    a.nbytes = a.p_hi * st.row_bytes
    a.shape = tuple(st.shape)
    a.dtype = st.dtype
    a.accumulate = False
    a.tensor = None
    return a


def _spill_instruction(kind: str, st, loc, amount: int) -> Instruction:
    """A compiler-inserted DMA that saves (`kind` "spill") or reloads `amount` bytes per partition of `st`."""
    from ..isa.dma import DMA_COPY

    acc = _full_access(st)
    save = kind == "spill"
    parts = acc.p_hi
    ins = Instruction(
        Engine.DMA,
        "DMA_SPILL" if save else "DMA_RELOAD",
        [acc] if save else [],
        [] if save else [acc],
        loc if loc is not None else st.loc,
        spec=DMA_COPY,
        partitions=parts,
        free=amount // max(1, st.dtype.itemsize),
        in_dtype=st.dtype,
        out_dtype=st.dtype,
        attrs={
            "bytes": parts * amount,
            "queue": "qSyncSpillReload",
            "direction": "sbuf->hbm" if save else "hbm->sbuf",
            "desc_bytes": amount,
            "spill": kind,
            "src_name": st.name,
        },
    )
    ins.core = st.core
    return ins


def plan_spills(stream: list[Instruction], arch: Arch):
    """What the compiler does when SBUF overflows (timing-only runs of kernels whose live tiles exceed it): in
    program order, whenever the live tiles of a core exceed SBUF, the tile whose next use is farthest away is
    saved to HBM and reloaded before that use. Returns (extended stream, positions of the original
    instructions, extra dependencies) or None when everything fits."""
    cap = arch.sbuf_usable_bytes_per_partition
    uses: dict[int, list[int]] = {}
    stor: dict[int, Any] = {}
    at: list[list[int]] = [[] for _ in stream]
    for pos, ins in enumerate(stream):
        seen = at[pos]
        for acc in ins.reads + ins.writes:
            st = acc.storage
            if st.buffer.kind != "sbuf":
                continue
            sid = st.id
            if sid in seen:
                continue
            seen.append(sid)
            stor[sid] = st
            uses.setdefault(sid, []).append(pos)
    # quick check: does the program-order peak exceed the capacity on some core?
    delta: dict[int, dict[int, int]] = {}
    for sid, ps in uses.items():
        st = stor[sid]
        d = delta.setdefault(st.core, {})
        d[ps[0]] = d.get(ps[0], 0) + st.row_bytes
        d[ps[-1] + 1] = d.get(ps[-1] + 1, 0) - st.row_bytes
    over = False
    for d in delta.values():
        u = 0
        for k in sorted(d):
            u += d[k]
            if u > cap:
                over = True
                break
    if not over:
        return None
    live: dict[int, set[int]] = {}
    used: dict[int, int] = {}
    nxt: dict[int, int] = {}
    out_amt: dict[int, int] = {}  # bytes per partition of a tile currently held in HBM
    started: set[int] = set()
    saves_at: dict[int, list[tuple[int, int]]] = {}
    reloads_at: dict[int, list[tuple[int, int]]] = {}
    whole = bool(arch.spill_whole_tiles)
    for pos in range(len(stream)):
        here = at[pos]
        if not here:
            continue
        core = stream[pos].core
        lv = live.setdefault(core, set())
        for sid in here:
            nxt[sid] = nxt.get(sid, -1) + 1
            if sid not in started:
                started.add(sid)
                lv.add(sid)
                used[core] = used.get(core, 0) + stor[sid].row_bytes
            elif out_amt.get(sid):
                amt = out_amt.pop(sid)
                used[core] = used.get(core, 0) + amt
                reloads_at.setdefault(pos, []).append((sid, amt))
        while used.get(core, 0) > cap:
            best, best_next = -1, -1
            for sid in lv:
                if sid in here or out_amt.get(sid, 0) >= stor[sid].row_bytes:
                    continue
                ps = uses[sid]
                k = nxt[sid] + 1
                if k >= len(ps):
                    continue
                if ps[k] > best_next:
                    best, best_next = sid, ps[k]
            if best < 0:
                break
            resident = stor[best].row_bytes - out_amt.get(best, 0)
            amt = resident if whole else min(resident, used[core] - cap)
            out_amt[best] = out_amt.get(best, 0) + amt
            used[core] -= amt
            saves_at.setdefault(pos, []).append((best, amt))
        for sid in here:
            if uses[sid][-1] == pos and sid in lv:
                lv.discard(sid)
                used[core] -= stor[sid].row_bytes - out_amt.pop(sid, 0)
    if not saves_at:
        return None
    ext: list[Instruction] = []
    orig_pos: list[int] = []
    extra: dict[int, list[int]] = {}
    for pos, ins in enumerate(stream):
        sv = []
        for sid, amt in saves_at.get(pos, ()):
            sv.append(len(ext))
            ext.append(_spill_instruction("spill", stor[sid], ins.loc, amt))
        for sid, amt in reloads_at.get(pos, ()):
            if sv:
                extra[len(ext)] = list(sv)
            ext.append(_spill_instruction("reload", stor[sid], ins.loc, amt))
        if sv:
            extra[len(ext)] = list(sv)
        orig_pos.append(len(ext))
        ext.append(ins)
    return ext, orig_pos, extra


# ============================================================================================ scheduler
class _Resource:
    __slots__ = ("key", "order", "head", "free_t", "window", "version", "last", "blocked", "first_start", "last_end")

    def __init__(self, key: tuple, window: int) -> None:
        self.key = key
        self.order: list[int] = []
        self.head = 0
        self.free_t = 0.0
        self.window = window
        self.version = 0
        self.last = -1
        self.blocked = False
        self.first_start = -1.0
        self.last_end = 0.0


def schedule(stream: list[Instruction], arch: Arch) -> Estimate:
    """Run the timing pass over `stream` (instructions of any number of cores)."""
    plan = plan_spills(stream, arch)
    if plan is None:
        return _schedule(stream, arch, None)
    ext, orig_pos, extra = plan
    est = _schedule(ext, arch, extra)
    to_orig = {p: k for k, p in enumerate(orig_pos)}
    spills = []
    tl = est.timings
    in_orig = set(orig_pos)
    for p, ins in enumerate(ext):
        if p not in in_orig:
            t = tl[p]
            spills.append(
                {"kind": ins.attrs["spill"], "tensor": ins.attrs["src_name"], "bytes": ins.attrs["bytes"],
                 "start": t.start, "end": t.end, "queue": t.queue}
            )
    timings = []
    for p in orig_pos:
        t = tl[p]
        if t.wait_on >= 0:
            w = to_orig.get(t.wait_on)
            if w is None:
                t.wait_on, t.reason = -1, "spill"
            else:
                t.wait_on = w
        timings.append(t)
    est.timings = timings
    est.critical_path = [to_orig[p] for p in est.critical_path if p in to_orig]
    est.extra["spills"] = spills
    est.extra["spill_save_bytes"] = sum(x["bytes"] for x in spills if x["kind"] == "spill")
    est.extra["spill_reload_bytes"] = sum(x["bytes"] for x in spills if x["kind"] == "reload")
    return est


class _Flow:
    """One DMA transfer's data phase in the fluid model of the DMA data path."""

    __slots__ = ("i", "core", "dom", "rem", "cap", "h", "rate", "t0", "start", "version", "cost", "proj")

    def __init__(self, i: int, core: int, dom: int, nbytes: float, cap: float, h: float, cost: float) -> None:
        self.i = i
        self.core = core
        self.dom = dom
        self.rem = float(nbytes)
        self.cap = cap
        self.h = h
        self.rate = 0.0
        self.t0 = 0.0
        self.start = 0.0
        self.version = 0
        self.cost = cost  # > 0: fixed-duration record (collectives etc.), not sharing bandwidth
        self.proj = -1.0  # projected completion time of the pending completion event


def _waterfill(flows: list[_Flow], pipe_cap: float, hbm_cap: float) -> None:
    """Max-min fair rates (bytes/ns): the flows of a core share its DMA data path, each capped by its own
    descriptor-limited rate; if the HBM domain (shared by its cores) is then oversubscribed, the flows that
    touch HBM slow down in proportion."""
    by_core: dict[int, list[_Flow]] = {}
    for f in flows:
        if f.cost <= 0:
            by_core.setdefault(f.core, []).append(f)
        else:
            f.rate = 0.0
    hbm_used = 0.0
    for fl in by_core.values():
        if len(fl) == 1:
            f = fl[0]
            f.rate = f.cap if f.cap < pipe_cap else pipe_cap
        else:
            fl.sort(key=lambda f: f.cap)
            left = pipe_cap
            k = len(fl)
            for f in fl:
                share = left / k
                r = f.cap if f.cap < share else share
                f.rate = r
                left -= r
                k -= 1
        for f in fl:
            hbm_used += f.rate * f.h
    if hbm_used > hbm_cap > 0:
        scale = hbm_cap / hbm_used
        for fl in by_core.values():
            for f in fl:
                if f.h > 0:
                    f.rate *= scale


def _schedule(stream: list[Instruction], arch: Arch, extra: dict[int, list[int]] | None) -> Estimate:
    from ..isa.tensor_engine import loadstationary_ns

    n = len(stream)
    g = build_graph(stream, arch, extra)
    nv = len(g.vdeps)
    total_nodes = n + nv
    deps_all = g.deps
    children = g.children
    pending = [len(deps_all[i]) for i in range(n)] + [len(d) for d in g.vdeps]
    ready = [0.0] * total_nodes
    bind = [-1] * total_nodes
    bind_kind = [-1] * total_nodes
    end = [0.0] * total_nodes
    done = [0.0] * total_nodes
    issue_t = [0.0] * n
    scheduled = [False] * total_nodes
    res_of: list[_Resource] = [None] * n  # type: ignore[list-item]
    crit = [-1] * n  # the node whose completion (or occupancy) fixed each instruction's start

    # ---- resources: one per (core, engine) and per (core, DMA queue)
    resources: dict[tuple, _Resource] = {}
    win = max(1, int(arch.reorder_window))
    cores = set()
    for i, ins in enumerate(stream):
        cores.add(ins.core)
        key = (ins.core, "DMA", g.queue_of[i]) if ins.engine == Engine.DMA else (ins.core, ins.engine)
        r = resources.get(key)
        if r is None:
            r = resources[key] = _Resource(key, win)
        r.order.append(i)
        res_of[i] = r

    latency = {e: arch.latency_ns(e) for e in COMPUTE_ENGINES}
    sem = arch.semaphore_ns
    ppe = max(1, arch.dma_partitions_per_engine)
    neng = max(1, arch.dma_engines)
    bw_eng = arch.dma_bytes_per_ns_per_engine
    pipe_cap = bw_eng * neng
    fixed = arch.dma_fixed_ns
    issue_ns = arch.dma_issue_ns
    hbm_dom = max(1, arch.hbm_cores_per_domain)
    hbm_cap = arch.hbm_bytes_per_ns * hbm_dom
    n_issuers = max(1, int(arch.dma_issuers))
    issuer_free: dict[tuple, float] = {}
    issuer_last: dict[tuple, int] = {}
    qwait: dict[tuple, deque] = {}  # per DMA queue: issued transfers waiting for their turn
    qbusy: dict[tuple, bool] = {}
    qlast: dict[tuple, int] = {}
    flows_by_dom: dict[int, list[_Flow]] = {}
    flow_of: dict[int, _Flow] = {}
    last_stationary: dict[int, Any] = {}
    barrier_groups: dict[tuple, list[int]] = {}
    barrier_count: dict[tuple, int] = {}
    barrier_of: dict[int, tuple] = {}
    for i, ins in enumerate(stream):
        if ins.opcode == "CORE_BARRIER":
            cores_l = tuple(sorted(ins.attrs.get("cores") or ()))
            kk = (ins.core, cores_l)
            c = barrier_count.get(kk, 0)
            barrier_count[kk] = c + 1
            gk = (cores_l, c)
            barrier_groups.setdefault(gk, []).append(i)
            barrier_of[i] = gk
    barrier_arrived: dict[tuple, list[tuple[int, float]]] = {}

    busy: dict[str, float] = {}
    idle: dict[str, dict[tuple, float]] = {}
    dma_intervals: dict[int, list[tuple[float, float]]] = {}
    dma_bytes = hbm_bytes = 0
    flops = pe_flops = 0
    timings: list[Timed] = [None] * n  # type: ignore[list-item]

    # heap items: (time, priority, tie, a, b); priority 0 = DMA completion, 1 = DMA data start, 2 = instruction
    heap: list[tuple] = []
    flow_done: set[int] = set()
    seq = [0]
    dirty: dict = {}

    def push_event(t: float, prio: int, a: Any, b: Any) -> None:
        seq[0] += 1
        heapq.heappush(heap, (t, prio, seq[0], a, b))

    def candidate(r: _Resource) -> None:
        """Push the resource's best next instruction (earliest possible start, then program order)."""
        r.version += 1
        if r.blocked:
            return
        order = r.order
        h = r.head
        lim = min(len(order), h + r.window)
        best_t = math.inf
        best_i = -1
        ft = r.free_t
        for p in range(h, lim):
            i = order[p]
            if scheduled[i] or pending[i]:
                continue
            t = ready[i] if ready[i] > ft else ft
            if t < best_t:
                best_t, best_i = t, i
        if best_i >= 0:
            heapq.heappush(heap, (best_t, 2, best_i, r.version, r.key))

    eng_of = [ins.engine for ins in stream]
    key_of = [r.key for r in res_of]

    def finish_node(p: int) -> None:
        """Propagate a finished node's times to its children (virtual nodes are resolved at once).
        Read-after-write and write-after-write wait for the producer's result (`done`), the other kinds for
        its end (reader finished, same-engine order, buffer released)."""
        stack = [p]
        while stack:
            q = stack.pop()
            t_done = done[q]
            t_end = end[q]
            eq = eng_of[q] if q < n else ""
            for c, kind in children[q]:
                if kind == RAW or kind == WAW:
                    t = t_done
                    if sem and c < n and eng_of[c] != eq:
                        t += sem
                else:
                    t = t_end
                if t >= ready[c] or bind[c] < 0:
                    if t > ready[c]:
                        ready[c] = t
                    bind[c] = q
                    bind_kind[c] = kind
                pending[c] -= 1
                if pending[c] == 0:
                    if c >= n:
                        scheduled[c] = True
                        end[c] = done[c] = ready[c]
                        stack.append(c)
                    else:
                        dirty[key_of[c]] = None

    for v in range(n, total_nodes):
        if pending[v] == 0:
            scheduled[v] = True
            finish_node(v)
    for r in resources.values():
        candidate(r)
    dirty.clear()

    def record_idle(r: _Resource, i: int, st: float) -> None:
        if r.key[1] == "DMA":
            return
        gap = st - r.free_t
        if gap <= 1e-9:
            return
        eng = r.key[1]
        b = bind[i]
        if b >= 0 and ready[i] > r.free_t + 1e-9:
            kind = bind_kind[i]
            pb = b
            if pb >= n:  # buffer release: name the last use that held the buffer
                pb2 = bind[pb]
                pb = pb2 if 0 <= pb2 < n else -1
            if pb >= 0:
                pins = stream[pb]
                who = "DMA " + (g.queue_of[pb] or "") if pins.engine == Engine.DMA else pins.engine
                key = (KIND_NAMES.get(kind, "dep"), who, describe(pins), pins.loc)
            else:
                key = (KIND_NAMES.get(kind, "dep"), "?", "", None)
        else:
            key = ("start" if r.last < 0 else "issue", "", "", None)
        d = idle.setdefault(eng, {})
        d[key] = d.get(key, 0.0) + gap

    # ------------------------------------------------------------------ DMA subsystem
    def dma_flow(i: int, ins: Instruction) -> _Flow:
        """Bytes and rate cap of a transfer: the engines serving its SBUF-side partitions each handle their
        partitions' descriptors at max~(dma_descriptor_ns, descriptor bytes / engine bandwidth)."""
        core = ins.core
        attrs = ins.attrs
        dom = core // hbm_dom
        if not _is_plain_dma(ins):
            cost = ins.spec.cost(ins, arch) if ins.spec is not None else 0.0
            return _Flow(i, core, dom, 0.0, math.inf, 0.0, max(cost, 1e-9))
        nbytes = float(attrs.get("bytes", 0) or (ins.writes[0].nbytes if ins.writes else 0))
        sb = None
        for a in ins.writes:
            if a.storage.buffer.on_chip:
                sb = a
                break
        if sb is None:
            for a in ins.reads:
                if a.storage.buffer.on_chip:
                    sb = a
                    break
        parts = max(1, ins.partitions or 1)
        if sb is not None:
            p_lo = sb.p_lo % 128
            p_hi = min(p_lo + max(1, sb.p_hi - sb.p_lo), 128)
        else:
            p_lo, p_hi = 0, min(parts, 128)
        n_used = max(1, min(neng, (p_hi - 1) // ppe + 1) - p_lo // ppe)
        parts_eng = min(ppe, max(1, math.ceil(parts / n_used)))
        bpp = nbytes / parts
        desc = float(attrs.get("desc_bytes") or bpp)
        desc = min(desc, bpp) if bpp > 0 else desc
        ndesc_pp = max(1, math.ceil(bpp / desc)) if desc > 0 else 1
        floor = parts_eng * ndesc_pp * dma_descriptor_ns(arch, desc)
        if attrs.get("transpose"):
            floor /= max(arch.dma_transpose_efficiency, 1e-3)
        cap = nbytes / floor if floor > 0 else math.inf
        direction = attrs.get("direction", "")
        h = float(direction.count("hbm")) if "hbm" in direction else 0.0
        return _Flow(i, core, dom, nbytes, cap, h, 0.0)

    def reflow(dom: int, t: float) -> None:
        """Advance the domain's transfers to time t, recompute fair rates, reschedule their completions."""
        fl = flows_by_dom.get(dom)
        if not fl:
            return
        for f in fl:
            if f.cost <= 0:
                f.rem -= f.rate * (t - f.t0)
                if f.rem < 0:
                    f.rem = 0.0
            f.t0 = t
        _waterfill(fl, pipe_cap, hbm_cap)
        for f in fl:
            if f.cost > 0:
                continue
            te = t + (f.rem / f.rate if f.rate > 0 else (0.0 if f.rem <= 0 else math.inf))
            if abs(te - f.proj) <= 1e-9 * max(1.0, te):
                continue  # rate unchanged: the pending completion event still holds
            f.version += 1
            f.proj = te
            if te < math.inf:
                push_event(te, 0, f, f.version)

    def start_flow(i: int, t: float) -> None:
        f = flow_of[i]
        f.start = t
        f.t0 = t
        fl = flows_by_dom.setdefault(f.dom, [])
        fl.append(f)
        if f.cost > 0:
            push_event(t + f.cost, 0, f, f.version)
        else:
            reflow(f.dom, t)

    def issue_dma(i: int, ins: Instruction, r: _Resource, t0: float) -> None:
        core = ins.core
        q = g.queue_of[i]
        qidx = q[-1] if q and q[-1].isdigit() else "0"
        ikey = (core, _issuer_of(q), int(qidx) % n_issuers)
        ifree = issuer_free.get(ikey, 0.0)
        crit[i] = bind[i] if ready[i] >= ifree else issuer_last.get(ikey, -1)
        t_issue = max(t0, ifree)
        issuer_free[ikey] = t_issue + issue_ns
        issuer_last[ikey] = i
        issue_t[i] = t_issue
        flow_of[i] = dma_flow(i, ins)
        qk = (core, q)
        earliest = t_issue + max(fixed, issue_ns)
        if qbusy.get(qk):
            qwait.setdefault(qk, deque()).append(i)
        else:
            qbusy[qk] = True
            qlast[qk] = i
            push_event(earliest, 1, i, 0)

    def complete_flow(f: _Flow, t: float) -> None:
        i = f.i
        fl = flows_by_dom[f.dom]
        fl.remove(f)
        if f.cost <= 0:
            reflow(f.dom, t)
        ins = stream[i]
        st = f.start
        timings[i] = Timed(st, t, timings[i].wait_on, timings[i].wait_ns, g.queue_of[i], t, issue_t[i],
                           timings[i].reason)
        end[i] = done[i] = t
        dma_intervals.setdefault(ins.core, []).append((st, t))
        qk = (ins.core, g.queue_of[i])
        w = qwait.get(qk)
        if w:
            j = w.popleft()
            qlast[qk] = j
            crit[j] = i if t > issue_t[j] + max(fixed, issue_ns) else crit[j]
            push_event(max(t, issue_t[j] + max(fixed, issue_ns)), 1, j, 0)
        else:
            qbusy[qk] = False
        finish_node(i)

    # ------------------------------------------------------------------ main loop
    while heap or dirty:
        if dirty:
            keys = list(dirty)
            dirty.clear()
            for key in keys:
                candidate(resources[key])
            continue
        item = heapq.heappop(heap)
        t, prio = item[0], item[1]
        if prio == 0:
            f, ver = item[3], item[4]
            if ver != f.version or f.i in flow_done:
                continue
            flow_done.add(f.i)
            complete_flow(f, t)
            continue
        if prio == 1:
            start_flow(item[3], t)
            continue
        i, ver, key = item[2], item[3], item[4]
        r = resources[key]
        if ver != r.version or scheduled[i] or r.blocked:
            continue
        ins = stream[i]
        eng = ins.engine
        st0 = ready[i] if ready[i] > r.free_t else r.free_t
        waited = ready[i] > r.free_t + 1e-9 and bind[i] >= 0
        w_on = bind[i] if waited else -1
        if w_on >= n:
            w2 = bind[w_on]
            w_on = w2 if 0 <= w2 < n else -1
        reason = KIND_NAMES.get(bind_kind[i], "") if waited else ""
        wait_ns = max(0.0, ready[i] - r.free_t) if waited else 0.0
        if eng == Engine.DMA:
            scheduled[i] = True
            timings[i] = Timed(st0, st0, w_on, wait_ns, g.queue_of[i], st0, st0, reason)
            issue_dma(i, ins, r, st0)
            nbytes = int(ins.attrs.get("bytes", 0) or 0)
            dma_bytes += nbytes
            direction = ins.attrs.get("direction", "")
            if "hbm" in direction:
                hbm_bytes += nbytes
            r.free_t = issue_t[i]
            r.last = i
            while r.head < len(r.order) and scheduled[r.order[r.head]]:
                r.head += 1
            dirty[key] = None
            continue
        cost = ins.spec.cost(ins, arch) if ins.spec is not None else 0.0
        if eng == Engine.TENSOR and ins.attrs.get("M") is not None:
            sa = ins.reads[0] if ins.reads else None
            sid = (sa.storage.id, sa.p_lo, sa.p_hi, sa.f_lo, sa.f_hi) if sa is not None else None
            if sid is None or sid != last_stationary.get(ins.core):
                ls = loadstationary_ns(ins, arch)
                if ls > cost:
                    cost = ls
            last_stationary[ins.core] = sid
            pe_flops += ins.flops
            if not ins.attrs.get("transpose"):
                flops += ins.flops
        st = st0
        record_idle(r, i, st)
        if i in barrier_of:
            gk = barrier_of[i]
            arr = barrier_arrived.setdefault(gk, [])
            arr.append((i, st))
            scheduled[i] = True
            r.blocked = True
            r.version += 1
            if len(arr) < len(barrier_groups[gk]):
                continue
            t_all = max(a[1] for a in arr)
            for j, sj in arr:
                rj = res_of[j]
                cj = stream[j].spec.cost(stream[j], arch) if stream[j].spec is not None else 0.0
                end[j] = done[j] = t_all + cj
                timings[j] = Timed(sj, end[j], -1, t_all - sj, "", reason="barrier")
                busy[stream[j].engine] = busy.get(stream[j].engine, 0.0) + (end[j] - sj)
                rj.blocked = False
                rj.free_t = end[j]
                rj.last_end = max(rj.last_end, end[j])
                crit[j] = rj.last
                rj.last = j
                while rj.head < len(rj.order) and scheduled[rj.order[rj.head]]:
                    rj.head += 1
                finish_node(j)
                dirty[rj.key] = None
            continue
        en = st + cost
        dn = en + latency.get(eng, 0.0)
        busy[eng] = busy.get(eng, 0.0) + cost
        crit[i] = bind[i] if waited else r.last
        timings[i] = Timed(st, en, w_on, wait_ns, "", dn, st, reason)
        end[i] = en
        done[i] = dn
        scheduled[i] = True
        r.free_t = en
        r.last_end = max(r.last_end, en)
        r.last = i
        while r.head < len(r.order) and scheduled[r.order[r.head]]:
            r.head += 1
        finish_node(i)
        dirty[key] = None

    # anything left (a barrier whose partners never arrived, a dependency cycle): finish in program order
    for i in range(n):
        if timings[i] is None or (stream[i].engine == Engine.DMA and i not in flow_done):
            r = res_of[i]
            st = max(ready[i], r.free_t)
            cost = stream[i].spec.cost(stream[i], arch) if stream[i].spec is not None else 0.0
            timings[i] = Timed(st, st + cost, -1, 0.0, g.queue_of[i])
            end[i] = done[i] = st + cost
            r.free_t = st + cost
            r.last_end = max(r.last_end, st + cost)

    total = (max((t.done for t in timings), default=0.0) + arch.launch_overhead_ns) if n else 0.0
    # tail idle: engines that finished early wait for the kernel's end
    for r in resources.values():
        if r.key[1] == "DMA" or not r.order:
            continue
        gap = total - r.last_end
        if gap > 1e-9:
            d = idle.setdefault(r.key[1], {})
            d[("end", "", "", None)] = d.get(("end", "", "", None), 0.0) + gap
    dma_active = 0.0
    for ivs in dma_intervals.values():
        ivs.sort()
        cs, ce = -1.0, -1.0
        for s0, e0 in ivs:
            if s0 > ce:
                if ce > cs:
                    dma_active += ce - cs
                cs, ce = s0, e0
            elif e0 > ce:
                ce = e0
        if ce > cs:
            dma_active += ce - cs
    if dma_intervals:
        busy["DMA"] = dma_active
    est = Estimate(arch, total, timings, busy, dma_bytes, hbm_bytes, flops)
    est.pe_flops = pe_flops
    est.cores = len(cores) or 1
    est.idle = idle
    est.dma_active_ns = dma_active
    est.extra["cores"] = est.cores
    est.extra["dma_queues"] = sorted({q for q in g.queue_of if q})
    est.critical_path = _critical_path(timings, crit, n, bind)
    return est


def _critical_path(timings: list[Timed], crit: list[int], n: int, bind: list[int]) -> list[int]:
    """Instructions whose chain of binding constraints (dependency, engine, queue or issuer) ends last."""
    if not timings:
        return []
    i = max(range(len(timings)), key=lambda k: (timings[k].done, k))
    path = [i]
    seen = {i}
    while len(path) < 10_000_000:
        w = crit[i]
        hops = 0
        while w >= n and hops < 8:  # buffer-release node: the use that released the buffer last
            w = bind[w]
            hops += 1
        if w < 0 or w >= n or w in seen:
            break
        path.append(w)
        seen.add(w)
        i = w
    return path[::-1]


def estimate_launch(launch: Any) -> Estimate:
    """Timing pass over a recorded launch (see `trnsim.core.launch.Launch`); cached on the launch."""
    cached = getattr(launch, "_trnsim_estimate", None)
    if cached is not None and cached.arch is launch.arch and len(cached.timings) == len(launch.stream):
        return cached
    est = schedule(launch.stream, launch.arch)
    try:
        launch._trnsim_estimate = est
    except AttributeError:
        pass
    return est
