"""Legacy launch API: nki.jit / baremetal / simulate_kernel / benchmark / profile / trace, all on the CPU."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ...core.context import maybe_current
from ...core.errors import NkiError, trim_traceback
from ...core.launch import Launch, launch
from .annotations import annotation_checks
from .tensor import LegacyTensor


class LegacyKernel:
    """A kernel function wrapped by a legacy decorator; `kernel[grid](*args)` launches an SPMD grid."""

    def __init__(self, func: Callable, mode: str = "auto", grid: tuple = (), **options: Any) -> None:
        self.func = func
        self.mode = mode
        self.grid = grid
        self.options = options
        self.last_launch: Launch | None = None
        functools.update_wrapper(self, func)

    def __getitem__(self, grid: Any) -> LegacyKernel:
        if not isinstance(grid, tuple):
            grid = (grid,)
        return LegacyKernel(self.func, self.mode, grid, **self.options)

    @property
    def target(self) -> str | None:
        return self.options.get("platform_target")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if maybe_current() is not None:
            # A kernel called from inside a kernel (nki.trace sub-kernels, nested jit helpers) is inlined.
            if self.grid:
                raise NkiError(
                    f"kernel '{self.func.__name__}' with an SPMD grid {self.grid} is launched from inside a kernel",
                    code="err_nested_kernel_with_spmd_grid",
                )
            return self.func(*args, **kwargs)
        out, rec = self.launch(*args, **kwargs)
        return out

    def launch(self, *args: Any, numerics: bool = True, **kwargs: Any) -> tuple[Any, Launch]:
        try:
            with annotation_checks(self.func, args, kwargs):  # nt.tensor[...] shape annotations
                out, rec = launch(
                    self.func,
                    args,
                    kwargs,
                    grid=self.grid,
                    target=self.target,
                    numerics=numerics,
                    tensor_class=LegacyTensor,
                    api="legacy",
                    # Timing-only runs (shape placeholders) skip the cross-iteration race checks: they cost more
                    # than the rest of the front end on big kernels and do not change the instruction stream.
                    check_races=numerics,
                )
        except NkiError as e:
            raise trim_traceback(e) from None
        self.last_launch = rec
        return out, rec


def _decorator(mode: str) -> Callable:
    def deco(func: Callable | None = None, **kwargs: Any) -> Any:
        m = kwargs.pop("mode", mode)
        if func is None:
            return lambda f: _wrap(f, m, kwargs)
        return _wrap(func, m, kwargs)

    return deco


def _wrap(func: Callable, mode: str, kwargs: dict[str, Any]) -> Any:
    if isinstance(func, LegacyKernel):
        func = func.func
    if mode == "benchmark":
        return BenchmarkKernel(func, **kwargs)
    if mode == "profile":
        return ProfileKernel(func, **kwargs)
    k = LegacyKernel(func, mode=mode, **kwargs)
    if kwargs.get("save_neff_name") or kwargs.get("save_trace_name"):
        return ArtifactKernel(func, mode=mode, **kwargs)
    return k


jit = _decorator("auto")
trace = _decorator("trace")


def baremetal(kernel: Callable | None = None, **kwargs: Any) -> Any:
    """Compile-and-run on the local device -- here: simulate on the CPU, NumPy in, NumPy out."""
    if kernel is None:
        return lambda f: _wrap(f, "baremetal", kwargs)
    if isinstance(kernel, LegacyKernel) and kernel.grid:
        k = _wrap(kernel.func, "baremetal", {**kernel.options, **kwargs})
        return k[kernel.grid]
    return _wrap(kernel, "baremetal", kwargs)


def simulate_kernel(kernel: Callable, *args: Any, **kwargs: Any) -> Any:
    """Run a (possibly gridded, possibly decorated) kernel on the simulator and return its outputs."""
    if not isinstance(kernel, LegacyKernel):
        kernel = LegacyKernel(kernel)
    try:
        return kernel(*args, **kwargs)
    except NkiError as e:
        raise trim_traceback(e) from None


class ArtifactKernel(LegacyKernel):
    """baremetal / jit with save_neff_name / save_trace_name: also writes the simulated program and trace."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if maybe_current() is not None:
            return super().__call__(*args, **kwargs)
        out, rec = self.launch(*args, **kwargs)
        from ...profile.artifacts import write_artifacts

        write_artifacts(
            rec,
            neff=self.options.get("save_neff_name"),
            trace=self.options.get("save_trace_name"),
            directory=self.options.get("artifacts_dir") or os.getcwd(),
        )
        return out

    def __getitem__(self, grid: Any) -> ArtifactKernel:
        if not isinstance(grid, tuple):
            grid = (grid,)
        return ArtifactKernel(self.func, self.mode, grid, **self.options)


class _LatencyStats:
    """`benchmark_result.nc_latency`: latency percentiles in microseconds."""

    def __init__(self, latency_us: float) -> None:
        self.latency_us = latency_us

    def get_latency_percentile(self, p: int) -> float:
        """Modeled latency in microseconds (the model is deterministic: every percentile is the same)."""
        if p not in (0, 1, 10, 25, 50, 90, 99, 100):
            raise ValueError(f"percentile must be one of 0, 1, 10, 25, 50, 90, 99, 100, got {p}")
        return self.latency_us

    def __repr__(self) -> str:
        return f"nc_latency({self.latency_us:.3f} us)"


class BenchmarkResult:
    """What `nki.benchmark` leaves on the wrapped kernel: `.nc_latency.get_latency_percentile(p)` (us)."""

    def __init__(self, latency_us: float, estimate: Any) -> None:
        self.nc_latency = _LatencyStats(latency_us)
        self.e2e_latency = _LatencyStats(latency_us)
        self.estimate = estimate

    def __repr__(self) -> str:
        return f"BenchmarkResult(latency={self.nc_latency.latency_us:.3f} us)"


class BenchmarkKernel(LegacyKernel):
    """nki.benchmark: runs the kernel once (timing model; inputs only give shapes) and records latency."""

    def __init__(self, func: Callable, mode: str = "benchmark", grid: tuple = (), **options: Any) -> None:
        super().__init__(func, mode, grid, **options)
        self.benchmark_result: BenchmarkResult | None = None

    def __getitem__(self, grid: Any) -> BenchmarkKernel:
        if not isinstance(grid, tuple):
            grid = (grid,)
        return BenchmarkKernel(self.func, self.mode, grid, **self.options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from ...timing.model import estimate_launch
        from .typing import TensorType

        # nki.benchmark only needs shapes: nt.tensor[[M, K], dtype] placeholders become uninitialised arrays
        args = tuple(np.empty(a.shape, dtype=a.dtype) if isinstance(a, TensorType) else a for a in args)
        out, rec = self.launch(*args, numerics=_benchmark_numerics(), **kwargs)
        est = estimate_launch(rec)
        self.benchmark_result = BenchmarkResult(est.total_ns / 1000.0, est)
        if self.options.get("save_neff_name") or self.options.get("save_trace_name"):
            from ...profile.artifacts import write_artifacts

            write_artifacts(
                rec,
                neff=self.options.get("save_neff_name"),
                trace=self.options.get("save_trace_name"),
                directory=os.getcwd(),
                estimate=est,
            )
        return out


def _benchmark_numerics() -> bool:
    # nki.benchmark does not use its inputs (outputs are undefined), so it runs in timing-only mode unless asked.
    return os.environ.get("TRNSIM_BENCHMARK_NUMERICS", "0") == "1"


class ProfileKernel(LegacyKernel):
    """nki.profile: runs the kernel and writes the profile into `working_directory`."""

    def __getitem__(self, grid: Any) -> ProfileKernel:
        if not isinstance(grid, tuple):
            grid = (grid,)
        return ProfileKernel(self.func, self.mode, grid, **self.options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from ...profile.artifacts import write_profile

        out, rec = self.launch(*args, **kwargs)
        wd = self.options.get("working_directory") or os.getcwd()
        write_profile(
            rec,
            wd,
            neff=self.options.get("save_neff_name", "file.neff"),
            trace=self.options.get("save_trace_name", "profile.ntff"),
            overwrite=self.options.get("overwrite", False),
        )
        return None


def benchmark(kernel: Callable | None = None, **kwargs: Any) -> Any:
    """Wrap a kernel so that calling it records `benchmark_result.nc_latency` from the performance model."""
    if kernel is None:
        return lambda f: benchmark(f, **kwargs)
    if isinstance(kernel, LegacyKernel):
        k = BenchmarkKernel(kernel.func, grid=kernel.grid, **{**kernel.options, **kwargs})
        return k
    return BenchmarkKernel(kernel, **kwargs)


def profile(func: Callable | None = None, **kwargs: Any) -> Any:
    """Wrap a kernel so that calling it writes a profile (trace, summary) into `working_directory`."""
    if func is None:
        return lambda f: profile(f, **kwargs)
    if isinstance(func, LegacyKernel):
        return ProfileKernel(func.func, grid=func.grid, **{**func.options, **kwargs})
    return ProfileKernel(func, **kwargs)
