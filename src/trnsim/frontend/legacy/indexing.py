"""Legacy NKI index algebra: nl.arange / nl.mgrid grids, affine index expressions and masks.

An `IndexExpr` is `const + sum(coef_v * v)` over index variables; each variable `v` enumerates
`start + step * j` for result position `j` along one axis of its own grid (`v.axis` of `v.ndim`). Subscripting a
tensor with such expressions stays lazy (`LazyAccess`) until an instruction resolves it together with its mask, so
that a mask can shrink the iteration space before any out-of-range index is touched. Single-variable expressions
on distinct axes become NumPy basic slices (views, no copies); anything else falls back to gather/scatter.

Masks restrict index *variables*, not result positions: `Predicate.analyse` returns ranges keyed by `IndexVar`
(identity), so a mask restricts exactly the variables it mentions wherever a subscript places them (grids of
different rank line up NumPy-style, from the right: see `tensor.access_plan`). Where a mask has to restrict a tile
that is not indexed by its variables (a plain tile operand, a result tile), the variable's position is the one it
has in the call's indexed operands (`MaskRanges.pos`), else `default_position`. Integer keys in a ranges dict are
positional restrictions (result axes) and -1 marks an always-false mask.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...core.errors import NkiError, NkiIndexError, NkiValidationError

_var_ids = itertools.count()


def _no_assignment(self: Any, key: Any, value: Any) -> None:
    raise NkiError("cannot assign to an index expression or index grid", code="err_cannot_assign_to_index")


class IndexVar:
    """One enumerated axis: values start + step * j for j in [0, size), on axis `axis` of its `ndim`-D grid.
    `grid` is the sizes of every axis of the nl.mgrid it came from (None for a lifted nl.arange)."""

    __slots__ = ("id", "start", "step", "size", "axis", "ndim", "grid")

    def __init__(
        self, start: int, step: int, size: int, axis: int, ndim: int, grid: tuple[int, ...] | None = None
    ) -> None:
        self.id = next(_var_ids)
        self.start, self.step, self.size, self.axis, self.ndim = start, step, size, axis, ndim
        self.grid = grid

    def shape(self) -> tuple[int, ...]:
        return tuple(self.size if a == self.axis else 1 for a in range(self.ndim))

    def values(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        hi = self.size if hi is None else hi
        v = self.start + self.step * np.arange(lo, hi, dtype=np.int64)
        return v.reshape(tuple(hi - lo if a == self.axis else 1 for a in range(self.ndim)))


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


class IndexExpr:
    """Affine combination of index variables (what nl.arange / nl.mgrid arithmetic produces)."""

    __slots__ = ("terms", "const", "ndim", "_structure")
    __array_priority__ = 1000  # make NumPy scalars defer to our operators

    def __init__(self, terms: dict[IndexVar, int], const: int, ndim: int) -> None:
        self.terms = terms
        self.const = const
        self.ndim = ndim
        self._structure: tuple | None = None  # see `structure`

    def structure(self) -> tuple:
        """What a subscript's resolution depends on apart from the constant (rank, each variable's
        axis/start/step/size/rank and coefficient), kept with the expression: expressions are never modified."""
        s = self._structure
        if s is None:
            s = self._structure = (
                self.ndim,
                tuple([(v.axis, v.start, v.step, v.size, v.ndim, c) for v, c in self.terms.items()]),
            )
        return s

    @staticmethod
    def of(var: IndexVar) -> IndexExpr:
        return IndexExpr({var: 1}, 0, var.ndim)

    # ---- shape
    @property
    def shape(self) -> tuple[int, ...]:
        """NumPy's broadcast shape of the expression's (open) grids: grids of lower rank line up from the right."""
        shp = [1] * self.ndim
        for v in self.terms:
            a = v.axis + self.ndim - v.ndim
            shp[a] = max(shp[a], v.size)
        return tuple(shp)

    # ---- affine arithmetic
    def _combine(self, other: Any, sign: int) -> IndexExpr:
        if type(other) is int or _is_int(other):
            # (`k * 128 + i.p` in a loop: the same terms and structure, another constant; expressions are never
            # modified, so the new one shares them)
            e = IndexExpr(self.terms, self.const + sign * int(other), self.ndim)
            e._structure = self._structure
            return e
        if isinstance(other, IndexExpr):
            terms = dict(self.terms)
            for v, c in other.terms.items():
                terms[v] = terms.get(v, 0) + sign * c
            terms = {v: c for v, c in terms.items() if c != 0}
            return IndexExpr(terms, self.const + sign * other.const, max(self.ndim, other.ndim))
        return NotImplemented

    def __add__(self, other: Any) -> IndexExpr:
        return self._combine(other, 1)

    __radd__ = __add__

    def __sub__(self, other: Any) -> IndexExpr:
        return self._combine(other, -1)

    def __rsub__(self, other: Any) -> IndexExpr:
        return (-self)._combine(other, 1)

    def __neg__(self) -> IndexExpr:
        return IndexExpr({v: -c for v, c in self.terms.items()}, -self.const, self.ndim)

    def __pos__(self) -> IndexExpr:
        return self

    def __mul__(self, other: Any) -> IndexExpr:
        if _is_int(other):
            k = int(other)
            return IndexExpr({v: c * k for v, c in self.terms.items() if c * k}, self.const * k, self.ndim)
        return NotImplemented

    __rmul__ = __mul__

    def __floordiv__(self, other: Any) -> Any:
        if _is_int(other):
            return EvaluatedIndex(self.evaluate() // int(other))
        return NotImplemented

    def __mod__(self, other: Any) -> Any:
        if _is_int(other):
            return EvaluatedIndex(self.evaluate() % int(other))
        return NotImplemented

    # ---- comparisons produce mask predicates
    def _cmp(self, other: Any, op: str) -> Predicate:
        return Predicate(self, op, other)

    def __lt__(self, other: Any) -> Predicate:
        return self._cmp(other, "<")

    def __le__(self, other: Any) -> Predicate:
        return self._cmp(other, "<=")

    def __gt__(self, other: Any) -> Predicate:
        return self._cmp(other, ">")

    def __ge__(self, other: Any) -> Predicate:
        return self._cmp(other, ">=")

    def __eq__(self, other: Any) -> Predicate:  # type: ignore[override]
        return self._cmp(other, "==")

    def __ne__(self, other: Any) -> Predicate:  # type: ignore[override]
        return self._cmp(other, "!=")

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        raise NkiError(
            "a Python condition depends on an nl.arange / nl.mgrid index expression",
            code="err_control_flow_condition_depending_on_arange",
            hint="use mask= or nisa.affine_select instead of Python control flow on index expressions",
        )

    def __setitem__(self, key: Any, value: Any) -> None:
        raise NkiError("cannot assign to an index expression", code="err_cannot_assign_to_index")

    # ---- evaluation
    def evaluate(
        self, restrict: dict | None = None, axes: dict[IndexVar, int] | None = None, nd: int | None = None
    ) -> np.ndarray:
        """Integer values over the (optionally restricted) box.

        Without `axes` each variable sits on its own grid axis (grids of different rank broadcast NumPy-style);
        with `axes` (variable -> axis of an `nd`-D box) the variables are placed there. `restrict` holds position
        ranges per box axis (int keys) and/or per variable (IndexVar keys); size-1 variables are never cut."""
        out = np.asarray(self.const, dtype=np.int64)
        for v, c in self.terms.items():
            if axes is None:
                a, n = v.axis, v.ndim
            else:
                a, n = axes.get(v, v.axis), nd if nd is not None else self.ndim
            lo, hi = 0, v.size
            if restrict and v.size > 1:
                for r in (restrict.get(a), restrict.get(v)):
                    if r is not None:
                        lo, hi = max(lo, r[0]), min(hi, r[1])
                hi = max(lo, hi)
            vals = v.start + v.step * np.arange(lo, hi, dtype=np.int64)
            out = out + c * vals.reshape(tuple(hi - lo if i == a else 1 for i in range(max(n, a + 1))))
        return out

    def variables(self) -> tuple[IndexVar, ...]:
        return tuple(self.terms)

    def single_var(self) -> tuple[IndexVar, int] | None:
        if len(self.terms) == 1:
            ((v, c),) = self.terms.items()
            return v, c
        return None

    def __repr__(self) -> str:
        t = " + ".join(f"{c}*v{v.id}[axis{v.axis}]" for v, c in self.terms.items())
        return f"IndexExpr({t} + {self.const})"


class EvaluatedIndex:
    """A non-affine index (e.g. floor division of an arange): explicit integer values."""

    __slots__ = ("values",)

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    @property
    def ndim(self) -> int:
        return self.values.ndim

    def _bin(self, other: Any, fn) -> EvaluatedIndex:
        o = (
            other.values
            if isinstance(other, EvaluatedIndex)
            else other.evaluate()
            if isinstance(other, IndexExpr)
            else other
        )
        return EvaluatedIndex(fn(self.values, o))

    def __add__(self, o):
        return self._bin(o, operator.add)

    __radd__ = __add__

    def __sub__(self, o):
        return self._bin(o, operator.sub)

    def __rsub__(self, o):
        return self._bin(o, lambda a, b: b - a)

    def __neg__(self):
        return EvaluatedIndex(-self.values)

    def __mul__(self, o):
        return self._bin(o, operator.mul)

    __rmul__ = __mul__

    # comparisons produce (non-separable) mask predicates
    def __lt__(self, o):
        return Predicate(self, "<", o)

    def __le__(self, o):
        return Predicate(self, "<=", o)

    def __gt__(self, o):
        return Predicate(self, ">", o)

    def __ge__(self, o):
        return Predicate(self, ">=", o)

    def __eq__(self, o):  # type: ignore[override]
        return Predicate(self, "==", o)

    def __ne__(self, o):  # type: ignore[override]
        return Predicate(self, "!=", o)

    __hash__ = object.__hash__

    def __floordiv__(self, o):
        return self._bin(o, operator.floordiv)

    def __mod__(self, o):
        return self._bin(o, operator.mod)

    __setitem__ = _no_assignment

    def evaluate(self, restrict=None) -> np.ndarray:
        if not restrict:
            return self.values
        sl = tuple(
            slice(*restrict[a]) if a in restrict and self.values.shape[a] > 1 else slice(None)
            for a in range(self.values.ndim)
        )
        return self.values[sl]

    def __bool__(self) -> bool:
        raise NkiError(
            "a Python condition depends on an index expression", code="err_control_flow_condition_depending_on_arange"
        )


class Arange1D:
    """nl.arange(...) before it is lifted to 2-D with [:, None] / [None, :]."""

    __slots__ = ("start", "stop", "step")

    def __init__(self, start: int, stop: int, step: int = 1) -> None:
        self.start, self.stop, self.step = int(start), int(stop), int(step)

    @property
    def size(self) -> int:
        return max(0, (self.stop - self.start + self.step - 1) // self.step)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.size,)

    def __getitem__(self, key: Any) -> IndexExpr:
        if not isinstance(key, tuple):
            key = (key,)
        ndim = len(key)
        full = [i for i, k in enumerate(key) if isinstance(k, slice)]
        if len(full) != 1 or any(k is not None for i, k in enumerate(key) if i != full[0]):
            raise NkiValidationError(
                f"unsupported subscript {key!r} on nl.arange; use [:, None] or [None, :]",
                code="err_1d_arange_not_supported",
            )
        return IndexExpr.of(IndexVar(self.start, self.step, self.size, full[0], ndim))

    def _lift_error(self, *args: Any, **kwargs: Any) -> Any:
        raise NkiValidationError(
            "a 1-D nl.arange cannot be used directly; lift it with [:, None] (partition) or [None, :] (free)",
            code="err_1d_arange_not_supported",
        )

    __add__ = __radd__ = __mul__ = __rmul__ = __sub__ = __rsub__ = _lift_error
    __lt__ = __le__ = __gt__ = __ge__ = _lift_error

    def __iter__(self):
        return iter(range(self.start, self.stop, self.step))

    __setitem__ = _no_assignment

    def __len__(self) -> int:
        return self.size


class MGrid:
    """nl.mgrid[0:P, 0:F, ...] -> index grid; unpacks into expressions, also has .p, .x, .y, .z."""

    def __getitem__(self, key: Any) -> GridResult:
        if not isinstance(key, tuple):
            key = (key,)
        ndim = len(key)
        exprs = []
        dims = []
        for k in key:
            if not isinstance(k, slice):
                raise NkiValidationError(f"nl.mgrid takes slices, got {k!r}", code="err_invalid_mgrid")
            start = k.start or 0
            step = k.step or 1
            dims.append((start, step, max(0, (k.stop - start + step - 1) // step)))
        sizes = tuple(d[2] for d in dims)
        for axis, (start, step, size) in enumerate(dims):
            exprs.append(IndexExpr.of(IndexVar(start, step, size, axis, ndim, sizes)))
        return GridResult(exprs)


class GridResult(tuple):
    """Tuple of index expressions with named accessors (.p partition, .x/.y/.z free axes)."""

    __setitem__ = _no_assignment

    @property
    def p(self) -> IndexExpr:
        return self[0]

    @property
    def x(self) -> IndexExpr:
        return self[1]

    @property
    def y(self) -> IndexExpr:
        return self[2]

    @property
    def z(self) -> IndexExpr:
        return self[3]


_CMP = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


class Predicate:
    """An affine comparison (a mask); `&` joins predicates."""

    __slots__ = ("parts", "_analysis")

    def __init__(self, lhs: Any, op: str | None = None, rhs: Any = None, parts: Sequence[tuple] | None = None) -> None:
        if parts is not None:
            self.parts = tuple(parts)
        else:
            self.parts = ((lhs, op, rhs),)
        self._analysis: tuple | None = None

    def __and__(self, other: Any) -> Predicate:
        if isinstance(other, Predicate):
            return Predicate(None, parts=self.parts + other.parts)
        if other is True or (isinstance(other, np.bool_) and other):
            return self
        if other is False or (isinstance(other, np.bool_) and not other):
            return False  # a loop-index condition that does not hold: the whole mask is false
        return NotImplemented

    __rand__ = __and__

    def __bool__(self) -> bool:
        raise NkiError(
            "a Python condition depends on an index comparison; use it as mask= instead",
            code="err_control_flow_condition_depending_on_arange",
        )

    def __or__(self, other: Any) -> Any:
        raise NkiValidationError("masks can only be joined with &", code="err_unsupported_expression_in_mask")

    def analyse(self) -> tuple[dict[Any, tuple[int, int]], list[tuple], int]:
        """Split into per-variable position ranges (separable parts: `{IndexVar: (lo, hi)}`, -1 for an always-false
        constant part) and a list of non-separable parts. The result is computed once per predicate (callers get
        their own copies of the containers)."""
        an = self._analysis
        if an is None:
            an = self._analysis = self._analyse()
        return dict(an[0]), list(an[1]), an[2]

    def _analyse(self) -> tuple[dict[Any, tuple[int, int]], list[tuple], int, list[IndexVar]]:
        ranges: dict[Any, tuple[int, int]] = {}
        rest: list[tuple] = []
        ndim = 0
        for lhs, op, rhs in self.parts:
            expr = _to_expr(lhs) - _to_expr(rhs) if isinstance(rhs, IndexExpr) or _is_int(rhs) else None
            if expr is None or isinstance(expr, int):
                if isinstance(lhs, EvaluatedIndex) or isinstance(rhs, EvaluatedIndex):
                    rest.append((lhs, op, rhs))
                    continue
                raise NkiValidationError(
                    f"unsupported expression in mask: {lhs!r} {op} {rhs!r}", code="err_unsupported_expression_in_mask"
                )
            if isinstance(expr, EvaluatedIndex):  # non-affine (e.g. i // 2 < 3): evaluated element-wise
                rest.append((lhs, op, rhs))
                continue
            ndim = max(ndim, expr.ndim)
            sv = expr.single_var()
            if sv is None:
                if not expr.terms:
                    ok = _CMP[op](expr.const, 0)
                    if not ok:
                        ranges[-1] = (0, 0)
                    continue
                rest.append((lhs, op, rhs))
                continue
            v, c = sv
            lo, hi = ranges.get(v, (0, v.size))
            j = np.arange(v.size, dtype=np.int64)
            vals = expr.const + c * (v.start + v.step * j)
            ok = np.flatnonzero(_CMP[op](vals, 0))
            if ok.size == 0:
                lo, hi = 0, 0
            else:
                if ok.size != ok[-1] - ok[0] + 1:
                    rest.append((lhs, op, rhs))
                    continue
                lo, hi = max(lo, int(ok[0])), min(hi, int(ok[-1]) + 1)
            ranges[v] = (lo, max(lo, hi))
        mentioned: dict[IndexVar, None] = {}
        for lhs, _, rhs in self.parts:
            for side in (lhs, rhs):
                if isinstance(side, IndexExpr):
                    mentioned.update(dict.fromkeys(side.terms))
        return ranges, rest, ndim, list(mentioned)

    def variables(self) -> list[IndexVar]:
        """The index variables the predicate mentions, in order of first appearance."""
        an = self._analysis
        if an is None:
            an = self._analysis = self._analyse()
        return an[3]

    @staticmethod
    def evaluate_parts(
        parts: list[tuple], restrict: dict, axes: dict[IndexVar, int] | None = None, nd: int | None = None
    ) -> np.ndarray:
        """The non-separable parts as a boolean array over the restricted box. Without `axes` variables sit on
        their own grid axes; with `axes` they sit where a subscript / tile places them (an `nd`-D box)."""
        out = None
        for lhs, op, rhs in parts:
            a = _evaluate_side(lhs, restrict, axes, nd)
            b = _evaluate_side(rhs, restrict, axes, nd)
            m = _CMP[op](a, b)
            out = m if out is None else (out & m)
        return out


def _evaluate_side(x: Any, restrict: dict, axes: dict[IndexVar, int] | None, nd: int | None) -> Any:
    if isinstance(x, IndexExpr):
        return x.evaluate(restrict, axes, nd)
    if hasattr(x, "evaluate"):
        v = x.evaluate({a: r for a, r in restrict.items() if type(a) is int} if restrict else restrict)
        if nd is not None and np.ndim(v) < nd:
            v = np.reshape(v, np.shape(v) + (1,) * (nd - np.ndim(v)))
        return v
    return x


class MaskRanges(dict):
    """A mask's ranges (`{IndexVar: (lo, hi)}`, plus positional int keys) together with `pos`: the result position
    of each variable in the indexed operands of the call the mask belongs to (see `lowering.mask_info`)."""

    __slots__ = ("pos",)

    def __init__(self, *args: Any, pos: dict[IndexVar, int] | None = None) -> None:
        super().__init__(*args)
        self.pos = pos or {}


def default_position(v: IndexVar, rank: int) -> int | None:
    """Result position of a mask variable on a tile of `rank` dims that its subscripts do not index: its grid axis,
    where grid axes of size 1 count only when the tile has as many dims as the grid (a `[128, N]` tile indexed with
    `ix, iw, iy = nl.mgrid[0:128, 0:1, 0:N]` has iy at position 1). None when it lies outside the tile."""
    if v.grid is not None and v.ndim != rank:
        kept = [a for a, n in enumerate(v.grid) if n > 1 or a == v.axis]
        if len(kept) == rank:
            return kept.index(v.axis)
    return v.axis if v.axis < rank else None


def positional(ranges: dict, rank: int | None) -> dict[int, tuple[int, int]]:
    """`ranges` as position ranges of a `rank`-D tile: int keys as they are, variables at their call position
    (`MaskRanges.pos`) or `default_position` (their grid axis when `rank` is None); ranges on one position
    intersect."""
    if not ranges:
        return {}
    pos = getattr(ranges, "pos", None) or {}
    out: dict[int, tuple[int, int]] = {}
    for k, r in ranges.items():
        if isinstance(k, IndexVar):
            a = pos.get(k)
            if a is None:
                a = k.axis if rank is None else default_position(k, rank)
            if a is None or (rank is not None and a >= rank):
                continue
        else:
            a = k
        prev = out.get(a)
        out[a] = r if prev is None else (max(prev[0], r[0]), max(max(prev[0], r[0]), min(prev[1], r[1])))
    return out


def placement(vars_: Any, ranges: dict, rank: int) -> dict[IndexVar, int]:
    """Positions of `vars_` on a `rank`-D tile that no subscript of theirs indexes (see `positional`)."""
    pos = getattr(ranges, "pos", None) or {}
    out = {}
    for v in vars_:
        a = pos.get(v)
        if a is None:
            a = default_position(v, rank)
        out[v] = a if a is not None else v.axis
    return out


def _to_expr(x: Any) -> Any:
    if isinstance(x, IndexExpr):
        return x
    if _is_int(x):
        return IndexExpr({}, int(x), 0)
    return x


def slice_for(var: IndexVar, coef: int, const: int, lo: int, hi: int, dim: int, what: str) -> slice | int:
    """The basic slice selecting const + coef*(start + step*j) for j in [lo, hi) from an axis of size dim."""
    n = hi - lo
    first = const + coef * (var.start + var.step * lo)
    step = coef * var.step
    if n <= 0:
        return slice(0, 0)
    last = first + step * (n - 1)
    if min(first, last) < 0 or max(first, last) >= dim:
        raise NkiIndexError(
            f"index range [{min(first, last)}, {max(first, last)}] is out of bounds for {what} of size {dim}",
            values={"range": (min(first, last), max(first, last)), "size": dim},
            hint="restrict the access with mask= (e.g. mask=(i_p < n)) or fix the index expression",
        )
    stop = last + (1 if step > 0 else -1)
    return slice(first, stop if stop >= 0 else None, step)
