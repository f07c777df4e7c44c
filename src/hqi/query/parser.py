"""Parse SQL ``WHERE`` expressions (DuckDB dialect) into predicate trees.

The grammar hqi evaluates::

    pred   := pred AND pred | pred OR pred | NOT pred | ( pred )
            | col op lit | lit op col          op: = != <> < <= > >=
            | col [NOT] BETWEEN lit AND lit
            | col [NOT] IN (lit, ...)
            | col IS [NOT] NULL | pred IS [NOT] TRUE|FALSE|NULL
            | col IS [NOT] DISTINCT FROM lit | lit IS [NOT] DISTINCT FROM col
            | list_contains(col, 'text')      (list<string> columns)
            | list_has_any|list_has_all(col, ['text', ...])
            | col [NOT] LIKE|ILIKE 'pattern' [ESCAPE 'c']
            | starts_with|prefix|ends_with|suffix|contains(col, 'text')
            | regexp_matches|regexp_full_match(col, 're' [, 'options'])
            | col [NOT] SIMILAR TO 're'
                                               (string columns)
            | lower(col) = 'text' | lower(col) != 'text'
            | lower(col) [NOT] IN ('text', ...)  (and upper(); also in place of
                                               col in LIKE, the pattern
                                               functions and IS NULL)
            | year(col) op num | year(col) [NOT] BETWEEN num AND num
            | year(col) [NOT] IN (num, ...)    (date and timestamp columns;
                                               extract(year FROM col) and
                                               date_part('year', col) too;
                                               isoyear and yearweek (ISO
                                               8601) alike)
            | part(col) op num | part(col) [NOT] BETWEEN num AND num
            | part(col) [NOT] IN (num, ...)    (part: month, day, quarter,
                                               dayofweek, isodow, dayofyear,
                                               week (ISO), hour, minute,
                                               second; also by extract and
                                               date_part)
            | col                              (boolean columns)
            | TRUE | FALSE | NULL
    col    := a column name
            | coalesce(name, lit, ...)         (ifnull(name, lit) too: once
                                               per test, in place of the
                                               column in any form above)
    lit    := 'text' | number | TRUE | FALSE | NULL
            | DATE 'YYYY-MM-DD' | TIMESTAMP 'YYYY-MM-DD hh:mm:ss'
            | current_date | today()           (the local date, read once
                                               per search)

Column names resolve case-insensitively, as in DuckDB. Parsing is done by
sqlglot; nothing is ever ``eval``-ed. Every problem raises a subclass of
:class:`hqi.errors.FilterError` that names it and its position.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
from collections.abc import Callable
from fractions import Fraction
from typing import Any, cast

import numpy as np
import sqlglot
from sqlglot import exp

from hqi.errors import (
    FilterSyntaxError,
    FilterTypeError,
    UnknownColumnError,
    UnsupportedFilterError,
)
from hqi.query import coalesce
from hqi.query.arithmetic import Step, _always, _never, as_duckdb, solve, solve_abs
from hqi.query.columns import ColumnKind, Schema
from hqi.query.dateparts import FUNCTIONS, PARTS, SPECIFIERS
from hqi.query.intervals import (
    Interval,
    add_interval,
    after,
    interval_of,
    today,
    trunc_unit,
    truncate,
)
from hqi.query.patterns import REGEX_OPTIONS, escaped, pattern_error, regex_error
from hqi.query.predicate import (
    FLIPPED,
    OPERATORS,
    And,
    ColumnCompare,
    Compare,
    CompareOp,
    Const,
    Contains,
    DatePart,
    Difference,
    Fold,
    FoldedRange,
    Glob,
    InList,
    IsNull,
    Length,
    LengthUnit,
    Like,
    Modulo,
    Not,
    Or,
    Predicate,
    Regex,
    Value,
    columns_of,
    truth_of,
)

__all__ = ["parse_filter"]

_COMPARE: dict[type[exp.Expression], CompareOp] = {
    exp.EQ: "=",
    exp.NEQ: "!=",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.GT: ">",
    exp.GTE: ">=",
}
_NULL = object()  # a NULL literal
_FIRST_YEAR, _LAST_YEAR = 1, 9998  # years whose start and the next one's are dates
# String functions read as LIKE patterns: the kind of pattern each one makes.
# sqlglot parses some into their own nodes (which ones depends on its
# version), the rest are anonymous functions.
_AFFIX = {
    "starts_with": "prefix",
    "prefix": "prefix",
    "ends_with": "suffix",
    "suffix": "suffix",
    "contains": "contains",
    "StartsWith": "prefix",
    "EndsWith": "suffix",
    "Contains": "contains",
}
# list_has_any / list_has_all (and their array_ names): True when all are needed.
_HAS = {"list_has_any": False, "array_has_any": False, "list_has_all": True, "array_has_all": True}
_HAS_NODES = tuple(
    getattr(exp, name) for name in ("ArrayOverlaps", "ArrayContainsAll") if hasattr(exp, name)
)
_AFFIX_NODES = tuple(
    getattr(exp, name) for name in ("StartsWith", "EndsWith", "Contains") if hasattr(exp, name)
)


class _Shown:
    """An expression's SQL text for error messages, made only when one shows it:
    sqlglot's generator costs about 20 us (``duration_ms / 60000``), which
    each arithmetic test paid up to three times when parsed."""

    __slots__ = ("expr", "text")

    def __init__(self, expr: exp.Expression) -> None:
        self.expr = expr
        self.text: str | None = None

    def __str__(self) -> str:
        if self.text is None:
            self.text = self.expr.sql(dialect="duckdb")
        return self.text

    def __repr__(self) -> str:
        return repr(str(self))


# The current time's functions, refused by name (their values have a time zone).
_CLOCK_TIMES = {"now", "get_current_timestamp", "transaction_timestamp", "current_localtimestamp"}


def parse_filter(text: str, schema: Schema) -> Predicate | None:
    """Parse ``text`` and check it against ``schema``.

    Returns ``None`` for an empty (all-whitespace) filter, which matches
    every row. Raises :class:`~hqi.errors.FilterError` subclasses.
    """
    if not isinstance(text, str):
        raise FilterSyntaxError(f"a filter must be a SQL string or None, not {type(text).__name__}")
    if not text.strip():
        return None
    tree = _sqlglot_parse(text)
    return _Checker(text, schema).predicate(tree)


def _sqlglot_parse(text: str) -> exp.Expression:
    try:
        trees = sqlglot.parse(text, read="duckdb")
    except sqlglot.errors.ParseError as err:
        info = err.errors[0] if err.errors else {}
        desc = str(info.get("description", "invalid expression")).split(" for <class")[0]
        desc = desc.replace("Required keyword: 'expression' missing", "incomplete expression")
        raise FilterSyntaxError(
            f"syntax error: {desc.lower()}",
            text=text,
            position=_offset(text, info.get("line"), info.get("col"), info.get("highlight", "")),
        ) from None
    except sqlglot.errors.TokenError:
        quote = _unbalanced_quote(text)
        msg = "unterminated string literal" if quote is not None else "cannot tokenize filter"
        raise FilterSyntaxError(msg, text=text, position=quote) from None
    trees = [t for t in trees if t is not None]
    if len(trees) != 1:
        raise FilterSyntaxError("expected one expression, found several (a ';'?)", text=text)
    tree = cast(exp.Expression, trees[0])
    if isinstance(tree, exp.Query | exp.DDL | exp.DML):
        raise FilterSyntaxError(
            "expected a WHERE expression such as \"genre = 'jazz'\", not a statement",
            text=text,
            position=0,
        )
    return tree


def _offset(text: str, line: Any, col: Any, highlight: str) -> int | None:
    if not isinstance(line, int) or not isinstance(col, int):
        return None
    lines = text.split("\n")
    end = sum(len(row) + 1 for row in lines[: line - 1]) + col - 1
    start = end - max(len(highlight), 1) + 1
    return max(0, min(start, len(text) - 1))


def _unbalanced_quote(text: str) -> int | None:
    start = None
    for i, ch in enumerate(text):
        if ch == "'":
            start = i if start is None else None
    return start


def _position(node: exp.Expression) -> int | None:
    starts = [
        int(meta["start"])
        for sub in node.walk()
        if (meta := getattr(sub, "_meta", None)) and "start" in meta
    ]
    return min(starts) if starts else None


class _Checker:
    def __init__(self, text: str, schema: Schema) -> None:
        self.text = text
        self.schema = schema
        # Whether to look for coalesce() (ifnull() parses as one) under each test:
        # a walk per node, 35% of parsing a batch of filters without any.
        lowered = text.lower()
        self._coalesce = "coalesce" in lowered or "ifnull" in lowered

    @functools.cached_property
    def _lower(self) -> dict[str, str]:
        """The schema's names by their lowercase (made when a name is not found as
        written: checking a test of a batch's filters mostly never needs it)."""
        return {name.lower(): name for name in self.schema}

    # -- errors -------------------------------------------------------------
    def _unsupported(self, node: exp.Expression, what: str) -> UnsupportedFilterError:
        return UnsupportedFilterError(what, text=self.text, position=_position(node))

    def _type_error(self, node: exp.Expression, what: str) -> FilterTypeError:
        return FilterTypeError(what, text=self.text, position=_position(node))

    # -- tree ---------------------------------------------------------------
    def predicate(self, node: exp.Expression) -> Predicate:
        if isinstance(node, exp.Paren):
            return self.predicate(node.this)
        if isinstance(node, exp.And):
            return And((self.predicate(node.this), self.predicate(node.expression)))
        if isinstance(node, exp.Or):
            return Or((self.predicate(node.this), self.predicate(node.expression)))
        if isinstance(node, exp.Not):
            return Not(self.predicate(node.this))
        if isinstance(node, exp.Boolean):
            return Const(bool(node.this))
        if isinstance(node, exp.Null):
            return Const(None)
        if self._coalesce and (calls := coalesce.operands(node)):
            return self._coalesce_test(node, calls)
        if type(node) in _COMPARE:
            return self._compare(node, _COMPARE[type(node)])
        if isinstance(node, exp.Between) and (unit := _year_unit(node.this)) is not None:
            column, kind = self._date_column(node.this, unit)
            what = f"{unit}({column}), an integer"
            low = self.literal(node.args["low"], column, ColumnKind.INT, what)
            high = self.literal(node.args["high"], column, ColumnKind.INT, what)
            return And(
                (
                    self._year_compare(node, column, kind, ">=", low, unit),
                    self._year_compare(node, column, kind, "<=", high, unit),
                )
            )
        if isinstance(node, exp.Between) and _date_part_of(node.this) is not None:
            low = self._part_literal(node.this, node.args["low"])
            high = self._part_literal(node.this, node.args["high"])
            if low is _NULL or high is _NULL:  # NULL AND a test: FALSE where it fails
                bound = high if low is _NULL else low
                within: list[tuple[CompareOp, object]] = []
                if bound is not _NULL:
                    within.append(("<=" if low is _NULL else ">=", bound))
                return And((self._date_part(node.this, within), Const(None)))
            return self._date_part(node.this, [(">=", low), ("<=", high)])
        if isinstance(node, exp.Between) and _fold_of(node.this) is not None:
            low = self._folded_compare(node.this, node, node.args["low"], ">=")
            high = self._folded_compare(node.this, node, node.args["high"], "<=")
            return And((low, high))  # a NULL bound: Const(None), FALSE where the other fails
        if isinstance(node, exp.Between) and (read := self._derived(node.this, node)):
            return _joined([read(op, bound) for op, bound in _bounds(node)], any_of=False)
        if isinstance(node, exp.Between):
            column, kind = self.column(node.this, node)
            tests: list[Predicate] = []
            for op, bound in _bounds(node):
                if isinstance(bound, exp.Column) and isinstance(node.this, exp.Column):
                    tests.append(self._column_compare(node, node.this, op, bound))
                else:
                    tests.append(self._make_compare(column, op, self.literal(bound, column, kind)))
            return And((tests[0], tests[1]))
        if isinstance(node, exp.In):
            return self._in(node)
        if isinstance(node, exp.Is):
            target = node.expression
            if isinstance(target, exp.Null) and isinstance(node.this, exp.Column):
                column, _ = self.column(node.this, node)
                return IsNull(column)
            if isinstance(target, exp.Null) and (unit := _year_unit(node.this)) is not None:
                return IsNull(self._date_column(node.this, unit)[0])  # NULL just where the date is
            if isinstance(target, exp.Null) and _date_part_of(node.this) is not None:
                return IsNull(self._date_column(node.this, _date_part_of(node.this))[0])
            if isinstance(target, exp.Null) and _fold_of(node.this) is not None:
                return IsNull(self._string_column(node.this, node, "IS NULL")[0])
            if isinstance(target, exp.Null) and (trunc := _trunc_of(node.this)) is not None:
                return IsNull(self.column(trunc[0], node)[0])  # NULL just where the column is
            if isinstance(target, exp.Null) and (casted := _cast_of(node.this)) is not None:
                return IsNull(self.column(casted[0], node)[0])  # NULL just where the column is
            if isinstance(target, exp.Null) and _length_of(node.this) is not None:
                column = self._length_column(node.this, node)[0]
                return IsNull(column)  # NULL just where the column is
            if isinstance(target, exp.Null) and _is_arithmetic(node.this):
                inner = node.this
                while isinstance(inner, exp.Paren | exp.Abs):
                    inner = inner.this
                if (difference := self._difference_of(inner, node)) is not None:
                    return Or((IsNull(difference[0]), IsNull(difference[1])))
                modulo = self._modulo_of(inner, node)
                column = self._steps(inner, node)[0] if modulo is None else modulo[0]
                return IsNull(column)  # NULL just where the column is
            if not isinstance(target, exp.Null | exp.Boolean):
                raise self._unsupported(
                    node, "IS takes NULL, TRUE or FALSE (IS [NOT] DISTINCT FROM a value)"
                )
            value = None if isinstance(target, exp.Null) else bool(target.this)
            return truth_of(self.predicate(node.this), value)
        if isinstance(node, exp.NullSafeEQ | exp.NullSafeNEQ):
            return self._distinct(node)
        if isinstance(node, exp.ArrayContains):
            return self._contains(node, node.this, node.expression)
        if isinstance(node, _HAS_NODES):  # list_has_any(col, [...]), col && [...], ...
            every = type(node).__name__ == "ArrayContainsAll"
            return self._has(node, node.this, node.expression, every=every)
        if isinstance(node, exp.Anonymous) and node.name.lower() in _HAS:
            if len(node.expressions) != 2:
                raise self._unsupported(node, f"{node.name.lower()}() takes two arguments")
            return self._has(node, *node.expressions, every=_HAS[node.name.lower()])
        if isinstance(node, exp.RegexpLike | exp.SimilarTo) or type(node).__name__ == (
            "RegexpFullMatch"
        ):
            return self._regex(node)
        if isinstance(node, exp.Escape) and isinstance(node.this, exp.Like | exp.ILike):
            return self._like(node.this, node.expression, node)
        if isinstance(node, exp.Like | exp.ILike):
            return self._like(node, None, node)
        if isinstance(node, exp.Glob):
            column, fold = self._string_column(node.this, node, "GLOB")
            pattern = self.literal(node.expression, column, ColumnKind.STRING)
            return Const(None) if pattern is _NULL else Glob(column, cast(str, pattern), fold)
        if isinstance(node, _AFFIX_NODES):
            return self._affix(node, _AFFIX[type(node).__name__], node.this, node.expression)
        if isinstance(node, exp.Anonymous) and node.name.lower() in _AFFIX:
            if len(node.expressions) != 2:
                raise self._unsupported(node, f"{node.name.lower()}() takes two arguments")
            return self._affix(node, _AFFIX[node.name.lower()], *node.expressions)
        if isinstance(node, exp.Column):
            column, kind = self.column(node, node)
            if kind is not ColumnKind.BOOL:
                raise self._type_error(
                    node, f"column {column!r} is {kind.value}, not boolean; compare it to a value"
                )
            return Compare(column, "=", True)
        if isinstance(node, exp.Func):
            raise self._unsupported_function(node)
        raise self._unsupported(node, f"unsupported expression {node.sql(dialect='duckdb')!r}")

    def _unsupported_function(self, node: exp.Expression) -> UnsupportedFilterError:
        named = isinstance(node, exp.Func) and not isinstance(node, exp.Anonymous)
        name = node.sql_name().lower() if named else node.name  # type: ignore[attr-defined]
        unit = _part_name(node)
        if unit is not None and unit not in _YEAR_UNITS and unit not in SPECIFIERS:  # epoch
            return self._unsupported(
                node,
                f"unsupported date part {unit!r} in {name}(); supported: year, isoyear, "
                "yearweek, " + ", ".join(PARTS) + " (and their DuckDB aliases)",
            )
        return self._unsupported(
            node,
            f"unsupported function {name}(); supported: list_contains, list_has_any and "
            "list_has_all on list columns; starts_with, prefix, ends_with, suffix, "
            "contains, regexp_matches and regexp_full_match on strings; lower() and "
            "upper() of a string column; year(), isoyear(), yearweek(), month(), day(), "
            "quarter(), dayofweek(), isodow(), dayofyear(), week(), hour(), minute() and "
            "second() of a date; floor(), ceil(), trunc(), round() and abs() in "
            "arithmetic on a number column; length() (len(), char_length()) of a string or list "
            "column, array_length() of a list, strlen() of a string; coalesce() and "
            "ifnull() of a column and values; CAST(col AS DATE) of a timestamp and "
            "CAST(col AS TIMESTAMP) of a date, compared with values",
        )

    def _distinct(self, node: exp.NullSafeEQ | exp.NullSafeNEQ) -> Predicate:
        """``a IS [NOT] DISTINCT FROM b``: ``=`` and ``!=`` where NULL is a value
        like any other (never unknown)."""
        left, right = node.this, node.expression
        if isinstance(left, exp.Null):
            left, right = right, left
        same: Predicate
        if isinstance(left, exp.Null):
            same = Const(True)
        elif isinstance(right, exp.Null):  # a IS NOT DISTINCT FROM NULL: a IS NULL
            same = self.predicate(exp.Is(this=left, expression=exp.Null()))
        elif isinstance(left, exp.Column) and isinstance(right, exp.Column):
            # Two columns: equal, or both NULL.
            pair = self._compare(node, "=")
            assert isinstance(pair, ColumnCompare)
            both_null = And((IsNull(pair.column), IsNull(pair.other)))
            same = Or((truth_of(pair, True), both_null))
        else:  # the literal is not NULL: equal, and the column not NULL
            same = truth_of(self._compare(node, "="), True)
        return same if isinstance(node, exp.NullSafeEQ) else Not(same)

    def _coalesce_test(self, node: exp.Expression, calls: list[exp.Coalesce]) -> Predicate:
        """A test ``node`` of ``coalesce(column, value, ...)`` (``ifnull``): the
        same test of the column where the column is not NULL, and where it is,
        the test's truth at the first value that is not NULL (TRUE, FALSE or
        NULL, found by evaluating the column's test on that one value). The
        rewrite is exact in three-valued logic, also under NOT: ``coalesce(r,
        0) >= 3`` is ``r >= 3 AND r IS NOT NULL``, ``coalesce(g, 'x') = 'x'``
        is ``g = 'x' OR g IS NULL``."""
        if len(calls) > 1:
            raise self._unsupported(calls[1], "one coalesce() or ifnull() per test")
        call = calls[0]
        first, values = call.this, list(call.expressions)
        if not isinstance(first, exp.Column) or not values:
            raise self._unsupported(
                call, "coalesce() takes a column, then values: coalesce(rating, 0)"
            )
        column, kind = self.column(first, call)
        if kind is ColumnKind.STRING_LIST:
            raise self._type_error(call, f"coalesce() of list column {column!r}")
        default: Value | object = _NULL
        for value in values:
            if _has_column(value):
                raise self._unsupported(value, "coalesce() of two columns is not supported")
            what = f"column {column!r} of type {kind.value} (in coalesce())"
            default = self.literal(value, column, kind, what)
            if isinstance(default, dt.datetime) and kind is ColumnKind.DATE:
                raise self._type_error(value, f"timestamp literal does not fit {what}")
            if default is not _NULL:
                if kind is ColumnKind.INT:  # an integer of the column's range
                    number = cast(float, default)
                    if not (float(number).is_integer() and -(2**63) <= number < 2**63):
                        shown = value.sql(dialect="duckdb")
                        what = f"coalesce() of integer column {column!r} takes 64-bit integers"
                        raise self._type_error(value, f"{what}, not {shown}")
                    default = int(number)
                elif kind is ColumnKind.FLOAT and type(default) is int:  # a double, as in DuckDB
                    try:
                        default = float(default)
                    except OverflowError:
                        shown = value.sql(dialect="duckdb")
                        raise self._type_error(
                            value,
                            f"coalesce() of float column {column!r}: {shown} is beyond a double",
                        ) from None
                break
        at = next(i for i, c in enumerate(node.find_all(exp.Coalesce)) if c is call)
        tree = node.copy()
        target = list(tree.find_all(exp.Coalesce))[at]  # the same call, in the copy
        if target is tree:
            tree = target.this
        else:
            target.replace(target.this)
        inner = self.predicate(tree)
        if columns_of(inner) - {column}:
            raise self._unsupported(node, f"coalesce({column}, ...) tested with other columns")
        if default is _NULL:  # coalesce(column, NULL): the column
            return inner
        return coalesce.rewrite(
            inner, column, coalesce.truth_at(inner, column, kind, cast(Value, default))
        )

    def column(self, node: exp.Expression, context: exp.Expression) -> tuple[str, ColumnKind]:
        if isinstance(node, exp.Func) and not isinstance(node, exp.Binary):
            raise self._unsupported_function(node)  # abs(x) = 1, epoch(d) = 3
        if not isinstance(node, exp.Column) or node.table:
            raise self._unsupported(
                node, f"expected a column name, found {node.sql(dialect='duckdb')!r}"
            )
        name = node.name
        resolved = name if name in self.schema else self._lower.get(name.lower())
        if resolved is None:
            close = difflib.get_close_matches(name, list(self.schema), n=1, cutoff=0.5)
            if not close:
                close = difflib.get_close_matches(name.lower(), list(self._lower), n=1, cutoff=0.5)
                close = [self._lower[c] for c in close]
            raise UnknownColumnError(
                name,
                suggestion=close[0] if close else None,
                text=self.text,
                position=_position(node),
            )
        return resolved, self.schema[resolved]

    def _compare(self, node: exp.Expression, op: CompareOp) -> Predicate:
        left, right = node.this, node.expression
        named = isinstance(left, exp.Column) or _year_unit(left) is not None
        named = named or _fold_of(left) is not None or _date_part_of(left) is not None
        named = named or _is_derived(left)
        if not named and (
            isinstance(right, exp.Column)
            or _year_unit(right) is not None
            or _fold_of(right) is not None
            or _date_part_of(right) is not None
            or _is_derived(right)
        ):
            left, right, op = right, left, FLIPPED[op]
        if read := self._derived(left, node):
            return read(op, right)
        if isinstance(left, exp.Column) and isinstance(right, exp.Column):
            return self._column_compare(node, left, op, right)
        if _date_part_of(left) is not None:
            value = self._part_literal(left, right)
            if value is _NULL:
                return Const(None)
            return self._date_part(left, [(op, value)])
        if _fold_of(left) is not None:
            return self._folded_compare(left, node, right, op)
        if (unit := _year_unit(left)) is not None:
            column, kind = self._date_column(left, unit)
            year = self.literal(right, column, ColumnKind.INT, f"{unit}({column}), an integer")
            return self._year_compare(node, column, kind, op, year, unit)
        column, kind = self.column(left, node)
        if kind is ColumnKind.STRING_LIST:
            raise self._type_error(
                node,
                f"column {column!r} is list<string>: use list_contains({column}, 'value') "
                "or IS [NOT] NULL",
            )
        value = self.literal(right, column, kind)
        return self._make_compare(column, op, value)

    def _derived(self, expr: exp.Expression, node: exp.Expression) -> _Reader | None:
        """How to read ``expr op value`` where ``expr`` is a value made of a
        column (:func:`_is_derived`: ``date_trunc``, a cast, a length,
        arithmetic), each test of it one call with the operator and the
        literal; None where ``expr`` is not one. The expression is checked
        against the schema once, here."""
        if _trunc_of(expr) is not None:
            return self._truncation(expr, node)
        if _cast_of(expr) is not None:
            return self._casting(expr, node)
        if _length_of(expr) is not None:
            return self._length(expr, node)
        if _is_arithmetic(expr):
            return self._arithmetic(expr, node)
        return None

    def _truncation(self, expr: exp.Expression, node: exp.Expression) -> _Reader:
        """``date_trunc(unit, col)`` of a date or timestamp column compared with
        dates or timestamps: a step of the column, so each test is a range of
        it (:func:`_truncated`)."""
        found = _trunc_of(expr)
        assert found is not None
        arg, unit_node = found
        if not isinstance(arg, exp.Column):
            raise self._unsupported(node, "date_trunc() of a column only")
        column, kind = self.column(arg, node)
        if kind not in (ColumnKind.DATE, ColumnKind.TIMESTAMP):
            raise self._type_error(
                node, f"date_trunc() needs a date or timestamp column; {column!r} is {kind.value}"
            )
        try:
            unit = trunc_unit(unit_node.name)
        except ValueError as err:
            raise self._unsupported(node, str(err)) from None
        if kind is ColumnKind.DATE and unit in _SUB_DAY:
            raise self._unsupported(
                node,
                f"date_trunc('{unit}', {column}) of a date column: a date is its own "
                f"{unit}; use a unit of a day or more, or compare {column} itself",
            )
        shown = f"date_trunc('{unit}', {column}), a timestamp"

        def read(op: CompareOp, right: exp.Expression) -> Predicate:
            value = self.literal(right, column, ColumnKind.TIMESTAMP, shown)
            if value is _NULL:
                return Const(None)
            try:
                return _truncated(column, kind, unit, op, _utc(cast(dt.datetime, value)))
            except ValueError:
                raise self._unsupported(
                    node, f"{shown}: its unit starts before the year 1"
                ) from None

        return read

    def _casting(self, expr: exp.Expression, node: exp.Expression) -> _Reader:
        """``CAST(col AS DATE)`` of a timestamp column (its day, a range of the
        timestamps) or ``CAST(col AS TIMESTAMP)`` of a date column (its
        midnight) compared with literals; a cast to the column's own type is
        the column."""
        found = _cast_of(expr)
        assert found is not None
        column, kind = self.column(found[0], node)
        target = found[1]
        shown = f"CAST({column} AS {target.upper()})"
        if target == kind.value:
            return lambda op, right: self._make_compare(
                column, op, self.literal(right, column, kind)
            )
        # (the literal's kind, its name in errors, the test of the column)
        readings: dict[tuple[ColumnKind, str], tuple[ColumnKind, str, Callable[..., Predicate]]]
        readings = {
            (ColumnKind.TIMESTAMP, "date"): (ColumnKind.DATE, "a date", _timestamp_as_date),
            (ColumnKind.DATE, "timestamp"): (
                ColumnKind.TIMESTAMP,
                "a timestamp",
                _date_against_timestamp,
            ),
        }
        reading = readings.get((kind, target))
        if reading is None:
            raise self._unsupported(
                node, f"{shown}: CAST is read only between date and timestamp columns"
            )
        literal_kind, what, test = reading

        def read(op: CompareOp, right: exp.Expression) -> Predicate:
            value = self.literal(right, column, literal_kind, f"{shown}, {what}")
            return Const(None) if value is _NULL else test(column, op, value)

        return read

    def _length(self, expr: exp.Expression, node: exp.Expression) -> _Reader:
        """``length(col)`` (``len``, ``char_length``, ``array_length``,
        ``strlen``) compared with numbers. Lengths are integers, so each test
        is read as one of integers, exactly as DuckDB compares a BIGINT with
        the number (``len(tags) > 2.5`` is ``len(tags) >= 3``); a NULL number
        makes its test NULL."""
        column, unit, shown = self._length_column(expr, node)
        length = functools.partial(Length, unit=unit)

        def read(op: CompareOp, right: exp.Expression) -> Predicate:
            value = self._exact_number(right, lambda: f"{shown}, an integer")
            if value is None:
                return Const(None)
            return _rebuilt(solve(column, True, [], op, value), length)

        return read

    def _length_column(
        self, expr: exp.Expression, node: exp.Expression
    ) -> tuple[str, LengthUnit, str]:
        """The column of a length function, what it counts, and how to name it."""
        found = _length_of(expr)
        assert found is not None
        arg, name = found
        if not isinstance(arg, exp.Column):
            raise self._unsupported(
                node, f"{name}() of a column only, not of {arg.sql(dialect='duckdb')!r}"
            )
        column, kind = self.column(arg, node)
        shown = f"{name}({column})"
        if name == "strlen":
            if kind is not ColumnKind.STRING:
                raise self._type_error(
                    node, f"strlen() needs a string column; {column!r} is {kind.value}"
                )
            return column, "bytes", shown
        if kind is ColumnKind.STRING_LIST:
            return column, "items", shown
        if kind is ColumnKind.STRING and name != "array_length":
            return column, "chars", shown
        needs = "a list<string>" if name == "array_length" else "a string or list<string>"
        raise self._type_error(node, f"{name}() needs {needs} column; {column!r} is {kind.value}")

    def _column_compare(
        self, node: exp.Expression, left: exp.Column, op: CompareOp, right: exp.Column
    ) -> ColumnCompare:
        """``a op b`` on two columns of one family: numbers (an integer and a
        float compare as doubles), dates and timestamps (a date as its
        midnight), strings, or booleans."""
        column, kind = self.column(left, node)
        other, other_kind = self.column(right, node)
        families = (
            {ColumnKind.INT, ColumnKind.FLOAT},
            {ColumnKind.DATE, ColumnKind.TIMESTAMP},
            {ColumnKind.STRING},
            {ColumnKind.BOOL},
        )
        if not any(kind in f and other_kind in f for f in families):
            raise self._type_error(
                node,
                f"cannot compare column {column!r} of type {kind.value} with column "
                f"{other!r} of type {other_kind.value}; columns compare with columns of "
                "their own family (numbers, dates and timestamps, strings, booleans)",
            )
        return ColumnCompare(column, op, other)

    def _arithmetic(self, expr: exp.Expression, node: exp.Expression) -> _Reader:
        """Arithmetic on one numeric column compared with numbers
        (:mod:`hqi.query.arithmetic`): each test a range of the column; or a
        column's remainder (``x % 10``, a :class:`Modulo`) or two columns'
        difference (a :class:`Difference`) compared with them. A NULL number
        makes its test NULL."""
        test: Callable[[CompareOp, Fraction], Predicate]
        while isinstance(expr, exp.Paren):
            expr = expr.this
        absolute = isinstance(expr, exp.Abs)
        if absolute:  # abs(e) op v: e within v of 0, or beyond it
            expr = expr.this
        solver = solve_abs if absolute else solve
        shown = _Shown(expr)
        if (modulo := self._modulo_of(expr, node)) is not None:  # an integer, compared exactly
            column, divisor = modulo

            def test(op: CompareOp, value: Fraction) -> Predicate:
                remainder = functools.partial(Modulo, divisor=divisor)
                return _rebuilt(solver(column, True, [], op, value), remainder)

        elif (difference := self._difference_of(expr, node)) is not None:  # an integer or a double
            column, other, whole = difference

            def test(op: CompareOp, value: Fraction) -> Predicate:
                def make(c: str, op: CompareOp, value: int | float) -> Predicate:
                    return Difference(c, other, op, value)

                either = Or((IsNull(column), IsNull(other)))  # a - b is NULL there
                return _rebuilt(solver(column, whole, [], op, value), make, either)

        else:
            column, steps = self._steps(expr, node)
            integer = self.schema[column] is ColumnKind.INT

            def test(op: CompareOp, value: Fraction) -> Predicate:
                return solver(column, integer, steps, op, value)

        def read(op: CompareOp, right: exp.Expression) -> Predicate:
            value = self._exact_number(right, lambda: f"{shown}, a number")
            return Const(None) if value is None else test(op, value)

        return read

    def _difference_of(
        self, expr: exp.Expression, node: exp.Expression
    ) -> tuple[str, str, bool] | None:
        """(a, b, whether a - b is an integer) when ``expr`` is ``a - b`` of two
        plain columns: two numbers (integers exactly, with a float a double)
        or two dates (days); None when it is not."""
        while isinstance(expr, exp.Paren):
            expr = expr.this
        if not isinstance(expr, exp.Sub):
            return None
        left, right = expr.this, expr.expression
        while isinstance(left, exp.Paren):
            left = left.this
        while isinstance(right, exp.Paren):
            right = right.this
        if not (isinstance(left, exp.Column) and isinstance(right, exp.Column)):
            return None
        (column, kind), (other, other_kind) = self.column(left, node), self.column(right, node)
        numbers = {ColumnKind.INT, ColumnKind.FLOAT}
        if kind in numbers and other_kind in numbers:
            return column, other, kind is other_kind is ColumnKind.INT
        if kind is other_kind is ColumnKind.DATE:
            return column, other, True
        raise self._type_error(
            node,
            f"{expr.sql(dialect='duckdb')!r}: a difference of two columns takes two number "
            f"columns or two date columns, not {kind.value} and {other_kind.value}",
        )

    def _modulo_of(self, expr: exp.Expression, node: exp.Expression) -> tuple[str, int] | None:
        """(column, divisor) when ``expr`` is ``col % m`` (an integer column, a
        whole divisor other than 0); None when it is no remainder at all."""
        while isinstance(expr, exp.Paren):
            expr = expr.this
        if not isinstance(expr, exp.Mod):
            return None
        shown = _Shown(expr)
        operand = expr.this
        while isinstance(operand, exp.Paren):
            operand = operand.this
        if not isinstance(operand, exp.Column) or _has_column(expr.expression):
            raise self._unsupported(node, f"% of a column by a number only (x % 10), not {shown!r}")
        column, kind = self.column(operand, node)
        if kind is not ColumnKind.INT:
            raise self._type_error(node, f"% needs an integer column; {column!r} is {kind.value}")
        divisor = self._exact_number(expr.expression, lambda: f"{shown}, a whole divisor")
        if divisor is None or divisor.denominator != 1 or not 0 < abs(divisor) < 2**63:
            raise self._unsupported(node, f"{shown!r}: % takes a whole divisor other than 0")
        return column, int(divisor)

    def _steps(self, expr: exp.Expression, node: exp.Expression) -> tuple[str, list[Step]]:
        """The column of an arithmetic expression and its steps, innermost
        first: ``+``, ``-``, ``*`` and ``/`` with numbers, the column once."""
        outer: list[Step] = []
        ops: dict[type, str] = {
            exp.Add: "+",
            exp.Sub: "-",
            exp.Mul: "*",
            exp.Div: "/",
            exp.IntDiv: "//",
        }
        shown = _Shown(expr)
        while not isinstance(expr, exp.Column):
            if isinstance(expr, exp.Paren):
                expr = expr.this
            elif isinstance(expr, exp.Neg):
                outer.append(Step("*", Fraction(-1)))
                expr = expr.this
            elif (rounding := _ROUNDINGS.get(type(expr))) is not None:
                if any(expr.args.get(a) is not None for a in expr.args if a != "this"):
                    raise self._unsupported(
                        node, f"{rounding}() takes one argument ({expr.sql(dialect='duckdb')!r})"
                    )
                outer.append(Step(rounding, Fraction(0)))
                expr = expr.this
            elif isinstance(expr, exp.Abs):
                raise self._unsupported(
                    node, f"abs() only around a whole expression compared ({shown!r})"
                )
            elif type(expr) in ops:
                left, right = expr.this, expr.expression
                if _has_column(left) and _has_column(right):
                    raise self._unsupported(
                        node,
                        f"arithmetic on one column at a time ({shown!r}); of two columns, "
                        "only their difference compared with numbers (a - b > 3)",
                    )
                on_left = _has_column(right)
                constant = left if on_left else right
                value = self._exact_number(constant, lambda: f"arithmetic in {shown!r}")
                if value is None:  # NULL makes every test NULL: refused as a mistake
                    raise self._type_error(
                        constant, f"null literal NULL does not fit arithmetic in {shown!r}"
                    )
                op = ops[type(expr)]
                if op in ("/", "//") and on_left:
                    raise self._unsupported(node, f"dividing by a column ({shown!r})")
                if op in ("/", "//") and value == 0:
                    raise self._unsupported(node, f"dividing by zero ({shown!r})")
                double = op != "/" and _is_double_literal(constant)
                outer.append(Step(op, value, on_left, double, _is_integer_literal(constant)))
                expr = right if on_left else left
            else:
                if isinstance(expr, exp.Mod):
                    raise self._unsupported(
                        node,
                        f"{expr.sql(dialect='duckdb')!r}: arithmetic takes + - * / and //; "
                        "% only as a column's remainder compared with numbers (x % 10 = 3)",
                    )
                self.column(expr, node)  # raises: a function, a literal, ...
        column, kind = self.column(expr, node)
        if kind not in (ColumnKind.INT, ColumnKind.FLOAT):
            raise self._type_error(
                node, f"arithmetic needs a numeric column; {column!r} is {kind.value}"
            )
        if kind is ColumnKind.FLOAT and any(s.op == "*" and s.constant == 0 for s in outer):
            raise self._unsupported(
                node, f"multiplying a float column by zero ({shown!r}): inf * 0 is NaN"
            )
        return column, as_duckdb(kind is ColumnKind.INT, outer[::-1])

    def _exact_number(self, node: exp.Expression, what: Callable[[], str]) -> Fraction | None:
        """A number literal's exact value (a DOUBLE literal's, ``1e3``, as the
        double); None for NULL. ``what()``: what it should fit, for the error."""
        _, kind = self._raw_literal(node)
        if kind == "null":
            return None
        if kind != "number":
            raise self._type_error(
                node, f"{kind} literal {node.sql(dialect='duckdb')} does not fit {what()}"
            )
        literal = node
        sign = 1
        while isinstance(literal, exp.Paren | exp.Neg):
            sign = -sign if isinstance(literal, exp.Neg) else sign
            literal = literal.this
        text = str(literal.this)
        value = Fraction(float(text)) if _is_double_literal(literal) else Fraction(text)
        return sign * value

    def _folded_compare(
        self, left: exp.Expression, node: exp.Expression, right: exp.Expression, op: CompareOp
    ) -> Predicate:
        """``lower(col)`` (``upper``) compared with text: ``=`` / ``!=`` as a LIKE
        of the escaped text on the folded value, a range (``<``, ``<=``, ``>``,
        ``>=``) as a :class:`FoldedRange` of the folded values."""
        column, fold = self._string_column(left, node, f"{_fold_of(left)}()")
        text = self.literal(right, column, ColumnKind.STRING)
        if text is _NULL:
            return Const(None)
        assert fold is not None
        if op not in ("=", "!="):
            return FoldedRange(column, op, cast(str, text), fold)
        pattern, esc = escaped(cast(str, text))
        pred = Like(column, pattern, esc, fold=fold)
        return pred if op == "=" else Not(pred)

    def _make_compare(self, column: str, op: CompareOp, value: Value | object) -> Predicate:
        if value is _NULL:
            return Const(None)
        if isinstance(value, dt.datetime) and self.schema[column] is ColumnKind.DATE:
            return _date_against_timestamp(column, op, value)
        return Compare(column, op, cast(Value, value))

    def _in(self, node: exp.In) -> Predicate:
        if node.args.get("query") is not None or node.args.get("unnest") is not None:
            raise self._unsupported(node, "IN takes a list of literals, not a subquery")
        if (unit := _year_unit(node.this)) is not None:  # an OR of them, NULL among them NULL
            column, kind = self._date_column(node.this, unit)
            what = f"{unit}({column}), an integer"
            years = [self.literal(i, column, ColumnKind.INT, what) for i in node.expressions]
            out: Predicate | None = None
            for year in years:
                part = self._year_compare(node, column, kind, "=", year, unit)
                out = part if out is None else Or((out, part))
            assert out is not None  # sqlglot parses IN () as an error
            return out
        if _date_part_of(node.this) is not None:  # NULL among them: NULL where none matches
            numbers = [self._part_literal(node.this, i) for i in node.expressions]
            known = [v for v in numbers if v is not _NULL]
            member = self._date_part(node.this, [("=", v) for v in known], any_of=True)
            if len(known) == len(numbers):
                return member
            return Or((member, Const(None))) if known else Const(None)
        if read := self._derived(node.this, node):  # an OR of them, NULL among them NULL
            return _joined([read(op, item) for op, item in _members(node)], any_of=True)
        if _fold_of(node.this) is not None:  # an OR of LIKEs, NULL among them as NULL
            items = [self._folded_compare(node.this, node, i, "=") for i in node.expressions]
            folded: Predicate = items[0]
            for item in items[1:]:
                folded = Or((folded, item))
            return folded
        column, kind = self.column(node.this, node)
        if kind is ColumnKind.STRING_LIST:
            raise self._type_error(node, f"column {column!r} is list<string>: use list_contains")
        values: list[Value] = []
        has_null = False
        for item in node.expressions:
            value = self.literal(item, column, kind)
            if isinstance(value, dt.datetime) and kind is ColumnKind.DATE:
                value = _utc(value)
                if value.time() != dt.time():
                    continue  # a time past midnight: equal to no date
                value = value.date()
            if value is _NULL:
                has_null = True
            elif value not in values:
                values.append(cast(Value, value))
        return InList(column, tuple(values), has_null)

    def _contains(
        self, node: exp.Expression, col: exp.Expression, item: exp.Expression
    ) -> Predicate:
        column, kind = self.column(col, node)
        if kind is not ColumnKind.STRING_LIST:
            raise self._type_error(
                node, f"list_contains needs a list<string> column; {column!r} is {kind.value}"
            )
        value = self.literal(item, column, ColumnKind.STRING)
        if value is _NULL:
            return Const(None)
        return Contains(column, cast(str, value))

    def _has(
        self, node: exp.Expression, col: exp.Expression, items: exp.Expression, *, every: bool
    ) -> Predicate:
        """``list_has_any`` / ``list_has_all(col, ['a', ...])`` as an OR / AND of
        ``list_contains``, as DuckDB evaluates them: NULL items are ignored, and
        with none left, FALSE / TRUE on a list and NULL on a NULL list."""
        name = "list_has_all" if every else "list_has_any"
        column, kind = self.column(col, node)
        if kind is not ColumnKind.STRING_LIST:
            raise self._type_error(
                node, f"{name} needs a list<string> column; {column!r} is {kind.value}"
            )
        if not isinstance(items, exp.Array):
            raise self._unsupported(node, f"{name} takes a list of strings such as ['a', 'b']")
        values: list[str] = []
        for item in items.expressions:
            value = self.literal(item, column, ColumnKind.STRING)
            if value is not _NULL and value not in values:
                values.append(cast(str, value))
        if not values:  # unknown on a NULL list (NULL AND TRUE), else FALSE / TRUE
            if every:
                return Or((Const(None), Not(IsNull(column))))
            return And((Const(None), IsNull(column)))
        # Nested pairs, as the parser builds ``a OR b OR c``: str() round-trips.
        out: Predicate = Contains(column, values[0])
        for value in values[1:]:
            pair = (out, Contains(column, value))
            out = And(pair) if every else Or(pair)
        return out

    def _date_column(self, node: exp.Expression, name: str | None) -> tuple[str, ColumnKind]:
        """The column that date function ``name`` (``year``, ``isoyear``,
        ``month``, ...) of ``node`` reads (``year(col)``, ``extract(year FROM
        col)``, ``date_part('year', col)``), which must be a date or a
        timestamp."""
        col = node.expression if isinstance(node, exp.Extract) else node.this
        if isinstance(node, exp.Anonymous):
            datepart = node.name.lower() in ("date_part", "datepart")
            if len(node.expressions) != (2 if datepart else 1):
                count = "two arguments" if datepart else "one argument"
                raise self._unsupported(node, f"{node.name}() takes {count}")
            col = node.expressions[-1]
        column, kind = self.column(col, node)
        if kind not in (ColumnKind.DATE, ColumnKind.TIMESTAMP):
            raise self._type_error(
                node, f"{name}() needs a date or timestamp column; {column!r} is {kind.value}"
            )
        return column, kind

    def _part_literal(self, part: exp.Expression, node: exp.Expression) -> object:
        """A number compared with a date part (or NULL)."""
        column, _ = self._date_column(part, _date_part_of(part))
        what = f"{_date_part_of(part)}({column}), an integer"
        return self.literal(node, column, ColumnKind.INT, what)

    def _date_part(
        self, node: exp.Expression, tests: list[tuple[CompareOp, object]], *, any_of: bool = False
    ) -> DatePart:
        """The part of ``node`` (``month(col)``) where every test (``any_of``:
        some test) holds, compared as DuckDB compares an integer with the
        number: ``month(d) < 3.5`` holds in March, ``month(d) = 3.5`` never."""
        part = _date_part_of(node)
        assert part is not None
        column, kind = self._date_column(node, part)
        low, high = PARTS[part]
        values = [
            v
            for v in range(low, high + 1)
            if (any if any_of else all)(OPERATORS[op](v, cast(float, x)) for op, x in tests)
        ]
        return DatePart(column, part, tuple(values), kind is ColumnKind.TIMESTAMP)

    def _year_compare(
        self,
        node: exp.Expression,
        column: str,
        kind: ColumnKind,
        op: CompareOp,
        year: object,
        unit: str,
    ) -> Predicate:
        """``year(column) op year`` as comparisons of the column with the starts of
        years, exactly as DuckDB compares the year (an integer) with the literal:
        ``year(d) = 1990`` is ``d >= DATE '1990-01-01' AND d < DATE '1991-01-01'``,
        ``year(d) < 1990.5`` is ``year(d) <= 1990``. A NULL column value or
        literal makes it NULL. ``unit`` isoyear and yearweek (ISO 8601's year,
        and its year times 100 plus its week) never decrease as the date
        grows either, so they are ranges of the column the same way, from the
        Monday that starts each ISO year or week: ``yearweek(d) = 202053`` is
        ``d >= DATE '2020-12-28' AND d < DATE '2021-01-04'``, and a value that
        names no week (``202054``, ``202100``) holds on no date."""
        if year is _NULL:
            return Const(None)
        value = float(cast(float, year))
        if not value.is_integer():
            if op == "=":  # FALSE on a date, NULL on NULL
                return And((Const(None), IsNull(column)))
            if op == "!=":
                return Or((Const(None), Not(IsNull(column))))
            # Between two integers: < and >= round up, <= and > round down.
            value = float(np.ceil(value)) if op in ("<", ">=") else float(np.floor(value))
        whole = int(value)
        scale = 100 if unit == "yearweek" else 1
        if not _FIRST_YEAR * scale <= whole < (_LAST_YEAR + 1) * scale:
            raise self._unsupported(
                node,
                f"{unit}() compared with {year}: hqi compares "
                + ("years" if unit == "year" else f"{unit} values")
                + f" {_FIRST_YEAR * scale} to {(_LAST_YEAR + 1) * scale - 1}",
            )

        def start(v: int) -> Value:
            day = _unit_start(unit, v)
            return day if kind is ColumnKind.DATE else dt.datetime.combine(day, dt.time())

        begin, end = start(whole), start(whole + 1)
        if op == "=":
            return And((Compare(column, ">=", begin), Compare(column, "<", end)))
        if op == "!=":
            return Or((Compare(column, "<", begin), Compare(column, ">=", end)))
        return {
            "<": Compare(column, "<", begin),
            "<=": Compare(column, "<", end),
            ">": Compare(column, ">=", end),
            ">=": Compare(column, ">=", begin),
        }[op]

    def _regex(self, node: exp.Expression) -> Predicate:
        """``regexp_matches`` (found anywhere), ``regexp_full_match`` and
        ``SIMILAR TO`` (the whole value), with DuckDB's options. The ``~``
        operator is refused: DuckDB 2 reads it as ``regexp_matches`` and
        earlier versions as ``regexp_full_match`` (so do sqlglot's versions)."""
        full = not isinstance(node, exp.RegexpLike)
        name = "SIMILAR TO" if isinstance(node, exp.SimilarTo) else None
        name = name or ("regexp_full_match" if full else "regexp_matches")
        # sqlglot (28.5 and later) marks where a function's name is, and an
        # operator nowhere. Not compared with the text: the shape cache reuses
        # a tree for texts whose literals differ in length.
        if name != "SIMILAR TO" and "start" not in (getattr(node, "_meta", None) or {}):
            raise self._unsupported(
                node,
                "the ~ operator matches part of a value in DuckDB 2 and all of it before; "
                "write regexp_matches(column, 're') or regexp_full_match(column, 're')",
            )
        column, fold = self._string_column(node.this, node, name)
        pattern = self.literal(node.expression, column, ColumnKind.STRING)
        flag = node.args.get("flag") or node.args.get("options")
        if isinstance(flag, list):  # some sqlglot versions keep a list of options
            flag = flag[0] if len(flag) == 1 else None
        options = "" if flag is None else self.literal(flag, column, ColumnKind.STRING)
        if isinstance(node, exp.SimilarTo) and node.args.get("escape") is not None:
            raise self._unsupported(node, "SIMILAR TO ... ESCAPE is not supported")
        if pattern is _NULL or options is _NULL:
            return Const(None)
        unknown = sorted(set(cast(str, options)) - set(REGEX_OPTIONS))
        if unknown:
            raise self._unsupported(
                flag or node,
                f"unsupported regular expression option {unknown[0]!r}; "
                "hqi evaluates 'c', 'i', 's' and 'l'",
            )
        problem = regex_error(cast(str, pattern), cast(str, options))
        if problem is not None:
            raise FilterSyntaxError(problem, text=self.text, position=_position(node.expression))
        return Regex(column, cast(str, pattern), full, cast(str, options), fold)

    def _string_column(
        self, col: exp.Expression, node: exp.Expression, what: str
    ) -> tuple[str, Fold | None]:
        """A string column, or ``lower(col)`` / ``upper(col)`` of one (the fold)."""
        fold = _fold_of(col)
        if fold is not None:
            col = col.this
            if _fold_of(col) is not None:
                raise self._unsupported(
                    node, f"{fold}() of {col.sql(dialect='duckdb')}: one lower() or upper() at most"
                )
        column, kind = self.column(col, node)
        if kind is not ColumnKind.STRING:
            where = f"{fold}({column})" if fold else what
            raise self._type_error(
                node, f"{where} needs a string column; {column!r} is {kind.value}"
            )
        return column, fold

    def _like(
        self, node: exp.Like | exp.ILike, escape: exp.Expression | None, whole: exp.Expression
    ) -> Predicate:
        """``col [NOT] LIKE|ILIKE 'pattern' [ESCAPE 'c']``."""
        op = "ILIKE" if isinstance(node, exp.ILike) else "LIKE"
        column, fold = self._string_column(node.this, whole, op)
        pattern = self.literal(node.expression, column, ColumnKind.STRING)
        esc = None if escape is None else self.literal(escape, column, ColumnKind.STRING)
        if pattern is _NULL or esc is _NULL:
            return Const(None)
        esc = cast("str | None", esc) or None  # ESCAPE '' is no escape, as in DuckDB
        problem = pattern_error(cast(str, pattern), esc)
        if problem is not None:
            raise FilterSyntaxError(problem, text=self.text, position=_position(node.expression))
        pred: Predicate = Like(column, cast(str, pattern), esc, op == "ILIKE", fold)
        return Not(pred) if node.args.get("negate") else pred

    def _affix(
        self, node: exp.Expression, kind: str, col: exp.Expression, item: exp.Expression
    ) -> Predicate:
        """``starts_with`` / ``prefix``, ``ends_with`` / ``suffix`` and ``contains``
        on a string column (``kind``: "prefix", "suffix" or "contains"), as LIKE
        patterns; ``contains`` on a list column is ``list_contains``, as in DuckDB."""
        if kind == "contains" and isinstance(col, exp.Column):
            _, column_kind = self.column(col, node)
            if column_kind is ColumnKind.STRING_LIST:
                return self._contains(node, col, item)
        what = {"prefix": "starts_with", "suffix": "ends_with"}.get(kind, "contains")
        column, fold = self._string_column(col, node, f"{what}()")
        text = self.literal(item, column, ColumnKind.STRING)
        if text is _NULL:
            return Const(None)
        pattern, esc = escaped(cast(str, text))
        pattern = {"prefix": f"{pattern}%", "suffix": f"%{pattern}"}.get(kind, f"%{pattern}%")
        return Like(column, pattern, esc, fold=fold)

    # -- literals -----------------------------------------------------------
    def literal(
        self, node: exp.Expression, column: str, kind: ColumnKind, what: str | None = None
    ) -> Value | object:
        """The Python value of a literal, checked against ``column``'s kind
        (``what``: the compared expression, in errors; default the column)."""
        raw, raw_kind = self._raw_literal(node)
        if raw_kind == "null":
            return _NULL

        def mismatch() -> FilterTypeError:
            return self._type_error(
                node,
                f"{raw_kind} literal {node.sql(dialect='duckdb')} does not fit "
                + (what or f"column {column!r} of type {kind.value}"),
            )

        if kind is ColumnKind.STRING:
            if raw_kind != "string":
                raise mismatch()
            return raw
        if kind in (ColumnKind.INT, ColumnKind.FLOAT):
            if raw_kind != "number":
                raise mismatch()
            return raw
        if kind is ColumnKind.BOOL:
            if raw_kind != "boolean":
                raise mismatch()
            return raw
        if kind is ColumnKind.DATE:
            if raw_kind in ("date", "timestamp"):  # a timestamp: the date's midnight compared
                return raw
            if raw_kind == "string":
                return self._parse_date(node, cast(str, raw))
            raise mismatch()
        if kind is ColumnKind.TIMESTAMP:
            if raw_kind == "timestamp":
                return raw
            if raw_kind == "date":
                return dt.datetime.combine(cast(dt.date, raw), dt.time())
            if raw_kind == "string":
                return self._parse_timestamp(node, cast(str, raw))
            raise mismatch()
        raise mismatch()

    def _raw_literal(self, node: exp.Expression) -> tuple[Value | None, str]:
        if isinstance(node, exp.Paren):
            return self._raw_literal(node.this)
        if isinstance(node, exp.Null):
            return None, "null"
        if isinstance(node, exp.Boolean):
            return bool(node.this), "boolean"
        if isinstance(node, exp.Literal):
            if node.is_string:
                return str(node.this), "string"
            return _number(node.this), "number"
        if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
            value, kind = self._raw_literal(node.this)
            if kind == "number":
                return -cast(float, value), "number"
        if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal):
            target = node.to.this
            text = str(node.this.this)
            if target == exp.DataType.Type.DATE:
                return self._parse_date(node, text), "date"
            if target in (
                exp.DataType.Type.TIMESTAMP,
                exp.DataType.Type.TIMESTAMPNTZ,
                exp.DataType.Type.DATETIME,
            ):
                return self._parse_timestamp(node, text), "timestamp"
        if isinstance(node, exp.Add | exp.Sub) and not _has_column(node):
            return self._time_literal(node)
        if isinstance(node, exp.CurrentDate):
            if node.args.get("this") is not None:
                raise self._unsupported(
                    node, f"current_date with an argument ({node.sql(dialect='duckdb')!r})"
                )
            return today(), "date"
        if isinstance(node, exp.CurrentTimestamp) or (
            isinstance(node, exp.Anonymous) and str(node.this).lower() in _CLOCK_TIMES
        ):
            raise self._unsupported(
                node,
                f"{node.sql(dialect='duckdb')} (a TIMESTAMP WITH TIME ZONE in DuckDB); "
                "current_date and TIMESTAMP literals are read",
            )
        if isinstance(node, exp.Column):
            raise self._unsupported(
                node,
                f"a column ({node.sql(dialect='duckdb')!r}) where a value belongs; a column "
                "compares with another column only directly (a < b, a BETWEEN b AND c, "
                "a IS DISTINCT FROM b); write string literals in single quotes",
            )
        raise self._unsupported(node, f"expected a literal, found {node.sql(dialect='duckdb')!r}")

    def _time_literal(self, node: exp.Add | exp.Sub) -> tuple[Value, str]:
        """A DATE or TIMESTAMP literal plus or minus an INTERVAL (a DATE's a
        TIMESTAMP then), or a DATE plus or minus a number of days, folded as
        DuckDB computes it (:mod:`hqi.query.intervals`)."""
        left, right = node.this, node.expression
        subtract = isinstance(node, exp.Sub)
        if not subtract and (_is_interval(left) or isinstance(left, exp.Literal)):
            left, right = right, left  # INTERVAL 1 DAY + DATE '...'
        base, kind = self._raw_literal(left)
        shown = _Shown(node)
        if kind not in ("date", "timestamp"):
            raise self._unsupported(
                node,
                f"arithmetic on literals ({shown!r}): a DATE or TIMESTAMP plus or minus an "
                "INTERVAL, or a DATE plus or minus a number of days",
            )
        assert isinstance(base, dt.date)
        if isinstance(base, dt.datetime) and base.tzinfo is not None:
            raise self._unsupported(node, f"an INTERVAL added to a time with a zone ({shown!r})")
        interval = self._interval(right) if _is_interval(right) else None
        days, days_kind = (None, "") if interval is not None else self._raw_literal(right)
        try:
            if interval is not None:
                return add_interval(base, -interval if subtract else interval), "timestamp"
            if kind == "date" and days_kind == "number" and isinstance(days, int):
                return base + dt.timedelta(days=-days if subtract else days), "date"
        except OverflowError:
            raise self._type_error(node, f"{shown!r} is past the years 1 to 9999") from None
        raise self._unsupported(
            node, f"{shown!r}: a {kind.upper()} takes an INTERVAL or a whole number of days"
        )

    def _interval(self, node: exp.Expression) -> Interval:
        """An INTERVAL literal, or a sum of them (:func:`hqi.query.intervals.interval_of`)."""
        if isinstance(node, exp.Paren):
            return self._interval(node.this)
        if isinstance(node, exp.Neg):
            return -self._interval(node.this)
        if isinstance(node, exp.Add | exp.Sub):
            left, right = self._interval(node.this), self._interval(node.expression)
            return left + (-right if isinstance(node, exp.Sub) else right)
        assert isinstance(node, exp.Interval)
        unit = node.args.get("unit")
        amount = node.this
        if not isinstance(amount, exp.Literal):
            raise self._unsupported(node, f"an INTERVAL of {amount.sql(dialect='duckdb')!r}")
        try:
            return interval_of(str(amount.this), None if unit is None else unit.name)
        except ValueError as err:
            raise self._type_error(node, str(err)) from None

    def _parse_date(self, node: exp.Expression, text: str) -> dt.date:
        try:
            return dt.date.fromisoformat(text.strip())
        except ValueError:
            raise self._type_error(node, f"invalid date {text!r}; expected 'YYYY-MM-DD'") from None

    def _parse_timestamp(self, node: exp.Expression, text: str) -> dt.datetime:
        try:
            return dt.datetime.fromisoformat(text.strip())
        except ValueError:
            raise self._type_error(
                node, f"invalid timestamp {text!r}; expected 'YYYY-MM-DD hh:mm:ss'"
            ) from None


def _fold_of(node: exp.Expression) -> Fold | None:
    """``"lower"`` / ``"upper"`` when ``node`` is ``lower(x)`` / ``upper(x)``
    (``lcase``, ``ucase``), else None."""
    if isinstance(node, exp.Lower):
        return "lower"
    if isinstance(node, exp.Upper):
        return "upper"
    return None


# Date functions that never decrease as the date grows: compared as ranges of
# the column (Parser._year_compare), by what DuckDB calls each of them.
_YEAR_UNITS = {"year": "year", "isoyear": "isoyear", "yearweek": "yearweek"}


def _year_unit(node: exp.Expression) -> str | None:
    """``year``, ``isoyear`` or ``yearweek`` when ``node`` is that function of a
    column (``year(x)``, ``date_part('year', x)``, ``extract(year FROM x)``,
    ``isoyear(x)``, ...); None for other nodes."""
    if isinstance(node, exp.Year):
        return "year"
    if isinstance(node, exp.Anonymous) and node.name.lower() in _YEAR_UNITS:
        return _YEAR_UNITS[node.name.lower()]
    unit = _part_name(node)
    return None if unit is None else _YEAR_UNITS.get(unit)


def _unit_start(unit: str, value: int) -> dt.date:
    """The first date whose ``unit`` (year, isoyear or yearweek) is ``value`` or
    more: Jan 1st, or the Monday of the ISO year's first week, or of the ISO
    week ``value % 100`` of ISO year ``value // 100`` (week 0: the year's
    first; past the year's last week: the next year's first)."""
    if unit == "year":
        return dt.date(value, 1, 1)
    if unit == "isoyear":
        return dt.date.fromisocalendar(value, 1, 1)
    year, week = divmod(value, 100)
    if week > dt.date(year, 12, 28).isocalendar().week:  # Dec 28th is in the last week
        year, week = year + 1, 1
    return dt.date.fromisocalendar(year, max(week, 1), 1)


def _part_name(node: exp.Expression) -> str | None:
    """The date part that ``extract(x FROM col)`` or ``date_part('x', col)``
    names, as written (lowercase); None for other nodes."""
    if isinstance(node, exp.Extract) and isinstance(node.this, exp.Var | exp.Identifier):
        return node.this.name.lower()
    if isinstance(node, exp.Anonymous) and node.name.lower() in ("date_part", "datepart"):
        unit = node.expressions[0] if len(node.expressions) == 2 else None
        if isinstance(unit, exp.Literal) and unit.is_string:
            return str(unit.this).lower()
    return None


def _date_part_of(node: exp.Expression) -> str | None:
    """The date part (:data:`~hqi.query.dateparts.PARTS`) that ``node`` takes of
    a column, other than the year: ``month(x)``, ``extract(month FROM x)``,
    ``date_part('month', x)``; None when it is not one."""
    if isinstance(node, exp.Extract) or (
        isinstance(node, exp.Anonymous) and node.name.lower() in ("date_part", "datepart")
    ):
        unit = _part_name(node)
        return None if unit is None else SPECIFIERS.get(unit)
    if isinstance(node, exp.Anonymous):
        return FUNCTIONS.get(node.name.lower()) if len(node.expressions) == 1 else None
    if isinstance(node, exp.Func) and isinstance(node.this, exp.Column):
        return FUNCTIONS.get(type(node).__name__)
    return None


_TIMESTAMP_TYPES = (
    exp.DataType.Type.TIMESTAMP,
    exp.DataType.Type.TIMESTAMPNTZ,
    exp.DataType.Type.DATETIME,
)


def _bounds(node: exp.Between) -> list[tuple[CompareOp, exp.Expression]]:
    """``x BETWEEN low AND high`` as its two tests: ``x >= low``, ``x <= high``."""
    return [(">=", node.args["low"]), ("<=", node.args["high"])]


def _members(node: exp.In) -> list[tuple[CompareOp, exp.Expression]]:
    """``x IN (a, b, ...)`` as its tests ``x = a``, ``x = b``, ... (any of them)."""
    return [("=", item) for item in node.expressions]


_SUB_DAY = ("microsecond", "millisecond", "second", "minute", "hour")

# One test of a derived value (_Checker._derived): the operator and the literal.
_Reader = Callable[[CompareOp, exp.Expression], Predicate]


def _is_derived(node: exp.Expression) -> bool:
    """Whether ``node`` is a value made of a column that :meth:`_Checker._derived`
    reads: ``date_trunc``, a cast, a length or arithmetic."""
    return (
        _trunc_of(node) is not None
        or _cast_of(node) is not None
        or _length_of(node) is not None
        or _is_arithmetic(node)
    )


def _trunc_of(node: exp.Expression) -> tuple[exp.Expression, exp.Expression] | None:
    """(argument, unit) when ``node`` is ``date_trunc(unit, x)``."""
    if isinstance(node, exp.TimestampTrunc | exp.DateTrunc) and node.args.get("unit"):
        return node.this, node.args["unit"]
    return None


def _truncated(
    column: str, kind: ColumnKind, unit: str, op: CompareOp, value: dt.datetime
) -> Predicate:
    """``date_trunc(unit, column) op value`` as a range of the column: the
    truncated value is below ``value`` exactly where the column is below the
    first unit start at or after it, at most ``value`` where the column is
    below the next unit's start, and equal only to a unit's own start (a
    date column compared at its midnight, as DuckDB's date_trunc takes it)."""

    def bound(op: CompareOp, at: dt.datetime | None) -> Predicate:
        if at is None:  # past the year 9999: every value lies below it
            return _always(column) if op == "<" else _never(column)
        if kind is ColumnKind.DATE:
            return _date_against_timestamp(column, op, at)
        return Compare(column, op, at)

    def following(start: dt.datetime) -> dt.datetime | None:
        try:
            return after(start, unit)
        except OverflowError:
            return None

    floor = truncate(value, unit)  # (ValueError before the year 1)
    is_start = floor == value
    ceil = value if is_start else following(floor)
    nxt = following(floor)
    if op == "<":
        return bound("<", ceil)
    if op == "<=":
        return bound("<", nxt)
    if op == ">":
        return _never(column) if nxt is None else bound(">=", nxt)
    if op == ">=":
        return _never(column) if ceil is None else bound(">=", ceil)
    same = _never(column) if not is_start else And((bound(">=", value), bound("<", nxt)))
    return same if op == "=" else Not(same)


def _cast_of(node: exp.Expression) -> tuple[exp.Column, str] | None:
    """(the column, the target type's name) when ``node`` is ``CAST(col AS T)``
    (``col::T``, ``TRY_CAST``) of a plain column; None otherwise."""
    if not isinstance(node, exp.Cast) or not isinstance(node.this, exp.Column):
        return None
    target = node.to.this
    if target == exp.DataType.Type.DATE:
        return node.this, "date"
    if target in _TIMESTAMP_TYPES:
        return node.this, "timestamp"
    return node.this, node.to.sql(dialect="duckdb").lower()


def _is_interval(node: exp.Expression) -> bool:
    """An INTERVAL literal, or a sum or difference of them."""
    while isinstance(node, exp.Paren | exp.Neg):
        node = node.this
    if isinstance(node, exp.Add | exp.Sub):
        return _is_interval(node.this) and _is_interval(node.expression)
    return isinstance(node, exp.Interval)


def _length_of(node: exp.Expression) -> tuple[exp.Expression, str] | None:
    """(argument, function) when ``node`` is a length function of one argument:
    ``length`` (sqlglot's node for ``len``, ``char_length`` and
    ``character_length`` too), ``array_length`` (``array_size``) or ``strlen``."""
    if isinstance(node, exp.Length):
        return node.this, "length"
    if isinstance(node, exp.ArraySize) and node.args.get("expression") is None:
        return node.this, "array_length"
    strlen = isinstance(node, exp.Anonymous) and node.name.lower() == "strlen"
    if strlen and len(node.expressions) == 1:
        return node.expressions[0], "strlen"
    return None


def _utc(value: dt.datetime) -> dt.datetime:
    """A time without a zone, in UTC (how timestamps are stored)."""
    if value.tzinfo is None:
        return value
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _date_test(op: CompareOp, value: dt.date) -> tuple[CompareOp, dt.date] | bool:
    """A date compared with ``value`` (a DATE, or a TIMESTAMP: the date's
    midnight compared, as DuckDB compares them) as a test of the date, or
    True / False where it holds on every date / none. Midnight compares as
    its date; a later time lies inside a day, so ``=`` never holds, ``<``
    and ``<=`` hold up to that day and ``>`` and ``>=`` from the next."""
    if not isinstance(value, dt.datetime):
        return op, value
    value = _utc(value)
    day = value.date()
    if value.time() == dt.time():
        return op, day
    if op in ("=", "!="):
        return op == "!="
    if op in ("<", "<="):
        return "<=", day
    if day == dt.date.max:
        return False
    return ">=", day + dt.timedelta(days=1)


def _date_against_timestamp(column: str, op: CompareOp, value: dt.datetime) -> Predicate:
    """A DATE column compared with a TIMESTAMP (:func:`_date_test`)."""
    test = _date_test(op, value)
    if isinstance(test, bool):
        return _always(column) if test else _never(column)
    return Compare(column, *test)


def _timestamp_as_date(column: str, op: CompareOp, value: dt.date) -> Predicate:
    """``CAST(column AS DATE) op value`` on a TIMESTAMP column: the day's test
    (:func:`_date_test`) as a range of the timestamps (a timestamp's date in
    UTC, as its date parts)."""
    test = _date_test(op, value)
    if isinstance(test, bool):
        return _always(column) if test else _never(column)
    op, day = test
    start = dt.datetime.combine(day, dt.time())
    after = None if day == dt.date.max else start + dt.timedelta(days=1)
    if op in ("=", "!="):
        same: Predicate = Compare(column, ">=", start)
        if after is not None:
            same = And((same, Compare(column, "<", after)))
        return same if op == "=" else Not(same)
    if op in ("<", ">="):
        return Compare(column, op, start)
    if after is None:  # past the last day: every timestamp is on or before it
        return _always(column) if op == "<=" else _never(column)
    return Compare(column, "<" if op == "<=" else ">=", after)


def _joined(parts: list[Predicate], any_of: bool) -> Predicate:
    """The tests of one expression, all of them (AND) or any (OR), nested by
    twos as the printed text parses back. A test repeated counts once (``x IN
    (3.5, 3.5)``), and in an OR a test that never holds (``i = 3.5`` of an
    integer: FALSE, NULL where the column is) goes where another stays: each
    is NULL where the column is, so the OR is the others'."""
    parts = list(dict.fromkeys(parts))
    if any_of and len(parts) > 1:
        parts = [p for p in parts if not _never_holds(p)] or parts[:1]
    out = parts[0]
    for part in parts[1:]:
        out = Or((out, part)) if any_of else And((out, part))
    return out


def _never_holds(pred: Predicate) -> bool:
    """Whether ``pred`` is ``col IS NULL AND NULL``: FALSE, NULL where ``col`` is."""
    return (
        isinstance(pred, And)
        and len(pred.children) == 2
        and isinstance(pred.children[0], IsNull)
        and pred.children[1] == Const(None)
    )


def _rebuilt(
    pred: Predicate, make: Callable[..., Predicate], null: Predicate | None = None
) -> Predicate:
    """A test of a column (from :func:`hqi.query.arithmetic.solve`) as the same
    test of a number made from it (its length, its remainder, its difference
    with another column): its comparisons become ``make(column, op=op,
    value=value)``, and its NULL tests ``null``, where the number is NULL
    (by default where the column is)."""
    if isinstance(pred, Compare):
        return make(pred.column, op=pred.op, value=pred.value)
    if isinstance(pred, IsNull) and null is not None:
        return null
    if isinstance(pred, Not):
        return Not(_rebuilt(pred.child, make, null))
    if isinstance(pred, And | Or):
        return type(pred)(tuple(_rebuilt(c, make, null) for c in pred.children))
    return pred  # IsNull, Const


# Rounding functions of a value, steps of :mod:`hqi.query.arithmetic`.
_ROUNDINGS: dict[type, str] = {
    exp.Floor: "floor",
    exp.Ceil: "ceil",
    exp.Trunc: "trunc",
    exp.Round: "round",
}


def _is_arithmetic(node: exp.Expression) -> bool:
    """``+ - * / //``, ``%``, a minus sign, ``floor``, ``ceil``, ``trunc``,
    ``round`` or ``abs`` around an expression with a column."""
    while isinstance(node, exp.Paren):
        node = node.this
    arithmetic = isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.Div | exp.Neg)
    arithmetic = arithmetic or isinstance(node, exp.IntDiv | exp.Mod | exp.Abs)
    arithmetic = arithmetic or type(node) in _ROUNDINGS
    return arithmetic and _has_column(node)


def _has_column(node: exp.Expression) -> bool:
    return node.find(exp.Column) is not None


def _is_integer_literal(node: exp.Expression) -> bool:
    """A number written without a point or an exponent: DuckDB's INTEGER."""
    while isinstance(node, exp.Paren | exp.Neg):
        node = node.this
    return isinstance(node, exp.Literal) and not node.is_string and str(node.this).isdigit()


def _is_double_literal(node: exp.Expression) -> bool:
    """A number in scientific notation (``1e3``): DuckDB's DOUBLE literal."""
    while isinstance(node, exp.Paren | exp.Neg):
        node = node.this
    return isinstance(node, exp.Literal) and "e" in str(node.this).lower()


def _number(text: str) -> int | float:
    """A number literal's value: an int where ``int`` reads it, else a float.
    ``int`` reads no text with a point or an exponent, so those go straight to
    ``float`` (a failed ``int`` cost about 1 us: the SIGMOD sample's 10,061
    float literals, about 10 ms of parsing)."""
    if "." in text or "e" in text or "E" in text:
        return float(text)
    try:
        return int(text)
    except ValueError:
        return float(text)
