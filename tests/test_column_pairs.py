"""Comparisons of two columns (``a < b``): DuckDB's semantics, routing, search."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hqi
from hqi.errors import FilterTypeError
from hqi.layout import ZoneMaps
from hqi.query import ColumnStore, evaluate, parse_filter
from hqi.query.columns import normalize_table
from hqi.query.compiled import AttributeMatrix, compile_filter
from hqi.query.predicate import ColumnCompare, Not
from strategies import duckdb_ids, duckdb_with

US = 1_000_000
DAY = 86_400 * US
EPOCH = dt.datetime(1970, 1, 1)


def _edge_table() -> pa.Table:
    """Values where a wrong conversion shows: a date against timestamps at its
    midnight and a microsecond either side (before 1970 too), integers past
    2**53 against doubles, strings of two dictionaries that interleave."""
    days = [0, 0, 0, -1, -1, 19000, 19000, 5, None, 7]
    stamps = [0, 1, -1, -DAY, -DAY - 1, 19000 * DAY, 19000 * DAY + 1, None, 3 * DAY, 7 * DAY - 1]
    big = 2**53
    ints = [big + 1, big, 3, -3, 0, None, 7, 1, -(2**62), 2**62]
    floats = [float(big), float(big), 3.0, -2.5, None, 1.0, 7.0, 0.5, -(2.0**62), 2.0**62]
    left = ["b", "a", "é", "", "Z", None, "zz", "ab", "a", "e"]
    right = ["b", "ab", "e", "a", "z", "x", None, "aa", "", "é"]
    flags = [True, False, True, None, False, True, False, True, True, False]
    flags2 = [True, True, False, False, None, True, False, True, False, True]
    return normalize_table(
        pa.table(
            {
                "id": pa.array(range(10)),
                "d": pa.array(
                    [
                        None if x is None else dt.date(1970, 1, 1) + dt.timedelta(days=x)
                        for x in days
                    ],
                    pa.date32(),
                ),
                "ts": pa.array(
                    [None if x is None else EPOCH + dt.timedelta(microseconds=x) for x in stamps],
                    pa.timestamp("us"),
                ),
                "i": pa.array(ints, pa.int64()),
                "f": pa.array(floats, pa.float64()),
                "s": pa.array(left),
                "t": pa.array(right),
                "b": pa.array(flags),
                "c": pa.array(flags2),
            }
        )
    )


EDGE = _edge_table()
EDGE_STORE = ColumnStore(EDGE)
EDGE_PAIRS = [("d", "ts"), ("ts", "d"), ("i", "f"), ("f", "i"), ("s", "t"), ("t", "s"), ("b", "c")]
OPS = ["=", "!=", "<", "<=", ">", ">="]


@pytest.fixture(scope="module")
def edge_con() -> Iterator[duckdb.DuckDBPyConnection]:
    yield from duckdb_with("t", EDGE)


def _ids(text: str, store: ColumnStore = EDGE_STORE) -> list[int]:
    return np.flatnonzero(evaluate(parse_filter(text, store.schema), store)).tolist()


@pytest.mark.parametrize(("pair", "op"), list(itertools.product(EDGE_PAIRS, OPS)))
def test_edge_values_compare_as_duckdb(edge_con, pair: tuple[str, str], op: str) -> None:
    a, b = pair
    for text in [f"{a} {op} {b}", f"NOT ({a} {op} {b})", f"({a} {op} {b}) IS NULL"]:
        assert _ids(text) == duckdb_ids(edge_con, text), text


@pytest.mark.parametrize("pair", EDGE_PAIRS)
def test_null_safe_pairs_and_between_columns_as_duckdb(edge_con, pair: tuple[str, str]) -> None:
    a, b = pair
    texts = [
        f"{a} IS DISTINCT FROM {b}",
        f"{a} IS NOT DISTINCT FROM {b}",
        f"{a} BETWEEN {b} AND {a}",
        f"{a} NOT BETWEEN {b} AND {b}",
        f"{a} = {a}",  # NULL where the column is
    ]
    for text in texts:
        assert _ids(text) == duckdb_ids(edge_con, text), text


def test_pairs_parse_to_one_node_and_print_back() -> None:
    pred = parse_filter('i < "f"', EDGE_STORE.schema)
    assert pred == ColumnCompare("i", "<", "f")
    assert parse_filter(str(pred), EDGE_STORE.schema) == pred
    assert parse_filter("5 > i AND i >= f", EDGE_STORE.schema) is not None


def test_pairs_keep_masks_instead_of_programs() -> None:
    matrix = AttributeMatrix(EDGE_STORE)
    assert compile_filter(parse_filter("i < f", EDGE_STORE.schema), matrix) is None
    assert compile_filter(parse_filter("s < t OR s = 'a'", EDGE_STORE.schema), matrix) is None
    assert (
        compile_filter(parse_filter("s = 'a'", EDGE_STORE.schema), matrix) is not None
    )  # (i: past 2**53)


def _ranged_table(n: int = 400) -> pa.Table:
    """Four blocks of rows: a's values below b's, above, equal, and mixed."""
    rng = np.random.default_rng(7)
    q = n // 4
    a = np.concatenate(
        [rng.integers(0, 10, q), rng.integers(20, 30, q), np.full(q, 5), rng.integers(0, 30, q)]
    )
    b = np.concatenate(
        [rng.integers(10, 20, q), rng.integers(0, 20, q), np.full(q, 5), rng.integers(0, 30, q)]
    )
    day0 = dt.date(2000, 1, 1)
    d = [day0 + dt.timedelta(days=int(x)) for x in a]
    ts = [dt.datetime(2000, 1, 1) + dt.timedelta(days=int(x), hours=1) for x in b]
    names = np.array([f"n{x:02d}" for x in range(30)])
    return pa.table(
        {
            "a": pa.array(a, pa.int64()),
            "b": pa.array(b.astype(np.float64)),
            "d": pa.array(d, pa.date32()),
            "ts": pa.array(ts, pa.timestamp("us")),
            "s": pa.array(names[a].tolist()),
            "t": pa.array(names[b].tolist()),
        }
    )


RANGED = ColumnStore(_ranged_table())
BLOCKS = np.array([0, 100, 200, 300, 400])


@pytest.mark.parametrize(
    ("a", "b"), [("a", "b"), ("d", "ts"), ("s", "t"), ("b", "a"), ("ts", "d"), ("t", "s")]
)
def test_zone_maps_cover_and_skip_pairs_exactly_where_ranges_decide(a: str, b: str) -> None:
    """Blocks where every left value lies below every right one are covered by
    ``<`` and skipped by ``>=``; the mixed block is neither."""
    zones = ZoneMaps(RANGED, BLOCKS)
    below = 0 if a in ("a", "d", "s") else 1  # the block where a's side is the lesser
    above = 1 - below
    less, more = zones.flags(parse_filter(f"{a} < {b}", RANGED.schema)), None
    more = zones.flags(parse_filter(f"{a} >= {b}", RANGED.schema))
    assert less.all_true[below] and not less.may_true[above]
    assert more.all_true[above] and not more.may_true[below]
    assert not less.all_true[3] and less.may_true[3] and more.may_true[3]
    if (a, b) in (("a", "b"), ("b", "a")):  # the block of equal values: one number each
        same = zones.flags(parse_filter(f"{a} = {b}", RANGED.schema))
        assert same.all_true[2] and not same.may_true[0] and not same.may_true[1]
        differ = zones.flags(parse_filter(f"{a} != {b}", RANGED.schema))
        assert not differ.may_true[2] and differ.all_true[0]


@st.composite
def _pair_filters(draw: st.DrawFn) -> str:
    a, b = draw(st.sampled_from([("a", "b"), ("d", "ts"), ("s", "t"), ("ts", "d"), ("b", "a")]))
    text = f"{a} {draw(st.sampled_from(OPS))} {b}"
    if (a, b) in (("a", "b"), ("b", "a")) and draw(st.booleans()):  # a difference
        number = draw(st.sampled_from(["0", "5", "-5", "2.5", "15", "-15"]))
        text = f"{a} - {b} {draw(st.sampled_from(OPS))} {number}"
    return f"NOT ({text})" if draw(st.booleans()) else text


@settings(max_examples=150, deadline=None)
@given(_pair_filters(), st.lists(st.integers(0, 400), max_size=10))
def test_pair_routing_is_conservative(text: str, cuts: list[int]) -> None:
    bounds = np.unique(np.array([0, 400, *cuts]))
    pred = parse_filter(text, RANGED.schema)
    flags = ZoneMaps(RANGED, bounds).flags(pred)
    true_rows, false_rows = evaluate(pred, RANGED), evaluate(Not(pred), RANGED)
    for p in range(bounds.size - 1):
        part = slice(bounds[p], bounds[p + 1])
        size = bounds[p + 1] - bounds[p]
        assert flags.may_true[p] or not true_rows[part].any()
        assert not flags.all_true[p] or true_rows[part].sum() == size
        assert flags.may_false[p] or not false_rows[part].any()
        assert not flags.all_false[p] or false_rows[part].sum() == size


def test_search_with_pair_filters_equals_brute_force() -> None:
    """Exact and all-probe searches with column pairs answer as brute force over
    the rows DuckDB selects; a workload holding them builds a layout."""
    table = _ranged_table(2000)
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((table.num_rows, 16)).astype(np.float32)
    queries = rng.standard_normal((6, 16)).astype(np.float32)
    filters = [
        "a < b",
        "d >= ts AND a > 3",
        "s = t",
        "a < b OR s > 'n20'",
        "NOT (ts > d)",
        "b <= a",
    ]
    index = hqi.build(vectors, table, workload=filters * 20 + ["a < 10", "s = 'n03'"] * 20)
    con = duckdb.connect()
    con.register("t", table.append_column("id", pa.array(np.arange(table.num_rows))))
    for k_exact in (True, False):
        opts = {"exact": True} if k_exact else {"nprobe": 10**6}
        result = index.search(queries, filters, k=5, **opts)
        for q, text in enumerate(filters):
            rows = [r[0] for r in con.execute(f"SELECT id FROM t WHERE {text}").fetchall()]
            dist = ((vectors[rows] - queries[q]) ** 2).sum(axis=1)
            expected = np.array(rows)[np.argsort(dist, kind="stable")[:5]]
            assert sorted(result.ids[q].tolist()) == sorted(expected.tolist()), text
    plans = index.explain(queries, filters)
    assert plans is not None


@pytest.mark.parametrize("pair", [("i", "f"), ("f", "i")])
@pytest.mark.parametrize("op", OPS)
def test_differences_of_edge_values_as_duckdb(edge_con, pair: tuple[str, str], op: str) -> None:
    """``i - f`` in doubles (integers past 2**53 made doubles first), and
    ``d - d`` in days, against DuckDB."""
    a, b = pair
    for number in ["0", "1", "-0.5", "2.5", "1e16"]:
        for text in [f"{a} - {b} {op} {number}", f"abs({a} - {b}) {op} {number}"]:
            assert _ids(text) == duckdb_ids(edge_con, text), text
    assert _ids(f"d - d {op} 0") == duckdb_ids(edge_con, f"d - d {op} 0")


def test_differences_read_as_tests_of_the_difference() -> None:
    schema = RANGED.schema
    assert str(parse_filter("a - a > 2.5", schema)) == "a - a >= 3"  # integers: exactly
    assert str(parse_filter("abs(d - d) <= 7", schema)) == "(d - d <= 7) AND (d - d >= -7)"
    assert str(parse_filter("(a - b) IS NULL", schema)) == "(a IS NULL) OR (b IS NULL)"
    with pytest.raises(FilterTypeError, match="two number columns or two date columns"):
        parse_filter("d - a > 1", schema)


@pytest.mark.parametrize("op", OPS)
def test_timestamp_dates_at_midnight_as_duckdb(edge_con, op: str) -> None:
    """``CAST(ts AS DATE)`` and ``date_trunc`` on timestamps at midnight and a
    microsecond either side (before 1970 too), and ``CAST(d AS TIMESTAMP)``,
    against DuckDB."""
    for day in ["1970-01-01", "1969-12-31", "2022-01-08", "2022-01-09"]:
        for text in [
            f"ts::DATE {op} DATE '{day}'",
            f"CAST(ts AS DATE) {op} TIMESTAMP '{day} 00:00:01'",
            f"CAST(d AS TIMESTAMP) {op} TIMESTAMP '{day} 00:00:00'",
            f"date_trunc('day', ts) {op} TIMESTAMP '{day} 00:00:00'",
            f"date_trunc('hour', ts) {op} TIMESTAMP '{day} 00:00:00.000001'",
            f"date_trunc('month', d) {op} DATE '{day}'",
        ]:
            assert _ids(text) == duckdb_ids(edge_con, text), text
