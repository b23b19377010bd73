"""Helpers for testing NKI kernels with trnsim: assert that a kernel fails with a given rule at a given line.

    from trnsim.testing import expect_kernel_error

    err = expect_kernel_error(my_kernel, a, b, code="err_num_partition_mismatch", at="# BAD")

`at` is a marker comment (or any text) on the kernel line expected in the error's location.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .core.errors import NkiError


def line_of(fn: Callable, needle: str) -> int:
    """Line number (in fn's file) of the first source line of `fn` containing `needle`."""
    target = getattr(fn, "func", fn)
    src, start = inspect.getsourcelines(target)
    for i, line in enumerate(src):
        if needle in line:
            return start + i
    raise AssertionError(f"{needle!r} not found in the source of {getattr(target, '__name__', target)!r}")


def expect_kernel_error(fn: Callable, *args: Any, code: str, at: str | None = "# BAD", runner: Callable | None = None,
                        **kwargs: Any) -> NkiError:
    """Run `fn` on the simulator and assert it raises an NkiError with `code` located at the line marked `at`.

    The location must be the kernel's own file (not trnsim's). Returns the error for further checks.
    """
    if runner is None:
        from . import simulate_kernel as runner
    try:
        runner(fn, *args, **kwargs)
    except NkiError as err:
        assert err.code == code, f"expected {code}, got {err.code}: {err}"
        target = getattr(fn, "func", fn)
        want_file = inspect.getsourcefile(target)
        assert err.loc.file == want_file, f"error located at {err.loc}, expected a line in {want_file}"
        if at is not None:
            want = line_of(fn, at)
            assert err.loc.line == want, f"error located at line {err.loc.line}, expected {want}: {err}"
        return err
    raise AssertionError(f"{getattr(fn, '__name__', fn)} did not raise {code}")
