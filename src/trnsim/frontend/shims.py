"""Opt-in import aliases: make `neuronxcc.nki` (legacy) and `nki` (current) resolve to trnsim.

Only `python -m trnsim run|pytest|estimate|profile` (or an explicit `install()`) installs them, for that
process only. Importing trnsim itself never touches these names, so a real neuronx-cc in the same
environment is never shadowed by accident.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from typing import Any

from ..core.errors import NkiUnsupportedError

_LEGACY_MAP = {
    "neuronxcc.nki": "trnsim.frontend.legacy",
    "neuronxcc.nki.language": "trnsim.frontend.legacy.language",
    "neuronxcc.nki.isa": "trnsim.frontend.legacy.isa",
    "neuronxcc.nki.compiler": "trnsim.frontend.legacy.compiler",
    "neuronxcc.nki.typing": "trnsim.frontend.legacy.typing",
}

_CURRENT_MAP = {
    "nki": "trnsim.frontend.current",
    "nki.language": "trnsim.frontend.current.language",
    "nki.isa": "trnsim.frontend.current.isa",
    "nki.isa.constants": "trnsim.frontend.current.isa_constants",
    "nki.collectives": "trnsim.frontend.current.collectives",
    "nki.typing": "trnsim.frontend.current.typing",
}

_installed: list[str] = []


class _PrivateApiFinder(importlib.abc.MetaPathFinder):
    """Gives a clear error for private / unsupported submodules of the aliased namespaces."""

    def __init__(self, roots: tuple[str, ...]) -> None:
        self.roots = roots

    def find_spec(self, fullname: str, path: Any, target: Any = None):
        if any(fullname == r or fullname.startswith(r + ".") for r in self.roots) and fullname not in sys.modules:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec):
        raise NkiUnsupportedError(
            f"module '{spec.name}' is not provided by trnsim (private or unsupported NKI API)",
            code="err_unsupported_private_api",
            values={"module": spec.name},
            hint="see docs/coverage.md for what trnsim implements",
        )

    def exec_module(self, module):  # pragma: no cover - create_module always raises
        pass


def _alias(name: str, target: str) -> None:
    mod = importlib.import_module(target)
    sys.modules[name] = mod
    _installed.append(name)
    parent, _, child = name.rpartition(".")
    if parent and parent in sys.modules:
        setattr(sys.modules[parent], child, mod)


def install_legacy() -> None:
    """Alias neuronxcc.nki[.language|.isa|.compiler|.typing] to trnsim's legacy front end."""
    if "neuronxcc" not in sys.modules or not getattr(sys.modules["neuronxcc"], "_trnsim", False):
        pkg = types.ModuleType("neuronxcc")
        pkg.__path__ = []  # a namespace-like package: submodules come from sys.modules
        pkg._trnsim = True
        sys.modules["neuronxcc"] = pkg
        _installed.append("neuronxcc")
    for name, target in _LEGACY_MAP.items():
        _alias(name, target)
    # neuronxcc.nki.isa.constants / neuronxcc.nki.language.constants
    from .legacy import isa as _isa
    from .legacy import language as _lang

    consts = types.ModuleType("neuronxcc.nki.isa.constants")
    for k in ("engine", "reduce_cmd", "dge_mode", "oob_mode", "nc_version"):
        setattr(consts, k, getattr(_isa, k))
    sys.modules[consts.__name__] = consts
    _isa.constants = consts
    lconsts = types.ModuleType("neuronxcc.nki.language.constants")
    lconsts.sizeinbytes = lambda dtype: __import__("numpy").dtype(dtype).itemsize
    sys.modules[lconsts.__name__] = lconsts
    _lang.constants = lconsts
    _installed.extend([consts.__name__, lconsts.__name__])
    sys.meta_path.insert(0, _PrivateApiFinder(("neuronxcc",)))


def install_current() -> None:
    """Alias nki[.language|.isa|.collectives|.typing] to trnsim's current-API front end (if available)."""
    try:
        importlib.import_module("trnsim.frontend.current")
    except ImportError:
        return
    for name, target in _CURRENT_MAP.items():
        try:
            _alias(name, target)
        except ImportError:
            continue
    sys.meta_path.insert(0, _PrivateApiFinder(("nki",)))


def install() -> None:
    """Install both generations' aliases for this process."""
    install_legacy()
    install_current()


def uninstall() -> None:
    for name in _installed:
        sys.modules.pop(name, None)
    _installed.clear()
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _PrivateApiFinder)]
