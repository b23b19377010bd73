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
* SBUF overflow (timing-only runs; full simulation reports it as an error): in program order, tiles (or only
  the overflowing bytes, `spill_whole_tiles` false) are saved to HBM and reloaded before their next use,
  farthest next use first (`plan_spills`). Options (all on for trn1): a tile evicted again unmodified keeps its
  HBM copy (`spill_reuse_saved_copies`: only the reload moves data); a reload waits for the end of the last
  instruction that had no room for it rather than for the saves of its own position
  (`spill_reload_waits_for_room`); a tile that only holds data loaded from a read-only HBM tensor is dropped
  without a save and reloaded from it, and tiles with a valid HBM copy are evicted first
  (`spill_drop_clean_tiles`); a reload is issued on demand, when the engine that reads the tile has finished its
  previous instruction (`spill_reload_on_demand`).
* Cores run independently (SPMD programs / LNC=2 halves carry `Instruction.core`); latency is the makespan.
"""

from __future__ import annotations

import gc
import heapq
import math
import operator
from bisect import insort
from collections import deque
from collections.abc import Callable
from itertools import accumulate
from typing import Any, NamedTuple

from ..core.instruction import Access, Engine, Instruction
from ..core.liveness import StreamUses, scan_uses
from .arch import Arch

RAW, WAR, WAW, ORD, BUF, BAR = 0, 1, 2, 3, 4, 5
KIND_NAMES = {RAW: "data", WAR: "reader", WAW: "write-order", ORD: "order", BUF: "buffer", BAR: "barrier", -1: "engine"}
# graph-internal kinds: a cross-engine RAW / WAW edge, whose consumer also waits for the semaphore
RAW_SEM, WAW_SEM = 6, 7
_KIND_NAME = {**KIND_NAMES, RAW_SEM: KIND_NAMES[RAW], WAW_SEM: KIND_NAMES[WAW]}

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


def _timings(
    start: list[float],
    end: list[float],
    wait_on: list[int],
    wait_ns: list[float],
    queue: list[str],
    done: list[float],
    issue: list[float],
    reason: list[str],
) -> list[Timed]:
    """`Timed` records from per-field lists (the fields set directly: calling `Timed.__init__` per instruction costs
    more than the records themselves)."""
    new = object.__new__
    out = []
    append = out.append
    for st, en, w, wns, q, dn, iss, rs in zip(start, end, wait_on, wait_ns, queue, done, issue, reason):
        t = new(Timed)
        t.start = st
        t.end = en
        t.wait_on = w
        t.wait_ns = wns
        t.queue = q
        t.done = dn
        t.issue = iss
        t.reason = rs
        append(t)
    return out


class _BuiltOnRead:
    """An `Estimate` attribute that may be set to a function building its value: the function is called when the
    attribute is first read, so a caller after the latency alone (nki.benchmark, parameter sweeps) never pays for
    the explanation records."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.field = "_" + name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__[self.field]
        if callable(value):
            value = obj.__dict__[self.field] = value()
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.field] = value


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
        timings: list[Timed] | Callable[[], list[Timed]],
        engine_busy_ns: dict[str, float] | None = None,
        dma_bytes: int = 0,
        hbm_bytes: int = 0,
        flops: int = 0,
        critical_path: list[int] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """`timings`: the per-instruction records, or a function building them when they are first read (a caller
        after the latency alone, such as nki.benchmark or a parameter sweep, never pays for them)."""
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
        self.idle = {}
        self.dma_active_ns = 0.0
        self.cores = 1

    timings = _BuiltOnRead()  # per-instruction records (positions of the launch's stream), see `Timed`
    idle = _BuiltOnRead()  # per engine: idle time by cause ((kind, producer, description, location) -> ns)
    critical_path = _BuiltOnRead()  # stream positions of the chain of binding constraints that ends last

    def __getstate__(self) -> dict[str, Any]:  # (pickling: the values, not the functions building them)
        self.timings, self.idle, self.critical_path  # noqa: B018 (reading them builds them)
        return dict(self.__dict__)

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
    """Dependency graph over the stream plus virtual nodes (buffer releases).

    `vdeps[k]`: the producers of virtual node n + k (every use of a released tile; kind WAR); `children[j]`:
    (consumer instruction, kind) of node j, where kind RAW_SEM / WAW_SEM mark a cross-engine result wait that also
    pays the semaphore; `releases[j]`: the virtual nodes that wait for instruction j's end (None when none; kept
    apart from `children` so that the scheduler handles these edges, about half of all, without a kind);
    `pending[k]`: how many producers node k waits for (the per-instruction dependency dicts are dropped once their
    edges exist).

    The same pass numbers the resources (one per (core, engine) and per (core, DMA queue), in order of first use:
    `res_keys`), so the scheduler needs no second walk over the stream: `rid_of[i]` / `pos_of[i]` (instruction i's
    resource and its position in that resource's program order `orders[rid]`), `engs[i]`, and the core barriers
    (`barrier_of[i]`: its rendezvous group, `barrier_groups[group]`: the barriers that meet)."""

    __slots__ = ("n", "children", "releases", "vdeps", "queue_of", "pending", "engs", "rid_of", "pos_of", "orders",
                 "res_keys", "barrier_groups", "barrier_of")

    def __init__(self, n: int) -> None:
        self.n = n
        self.vdeps: list[list[int]] = []
        self.children: list[list[tuple[int, int]]] = []
        self.releases: list[list[int] | None] = [None] * n
        self.queue_of: list[str] = [""] * n
        self.pending: list[int] = []
        self.engs: list[str] = []
        self.rid_of: list[int] = [0] * n
        self.pos_of: list[int] = [0] * n
        self.orders: list[list[int]] = []
        self.res_keys: list[tuple] = []
        self.barrier_groups: dict[tuple, list[int]] = {}
        self.barrier_of: dict[int, tuple] = {}


class _Scan(NamedTuple):
    """What `_scan` finds in one pass over every access of a stream."""

    uses: dict[int, list[int]]  # on-chip storage id -> its positions, ascending (first / last use: [0] / [-1])
    stor: dict[int, Any]  # on-chip storage id -> its Storage (both dicts in first-access order)
    written: dict[int, int]  # id of every storage ever written -> the last position that writes it
    firsts: list[list[int] | None]  # per position: the on-chip storages first accessed there, or None
    blocks: bool  # does some on-chip storage have leading block dimensions?
    sites: dict[tuple, list[int]]  # allocation sites (see `_sites`)
    site_of: dict[int, int]
    live_max: dict[tuple, int]


def _scan(stream: list[Instruction], uses: StreamUses | None = None) -> _Scan:
    """Where each storage is used (`uses`: `core.liveness.scan_uses(stream)`, e.g. a launch's, when the caller has
    it) and the allocation sites. The spill planner's per-position SBUF lists are built only when SBUF overflows
    (`_sbuf_at`)."""
    if uses is None or uses.length != len(stream):
        uses = scan_uses(stream)
    return _Scan(uses.uses, uses.stor, uses.written, uses.firsts, uses.blocks, *_sites(uses.uses, uses.stor))


def _sbuf_at(stream: list[Instruction]) -> list[list[int] | None]:
    """The SBUF storages each position touches (ids in reads-then-writes order, None when it touches none)."""
    at: list[list[int] | None] = [None] * len(stream)
    seen: dict[int, int] = {}  # storage id -> latest position that touched it
    for pos, ins in enumerate(stream):
        here = None
        for acc in ins.reads + ins.writes:
            st = acc.storage
            if st.buffer.kind != "sbuf":
                continue
            sid = st.id
            if seen.get(sid) == pos:
                continue
            seen[sid] = pos
            if here is None:
                here = at[pos] = [sid]
            else:
                here.append(sid)
    return at


def _sbuf_overflows(scan: _Scan, n: int, cap: int) -> bool:
    """Does the program-order peak of live SBUF bytes (each tile from its first to its last use) exceed `cap` on
    some core? Prefix sums of per-position deltas (the common no-overflow case stays a C-level loop)."""
    # the sum over SBUF sites of (most instances live at once x bytes) bounds the peak: usually it fits already
    bound: dict[int, int] = {}
    for key, lm in scan.live_max.items():
        if key[1] == "sbuf":
            bound[key[0]] = bound.get(key[0], 0) + lm * key[3]
    if all(b <= cap for b in bound.values()):
        return False
    uses, stor = scan.uses, scan.stor
    delta: dict[int, list[int]] = {}
    for u, st in zip(uses.values(), stor.values()):  # (both in first-access order)
        if st.buffer.kind != "sbuf":
            continue
        d = delta.get(st.core)
        if d is None:
            d = delta[st.core] = [0] * (n + 1)
        rb = st.row_bytes
        d[u[0]] += rb
        d[u[-1] + 1] -= rb
    return any(max(accumulate(d)) > cap for d in delta.values())


def _sites(uses: dict[int, list[int]], stor: dict[int, Any]) -> tuple:
    """Allocation sites of the on-chip storages: returns (sites, site_of, live_max), `sites[key]` the storages
    allocated at key = (core, buffer kind, location, bytes per partition) (in order of first use), `site_of[sid]`
    each storage's site number (the position of its key in `sites`) and `live_max[key]` the most instances of the
    site live at once (at least 1)."""
    sites: dict[tuple, list[int]] = {}
    site_num: dict[tuple, int] = {}
    # the same, found by the location object's identity (hashing a SourceLoc is a Python call); distinct but equal
    # locations still share their site through `site_num`
    site_fast: dict[tuple, int] = {}
    site_lists: list[list[int]] = []
    site_of: dict[int, int] = {}
    for sid, st in stor.items():
        core, kind, loc, rb = st.core, st.buffer.kind, st.loc, st.row_bytes
        fk = (core, kind, id(loc), rb)
        k = site_fast.get(fk)
        if k is None:
            key = (core, kind, loc, rb)
            k = site_num.get(key)
            if k is None:
                k = site_num[key] = len(site_lists)
                sites[key] = lst = [sid]
                site_lists.append(lst)
            else:
                site_lists[k].append(sid)
            site_fast[fk] = k
        else:
            site_lists[k].append(sid)
        site_of[sid] = k
    live_max: dict[tuple, int] = {}
    for key, sids in sites.items():
        # the storages come in order of first use: one at a time when each starts after the previous one's last use
        prev_last = -1
        for sid in sids:
            u = uses[sid]
            if u[0] <= prev_last:
                break
            prev_last = u[-1]
        else:
            live_max[key] = 1
            continue
        # events as integers: a start 2 * first + 1, an end 2 * (last + 1), so that sorting puts the ends before the
        # starts at the same position
        ev = [2 * uses[sid][0] + 1 for sid in sids]
        ev += [2 * uses[sid][-1] + 2 for sid in sids]
        ev.sort()
        cur = best = 0
        for x in ev:
            if x & 1:
                cur += 1
                if cur > best:
                    best = cur
            else:
                cur -= 1
        live_max[key] = max(best, 1)
    return sites, site_of, live_max


def _rotation_targets(sites: dict[tuple, list[int]], live_max: dict[tuple, int], arch: Arch) -> list[int]:
    """Physical buffers per allocation site (see `_sites`): `targets[k]` the buffers of site k."""
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
    return [live_max[k] * rot.get(k, 1) for k in sites]


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


def _drop_covered(boxes: list, b0: int, b1: int, b2: int, b3: int) -> None:
    """Remove the recorded boxes that the box (b0, b1, b2, b3) covers (a later write supersedes them)."""
    if len(boxes) == 1:
        x = boxes[0]
        if b0 <= x[0] and x[1] <= b1 and b2 <= x[2] and x[3] <= b3:
            boxes.clear()
    else:
        boxes[:] = [x for x in boxes if not (b0 <= x[0] and x[1] <= b1 and b2 <= x[2] and x[3] <= b3)]


def _write_deps(deps: dict[int, int], wl: list | None, rl: list | None, i: int, eng: str, p0: int, p1: int, f0: int,
                f1: int) -> None:
    """Order instruction i's write of the box (p0, p1, f0, f1) after the recorded writes (`wl`: WAW, or ORD on the
    same engine) and reads (`rl`: WAR, other instructions only) of boxes it overlaps; a stronger kind already in
    `deps` stays."""
    if wl:
        for e in wl:
            # (the free-byte ranges first: tiles are mostly sliced along them, so they decide sooner)
            if e[2] < f1 and f0 < e[3] and e[0] < p1 and p0 < e[1]:
                j = e[4]
                if j not in deps or deps[j] > WAW:
                    deps[j] = ORD if e[5] == eng else WAW
    if rl:
        for e in rl:
            j = e[4]
            if j != i and e[2] < f1 and f0 < e[3] and e[0] < p1 and p0 < e[1] and j not in deps:
                deps[j] = WAR


def build_graph(
    stream: list[Instruction], arch: Arch, extra: dict[int, list[int]] | None = None, scan: _Scan | None = None
) -> _Graph:
    """Dependencies of every instruction (positions in `stream`); `extra` adds buffer-kind edges pos -> deps.
    `scan` is `_scan(stream)` when the caller has it already.

    Per storage, the boxes written (and read since) are kept in lists from which a write removes every box it
    covers, so a tile rewritten whole keeps one entry and each lookup scans a few boxes."""
    n = len(stream)
    g = _Graph(n)
    if scan is None:
        scan = _scan(stream)
    accessors, written, firsts, site_of = scan.uses, scan.written, scan.firsts, scan.site_of
    targets = _rotation_targets(scan.sites, scan.live_max, arch)
    DMA = Engine.DMA
    if scan.blocks:  # some tile has block dimensions: fix those instructions' lanes before the costs are taken
        for ins in stream:
            wrs = ins.writes
            if wrs and ins.engine != DMA and wrs[0].storage.nblocks > 1:
                _normalise_block_dims(ins)
    # releases per stream position (in first-access order of the storages, as the free queues need)
    releases: list[list[int] | None] = [None] * n
    for sid, u in accessors.items():
        pos = u[-1]
        rl = releases[pos]
        if rl is None:
            releases[pos] = [sid]
        else:
            rl.append(sid)
    nslots = [0] * len(targets)  # per site: buffers handed out
    free: list[deque | None] = [None] * len(targets)  # per site: storages whose buffer is free again
    release_node: dict[int, int] = {}
    writes: dict[int, list] = {}
    # reads are recorded only where a later write looks them up (the storage's last write comes after them)
    reads: dict[int, list] = {}
    last_write = written.get
    qlines: dict[tuple, dict] = {}
    stmt_queue: dict[tuple, tuple[str, int]] = {}  # (core, queue base, id(location)) -> (queue name, resource)
    barrier_on: dict[tuple, int] = {}  # (core, storage id) -> that core's latest core_barrier on the storage
    nq = max(1, int(arch.dma_queues))
    sem = arch.semaphore_ns
    engs: list[str] = list(map(_engine_of, stream))
    pending = [0] * n
    vdeps = g.vdeps
    queue_of = g.queue_of
    children: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    writes_get = writes.get
    reads_get = reads.get
    g.engs = engs
    rid_of = g.rid_of
    pos_of = g.pos_of
    orders = g.orders
    res_keys = g.res_keys
    rel_of = g.releases
    resources: dict[tuple, int] = {}  # (core, "DMA", queue name) -> resource
    resources_get = resources.get
    eng_rids: dict[int, dict[str, int]] = {}  # core -> engine -> resource
    barrier_count: dict[tuple, int] = {}
    eng_rid: dict[str, int] = {}  # engine -> resource, of core `eng_core` (streams mostly run on one core)
    eng_core = -1
    for i, ins in enumerate(stream):
        eng = engs[i]
        deps: dict[int, int] = {}
        # ---- buffer rotation: the first access of an on-chip tile takes a buffer of its site's ring
        new = firsts[i]
        if new is not None:
            for sid in new:
                key = site_of[sid]
                have = nslots[key]
                fq = free[key]
                if have >= targets[key] and fq:
                    prev = fq.popleft()
                    v = release_node.get(prev)
                    if v is None:
                        # a virtual node after every use of the tile that held the buffer
                        v = n + len(vdeps)
                        vd = accessors[prev]
                        vdeps.append(vd)
                        children.append([])
                        for j in vd:
                            rv = rel_of[j]
                            if rv is None:
                                rel_of[j] = [v]
                            else:
                                rv.append(v)
                        release_node[prev] = v
                    deps[v] = BUF
                else:
                    nslots[key] = have + 1
        rds = ins.reads
        wrs = ins.writes
        is_barrier = ins.opcode == "CORE_BARRIER"
        # ---- reads: data dependencies on the boxes written, then the read's own record (a read is looked up
        # only by writes, and this instruction's writes skip its own reads, so recording it now is the same)
        for acc in rds:
            sid = acc.storage.id
            lw = last_write(sid)
            if lw is None:  # never written (kernel inputs): no dependencies, and no write looks its reads up
                continue
            p0 = acc.p_lo
            p1 = acc.p_hi
            f0 = acc.f_lo
            f1 = acc.f_hi
            wl = writes_get(sid)
            if wl:
                for e in wl:
                    # (the free-byte ranges first: tiles are mostly sliced along them, so they decide sooner)
                    if e[2] < f1 and f0 < e[3] and e[0] < p1 and p0 < e[1]:
                        deps[e[4]] = RAW
            if lw > i and not is_barrier:
                rl = reads_get(sid)
                if rl is None:
                    reads[sid] = [(p0, p1, f0, f1, i)]
                else:
                    rl.append((p0, p1, f0, f1, i))
        # ---- writes: order after earlier writes and reads of the boxes (every write of the instruction first),
        # then record them, dropping the boxes they cover
        if len(wrs) == 1:  # (the common case: one write, looked up once)
            acc = wrs[0]
            sid = acc.storage.id
            p0 = acc.p_lo
            p1 = acc.p_hi
            f0 = acc.f_lo
            f1 = acc.f_hi
            wl = writes_get(sid)
            rl = reads_get(sid)
            if wl or rl:
                _write_deps(deps, wl, rl, i, eng, p0, p1, f0, f1)
            if rl:
                _drop_covered(rl, p0, p1, f0, f1)
            e = (p0, p1, f0, f1, i, eng)
            if wl is None:
                writes[sid] = [e]
            elif len(wl) == 1:  # `_drop_covered` inlined: one box, typically the tile's previous whole write
                x = wl[0]
                if p0 <= x[0] and x[1] <= p1 and f0 <= x[2] and x[3] <= f1:
                    wl[0] = e
                else:
                    wl.append(e)
            else:
                if wl:
                    _drop_covered(wl, p0, p1, f0, f1)
                wl.append(e)
        elif wrs:
            for acc in wrs:
                sid = acc.storage.id
                p0, p1, f0, f1 = acc.p_lo, acc.p_hi, acc.f_lo, acc.f_hi
                wl = writes_get(sid)
                rl = reads_get(sid)
                if wl or rl:
                    _write_deps(deps, wl, rl, i, eng, p0, p1, f0, f1)
            for acc in wrs:
                sid = acc.storage.id
                b0, b1, b2, b3 = acc.p_lo, acc.p_hi, acc.f_lo, acc.f_hi
                rl = reads_get(sid)
                if rl:
                    _drop_covered(rl, b0, b1, b2, b3)
                wl = writes_get(sid)
                e = (b0, b1, b2, b3, i, eng)
                if wl is None:
                    writes[sid] = [e]
                else:
                    if wl:
                        _drop_covered(wl, b0, b1, b2, b3)
                    wl.append(e)
        # ---- core barriers: a barrier waits for its own core's earlier writes of its tensor (the other cores
        # meet it at the rendezvous: the stream interleaves the cores, so it must not order them); the core's
        # later accesses of the tensor wait for the barrier's end
        core = ins.core
        if barrier_on:
            for accs in (rds, wrs):
                for acc in accs:
                    j = barrier_on.get((core, acc.storage.id))
                    if j is not None:
                        deps.setdefault(j, BAR)
        if is_barrier:
            deps = {j: k for j, k in deps.items() if j >= n or stream[j].core == core}
            for acc in rds:
                barrier_on[(core, acc.storage.id)] = i
            cores_l = tuple(sorted(ins.attrs.get("cores") or ()))
            kk = (core, cores_l)
            c = barrier_count.get(kk, 0)
            barrier_count[kk] = c + 1
            gk = (cores_l, c)
            g.barrier_groups.setdefault(gk, []).append(i)
            g.barrier_of[i] = gk
        # ---- resource: the DMA queue of this statement, else the engine
        if eng == DMA:
            base = ins.attrs.get("queue") or "qSyncIO"
            # (queue name, resource) of the statement, found by its location object's identity (hashing a
            # SourceLoc is a Python call); distinct but equal locations still share the statement's queue
            qk = (core, base, id(ins.loc))
            q = stmt_queue.get(qk)
            if q is None:
                lines = qlines.get((core, base))
                if lines is None:
                    lines = qlines[(core, base)] = {}
                q = lines.get(ins.loc)
                if q is None:
                    qname = f"{base}{len(lines) % nq}"
                    key = (core, "DMA", qname)
                    rid = resources_get(key)
                    if rid is None:
                        rid = resources[key] = len(res_keys)
                        res_keys.append(key)
                        orders.append([])
                    q = lines[ins.loc] = (qname, rid)
                stmt_queue[qk] = q
            queue_of[i] = q[0]
            rid = q[1]
        else:
            if core != eng_core:
                eng_core = core
                eng_rid = eng_rids.setdefault(core, {})
            rid = eng_rid.get(eng)
            if rid is None:
                key = (core, eng)
                rid = eng_rid[eng] = len(res_keys)
                res_keys.append(key)
                orders.append([])
        order = orders[rid]
        pos_of[i] = len(order)
        order.append(i)
        rid_of[i] = rid
        if extra is not None:
            for j in extra.get(i, ()):
                deps.setdefault(j, BUF)
        if deps:
            pending[i] = len(deps)
            if sem:  # a cross-engine result wait also pays the semaphore
                for j, kind in deps.items():
                    if (kind == RAW or kind == WAW) and engs[j] != eng:
                        kind = RAW_SEM if kind == RAW else WAW_SEM
                    children[j].append((i, kind))
            else:
                for j, kind in deps.items():
                    children[j].append((i, kind))
        # ---- buffers released after this position
        rel = releases[i]
        if rel is not None:
            for sid in rel:
                key = site_of[sid]
                fq = free[key]
                if fq is None:
                    free[key] = deque((sid,))
                else:
                    fq.append(sid)
    g.children = children
    pending += [len(d) for d in vdeps]
    g.pending = pending
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


def _spill_instruction(kind: str, st, loc, amount: int, spec: Any = None) -> Instruction:
    """A compiler-inserted DMA that saves (`kind` "spill") or reloads `amount` bytes per partition of `st`
    (`spec`: the DMA_COPY instruction spec, when the caller has looked it up)."""
    if spec is None:
        from ..isa.dma import DMA_COPY as spec

    acc = _full_access(st)
    save = kind == "spill"
    parts = acc.p_hi
    ins = Instruction(
        Engine.DMA,
        "DMA_SPILL" if save else "DMA_RELOAD",
        [acc] if save else [],
        [] if save else [acc],
        loc if loc is not None else st.loc,
        spec=spec,
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


def _clean_tiles(stream: list[Instruction], written: set[int]) -> set[int]:
    """SBUF tiles whose every write is a DMA transfer from HBM tensors that nothing writes (kernel inputs): their
    data always has a valid copy in HBM, so the compiler can drop them and reload them from there."""
    clean: set[int] = set()
    dirty: set[int] = set()
    DMA = Engine.DMA
    for ins in stream:
        wrs = ins.writes
        if not wrs:
            continue
        ok = ins.engine == DMA and bool(ins.reads) and all(
            a.storage.buffer.kind == "hbm" and a.storage.id not in written for a in ins.reads
        )
        for acc in wrs:
            st = acc.storage
            if st.buffer.kind == "sbuf":
                (clean if ok else dirty).add(st.id)
    return clean - dirty


def plan_spills(stream: list[Instruction], arch: Arch, scan: _Scan | None = None):
    """What the compiler does when SBUF overflows (timing-only runs of kernels whose live tiles exceed it): in
    program order, whenever the live tiles of a core exceed SBUF, the tile whose next use is farthest away is
    saved to HBM and reloaded before that use (with `spill_drop_clean_tiles`: tiles with a valid HBM copy first,
    dropped without a save). Returns (extended stream, positions of the original instructions, extra
    dependencies) or None when everything fits. `scan` is `_scan(stream)` if known."""
    cap = arch.sbuf_usable_bytes_per_partition
    if scan is None:
        scan = _scan(stream)
    if not _sbuf_overflows(scan, len(stream), cap):
        return None
    uses, stor = scan.uses, scan.stor
    at = _sbuf_at(stream)
    live: dict[int, set[int]] = {}
    used: dict[int, int] = {}
    nxt: dict[int, int] = {}
    nxt_use: dict[int, int] = {}  # position of each tile's next use after the current one (-1: none)
    # eviction score: the next use of a tile that may be saved now, -2 for tiles used at this position or held in
    # HBM entirely (max() over a live set returns its first maximal element, as a scan with ">" would)
    score: dict[int, int] = {}
    score_of = score.__getitem__
    out_amt: dict[int, int] = {}  # bytes per partition of a tile currently held in HBM only
    # bytes per partition of a tile whose copy in HBM is still valid (saved and not written since; >= out_amt):
    # evicting them again needs no save, only the reload
    valid: dict[int, int] = {}
    started: set[int] = set()
    blocked_at: dict[int, int] = {}  # per tile held in HBM: the last position that had no room for it
    saves_at: dict[int, list[tuple[int, int, int]]] = {}  # (tile, bytes evicted, bytes saved) per partition
    reloads_at: dict[int, list[tuple[int, int, int]]] = {}  # (tile, bytes, position whose end leaves room)
    reload_after_saves: set[int] = set()
    reload_bytes = new_bytes = 0
    whole = bool(arch.spill_whole_tiles)
    reuse = bool(arch.spill_reuse_saved_copies)
    room_deps = bool(arch.spill_reload_waits_for_room)
    drop_clean = bool(arch.spill_drop_clean_tiles)
    on_demand = bool(arch.spill_reload_on_demand)
    # tiles holding unmodified copies of read-only HBM data: evicting them needs no save
    clean = _clean_tiles(stream, scan.written) if drop_clean else set()

    def victim_key(sid: int) -> tuple[int, int]:
        # farthest next use first (Belady); among equals, the tile with the most bytes that need no save
        sc = score[sid]
        return (sc, valid.get(sid, 0) - out_amt.get(sid, 0) if sc >= 0 else 0)

    def victim_key_clean_first(sid: int) -> tuple[int, int]:
        # tiles whose whole data has a valid HBM copy (dropped, no save) first; then farthest next use (Belady)
        sc = score[sid]
        free = sc >= 0 and (sid in clean or valid.get(sid, 0) >= stor[sid].row_bytes)
        return (1 if free else 0, sc)

    pick = victim_key_clean_first if drop_clean else victim_key if reuse else score_of

    for pos in range(len(stream)):
        here = at[pos]
        if not here:
            continue
        ins = stream[pos]
        core = ins.core
        lv = live.setdefault(core, set())
        for sid in here:
            k = nxt[sid] = nxt.get(sid, -1) + 1
            ps = uses[sid]
            nxt_use[sid] = ps[k + 1] if k + 1 < len(ps) else -1
            score[sid] = -2
            if sid not in started:
                started.add(sid)
                lv.add(sid)
                new_bytes += stor[sid].row_bytes
            elif out_amt.get(sid):
                amt = out_amt.pop(sid)
                reload_bytes += amt
                reloads_at.setdefault(pos, []).append((sid, amt, blocked_at.pop(sid, -1)))
        if reload_bytes:
            # reloads that do not fit before this position's saves wait for them (else only for their room)
            if not room_deps or used.get(core, 0) + reload_bytes > cap:
                reload_after_saves.add(pos)
            used[core] = used.get(core, 0) + reload_bytes
            reload_bytes = 0
        if new_bytes:
            used[core] = used.get(core, 0) + new_bytes
            new_bytes = 0
        if valid:
            if not reuse:  # every eviction saves its bytes again
                valid.clear()
            for acc in ins.writes:  # a write makes the tile's HBM copy stale
                valid.pop(acc.storage.id, None)
        while used.get(core, 0) > cap and lv:
            # the live tile (not used here, not all in HBM already) whose next use is farthest; ties: set order
            best = max(lv, key=pick)
            if score[best] < 0:
                break
            rb = stor[best].row_bytes
            o = out_amt.get(best, 0)
            amt = rb - o if whole else min(rb - o, used[core] - cap)
            v = rb if best in clean else valid.get(best, 0)
            save = o + amt - v if o + amt > v else 0  # bytes without a valid copy in HBM
            out_amt[best] = o + amt
            if o + amt > v:
                valid[best] = o + amt
            if o + amt >= rb:
                score[best] = -2
            used[core] -= amt
            saves_at.setdefault(pos, []).append((best, amt, save))
        if out_amt and room_deps:
            # a tile held in HBM cannot come back while this position has no room for it: its reload waits for
            # the end of the last such instruction
            u = used.get(core, 0)
            for sid, o in out_amt.items():
                if u + o > cap and stor[sid].core == core:
                    blocked_at[sid] = pos
        for sid in here:
            if nxt_use[sid] < 0 and sid in lv:
                lv.discard(sid)
                used[core] -= stor[sid].row_bytes - out_amt.pop(sid, 0)
                valid.pop(sid, None)
            else:
                score[sid] = nxt_use[sid] if out_amt.get(sid, 0) < stor[sid].row_bytes else -2
    if not saves_at:
        return None
    from ..isa.dma import DMA_COPY

    ext: list[Instruction] = []
    orig_pos: list[int] = []
    extra: dict[int, list[int]] = {}
    prev_on_engine: dict[tuple, int] = {}  # (core, engine) -> that engine's latest original position
    for pos, ins in enumerate(stream):
        key = (ins.core, ins.engine)
        before = prev_on_engine.get(key)
        prev_on_engine[key] = pos
        sv = []
        for sid, _amt, save in saves_at.get(pos, ()):
            if save > 0:
                sv.append(len(ext))
                ext.append(_spill_instruction("spill", stor[sid], ins.loc, save, DMA_COPY))
        after_saves = pos in reload_after_saves
        for sid, amt, room in reloads_at.get(pos, ()):
            deps = list(sv) if after_saves else []
            if room >= 0:
                deps.append(orig_pos[room])
            if on_demand and before is not None:
                # issued from the reading engine's stream just before the use: not before its previous instruction
                deps.append(orig_pos[before])
            if deps:
                extra[len(ext)] = deps
            ext.append(_spill_instruction("reload", stor[sid], ins.loc, amt, DMA_COPY))
        if sv:
            extra[len(ext)] = list(sv)
        orig_pos.append(len(ext))
        ext.append(ins)
    return ext, orig_pos, extra


# ============================================================================================ scheduler
def schedule(stream: list[Instruction], arch: Arch, uses: StreamUses | None = None) -> Estimate:
    """Run the timing pass over `stream` (instructions of any number of cores). `uses`: `scan_uses(stream)` when the
    caller has it (a launch record's `uses`)."""
    # The pass allocates many small acyclic objects (freed by reference counting): without the cyclic collector
    # it runs ~1.5x faster on long streams, whose records the collector would otherwise rescan again and again.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _schedule_stream(stream, arch, uses)
    finally:
        if enabled:
            gc.enable()


def _schedule_stream(stream: list[Instruction], arch: Arch, uses: StreamUses | None = None) -> Estimate:
    scan = _scan(stream, uses)
    plan = plan_spills(stream, arch, scan)
    if plan is None:
        return _schedule(stream, arch, None, scan)
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
        self.version = 0  # event number of the flow's pending completion event (-1: none)
        self.cost = cost  # > 0: fixed-duration record (collectives etc.), not sharing bandwidth
        self.proj = -1.0  # projected completion time of the pending completion event


_flow_cap = operator.attrgetter("cap")
_engine_of = operator.attrgetter("engine")


def _waterfill(flows: list[_Flow], pipe_cap: float, hbm_cap: float) -> None:
    """Max-min fair rates (bytes/ns): the flows of a core share its DMA data path, each capped by its own
    descriptor-limited rate; if the HBM domain (shared by its cores) is then oversubscribed, the flows that
    touch HBM slow down in proportion."""
    fl: list[_Flow] = []
    core0 = -1
    multi = False
    for f in flows:
        if f.cost <= 0:
            if not fl:
                core0 = f.core
            elif f.core != core0:
                multi = True
            fl.append(f)
        else:
            f.rate = 0.0
    if multi:  # groups per core, in order of first appearance
        by_core: dict[int, list[_Flow]] = {}
        for f in fl:
            by_core.setdefault(f.core, []).append(f)
        groups = list(by_core.values())
    else:
        groups = [fl] if fl else []
    hbm_used = 0.0
    for fl in groups:
        hbm_used += _fair_shares(fl, pipe_cap)
    if hbm_used > hbm_cap > 0:
        scale = hbm_cap / hbm_used
        for fl in groups:
            for f in fl:
                if f.h > 0:
                    f.rate *= scale


def _fair_shares(fl: list[_Flow], pipe_cap: float) -> float:
    """Max-min fair rates of one core's transfers over its DMA data path (`pipe_cap`), each capped by its own
    rate; returns the HBM bandwidth they then use. Sorts `fl` by cap."""
    if len(fl) == 1:
        f = fl[0]
        r = f.rate = f.cap if f.cap < pipe_cap else pipe_cap
        return r * f.h
    fl.sort(key=_flow_cap)
    left = pipe_cap
    k = len(fl)
    for f in fl:
        share = left / k
        r = f.cap if f.cap < share else share
        f.rate = r
        left -= r
        k -= 1
    used = 0.0
    for f in fl:
        used += f.rate * f.h
    return used


def _schedule(
    stream: list[Instruction], arch: Arch, extra: dict[int, list[int]] | None, scan: _Scan | None = None
) -> Estimate:
    """The event loop. Hot path: one heap pop per instruction (plus DMA data start / completion events); each
    resource (engine or DMA queue of a core) keeps one candidate in the heap, recomputed when it ran an
    instruction and replaced when one of its window's instructions becomes ready and starts earlier.

    Per-resource state lives in parallel lists indexed by resource number (cheaper than attribute access in the
    hot loop). The heap's valid instruction items (time, 2, instruction, 0) are unique, so the order in which
    resources push them does not change the order in which they are popped."""
    from ..isa.dma import dma_cost
    from ..isa.tensor_engine import loadstationary_ns

    n = len(stream)
    g = build_graph(stream, arch, extra, scan)
    vdeps = g.vdeps
    total_nodes = n + len(vdeps)
    children = g.children
    rel_of = g.releases
    queue_of = g.queue_of
    pending = g.pending
    ready = [0.0] * total_nodes
    bind = [-1] * total_nodes
    bind_kind = [-1] * total_nodes
    end = [0.0] * total_nodes
    done = [0.0] * total_nodes
    scheduled = [False] * n
    start = [0.0] * n
    issue_t = [0.0] * n
    wait_on = [-1] * n
    wait_ns_of = [0.0] * n
    reason_of = [""] * n
    timed = [False] * n  # start / end final (DMA: data moved)
    crit = [-1] * n  # the node whose completion (or occupancy) fixed each instruction's start

    # ---- resources: one per (core, engine) and per (core, DMA queue), numbered by build_graph
    DMA = Engine.DMA
    TENSOR = Engine.TENSOR
    res_keys = g.res_keys
    orders = g.orders
    win = max(1, int(arch.reorder_window))
    eng_of = g.engs
    rid_of = g.rid_of
    pos_of = g.pos_of  # position of each instruction in its resource's order
    barrier_groups = g.barrier_groups
    barrier_of = g.barrier_of
    nres = len(res_keys)
    olen = [len(o) for o in orders]
    heads = [0] * nres
    free_t = [0.0] * nres
    blocked = [False] * nres
    last_of = [-1] * nres  # last instruction each resource ran
    last_end = [0.0] * nres
    cores = {k[0] for k in res_keys}
    barrier_arrived: dict[tuple, list[tuple[int, float]]] = {}
    n_issuers = max(1, int(arch.dma_issuers))
    issuers: dict[tuple, int] = {}
    issuer_of = [0] * nres  # per DMA queue (resource): its issuer (core, issuing engine, trigger path)
    for rid, rk in enumerate(res_keys):
        if rk[1] == "DMA":
            q = rk[2]
            qidx = q[-1] if q and q[-1].isdigit() else "0"
            ikey = (rk[0], _issuer_of(q), int(qidx) % n_issuers)
            issuer_of[rid] = issuers.setdefault(ikey, len(issuers))
    issuer_free = [0.0] * len(issuers)
    issuer_last = [-1] * len(issuers)
    qbusy = [False] * nres  # per DMA queue: a transfer is in its data phase or waiting to start
    qwait: list[deque | None] = [None] * nres  # per DMA queue: issued transfers waiting for their turn

    latency = {e: arch.latency_ns(e) for e in COMPUTE_ENGINES}
    lat_of = [latency.get(rk[1], 0.0) for rk in res_keys]  # result latency of each resource's engine
    sem = arch.semaphore_ns
    ppe = max(1, arch.dma_partitions_per_engine)
    neng = max(1, arch.dma_engines)
    bw_eng = arch.dma_bytes_per_ns_per_engine
    pipe_cap = bw_eng * neng
    fixed = arch.dma_fixed_ns
    issue_ns = arch.dma_issue_ns
    q_delay = max(fixed, issue_ns)
    hbm_dom = max(1, arch.hbm_cores_per_domain)
    hbm_cap = arch.hbm_bytes_per_ns * hbm_dom
    transpose_eff = max(arch.dma_transpose_efficiency, 1e-3)
    flows_by_dom: list[list[_Flow]] = [[] for _ in range(max(cores, default=0) // hbm_dom + 1)]  # in flight
    flow_of: list[Any] = [None] * n  # per DMA: its _Flow once issued
    desc_ns: dict[float, float] = {}
    flow_memo: dict[tuple, tuple[float, float]] = {}  # (partitions, SBUF-side box, bytes, attrs) -> (cap, h)
    last_stationary: dict[int, Any] = {}

    busy: dict[str, float] = {}
    # engines' idle gaps, (resource, instruction, ns, waited, first on its resource) or (-1, engine, ns, key, _) for a
    # barrier's cross-core wait, booked to their causes when the breakdown is first read (`idle_breakdown`)
    gaps: list[tuple] = []
    dma_intervals: dict[int, list[tuple[float, float]]] = {}
    dma_bytes = hbm_bytes = 0
    flops = pe_flops = 0

    # heap items (time, priority, tie, a): priority 0 = DMA completion (tie: its event number, a: the flow; valid
    # while the flow's `version` is that number), 1 = DMA data start (tie: its event number, a: the flow),
    # 2 = instruction (tie: the instruction; valid while it is its resource's candidate at that time)
    heap: list[tuple] = []
    heappush = heapq.heappush
    heappop = heapq.heappop
    seq = 0
    # Each resource keeps one candidate in the heap: the instruction of its window that can start first, i.e. the
    # minimum of (max(ready, free_t), position) over its window's ready instructions. `cand_i[rid]`: that
    # instruction (-1: none, -2: the resource is blocked or will be rescanned once the current event is done),
    # `cand_t[rid]`: its start time as pushed. An instruction that becomes ready while the window and free_t
    # stay put can only replace the candidate, so it is compared with it instead of rescanning the window.
    cand_i = [-2] * nres
    cand_t = [0.0] * nres

    def rescan(rid: int) -> None:
        """Find and push the resource's candidate: the first ready instruction of the window that can start as
        soon as the engine is free, else the one ready earliest (first in program order on ties)."""
        # (never called while the resource waits at a core barrier)
        rl = ready_l[rid]
        if not rl:
            cand_i[rid] = -1
            return
        # the window: positions head .. head + win - 1 of the resource's order
        lim = heads[rid] + win
        best_t = inf
        best_i = -1
        ft = free_t[rid]
        for i in rl:
            if pos_of[i] >= lim:
                break
            t = ready[i]
            if t <= ft:  # can start as soon as the engine is free: nothing later in the window beats it
                best_t = ft
                best_i = i
                break
            if t < best_t:
                best_t = t
                best_i = i
        cand_i[rid] = best_i
        if best_i >= 0:
            cand_t[rid] = best_t
            heappush(heap, (best_t, 2, best_i, 0))

    def became_ready(c: int) -> None:
        """Every producer of instruction c has finished: it joins its resource's ready list and, if it is in the
        resource's window (else it is looked at when the window gets there), becomes the candidate when it starts
        earlier, or at the same time and comes first."""
        rid_c = rid_of[c]
        insort(ready_l[rid_c], c)
        ci = cand_i[rid_c]
        if ci != -2 and pos_of[c] < heads[rid_c] + win:
            tc = ready[c]
            ft = free_t[rid_c]
            if tc < ft:
                tc = ft
            if ci < 0 or tc < cand_t[rid_c] or (tc == cand_t[rid_c] and c < ci):
                cand_i[rid_c] = c
                cand_t[rid_c] = tc
                heappush(heap, (tc, 2, c, 0))

    def finish_node(q: int) -> None:
        """Propagate finished instruction q's times to its children, then to the buffer releases waiting for its
        end (those whose last use this was are resolved at once, last found first). Read-after-write and
        write-after-write wait for the producer's result (`done`, plus the semaphore across engines), the other
        kinds for its end (reader finished, same-engine order, buffer released)."""
        t_done = done[q]
        t_end = end[q]
        t_sem = t_done + sem
        # the time each edge kind waits for: RAW, WAR, WAW, ORD, BUF, BAR, RAW_SEM, WAW_SEM
        tk = (t_done, t_end, t_done, t_end, t_end, t_end, t_sem, t_sem)
        for c, kind in children[q]:
            t = tk[kind]
            rc = ready[c]
            if t >= rc or bind[c] < 0:
                if t > rc:
                    ready[c] = t
                bind[c] = q
                bind_kind[c] = kind
            pc = pending[c] = pending[c] - 1
            if pc == 0:
                became_ready(c)
        # buffer releases waiting for q's end (WAR edges into virtual nodes; their kind is never read)
        rv = rel_of[q]
        if rv is None:
            return
        stack = None
        for c in rv:
            rc = ready[c]
            if t_end >= rc or bind[c] < 0:
                if t_end > rc:
                    ready[c] = t_end
                bind[c] = q
            pc = pending[c] = pending[c] - 1
            if pc == 0:
                end[c] = done[c] = ready[c]
                if stack is None:
                    stack = [c]
                else:
                    stack.append(c)
        if stack is not None:
            release(stack)

    def release(stack: list[int]) -> None:
        """Resolve the virtual nodes on `stack`, last first: each passes its time (`end` = `done`) to its consumer,
        the first access of the tile that takes the buffer (a buffer edge). This is `finish_node`'s child loop with
        one time for every edge; calling `finish_node` instead costs 4% more instructions in the timing pass
        (measured on matmul_tiled), so the loop stays inline."""
        while stack:
            v = stack.pop()
            t = end[v]
            for c, kind in children[v]:
                rc = ready[c]
                if t >= rc or bind[c] < 0:
                    if t > rc:
                        ready[c] = t
                    bind[c] = v
                    bind_kind[c] = kind
                pc = pending[c] = pending[c] - 1
                if pc == 0:
                    became_ready(c)

    # per resource: its ready instructions not yet started (all producers finished), in program order
    ready_l: list[list[int]] = [[] for _ in range(nres)]
    for i in range(n):
        if pending[i] == 0:
            ready_l[rid_of[i]].append(i)
    inf = math.inf
    for v in range(n, total_nodes):
        if pending[v] == 0:
            release([v])
    for rid in range(nres):
        rescan(rid)

    # Idle time per (engine, cause): accumulated in `idle_ns[slot]`, one slot per (engine, key) in order of first
    # occurrence (the order of the `idle` dicts built after the loop). Each resource finds the slot of a cause by an
    # integer code (producer * 8 + dependency kind; negative: no producer / not waiting), so the key tuple (whose
    # SourceLoc hashes in Python) is built and hashed once per cause, not once per gap.
    idle_ns: list[float] = []
    idle_keys: list[tuple[str, tuple]] = []
    idle_slot: dict[tuple[str, tuple], int] = {}
    idle_code: list[dict[int, int]] = [{} for _ in range(nres)]
    who_of: dict[int, tuple] = {}

    def add_idle(eng: str, key: tuple, gap: float) -> int:
        """Book `gap` ns of idle time of `eng` to `key`; returns the slot."""
        slot = idle_slot.get((eng, key))
        if slot is None:
            slot = idle_slot[(eng, key)] = len(idle_ns)
            idle_ns.append(0.0)
            idle_keys.append((eng, key))
        idle_ns[slot] += gap
        return slot

    def record_idle(rid: int, i: int, gap: float, waited: bool, first: bool) -> None:
        """Book an engine's idle gap before instruction i to its cause (the dependency that released i, when it
        `waited` for one; `first`: i is the first instruction its resource runs)."""
        if waited:
            kind = bind_kind[i]
            pb = bind[i]
            if pb >= n:  # buffer release: name the last use that held the buffer
                pb2 = bind[pb]
                pb = pb2 if 0 <= pb2 < n else -1
            code = pb * 8 + kind if pb >= 0 else -1 - kind
        else:
            code = -20 if first else -21
        codes = idle_code[rid]
        slot = codes.get(code)
        if slot is not None:
            idle_ns[slot] += gap
            return
        if code >= 0:
            w = who_of.get(pb)
            if w is None:
                pins = stream[pb]
                who = "DMA " + (queue_of[pb] or "") if pins.engine == DMA else pins.engine
                w = who_of[pb] = (who, describe(pins), pins.loc, pins.core)
            who = w[0]
            if w[3] != stream[i].core:  # cross-core wait (sendrecv, collectives, shared HBM)
                who = f"core {w[3]} {who}"
            key = (_KIND_NAME.get(kind, "dep"), who, w[1], w[2])
        elif code > -20:
            key = (_KIND_NAME.get(kind, "dep"), "?", "", None)
        else:
            key = ("start" if code == -20 else "issue", "", "", None)
        codes[code] = add_idle(res_keys[rid][1], key, gap)

    # ------------------------------------------------------------------ DMA subsystem
    def dma_flow(i: int, ins: Instruction, attrs: dict, nbytes: float) -> _Flow:
        """Bytes and rate cap of a transfer: the engines serving its SBUF-side partitions each handle their
        partitions' descriptors at max~(dma_descriptor_ns, descriptor bytes / engine bandwidth)."""
        core = ins.core
        dom = core // hbm_dom
        spec = ins.spec
        if spec is not None and spec.cost is not dma_cost:  # a DMA-queue record with its own cost rule
            cost = spec.cost(ins, arch)
            return _Flow(i, core, dom, 0.0, math.inf, 0.0, max(cost, 1e-9))
        sb = None
        for a in ins.writes:
            if a.storage.buffer.kind != "hbm":
                sb = a
                break
        if sb is None:
            for a in ins.reads:
                if a.storage.buffer.kind != "hbm":
                    sb = a
                    break
        desc_attr = attrs.get("desc_bytes")
        transpose = attrs.get("transpose")
        direction = attrs.get("direction", "")
        # the rate cap is a function of these alone: transfers of one statement share it
        key = (ins.partitions, sb.p_lo if sb is not None else -1, sb.p_hi if sb is not None else -1, nbytes,
               desc_attr, transpose, direction)
        m = flow_memo.get(key)
        if m is not None:
            return _Flow(i, core, dom, nbytes, m[0], m[1], 0.0)
        parts = ins.partitions or 1
        if parts < 1:
            parts = 1
        if sb is not None:
            p_lo = sb.p_lo % 128
            w = sb.p_hi - sb.p_lo
            p_hi = p_lo + (w if w > 1 else 1)
            if p_hi > 128:
                p_hi = 128
        else:
            p_lo, p_hi = 0, (parts if parts < 128 else 128)
        e_hi = (p_hi - 1) // ppe + 1
        n_used = (e_hi if e_hi < neng else neng) - p_lo // ppe
        if n_used < 1:
            n_used = 1
        parts_eng = -(-parts // n_used)  # engines serving the transfer: partitions each (at most ppe)
        if parts_eng > ppe:
            parts_eng = ppe
        elif parts_eng < 1:
            parts_eng = 1
        bpp = nbytes / parts
        desc = float(desc_attr or bpp)
        if bpp > 0 and bpp < desc:
            desc = bpp
        ndesc_pp = max(1, math.ceil(bpp / desc)) if desc > 0 else 1
        dns = desc_ns.get(desc)
        if dns is None:
            dns = desc_ns[desc] = dma_descriptor_ns(arch, desc)
        floor = parts_eng * ndesc_pp * dns
        if transpose:
            floor /= transpose_eff
        cap = nbytes / floor if floor > 0 else math.inf
        h = float(direction.count("hbm")) if "hbm" in direction else 0.0
        flow_memo[key] = (cap, h)
        return _Flow(i, core, dom, nbytes, cap, h, 0.0)

    def reschedule(f: _Flow, t: float) -> None:
        """Move the flow's completion event to its new projected end when its rate changed it."""
        nonlocal seq
        rate = f.rate
        te = t + (f.rem / rate if rate > 0 else (0.0 if f.rem <= 0 else math.inf))
        d = te - f.proj
        tol = 1e-9 * te if te > 1.0 else 1e-9  # abs(d) > 1e-9 * max(1.0, te), without the builtin calls
        if not (d > tol or -d > tol):
            return  # the pending completion event still holds
        f.proj = te
        if te < math.inf:
            seq += 1
            f.version = seq
            heappush(heap, (te, 0, seq, f))
        else:
            f.version = -1

    def reflow(dom: int, t: float) -> None:
        """Advance the domain's transfers to time t, recompute fair rates, reschedule their completions."""
        fl = flows_by_dom[dom]
        if not fl:
            return
        # (a flow with a completion event already (proj >= 0) whose rate did not change keeps the event: `reschedule`
        # would find that it still holds)
        if len(fl) == 1 and fl[0].cost <= 0:  # one transfer in flight (the common case): `_waterfill` inlined
            f = fl[0]
            f.rem -= f.rate * (t - f.t0)
            if f.rem < 0:
                f.rem = 0.0
            f.t0 = t
            r = f.cap if f.cap < pipe_cap else pipe_cap
            hbm_used = r * f.h
            if hbm_used > hbm_cap > 0:
                r *= hbm_cap / hbm_used
            if r != f.rate or f.proj < 0.0:
                f.rate = r
                reschedule(f, t)
            return
        for f in fl:
            if f.cost <= 0:
                rem = f.rem - f.rate * (t - f.t0)
                f.rem = 0.0 if rem < 0 else rem
            f.t0 = t
        if len(fl) == 2 and fl[0].cost <= 0 and fl[1].cost <= 0 and fl[0].core == fl[1].core:
            # two transfers of one core (the next common case): `_waterfill` / `_fair_shares` inlined, with the
            # same arithmetic in the same order (the smaller cap first, as the stable sort by cap puts it)
            a, b = fl
            if b.cap < a.cap:
                a, b = b, a
            share = pipe_cap / 2
            ra = a.cap if a.cap < share else share
            left = pipe_cap - ra
            rb = b.cap if b.cap < left else left
            hbm_used = ra * a.h + rb * b.h
            if hbm_used > hbm_cap > 0:
                scale = hbm_cap / hbm_used
                if a.h > 0:
                    ra *= scale
                if b.h > 0:
                    rb *= scale
            changed = (ra != a.rate or a.proj < 0.0, rb != b.rate or b.proj < 0.0)
            a.rate = ra
            b.rate = rb
            f = fl[0]
            if changed[f is b]:  # (in the order of `fl`, as the events' numbers break ties)
                reschedule(f, t)
            f = fl[1]
            if changed[f is b]:
                reschedule(f, t)
            return
        old = [f.rate for f in fl]
        _waterfill(fl, pipe_cap, hbm_cap)
        for f, r in zip(fl, old):
            if f.cost <= 0 and (f.rate != r or f.proj < 0.0):
                reschedule(f, t)

    # ------------------------------------------------------------------ main loop
    kind_names = [_KIND_NAME[k] for k in range(8)]
    while heap:
        t, prio, i, a = heappop(heap)
        if prio == 0:  # DMA data phase complete
            f = a
            if i != f.version:  # superseded by a later completion event of the flow
                continue
            i = f.i
            if timed[i]:
                continue
            dom = f.dom
            fl = flows_by_dom[dom]
            fl.remove(f)
            if f.cost <= 0 and fl:
                reflow(dom, t)
            st = start[i] = f.start
            end[i] = done[i] = t
            timed[i] = True
            core = f.core
            iv = dma_intervals.get(core)
            if iv is None:
                dma_intervals[core] = [(st, t)]
            else:
                iv.append((st, t))
            rid = rid_of[i]
            w = qwait[rid]
            if w:
                j = w.popleft()
                tj = issue_t[j] + q_delay
                if t > tj:
                    crit[j] = i
                seq += 1
                heappush(heap, (t if t > tj else tj, 1, seq, flow_of[j]))
            else:
                qbusy[rid] = False
            finish_node(i)
            continue
        if prio == 1:  # DMA data phase starts
            f = a
            f.start = t
            f.t0 = t
            fl = flows_by_dom[f.dom]
            fl.append(f)
            if f.cost > 0:
                seq += 1
                f.version = seq
                heappush(heap, (t + f.cost, 0, seq, f))
            elif len(fl) == 1:  # alone in its domain: `reflow` inlined (nothing moved yet, no event pending)
                r = f.cap if f.cap < pipe_cap else pipe_cap
                hbm_used = r * f.h
                if hbm_used > hbm_cap > 0:
                    r *= hbm_cap / hbm_used
                f.rate = r
                te = t + (f.rem / r if r > 0 else (0.0 if f.rem <= 0 else inf))
                f.proj = te
                if te < inf:
                    seq += 1
                    f.version = seq
                    heappush(heap, (te, 0, seq, f))
                else:
                    f.version = -1
            else:
                reflow(f.dom, t)
            continue
        rid = rid_of[i]
        if cand_i[rid] != i or cand_t[rid] != t:  # no longer its resource's candidate
            continue
        cand_i[rid] = -2  # rescanned once this event is done
        ins = stream[i]
        rdy = ready[i]
        ft = free_t[rid]
        st = rdy if rdy > ft else ft
        # (a ready time after the engine's free time comes from a producer: bind[i] >= 0)
        waited = rdy > ft + 1e-9
        if waited:
            w_on = bind[i]
            if w_on >= n:  # a buffer release: the use that released it last
                w_on = bind[w_on]
            wait_on[i] = w_on
            reason_of[i] = kind_names[bind_kind[i]]
            wns = rdy - ft
            wait_ns_of[i] = wns if wns > 0.0 else 0.0
        eng = eng_of[i]
        if eng == DMA:
            scheduled[i] = True
            ready_l[rid].remove(i)
            # trigger the transfer (serialised per issuer); its data phase starts when its FIFO queue is free
            ik = issuer_of[rid]
            ifree = issuer_free[ik]
            crit[i] = bind[i] if rdy >= ifree else issuer_last[ik]
            t_issue = ifree if ifree > st else st
            issuer_free[ik] = t_issue + issue_ns
            issuer_last[ik] = i
            issue_t[i] = t_issue
            attrs = ins.attrs
            nb = attrs.get("bytes", 0)
            if nb:
                fbytes = float(nb)
            else:
                wrs = ins.writes
                fbytes = float(wrs[0].nbytes if wrs else 0)
            f = flow_of[i] = dma_flow(i, ins, attrs, fbytes)
            if qbusy[rid]:
                w = qwait[rid]
                if w is None:
                    qwait[rid] = deque((i,))
                else:
                    w.append(i)
            else:
                qbusy[rid] = True
                seq += 1
                heappush(heap, (t_issue + q_delay, 1, seq, f))
            nbytes = int(nb or 0)
            dma_bytes += nbytes
            if "hbm" in attrs.get("direction", ""):
                hbm_bytes += nbytes
            free_t[rid] = t_issue
            last_of[rid] = i
            # move the head past the instructions already scheduled
            order = orders[rid]
            h = heads[rid]
            ol = olen[rid]
            while h < ol and scheduled[order[h]]:
                h += 1
            heads[rid] = h
            rescan(rid)
            continue
        spec = ins.spec
        cost = spec.cost(ins, arch) if spec is not None else 0.0
        if eng == TENSOR:
            attrs = ins.attrs
            if attrs.get("M") is not None:
                rds = ins.reads
                if rds:
                    sa = rds[0]
                    sid = (sa.storage.id, sa.p_lo, sa.p_hi, sa.f_lo, sa.f_hi)
                else:
                    sid = None
                if sid is None or sid != last_stationary.get(ins.core):
                    ls = loadstationary_ns(ins, arch)
                    if ls > cost:
                        cost = ls
                last_stationary[ins.core] = sid
                pe_flops += ins.flops
                if not attrs.get("transpose"):
                    flops += ins.flops
        if st - ft > 1e-9:
            gaps.append((rid, i, st - ft, waited, last_of[rid] < 0))  # booked by `idle_breakdown`
        if barrier_of and i in barrier_of:
            gk = barrier_of[i]
            arr = barrier_arrived.setdefault(gk, [])
            arr.append((i, st))
            scheduled[i] = True
            ready_l[rid].remove(i)
            blocked[rid] = True
            if len(arr) < len(barrier_groups[gk]):
                continue
            last_i, t_all = max(arr, key=lambda a: a[1])
            for j, _sj in arr:  # every partner's resource is rescanned once all are released
                cand_i[rid_of[j]] = -2
            for j, sj in arr:
                rj = rid_of[j]
                cj = stream[j].spec.cost(stream[j], arch) if stream[j].spec is not None else 0.0
                end[j] = done[j] = t_all + cj
                # a core that arrives first waits for the last core's barrier record (a cross-core wait)
                cross = j != last_i and t_all - sj > 1e-9
                start[j] = issue_t[j] = sj
                if not (j == i and waited and not cross):  # the last core to arrive keeps what delayed it
                    wait_on[j] = last_i if cross else -1
                    wait_ns_of[j] = t_all - sj
                    reason_of[j] = "barrier"
                timed[j] = True
                busy[stream[j].engine] = busy.get(stream[j].engine, 0.0) + cj
                if cross:
                    li = stream[last_i]
                    ik = ("barrier", f"core {li.core} {li.engine}", describe(li), li.loc)
                    gaps.append((-1, stream[j].engine, t_all - sj, ik, False))  # (booked as it is)
                blocked[rj] = False
                free_t[rj] = end[j]
                last_end[rj] = max(last_end[rj], end[j])
                if cross:
                    crit[j] = last_i
                elif j == i:
                    crit[j] = bind[i] if waited else last_of[rj]
                else:  # arrived at the same time as the last core: its own binding dependency
                    crit[j] = bind[j] if bind[j] >= 0 else last_of[rj]
                last_of[rj] = j
                order = orders[rj]
                h = heads[rj]
                while h < olen[rj] and scheduled[order[h]]:
                    h += 1
                heads[rj] = h
                finish_node(j)
            for j, _sj in arr:
                rescan(rid_of[j])
            continue
        en = st + cost
        busy[eng] = busy.get(eng, 0.0) + cost
        crit[i] = bind[i] if waited else last_of[rid]
        start[i] = issue_t[i] = st
        end[i] = en
        done[i] = en + lat_of[rid]
        timed[i] = True
        scheduled[i] = True
        ready_l[rid].remove(i)
        free_t[rid] = en
        if en > last_end[rid]:
            last_end[rid] = en
        last_of[rid] = i
        # move the head past the instructions already scheduled
        order = orders[rid]
        h = heads[rid]
        ol = olen[rid]
        while h < ol and scheduled[order[h]]:
            h += 1
        heads[rid] = h
        finish_node(i)
        rescan(rid)

    # anything left (a barrier whose partners never arrived, a dependency cycle): finish in program order
    for i in range(n):
        if not timed[i]:
            rid = rid_of[i]
            st = max(ready[i], free_t[rid])
            cost = stream[i].spec.cost(stream[i], arch) if stream[i].spec is not None else 0.0
            start[i] = issue_t[i] = st
            wait_on[i] = -1
            wait_ns_of[i] = 0.0
            reason_of[i] = ""
            end[i] = done[i] = st + cost
            free_t[rid] = st + cost
            last_end[rid] = max(last_end[rid], st + cost)

    done_n = done[:n]
    def timings() -> list[Timed]:
        return _timings(start, end, wait_on, wait_ns_of, queue_of, done_n, issue_t, reason_of)

    total = (max(done_n) + arch.launch_overhead_ns) if n else 0.0

    def idle_breakdown() -> dict[str, dict[tuple, float]]:
        """The idle gaps booked to their causes, in the order they occurred."""
        idle: dict[str, dict[tuple, float]] = {}
        for rid, i, gap, a, b in gaps:
            if rid < 0:
                add_idle(i, a, gap)
            else:
                record_idle(rid, i, gap, a, b)
        for (eng, key), v in zip(idle_keys, idle_ns):
            d = idle.get(eng)
            if d is None:
                d = idle[eng] = {}
            d[key] = v
        # tail idle: engines that finished early wait for the kernel's end
        for rid, rk in enumerate(res_keys):
            if rk[1] == "DMA" or not olen[rid]:
                continue
            gap = total - last_end[rid]
            if gap > 1e-9:
                d = idle.setdefault(rk[1], {})
                d[("end", "", "", None)] = d.get(("end", "", "", None), 0.0) + gap
        return idle

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
    est.idle = idle_breakdown
    est.dma_active_ns = dma_active
    est.extra["cores"] = est.cores
    est.extra["dma_queues"] = sorted({q for q in queue_of if q})
    est.critical_path = lambda: _critical_path(done_n, crit, n, bind)  # (found when first read)
    return est


def _critical_path(done: list[float], crit: list[int], n: int, bind: list[int]) -> list[int]:
    """Instructions whose chain of binding constraints (dependency, engine, queue or issuer) ends last."""
    if not done:
        return []
    # the last instruction among those whose result is visible last
    i = len(done) - 1 - done[::-1].index(max(done))
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
