"""Array helpers that stand in for NumPy calls that are slow on hqi's sizes."""

from __future__ import annotations

import numpy as np

from hqi._jit import njit

__all__ = ["in_ascending", "isin_sorted", "plain", "unique"]


def unique(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values of ``values`` (flattened), as ``np.unique``.

    By a sort and a comparison of neighbours; values already strictly
    ascending (one posting list, pairs listed row by row) are only copied.
    NumPy 2.4's ``np.unique`` hashes instead, and on integers with many
    distinct values that was 13-55x slower than sorting on this project's
    machines (50,000 int64 keys: 10.7 ms against 0.8 ms; 1.7M: 1.75 s against
    0.03 s). ``bench/unique.py`` measures both.
    """
    flat = np.ravel(values)
    if flat.size > 1 and bool(np.all(flat[1:] > flat[:-1])):
        return flat.copy()
    out = np.sort(flat)
    if out.size > 1:
        keep = np.empty(out.size, dtype=bool)
        keep[0] = True
        np.not_equal(out[1:], out[:-1], out=keep[1:])
        out = out[keep]
    return out


def isin_sorted(values: np.ndarray, sorted_unique: np.ndarray) -> np.ndarray:
    """``np.isin(values, sorted_unique)`` for an ascending ``sorted_unique``
    (:func:`unique`'s output), by a binary search: ``np.isin`` would make
    ``sorted_unique`` unique again with ``np.unique``."""
    if sorted_unique.size == 0:
        return np.zeros(np.shape(values), dtype=bool)
    at = np.searchsorted(sorted_unique, values)
    np.minimum(at, sorted_unique.size - 1, out=at)
    return sorted_unique[at] == values


def in_ascending(values: np.ndarray, ascending: np.ndarray) -> np.ndarray:
    """``isin_sorted(values, ascending)`` for ascending ``values`` too (two
    posting lists), in one merge of both (compiled on first use): 14,000
    values in 42,000, 0.13 ms against 0.33 ms by a binary search each."""
    values = np.ascontiguousarray(values)
    ascending = np.ascontiguousarray(ascending, dtype=values.dtype)
    out = np.zeros(values.size, dtype=bool)
    if values.size and ascending.size:
        _merge_in(values, ascending, out)
    return out


@njit(nogil=True, boundscheck=False)
def _merge_in(values: np.ndarray, ascending: np.ndarray, out: np.ndarray) -> None:
    j = 0
    m = ascending.size
    for i in range(values.size):
        v = values[i]
        while j < m and ascending[j] < v:
            j += 1
        if j == m:
            break
        out[i] = ascending[j] == v


def plain(array: np.ndarray) -> np.ndarray:
    """``array`` as a plain ``ndarray`` over the same memory (no copy). An opened
    index's rows are a ``np.memmap``, and every slice or gather of one runs
    Python (``np.memmap.__array_finalize__``) under the GIL: on an opened 1M
    index's exact execution, reading through this view took 1.065 / 1.007 ->
    0.947 / 0.925 s (two alternating pairs of medians of 7, the same answers)."""
    return array.view(np.ndarray) if isinstance(array, np.memmap) else array
