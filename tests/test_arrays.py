"""hqi._arrays: sort-based stand-ins for np.unique and np.isin give NumPy's answers."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hqi._arrays import in_ascending, isin_sorted, unique

ints = hnp.arrays(
    np.int64,
    hnp.array_shapes(min_dims=1, max_dims=2, max_side=40),
    elements=st.integers(-(2**40), 2**40) | st.integers(-3, 3),
)


@given(ints)
def test_unique_is_numpys(values: np.ndarray) -> None:
    got = unique(values)
    np.testing.assert_array_equal(got, np.unique(values))
    assert got.dtype == values.dtype


@given(ints, ints)
def test_isin_sorted_is_numpys(values: np.ndarray, items: np.ndarray) -> None:
    np.testing.assert_array_equal(isin_sorted(values, unique(items)), np.isin(values, items))


@given(ints, ints)
def test_in_ascending_is_numpys(values: np.ndarray, items: np.ndarray) -> None:
    """Both ascending, repeats allowed (a list column's postings repeat a row)."""
    a, b = np.sort(values.ravel()), np.sort(items.ravel())
    np.testing.assert_array_equal(in_ascending(a, b), np.isin(a, b))


def test_empty() -> None:
    assert unique(np.zeros(0, dtype=np.int64)).size == 0
    assert not isin_sorted(np.arange(3), np.zeros(0, dtype=np.int64)).any()
    assert not in_ascending(np.arange(3), np.zeros(0, dtype=np.int64)).any()
    assert in_ascending(np.zeros(0, dtype=np.int64), np.arange(3)).size == 0


def test_ascending_input_is_copied() -> None:
    values = np.array([1, 4, 9, 20], dtype=np.int64)
    got = unique(values)
    np.testing.assert_array_equal(got, values)
    assert not np.shares_memory(got, values)
