"""Running the cores of a current-API launch (`kernel[2]`): a cooperative scheduler, cross-core synchronisation,
deadlock detection and shared-HBM race detection.

Each core runs the kernel function in its own Python thread, but only one thread runs at a time: a core keeps
the baton until it blocks (sendrecv, core_barrier, a collective) or returns, then hands it to the next core that
can make progress. Execution is therefore deterministic, and when no core can make progress while some core is
still waiting, the wait can never complete: `NkiDeadlockError` names every core's waiting line.

All cores emit into one `Run` (one instruction stream); `Run.core` is switched with the baton so every record
carries the core that issued it. Each core has its own SBUF/PSUM storages, accumulator registers and RNG state;
`shared_hbm` allocations and kernel parameters are shared.

Races: every access to shared HBM is logged with the issuing core and its vector-clock epoch. Synchronisation
(sendrecv pairs, core barriers, collectives) orders everything a core did before it against everything the
other cores do after it. An access that overlaps an unordered access of another core, where at least one of them
is a write, is a race (`NkiRaceError`); two unordered writes of identical bytes are reported as a warning only.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ...core.context import Run, activate
from ...core.errors import NkiDeadlockError, NkiRaceError, NkiValidationError
from ...core.source import SourceLoc, caller_location
from ...core.tensor import Tensor


class _Abort(BaseException):
    """Unwinds a core whose launch failed on another core (not an error of this core)."""


class Wait:
    """What a blocked core waits for, where, and how to tell that it can go on."""

    __slots__ = ("what", "loc", "ready")

    def __init__(self, what: str, loc: SourceLoc, ready: Callable[[], bool]) -> None:
        self.what, self.loc, self.ready = what, loc, ready


class LncRun(Run):
    """The Run of a current-API launch; `lnc` is its core scheduler."""

    lnc: CoreScheduler | None = None


class _Post:
    __slots__ = ("core", "src", "dst", "peer_send", "peer_recv", "pipe", "engine", "loc", "sent", "received")

    def __init__(self, core, src, dst, send_to, recv_from, pipe, engine, loc) -> None:
        self.core, self.src, self.dst = core, src, dst
        self.peer_send, self.peer_recv, self.pipe, self.engine, self.loc = send_to, recv_from, pipe, engine, loc
        self.sent = False
        self.received = False


class _Rec:
    """One logged access to a shared-HBM storage."""

    __slots__ = ("core", "epoch", "kind", "box", "view", "loc")

    def __init__(self, core: int, epoch: int, kind: str, box: tuple, view: Tensor, loc: SourceLoc) -> None:
        self.core, self.epoch, self.kind, self.box, self.view, self.loc = core, epoch, kind, box, view, loc


def _boxes_overlap(a: tuple, b: tuple) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def _bytes_of(view: Tensor) -> np.ndarray:
    """Sorted unique byte offsets (from the storage start) every element of `view` covers."""
    starts = view.element_offsets()
    size = view.array.dtype.itemsize
    if size == 1:
        return starts
    return np.unique((starts[:, None] + np.arange(size, dtype=np.int64)).reshape(-1))


class CoreScheduler:
    """Cooperative execution of the cores of one launch; see the module docstring."""

    def __init__(self, run: Run, ncores: int) -> None:
        self.run = run
        self.n = ncores
        self.cv = threading.Condition()
        self.turn = 0
        self.status = ["ready"] * ncores
        self.waits: list[Wait | None] = [None] * ncores
        self.results: list[Any] = [None] * ncores
        self.error: BaseException | None = None
        self.abort = False
        self.loops: list[list] = [[] for _ in range(ncores)]
        # synchronisation state
        self.vc = [[0] * ncores for _ in range(ncores)]
        self.sends: dict[tuple, deque[_Post]] = defaultdict(deque)
        self.recvs: dict[tuple, deque[_Post]] = defaultdict(deque)
        self.barrier_count: dict[tuple, int] = defaultdict(int)
        self.barrier_synced: set[tuple] = set()
        self.coll_seq: dict[tuple, int] = defaultdict(int)
        self.coll_slots: dict[tuple, dict[int, tuple]] = {}
        self.coll_done: set[tuple] = set()
        # shared HBM
        self.shared: list[Tensor] = []
        self.shared_next = [0] * ncores
        self.logs: dict[tuple[int, str], list[_Rec]] = {}

    # ================================================================== execution
    def execute(self, func: Callable, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        threads = [
            threading.Thread(target=self._core_main, args=(c, func, args, kwargs), name=f"trnsim-core{c}", daemon=True)
            for c in range(self.n)
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if self.error is not None:
            raise self.error
        return self.results[0]

    def release(self) -> None:
        """Drop the references to tensors kept for synchronisation and race checks (after the launch)."""
        self.logs.clear()
        self.shared.clear()
        self.sends.clear()
        self.recvs.clear()
        self.coll_slots.clear()

    def _core_main(self, c: int, func: Callable, args: Sequence[Any], kwargs: dict[str, Any]) -> None:
        with activate(self.run):
            with self.cv:
                self.cv.wait_for(lambda: self.turn == c or self.abort)
                if self.abort:
                    self.status[c] = "aborted"
                    return
                self.status[c] = "running"
                self._enter(c)
            final = "done"
            try:
                self.results[c] = func(*args, **kwargs)
            except _Abort:
                final = "aborted"
            except BaseException as e:  # noqa: BLE001 - re-raised by execute() in the launching thread
                final = "failed"
                with self.cv:
                    if self.error is None:
                        self.error = e
                    self.abort = True
                    self.cv.notify_all()
            with self.cv:
                self.status[c] = final
                self._leave(c)
                if not self.abort:
                    self._pass_turn(c)
                else:
                    self.cv.notify_all()

    def _enter(self, c: int) -> None:
        run = self.run
        run.core = c
        run.program_id = (c,)
        run.loops = self.loops[c]

    def _leave(self, c: int) -> None:
        self.loops[c] = self.run.loops

    def _runnable(self, d: int) -> bool:
        s = self.status[d]
        if s == "ready":
            return True
        w = self.waits[d]
        return s == "blocked" and w is not None and w.ready()

    def _pass_turn(self, c: int) -> None:
        for k in range(1, self.n + 1):
            d = (c + k) % self.n
            if self._runnable(d):
                self.turn = d
                self.cv.notify_all()
                return
        blocked = [d for d in range(self.n) if self.status[d] == "blocked"]
        if blocked:
            err = self._deadlock_error()
            self.abort = True
            if self.error is None:
                self.error = err
            self.cv.notify_all()
            if self.status[c] == "blocked":
                raise err
        self.turn = -1
        self.cv.notify_all()

    def _deadlock_error(self) -> NkiDeadlockError:
        parts, values = [], {}
        first_loc = None
        for d in range(self.n):
            w = self.waits[d] if self.status[d] == "blocked" else None
            if w is not None:
                parts.append(f"core {d} waits in {w.what} at {w.loc}")
                values[f"core{d}"] = f"{w.what} at {w.loc}"
                first_loc = first_loc or w.loc
            else:
                state = {"done": "has returned from the kernel", "failed": "failed"}.get(self.status[d], self.status[d])
                parts.append(f"core {d} {state}")
                values[f"core{d}"] = state
        return NkiDeadlockError(
            "deadlock: no core can make progress; " + "; ".join(parts),
            code="err_deadlock",
            values=values,
            loc=first_loc,
            hint="every sendrecv needs a matching sendrecv on the peer core (same pipe_id, send_to/recv_from "
            "swapped), and every core listed in a core_barrier / collective must reach it the same number of times",
        )

    def block(self, wait: Wait) -> None:
        """Block the current core until `wait.ready()`; other cores run meanwhile."""
        c = self.run.core
        with self.cv:
            if wait.ready():
                return
            self.status[c] = "blocked"
            self.waits[c] = wait
            self._leave(c)
            self._pass_turn(c)
            self.cv.wait_for(lambda: self.turn == c or self.abort)
            if self.abort:
                raise _Abort()
            self.status[c] = "running"
            self.waits[c] = None
            self._enter(c)

    @contextmanager
    def as_core(self, c: int) -> Iterator[None]:
        """Emit records as core `c` (used when one core's action completes another core's instruction)."""
        run = self.run
        prev = (run.core, run.program_id, run.loops)
        if c != run.core:
            self.loops[run.core] = run.loops
            run.core, run.program_id, run.loops = c, (c,), self.loops[c]
        try:
            yield
        finally:
            run.core, run.program_id, run.loops = prev

    # ================================================================== vector clocks
    def _sync(self, cores: Sequence[int]) -> None:
        """Full synchronisation among `cores`: each learns everything the others did so far."""
        merged = [max(self.vc[c][x] for c in cores) for x in range(self.n)]
        for c in cores:
            merged[c] = max(merged[c], self.vc[c][c] + 1)
        for c in cores:
            self.vc[c] = list(merged)
        self._prune()

    def _learn(self, receiver: int, sender: int) -> None:
        """`receiver` learns everything `sender` did so far (one-directional order)."""
        e = self.vc[sender][sender]
        for x in range(self.n):
            self.vc[receiver][x] = max(self.vc[receiver][x], self.vc[sender][x])
        self.vc[receiver][sender] = max(self.vc[receiver][sender], e + 1)
        self.vc[sender][sender] = e + 1

    def _prune(self) -> None:
        for key, recs in list(self.logs.items()):
            keep = [r for r in recs if any(self.vc[d][r.core] <= r.epoch for d in range(self.n) if d != r.core)]
            if keep:
                self.logs[key] = keep
            else:
                del self.logs[key]

    # ================================================================== sendrecv / barrier / collectives
    def sendrecv(self, src: Tensor, dst: Tensor, send_to: int, recv_from: int, pipe: int, engine: str, loc: SourceLoc) -> None:
        from ...isa import dma

        c = self.run.core
        for nm, r in (("send_to_rank", send_to), ("recv_from_rank", recv_from)):
            if not 0 <= r < self.n:
                raise NkiValidationError(
                    f"nisa.sendrecv: {nm}={r} is not a core of this launch (LNC={self.n}; ranks are 0..{self.n - 1})",
                    code="err_invalid_rank",
                    values={nm: r, "lnc": self.n},
                    loc=loc,
                    hint="launch the kernel on two cores with kernel[2](...)" if self.n == 1 else None,
                )
        post = _Post(c, src, dst, send_to, recv_from, pipe, engine, loc)
        self.sends[(c, send_to, pipe)].append(post)
        self.recvs[(recv_from, c, pipe)].append(post)
        for key in ((c, send_to, pipe), (recv_from, c, pipe)):
            q_s, q_r = self.sends[key], self.recvs[key]
            while q_s and q_r:
                s, r = q_s.popleft(), q_r.popleft()
                with self.as_core(s.core):
                    dma.sendrecv(
                        r.dst, s.src, src_core=s.core, dst_core=r.core, pipe_id=pipe, dma_engine=s.engine, loc=s.loc,
                        api="nisa.sendrecv",
                    )
                self._learn(r.core, s.core)
                s.sent = True
                r.received = True
        detail = f"nisa.sendrecv (pipe {pipe}, sending to core {send_to}, receiving from core {recv_from})"
        self.block(Wait(detail, loc, lambda: post.sent and post.received))

    def barrier(self, cores: tuple[int, ...], loc: SourceLoc) -> None:
        c = self.run.core
        key = tuple(sorted(set(cores)))
        for r in key:
            if not 0 <= r < self.n:
                raise NkiValidationError(
                    f"nisa.core_barrier: core {r} is not part of this launch (LNC={self.n})",
                    code="err_invalid_rank",
                    values={"cores": cores, "lnc": self.n},
                    loc=loc,
                    hint="launch the kernel on two cores with kernel[2](...)" if self.n == 1 else None,
                )
        if c not in key:
            raise NkiValidationError(
                f"nisa.core_barrier: core {c} calls a barrier for cores {key} it is not part of",
                code="err_invalid_rank",
                values={"cores": cores},
                loc=loc,
            )
        self.barrier_count[(key, c)] += 1
        gen = self.barrier_count[(key, c)]

        def ready() -> bool:
            return all(self.barrier_count[(key, d)] >= gen for d in key)

        if ready() and (key, gen) not in self.barrier_synced:
            self.barrier_synced.add((key, gen))
            self._sync(key)
        self.block(Wait(f"nisa.core_barrier(cores={key})", loc, ready))

    def collective(self, group: tuple[int, ...], kind: str, payload: Any, loc: SourceLoc, perform: Callable) -> Any:
        """Rendezvous of the k-th collective of `group`; the last rank to arrive runs `perform(slots)`."""
        c = self.run.core
        for r in group:
            if not 0 <= r < self.n:
                raise NkiValidationError(
                    f"nki.collectives.{kind}: rank {r} of replica group {list(group)} is not simulated; trnsim runs a "
                    f"collective among the {self.n} core(s) of the launch (ranks 0..{self.n - 1})",
                    code="err_invalid_rank",
                    values={"group": list(group), "lnc": self.n},
                    loc=loc,
                )
        if c not in group:
            raise NkiValidationError(
                f"nki.collectives.{kind}: core {c} is not in replica group {list(group)}",
                code="err_invalid_rank",
                values={"group": list(group)},
                loc=loc,
            )
        seq = self.coll_seq[(c, group)]
        self.coll_seq[(c, group)] = seq + 1
        slot_key = (group, seq)
        slot = self.coll_slots.setdefault(slot_key, {})
        slot[c] = (kind, payload, loc)
        if len(slot) == len(group):
            kinds = {k for k, _, _ in slot.values()}
            if len(kinds) > 1:
                desc = "; ".join(f"core {r} calls {k} at {lc}" for r, (k, _, lc) in sorted(slot.items()))
                raise NkiValidationError(
                    f"mismatched collectives in replica group {list(group)}: {desc}",
                    code="err_collective_mismatch",
                    values={"group": list(group)},
                    loc=loc,
                )
            perform(slot)
            self._sync(group)
            self.coll_done.add(slot_key)
        self.block(Wait(f"nki.collectives.{kind} (replica group {list(group)})", loc, lambda: slot_key in self.coll_done))

    # ================================================================== shared HBM
    def shared_alloc(self, shape: tuple[int, ...], dtype: Any, make: Callable[[], Tensor]) -> Tensor:
        """The k-th shared_hbm allocation of every core is one tensor."""
        c = self.run.core
        k = self.shared_next[c]
        self.shared_next[c] = k + 1
        if k < len(self.shared):
            t = self.shared[k]
            if tuple(t.shape) == tuple(shape) and t.dtype == dtype:
                return t
            self.run.warn(
                "warn_divergent_shared_hbm",
                f"core {c} allocates shared_hbm tensor #{k} as {tuple(shape)} but another core allocated "
                f"{tuple(t.shape)}; the cores get separate tensors",
            )
            return make()
        t = make()
        self.shared.append(t)
        return t

    def check_access(self, reads: Sequence[Tensor], writes: Sequence[Tensor], loc: SourceLoc) -> Callable[[], None]:
        """Race check of one instruction's shared-HBM accesses, before it runs; returns the post-write step."""
        if self.n == 1:
            return _noop
        c = self.run.core
        vc = self.vc[c]
        pending: list[tuple[_Rec, Tensor, np.ndarray, np.ndarray]] = []
        new: list[_Rec] = []
        for kind, tensors in (("read", reads), ("write", writes)):
            for t in tensors:
                if t is None or not isinstance(t, Tensor):
                    continue
                st = t.storage
                if st.buffer.kind != "hbm" or not st.buffer.shared:
                    continue
                box = t.region()
                earlier = self.logs.get((st.id, "write"), []) + (self.logs.get((st.id, "read"), []) if kind == "write" else [])
                for rec in earlier:
                    if rec.core == c or rec.epoch < vc[rec.core] or not _boxes_overlap(rec.box, box):
                        continue
                    common = np.intersect1d(_bytes_of(rec.view), _bytes_of(t), assume_unique=True)
                    if common.size == 0:
                        continue
                    if kind == "write" and rec.kind == "write":
                        flat = t.mem.data.reshape(-1).view(np.uint8)
                        pending.append((rec, t, common, flat[common].copy()))
                        continue
                    raise self._race_error(c, kind, t, rec, loc)
                new.append(_Rec(c, vc[c], kind, box, t, loc))

        def after() -> None:
            for rec, t, common, before in pending:
                flat = t.mem.data.reshape(-1).view(np.uint8)
                if not np.array_equal(flat[common], before):
                    raise self._race_error(c, "write", t, rec, loc, differing=True)
                self.run.warn(
                    "warn_cross_core_duplicate_write",
                    f"cores {rec.core} and {c} both write the same {common.size} bytes of shared HBM tensor "
                    f"'{t.storage.name}' without synchronisation (identical values, so the result is deterministic; "
                    f"the other write is at {rec.loc.short})",
                    loc,
                )
            for r in new:
                self.logs.setdefault((r.view.storage.id, r.kind), []).append(r)

        return after

    def _race_error(self, c: int, kind: str, t: Tensor, rec: _Rec, loc: SourceLoc, differing: bool = False) -> NkiRaceError:
        what = "different values" if differing else f"a {rec.kind}"
        return NkiRaceError(
            f"race between cores on shared HBM tensor '{t.storage.name}': core {c} {kind}s it at {loc.short} while "
            f"core {rec.core} {rec.kind}s overlapping elements at {rec.loc.short} ({what}) with no core_barrier, "
            f"sendrecv or collective ordering the two",
            code="err_cross_core_race",
            values={"tensor": t.storage.name, f"core{c}": str(loc), f"core{rec.core}": str(rec.loc)},
            loc=loc,
            hint="separate the accesses with nisa.core_barrier(data, cores=(0, 1)) (or exchange the data with "
            "nisa.sendrecv), or give each core a disjoint part of the tensor",
        )


def _noop() -> None:
    return None


def scheduler() -> CoreScheduler | None:
    from ...core.context import maybe_current

    run = maybe_current()
    return getattr(run, "lnc", None) if run is not None else None


def here() -> SourceLoc:
    return caller_location(3)
