"""Two columns compared row by row (:class:`~hqi.query.predicate.ColumnCompare`).

Each side's stored values (a string column's codes, or a value column's
numbers) are mapped to *keys* of one order, so that ``a op b`` is ``key(a)
op key(b)`` on every row where neither is NULL, exactly as DuckDB compares
the two columns:

- two columns of one kind: their values (a string column with itself: its
  codes);
- an integer and a float column: both as doubles (DuckDB casts the integer
  to DOUBLE);
- two string columns: each has its own sorted dictionary. A code ``c`` of
  the left column is the key ``2c + 1``; a value of the right column is
  placed among the left's values, ``2i + 1`` when it equals the left's value
  ``i`` and ``2i`` when it falls just before it. Code point order, as
  DuckDB (and Python) compare strings;
- a date and a timestamp: the date as its midnight. A date ``d`` is the key
  ``2d``; a timestamp ``t`` (microseconds) is ``2 (t // D) + [t % D > 0]``
  with ``D`` the microseconds of a day: exact for every date and timestamp,
  with no product that could overflow.

Every key is non-decreasing in its value, so a partition's least and
greatest key are the keys of its least and greatest value: the zone maps
route such a filter from their summaries (:meth:`hqi.layout.ZoneMaps.flags`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from hqi.query.columns import ColumnKind, ColumnStore, StringData, ValueData
from hqi.query.predicate import ColumnCompare, Difference

__all__ = ["KeyMap", "difference", "difference_range", "key_maps", "placed"]

DAY_US = 86_400_000_000  # microseconds of a day: a timestamp's unit over a date's

KeyMap = Callable[[np.ndarray], np.ndarray]  # stored values -> keys

_PLACED_CACHE = 16  # the right dictionaries placed among the left ones, kept
_placed: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
_lock = threading.Lock()


def _same(values: np.ndarray) -> np.ndarray:
    return values


def _as_double(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float64)


def _date_key(days: np.ndarray) -> np.ndarray:
    return 2 * days.astype(np.int64)


def _timestamp_key(us: np.ndarray) -> np.ndarray:
    us = us.astype(np.int64)
    return 2 * (us // DAY_US) + (us % DAY_US != 0)


def _left_code_key(codes: np.ndarray) -> np.ndarray:
    return 2 * codes.astype(np.int64) + 1


def placed(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(len(right) + 1,) int64: each value of sorted dictionary ``right`` as a
    key among sorted dictionary ``left``'s (``2i + 1`` where it equals
    ``left[i]``, ``2i`` where it falls just before it); the last entry, read
    by the NULL code -1, is -1. Kept for the last few pairs of dictionaries
    (a filter's masks read the same two on every partition)."""
    key = (id(left), id(right))
    with _lock:
        found = _placed.get(key)
        if found is not None and found[0] is left and found[1] is right:
            return found[2]
    at = np.searchsorted(left, right, side="left").astype(np.int64)
    equal = np.zeros(right.size, dtype=bool)
    inside = at < left.size
    equal[inside] = left[at[inside]] == right[inside]
    out = np.append(2 * at + equal, -1).astype(np.int64)
    with _lock:
        if len(_placed) >= _PLACED_CACHE:
            _placed.pop(next(iter(_placed)))
        _placed[key] = (left, right, out)
    return out


def key_maps(pred: ColumnCompare, store: ColumnStore) -> tuple[KeyMap, KeyMap]:
    """How each side's stored values (string codes, or values) become keys
    that ``pred.op`` compares as DuckDB compares the two columns (see the
    module docstring). The parser has checked that the kinds compare."""
    kinds = (store.schema[pred.column], store.schema[pred.other])
    left = store[pred.column]
    if isinstance(left, StringData):
        right = store[pred.other]
        assert isinstance(right, StringData)
        if left.dictionary is right.dictionary:  # one column, or one dictionary
            return _same, _same
        lut = placed(left.dictionary, right.dictionary)
        return _left_code_key, lambda codes: lut[codes]
    if kinds[0] is kinds[1]:
        return _same, _same
    if set(kinds) == {ColumnKind.DATE, ColumnKind.TIMESTAMP}:
        if kinds[0] is ColumnKind.DATE:
            return _date_key, _timestamp_key
        return _timestamp_key, _date_key
    return _as_double, _as_double  # an integer and a float


def _exact(store: ColumnStore, pred: Difference) -> bool:
    """Whether ``a - b`` is an integer (two integer or two date columns)."""
    return ColumnKind.FLOAT not in (store.schema[pred.column], store.schema[pred.other])


def difference(store: ColumnStore, pred: Difference) -> np.ndarray:
    """Each row's ``a - b`` (anything where either is NULL) as DuckDB computes
    it: of two integers or two dates exactly (int64, or Python integers where
    int64 would overflow, where DuckDB stops with an error), else in doubles
    (an integer made a double first)."""
    a, b = store[pred.column], store[pred.other]
    assert isinstance(a, ValueData) and isinstance(b, ValueData)
    if not _exact(store, pred):
        return a.values.astype(np.float64) - b.values.astype(np.float64)
    x, y = a.values.astype(np.int64), b.values.astype(np.int64)
    with np.errstate(over="ignore"):
        out = x - y
    if bool(np.any(((x ^ y) & (x ^ out)) < 0)):  # wrapped: exactly, in Python integers
        return x.astype(object) - y.astype(object)
    return out


def difference_range(
    store: ColumnStore,
    pred: Difference,
    lo: tuple[np.ndarray, np.ndarray],
    hi: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of ``a - b`` in zones where ``a`` lies in ``[lo[0], hi[0]]`` and
    ``b`` in ``[lo[1], hi[1]]``: ``lo_a - hi_b`` and ``hi_a - lo_b``, exactly
    for integers (Python integers), in doubles otherwise (rounding is
    monotone, so every row's double lies between them)."""
    if not _exact(store, pred):
        return (
            lo[0].astype(np.float64) - hi[1].astype(np.float64),
            hi[0].astype(np.float64) - lo[1].astype(np.float64),
        )
    return (
        lo[0].astype(object) - hi[1].astype(object),
        hi[0].astype(object) - lo[1].astype(object),
    )
