"""Source locations: the first stack frame outside trnsim, cached per code object."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_KERNELS_DIR = os.path.join(_PKG_DIR, "kernels")
_internal_cache: dict[object, bool] = {}


@dataclass(frozen=True, slots=True)
class SourceLoc:
    """A kernel source position (file, line, function)."""

    file: str
    line: int
    func: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def short(self) -> str:
        return f"{os.path.basename(self.file)}:{self.line}"


UNKNOWN = SourceLoc("<unknown>", 0, "")
_loc_cache: dict[tuple[object, int], SourceLoc] = {}


def _is_internal(code) -> bool:
    hit = _internal_cache.get(code)
    if hit is None:
        fn = code.co_filename
        # Kernels shipped in trnsim.kernels are user code from the simulator's point of view.
        hit = fn.startswith(_PKG_DIR) and not fn.startswith(_KERNELS_DIR)
        _internal_cache[code] = hit
    return hit


def caller_location(skip: int = 1) -> SourceLoc:
    """Location of the innermost frame that is not trnsim code (kernel code, tests, scripts)."""
    frame = sys._getframe(skip)
    while frame is not None and _is_internal(frame.f_code):
        frame = frame.f_back
    if frame is None:
        return UNKNOWN
    key = (frame.f_code, frame.f_lineno)
    loc = _loc_cache.get(key)
    if loc is None:
        loc = SourceLoc(frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)
        _loc_cache[key] = loc
    return loc


def is_internal_file(filename: str) -> bool:
    return filename.startswith(_PKG_DIR) and not filename.startswith(_KERNELS_DIR)


_ASSIGN = __import__("re").compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\[.*\])?\s*(?::[^=]*)?=(?!=)")
_name_cache: dict[SourceLoc, str] = {}


def name_from_source(loc: SourceLoc) -> str:
    """The variable a tensor is assigned to on its source line ("" if none), for readable names."""
    hit = _name_cache.get(loc)
    if hit is None:
        import linecache

        m = _ASSIGN.match(linecache.getline(loc.file, loc.line))
        hit = m.group(1) if m else ""
        _name_cache[loc] = hit
    return hit
