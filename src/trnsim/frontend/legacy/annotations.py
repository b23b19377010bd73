"""Shape checks of `nt.tensor[...]` annotations in legacy kernels (err_annotation_shape_mismatch).

Parameter annotations (`def k(a: nt.tensor[[128, 64], nl.float32])`) are evaluated by Python, so the launch compares
them with the arguments' shapes. Annotated local assignments (`t: nt.tensor[[128, 64], nl.float32] = nl.load(a)`)
are not evaluated by Python at all, so the kernel's source is scanned once for them and, only when there are any,
a line tracer follows the kernel's own frame and checks each annotated name right after its statement ran.
The tracer is not installed when another trace function is active (a debugger or coverage tool).
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import sys
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

from ...core.errors import NkiValidationError
from ...core.source import SourceLoc
from ...core.tensor import broadcast_shapes


class _Site:
    """One annotated assignment `name: annotation = value` of the kernel (absolute line numbers)."""

    __slots__ = ("start", "end", "name", "annotation", "text")

    def __init__(self, start: int, end: int, name: str, annotation: Any, text: str) -> None:
        self.start, self.end, self.name, self.annotation, self.text = start, end, name, annotation, text


_SITES: dict[Any, dict[int, _Site]] = {}


def _sites(func: Callable) -> dict[int, _Site]:
    """Annotated local assignments of `func`'s own body, by first line (cached per code object)."""
    code = getattr(func, "__code__", None)
    if code is None:
        return {}
    hit = _SITES.get(code)
    if hit is not None:
        return hit
    out: dict[int, _Site] = {}
    try:
        lines, first = inspect.getsourcelines(func)
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (OSError, TypeError, SyntaxError, IndentationError):
        tree = None
    fn = tree.body[0] if tree is not None and tree.body else None
    if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
        for node in _own_statements(fn.body):
            if isinstance(node, ast.AnnAssign) and node.value is not None and isinstance(node.target, ast.Name):
                if "tensor" not in ast.unparse(node.annotation):
                    continue
                start, end = first + node.lineno - 1, first + (node.end_lineno or node.lineno) - 1
                ann = compile(ast.Expression(node.annotation), code.co_filename, "eval")
                out[start] = _Site(start, end, node.target.id, ann, ast.unparse(node.annotation))
    _SITES[code] = out
    return out


def _own_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements of a function body, including those in its loops and branches, not in nested functions."""
    for node in body:
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                yield from _own_statements([child])
            elif isinstance(child, ast.ExceptHandler):
                yield from _own_statements(child.body)


def _expected_shape(annotation: Any) -> tuple[int, ...] | None:
    from .typing import TensorType

    return tuple(annotation.shape) if isinstance(annotation, TensorType) else None


def _broadcasts_to(shape: tuple[int, ...], want: tuple[int, ...]) -> bool:
    """A local annotated with a larger shape than its value's is a broadcast (e.g. `nisa.iota` of an expression of
    some grid axes annotated with the whole grid's shape, as in nki-samples' select_and_scatter): consumers
    broadcast the value the same way, so only shapes that cannot broadcast to the annotation are errors."""
    try:
        return broadcast_shapes(shape, want) == want
    except ValueError:
        return False


def _mismatch(name: str, shape: tuple[int, ...], want: tuple[int, ...], text: str, loc: SourceLoc) -> NkiValidationError:
    return NkiValidationError(
        f"'{name}' has shape {shape}, but it is annotated as {text} (shape {want})",
        code="err_annotation_shape_mismatch",
        values={"name": name, "shape": shape, "annotation": want},
        loc=loc,
        hint="fix the annotation or the value's shape",
    )


def check_parameters(func: Callable, args: tuple, kwargs: dict) -> None:
    """Arguments whose parameter is annotated `nt.tensor[shape, ...]` must have that shape."""
    try:
        ann = dict(inspect.get_annotations(func))
    except Exception:  # noqa: BLE001 - annotations may not evaluate outside the kernel's module
        return
    if not ann:
        return
    if any(isinstance(v, str) for v in ann.values()):  # `from __future__ import annotations`: strings
        scope = dict(getattr(func, "__globals__", {}))
        for name, cell in zip(func.__code__.co_freevars, getattr(func, "__closure__", None) or ()):
            with contextlib.suppress(ValueError):
                scope[name] = cell.cell_contents
        for k, v in list(ann.items()):
            if isinstance(v, str) and "tensor" in v:
                try:
                    ann[k] = eval(v, scope)  # noqa: S307 - the kernel's own annotation
                except Exception:  # noqa: BLE001 - not ours to report
                    del ann[k]
    try:
        bound = inspect.signature(func).bind(*args, **kwargs)
    except TypeError:
        return
    for name, value in bound.arguments.items():
        want = _expected_shape(ann.get(name))
        shape = getattr(value, "shape", None)
        if want is None or shape is None or tuple(shape) == want:
            continue
        loc = SourceLoc(inspect.getsourcefile(func) or "?", func.__code__.co_firstlineno, func.__name__)
        raise _mismatch(name, tuple(shape), want, str(ann[name]), loc)


class _Tracer:
    """Follows frames of one code object and checks annotated assignments after they ran."""

    def __init__(self, code: Any, sites: dict[int, _Site]) -> None:
        self.code = code
        self.sites = sites
        self.pending: dict[int, _Site] = {}  # frame id -> site whose statement is running

    def on_call(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "call" and frame.f_code is self.code:
            return self.on_line
        return None

    def on_line(self, frame: Any, event: str, arg: Any) -> Any:
        key = id(frame)
        site = self.pending.get(key)
        if event == "exception":
            self.pending.pop(key, None)  # the statement failed: nothing was bound
            return self.on_line
        if site is not None and (event == "return" or not site.start <= frame.f_lineno <= site.end):
            del self.pending[key]
            self._check(frame, site)
        if event == "line":
            s = self.sites.get(frame.f_lineno)
            if s is not None:
                self.pending[key] = s
        return self.on_line

    def _check(self, frame: Any, site: _Site) -> None:
        value = frame.f_locals.get(site.name)
        shape = getattr(value, "shape", None)
        if shape is None:
            return
        try:
            annotation = eval(site.annotation, frame.f_globals, dict(frame.f_locals))  # noqa: S307 - kernel's own
        except Exception:  # noqa: BLE001 - an annotation that does not evaluate is not ours to report
            return
        want = _expected_shape(annotation)
        if want is not None and tuple(shape) != want and not _broadcasts_to(tuple(shape), want):
            loc = SourceLoc(frame.f_code.co_filename, site.start, frame.f_code.co_name)
            raise _mismatch(site.name, tuple(shape), want, site.text, loc)


@contextlib.contextmanager
def annotation_checks(func: Callable, args: tuple, kwargs: dict) -> Iterator[None]:
    """Check parameter annotations now and annotated local assignments while the kernel runs."""
    check_parameters(func, args, kwargs)
    sites = _sites(func)
    if not sites or sys.gettrace() is not None:
        yield
        return
    tracer = _Tracer(func.__code__, sites)
    sys.settrace(tracer.on_call)
    try:
        yield
    finally:
        sys.settrace(None)
