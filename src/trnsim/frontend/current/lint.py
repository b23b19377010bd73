"""The current NKI compiler's Python-subset rules, reported as warnings (trnsim runs the kernel eagerly, so it
accepts a superset of Python; these flag code that would not compile for a device).

Rules checked: no keyword-only parameters in the kernel signature, tuples instead of lists as arguments, user
classes passed in or defined in the kernel derive from `nl.NKIObject`, no `is` / `is not` comparisons, dict keys
are strings, and `@nki.jit` is not applied to helpers called from another kernel.
"""

from __future__ import annotations

import ast
import enum
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np

from ...core.context import Run
from ...core.source import SourceLoc

CODE = "warn_python_subset"
_ast_cache: dict[Any, list[tuple[int, str]]] = {}


def _source_findings(func: Callable) -> list[tuple[int, str]]:
    code = getattr(func, "__code__", None)
    if code is None:
        return []
    hit = _ast_cache.get(code)
    if hit is not None:
        return hit
    findings: list[tuple[int, str]] = []
    try:
        src = textwrap.dedent(inspect.getsource(func))
        tree = ast.parse(src)
    except (OSError, TypeError, SyntaxError, IndentationError):
        _ast_cache[code] = findings
        return findings
    first = code.co_firstlineno - 1
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(isinstance(o, (ast.Is, ast.IsNot)) for o in node.ops):
            findings.append((node.lineno + first, "`is` / `is not` comparisons are not supported by the NKI compiler; use == / !="))
        elif isinstance(node, ast.Dict):
            for k in node.keys:
                if isinstance(k, ast.Constant) and not isinstance(k.value, str):
                    findings.append((node.lineno + first, f"dict keys must be strings in NKI kernels, got {k.value!r}"))
                    break
        elif isinstance(node, ast.ClassDef):
            bases = [ast.unparse(b) for b in node.bases]
            if not any(b.endswith("NKIObject") for b in bases):
                findings.append((node.lineno + first, f"class {node.name} must derive from nl.NKIObject"))
    _ast_cache[code] = findings
    return findings


def _user_class(v: Any) -> bool:
    cls = type(v)
    mod = cls.__module__
    if mod in ("builtins", "types") or mod.startswith(("numpy", "ml_dtypes", "torch", "jax", "trnsim")):
        return False
    if isinstance(v, (enum.Enum, type, np.dtype)) or callable(v):
        return False
    return True


def check_kernel(run: Run, func: Callable, named_args: list[tuple[str, Any]]) -> None:
    """Warn about Python-subset violations of kernel `func` called with `named_args`."""
    code = getattr(func, "__code__", None)
    loc = SourceLoc(code.co_filename, code.co_firstlineno, func.__name__) if code else None
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        params = []
    issues = []
    for p in params:
        if p.kind == inspect.Parameter.KEYWORD_ONLY:
            issues.append(f"keyword-only parameter '{p.name}' (after `*`) is not allowed in an NKI kernel signature")
            break
    from .language import NKIObject

    for name, v in named_args:
        if isinstance(v, list):
            issues.append(f"argument '{name}' is a list; pass a tuple to an NKI kernel")
        elif _user_class(v) and not isinstance(v, NKIObject):
            issues.append(f"argument '{name}' is a {type(v).__name__}, which does not derive from nl.NKIObject")
    if issues:
        run.warn(CODE, "; ".join(issues), loc)
    for line, msg in _source_findings(func):
        run.warn(CODE, msg, SourceLoc(loc.file, line, func.__name__) if loc else None)
