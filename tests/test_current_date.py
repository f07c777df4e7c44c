"""``current_date`` (``today()``): the local date, read once per search, as DuckDB reads it."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pytest

import hqi
from hqi.errors import FilterTypeError, UnsupportedFilterError
from hqi.query import ColumnStore, evaluate, intervals, parse_filter
from hqi.query.columns import normalize_table
from hqi.query.shapes import FilterParser

FILTERS = [
    "d >= current_date",
    "d = today()",
    "d > current_date - INTERVAL 30 DAY",
    "d <= CURRENT_DATE() + 7",
    "d BETWEEN current_date - 10 AND current_date",
    "d IN (current_date, current_date - 1) OR d IS NULL",
    "NOT (current_date <= d) AND g = 'a'",
    "ts >= current_date",
    "ts < current_date + INTERVAL 36 HOUR",
    "ts::DATE = current_date - 1",
    "g = 'b' AND ts < current_date",
]


def _table(today: dt.date, n: int = 3000) -> pa.Table:
    """Dates and timestamps around ``today``, some NULL."""
    rng = np.random.default_rng(0)
    days = [today + dt.timedelta(days=int(x)) for x in rng.integers(-60, 60, n)]
    hours = rng.integers(0, 24, n)
    stamps = [dt.datetime.combine(d, dt.time(int(h))) for d, h in zip(days, hours, strict=True)]
    missing = rng.random(n) < 0.05
    return normalize_table(
        pa.table(
            {
                "id": np.arange(n),
                "d": pa.array(days, pa.date32(), mask=missing),
                "ts": pa.array(stamps, pa.timestamp("us"), mask=missing[::-1].copy()),
                "g": rng.choice(["a", "b"], n).tolist(),
            }
        )
    )


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dt.date]]:
    """The local date, as a list whose last item the test sets."""
    days = [dt.date(2024, 3, 1)]
    monkeypatch.setattr(intervals, "_clock", lambda: days[-1])
    yield days


def test_current_date_selects_as_duckdb() -> None:
    """Against DuckDB's own ``current_date``, on rows around today (retried
    if the date turns during the comparison)."""
    for _ in range(3):
        today = dt.date.today()
        table = _table(today)
        store = ColumnStore(table)
        con = duckdb.connect()
        con.register("t", table)
        got, want = [], []
        for text in FILTERS:
            got.append(np.flatnonzero(evaluate(parse_filter(text, store.schema), store)).tolist())
            rows = con.execute(f"SELECT id FROM t WHERE {text} ORDER BY id").fetchall()
            want.append([r[0] for r in rows])
        duck_today = con.execute("SELECT current_date").fetchone()[0]
        con.close()
        if dt.date.today() == today == duck_today:
            for text, g, w in zip(FILTERS, got, want, strict=True):
                assert g == w, text
            assert all(0 < len(g) < len(table) for g in got)
            return
    pytest.fail("the date kept turning")  # pragma: no cover


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("d >= current_date", "d >= DATE '2024-03-01'"),
        ("d < today()", "d < DATE '2024-03-01'"),
        ("d > current_date - INTERVAL 1 MONTH", "d > DATE '2024-02-01'"),
        ("d <= CURRENT_DATE + 365", "d <= DATE '2025-03-01'"),
        ("ts >= current_date - INTERVAL 6 HOUR", "ts >= TIMESTAMP '2024-02-29 18:00:00'"),
        ("current_date > d", "d < DATE '2024-03-01'"),
    ],
)
def test_current_date_folds_to_the_date(clock: list[dt.date], text: str, folded: str) -> None:
    store = ColumnStore(_table(clock[-1], 10))
    assert str(parse_filter(text, store.schema)) == folded


def test_current_date_errors(clock: list[dt.date]) -> None:
    store = ColumnStore(_table(clock[-1], 10))
    with pytest.raises(UnsupportedFilterError, match="expected a literal"):
        parse_filter("year(d) = year(current_date)", store.schema)
    with pytest.raises(FilterTypeError, match="does not fit"):
        parse_filter("g = current_date", store.schema)
    for text in ["ts < now()", "ts < current_timestamp", "ts < get_current_timestamp()"]:
        with pytest.raises(UnsupportedFilterError, match="TIME ZONE in DuckDB"):
            parse_filter(text, store.schema)
    with pytest.raises(UnsupportedFilterError, match="with an argument"):
        parse_filter("d = current_date('UTC')", store.schema)


def test_parsed_filters_follow_the_date(clock: list[dt.date]) -> None:
    """The parser keeps a filter that reads the date for that date only; other
    filters stay cached as before; clear() forgets both."""
    store = ColumnStore(_table(clock[-1], 10))
    parser = FilterParser(store.schema)
    text = "d >= current_date - 1 AND g = 'a'"
    first = parser.parse(text)
    assert parser.parse(text) is first  # the same day: kept
    clock.append(dt.date(2024, 3, 2))
    second = parser.parse(text)
    assert str(second) == "(d >= DATE '2024-03-01') AND (g = 'a')" != str(first)
    assert parser.parse("g = 'a'") is parser.parse("g = 'a'")
    parser.clear()
    assert not parser._dated and not parser._texts


def test_one_date_per_search(clock: list[dt.date]) -> None:
    """A search's batch reads the date once: a clock that turns on every read
    still gives every filter of the batch the first date."""
    table = _table(clock[-1], 400)
    rng = np.random.default_rng(1)
    vectors = rng.random((400, 8), dtype=np.float32)
    index = hqi.build(vectors, table)
    days = (dt.date(2024, 3, 1) + dt.timedelta(days=i) for i in itertools.count())
    intervals._clock = lambda: next(days)  # restored by the fixture
    texts = [f"d >= current_date - {i}" for i in range(20)]
    preds, _ = index._distinct(texts, len(texts))
    assert {str(p).split("'")[1] for p in preds} == {
        str(dt.date(2024, 3, 1) - dt.timedelta(days=i)) for i in range(20)
    }
    # Searches answer as the literal dates of the day they ran on.
    queries = rng.random((20, 8), dtype=np.float32)
    for _ in range(2):
        with intervals.one_day() as day:
            got = index.search(queries, texts, k=5, exact=True)
        literal = [f"d >= DATE '{day - dt.timedelta(days=i)}'" for i in range(20)]
        want = index.search(queries, literal, k=5, exact=True)
        np.testing.assert_array_equal(got.ids, want.ids)
