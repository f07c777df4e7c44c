"""Per-partition column summaries and conservative predicate routing.

For every partition (a contiguous range of rows) and column, a zone map keeps
what is needed to decide, without reading rows, whether a predicate can be
TRUE on some row of the partition and whether it is TRUE on all of them:

* numbers, dates, timestamps, booleans: min, max, and NULL / row counts;
* strings: which dictionary codes occur (a boolean per code) and NULL count;
* list<string>: per dictionary code, how many rows contain it; NULL-list count;
* date parts that compiled filters read (``month(d)``, ...): which of the
  part's values occur, like a string column's codes.

Routing evaluates a predicate tree in a four-flag logic per partition:
``may_true``/``all_true``/``may_false``/``all_false`` (FALSE and UNKNOWN are
kept apart, as in :mod:`hqi.query.evaluate`). The ``may`` flags
over-approximate and the ``all`` flags under-approximate, so routing is
conservative: a partition that holds a qualifying row is never skipped, and a
partition is reported *covered* (no row filter needed) only when every row
qualifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hqi._arrays import unique
from hqi._jit import njit
from hqi._threads import even_bounds, run_split
from hqi.query.columns import ColumnStore, ListData, StringData, ValueData, widen
from hqi.query.dateparts import PARTS, PartColumn
from hqi.query.evaluate import _isin, _physical
from hqi.query.pairs import KeyMap, difference_range, key_maps
from hqi.query.patterns import pattern_hits
from hqi.query.predicate import (
    OPERATORS,
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

if TYPE_CHECKING:
    from hqi.query.compiled import ProgramTable

__all__ = ["Flags", "ZoneMaps"]

_Arrays5 = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
_Arrays6 = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]

# Fewer (program, zone) pairs than this are flagged on one thread
# (ZoneMaps.program_flags): a two-thread pool costs about 0.26 ms here.
PARALLEL_FLAG_PAIRS = 1 << 16
_NO_ZONES = np.zeros(0, dtype=np.int64)
_NO_FLAGS = np.zeros((0, 0), dtype=np.bool_)
_NO_GRID = (_NO_FLAGS, _NO_FLAGS, _NO_ZONES, 0)  # _program_flags on pairs, not a grid


@dataclass(frozen=True)
class Flags:
    """Per-partition truth flags of a predicate (bool arrays of length P)."""

    may_true: np.ndarray
    all_true: np.ndarray
    may_false: np.ndarray
    all_false: np.ndarray

    def negate(self) -> Flags:
        return Flags(self.may_false, self.all_false, self.may_true, self.all_true)


class ZoneMaps:
    """Zone maps of every column over partitions ``[bounds[i], bounds[i+1])``."""

    def __init__(self, store: ColumnStore, bounds: np.ndarray) -> None:
        self.store = store
        self.bounds = np.asarray(bounds, dtype=np.int64)
        self.sizes = np.diff(self.bounds)
        self.num_parts = self.sizes.size
        self._cache: dict[str | PartColumn, dict[str, np.ndarray]] = {}
        self._atoms: dict[Predicate, Flags] = {}
        self._parts: dict[PartColumn, np.ndarray] = {}  # _parts_present's
        self._lengths: dict[tuple[str, str], dict[str, np.ndarray]] = {}  # _length_summary's
        # program_flags' packed summaries, by the attribute-matrix columns read.
        self._packed: dict[tuple[str | PartColumn, ...], tuple[_Arrays5, _Arrays6]] = {}

    # -- summaries ------------------------------------------------------------
    def _reduce(self, values: np.ndarray, func: np.ufunc, empty: float | int) -> np.ndarray:
        out = np.full(self.num_parts, empty, dtype=values.dtype)
        nonempty = self.sizes > 0
        if values.size:
            out[nonempty] = func.reduceat(values, self.bounds[:-1][nonempty])
        return out

    def _parts_present(self, column: str, part: str, timestamp: bool) -> np.ndarray:
        """(zones, the part's range) bool: which values of date part ``part``
        (:mod:`hqi.query.dateparts`) the non-NULL rows of each zone hold;
        computed once per column and part (1M rows: about 20 ms)."""
        key = PartColumn(column, part, timestamp)
        cached = self._parts.get(key)
        if cached is not None:
            return cached
        summary = self._summary(key)
        present = np.zeros((self.num_parts, int(summary["width"])), dtype=bool)
        present[summary["zone_of"], summary["codes"]] = True
        self._parts[key] = present
        return present

    def _summary(self, column: str | PartColumn) -> dict[str, np.ndarray]:
        cached = self._cache.get(column)
        if cached is not None:
            return cached
        part_of_row = np.repeat(np.arange(self.num_parts), self.sizes)
        if isinstance(column, PartColumn):  # a date part: its values as codes
            low, high = PARTS[column.part]
            codes = self.store.date_part(
                column.column, column.part, timestamp=column.timestamp
            ).astype(np.int64)
            data = self.store[column.column]
            assert isinstance(data, ValueData)
            codes = codes - low if data.valid is None else np.where(data.valid, codes - low, -1)
            self._cache[column] = self._codes_summary(codes, high - low + 1, part_of_row)
            return self._cache[column]
        data = self.store[column]
        if isinstance(data, StringData):
            summary = self._codes_summary(data.codes, data.dictionary.size, part_of_row)
        elif isinstance(data, ListData):
            # (row, code) pairs as one key each, the NULL element (code -1) in
            # the last slot. A tag repeated within one list counts once per row:
            # the keys are deduplicated (np.unique over the stacked pairs took
            # 2.0-2.5 s on the 1.7M tags of 1M rows; this, 0.06 s).
            width = data.dictionary.size + 1
            codes = data.codes.astype(np.int64)
            keys = data.rows.astype(np.int64) * width + np.where(codes < 0, width - 1, codes)
            rows, codes = np.divmod(unique(keys), width)
            # Rows holding each value, per zone, as (zone, value, rows) triples
            # of the pairs that occur, zone by zone (a zones x values matrix of
            # counts is 800 MB for 100k tags over 1,000 zones).
            pairs = np.sort(part_of_row[rows] * width + codes)
            if pairs.size:
                new = np.flatnonzero(np.concatenate([[True], pairs[1:] != pairs[:-1]]))
                counts = np.diff(np.append(new, pairs.size))
                zone_of, code = np.divmod(pairs[new], width)
            else:
                counts = zone_of = code = np.zeros(0, dtype=np.int64)
            keep = code < width - 1  # the NULL element's slot
            zone_of, code, counts = zone_of[keep], code[keep], counts[keep]
            valid = np.ones(self.store.num_rows, dtype=bool) if data.valid is None else data.valid
            summary = {
                "zone_of": zone_of,
                "codes": code,
                "tag_count": counts,
                "width": np.int64(data.dictionary.size),
                "nulls": np.bincount(part_of_row, weights=~valid, minlength=self.num_parts).astype(
                    np.int64
                ),
            }
        else:
            assert isinstance(data, ValueData)
            values = widen(data.values)  # int64: the fills would wrap in a narrow type
            valid = np.ones(values.size, dtype=bool) if data.valid is None else data.valid
            summary = self._range_summary(values, valid, part_of_row)
        self._cache[column] = summary
        return summary

    def _length_summary(self, column: str, unit: str) -> dict[str, np.ndarray]:
        """Each zone's least and greatest length of ``column``'s non-NULL values
        (:meth:`~hqi.query.columns.ColumnStore.lengths`) and its NULLs."""
        key = (column, unit)
        cached = self._lengths.get(key)
        if cached is None:
            data = self.store[column]
            if isinstance(data, StringData):
                valid = data.codes >= 0
            else:
                valid = (
                    np.ones(self.store.num_rows, dtype=bool) if data.valid is None else data.valid
                )
            part_of_row = np.repeat(np.arange(self.num_parts), self.sizes)
            cached = self._lengths[key] = self._range_summary(
                widen(self.store.lengths(column, unit)), valid, part_of_row
            )
        return cached

    def _range_summary(
        self, values: np.ndarray, valid: np.ndarray, part_of_row: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Each zone's least and greatest of ``values`` where ``valid`` (a float
        or int64 array), and its invalid rows (NULLs); ``part_of_row``: each
        row's zone, as the caller has it."""
        if values.dtype.kind == "f":
            lo_fill, hi_fill = np.inf, -np.inf
        else:
            lo_fill, hi_fill = np.iinfo(np.int64).max, np.iinfo(np.int64).min
        return {
            "min": self._reduce(np.where(valid, values, lo_fill), np.minimum, lo_fill),
            "max": self._reduce(np.where(valid, values, hi_fill), np.maximum, hi_fill),
            "nulls": np.bincount(part_of_row, weights=~valid, minlength=self.num_parts).astype(
                np.int64
            ),
        }

    def _codes_summary(
        self, codes: np.ndarray, values: int, part_of_row: np.ndarray
    ) -> dict[str, np.ndarray]:
        """A coded column's summary (codes ``0 .. values - 1``, -1 NULL): the
        distinct codes present in each zone, ascending, zone after zone, and
        where each zone's codes start (at most one entry a row, however many
        values the column has: a zones x values matrix is 500 MB for 500k
        values over 1,000 zones); the NULLs of each zone."""
        width = values + 1  # code -1 (NULL) in the last slot
        codes = codes.astype(np.int64)
        keys = unique(part_of_row * width + np.where(codes < 0, width - 1, codes))
        zone_of, code = np.divmod(keys, width)
        keep = code < width - 1
        zone_of, code = zone_of[keep], code[keep]
        starts = np.searchsorted(zone_of, np.arange(self.num_parts + 1))
        nulls = np.bincount(part_of_row, weights=codes < 0, minlength=self.num_parts)
        return {
            "codes": code,
            "starts": starts.astype(np.int64),
            "zone_of": zone_of,
            "width": np.int64(values),
            "nulls": nulls.astype(np.int64),
        }

    # -- routing --------------------------------------------------------------
    def program_flags(
        self, table: ProgramTable, prog: np.ndarray, zone: np.ndarray, threads: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``may_true`` and ``all_true`` flags of program ``prog[j]`` of
        ``table`` on zone ``zone[j]``, for every pair ``j``: those
        :meth:`flags` gives the program's filter, for many filters in one
        compiled call. A string atom's intervals are of dictionary codes,
        tested against the codes present; a number's against ``[min, max]``;
        a bit's against the rows holding the list value; an interval with
        ``lo`` NaN (the NULL test) against the NULL count. With ``threads >
        1`` and at least :data:`PARALLEL_FLAG_PAIRS` pairs, runs of them go to
        that many threads (1M exact plan, 665k pairs: 18 -> 12 ms)."""
        zones, coded = self._packed_for(table)
        may = np.empty(prog.size, dtype=np.bool_)
        every = np.empty(prog.size, dtype=np.bool_)
        prog, zone = prog.astype(np.int64), zone.astype(np.int64)
        atoms = (table.bounds, table.col, table.group, table.lo, table.hi)

        def run(a: int, b: int) -> None:
            _program_flags(
                zones, coded, atoms, prog[a:b], zone[a:b], _NO_GRID, may[a:b], every[a:b]
            )

        parallel = threads > 1 and prog.size >= PARALLEL_FLAG_PAIRS
        run_split(run, even_bounds(prog.size, threads if parallel else 1))
        return may, every

    def program_zone_may(
        self,
        table: ProgramTable,
        part_may: np.ndarray,
        part_whole: np.ndarray,
        zone_part: np.ndarray,
        threads: int = 1,
    ) -> np.ndarray:
        """(programs, zones) bool: whether each program of ``table`` may hold on
        some row of each zone, for zones that lie inside partitions
        (``zone_part``: each zone's), given the programs' flags there
        (``part_may``, ``part_whole``: (programs, partitions)). True where it
        holds on every row of the zone's partition, False where it cannot hold
        there, else :meth:`program_flags`'s ``may_true`` on the zone. One call
        for the whole grid, split by programs over ``threads`` at
        :data:`PARALLEL_FLAG_PAIRS` cells or more: the exact planner's lists
        (1M: 5,069 filters x 492 lists, 24 -> 11 ms with the pairs
        made and scattered in numpy before, the same flags)."""
        zones, coded = self._packed_for(table)
        atoms = (table.bounds, table.col, table.group, table.lo, table.hi)
        n = part_may.shape[0]
        out = np.empty((n, zone_part.size), dtype=np.bool_)
        whole = np.empty_like(out)
        zone_part = zone_part.astype(np.int64, copy=False)

        def run(a: int, b: int) -> None:
            grid = (part_may[a:b], part_whole[a:b], zone_part, a)
            _program_flags(
                zones,
                coded,
                atoms,
                _NO_ZONES,
                _NO_ZONES,
                grid,
                out[a:b].reshape(-1),
                whole[a:b].reshape(-1),
            )

        parallel = threads > 1 and out.size >= PARALLEL_FLAG_PAIRS
        run_split(run, even_bounds(n, threads if parallel else 1))
        return out

    def _packed_for(self, table: ProgramTable) -> tuple[_Arrays5, _Arrays6]:
        """The summaries of the columns ``table``'s programs read, packed (:meth:`_pack`)
        and kept (the last 8 column sets)."""
        used = np.zeros(len(table.columns), dtype=bool)
        used[np.unique(table.col)] = True
        key = tuple(name if u else "" for name, u in zip(table.columns, used, strict=True))
        packed = self._packed.get(key)
        if packed is None:  # the summaries of the columns read, as the loop takes them
            if len(self._packed) >= 8:
                self._packed.clear()
            packed = self._packed[key] = self._pack(table.columns, used)
        return packed

    def _pack(
        self, columns: tuple[str | PartColumn, ...], used: np.ndarray
    ) -> tuple[_Arrays5, _Arrays6]:
        """:meth:`program_flags`'s per-column summaries (of the ``used`` ones) as
        arrays indexed by attribute-matrix column."""
        c = len(columns)
        lo = np.full((c, self.num_parts), np.inf)
        hi = np.full((c, self.num_parts), -np.inf)
        nulls = np.zeros((c, self.num_parts), dtype=np.int64)
        distinct = np.zeros((c, self.num_parts), dtype=np.int64)  # string codes present
        # Flattened: a string column's distinct codes present, zone after zone
        # ascending (``present``), and where each of its zones starts there
        # (``starts``: zones + 1 entries from ``base``); a list column's rows
        # holding each value, per zone (``width`` values a zone from ``base``).
        strings = np.zeros(c, dtype=bool)  # a string column (its codes present)
        width = np.zeros(c, dtype=np.int64)
        base = np.zeros(c, dtype=np.int64)
        present, starts = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
        tag_rows = [np.zeros(0, dtype=np.int64)]
        present_size, starts_size, tags_size = 0, 0, 0
        for i, name in enumerate(columns):
            if not used[i]:
                continue
            summary = self._summary(name)
            nulls[i] = summary["nulls"]
            if "starts" in summary:  # a string column, or a date part's codes
                strings[i] = True
                width[i] = summary["width"]
                base[i] = starts_size
                present.append(summary["codes"])
                starts.append(summary["starts"] + present_size)
                present_size += summary["codes"].size
                starts_size += summary["starts"].size
                distinct[i] = np.diff(summary["starts"])
            elif "tag_count" in summary:  # a bit-set column: a few values, dense per zone
                codes = np.zeros((self.num_parts, int(summary["width"])), dtype=np.int64)
                codes[summary["zone_of"], summary["codes"]] = summary["tag_count"]
                width[i], base[i] = codes.shape[1], tags_size
                tag_rows.append(codes.reshape(-1))
                tags_size += codes.size
                lo[i], hi[i] = 0.0, 0.0  # a bit set's own intervals: NOT NULL, never
            else:
                lo[i], hi[i] = summary["min"], summary["max"]
        return (lo, hi, nulls, distinct, self.sizes), (
            strings,
            width,
            base,
            np.concatenate(present),
            np.concatenate(starts),
            np.concatenate(tag_rows),
        )

    def _zones_holding(self, summary: dict[str, np.ndarray], hit: np.ndarray) -> np.ndarray:
        """Per zone, how many of the string codes present are ``hit`` (D,) bool:
        through the few hit values' entries when few are hit (a selective
        pattern over 500k distinct names: 1.7 ms a filter over every entry),
        else over every entry."""
        zone_of = summary["zone_of"]
        wanted = np.flatnonzero(hit)
        if 4 * wanted.size >= hit.size:
            return np.bincount(zone_of, weights=hit[summary["codes"]], minlength=self.num_parts)
        return np.bincount(zone_of[_entries_of(summary, wanted)], minlength=self.num_parts)

    def forget_filters(self) -> None:
        """Forget the atoms' flags kept so far (:meth:`flags`' cache, per literal)."""
        self._atoms.clear()

    def flags(self, pred: Predicate | None) -> Flags:
        """The four truth flags of ``pred`` for every partition."""
        p = self.num_parts
        if pred is None:
            ones, zeros = np.ones(p, dtype=bool), np.zeros(p, dtype=bool)
            return Flags(ones & (self.sizes > 0), ones, zeros, zeros | (self.sizes == 0))
        return self._flags(pred)

    def _flags(self, pred: Predicate) -> Flags:
        if isinstance(pred, Not | And | Or | Const):
            return self._compound(pred)
        cached = self._atoms.get(pred)
        if cached is None:
            cached = self._compound(pred)
            if len(self._atoms) >= 100_000:
                self._atoms.clear()
            self._atoms[pred] = cached
        return cached

    def _compound(self, pred: Predicate) -> Flags:
        empty = self.sizes == 0
        if isinstance(pred, Not):
            return self._flags(pred.child).negate()
        if isinstance(pred, And | Or):
            parts = [self._flags(c) for c in pred.children]
            if isinstance(pred, Or):
                parts = [f.negate() for f in parts]
            first, rest = parts[0], parts[1:]
            may_t, all_t = first.may_true.copy(), first.all_true.copy()
            may_f, all_f = first.may_false.copy(), first.all_false.copy()
            for child in rest:  # pairwise: cheaper than stacking the children's flags
                may_t &= child.may_true
                all_t &= child.all_true
                may_f |= child.may_false
                all_f |= child.all_false
            out = Flags(may_t, all_t, may_f, all_f)
            return out.negate() if isinstance(pred, Or) else out
        if isinstance(pred, Const):
            t = np.full(self.num_parts, pred.value is True)
            f = np.full(self.num_parts, pred.value is False)
            return Flags(t & ~empty, t | empty, f & ~empty, f | empty)
        if isinstance(pred, ColumnCompare):
            return self._pair_flags(pred)
        if isinstance(pred, Difference):  # a - b: between the zone's extremes' differences
            sa, sb = self._summary(pred.column), self._summary(pred.other)
            lo, hi = difference_range(
                self.store, pred, (sa["min"], sb["min"]), (sa["max"], sb["max"])
            )
            may_t, all_t, may_f, all_f = (
                np.asarray(f, dtype=bool) for f in _range_flags(lo, hi, pred.op, pred.value)
            )
            both = (self.sizes - sa["nulls"] > 0) & (self.sizes - sb["nulls"] > 0)
            no_nulls = (sa["nulls"] == 0) & (sb["nulls"] == 0)
            return _where_known(may_t, all_t, may_f, all_f, both, no_nulls, empty)
        if isinstance(pred, Length | Modulo):  # by each zone's range of lengths, remainders
            if isinstance(pred, Length):
                summary = self._length_summary(pred.column, pred.unit)
                lo, hi = summary["min"], summary["max"]
            else:
                summary = self._summary(pred.column)
                lo, hi = _remainder_range(summary["min"], summary["max"], pred.divisor)
            nulls = summary["nulls"]
            known = (self.sizes - nulls > 0, nulls == 0, empty)
            return _where_known(*_range_flags(lo, hi, pred.op, pred.value), *known)
        summary = self._summary(pred.column)
        nulls = summary["nulls"]
        valid_rows = self.sizes - nulls
        if isinstance(pred, IsNull):
            return Flags(nulls > 0, nulls == self.sizes, valid_rows > 0, nulls == 0)
        if isinstance(pred, DatePart):
            # The part's values present in each zone (a zone's range of dates
            # says little: months recur every year).
            present = self._parts_present(pred.column, pred.part, pred.timestamp)
            chosen = np.zeros(present.shape[1], dtype=bool)
            chosen[np.asarray(pred.values, dtype=np.int64) - PARTS[pred.part][0]] = True
            hit = np.asarray(present[:, chosen].any(axis=1))
            miss = np.asarray(present[:, ~chosen].any(axis=1))
            no_nulls = nulls == 0
            return Flags(hit, ~miss & no_nulls, miss, ~hit & no_nulls)
        if isinstance(pred, Contains):
            data = self.store[pred.column]
            assert isinstance(data, ListData)
            code = np.flatnonzero(data.dictionary == pred.value)
            have = np.zeros(self.num_parts, dtype=np.int64)
            at = _entries_of(summary, code[:1])  # the zones holding the value
            have[summary["zone_of"][at]] = summary["tag_count"][at]
            return Flags(
                have > 0, (have == self.sizes), have < valid_rows, (have == 0) & (nulls == 0)
            )
        data = self.store[pred.column]
        if isinstance(pred, InList) and pred.has_null:
            # Non-matches are UNKNOWN, never FALSE.
            inner = self._flags(InList(pred.column, pred.values))
            return Flags(inner.may_true, inner.all_true, np.zeros_like(empty), empty.copy())
        if isinstance(data, StringData):
            if isinstance(pred, Compare):
                hit = data.compare(pred.op, str(pred.value))
            elif isinstance(pred, Pattern):
                hit = pattern_hits(pred, data.dictionary)
            else:
                hit = _isin(data.dictionary, list(pred.values))
            hits = self._zones_holding(summary, hit)
            some_hit = hits > 0
            some_miss = hits < np.diff(summary["starts"])
            return Flags(some_hit, ~some_miss & (nulls == 0), some_miss, ~some_hit & (nulls == 0))
        lo, hi = summary["min"], summary["max"]
        has_valid = valid_rows > 0
        if isinstance(pred, Compare):
            may_t, all_t, may_f, all_f = _range_flags(lo, hi, pred.op, _physical(pred.value))
        else:
            assert isinstance(pred, InList)
            values = np.asarray([_physical(v) for v in pred.values])
            within = (values[None, :] >= lo[:, None]) & (values[None, :] <= hi[:, None])
            may_t = np.asarray(within.any(axis=1))
            all_t = np.asarray((lo == hi) & _isin(lo, list(values)))
            may_f, all_f = ~all_t, ~may_t
        return _where_known(may_t, all_t, may_f, all_f, has_valid, nulls == 0, empty)

    def _key_range(self, column: str, key: KeyMap) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each zone's least and greatest key of ``column``'s values (anything
        where it has none) and its NULLs."""
        summary = self._summary(column)
        if "min" in summary:
            lo, hi = summary["min"], summary["max"]
        else:  # a string column: each zone's codes, ascending
            codes, starts = summary["codes"], summary["starts"]
            lo = hi = np.zeros(self.num_parts, dtype=np.int64)
            if codes.size:
                held = starts[1:] > starts[:-1]
                lo = np.where(held, codes[np.minimum(starts[:-1], codes.size - 1)], 0)
                hi = np.where(held, codes[np.maximum(starts[1:] - 1, 0)], 0)
        return key(lo), key(hi), summary["nulls"]

    def _pair_flags(self, pred: ColumnCompare) -> Flags:
        """Two columns compared (:mod:`hqi.query.pairs`): by each zone's range of
        keys of either side. TRUE on every row of a zone where even its
        greatest left key is below its least right key (``a < b``), and so on."""
        left_key, right_key = key_maps(pred, self.store)
        lo_a, hi_a, nulls_a = self._key_range(pred.column, left_key)
        lo_b, hi_b, nulls_b = self._key_range(pred.other, right_key)
        op = pred.op
        if op in (">", ">="):  # b < a, b <= a
            lo_a, hi_a, lo_b, hi_b = lo_b, hi_b, lo_a, hi_a
            op = "<" if op == ">" else "<="
        if op == "<":
            may_t, all_t, may_f, all_f = lo_a < hi_b, hi_a < lo_b, hi_a >= lo_b, lo_a >= hi_b
        elif op == "<=":
            may_t, all_t, may_f, all_f = lo_a <= hi_b, hi_a <= lo_b, hi_a > lo_b, lo_a > hi_b
        else:
            all_t = (lo_a == hi_a) & (lo_b == hi_b) & (lo_a == lo_b)
            all_f = (hi_a < lo_b) | (hi_b < lo_a)
            may_t, may_f = ~all_f, ~all_t
            if op == "!=":
                may_t, all_t, may_f, all_f = may_f, all_f, may_t, all_t
        empty = self.sizes == 0
        both = (self.sizes - nulls_a > 0) & (self.sizes - nulls_b > 0)
        no_nulls = (nulls_a == 0) & (nulls_b == 0)
        return _where_known(may_t, all_t, may_f, all_f, both, no_nulls, empty)


def _where_known(
    may_t: np.ndarray,
    all_t: np.ndarray,
    may_f: np.ndarray,
    all_f: np.ndarray,
    has_valid: np.ndarray,
    no_nulls: np.ndarray,
    empty: np.ndarray,
) -> Flags:
    """The flags of a test that NULL makes unknown, from its flags over each
    zone's non-NULL values: it may be TRUE (FALSE) only in a zone with a
    non-NULL value, and is TRUE (FALSE) on every row only where the zone has
    no NULL (an empty zone: vacuously)."""
    return Flags(
        may_t & has_valid,
        (all_t & no_nulls & has_valid) | empty,
        may_f & has_valid,
        (all_f & no_nulls & has_valid) | empty,
    )


def _remainder_range(lo: np.ndarray, hi: np.ndarray, divisor: int) -> tuple[np.ndarray, np.ndarray]:
    """The least and greatest ``value % divisor`` (DuckDB's: truncated) over
    values in ``[lo, hi]`` (int64), or an interval holding them: the
    remainders of the ends where the values lie on one side of 0 and within
    one run of ``|divisor|`` (no wrap between them), else every remainder of
    that sign, never past the values themselves."""
    m = abs(divisor)
    lo, hi = lo.astype(np.int64), hi.astype(np.int64)
    # Every remainder |r| < m, of the value's sign, and |r| <= |value|.
    out_lo = np.maximum(np.where(lo < 0, -(m - 1), 0), np.minimum(lo, 0))
    out_hi = np.minimum(np.where(hi > 0, m - 1, 0), np.maximum(hi, 0))
    with np.errstate(over="ignore"):
        span_ok = (hi - lo >= 0) & (hi - lo < m)
    up = (lo >= 0) & span_ok & (lo % m <= hi % m)  # non-negative, no wrap: the ends'
    down = (hi <= 0) & span_ok & ((-hi) % m <= (-lo) % m)
    out_lo = np.where(up, lo % m, np.where(down, -((-lo) % m), out_lo))
    out_hi = np.where(up, hi % m, np.where(down, -((-hi) % m), out_hi))
    return out_lo, out_hi


def _range_flags(
    lo: np.ndarray, hi: np.ndarray, op: str, v: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(may TRUE, all TRUE, may FALSE, all FALSE) of ``value op v`` in zones
    whose values lie in ``[lo, hi]`` (NULLs and empty zones aside)."""
    if op == "=":
        may_t, all_t = (lo <= v) & (hi >= v), (lo == v) & (hi == v)
        return may_t, all_t, ~all_t, (hi < v) | (lo > v)
    if op == "!=":
        may_f, all_f = (lo <= v) & (hi >= v), (lo == v) & (hi == v)
        return ~all_f, (hi < v) | (lo > v), may_f, all_f
    flip = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}[op]
    return (
        OPERATORS[op](lo, v) | OPERATORS[op](hi, v),
        OPERATORS[op](lo, v) & OPERATORS[op](hi, v),
        OPERATORS[flip](lo, v) | OPERATORS[flip](hi, v),
        OPERATORS[flip](lo, v) & OPERATORS[flip](hi, v),
    )


def _entries_of(summary: dict[str, np.ndarray], values: np.ndarray) -> np.ndarray:
    """The entries of a string or list column's summary (one per (zone, value)
    that occurs) whose value is in ``values`` (ascending codes), through the
    entries in value order, made on first need and kept with the summary."""
    if "by_value" not in summary:
        summary["by_value"] = np.argsort(summary["codes"], kind="stable")
        summary["value_sorted"] = summary["codes"][summary["by_value"]]
    ordered = summary["value_sorted"]
    lo = np.searchsorted(ordered, values, side="left")
    counts = np.searchsorted(ordered, values, side="right") - lo
    # The entries lo[i] .. lo[i] + counts[i] of every value, in one array.
    first = np.repeat(lo - (np.cumsum(counts) - counts), counts)
    return summary["by_value"][first + np.arange(int(counts.sum()))]


@njit(nogil=True, boundscheck=False)
def _program_flags(
    zones: _Arrays5,
    coded: _Arrays6,
    atoms: _Arrays5,
    prog: np.ndarray,
    zone: np.ndarray,
    grid: tuple[np.ndarray, np.ndarray, np.ndarray, int],
    may: np.ndarray,
    every: np.ndarray,
) -> None:
    """The loop of :meth:`ZoneMaps.program_flags` and :meth:`ZoneMaps.program_zone_may`
    (compiled on its first call): flags of program ``prog[j]`` on zone
    ``zone[j]`` into ``may[j]`` and ``every[j]``; or, with ``prog`` empty, of
    every program ``first + i`` on every zone ``r``, into ``j = i * zones +
    r``, given the programs' flags on the zones' partitions (``grid``:
    ``part_may``, ``part_whole``, ``zone_part``, ``first``): there only where
    the program may hold in the zone's partition but not on all its rows.

    A clause may hold where one of its parts may (the NULL test, a bit test,
    or one column's value intervals), and holds on every row where one of
    its parts does (an under-approximation, as :meth:`ZoneMaps.flags` gives
    an OR). One body for both (a shared numba helper, even inlined, made the
    pairs 6x slower)."""
    lo, hi, nulls, distinct, sizes = zones
    strings, width, base, present, starts, tag_rows = coded
    bounds, atom_col, atom_group, atom_lo, atom_hi = atoms
    part_may, part_whole, zone_part, first = grid
    on_grid = prog.size == 0
    num_zones = zone_part.size
    g, r = 0, -1  # on the grid: j's program (less first) and zone
    for j in range(may.size):
        if on_grid:
            r += 1
            if r == num_zones:
                g, r = g + 1, 0
            p = zone_part[r]
            if part_whole[g, p] or not part_may[g, p]:
                may[j] = every[j] = part_whole[g, p]
                continue
            i = first + g
        else:
            i, r = prog[j], zone[j]
        some, whole = sizes[r] > 0, True
        a, stop = bounds[i], bounds[i + 1]
        clause_held, clause_all = False, False
        while a < stop:  # one part of a clause at a time
            c = atom_col[a]
            e = a + 1
            if atom_lo[a] == atom_lo[a] and atom_hi[a] == atom_hi[a]:  # value intervals
                while (
                    e < stop
                    and atom_group[e] == atom_group[a]
                    and atom_col[e] == c
                    and atom_lo[e] == atom_lo[e]
                    and atom_hi[e] == atom_hi[e]
                ):
                    e += 1
            if atom_lo[a] != atom_lo[a]:  # the NULL test
                held, all_held = nulls[c, r] > 0, nulls[c, r] == sizes[r]
            elif atom_hi[a] != atom_hi[a]:  # a bit of a list's bit set
                bit = int(atom_lo[a])
                have = tag_rows[base[c] + r * width[c] + (bit if bit >= 0 else -bit - 1)]
                if bit >= 0:  # the list holds the value
                    held, all_held = have > 0, have == sizes[r]
                else:  # it does not (and is not NULL)
                    held = have < sizes[r] - nulls[c, r]
                    all_held = have == 0 and nulls[c, r] == 0
            elif strings[c]:  # dictionary codes: how many of the present ones are in?
                here = present[starts[base[c] + r] : starts[base[c] + r + 1]]  # ascending
                inside = 0
                for x in range(a, e):
                    low, high = max(atom_lo[x], 0.0), min(atom_hi[x], width[c] - 1.0)
                    if low <= high:
                        below_low = np.searchsorted(here, int(np.ceil(low)))
                        inside += int(np.searchsorted(here, int(np.floor(high)) + 1) - below_low)
                held = inside > 0
                all_held = inside == distinct[c, r] and nulls[c, r] == 0
            else:  # numbers: does an interval meet [min, max], or hold all of it?
                valid = sizes[r] > nulls[c, r]
                held, all_held = False, sizes[r] == 0
                for x in range(a, e):
                    low, high = atom_lo[x], atom_hi[x]
                    if valid and low <= hi[c, r] and high >= lo[c, r]:
                        held = True
                        if nulls[c, r] == 0 and low <= lo[c, r] and high >= hi[c, r]:
                            all_held = True
            clause_held = clause_held or held
            clause_all = clause_all or all_held
            if e == stop or atom_group[e] != atom_group[a]:  # the clause ends
                some = some and clause_held
                whole = whole and clause_all
                if not (some or whole):
                    break
                clause_held, clause_all = False, False
            a = e
        may[j] = some
        every[j] = whole
