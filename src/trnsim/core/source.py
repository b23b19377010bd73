"""Source locations: the first stack frame outside trnsim, cached per code object."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_KERNELS_DIR = os.path.join(_PKG_DIR, "kernels")
# Caches keyed by id(code object): hashing a code object rehashes its bytecode and constants every time (~0.25 us),
# an int hashes for free. Each entry keeps its code object alive, so an id cannot be reused while it is cached.
_internal_cache: dict[int, tuple[object, bool]] = {}


@dataclass(frozen=True, slots=True)
class SourceLoc:
    """A kernel source position (file, line, function)."""

    file: str
    line: int
    func: str = ""
    _hash: int = field(default=0, init=False, repr=False, compare=False)

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


def _is_internal(code) -> bool:
    e = _internal_cache.get(id(code))
    if e is None or e[0] is not code:
        fn = code.co_filename
        # Kernels shipped in trnsim.kernels are user code from the simulator's point of view.
        e = _internal_cache[id(code)] = (code, fn.startswith(_PKG_DIR) and not fn.startswith(_KERNELS_DIR))
    return e[1]


def caller_location(skip: int = 1) -> SourceLoc:
    """Location of the innermost frame that is not trnsim code (kernel code, tests, scripts).

    About a microsecond: one dict lookup per frame (code object -> internal?) and one per (code, offset)."""
    frame = sys._getframe(skip)
    internal = _internal_cache
    while frame is not None:
        code = frame.f_code
        e = internal.get(id(code))
        if e is None or e[0] is not code:
            hit = _is_internal(code)
        else:
            hit = e[1]
        if not hit:
            break
        frame = frame.f_back
    if frame is None:
        return UNKNOWN
    # Keyed by the bytecode offset: `f_lineno` scans the code's line table (cost grows with the function's
    # length, several microseconds in a long kernel), `f_lasti` is a plain field; one offset has one line.
    key = (id(code), frame.f_lasti)
    e2 = _loc_cache.get(key)
    if e2 is None or e2[0] is not code:
        e2 = _loc_cache[key] = (code, SourceLoc(code.co_filename, frame.f_lineno, code.co_name))
    return e2[1]


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
