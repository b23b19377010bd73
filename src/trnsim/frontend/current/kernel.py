"""Current-API launch: `nki.jit`, `Kernel[lnc]`, `nki.simulate` and the `TRNSIM_SIMULATOR` / `NKI_SIMULATOR`
switch, on top of `trnsim.core.launch.launch` with the LNC scheduler as executor.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any

from ...core.context import maybe_current
from ...core.errors import NkiError, NkiMemoryError, NkiUnsupportedError, NkiValidationError, trim_traceback
from ...core.launch import Launch, _is_jax, _is_torch, is_array, launch
from ...core.memory import SHARED_HBM
from ...core.source import caller_location
from ...core.tensor import Tensor
from . import lint
from .lnc import CoreScheduler, LncRun
from .tensor import NkiTensor


def simulator_requested() -> bool:
    """TRNSIM_SIMULATOR=1 (or AWS's NKI_SIMULATOR=1) routes every @nki.jit call to the simulator."""
    for var in ("TRNSIM_SIMULATOR", "NKI_SIMULATOR"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return False


class Kernel:
    """A kernel function wrapped by `nki.jit`; `kernel[2](...)` launches it on two NeuronCores (LNC=2)."""

    def __init__(self, func: Callable, lnc: int | None = None, options: dict[str, Any] | None = None,
                 schedule: tuple = ()) -> None:
        self.func = func
        self.lnc = lnc
        self.options = dict(options or {})
        self.schedule = tuple(schedule)
        self.last_launch: Launch | None = None
        functools.update_wrapper(self, func)
        self._trnsim_current = self

    def __getitem__(self, lnc: Any) -> Kernel:
        if isinstance(lnc, tuple):
            if len(lnc) != 1:
                raise NkiValidationError(
                    f"kernel[...] takes a single LNC degree (1 or 2) in the current API, got {lnc}",
                    code="err_invalid_launch_grid",
                    hint="multi-dimensional SPMD grids belong to the legacy neuronxcc.nki API",
                    loc=caller_location(),
                )
            lnc = lnc[0]
        if isinstance(lnc, bool) or not isinstance(lnc, int) or lnc not in (1, 2):
            raise NkiValidationError(
                f"kernel[lnc]: the LNC degree must be 1 or 2, got {lnc!r}",
                code="err_invalid_launch_grid",
                values={"lnc": lnc},
                loc=caller_location(),
            )
        return Kernel(self.func, lnc, self.options, self.schedule)

    def with_target(self, target: str) -> Kernel:
        """The same kernel launched on `target` (trnsim.simulate_kernel / estimate pass their target here)."""
        return Kernel(self.func, self.lnc, {**self.options, "_target": target}, self.schedule)

    def with_schedule(self, edges: Any) -> Kernel:
        """Dependency edges between named instructions (`name=` of nisa calls): a list of
        (consumer, producer_or_list_of_producers[, nki.isa.dependency kind]). trnsim executes in program order, which
        satisfies every edge; the edges are checked against the instructions of each launch and recorded in their
        records (attrs["schedule_after"])."""
        return Kernel(self.func, self.lnc, self.options, _normalise_schedule(edges, caller_location()))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if maybe_current() is not None:
            run = maybe_current()
            run.warn(
                lint.CODE,
                f"@nki.jit kernel '{self.func.__name__}' is called from inside another kernel; apply nki.jit only to "
                f"the top-level kernel",
                caller_location(),
            )
            return self.func(*args, **kwargs)
        framework = [a for a in list(args) + list(kwargs.values()) if _is_torch(a) or _is_jax(a)]
        if framework and not simulator_requested():
            kind = "PyTorch" if _is_torch(framework[0]) else "JAX"
            raise NkiUnsupportedError(
                f"calling @nki.jit kernel '{self.func.__name__}' with {kind} tensors would compile it for a Neuron "
                f"device through the framework integration, which trnsim does not provide",
                code="err_no_neuron_device",
                loc=caller_location(),
                hint="set TRNSIM_SIMULATOR=1 (or NKI_SIMULATOR=1) to run @nki.jit calls on the simulator, or call "
                "nki.simulate(kernel)(*args)",
            )
        out, _ = self.launch(*args, **kwargs)
        return out

    def launch(self, *args: Any, numerics: bool = True, target: str | None = None, **kwargs: Any) -> tuple[Any, Launch]:
        """Simulate; returns (outputs in the caller's array type, Launch record)."""
        lnc = self.lnc or 1
        bracket = self.lnc is not None
        func = self.func

        def executor(run: LncRun, f: Callable, call_args: list, call_kwargs: dict) -> Any:
            if lnc == 2 and run.arch.nc_version < 3:
                raise NkiValidationError(
                    f"kernel[2]: LNC=2 needs NeuronCore-v3 or later (trn2 / trn3); the target is {run.arch.name}",
                    code="err_invalid_launch_grid",
                    values={"target": run.arch.name},
                    loc=caller_location(),
                )
            sched = CoreScheduler(run, lnc)
            run.lnc = sched
            run.num_cores = lnc
            run.grid = (lnc,) if bracket else ()
            named = _named_args(f, call_args, call_kwargs)
            lint.check_kernel(run, f, named)
            try:
                out = sched.execute(f, call_args, call_kwargs)
            finally:
                sched.release()
            check_placements(run)
            _check_outputs(out, run)
            if self.schedule:
                _apply_schedule(run, self.schedule, func.__name__)
            return out

        try:
            out, rec = launch(
                func,
                args,
                kwargs,
                target=target or self.options.get("_target"),
                numerics=numerics,
                tensor_class=NkiTensor,
                api="current",
                hbm_buffer=SHARED_HBM,
                lnc=lnc,
                run_class=LncRun,
                executor=executor,
                params_mutable=True,
            )
        except NkiError as e:
            raise trim_traceback(e) from None
        if bracket:
            rec.grid = (lnc,)
        self.last_launch = rec
        return out, rec

    def __repr__(self) -> str:
        return f"<nki.jit kernel {self.func.__name__}{f'[{self.lnc}]' if self.lnc else ''}>"


def _normalise_schedule(edges: Any, loc: Any) -> tuple:
    """with_schedule edges as ((consumer, (producers...), kind), ...), checked for shape."""
    from .isa import _enum, dependency

    def bad(what: str) -> NkiValidationError:
        return NkiValidationError(
            f"with_schedule: {what}; pass a list of (consumer_name, producer_name or [producer_names]) pairs",
            code="err_invalid_schedule", loc=loc,
        )

    if isinstance(edges, (str, bytes)) or not isinstance(edges, (list, tuple)):
        raise bad(f"edges must be a list, got {type(edges).__name__}")
    out = []
    for e in edges:
        if not isinstance(e, (list, tuple)) or len(e) not in (2, 3):
            raise bad(f"edge {e!r} is not a (consumer, producer) pair")
        consumer, producers = e[0], e[1]
        kind = _enum(e[2], dependency, "kind", loc) if len(e) == 3 and e[2] is not None else None
        producers = (producers,) if isinstance(producers, str) else tuple(producers)
        if not isinstance(consumer, str) or not producers or not all(isinstance(p, str) for p in producers):
            raise bad(f"edge {e!r} must name instructions with strings")
        out.append((consumer, producers, kind))
    return tuple(out)


def _apply_schedule(run: LncRun, schedule: tuple, kernel_name: str) -> None:
    """Record with_schedule edges on the named instruction records; names no instruction carries are reported."""
    by_name: dict[str, list] = {}
    for ins in run.stream:
        nm = ins.attrs.get("name")
        if nm:
            by_name.setdefault(nm, []).append(ins)
    missing = sorted({n for c, ps, _ in schedule for n in (c, *ps) if n not in by_name})
    if missing:
        run.warn(
            "warn_schedule_unknown_name",
            f"with_schedule of kernel '{kernel_name}' names {missing}, which no instruction of this launch carries "
            f"(give nisa calls name=...); those edges have no effect",
            caller_location(),
        )
    for consumer, producers, kind in schedule:
        for ins in by_name.get(consumer, ()):
            after = ins.attrs.setdefault("schedule_after", [])
            for p in producers:
                after.extend(q.idx for q in by_name.get(p, ()) if q.core == ins.core and q.idx != ins.idx)
            if kind is not None:
                ins.attrs["dependency_kind"] = kind.value


def _named_args(func: Callable, args: list, kwargs: dict) -> list[tuple[str, Any]]:
    try:
        bound = inspect.signature(func).bind(*args, **kwargs)
        return [(k, v) for k, v in bound.arguments.items() if not is_array(v) and not isinstance(v, Tensor)]
    except (TypeError, ValueError):
        return []


def _check_outputs(out: Any, run: LncRun) -> None:
    items = out if isinstance(out, (tuple, list)) else [out]
    for t in items:
        if isinstance(t, Tensor) and t.storage.buffer.kind == "hbm" and not t.storage.buffer.shared:
            run.warn(
                "warn_output_not_shared_hbm",
                f"kernel output '{t.storage.name}' is in {t.storage.buffer.name}; the current API requires kernel "
                f"outputs in nl.shared_hbm",
                t.storage.loc,
            )


def check_placements(run: LncRun) -> None:
    """Manually placed (address=) on-chip tensors whose bytes overlap must not be live at the same time."""
    placements = run.extra.get("placements")
    if not placements:
        return
    ids = {p[0].id: p for p in placements}
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for pos, ins in enumerate(run.stream):
        for a in ins.reads + ins.writes:
            sid = a.storage.id
            if sid in ids:
                first.setdefault(sid, pos)
                last[sid] = pos
    live = [p for p in placements if p[0].id in first]
    live.sort(key=lambda p: first[p[0].id])
    for i, a in enumerate(live):
        for b in live[i + 1 :]:
            if a[1] != b[1] or a[2] != b[2]:
                continue
            if not (a[3] < b[4] and b[3] < a[4] and a[5] < b[6] and b[5] < a[6]):
                continue
            fa, la, fb, lb = first[a[0].id], last[a[0].id], first[b[0].id], last[b[0].id]
            if fa <= lb and fb <= la:
                at = run.stream[max(fa, fb)]
                raise NkiMemoryError(
                    f"manually placed {a[2].upper()} tensors '{a[0].name}' (partitions [{a[3]}, {a[4]}), bytes "
                    f"[{a[5]}, {a[6]}), allocated at {a[7].short}) and '{b[0].name}' (partitions [{b[3]}, {b[4]}), "
                    f"bytes [{b[5]}, {b[6]}), allocated at {b[7].short}) overlap while both are live",
                    code="err_overlapping_manual_allocation",
                    values={"a": a[0].name, "b": b[0].name, "core": a[1]},
                    loc=at.loc,
                    hint="give live tensors disjoint address ranges, or reuse an address only after the previous "
                    "tensor's last use",
                )


def jit(fn: Callable | None = None, **kwargs: Any) -> Any:
    """Wrap a kernel; calls run on the simulator (NumPy arrays always; framework tensors with TRNSIM_SIMULATOR=1)."""
    if "platform_target" in kwargs:
        raise NkiValidationError(
            "nki.jit does not accept platform_target (NKI 0.3+); set NEURON_PLATFORM_TARGET_OVERRIDE=trn1|trn2|trn3",
            code="err_invalid_jit_option",
            loc=caller_location(),
        )
    kwargs.pop("mode", None)
    if fn is None:
        return lambda f: jit(f, **kwargs)
    if isinstance(fn, Kernel):
        return fn
    return Kernel(fn, None, kwargs)


def simulate(kernel: Any) -> Callable[..., Any]:
    """`nki.simulate(kernel)(*args)`: run on the simulator (NumPy or torch CPU tensors in, same type out)."""
    k = kernel if isinstance(kernel, Kernel) else Kernel(getattr(kernel, "func", kernel))

    def run(*args: Any, **kwargs: Any) -> Any:
        out, _ = k.launch(*args, **kwargs)
        return out

    functools.update_wrapper(run, k.func)
    return run
