"""Filter semantics against DuckDB on the same Arrow table, NULLs included."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hqi.query import evaluate, parse_filter
from hqi.query.shapes import FilterParser
from strategies import STORE, TABLE, predicates


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.register("t", TABLE)
    yield connection
    connection.close()


def duckdb_ids(con: duckdb.DuckDBPyConnection, text: str) -> list[int]:
    return sorted(r[0] for r in con.execute(f"SELECT id FROM t WHERE {text}").fetchall())


def hqi_ids(text: str) -> list[int]:
    return np.flatnonzero(evaluate(parse_filter(text, STORE.schema), STORE)).tolist()


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(predicates)
def test_selection_equals_duckdb(con, text: str) -> None:
    assert hqi_ids(text) == duckdb_ids(con, text)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(predicates)
def test_canonical_text_round_trips(con, text: str) -> None:
    """str(predicate) is SQL that selects the same rows, in DuckDB and in hqi."""
    pred = parse_filter(text, STORE.schema)
    if pred is None:
        return
    assert duckdb_ids(con, str(pred)) == duckdb_ids(con, text)
    assert parse_filter(str(pred), STORE.schema) == pred


@settings(max_examples=150, deadline=None)
@given(st.lists(predicates, min_size=1, max_size=8))
def test_shape_cache_parses_like_sqlglot(texts: list[str]) -> None:
    parser = FilterParser(STORE.schema)
    for text in texts:
        assert parser.parse(text) == parse_filter(text, STORE.schema)


@pytest.mark.parametrize(
    "text",
    [
        "s = 'jazz'",
        "s = 'O''Brien'",
        "S <> 'rock'",  # column names are case-insensitive, as in DuckDB
        "i IN (1, NULL)",
        "i NOT IN (1, NULL)",
        "f > 1.5e1",
        "f > -3",
        "d < '2000-01-01'",  # a string literal against a DATE column
        "ts >= DATE '2021-01-01'",
        "NOT list_contains(tags, 'a')",
        "tags IS NOT NULL AND NOT b",
        "b IS NULL OR s IS NULL",
    ],
)
def test_documented_examples_match_duckdb(con, text: str) -> None:
    assert hqi_ids(text) == duckdb_ids(con, text)
