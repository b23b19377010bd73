"""Source locations: the first stack frame outside trnsim, cached per code object."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_KERNELS_DIR = os.path.join(_PKG_DIR, "kernels")
# Keyed by id(code object): hashing a code object rehashes its bytecode and constants every time (~0.25 us), an int
# hashes for free. `_internal_codes` keeps every trnsim code object seen alive, so an id in `_internal_ids` cannot be
# reused by another code object.
_internal_ids: set[int] = set()
_internal_codes: list[object] = []


@dataclass(frozen=True, slots=True)
class SourceLoc:
    """A kernel source position (file, line, function)."""

    file: str
    line: int
    func: str = ""
    _hash: int = field(default=0, init=False, repr=False, compare=False)
    _var: str | None = field(default=None, init=False, repr=False, compare=False)  # see name_from_source

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.file, self.line, self.func)))

    def __hash__(self) -> int:  # cached: locations key several per-instruction dict lookups
        return self._hash

    def __reduce__(self) -> tuple:  # rebuild (and rehash) on unpickling: str hashes differ between processes
        return (SourceLoc, (self.file, self.line, self.func))

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def short(self) -> str:
        return f"{os.path.basename(self.file)}:{self.line}"


UNKNOWN = SourceLoc("<unknown>", 0, "")
_loc_cache: dict[tuple[int, int], tuple[object, SourceLoc]] = {}


def caller_location(skip: int = 1) -> SourceLoc:
    """Location of the innermost frame that is not trnsim code (kernel code, tests, scripts).

    About a third of a microsecond from an API function called by a kernel (measured): a set lookup per trnsim
    frame, then one dict lookup per (code, bytecode offset). A code
    object is classified the first time it is seen (trnsim code: its id joins `_internal_ids`; other code: its
    locations join `_loc_cache`)."""
    frame = sys._getframe(skip)
    internal = _internal_ids
    while True:
        while frame is not None and id(frame.f_code) in internal:
            frame = frame.f_back
        if frame is None:
            return UNKNOWN
        code = frame.f_code
        # Keyed by the bytecode offset: `f_lineno` scans the code's line table (cost grows with the function's
        # length, several microseconds in a long kernel), `f_lasti` is a plain field; one offset has one line.
        key = (id(code), frame.f_lasti)
        e = _loc_cache.get(key)
        if e is not None and e[0] is code:
            return e[1]
        if is_internal_file(code.co_filename):  # trnsim code seen for the first time
            _internal_codes.append(code)
            internal.add(id(code))
            frame = frame.f_back
            continue
        loc = SourceLoc(code.co_filename, frame.f_lineno, code.co_name)
        _loc_cache[key] = (code, loc)
        return loc


def is_internal_file(filename: str) -> bool:
    return filename.startswith(_PKG_DIR) and not filename.startswith(_KERNELS_DIR)


_ASSIGN = __import__("re").compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\[.*\])?\s*(?::[^=]*)?=(?!=)")


def name_from_source(loc: SourceLoc) -> str:
    """The variable a tensor is assigned to on its source line ("" if none), for readable names (kept with the
    location: allocations inside loops ask again and again)."""
    hit = loc._var
    if hit is None:
        import linecache

        m = _ASSIGN.match(linecache.getline(loc.file, loc.line))
        hit = m.group(1) if m else ""
        object.__setattr__(loc, "_var", hit)
    return hit
