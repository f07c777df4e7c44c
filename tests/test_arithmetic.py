"""Arithmetic on one numeric column (``i / 2 + 1 > 3``) against DuckDB: the
ranges hqi rewrites it into select exactly DuckDB's rows, at the edges of
integer and double rounding (large integers, tenths, infinities, -0.0)."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hqi.errors import FilterTypeError, UnsupportedFilterError
from hqi.layout import ZoneMaps
from hqi.query import ColumnStore, evaluate, parse_filter
from hqi.query.columns import normalize_table
from hqi.query.compiled import AttributeMatrix, compile_filter, program_mask
from hqi.query.predicate import atoms
from strategies import duckdb_ids, duckdb_with, oracle_settings


def _table() -> pa.Table:
    rng = np.random.default_rng(5)
    ints = [*range(-60, 61), 2**40, -(2**40), 2**40 + 1, 10**9, -(10**9) - 7]
    ints += rng.integers(-(2**40), 2**40, 80).tolist()
    floats = [k / 10 for k in range(-40, 41)] + [k / 8 for k in range(-40, 41)]
    floats += [float("inf"), float("-inf"), -0.0, 5e-324, -5e-324, 1e308, -1e308, 1e-300]
    floats += [0.1 * 3, 0.3, 0.30000000000000004, 2.1, 2.0999999999999996, 1000.5]
    floats += rng.normal(0, 50, 80).tolist()
    n = max(len(ints), len(floats)) + 20
    i = np.resize(np.array(ints, dtype=np.int64), n)
    f = np.resize(np.array(floats), n)
    return normalize_table(
        pa.table(
            {
                "id": pa.array(np.arange(n)),
                "i": pa.array(i, mask=np.arange(n) % 17 == 3),
                "f": pa.array(f, mask=np.arange(n) % 13 == 5),
            }
        )
    )


TABLE = _table()
STORE = ColumnStore(TABLE)
MATRIX = AttributeMatrix(STORE)


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    yield from duckdb_with("t", TABLE)


_CONSTANTS = ["1", "2", "3", "7", "10", "100", "0.5", "2.5", "0.1", "1e1", "2e-1", "-2", "-0.5"]
_VALUES = [
    "0",
    "1",
    "3",
    "-2",
    "3.5",
    "0.3",
    "0.6",
    "0.7",
    "0.9",
    "2.1",
    "1e1",
    "2.5",
    "100",
    "-0.5",
    "1000.5",
]


@st.composite
def arithmetic(draw: st.DrawFn) -> str:
    """``+ - * / //`` steps with numbers on ``i`` or ``f`` and ``floor``,
    ``ceil``, ``trunc``, ``round`` of the value, perhaps all inside ``abs()``,
    compared with numbers (either side), BETWEEN or IN."""
    expr = draw(st.sampled_from(["i", "f"]))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["+", "-", "*", "/", "//", "//", "neg", "rounding"]))
        if op == "neg":
            expr = f"-({expr})"
            continue
        if op == "rounding":
            expr = f"{draw(st.sampled_from(['floor', 'ceil', 'trunc', 'round']))}({expr})"
            continue
        constant = draw(st.sampled_from(_CONSTANTS))
        on_left = op in "+-*" and draw(st.booleans())
        expr = f"({constant} {op} {expr})" if on_left else f"({expr} {op} {constant})"
    if draw(st.integers(0, 3)) == 0:
        expr = f"abs({expr})"
    form = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "BETWEEN", "IN"]))
    value = st.sampled_from(_VALUES)
    if form == "BETWEEN":
        return f"{expr} BETWEEN {draw(value)} AND {draw(value)}"
    if form == "IN":
        items = draw(st.lists(value | st.just("NULL"), min_size=1, max_size=3))
        return f"{expr} IN ({', '.join(items)})"
    if draw(st.booleans()):
        return f"{draw(value)} {form} {expr}"
    return f"{expr} {form} {draw(value)}"


@oracle_settings(400)
@given(arithmetic())
def test_arithmetic_selects_as_duckdb(con, text: str) -> None:
    pred = parse_filter(text, STORE.schema)
    assert pred is not None
    assert np.flatnonzero(evaluate(pred, STORE)).tolist() == duckdb_ids(con, text)
    # Read as comparisons of the column: printed back, they select the same.
    assert parse_filter(str(pred), STORE.schema) == pred
    assert duckdb_ids(con, str(pred)) == duckdb_ids(con, text)


@settings(max_examples=150, deadline=None)
@given(arithmetic())
def test_arithmetic_compiles_and_routes(text: str) -> None:
    """The rewritten ranges compile, and zone maps never route a holding row away."""
    pred = parse_filter(text, STORE.schema)
    mask = evaluate(pred, STORE)
    program = compile_filter(pred, MATRIX)
    assert program is not None
    assert np.array_equal(program_mask(program, MATRIX), mask)
    cuts = np.append(np.arange(0, TABLE.num_rows, 16), TABLE.num_rows)
    flags = ZoneMaps(STORE, cuts).flags(pred)
    for p in range(cuts.size - 1):
        hits = int(mask[cuts[p] : cuts[p + 1]].sum())
        assert flags.may_true[p] or hits == 0
        assert not flags.all_true[p] or hits == cuts[p + 1] - cuts[p]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("i + 1 > 3", "i >= 3"),
        ("i * 2.5 >= 7", "i >= 3"),
        ("i / 2 > 1", "i >= 3"),  # DuckDB's / divides in doubles: 5 / 2 is 2.5
        ("10 - i < 1", "i >= 10"),
        ("-(i + 1) > 2", "i <= -4"),
        ("i + 1 BETWEEN 1 AND 3", "(i >= 0) AND (i <= 2)"),
        ("f * 3 > 1.5", "f >= 0.5000000000000001"),  # 0.5 * 3 is 1.5, not more
        ("i * 2 = 3", "(i IS NULL) AND (NULL)"),  # no integer: FALSE, NULL where i is
        ("i // 10 = 199", "(i >= 1990) AND (i <= 1999)"),  # integers: truncated
        ("i // 2 = -3", "(i >= -7) AND (i <= -6)"),  # toward zero: -7 // 2 is -3
        ("i // -3 >= 2", "i <= -6"),
        ("i // 2.0 > 3.2", "i >= 7"),  # a decimal divisor: DuckDB divides (7 // 2.0 is 3.5)
        ("(i + 5) // 2 > 3", "i >= 3"),
        ("abs(i - 2000) <= 5", "(i <= 2005) AND (i >= 1995)"),
        ("abs(i) > 10", "(i >= 11) OR (i <= -11)"),
        ("abs(i) = -1", "(i IS NULL) AND (NULL)"),  # never: FALSE, NULL where i is
        ("round(f) = 0", "(f >= -0.49999999999999994) AND (f <= 0.49999999999999994)"),
        ("floor(f) = 2", "(f >= 2.0) AND (f <= 2.9999999999999996)"),
        ("round(i * 2.5) = 13", "(i >= 5) AND (i <= 5)"),  # half away from zero: 12.5 -> 13
    ],
)
def test_arithmetic_reads_as_ranges(text: str, expected: str) -> None:
    assert str(parse_filter(text, STORE.schema)) == expected


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("i + f > 1", UnsupportedFilterError, "one column at a time"),
        ("i // 0 > 1", UnsupportedFilterError, "dividing by zero"),
        ("10 // i > 1", UnsupportedFilterError, "dividing by a column"),
        ("i % 2 + 1 = 1", UnsupportedFilterError, "arithmetic takes"),
        ("10 / i > 1", UnsupportedFilterError, "dividing by a column"),
        ("i / 0 > 1", UnsupportedFilterError, "dividing by zero"),
        ("f * 0 > 1", UnsupportedFilterError, "by zero"),
        ("i + 'a' > 1", FilterTypeError, "does not fit"),
        ("i + NULL > 1", FilterTypeError, "does not fit"),
        ("i + 1 > 'a'", FilterTypeError, "does not fit"),
        ("abs(i) + 1 > 2", UnsupportedFilterError, r"abs\(\) only around a whole expression"),
        ("round(f, 1) = 2.5", UnsupportedFilterError, r"round\(\) takes one argument"),
        ("sqrt(f) > 2", UnsupportedFilterError, "unsupported function sqrt()"),
    ],
)
def test_arithmetic_errors(text: str, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        parse_filter(text, STORE.schema)


def test_arithmetic_on_a_non_numeric_column_is_a_type_error() -> None:
    schema = ColumnStore(pa.table({"s": ["a"]})).schema
    with pytest.raises(FilterTypeError, match="needs a numeric column; 's' is string"):
        parse_filter("s + 1 > 2", schema)


def test_rewritten_atoms_are_plain_comparisons() -> None:
    pred = parse_filter("f / 7 <= 0.3 AND i - 1 IN (1, 2)", STORE.schema)
    assert {type(a).__name__ for a in atoms(pred)} <= {"Compare"}
