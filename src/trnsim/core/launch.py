"""Launching a kernel: framework arrays in, one Run per launch, outputs and end-of-run checks out.

Both front ends use `launch()`: it converts NumPy / torch arrays into HBM tensors (copies: nothing the
caller passed in is modified unless a parameter is declared mutable), runs the Python kernel function
eagerly once per program of the launch grid, checks on-chip capacity by liveness, checks outputs were
written, and converts returned HBM tensors back to the caller's array type.
"""

from __future__ import annotations

import inspect
import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import dtypes
from .context import Run, activate
from .errors import NkiError, NkiValidationError, trim_traceback
from .liveness import StreamUses, UsageTimeline, check_capacity, scan_uses
from .memory import HBM, SHARED_HBM, Buffer, host_tuning, relaxed_gc, wrap_host_array
from .source import SourceLoc
from .tensor import Tensor

#: the most recent launch (for `trnsim.last_launch()`, profiling and timing)
_last: list[Launch] = []


@dataclass
class Launch:
    """Everything recorded about one kernel launch."""

    kernel_name: str
    run: Run
    grid: tuple[int, ...]
    outputs: Any = None
    usage: list[UsageTimeline] = field(default_factory=list)
    source_file: str = ""
    uses: StreamUses | None = None  # where the stream uses each storage (also what the timing pass starts from)

    @property
    def stream(self):
        return self.run.stream

    @property
    def arch(self):
        return self.run.arch

    @property
    def diagnostics(self):
        return self.run.diagnostics


def last_launch() -> Launch | None:
    """The most recent kernel launch in this process (instruction stream, diagnostics, outputs)."""
    return _last[-1] if _last else None


_launch_hooks: list[Callable[[Launch], None]] = []


def add_launch_hook(fn: Callable[[Launch], None]) -> None:
    """Call `fn(launch)` after every kernel launch (used by `trnsim estimate` / `trnsim profile`)."""
    _launch_hooks.append(fn)


def remove_launch_hook(fn: Callable[[Launch], None]) -> None:
    if fn in _launch_hooks:
        _launch_hooks.remove(fn)


def resolve_target(explicit: str | None) -> str:
    if explicit:
        return str(explicit)
    return os.environ.get("NEURON_PLATFORM_TARGET_OVERRIDE") or os.environ.get("TRNSIM_TARGET") or "trn2"


# ------------------------------------------------------------------------------------------ array conversion
def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _is_jax(x: Any) -> bool:
    return type(x).__module__.startswith(("jax", "jaxlib"))


def to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if _is_torch(x):
        t = x.detach().cpu()
        name = str(t.dtype).replace("torch.", "")
        if name in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
            return t.float().numpy().astype(dtypes.normalize(name))
        return t.numpy()
    if _is_jax(x):
        return np.asarray(x)
    return np.asarray(x)


def from_numpy(arr: np.ndarray, like: Any) -> Any:
    if like is not None and _is_torch(like):
        import torch

        if arr.dtype in (dtypes.bfloat16,):
            return torch.from_numpy(arr.astype(np.float32)).to(torch.bfloat16)
        if arr.dtype.kind == "V" or arr.dtype in dtypes.FP8_TYPES:
            return torch.from_numpy(arr.astype(np.float32))
        return torch.from_numpy(np.ascontiguousarray(arr))
    if like is not None and _is_jax(like):
        import jax.numpy as jnp

        return jnp.asarray(arr)
    return arr


def is_array(x: Any) -> bool:
    return isinstance(x, np.ndarray) or _is_torch(x) or _is_jax(x)


# ------------------------------------------------------------------------------------------ the launch
def launch(
    func: Callable,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    *,
    grid: tuple[Any, ...] = (),
    target: str | None = None,
    numerics: bool = True,
    tensor_class: type[Tensor],
    api: str = "legacy",
    hbm_buffer: Buffer = SHARED_HBM,
    lnc: int = 1,
    check_races: bool = True,
    on_program: Callable[[Run, int], None] | None = None,
    run_class: type[Run] = Run,
    executor: Callable[[Run, Callable, list, dict], Any] | None = None,
    params_mutable: bool = False,
) -> tuple[Any, Launch]:
    """Run `func` on the simulator. Returns (outputs converted to the caller's array type, Launch).

    `executor(run, func, args, kwargs) -> outputs` replaces the default program loop (the current API runs
    both cores of an LNC=2 launch through it); `params_mutable` copies writes into parameters back to the
    caller's arrays instead of rejecting them (current-API semantics)."""
    run = run_class(
        resolve_target(target), numerics=numerics, check_races=check_races, kernel_name=func.__name__, api=api
    )
    sig = None
    try:
        sig = inspect.signature(func)
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        named = list(bound.arguments.items())
    except (TypeError, ValueError):
        named = [(f"arg{i}", a) for i, a in enumerate(args)] + list(kwargs.items())
    mutable = _mutable_params(func)
    like = None
    hbm_args: dict[str, Tensor] = {}
    host_arrays: dict[str, Any] = {}
    conv: list[tuple[str, Any]] = []
    for name, value in named:
        if is_array(value):
            like = like if like is not None else value
            arr = to_numpy(value)
            # Timing-only runs never read the data: no copy of (possibly placeholder) inputs.
            st = wrap_host_array(arr, hbm_buffer, name=name, track_writes=numerics, copy=numerics)
            st.is_param = True
            mem = st.take_mem()
            data = mem.data
            t = tensor_class(st, mem, data, mem.written)
            hbm_args[name] = t
            host_arrays[name] = value
            conv.append((name, t))
        else:
            conv.append((name, value))
    grid_sizes = tuple(int(g) for g in grid)
    programs = list(itertools.product(*(range(g) for g in grid_sizes))) if grid_sizes else [()]
    outputs = None
    kind = None
    if sig is not None:
        params = list(sig.parameters.values())
        kind = [p.kind for p in params]
    call_args, call_kwargs = _rebuild(conv, kind)
    with activate(run), host_tuning():
        frame = None
        try:
            if executor is not None:
                outputs = executor(run, func, call_args, call_kwargs)
                programs = []
            if len(programs) > 1:
                frame_cm = run.loop(
                    "affine",
                    len(programs),
                    SourceLoc(inspect.getsourcefile(func) or "?", func.__code__.co_firstlineno, func.__name__),
                )
                frame = frame_cm.__enter__()
            for i, pid in enumerate(programs):
                run.grid = grid_sizes
                run.program_id = pid
                run.core = _core_of(grid, pid) if grid else (i if lnc > 1 else 0)
                run.begin_program()
                if frame is not None:
                    frame.iteration = i
                if on_program is not None:
                    on_program(run, i)
                res = func(*call_args, **call_kwargs)
                if i == 0:
                    outputs = res
            if frame is not None:
                frame_cm.__exit__(None, None, None)
        except NkiError as e:
            raise trim_traceback(e) from None
    launch_rec = Launch(func.__name__, run, grid_sizes, source_file=inspect.getsourcefile(func) or "")
    arch = run.arch
    caps = {"sbuf": arch.sbuf_usable_bytes_per_partition, "psum": arch.psum_bytes_per_partition}
    try:
        with relaxed_gc():  # walks the whole stream: keep the collector from rescanning it meanwhile
            uses = launch_rec.uses = scan_uses(run.stream)
            launch_rec.usage = check_capacity(run.stream, caps, uses)
    except NkiError as e:
        if numerics or e.code != "err_sbuf_capacity_exceeded":
            raise trim_traceback(e) from None
        # Timing-only run: the compiler would spill to HBM rather than fail; the timing model charges the
        # spill / reload traffic (trnsim.timing.model). Full simulation keeps the strict error.
        from .liveness import usage_timelines

        run.warn("warn_sbuf_spill", f"{e.rule} -- timing-only run: modeled as compiler spills to HBM", e.loc)
        launch_rec.usage = usage_timelines(run.stream, caps, uses)
    written = uses.written  # (every storage the kernel wrote, by id)
    if api == "legacy" and not params_mutable and mutable:
        _check_mutable_returned(func, outputs, {n: t for n, t in hbm_args.items() if n in mutable})
    result = _convert_outputs(outputs, run, like)
    for name, t in hbm_args.items():
        if t.storage.id in written:
            if params_mutable or name in mutable or outputs is None:
                _copy_back(host_arrays[name], t)
            elif outputs is not None:
                raise trim_traceback(
                    NkiValidationError(
                        f"kernel '{func.__name__}' writes into its input parameter '{name}', which is not declared "
                        f"mutable",
                        code="err_cannot_update_immutable_parameter",
                        values={"parameter": name},
                        loc=_first_write_loc(run, t.storage.id),
                        hint="annotate the parameter with nt.mutable_tensor (and return it), or write to a new output",
                    )
                )
    launch_rec.outputs = result
    _last[:] = [launch_rec]
    for hook in list(_launch_hooks):
        hook(launch_rec)
    return result, launch_rec


def _returned_storages(outputs: Any, out: set[int]) -> set[int]:
    if isinstance(outputs, Tensor):
        out.add(outputs.storage.id)
    elif isinstance(outputs, (tuple, list)):
        for o in outputs:
            _returned_storages(o, out)
    elif isinstance(outputs, dict):
        for o in outputs.values():
            _returned_storages(o, out)
    elif getattr(outputs, "base", None) is not None and isinstance(outputs.base, Tensor):  # an indexed access
        out.add(outputs.base.storage.id)
    return out


def _check_mutable_returned(func: Callable, outputs: Any, mutable: dict[str, Tensor]) -> None:
    """G1: a parameter annotated `nt.mutable_tensor` must be returned by the kernel."""
    returned = _returned_storages(outputs, set())
    for name, t in mutable.items():
        if t.storage.id not in returned:
            raise trim_traceback(
                NkiValidationError(
                    f"kernel '{func.__name__}' declares parameter '{name}' as nt.mutable_tensor but does not return it",
                    code="err_mutable_parameter_not_returned",
                    values={"parameter": name},
                    loc=SourceLoc(inspect.getsourcefile(func) or "?", func.__code__.co_firstlineno, func.__name__),
                    hint=f"return '{name}' from the kernel (e.g. `return {name}` or `return out, {name}`)",
                )
            )


def _first_write_loc(run: Run, sid: int) -> SourceLoc | None:
    for ins in run.stream:
        for a in ins.writes:
            if a.storage.id == sid:
                return ins.loc
    return None


def _rebuild(conv: list[tuple[str, Any]], kinds: list | None) -> tuple[list, dict]:
    args, kwargs = [], {}
    if kinds is None:
        return [v for _, v in conv], {}
    for (name, value), kind in zip(conv, kinds):
        if kind == inspect.Parameter.VAR_POSITIONAL:
            args.extend(value)
        elif kind == inspect.Parameter.VAR_KEYWORD:
            kwargs.update(value)
        elif kind == inspect.Parameter.KEYWORD_ONLY:
            kwargs[name] = value
        else:
            args.append(value)
    return args, kwargs


def _core_of(grid: tuple[Any, ...], pid: tuple[int, ...]) -> int:
    core = 0
    for g, i in zip(grid, pid):
        if hasattr(g, "core_of"):
            core = core * 2 + g.core_of(i)
        elif type(g).__name__ == "nc":
            core = core * int(g) + i
    return core


def _mutable_params(func: Callable) -> set[str]:
    out = set()
    try:
        ann = inspect.get_annotations(func)
    except Exception:  # noqa: BLE001 - annotations may not evaluate outside the kernel module
        ann = getattr(func, "__annotations__", {})
    for k, v in ann.items():
        if getattr(v, "_trnsim_mutable", False) or "mutable" in str(v):
            out.add(k)
    return out


def _convert_outputs(outputs: Any, run: Run, like: Any) -> Any:
    if outputs is None:
        return None
    if isinstance(outputs, Tensor):
        return _one_output(outputs, run, like)
    if isinstance(outputs, (tuple, list)):
        return type(outputs)(_convert_outputs(o, run, like) for o in outputs)
    if isinstance(outputs, dict):
        return {k: _convert_outputs(v, run, like) for k, v in outputs.items()}
    resolved = getattr(outputs, "_resolve_plain", None)
    if resolved is not None:
        return _one_output(resolved(), run, like)
    return outputs


def _one_output(t: Tensor, run: Run, like: Any) -> Any:
    if t.storage.buffer.kind != "hbm":
        raise trim_traceback(
            NkiValidationError(
                f"kernel returned tensor '{t.storage.name}' in {t.storage.buffer.name.upper()}; kernel outputs must be "
                f"HBM tensors",
                code="err_output_not_in_hbm",
                values={"tensor": t.storage.name},
                loc=t.storage.loc,
                hint="allocate the output with nl.ndarray(shape, dtype, buffer=nl.shared_hbm) and nl.store into it",
            )
        )
    if run.numerics and t.wmask is not None and t.storage.is_param is False:
        w = t.wmask
        if not w.any():
            raise trim_traceback(
                NkiError(
                    f"kernel output '{t.storage.name}' is never written",
                    code="err_tensor_output_not_written_to",
                    values={"tensor": t.storage.name, "shape": t.shape},
                    loc=t.storage.loc,
                )
            )
        if not w.all():
            run.warn(
                "warn_output_partially_written",
                f"{int(w.size - np.count_nonzero(w))} of {w.size} elements of output '{t.storage.name}' were never "
                f"written (they hold NaN / the integer poison value)",
                t.storage.loc,
            )
    arr = np.array(t.read(), copy=True) if run.numerics else np.zeros(t.shape, dtype=t.dtype)
    return from_numpy(arr, like)


def _copy_back(host: Any, t: Tensor) -> None:
    arr = t.read()
    if isinstance(host, np.ndarray):
        host[...] = arr.astype(host.dtype, copy=False)
    elif _is_torch(host):
        import torch

        host.copy_(
            torch.from_numpy(
                np.asarray(arr, dtype=np.float32)
                if arr.dtype.kind == "V" or arr.dtype in (dtypes.bfloat16,)
                else np.ascontiguousarray(arr)
            )
        )


_unused = HBM
