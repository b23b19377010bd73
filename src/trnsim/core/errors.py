"""One exception hierarchy for everything a kernel can do wrong.

Every error carries the rule broken (in words), the legacy NKI error code where one exists, the values
involved, the kernel's file:line and a hint. `str(err)` is a short, self-contained message; the traceback
users see is trimmed of trnsim frames (see `trim_traceback`).
"""

from __future__ import annotations

import types
import warnings
from typing import Any

from .source import SourceLoc, caller_location, is_internal_file


class NkiError(Exception):
    """Base class of every error trnsim raises about a kernel."""

    default_code = "err_nki"

    def __init__(
        self,
        rule: str,
        *,
        code: str | None = None,
        values: dict[str, Any] | None = None,
        loc: SourceLoc | None = None,
        hint: str | None = None,
    ) -> None:
        self.rule = rule
        self.code = code or self.default_code
        self.values = dict(values or {})
        self.loc = loc if loc is not None else caller_location(2)
        self.hint = hint
        super().__init__(self._format())

    def _format(self) -> str:
        parts = [f"{self.loc}: [{self.code}] {self.rule}"]
        if self.values:
            parts.append("  values: " + ", ".join(f"{k}={_short(v)}" for k, v in self.values.items()))
        if self.hint:
            parts.append(f"  hint: {self.hint}")
        return "\n".join(parts)


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 120 else s[:117] + "..."


class NkiValidationError(NkiError, ValueError):
    """An operand breaks a hardware or instruction rule (shape, partition count, buffer, dtype)."""

    default_code = "err_validation"


class NkiIndexError(NkiError, IndexError):
    """An access reaches outside a tensor."""

    default_code = "err_tensor_access_out_of_bound"


class NkiTypeError(NkiError, TypeError):
    """A value of the wrong kind (dtype an engine does not take, op not allowed, ...)."""

    default_code = "err_unsupported_dtype"


class NkiMemoryError(NkiError, MemoryError):
    """On-chip memory capacity exceeded by live tiles."""

    default_code = "err_out_of_memory"


class NkiRaceError(NkiError):
    """A loop-carried dependency inside an affine_range loop, or unsynchronised cross-core access."""

    default_code = "err_unexpected_output_dependencies"


class NkiDeadlockError(NkiError):
    """A cross-core wait that can never complete."""

    default_code = "err_deadlock"


class NkiUnsupportedError(NkiError, NotImplementedError):
    """An NKI API trnsim does not implement (yet), or one the selected target does not have."""

    default_code = "err_unsupported_api"


class NkiDataDependentError(NkiError):
    """Timing-only mode met control flow or addressing that depends on tensor values."""

    default_code = "err_data_dependent_in_timing_only_mode"


class NkiWarning(UserWarning):
    """Something the hardware would run but the compiler would reject or that is likely a mistake."""


def warn(message: str, loc: SourceLoc | None = None, code: str = "warn_nki") -> None:
    loc = loc or caller_location(2)
    warnings.warn_explicit(f"[{code}] {message}", NkiWarning, filename=loc.file, lineno=loc.line, module="trnsim")


def trim_traceback(exc: BaseException) -> BaseException:
    """Drop trnsim's own frames from `exc`'s traceback so users see their kernel lines, not ours."""
    tb = exc.__traceback__
    kept: list[types.TracebackType] = []
    while tb is not None:
        if not is_internal_file(tb.tb_frame.f_code.co_filename):
            kept.append(tb)
        tb = tb.tb_next
    new_tb = None
    for frame_tb in reversed(kept):
        new_tb = types.TracebackType(new_tb, frame_tb.tb_frame, frame_tb.tb_lasti, frame_tb.tb_lineno)
    return exc.with_traceback(new_tb)
