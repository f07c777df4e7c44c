"""Filters as interval programs, tested row by row inside the executor's compiled pass.

A filter is TRUE on a row exactly when each clause of its conjunctive normal
form is: when, for some atom of the clause, the row's value of the atom's
column lies in one of the atom's closed intervals. A NULL fails every
interval but the NULL test (UNKNOWN is not TRUE). Most filters of a workload
are conjunctions of atoms on one column each (``type = 'song' AND year
BETWEEN 1990 AND 2000``: one clause per atom); an OR of atoms on different
columns is one clause (``artist = 'x' OR genre = 'jazz'``), and an OR of
conjunctions distributes (``a OR (b AND c)`` is ``(a OR b) AND (a OR c)``).
:func:`compile_filter` turns a filter into that form (a :class:`Program`),
or returns None when an atom has no such form (``list_contains`` on a list
column of more than :data:`BIT_VALUES` values, integers beyond 2**53) or the
normal form needs more than :data:`MAX_INTERVALS` intervals; such filters
keep their masks.

:class:`AttributeMatrix` holds the string codes, numbers, booleans, dates and
timestamps of a store as one row-major ``(N, C)`` float64 matrix, NULL as
NaN, so a row's atoms read one cache line. A list column of at most
:data:`BIT_VALUES` distinct values is there as a bit set (bit ``c`` set:
the list holds dictionary value ``c``), and ``list_contains`` is a test of
one bit. A date part (``month(d) IN (6, 7, 8)``) is an interval test on a
column of the part's values, added to the matrix when a filter first needs
it (:meth:`AttributeMatrix.part_column`). Every value there is exact
(integers up to 2**53 in magnitude; a column with larger ones is left out).
Literals are converted the way NumPy compares them in
:mod:`hqi.query.evaluate` (a float32 column compares in float32), so a
program selects exactly the rows :func:`hqi.query.evaluate.evaluate` does:
the property test in ``tests/test_filters_oracle.py`` checks it.

With a program, the executor's pass (:func:`hqi.execution.kernels.push_scores`)
tests the filter only on the rows that would enter a query's top-k, instead
of the planner evaluating it on every row its queries scan.
"""

from __future__ import annotations

import contextlib
import math
import struct
import threading
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from hqi.query.columns import ColumnStore, ListData, StringData, ValueData
from hqi.query.dateparts import PARTS, PartColumn
from hqi.query.evaluate import _physical
from hqi.query.patterns import pattern_codes
from hqi.query.predicate import (
    And,
    ColumnCompare,
    Compare,
    Const,
    Contains,
    DatePart,
    Difference,
    InList,
    IsNull,
    Length,
    Modulo,
    Not,
    Or,
    Pattern,
    Predicate,
)

__all__ = ["AttributeMatrix", "Program", "ProgramTable", "compile_filter", "program_mask"]

EXACT_INT = 2**53  # integers of at most this magnitude are exact in float64
BIT_VALUES = 52  # a list column of at most this many values is a bit set (exact in float64)
MAX_INTERVALS = 32  # more intervals in one filter: keep its mask instead
# Programs cached per AttributeMatrix (compile_filter); about 0.8 KB each
# (measured on the built-in workload's 5,116 distinct filters): 13 MB at most.
PROGRAM_CACHE = 16_384


class AttributeMatrix:
    """The store's scalar columns as one ``(N, C)`` float64 matrix (NULL = NaN),
    and the date parts that filters have asked for (:meth:`part_column`)."""

    def __init__(self, store: ColumnStore) -> None:
        self.store = store
        columns: list[np.ndarray] = []
        # Matrix column of each store column held, and of each date part added.
        self.column_index: dict[str | PartColumn, int] = {}
        self.dtypes: dict[str, np.dtype] = {}
        self.bit_columns: set[str] = set()  # list columns held as bit sets
        for name in store.schema:
            data = store[name]
            if isinstance(data, ListData):
                if data.dictionary.size > BIT_VALUES:
                    continue  # its list_contains filters keep their masks
                values = _bit_sets(data, store.num_rows)
                self.bit_columns.add(name)
                self.column_index[name] = len(columns)
                self.dtypes[name] = values.dtype
                columns.append(values)
                continue
            if isinstance(data, StringData):
                values = data.codes.astype(np.float64)
                values[data.codes < 0] = np.nan
            elif isinstance(data, ValueData):
                raw = data.values
                ints = raw.dtype.kind in "iu" and raw.size > 0
                if ints and max(int(raw.max()), -int(raw.min())) > EXACT_INT:
                    continue  # not exact in float64
                values = raw.astype(np.float64)
                if data.valid is not None:
                    values[~data.valid] = np.nan
            else:
                continue
            self.column_index[name] = len(columns)
            self.dtypes[name] = data.codes.dtype if isinstance(data, StringData) else raw.dtype
            columns.append(values)
        self._true_sets: dict[Predicate, list[tuple[float, float]] | None] = {}
        self._programs: dict[Predicate | None, Program | None] = {}  # compile_filter's
        # A test's clauses' intervals, by (atom, negated): _compile's.
        self._test_rows: dict[tuple[Predicate, bool], list[list[Interval]] | None] = {}
        self._grow = threading.Lock()  # part_column's
        self._by_column: tuple[np.ndarray, np.ndarray] | None = None
        self._ranges: tuple[np.ndarray, tuple[np.ndarray, np.ndarray]] | None = None
        self.values = (
            np.ascontiguousarray(np.stack(columns, axis=1))
            if columns
            else np.zeros((store.num_rows, 0), dtype=np.float64)
        )

    def forget_filters(self) -> None:
        """Forget the compiled programs and atoms kept so far (per literal)."""
        self._programs.clear()
        self._true_sets.clear()
        self._test_rows.clear()

    def part_column(self, key: PartColumn) -> int:
        """The matrix column of date part ``key``: each row's part less the
        part's least value (NULL: NaN), added on first need. Adding one makes
        a wider :attr:`values` (the old array stays as it was for whoever
        holds it; columns are only ever appended, so a program's columns are
        in every :attr:`values` read after it was compiled)."""
        index = self.column_index.get(key)
        if index is not None:
            return index
        with self._grow:
            index = self.column_index.get(key)
            if index is None:
                data = self.store[key.column]
                assert isinstance(data, ValueData)
                part = self.store.date_part(key.column, key.part, timestamp=key.timestamp)
                values = part.astype(np.float64) - PARTS[key.part][0]
                if data.valid is not None:
                    values[~data.valid] = np.nan
                index = self.values.shape[1]
                self.values = np.ascontiguousarray(np.column_stack([self.values, values]))
                self.column_index[key] = index
        return index

    @property
    def ranges(self) -> tuple[np.ndarray, np.ndarray]:
        """Each column of :attr:`values` as it is now: its least and greatest
        non-NULL value, ``(C,)`` each (NaN for a column of NULLs only), made on
        first use and kept until a column is added."""
        values = self.values
        cached = self._ranges
        if cached is None or cached[0] is not values:
            by_column = self._columns_of(values)
            valid = ~np.isnan(by_column)
            some = valid.any(axis=1)
            least = np.where(valid, by_column, np.inf).min(axis=1, initial=np.inf)
            greatest = np.where(valid, by_column, -np.inf).max(axis=1, initial=-np.inf)
            cached = (values, (np.where(some, least, np.nan), np.where(some, greatest, np.nan)))
            self._ranges = cached
        return cached[1]

    @property
    def by_column(self) -> np.ndarray:
        """:attr:`values` as it is now, column by column, ``(C, N)``, made on
        first use and kept until a column is added: what compiled loops over
        consecutive rows read (the planner's exact program counts,
        :func:`hqi.execution.planner.planning.plan_batch`; the flat pass's
        rows, :func:`hqi.execution.exact.filter_rows`)."""
        return self._columns_of(self.values)

    def _columns_of(self, values: np.ndarray) -> np.ndarray:
        cached = self._by_column
        if cached is None or cached[0] is not values:
            cached = self._by_column = (values, np.ascontiguousarray(values.T))
        return cached[1]


def _bit_sets(data: ListData, num_rows: int) -> np.ndarray:
    """Each row's list as a bit set of its values' codes (float64; NULL list: NaN)."""
    codes = data.codes.astype(np.int64)
    shifted = np.where(
        codes >= 0,
        np.left_shift(np.uint64(1), np.maximum(codes, 0).astype(np.uint64)),
        np.uint64(0),
    )
    bits = np.zeros(num_rows, dtype=np.uint64)
    starts = data.offsets[:-1]
    nonempty = np.flatnonzero(data.offsets[1:] > starts)
    if nonempty.size:
        bits[nonempty] = np.bitwise_or.reduceat(shifted, starts[nonempty])
    out = bits.astype(np.float64)
    if data.valid is not None:
        out[~data.valid] = np.nan
    return out


@dataclass(frozen=True)
class Program:
    """A conjunction of clauses: clause ``g`` holds for a row when the row's value
    in column ``col[a]`` lies in ``[lo[a], hi[a]]`` for some interval ``a``
    with ``group[a] == g``. An interval with ``lo`` NaN tests for NULL
    instead; an empty interval (``lo > hi``) never holds. An interval with
    ``hi`` NaN tests one bit of a bit-set column (:data:`BIT_VALUES`): bit
    ``lo`` set when ``lo >= 0``, bit ``-lo - 1`` clear when ``lo < 0`` (NULL
    fails both). A clause's intervals are column by column: each column's
    value intervals (ascending, disjoint), then its NULL test and bit tests
    (:func:`_clause_intervals`). No clause: TRUE on every row.

    Held as Python tuples, one per interval, and made arrays only when read
    (:class:`ProgramTable` makes one set of arrays for all of a batch's
    programs: four arrays per program cost about 3 us of the 11 us a
    filter took to compile)."""

    atoms: tuple[tuple[int, int, float, float], ...]  # (col, group, lo, hi) per interval

    @property
    def size(self) -> int:
        return len(self.atoms)

    @cached_property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return _concat([self])

    @property
    def col(self) -> np.ndarray:
        """(A,) int64: a column of the AttributeMatrix per interval."""
        return self._arrays[0]

    @property
    def group(self) -> np.ndarray:
        """(A,) int64, ascending: each interval's clause."""
        return self._arrays[1]

    @property
    def lo(self) -> np.ndarray:
        """(A,) float64."""
        return self._arrays[2]

    @property
    def hi(self) -> np.ndarray:
        """(A,) float64."""
        return self._arrays[3]


_NEVER = [(np.inf, -np.inf)]  # an interval no value lies in
_NULL = [(np.nan, np.nan)]  # the NULL test
_NOT_NULL = [(-np.inf, np.inf)]


def _below(x: float) -> float:
    return math.nextafter(x, -math.inf)  # np.nextafter's float64, without a NumPy call


def _above(x: float) -> float:
    return math.nextafter(x, math.inf)


def _complement(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-NULL values outside ``intervals`` (ascending, disjoint)."""
    out: list[tuple[float, float]] = []
    start = -np.inf
    for lo, hi in intervals:
        if lo > hi:
            continue
        if lo > start:
            out.append((start, _below(lo)))
        start = _above(hi)
        if hi == np.inf:
            return out
    out.append((start, np.inf))
    return out


def _runs(codes: np.ndarray) -> list[tuple[float, float]]:
    """Sorted integer codes as intervals of consecutive codes."""
    if codes.size == 0:
        return _NEVER
    breaks = np.flatnonzero(np.diff(codes) != 1)
    starts = np.concatenate([[0], breaks + 1])
    stops = np.concatenate([breaks, [codes.size - 1]])
    return [(float(codes[a]), float(codes[b])) for a, b in zip(starts, stops, strict=True)]


def _in_float_type(v: float, dtype: np.dtype) -> float:
    """``v`` rounded to float ``dtype`` as NumPy casts it (float32 by the C cast
    that ``struct`` makes, about 1 us faster than a NumPy scalar; beyond
    float32's range, NumPy's infinity)."""
    if dtype == np.float64:
        return v
    if dtype == np.float32:
        with contextlib.suppress(OverflowError):
            return float(struct.unpack("f", struct.pack("f", v))[0])
    with np.errstate(over="ignore"):
        return float(np.asarray(v).astype(dtype))


def _exact(value: object) -> float | None:
    """A literal as float64, or None when it is not exact there."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int):
        return float(value) if abs(value) <= EXACT_INT else None
    if isinstance(value, float):
        return value
    return None


Atom = tuple[int, list[tuple[float, float]]]  # (matrix column, intervals)
Clause = list[Atom]  # TRUE when one of its atoms is
Interval = tuple[int, float, float]  # (matrix column, lo, hi) of a clause


class _Compiler:
    def __init__(self, matrix: AttributeMatrix) -> None:
        self.matrix = matrix
        self.atoms: list[Atom] = []  # what atom() made of the current leaf (0 or 1)

    def clauses(self, pred: Predicate, negated: bool) -> list[Clause] | None:
        """``pred`` (``NOT pred`` when ``negated``) as a conjunction of clauses,
        each a disjunction of atoms (its conjunctive normal form), or None when
        an atom does not compile or the form needs more than
        :data:`MAX_INTERVALS` clauses. ``[]`` is TRUE.

        Negations are pushed to the atoms (De Morgan holds in three-valued
        logic), and an atom's negation is where it is FALSE, not where it is
        not TRUE. Then only TRUE matters: an AND is TRUE when all of its
        children are and an OR when one is, so ORs distribute over ANDs as in
        two-valued logic."""
        if isinstance(pred, Not):
            return self.clauses(pred.child, not negated)
        if isinstance(pred, And | Or):
            parts = []
            for child in pred.children:
                part = self.clauses(child, negated)
                if part is None:
                    return None
                parts.append(part)
            if isinstance(pred, And) != negated:  # a conjunction: all the clauses
                out = [clause for part in parts for clause in part]
                return out if len(out) <= MAX_INTERVALS else None
            # A disjunction: one clause per choice of a clause from every child.
            out = [[]]
            for part in parts:
                out = [clause + other for clause in out for other in part]
                if len(out) > MAX_INTERVALS:
                    return None
            return out
        self.atoms = []
        if not self.atom(pred, negated):
            return None
        return [[atom] for atom in self.atoms]

    def atom(
        self,
        pred: Compare
        | ColumnCompare
        | Difference
        | InList
        | IsNull
        | Length
        | Modulo
        | Pattern
        | Contains
        | DatePart
        | Const,
        negated: bool,
    ) -> bool:
        """Add atom ``pred`` (``NOT pred`` when ``negated``) to :attr:`atoms`;
        False when it does not compile."""
        if isinstance(pred, Const):
            if pred.value is None or pred.value == negated:  # never TRUE
                self.atoms.append((0, _NEVER))
            return True
        if isinstance(pred, DatePart):  # an interval test of the part's own column
            key = PartColumn(pred.column, pred.part, pred.timestamp)
            low = PARTS[pred.part][0]
            codes = _runs(np.asarray(pred.values, dtype=np.int64) - low)
            index = self.matrix.part_column(key)
            self.atoms.append((index, _complement(codes) if negated else codes))
            return True
        derived = ColumnCompare | Difference | Length | Modulo  # two columns, or made of one
        if isinstance(pred, derived) or pred.column not in self.matrix.column_index:
            return False  # not in the matrix
        column = pred.column
        if column in self.matrix.bit_columns:
            return self.bit_atom(pred, negated)
        if isinstance(pred, Contains):
            return False
        cache = self.matrix._true_sets
        if pred in cache:
            true_set = cache[pred]
        else:
            true_set = cache[pred] = self.true_set(pred)
            if len(cache) > 100_000:
                cache.clear()
        if true_set is None:
            return False
        if negated:
            if isinstance(pred, IsNull):
                true_set = _NOT_NULL
            elif isinstance(pred, InList) and pred.has_null:
                true_set = _NEVER  # FALSE never: non-matches are UNKNOWN
            else:
                true_set = _complement(true_set)
        self.atoms.append((self.matrix.column_index[column], true_set))
        return True

    def bit_atom(self, pred: Compare | InList | IsNull | Pattern | Contains, negated: bool) -> bool:
        """Add an atom on a bit-set column: ``list_contains`` (one bit) or IS NULL."""
        index = self.matrix.column_index[pred.column]
        if isinstance(pred, IsNull):
            self.atoms.append((index, _NOT_NULL if negated else _NULL))
            return True
        if not isinstance(pred, Contains):
            return False
        data = self.matrix.store[pred.column]
        assert isinstance(data, ListData)
        bit = data.code_of.get(pred.value)
        if bit is None:  # no list holds it: never TRUE; NOT: TRUE on every list
            self.atoms.append((index, _NOT_NULL if negated else _NEVER))
        else:
            self.atoms.append((index, [(float(-bit - 1 if negated else bit), np.nan)]))
        return True

    def true_set(
        self, pred: Compare | InList | IsNull | Pattern
    ) -> list[tuple[float, float]] | None:
        """The intervals of non-NULL values where atom ``pred`` is TRUE (for IS
        NULL, the NULL test)."""
        if isinstance(pred, IsNull):
            return _NULL
        data = self.matrix.store[pred.column]
        if isinstance(data, StringData):
            if isinstance(pred, Compare) and pred.op == "=":
                code = data.code_of.get(pred.value)  # type: ignore[arg-type]
                return _NEVER if code is None else [(float(code), float(code))]
            if isinstance(pred, InList):  # the values' codes, without a pass over the dictionary
                code_of = data.code_of
                codes = {code_of[v] for v in pred.values if isinstance(v, str) and v in code_of}
                return _runs(np.array(sorted(codes), dtype=np.int64))
            if isinstance(pred, Compare):
                hit = data.compare(pred.op, str(pred.value))
            elif isinstance(pred, Pattern):
                return _runs(pattern_codes(pred, data.dictionary))
            else:
                return None
            return _runs(np.flatnonzero(hit))
        if isinstance(pred, InList):
            # np.isin compares in the common type: float64 at worst, exact here.
            points = [_exact(_physical(v)) for v in pred.values]
            exact = sorted({v for v in points if v is not None})
            if len(exact) < len(set(points)):
                return None  # a literal not exact in float64
            return [(v, v) for v in exact] or _NEVER
        if not isinstance(pred, Compare):
            return None
        v = _exact(_physical(pred.value))
        if v is None:
            return None
        dtype = self.matrix.dtypes[pred.column]
        if dtype.kind == "f" and not isinstance(pred.value, bool):
            # NumPy compares a float column with a Python number in the column's type.
            v = _in_float_type(v, dtype)
        op = pred.op  # (only the one asked for is made: a dict of all six cost 2 us)
        if op == "=":
            return [(v, v)]
        if op == "!=":
            return _complement([(v, v)])
        if op == "<":
            return [(-np.inf, _below(v))]
        if op == "<=":
            return [(-np.inf, v)]
        if op == ">":
            return [(_above(v), np.inf)]
        return [(v, np.inf)]  # >=


def compile_filter(pred: Predicate | None, matrix: AttributeMatrix) -> Program | None:
    """``pred`` as a :class:`Program` over ``matrix``, or None when an atom is
    not on the matrix's columns or its normal form needs more than
    :data:`MAX_INTERVALS` intervals. Cached by filter on ``matrix`` (a batch
    repeats its filters, and the normal form costs tens of microseconds)."""
    cache = matrix._programs
    if pred in cache:
        return cache[pred]
    if len(cache) >= PROGRAM_CACHE:
        cache.clear()
    cache[pred] = program = _compile(pred, matrix)
    return program


def _compile(pred: Predicate | None, matrix: AttributeMatrix) -> Program | None:
    if matrix.values.shape[1] == 0:
        return None  # no scalar columns
    tests = _conjuncts(pred)
    if tests is not None:  # most filters: each test's clauses kept, then put end to end
        rows: list[list[Interval]] = []
        for test in tests:
            cache = matrix._test_rows
            try:
                kept = cache[test]
            except KeyError:
                if len(cache) >= 100_000:
                    cache.clear()
                kept = cache[test] = _test_rows(test[0], test[1], matrix)
            if kept is None:
                return None
            rows.extend(kept)
        return _program(rows)
    clauses = [] if pred is None else _Compiler(matrix).clauses(pred, False)
    return _program(_clause_rows(clauses))


def _test_rows(
    pred: Predicate, negated: bool, matrix: AttributeMatrix
) -> list[list[Interval]] | None:
    """A test's clauses' intervals (what :func:`_clause_rows` makes of
    :meth:`_Compiler.clauses`). A comparison of a matrix column with a literal,
    the commonest test, is made directly, without the clauses' dispatch and
    the atoms' cache (each test is kept by :func:`_compile` anyway): the
    SIGMOD sample's 5,035 filters, two new float bounds each, compiled in
    about 42 ms instead of 55 ms."""
    if type(pred) is Compare and not negated and pred.column not in matrix.bit_columns:
        index = matrix.column_index.get(pred.column)
        if index is not None:
            intervals = _Compiler(matrix).true_set(pred)
            return None if intervals is None else [_clause_intervals([(index, intervals)])]
    return _clause_rows(_Compiler(matrix).clauses(pred, negated))


def _conjuncts(pred: Predicate | None) -> list[tuple[Predicate, bool]] | None:
    """``pred`` as a conjunction of tests, each (atom, negated), in the order
    :meth:`_Compiler.clauses` puts their clauses; None when it holds an OR or
    a NOT of a compound (or ``pred`` is None)."""
    if pred is None:
        return None
    out: list[tuple[Predicate, bool]] = []
    stack = [pred]
    while stack:
        node = stack.pop()
        if isinstance(node, And):
            stack.extend(reversed(node.children))
        elif isinstance(node, Or):
            return None
        elif isinstance(node, Not):
            if isinstance(node.child, Not | And | Or):
                return None
            out.append((node.child, True))
        else:
            out.append((node, False))
    return out


def _clause_rows(clauses: list[Clause] | None) -> list[list[Interval]] | None:
    """Each clause's intervals (:func:`_clause_intervals`); None for None."""
    return None if clauses is None else [_clause_intervals(clause) for clause in clauses]


def _program(rows: list[list[Interval]] | None) -> Program | None:
    """The program of clauses' intervals (clause ``g``: ``rows[g]``), or None
    for None or more than :data:`MAX_INTERVALS` intervals."""
    if rows is None or sum(len(r) for r in rows) > MAX_INTERVALS:
        return None
    return Program(tuple((c, g, a, b) for g, clause in enumerate(rows) for c, a, b in clause))


def _clause_intervals(clause: Clause) -> list[Interval]:
    """A clause's intervals as (column, lo, hi), column by column: each
    column's value intervals merged (ascending, disjoint, so that zone maps
    can count the string codes they hold), then its NULL test and its bit
    tests, each alone. A clause whose intervals are all empty never holds:
    one empty interval."""
    if len(clause) == 1 and _ascending(clause[0][1]):  # most clauses: nothing to merge
        c, intervals = clause[0]
        return [(c, a, b) for a, b in intervals]
    values: dict[int, list[tuple[float, float]]] = {}
    special: dict[int, set[tuple[float, float]]] = {}
    for c, intervals in clause:
        for a, b in intervals:
            if a != a or b != b:  # the NULL test or a bit test (NaN in lo or hi)
                special.setdefault(c, set()).add((a, b))
            elif a <= b:
                values.setdefault(c, []).append((a, b))
    out: list[Interval] = []
    for c in sorted(set(values) | set(special)):
        merged: list[list[float]] = []
        for a, b in sorted(values.get(c, [])):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        out.extend((c, a, b) for a, b in merged)
        # The NULL test (NaN, NaN) first, then bits by number.
        out.extend(
            (c, a, b) for a, b in sorted(special.get(c, ()), key=lambda x: (x[0] == x[0], x[0]))
        )
    return out or [(0, *_NEVER[0])]


def _ascending(intervals: list[tuple[float, float]]) -> bool:
    """Whether ``intervals`` are some non-empty value intervals (no NaN), ascending
    and disjoint: what :func:`_clause_intervals` makes of them alone."""
    last = -math.inf
    for i, (a, b) in enumerate(intervals):
        if not (a <= b and (a > last or (i == 0 and a == last))):
            return False
        last = b
    return bool(intervals)


def program_mask(program: Program, matrix: AttributeMatrix) -> np.ndarray:
    """The rows where ``program`` holds, in NumPy (the reference for the compiled
    test in :mod:`hqi.execution.kernels`)."""
    out = np.ones(matrix.values.shape[0], dtype=bool)
    for g in np.unique(program.group).tolist():
        held = np.zeros_like(out)
        for a in np.flatnonzero(program.group == g).tolist():
            v = matrix.values[:, program.col[a]]
            if np.isnan(program.lo[a]):
                held |= np.isnan(v)
            elif np.isnan(program.hi[a]):  # a bit of a bit set
                bit = int(program.lo[a])
                valid = ~np.isnan(v)
                sets = np.where(valid, v, 0).astype(np.uint64)
                on = (sets >> np.uint64(bit if bit >= 0 else -bit - 1)) & np.uint64(1)
                held |= valid & ((on == 1) if bit >= 0 else (on == 0))
            else:
                held |= (v >= program.lo[a]) & (v <= program.hi[a])
        out &= held
    return out


@dataclass(frozen=True)
class ProgramTable:
    """Many programs' atoms end to end, with the matrix they read: what the
    executor's compiled pass takes. Program ``i`` is atoms ``bounds[i]:bounds[i + 1]``."""

    attrs: np.ndarray  # AttributeMatrix.values
    col: np.ndarray
    group: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    bounds: np.ndarray  # (len(programs) + 1,)
    # What attrs' columns hold, in order (col's meaning): store columns by name,
    # then the date parts added (AttributeMatrix.part_column).
    columns: tuple[str | PartColumn, ...] = ()

    @classmethod
    def of(cls, programs: list[Program], matrix: AttributeMatrix) -> ProgramTable:
        sizes = [p.size for p in programs]
        bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        columns = tuple(matrix.column_index)  # then values: as wide, or wider
        return cls(
            matrix.values,
            *_concat(programs),
            bounds,
            columns,
        )


def _concat(programs: list[Program]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The programs' intervals end to end: (col, group, lo, hi), in one NumPy
    call (columns and clause numbers are small integers, exact in float64)."""
    flat = np.array([atom for p in programs for atom in p.atoms], dtype=np.float64).reshape(-1, 4)
    return (
        flat[:, 0].astype(np.int64),
        flat[:, 1].astype(np.int64),
        np.ascontiguousarray(flat[:, 2]),
        np.ascontiguousarray(flat[:, 3]),
    )
