"""`neuronxcc.nki.compiler` (ncc): allocation control and compiler decorators.

Direct allocation (`ncc.sbuf.mod_alloc(...)` etc.) places tiles by hand; trnsim accepts the allocation
objects, checks their documented constraints, and places the tile in the requested memory space.
Decorators that only steer the compiler's middle end are accepted and have no effect on semantics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from ...core.errors import NkiValidationError
from ...core.memory import PSUM, SBUF, Buffer


class _Allocation:
    """A direct-allocation buffer argument (behaves as its memory space)."""

    def __init__(self, buffer: Buffer, how: str, **params: Any) -> None:
        self._trnsim_buffer = buffer
        self.how = how
        self.params = params

    def __repr__(self) -> str:
        return f"{self._trnsim_buffer.name}.{self.how}({self.params})"


class _Space:
    def __init__(self, buffer: Buffer) -> None:
        self._buffer = buffer

    def alloc(self, func: Callable) -> _Allocation:
        """Allocate blocks at positions computed by func(idx, pdim_size, fdim_size)."""
        return _Allocation(self._buffer, "alloc", func=func)

    def mod_alloc(
        self,
        *,
        base_addr: int = 0,
        base_partition: int = 0,
        base_bank: int = 0,
        num_par_tiles=(),
        num_free_tiles=(),
        num_bank_tiles=(),
    ) -> _Allocation:
        """Modulo allocation: block i goes to base + (i % num_tiles) * tile size."""
        if base_partition != 0:
            raise NkiValidationError(
                "mod_alloc: base_partition must be 0",
                code="err_invalid_allocation",
                values={"base_partition": base_partition},
            )
        return _Allocation(
            self._buffer,
            "mod_alloc",
            base_addr=base_addr,
            base_bank=base_bank,
            num_free_tiles=num_free_tiles,
            num_bank_tiles=num_bank_tiles,
        )

    def auto_alloc(self) -> Buffer:
        return self._buffer


sbuf = _Space(SBUF)
psum = _Space(PSUM)


def _passthrough(func: Callable | None = None, **kwargs: Any) -> Any:
    if func is None:
        return lambda f: f
    return func


skip_middle_end_transformations = _passthrough
enable_stack_allocator = _passthrough
force_auto_alloc = _passthrough


def multi_buffer(factor: int = 2) -> Any:
    return contextlib.nullcontext()


@contextlib.contextmanager
def no_reorder():
    yield


@contextlib.contextmanager
def allocation_scope(*args: Any, **kwargs: Any):
    yield
