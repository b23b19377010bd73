"""Modules imported on first use: for the few imports that would be circular at load time (the imported module
imports the importer), without an import statement inside a hot function (about a microsecond per call)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType


def lazy_module(name: str) -> Callable[[], ModuleType]:
    """A function returning module `name` (absolute), imported on the function's first call."""
    module: ModuleType | None = None

    def get() -> ModuleType:
        nonlocal module
        if module is None:
            module = importlib.import_module(name)
        return module

    get.__doc__ = f"The module {name} (imported on first use)."
    return get
