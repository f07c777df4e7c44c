"""Arithmetic on one numeric column, read as a range of the column.

``duration_ms / 60000 > 4``, ``year - 1900 < 30`` and ``popularity * 2 + 1
BETWEEN 50 AND 80`` apply ``+``, ``-``, ``*`` and ``/`` with numbers to one
column. Each step is monotone in the column, so the rows where such a
comparison holds are one range of the column (two for ``!=``), and hqi
rewrites it as plain comparisons of the column: it then compiles, routes by
zone maps and cuts the layout like any range.

The range is exactly DuckDB's, step by step in DuckDB's types:

- On an integer column, ``+``, ``-`` and ``*`` with integers or decimals
  (``2.5``) are exact, as DuckDB's integer and DECIMAL arithmetic; the
  bound is solved in rational numbers.
- ``/`` is DuckDB's floating-point division (``7 / 2`` is ``3.5``): from the
  first ``/`` on, the value is a double, rounded after every step as DuckDB
  rounds it, and a float column's value is a double from the start. The
  bound is then found by bisection over the column's values (ordered
  doubles, or integers), which rounding keeps monotone.
- ``//`` of an integer value by a whole number is DuckDB's integer division,
  truncated toward zero (``-7 // 2`` is ``-3``): monotone too, so the bound
  is found by bisection over the integers, exactly. Of any other value, or
  by a decimal or a DOUBLE literal, DuckDB's ``//`` divides as ``/`` does
  (``7 // 2.0`` is ``3.5``), and so does hqi.
- ``floor``, ``ceil``, ``trunc`` and ``round`` (half away from zero) of the
  value, monotone as well, in DuckDB's types: of a decimal, exactly; of a
  double, in doubles; of an integer, ``round`` and ``trunc`` are the integer
  and ``floor`` and ``ceil`` its double (DuckDB returns a DOUBLE there).
- ``abs(...)`` around the whole expression is not monotone but splits in
  two: ``abs(e) < v`` is ``e < v AND e > -v``, ``abs(e) > v`` is ``e > v OR
  e < -v``, each solved as above (:func:`solve_abs`).

Where DuckDB stops with an error (an integer overflow in the column's own
type, ``127::TINYINT + 1``), hqi computes the exact value instead. A
``float32`` column is computed in double (DuckDB computes ``FLOAT`` in
single precision).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from hqi.query.predicate import (
    FLIPPED,
    And,
    Compare,
    CompareOp,
    Const,
    IsNull,
    Not,
    Or,
    Predicate,
)

__all__ = ["ROUNDINGS", "Step", "as_duckdb", "solve", "solve_abs"]

INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_DBL_MAX = 1.7976931348623157e308


@dataclass(frozen=True)
class Step:
    """One step applied to the value so far: ``op`` with the number
    ``constant`` (its literal's exact value), the number on the left when
    ``left`` (``10 - x``). ``double``: the literal is a DOUBLE in DuckDB
    (``1e3``), which makes the value a double from this step on, as ``/``
    does."""

    op: str  # "+", "-", "*", "/", "//"; or one of ROUNDINGS (no constant)
    constant: Fraction
    left: bool = False
    double: bool = False
    integer: bool = True  # an integer literal (no point, no exponent): an INTEGER in DuckDB

    @property
    def in_doubles(self) -> bool:
        """Whether the value is a double from this step on."""
        return self.op == "/" or self.double


def _always(column: str) -> Predicate:
    """TRUE where the column is not NULL, NULL where it is."""
    return Or((Not(IsNull(column)), Const(None)))


def _never(column: str) -> Predicate:
    """FALSE where the column is not NULL, NULL where it is."""
    return And((IsNull(column), Const(None)))


def solve(
    column: str, integer: bool, steps: list[Step], op: CompareOp, value: Fraction
) -> Predicate:
    """The comparisons of ``column`` (an integer column when ``integer``)
    that hold exactly where ``steps(column) op value`` does, NULL where the
    column is NULL."""
    if integer and not any(step.in_doubles for step in steps):
        if any(step.op not in ("+", "-", "*") for step in steps):  # not linear: bisection
            return _solve_double(column, integer, steps, op, value)
        return _solve_exact(column, steps, op, value)
    return _solve_double(column, integer, steps, op, value)


def solve_abs(
    column: str, integer: bool, steps: list[Step], op: CompareOp, value: Fraction
) -> Predicate:
    """:func:`solve` for ``abs(steps(column)) op value``: the expression
    within ``value`` of 0, or beyond it (``abs`` is exact, in doubles too)."""
    if op in ("=", "!="):
        if value < 0:
            same = _never(column)
        elif value == 0:
            same = solve(column, integer, steps, "=", value)
        else:
            plus = solve(column, integer, steps, "=", value)
            minus = solve(column, integer, steps, "=", -value)
            never = _never(column)  # X OR never is X: both NULL where the column is
            same = minus if plus == never else plus if minus == never else Or((plus, minus))
        return same if op == "=" else Not(same)
    if op in ("<", "<="):  # inside: an empty range when value < 0 (or 0 for <)
        within: CompareOp = ">" if op == "<" else ">="
        return And(
            (
                solve(column, integer, steps, op, value),
                solve(column, integer, steps, within, -value),
            )
        )
    beyond: CompareOp = "<" if op == ">" else "<="
    return Or(
        (solve(column, integer, steps, op, value), solve(column, integer, steps, beyond, -value))
    )


ROUNDINGS = ("floor", "ceil", "trunc", "round")  # steps of the value alone, no constant


def as_duckdb(column_is_integer: bool, steps: list[Step]) -> list[Step]:
    """``steps`` (innermost first) as DuckDB types them: ``//`` an integer
    division where the value is an integer and the divisor a whole literal,
    else a division (``/``); ``round`` and ``trunc`` of an integer dropped (the
    integer itself), ``floor`` and ``ceil`` of one made a double (DuckDB
    returns a DOUBLE)."""
    integral = column_is_integer
    out = []
    for step in steps:
        if step.op == "//" and not (integral and step.integer):
            step = Step("/", step.constant, step.left, step.double, step.integer)
        if step.op in ("round", "trunc") and integral:
            continue
        if step.op in ("floor", "ceil") and integral:
            step = Step(step.op, step.constant, double=True)
        if step.op in ("+", "-", "*"):
            integral = integral and step.integer
        elif step.op == "/" or step.op in ROUNDINGS:
            integral = False
        out.append(step)
    return out


def _solve_exact(column: str, steps: list[Step], op: CompareOp, value: Fraction) -> Predicate:
    """Integer and decimal steps on an integer column: ``a * x + b``, exactly."""
    a, b = Fraction(1), Fraction(0)
    for step in steps:
        c = step.constant
        if step.op == "+":
            b += c
        elif step.op == "-" and step.left:
            a, b = -a, c - b
        elif step.op == "-":
            b -= c
        else:  # "*"
            a, b = a * c, b * c
    if a == 0:
        holds = {
            "=": b == value,
            "!=": b != value,
            "<": b < value,
            "<=": b <= value,
            ">": b > value,
            ">=": b >= value,
        }[op]
        return _always(column) if holds else _never(column)
    t = (value - b) / a
    if a < 0:
        op = FLIPPED[op]
    if op in ("=", "!="):
        if t.denominator != 1 or not INT_MIN <= t <= INT_MAX:
            return _never(column) if op == "=" else _always(column)
        return Compare(column, op, int(t))
    if op in (">", ">="):
        low = math.floor(t) + 1 if op == ">" else math.ceil(t)
        return _at_least(column, low)
    high = math.ceil(t) - 1 if op == "<" else math.floor(t)
    return _at_most(column, high)


def _at_least(column: str, low: int) -> Predicate:
    if low > INT_MAX:
        return _never(column)
    if low <= INT_MIN:
        return _always(column)
    return Compare(column, ">=", low)


def _at_most(column: str, high: int) -> Predicate:
    if high < INT_MIN:
        return _never(column)
    if high >= INT_MAX:
        return _always(column)
    return Compare(column, "<=", high)


def _double_of(value: Fraction) -> float:
    """A literal as DuckDB casts it to DOUBLE: the nearest double."""
    return float(value)


def _evaluate(steps: list[Step], integer: bool) -> Callable[[int | float], Fraction | float]:
    """The value of ``steps`` at one column value, as DuckDB computes it:
    exactly up to the first ``/`` (or DOUBLE literal) on an integer column
    (a Fraction if there is none), in doubles after."""

    def run(x: int | float) -> Fraction | float:
        exact: Fraction | None = Fraction(x) if integer else None
        value = float(x)
        for step in steps:
            if exact is not None and not step.in_doubles:
                exact = _apply(step, exact, step.constant)
                continue
            if exact is not None:  # the first division or DOUBLE: a double from here on
                value, exact = float(exact), None
            value = _apply(step, value, _double_of(step.constant))
        return exact if exact is not None else value

    return run


def _apply(step: Step, value: Any, c: Any) -> Any:
    """``value op c`` (``c op value`` for a constant on the left), in the
    numbers' own arithmetic (rational or double)."""
    if step.op == "+":
        return value + c
    if step.op == "-":
        return c - value if step.left else value - c
    if step.op == "*":
        return value * c
    if step.op == "//":  # integers only (as_duckdb): truncated toward zero
        return Fraction(math.trunc(Fraction(value) / c))
    if step.op in ROUNDINGS:
        return _rounded(step.op, value)
    return value / c


def _rounded(op: str, value: Any) -> Any:
    """``floor``, ``ceil``, ``trunc`` or ``round`` (half away from zero) of a
    rational (exactly) or a double (infinities and NaN kept)."""
    exact = isinstance(value, Fraction)
    if not exact and not math.isfinite(value):
        return value
    v = Fraction(value)
    if op == "floor":
        r = math.floor(v)
    elif op == "ceil":
        r = math.ceil(v)
    elif op == "trunc":
        r = math.trunc(v)
    else:
        r = math.floor(abs(v) + Fraction(1, 2)) * (1 if v >= 0 else -1)
    return Fraction(r) if exact else float(r)


def _key(x: float) -> int:
    """An integer in the order of the doubles (``-inf`` lowest)."""
    bits = struct.unpack("<q", struct.pack("<d", x))[0]
    return bits if bits >= 0 else -(bits & 0x7FFFFFFFFFFFFFFF) - 1


def _double(key: int) -> float:
    bits = key if key >= 0 else (-(key + 1)) | -0x8000000000000000
    return struct.unpack("<d", struct.pack("<q", bits))[0]


_KEY_LOW, _KEY_HIGH = _key(-math.inf), _key(math.inf)


def _solve_double(
    column: str, integer: bool, steps: list[Step], op: CompareOp, value: Fraction
) -> Predicate:
    """The range by bisection: ``steps`` are monotone in the column, so the
    values where a comparison holds are a prefix or a suffix of the ordered
    values (``=``: both, ``!=``: the rest). Compared in doubles, or exactly
    where the steps never leave the integers (``x // 10``)."""
    run = _evaluate(steps, integer)
    exact = integer and not any(step.in_doubles for step in steps)
    target: Fraction | float = value if exact else _double_of(value)
    if integer:
        low, high = INT_MIN, INT_MAX
        to_value: Callable[[int], int | float] = int
    else:
        low, high = _KEY_LOW, _KEY_HIGH
        to_value = _double
    increasing = run(to_value(high)) >= run(to_value(low))
    compare = {
        "<": lambda v: v < target,
        "<=": lambda v: v <= target,
        ">": lambda v: v > target,
        ">=": lambda v: v >= target,
    }

    def bound(test: Callable[[Fraction | float], bool], upward: bool) -> int | None:
        """The first key (``upward``) or the last (not) in the set where
        ``test`` holds, which is a suffix (upward) or a prefix; None if empty."""
        lo, hi = low, high
        if upward:
            if not test(run(to_value(hi))):
                return None
            while lo < hi:
                mid = (lo + hi) // 2
                if test(run(to_value(mid))):
                    hi = mid
                else:
                    lo = mid + 1
            return lo
        if not test(run(to_value(lo))):
            return None
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if test(run(to_value(mid))):
                lo = mid
            else:
                hi = mid - 1
        return lo

    def ray(which: CompareOp) -> tuple[int, int] | None:
        """(first, last) keys of the values where ``run(x) which target``:
        a suffix or a prefix of them; None if none."""
        upward = (which in (">", ">=")) == increasing
        edge = bound(compare[which], upward)
        if edge is None:
            return None
        return (edge, high) if upward else (low, edge)

    if op in ("=", "!="):
        above, below = ray(">="), ray("<=")
        span = None
        if above is not None and below is not None:
            span = (max(above[0], below[0]), min(above[1], below[1]))
            span = span if span[0] <= span[1] else None
        inside = (
            _never(column) if span is None else _within(column, integer, to_value, span, low, high)
        )
        return inside if op == "=" else Not(inside)
    span = ray(op)
    if span is None:
        return _never(column)
    return _within(column, integer, to_value, span, low, high)


def _within(
    column: str,
    integer: bool,
    to_value: Callable[[int], int | float],
    span: tuple[int, int],
    low: int,
    high: int,
) -> Predicate:
    """``column`` between the values of keys ``span`` (first, last)."""
    first, last = span
    parts: list[Predicate] = []
    if first > low:
        parts.append(_from(column, integer, to_value(first)))
    if last < high:
        parts.append(_to(column, integer, to_value(last)))
    if not parts:
        return _always(column)
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _from(column: str, integer: bool, value: int | float) -> Predicate:
    if not integer and value == math.inf:  # only +inf: past the largest double
        return Compare(column, ">", _DBL_MAX)
    return Compare(column, ">=", value)


def _to(column: str, integer: bool, value: int | float) -> Predicate:
    if not integer and value == -math.inf:
        return Compare(column, "<", -_DBL_MAX)
    return Compare(column, "<=", value)
