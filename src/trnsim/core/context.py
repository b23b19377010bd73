"""The state of one kernel launch: target, instruction stream, loops, engine registers, diagnostics."""

from __future__ import annotations

import itertools
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..timing.arch import Arch, get_arch
from .errors import NkiError, NkiRaceError, NkiWarning
from .instruction import Access, Instruction
from .memory import Storage, _ids
from .source import SourceLoc, caller_location


@dataclass
class Diagnostic:
    """A warning collected during a run (also emitted as a Python warning once per source line)."""

    code: str
    message: str
    loc: SourceLoc

    def __str__(self) -> str:
        return f"{self.loc}: [{self.code}] {self.message}"


class LoopFrame:
    """One active loop. Affine frames record accesses to outside storages per iteration to find races."""

    __slots__ = ("kind", "iteration", "first_id", "records", "loc", "trip")

    def __init__(self, kind: str, loc: SourceLoc, trip: int) -> None:
        self.kind = kind
        self.iteration = -1
        self.first_id = next(_ids)  # storages with a larger id were allocated inside this loop
        self.records: dict[int, _AccessLog] = {}
        self.loc = loc
        self.trip = trip


class _AccessLog:
    """Boxes touched in one storage, per loop iteration (a list of rows, turned into a NumPy array for vectorised
    checks only when a conflict is possible, see `may_conflict`)."""

    __slots__ = ("_buf", "_done", "_pending", "n", "accesses", "spans")

    def __init__(self) -> None:
        self._buf: np.ndarray | None = None  # rows: iteration, kind, p_lo, p_hi, f_lo, f_hi (made on first check)
        self._done = 0  # rows of _buf filled
        self._pending: list[tuple[int, int, int, int, int, int]] = []  # rows logged since (cheap appends)
        self.n = 0
        self.accesses: list[tuple[Access, Any, SourceLoc]] = []
        self.spans: list[tuple[int, int] | None] = [None, None, None]  # per kind: (first, last) iteration logged

    @property
    def boxes(self) -> np.ndarray:
        """All logged rows as an [n, 6] array (pending rows are moved into the growable buffer in one go)."""
        if self._buf is None:
            self._buf = np.empty((max(8, self.n), 6), dtype=np.int64)
        if self._pending:
            need = self.n
            if need > len(self._buf):
                buf = np.empty((max(need, 2 * len(self._buf)), 6), dtype=np.int64)
                buf[: self._done] = self._buf[: self._done]
                self._buf = buf
            self._buf[self._done : need] = self._pending
            self._done = need
            self._pending = []
        return self._buf[: self.n]

    def add(self, it: int, kind: int, acc: Access, tensor: Any, loc: SourceLoc) -> None:
        self._pending.append((it, kind, acc.p_lo, acc.p_hi, acc.f_lo, acc.f_hi))
        self.n += 1
        self.accesses.append((acc, tensor, loc))
        sp = self.spans[kind]
        if sp is None:
            self.spans[kind] = (it, it)
        elif not sp[0] <= it <= sp[1]:
            self.spans[kind] = (min(sp[0], it), max(sp[1], it))

    def overlapping(self, it: int, kind: int, acc: Access) -> list[tuple[int, tuple[int, int]]]:
        """(row, (iteration, kind)) of the logged accesses from other iterations, of a kind that conflicts with
        `kind`, whose boxes overlap `acc`'s."""
        if self._buf is None and self.n <= _SMALL_LOG:
            # a handful of rows (a short affine loop): a plain loop is cheaper than building and scanning an array
            p_lo, p_hi, f_lo, f_hi = acc.p_lo, acc.p_hi, acc.f_lo, acc.f_hi
            return [
                (j, (it2, k2))
                for j, (it2, k2, plo, phi, flo, fhi) in enumerate(self._pending)
                if it2 != it
                and (k2 != READ if kind == READ else k2 != ACCUM if kind == ACCUM else True)
                and plo < p_hi
                and p_lo < phi
                and flo < f_hi
                and f_lo < fhi
            ]
        b = self.boxes
        other_iter = b[:, 0] != it
        if kind == READ:
            relevant = b[:, 1] != READ
        elif kind == ACCUM:
            relevant = b[:, 1] != ACCUM
        else:
            relevant = np.ones(self.n, dtype=bool)
        hit = (
            other_iter
            & relevant
            & (b[:, 2] < acc.p_hi)
            & (acc.p_lo < b[:, 3])
            & (b[:, 4] < acc.f_hi)
            & (acc.f_lo < b[:, 5])
        )
        return [(int(j), (int(b[j, 0]), int(b[j, 1]))) for j in np.flatnonzero(hit)]

    def may_conflict(self, it: int, kind: int) -> bool:
        """Is there a logged access of a conflicting kind from another iteration (else no box test is needed)?"""
        for k2 in (WRITE, ACCUM) if kind == READ else (READ, WRITE) if kind == ACCUM else (READ, WRITE, ACCUM):
            sp = self.spans[k2]
            if sp is not None and not sp[0] == sp[1] == it:
                return True
        return False


READ, WRITE, ACCUM = 0, 1, 2
_SMALL_LOG = 32  # logs up to this many rows are checked row by row (see _AccessLog.overlapping)
_KIND_NAMES = {READ: "read", WRITE: "write", ACCUM: "accumulate"}


class Run:
    """Everything one kernel launch (one program of a grid, or one core of an LNC=2 launch) shares."""

    def __init__(
        self,
        arch: Arch | str | None = None,
        *,
        numerics: bool = True,
        check_races: bool = True,
        kernel_name: str = "kernel",
        api: str = "legacy",
    ) -> None:
        self.arch = get_arch(arch)
        self.numerics = numerics
        self.check_races = check_races
        self.kernel_name = kernel_name
        self.api = api
        self.stream: list[Instruction] = []
        self.core = 0
        self.grid: tuple[int, ...] = ()
        self.program_id: tuple[int, ...] = ()
        self.num_cores = 1
        self.loops: list[LoopFrame] = []
        self.diagnostics: list[Diagnostic] = []
        self._warned: set[tuple[str, SourceLoc]] = set()
        self.storages: list[Storage] = []
        self.scalar_acc: dict[int, np.ndarray] = {}
        self.vector_acc: dict[int, np.ndarray] = {}
        self.rng = np.random.default_rng(0)
        self.printed: list[str] = []
        self.extra: dict[str, Any] = {}
        self._shared_hbm: list[Any] = []
        self._shared_hbm_next = 0

    # ------------------------------------------------------------------ SPMD-shared HBM allocations
    def begin_program(self) -> None:
        self._shared_hbm_next = 0

    def shared_hbm_lookup(self, shape: tuple, dtype: Any) -> Any:
        """In programs after the first, the k-th shared_hbm allocation is the first program's k-th one."""
        k = self._shared_hbm_next
        if k < len(self._shared_hbm):
            t = self._shared_hbm[k]
            if tuple(t.shape) == tuple(shape) and t.dtype == dtype:
                self._shared_hbm_next += 1
                return t
        return None

    def shared_hbm_record(self, t: Any) -> None:
        self._shared_hbm.append(t)
        self._shared_hbm_next = len(self._shared_hbm)

    # ------------------------------------------------------------------ diagnostics
    def warn(self, code: str, message: str, loc: SourceLoc | None = None) -> None:
        loc = loc or caller_location(2)
        key = (code, loc)
        if key in self._warned:
            return
        self._warned.add(key)
        self.diagnostics.append(Diagnostic(code, message, loc))
        with warnings.catch_warnings():
            warnings.simplefilter("always", NkiWarning)
            warnings.warn_explicit(f"[{code}] {message}", NkiWarning, loc.file, loc.line, module="trnsim")

    # ------------------------------------------------------------------ registers
    def accumulator(self, engine: str) -> np.ndarray:
        regs = self.scalar_acc if engine == "Scalar" else self.vector_acc
        acc = regs.get(self.core)
        if acc is None:
            acc = np.zeros(128, dtype=np.float32)
            regs[self.core] = acc
        return acc

    # ------------------------------------------------------------------ the stream
    def emit(self, instr: Instruction) -> Instruction:
        instr.idx = len(self.stream)
        instr.core = self.core
        loops = self.loops
        if loops:
            instr.iteration = (loops[0].iteration,) if len(loops) == 1 else tuple([f.iteration for f in loops])
            if self.check_races:
                affine = self.affine_loops()
                if affine:
                    self._check_races(affine, instr)
                    # The loop logs hold what exact checks need; records must not keep views (and arrays) alive.
                    # (isa.common.emit keeps views in the accesses only inside affine loops)
                    for acc in instr.reads:
                        acc.tensor = None
                    for acc in instr.writes:
                        acc.tensor = None
        self.stream.append(instr)
        return instr

    def retarget(self, instr: Instruction, index: int, access: Access) -> None:
        """Point an already emitted instruction's write at another region (legacy tile assignment)."""
        instr.writes[index] = access
        if self.check_races and self.loops:
            affine = self.affine_loops()
            # (a tile allocated inside the innermost affine loop is private to each iteration of every one of them:
            # there is nothing to log, see _check_races)
            if affine and access.storage.id < affine[-1].first_id:
                self._check_races(affine, Instruction(instr.engine, instr.opcode, [], [access], instr.loc))
            access.tensor = None

    # ------------------------------------------------------------------ loops and races
    def affine_loops(self) -> list[LoopFrame] | None:
        """The enclosing affine loops, outermost first (their iterations are checked for races), or None when
        there are none: a plain scan first, since most instructions sit in no affine loop."""
        loops = self.loops
        for frame in loops:
            if frame.kind == "affine":
                return [f for f in loops if f.kind == "affine"]
        return None

    @contextmanager
    def loop(self, kind: str, trip: int, loc: SourceLoc) -> Iterator[LoopFrame]:
        frame = LoopFrame(kind, loc, trip)
        self.loops.append(frame)
        try:
            yield frame
        finally:
            self.loops.remove(frame)

    def _check_races(self, frames: list[LoopFrame], instr: Instruction) -> None:
        """Log `instr`'s accesses in each enclosing affine loop (outermost first) and report a conflict with another
        iteration's access. Storages allocated inside a loop are private to each of its iterations (and to the
        iterations of the loops inside it, which start later: their `first_id` is larger)."""
        acc_into = self.extra.get("accumulate_into")  # storage of a legacy `t[...] += x` in progress
        items = []
        for kind, accesses in ((READ, instr.reads), (WRITE, instr.writes)):
            for acc in accesses:
                st = acc.storage
                items.append((st.id, ACCUM if ((kind == WRITE and acc.accumulate) or st is acc_into) else kind, acc))
        loc = instr.loc
        for frame in frames:
            it = frame.iteration
            first = frame.first_id
            records = frame.records
            for sid, k, acc in items:
                if sid >= first:
                    continue  # allocated inside the loop: private to each iteration
                log = records.get(sid)
                if log is None:
                    log = records[sid] = _AccessLog()
                elif log.n and log.may_conflict(it, k):
                    self._conflicts(frame, log, it, k, acc, instr)
                log.add(it, k, acc, acc.tensor, loc)

    def _conflicts(self, frame: LoopFrame, log: _AccessLog, it: int, k: int, acc: Access, instr: Instruction) -> None:
        for j, (prev_it, prev_k) in log.overlapping(it, k, acc):
            prev, prev_tensor, prev_loc = log.accesses[j]
            if prev_tensor is not None and acc.tensor is not None:
                common = np.intersect1d(prev_tensor.element_offsets(), acc.tensor.element_offsets())
                if common.size == 0:
                    continue
            prev_kind = _KIND_NAMES[prev_k]
            raise NkiRaceError(
                f"loop-carried dependency inside affine_range: {_KIND_NAMES[k]} of "
                f"{acc.storage.buffer.name} tensor '{acc.storage.name}' in iteration {it} touches the same "
                f"location as a {prev_kind} in iteration {prev_it} (at {prev_loc.short}); iterations of "
                f"an affine_range loop may run in any order or in parallel",
                code="err_unexpected_output_dependencies",
                values={
                    "tensor": acc.storage.name,
                    "partitions": (acc.p_lo, acc.p_hi),
                    "bytes": (acc.f_lo, acc.f_hi),
                    "loop": str(frame.loc),
                },
                loc=instr.loc,
                hint="use nl.sequential_range for loops that carry a dependency, or give each iteration "
                "its own slice of the tensor",
            )


_state = threading.local()


def current() -> Run:
    """The active run; NKI APIs called outside a kernel raise err_nki_api_outside_of_nki_kernel."""
    run = getattr(_state, "run", None)
    if run is None:
        raise NkiError(
            "NKI API called outside of an NKI kernel",
            code="err_nki_api_outside_of_nki_kernel",
            hint="call it inside a function decorated with @nki.jit (or run it via trnsim.simulate_kernel)",
        )
    return run


def maybe_current() -> Run | None:
    return getattr(_state, "run", None)


@contextmanager
def activate(run: Run) -> Iterator[Run]:
    prev = getattr(_state, "run", None)
    _state.run = run
    try:
        yield run
    finally:
        _state.run = prev


@dataclass
class LaunchResult:
    """What a launch leaves behind besides its outputs: the runs (one per program/core) and diagnostics."""

    runs: list[Run] = field(default_factory=list)

    @property
    def stream(self) -> list[Instruction]:
        return [i for r in self.runs for i in r.stream]


_counter = itertools.count()
