"""The typed predicate tree that filters are parsed into.

Nodes are frozen, hashable dataclasses: a predicate can key a cache, group
queries that share it, be shipped to another process and be printed back as
SQL (``str(pred)``) in a canonical form that DuckDB accepts.

Literal values are Python values already checked against the column's type:
``str``, ``int``, ``float``, ``bool``, ``datetime.date`` (DATE columns) and
``datetime.datetime`` (TIMESTAMP columns). ``BETWEEN`` is lowered to two
comparisons and ``a <> b`` to ``!=``; ``IS NOT NULL`` is ``Not(IsNull)``;
``NOT LIKE`` is ``Not(Like)``, and ``starts_with``, ``ends_with`` and
``contains`` on strings are ``Like`` patterns; ``SIMILAR TO`` is a full-match
``Regex``; ``GLOB`` is a ``Glob``. ``lower(col)`` / ``upper(col)``
compared with a string (``=``, ``!=``, ``IN``) are patterns too: a ``Like``
of the escaped literal whose ``fold`` names the function applied to the
value first; compared by a range (``lower(col) < 'm'``, ``BETWEEN``) they
are ``FoldedRange`` patterns. A date part compared with numbers
(``month(d) BETWEEN 6 AND 8``) is a ``DatePart``: the set of the part's
values where it holds. A comparison of two columns (``released < updated``)
is a ``ColumnCompare`` and ``a - b > 3`` a ``Difference``; ``length(col)``
compared with a number is a ``Length``, and ``col % m`` a ``Modulo``.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from hqi.query.dateparts import PARTS

__all__ = [
    "FLIPPED",
    "OPERATORS",
    "And",
    "ColumnCompare",
    "Compare",
    "CompareOp",
    "Const",
    "Contains",
    "DatePart",
    "Difference",
    "Fold",
    "FoldedRange",
    "Glob",
    "InList",
    "IsNull",
    "Length",
    "LengthUnit",
    "Like",
    "Modulo",
    "Not",
    "Or",
    "Pattern",
    "Predicate",
    "Regex",
    "Value",
    "atoms",
    "columns_of",
    "truth_of",
]

Value: TypeAlias = str | int | float | bool | dt.date | dt.datetime
CompareOp: TypeAlias = Literal["=", "!=", "<", "<=", ">", ">="]
# A comparison with its sides swapped (``1 < x`` is ``x > 1``), as when both
# sides are multiplied by a negative number.
FLIPPED: dict[CompareOp, CompareOp] = {
    "=": "=",
    "!=": "!=",
    "<": ">",
    "<=": ">=",
    ">": "<",
    ">=": "<=",
}
# What each comparison computes (on Python values and NumPy arrays alike).
OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
Fold: TypeAlias = Literal["lower", "upper"]  # a string function applied to the value


def sql_literal(value: Value | None) -> str:
    """``value`` as a DuckDB SQL literal."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, float):
        return (
            repr(value) if value == value and abs(value) != float("inf") else f"'{value}'::DOUBLE"
        )
    return str(value)


def sql_identifier(name: str) -> str:
    if name.isidentifier() and name.lower() == name:
        return name
    return '"' + name.replace('"', '""') + '"'


def _folded(column: str, fold: Fold | None) -> str:
    """``column`` as SQL, inside ``lower()`` / ``upper()`` when ``fold`` names one."""
    name = sql_identifier(column)
    return name if fold is None else f"{fold}({name})"


@dataclass(frozen=True)
class Compare:
    """``column op value``; NULL on either side makes it unknown."""

    column: str
    op: CompareOp
    value: Value

    def __str__(self) -> str:
        return f"{sql_identifier(self.column)} {self.op} {sql_literal(self.value)}"


@dataclass(frozen=True)
class ColumnCompare:
    """``column op other``: two columns of one family of kinds (numbers, dates
    and timestamps, strings, booleans) compared row by row, as DuckDB
    compares them (an integer with a float as doubles, a date with a
    timestamp as its midnight, strings by code point); NULL on either side
    makes it unknown."""

    column: str
    op: CompareOp
    other: str

    def __str__(self) -> str:
        return f"{sql_identifier(self.column)} {self.op} {sql_identifier(self.other)}"


@dataclass(frozen=True)
class Difference:
    """``column - other op value``: two number columns, or two date columns
    (a number of days), subtracted row by row as DuckDB computes it (two
    integers or dates exactly, with a float as doubles) and compared with a
    number; NULL where either is NULL."""

    column: str
    other: str
    op: CompareOp
    value: int | float

    def __str__(self) -> str:
        left, right = sql_identifier(self.column), sql_identifier(self.other)
        return f"{left} - {right} {self.op} {sql_literal(self.value)}"


@dataclass(frozen=True)
class InList:
    """``column IN (values...)``; a NULL in the list makes non-matches unknown."""

    column: str
    values: tuple[Value, ...]
    has_null: bool = False

    def __str__(self) -> str:
        items = [sql_literal(v) for v in self.values] + (["NULL"] if self.has_null else [])
        return f"{sql_identifier(self.column)} IN ({', '.join(items)})"


@dataclass(frozen=True)
class IsNull:
    """``column IS NULL`` (never unknown)."""

    column: str

    def __str__(self) -> str:
        return f"{sql_identifier(self.column)} IS NULL"


@dataclass(frozen=True)
class Like:
    """``column LIKE pattern`` (``ILIKE`` when ``case_insensitive``) on a string
    column, as in DuckDB: ``%`` matches any run of characters, ``_`` one
    character, and the whole value must match; ``escape`` (one character, or
    None: DuckDB's default, no escape) makes the character after it literal.
    ``ILIKE`` lowercases both sides code point by code point, as DuckDB does.
    ``fold``: the value is matched as DuckDB's ``lower(column)`` or
    ``upper(column)`` (code point by code point) instead of as stored.
    NULL on either side makes it unknown."""

    column: str
    pattern: str
    escape: str | None = None
    case_insensitive: bool = False
    fold: Fold | None = None

    def __str__(self) -> str:
        op = "ILIKE" if self.case_insensitive else "LIKE"
        text = f"{_folded(self.column, self.fold)} {op} {sql_literal(self.pattern)}"
        return text if self.escape is None else f"{text} ESCAPE {sql_literal(self.escape)}"


@dataclass(frozen=True)
class Regex:
    """``regexp_matches(column, pattern[, options])`` (``full``:
    ``regexp_full_match``) on a string column: an RE2 expression, as in DuckDB,
    found anywhere in the value (``full``: matching all of it). ``options``:
    DuckDB's ``'c'`` (case-sensitive, the default), ``'i'`` (case-insensitive),
    ``'s'`` (``.`` matches a newline) and ``'l'`` (the pattern is literal text);
    the last of ``c`` / ``i`` wins. ``fold``: as :class:`Like`'s. NULL on
    either side makes it unknown."""

    column: str
    pattern: str
    full: bool = False
    options: str = ""
    fold: Fold | None = None

    def __str__(self) -> str:
        name = "regexp_full_match" if self.full else "regexp_matches"
        args = [_folded(self.column, self.fold), sql_literal(self.pattern)]
        if self.options:
            args.append(sql_literal(self.options))
        return f"{name}({', '.join(args)})"


@dataclass(frozen=True)
class Glob:
    """``column GLOB pattern`` on a string column, as in DuckDB: ``*`` matches
    any run of characters, ``?`` one character, ``[...]`` one character of a
    set (ranges ``a-z``; ``[!...]`` the characters outside it; a ``]`` first
    and a ``-`` last are members), a backslash makes the next character
    literal outside a set, and the whole value must match. A set without its
    ``]``, or a backslash ending the pattern, matches no value. ``fold``: as
    :class:`Like`'s. NULL on either side makes it unknown."""

    column: str
    pattern: str
    fold: Fold | None = None

    def __str__(self) -> str:
        return f"{_folded(self.column, self.fold)} GLOB {sql_literal(self.pattern)}"


@dataclass(frozen=True)
class FoldedRange:
    """``lower(column) < value`` (``<=``, ``>``, ``>=``; ``upper`` by ``fold``) on
    a string column: the folded value compared with ``value`` in code point
    order, as DuckDB compares strings (``BETWEEN`` is two of them). A pattern
    like :class:`Like`: decided once per distinct value. NULL makes it
    unknown."""

    column: str
    op: CompareOp  # <, <=, > or >=
    value: str
    fold: Fold

    def __str__(self) -> str:
        return f"{_folded(self.column, self.fold)} {self.op} {sql_literal(self.value)}"


@dataclass(frozen=True)
class Contains:
    """``list_contains(column, value)`` on a ``list<string>`` column."""

    column: str
    value: str

    def __str__(self) -> str:
        return f"list_contains({sql_identifier(self.column)}, {sql_literal(self.value)})"


@dataclass(frozen=True)
class DatePart:
    """``part(column) IN (values)`` on a date or timestamp column (``timestamp``):
    ``part`` one of :data:`hqi.query.dateparts.PARTS` (a timestamp's in UTC),
    ``values`` the part's values where it is TRUE, ascending and within its
    range (none: FALSE). NULL where the column is. Printed as ``=``, ``!=``
    (all values but one), ``BETWEEN`` (a run) or ``IN``; an empty set as
    ``part(column) = -1``, FALSE as well."""

    column: str
    part: str
    values: tuple[int, ...]
    timestamp: bool = False

    def __str__(self) -> str:
        call = f"{self.part}({sql_identifier(self.column)})"
        v = self.values
        low, high = PARTS[self.part]
        rest = sorted(set(range(low, high + 1)) - set(v))
        if not v:
            return f"{call} = -1"
        if len(v) == 1:
            return f"{call} = {v[0]}"
        if len(rest) == 1:
            return f"{call} != {rest[0]}"
        if v[-1] - v[0] == len(v) - 1:
            return f"{call} BETWEEN {v[0]} AND {v[-1]}"
        return f"{call} IN ({', '.join(map(str, v))})"


@dataclass(frozen=True)
class Modulo:
    """``column % divisor op value`` on an integer column: the remainder as
    DuckDB computes it (truncated: its sign is the column value's, ``-7 % 3``
    is ``-1``), compared with an integer; NULL where the column is."""

    column: str
    divisor: int
    op: CompareOp
    value: int

    def __str__(self) -> str:
        return f"{sql_identifier(self.column)} % {self.divisor} {self.op} {self.value}"


LengthUnit: TypeAlias = Literal["chars", "bytes", "items"]


@dataclass(frozen=True)
class Length:
    """``length(column) op value``: a string's characters (Unicode code points,
    ``chars``) or UTF-8 bytes (``bytes``, ``strlen``), or a list's items
    (``items``, NULL items included), compared with an integer; NULL where
    the column is."""

    column: str
    op: CompareOp
    value: int
    unit: LengthUnit = "chars"

    def __str__(self) -> str:
        call = "strlen" if self.unit == "bytes" else "length"
        return f"{call}({sql_identifier(self.column)}) {self.op} {self.value}"


@dataclass(frozen=True)
class Const:
    """``TRUE``, ``FALSE`` or ``NULL`` (unknown)."""

    value: bool | None

    def __str__(self) -> str:
        return sql_literal(self.value)


@dataclass(frozen=True)
class Not:
    child: Predicate

    def __str__(self) -> str:
        if isinstance(self.child, IsNull):
            return f"{sql_identifier(self.child.column)} IS NOT NULL"
        return f"NOT ({self.child})"


@dataclass(frozen=True)
class And:
    children: tuple[Predicate, ...]

    def __str__(self) -> str:
        return " AND ".join(f"({c})" for c in self.children)


@dataclass(frozen=True)
class Or:
    children: tuple[Predicate, ...]

    def __str__(self) -> str:
        return " OR ".join(f"({c})" for c in self.children)


Predicate: TypeAlias = (
    Compare
    | ColumnCompare
    | Difference
    | InList
    | IsNull
    | Like
    | Regex
    | Glob
    | FoldedRange
    | Contains
    | DatePart
    | Length
    | Modulo
    | Const
    | Not
    | And
    | Or
)
# String patterns, matched per dictionary value.
Pattern: TypeAlias = Like | Regex | Glob | FoldedRange


def atoms(pred: Predicate) -> Iterator[Predicate]:
    """The atomic predicates (leaves other than constants) of a tree."""
    if isinstance(pred, And | Or):
        for child in pred.children:
            yield from atoms(child)
    elif isinstance(pred, Not):
        yield from atoms(pred.child)
    elif not isinstance(pred, Const):
        yield pred


def columns_of(pred: Predicate) -> set[str]:
    """The columns a predicate reads."""
    out = {a.column for a in atoms(pred)}  # type: ignore[union-attr]
    out.update(a.other for a in atoms(pred) if isinstance(a, ColumnCompare | Difference))
    return out


def truth_of(pred: Predicate, value: bool | None) -> Predicate:
    """A predicate, never unknown, that holds exactly where ``pred`` evaluates
    to ``value`` (TRUE, FALSE, or NULL for None) under SQL's three-valued
    logic: ``pred IS TRUE``, ``IS FALSE``, and (for None) ``(pred) IS NULL``.

    An atom on a column is unknown exactly where the column is NULL (an
    ``IN`` list holding NULL also where nothing matches), so ``x > 1 IS
    TRUE`` is ``x > 1 AND x IS NOT NULL``; AND, OR and NOT follow Kleene's
    tables (``a AND b`` is FALSE where either is FALSE). A comparison of two
    columns is unknown where either is NULL."""
    column_atom = isinstance(pred, Compare | Contains | DatePart | Length | Modulo | Pattern) or (
        isinstance(pred, InList) and not pred.has_null
    )
    if isinstance(pred, ColumnCompare | Difference):  # unknown where either column is NULL
        if value is None:
            return Or((IsNull(pred.column), IsNull(pred.other)))
        both = And((Not(IsNull(pred.column)), Not(IsNull(pred.other))))
        return And((pred if value else Not(pred), both))
    if value is None:  # neither TRUE nor FALSE
        if column_atom:
            return IsNull(pred.column)  # type: ignore[union-attr]
        return Not(Or((truth_of(pred, True), truth_of(pred, False))))
    if isinstance(pred, Const):
        return Const(pred.value is value)
    if isinstance(pred, IsNull):
        return pred if value else Not(pred)
    if isinstance(pred, Not):
        return truth_of(pred.child, not value)
    if isinstance(pred, And | Or):
        children = tuple(truth_of(c, value) for c in pred.children)
        return (And if isinstance(pred, And) == value else Or)(children)
    known = Not(IsNull(pred.column))
    if isinstance(pred, InList) and pred.has_null:
        if not value or not pred.values:  # a non-match is unknown, never FALSE
            return Const(False)
        pred = InList(pred.column, pred.values)
    return And((pred if value else Not(pred), known))
