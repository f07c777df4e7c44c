"""Filter semantics against DuckDB on the same Arrow table, NULLs included."""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from hqi.errors import FilterError, FilterTypeError, UnsupportedFilterError
from hqi.execution.exact import filter_rows
from hqi.execution.kernels import count_holding, rows_holding
from hqi.execution.topk import RowMasks, TopK
from hqi.layout import ZoneMaps, zonemap
from hqi.query import ColumnStore, evaluate, parse_filter, patterns, shapes
from hqi.query.columns import StringData, normalize_table
from hqi.query.compiled import AttributeMatrix, ProgramTable, compile_filter, program_mask
from hqi.query.dateparts import PARTS
from hqi.query.predicate import OPERATORS, FoldedRange, Glob, Like, atoms
from hqi.query.shapes import FilterParser, shape_of
from strategies import (
    STORE,
    STRINGS,
    TABLE,
    TAGS,
    bounded_predicates,
    coalesced,
    duckdb_ids,
    duckdb_with,
    glob,
    like,
    oracle_settings,
    predicates,
    time_literals,
)

# The module (the package re-exports its function `evaluate` under the same name).
query_evaluate = importlib.import_module("hqi.query.evaluate")


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    yield from duckdb_with("t", TABLE)


def hqi_ids(text: str) -> list[int]:
    return np.flatnonzero(evaluate(parse_filter(text, STORE.schema), STORE)).tolist()


@oracle_settings(300)
@given(predicates)
def test_selection_equals_duckdb(con, text: str) -> None:
    assert hqi_ids(text) == duckdb_ids(con, text)


@oracle_settings(200)
@given(glob())
def test_glob_selection_equals_duckdb(con, text: str) -> None:
    assert hqi_ids(text) == duckdb_ids(con, text)
    pred = parse_filter(text, STORE.schema)
    assert pred is not None and parse_filter(str(pred), STORE.schema) == pred


# Random GLOB patterns of syntax pieces (sets, negation, ranges, a leading
# ']', a trailing '-', escapes, unclosed brackets) in every order, matched
# against every value up to three characters long.
_GLOB_PIECES = [
    "[",
    "[!",
    "[^",
    "]",
    "-",
    "a-",
    "-]",
    "b-a",
    "[b-a]",
    "a",
    "b",
    "é",
    "\\",
    "*",
    "?",
    "^",
    ",",
    "+",
]
_GLOB_VALUES = sorted(
    {"".join(v) for n in range(4) for v in itertools.product("ab-]![\\*^é,\n", repeat=n)}
)


@pytest.fixture(scope="module")
def glob_con() -> Iterator[duckdb.DuckDBPyConnection]:
    yield from duckdb_with("v", pa.table({"v": _GLOB_VALUES}))


@settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(_GLOB_PIECES), max_size=6).map("".join))
def test_glob_patterns_match_as_duckdb(glob_con, pattern: str) -> None:
    rows = glob_con.execute("SELECT v GLOB ? FROM v ORDER BY v", [pattern]).fetchall()
    dictionary = np.array(_GLOB_VALUES, dtype=object)
    hits = patterns.pattern_hits(Glob("v", pattern), dictionary)
    assert hits.tolist() == [r[0] for r in rows]


# Values whose lower() / upper() tie ('SS' and 'ss'), change length (lower('İ')
# is 'i̇'), fold to letters that sort apart ('ı', 'ſ') or do not fold ('ß').
_FOLD_VALUES = sorted(
    {
        *"aAzZiIıİsSſßẞσΣςéÉÿŸǅǆǄ",
        "",
        "SS",
        "ss",
        "Ss",
        "the who",
        "The Who",
        "THE",
        "a b",
        "\U0010ffff",
    }
)


def test_folded_ranges_select_as_duckdb() -> None:
    """``lower(col)`` / ``upper(col)`` compared by ``<``, ``<=``, ``>`` and ``>=``
    with every value, every folded value and text around them select what
    DuckDB selects (bounds equal to a folded value decide ``<`` against ``<=``)."""
    con = duckdb.connect()
    con.register("v", pa.table({"v": _FOLD_VALUES}))
    folds = con.execute("SELECT lower(v), upper(v) FROM v").fetchall()
    bounds = sorted({*_FOLD_VALUES, *(f for pair in folds for f in pair), "m", "ss ", "i\u0307"})
    dictionary = np.array(_FOLD_VALUES, dtype=object)
    for fold, op, bound in itertools.product(("lower", "upper"), ("<", "<=", ">", ">="), bounds):
        rows = con.execute(f"SELECT {fold}(v) {op} ? FROM v ORDER BY v", [bound]).fetchall()
        hits = patterns.pattern_hits(FoldedRange("v", op, bound, fold), dictionary)
        assert hits.tolist() == [r[0] for r in rows], (fold, op, bound)
    con.close()


@oracle_settings(200)
@given(bounded_predicates)
@example("lower(name) BETWEEN NULL AND NULL")  # TRUE nowhere: no candidate rows
def test_candidate_rows_evaluation_equals_duckdb(con, monkeypatch, text: str) -> None:
    """With no size limit, a filter an inverted index bounds is evaluated on its
    candidate rows only: they hold every selected row and the selection is DuckDB's.
    A filter that is FALSE or NULL throughout (a constant) has none.
    (Candidates may repeat, as in ``s = 'jazz' OR s IN ('jazz', 'rock')``, so
    "no limit" is more than the store's rows.)"""
    no_limit = 1 << 40
    monkeypatch.setattr(query_evaluate, "SPARSE_MIN_ROWS", 0)
    monkeypatch.setattr(query_evaluate, "SPARSE_FRACTION", no_limit / STORE.num_rows)
    rows = query_evaluate.candidates(parse_filter(text, STORE.schema), STORE, no_limit)
    assert rows is not None
    expected = duckdb_ids(con, text)
    assert set(expected) <= set(rows.tolist())
    assert hqi_ids(text) == expected
    selected = query_evaluate.sparse_rows(parse_filter(text, STORE.schema), STORE)
    assert selected is not None and selected.tolist() == expected  # ascending, no repeats


def test_candidate_rows_come_from_inverted_indexes() -> None:
    s = STORE["s"]
    assert s.rows_with("jazz").tolist() == np.flatnonzero(s.codes == s.code_of["jazz"]).tolist()
    assert s.rows_with("not there").size == 0
    pred = parse_filter("s = 'jazz' AND i > 0", STORE.schema)
    assert query_evaluate.candidates(pred, STORE, STORE.num_rows).tolist() == (
        s.rows_with("jazz").tolist()
    )
    # The smallest bound of an AND (a list column's postings bound list_contains),
    # narrowed to the rows of its other list_contains children's postings; an
    # OR needs every branch bounded; limits hold.
    both = parse_filter("list_contains(tags, 'live') AND s IN ('jazz', 'rock')", STORE.schema)
    found = query_evaluate.candidates(both, STORE, STORE.num_rows)
    live_rows = set(STORE["tags"].rows_with("live").tolist())
    in_rows = set(s.rows_with("jazz").tolist()) | set(s.rows_with("rock").tolist())
    assert set(found.tolist()) == live_rows & in_rows
    assert found.size == len(live_rows & in_rows)  # s's rows do not repeat
    tags2 = parse_filter(
        "list_contains(tags, 'live') AND i > 0 AND list_contains(tags, 'remix')", STORE.schema
    )
    found = query_evaluate.candidates(tags2, STORE, STORE.num_rows)
    remix_rows = set(STORE["tags"].rows_with("remix").tolist())
    assert set(found.tolist()) == live_rows & remix_rows and 0 < found.size < len(live_rows)
    assert np.flatnonzero(evaluate(tags2, STORE)).tolist() == sorted(
        r for r in set(found.tolist()) if evaluate(tags2, STORE)[r]
    )
    live = parse_filter("list_contains(tags, 'live')", STORE.schema)
    assert sorted(set(query_evaluate.candidates(live, STORE, STORE.num_rows).tolist())) == (
        np.flatnonzero(evaluate(live, STORE)).tolist()
    )
    assert (
        query_evaluate.candidates(parse_filter("s = 'jazz' OR i > 0", STORE.schema), STORE, 10**6)
        is None
    )
    assert query_evaluate.candidates(pred, STORE, s.count("jazz") - 1) is None
    # LIKE: the postings of the matching values (here 'The Who' and 'the who').
    who = parse_filter("name ILIKE 'the w%'", STORE.schema)
    names = STORE["name"]
    expected = sorted(names.rows_with("The Who").tolist() + names.rows_with("the who").tolist())
    assert sorted(query_evaluate.candidates(who, STORE, STORE.num_rows).tolist()) == expected
    assert query_evaluate.candidates(who, STORE, len(expected) - 1) is None


def test_integer_index_names_equal_rows() -> None:
    """An integer column's sorted index: each value's rows ascending, NULLs
    never, values outside the column's type none (no overflow)."""
    from hqi.query.columns import ValueData

    values = np.array([5, 3, 5, -2, 7, 5, 3], dtype=np.int8)
    valid = np.array([1, 1, 1, 0, 1, 1, 1], dtype=bool)
    data = ValueData(values, valid)
    assert data.rows_equal(5).tolist() == [0, 2, 5]
    assert data.rows_equal(3).tolist() == [1, 6]
    assert data.rows_equal(-2).size == 0  # a NULL row
    assert data.rows_equal(200).size == 0 and data.rows_equal(-(2**70)).size == 0
    for column in ("i", "d", "ts"):  # the store's own: every value's rows
        col = STORE[column]
        valid = np.ones(col.values.size, dtype=bool) if col.valid is None else col.valid
        for v in np.unique(col.values[valid]):
            expected = np.flatnonzero((col.values == v) & valid)
            assert col.rows_equal(int(v)).tolist() == expected.tolist()


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


# Literals put into the slots of a drawn filter's shape: values of every column
# kind, dates valid and not, numbers in every notation, quotes doubled.
_SLOT_STRINGS = [*STRINGS, *TAGS, "2001-02-03", "2001-02-30", "2021-01-01 10:00:00", "1", "a''b"]
_SLOT_NUMBERS = ["0", "7", "1990", "2.5", "1e3", "1.5E-2", ".5", "3.", "99999999999999999999"]


def _with_literals(shape: str, strings: list[str], numbers: list[str]) -> str:
    """``shape`` (:func:`~hqi.query.shapes.shape_of`) with its slots filled."""
    out, s, n = [], iter(strings), iter(numbers)
    for i, piece in enumerate(shape.split("'?'")):
        if i:
            out.append(f"'{next(s)}'")
        for j, part in enumerate(piece.split("#")):
            out.append(f"{next(n)}{part}" if j else part)
    return "".join(out)


def _parsed(parse, text: str) -> object:
    """parse(text), or the error it raises (type, message, position)."""
    try:
        return parse(text)
    except FilterError as err:
        return type(err), err.message, err.position


@settings(max_examples=150, deadline=None)
@given(predicates, st.data())
def test_filters_of_one_shape_parse_like_sqlglot(text: str, data: st.DataObject) -> None:
    """Filters that differ only in their literals reuse their shape's tree and the
    tests already checked: each parses as sqlglot parses it, errors included
    (a later filter's new literal may not fit its column)."""
    scanned = shape_of(text)
    assume(scanned is not None and scanned[1])
    shape, lits = scanned
    kinds = [kind for kind, _ in lits]
    texts = [text]
    for _ in range(data.draw(st.integers(1, 6))):
        chosen = [
            data.draw(st.sampled_from(_SLOT_STRINGS if k == "s" else _SLOT_NUMBERS)) for k in kinds
        ]
        # Keep some literals, so that tests repeat across filters.
        keep = data.draw(st.lists(st.booleans(), min_size=len(lits), max_size=len(lits)))
        values = [old if k else new for (_, old), new, k in zip(lits, chosen, keep, strict=True)]
        strings = [
            v.replace("'", "''") for (kind, _), v in zip(lits, values, strict=True) if kind == "s"
        ]
        texts.append(
            _with_literals(
                shape,
                strings,
                [v for (kind, _), v in zip(lits, values, strict=True) if kind == "n"],
            )
        )
    parser = FilterParser(STORE.schema)
    for t in data.draw(st.permutations(texts)):
        assert _parsed(parser.parse, t) == _parsed(lambda x: parse_filter(x, STORE.schema), t)


@pytest.mark.parametrize(
    "texts",
    [
        ["i > 3 AND s = 'jazz'", "i > 5 AND s = 'rock'", "i > 5.5 AND s = 'O''Brien'"],
        ["d < DATE '2001-01-01'", "d < DATE '1999-12-31'", "d < DATE '2001-02-30'"],
        ["ts >= DATE '2021-01-01'", "ts >= DATE '2021-06-01'"],  # a timestamp: not direct
        ["f >= 1.5 OR NOT b", "f >= 2 OR NOT b", "f >= 1e1 OR NOT b"],
        ["'jazz' = s", "'rock' = s"],  # the literal first: checked each time
        ["s = 'x' AND i = 1", "s = 'x' AND i = 2", "s = 'x' AND s = 'y'"],
        ["i BETWEEN 1 AND 5", "i BETWEEN 2.5 AND 1e1", "i BETWEEN 3 AND 3"],
        [
            "d BETWEEN DATE '2001-01-01' AND DATE '2002-01-01'",
            "d BETWEEN DATE '2003-01-01' AND DATE '2003-02-30'",
        ],
        ["d BETWEEN '2001-01-01' AND '2002-01-01'", "d BETWEEN '2003-01-01' AND '2004-01-01'"],
        ["f BETWEEN -1 AND 2", "f BETWEEN -3.5 AND 2"],  # a negative bound: not a literal
        [  # INTERVAL's number is a string in sqlglot's tree, without a position
            "d >= DATE '2020-01-01' - INTERVAL 30 DAY AND s = 'jazz'",
            "d >= DATE '2021-05-01' - INTERVAL 45 DAY AND s = 'rock'",
            "d >= DATE '2021-05-01' - INTERVAL 1.5 DAY AND s = 'rock'",
            "d >= DATE '2021-05-31' - INTERVAL 3 MONTH AND s = 'rock'",
        ],
    ],
)
def test_comparisons_of_a_shape_take_new_literals(texts: list[str]) -> None:
    """A test comparing a column with one literal is checked once per shape;
    later literals make its predicate directly, as the check would have."""
    parser = FilterParser(STORE.schema)
    for text in texts + texts[::-1]:
        assert _parsed(parser.parse, text) == _parsed(
            lambda x: parse_filter(x, STORE.schema), text
        ), text
        parser._texts.clear()  # the shape and its tests stay


def test_interval_numbers_keep_their_shape() -> None:
    """``INTERVAL 30 DAY``: the shape's tree is kept (its literals found in the
    order of the text), so later filters of the shape are not parsed anew."""
    parser = FilterParser(STORE.schema)
    texts = [f"d >= DATE '2020-01-0{i}' - INTERVAL {i} DAY AND i = {i}" for i in range(1, 6)]
    for text in texts:
        assert parser.parse(text) == parse_filter(text, STORE.schema)
    (entry,) = parser._shapes.values()
    assert entry is not None and len(entry.nodes) == 3


def test_shape_of_cuts_at_quotes_like_the_character_scan() -> None:
    """The fast scan (quotes and a regular expression) and the character scan
    agree on simple texts; the rest go to the character scan or get no shape."""
    for text in [
        "genre = 'jazz' AND year >= 1990",
        "released >= DATE '2004-02-15' AND type = 'song'",
        "popularity BETWEEN 10 AND 2.5e3 AND tag2 = 'x1'",
        "s = '' AND t = 'a b  c'",
        "x > .5 AND  y\t<  -3",
        "s = 'O''Brien'",
        '"my col" = 1',
        "s = 'é' AND i = 1",
    ]:
        assert shape_of(text) == shapes._shape_by_characters(text), text
    for text in ["s = 'open", "i = 1 -- 2", "i = 1 /* 2 */", "i # 1", "s = 'a' AND t = 'b"]:
        assert shape_of(text) is None, text


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
        "name ILIKE 'the %'",
        "starts_with(name, 'The ')",
        "name NOT LIKE '%!%%' ESCAPE '!'",
        "name ~~ '50%'",
        "regexp_matches(name, '^the', 'i')",
        "name SIMILAR TO '[a-z]_[a-z]'",
        "list_has_any(tags, ['live', 'remix'])",
        "tags && ['a'] AND NOT list_has_all(tags, ['a', 'b'])",
        "year(d) BETWEEN 1990 AND 2000",
        "extract(year FROM ts) IN (2020, 2021)",
        "(i > 1) IS NOT TRUE",
        "b IS FALSE",
        "(i IN (1, NULL)) IS NULL",
        "i IS DISTINCT FROM 2",
        "NULL IS NOT DISTINCT FROM s",
        "year(d) IS DISTINCT FROM 1990",
        "lower(name) = 'the who'",
        "upper(name) IN ('THE WHO', 'I', NULL)",
        "lower(name) != 'THE WHO'",
        "ucase(name) LIKE 'S%'",
        "starts_with(lower(name), 'the')",
        "regexp_matches(upper(name), '^[A-Z ]+$')",
        "name GLOB 'The *'",
        "name NOT GLOB '*[!a-z]*'",
        "lower(s) GLOB '[a-z]?z*'",
        "name GLOB '50\\%*'",
        "lower(name) IS NOT DISTINCT FROM 'ß'",
        "lower(name) < 'the'",
        "upper(s) BETWEEN 'A' AND 'M'",
        "NOT ('ss' >= lower(name))",
        "month(d) BETWEEN 6 AND 8",
        "dayofweek(ts) IN (0, 6)",
        "extract(hour FROM ts) >= 18",
        "date_part('doy', d) <= 31 AND isodow(d) != 7",
        "day(d) IN (1, NULL)",
        "quarter(ts) = 4 AND year(ts) = 2021",
        "month(d) IS NOT DISTINCT FROM 2",
        "week(d) = 1 OR weekofyear(ts) >= 52",
        "extract(week FROM d) BETWEEN 50 AND 53",
        "isoyear(d) = 2020 OR yearweek(ts) >= 202053",
        "yearweek(d) BETWEEN 199952 AND 200001",
        "coalesce(f, 0) >= 3",
        "0 = coalesce(f, 99999999999999999999)",  # an integer beyond int64, for a double
        "ifnull(s, 'jazz') = 'jazz'",
        "NOT coalesce(b, TRUE)",
        "coalesce(i, 0) * 2 + 1 > 5",
        "lower(coalesce(name, 'x')) LIKE 'the%'",
        "year(coalesce(d, DATE '2000-06-01')) = 2000",
        "i + 1 IS NULL",
        "i < f",
        "d <= ts AND s != name",
        "f BETWEEN i AND 5",
        "s IS NOT DISTINCT FROM name",
        "len(tags) >= 2",
        "length(name) BETWEEN 1 AND 3 AND strlen(name) > 3",
        "array_length(tags) IN (0, 3)",
        "NOT (char_length(s) > 4.5)",
        "i % 2 = 0",
        "i % 3 IN (1, -1)",
        "NOT (i % -4 BETWEEN 0 AND 1)",
    ],
)
def test_documented_examples_match_duckdb(con, text: str) -> None:
    assert hqi_ids(text) == duckdb_ids(con, text)


def _narrow_table() -> pa.Table:
    """Columns whose encodings are narrow: int8 values, int16 days and codes."""
    rng = np.random.default_rng(11)
    n = 2_000
    names = [f"artist {i:03d}" for i in range(300)]  # 300 codes: int16
    return normalize_table(
        pa.table(
            {
                "id": pa.array(np.arange(n)),
                "small": pa.array(rng.integers(-100, 101, n), pa.int64(), mask=rng.random(n) < 0.1),
                "day": pa.array(
                    (np.datetime64("1970-01-01") + rng.integers(0, 30_000, n)).astype(
                        "datetime64[D]"
                    ),
                    pa.date32(),
                ),
                "artist": pa.array(rng.choice(names, n).tolist(), mask=rng.random(n) < 0.1),
                "wide": pa.array(rng.integers(-(2**40), 2**40, n), pa.int64()),
            }
        )
    )


NARROW_FILTERS = [
    "small > 127",
    "small < 128",
    "small >= -129",
    "small = 300",
    "small != 300",
    "small <= 99.5",
    "small > -1e10",
    "small IN (1000, 5, -100)",
    "small NOT IN (1000, 5)",
    "small < 9223372036854775807",
    "day < DATE '2100-01-01'",
    "day >= DATE '2030-06-01'",
    "day > DATE '1900-01-01' AND day < DATE '1990-01-01'",
    "month(day) = 2",
    "dayofweek(day) IN (0, 6)",
    "artist = 'artist 250'",
    "artist != 'artist 250'",
    "artist IN ('artist 001', 'artist 299', 'nobody')",
    "artist >= 'artist 200'",
    "wide > 1099511627000",
    "wide < 0 AND small > 0",
]


@pytest.mark.parametrize("text", NARROW_FILTERS)
def test_narrow_encodings_compare_exactly(text: str) -> None:
    """Codes, integers and dates are stored in narrow types; literals outside
    their range still compare exactly (DuckDB), and zone maps over the narrow
    values never route a qualifying row away."""
    table = _narrow_table()
    store = ColumnStore(table)
    assert store["small"].values.dtype == np.int8
    assert store["day"].values.dtype == np.int16
    assert store["artist"].codes.dtype == np.int16
    assert store["wide"].values.dtype == np.int64
    con = duckdb.connect()
    con.register("t", table)
    expected = sorted(r[0] for r in con.execute(f"SELECT id FROM t WHERE {text}").fetchall())
    pred = parse_filter(text, store.schema)
    mask = evaluate(pred, store)
    assert np.flatnonzero(mask).tolist() == expected
    cuts = np.arange(0, table.num_rows + 1, 250)
    flags = ZoneMaps(store, cuts).flags(pred)
    for p in range(cuts.size - 1):
        hits = int(mask[cuts[p] : cuts[p + 1]].sum())
        if hits:
            assert flags.may_true[p]
        if flags.all_true[p]:
            assert hits == cuts[p + 1] - cuts[p]


MATRIX = AttributeMatrix(STORE)


def _kernel_selection(program) -> np.ndarray:
    """The rows the executor's compiled pass lets a query take under ``program``
    (k = every row, so each row is tested)."""
    table = ProgramTable.of([program], MATRIX)
    n = STORE.num_rows
    top = TopK(1, n)
    masks = RowMasks.of_groups([1], [None], [0], [0], table)
    scores = np.arange(n, dtype=np.float32)[:, None]
    top.push_scores(np.zeros(1, dtype=np.int64), scores, np.arange(n, dtype=np.int64), masks=masks)
    pos, _ = top.finish()
    return np.sort(pos[0][pos[0] >= 0])


@oracle_settings(300)
@given(predicates)
def test_compiled_filters_select_what_evaluate_does(text: str) -> None:
    """A filter compiled for the executor (a conjunction of clauses of interval
    atoms) selects exactly the rows :func:`evaluate` does, in NumPy and in the
    compiled pass; the planner's batched counts and zone flags agree."""
    pred = parse_filter(text, STORE.schema)
    program = compile_filter(pred, MATRIX)
    if program is None:
        return
    want = evaluate(pred, STORE)
    np.testing.assert_array_equal(program_mask(program, MATRIX), want)
    np.testing.assert_array_equal(_kernel_selection(program), np.flatnonzero(want))
    # The planner's batched count (atom by atom over row segments), on uneven
    # segments, one of them empty, with the program listed twice.
    seg = np.array([0, 37, 37, 120, STORE.num_rows], dtype=np.int64)
    table = ProgramTable.of([program, program], MATRIX)
    pair_prog, pair_part = np.array([1, 0, 0, 0, 1]), np.array([3, 0, 1, 2, 2])
    out = np.empty(pair_prog.size, dtype=np.int64)
    columns = np.ascontiguousarray(MATRIX.values.T)
    count_holding(columns, seg, pair_prog, pair_part, table.bounds, table.col, table.group,
                  table.lo, table.hi, out)  # fmt: skip
    per_segment = [int(want[a:b].sum()) for a, b in itertools.pairwise(seg.tolist())]
    assert out.tolist() == [per_segment[p] for p in pair_part.tolist()]
    # The flat pass's rows of each program (one listed twice), found in one call.
    rows, offsets = rows_holding(MATRIX.by_column, table.bounds, table.col, table.group,
                                 table.lo, table.hi, *MATRIX.ranges)  # fmt: skip
    for i in range(2):
        np.testing.assert_array_equal(rows[offsets[i] : offsets[i + 1]], np.flatnonzero(want))
    # The batched zone-map flags of programs are the filter's flags. A clause's
    # intervals on one column are merged, so its "every row" flag may be finer
    # than the tree's OR of its atoms' (never coarser, and never wrong).
    cuts = np.array([0, 0, 40, 41, 42, 43, 44, 100, 260, STORE.num_rows])
    zones = ZoneMaps(STORE, cuts)
    every = np.arange(zones.num_parts)
    may, whole = zones.program_flags(table, every % 2, every)
    flags = zones.flags(pred)
    np.testing.assert_array_equal(may, flags.may_true)
    assert not (flags.all_true & ~whole).any()
    for p in range(zones.num_parts):  # against the rows themselves
        assert may[p] or not want[cuts[p] : cuts[p + 1]].any()
        assert not whole[p] or want[cuts[p] : cuts[p + 1]].all()
    # Split into runs of pairs over threads (uneven: 7 pairs, 3 threads): the same flags.
    with mock.patch.object(zonemap, "PARALLEL_FLAG_PAIRS", 1):
        split = zones.program_flags(table, every % 2, every, threads=3)
    np.testing.assert_array_equal(split[0], may)
    np.testing.assert_array_equal(split[1], whole)
    # The grid of zones inside coarser partitions (two programs, here the same
    # one): True where a partition is covered, False where it cannot hold, else
    # the zone's own flag; on one thread and split over two (uneven rows).
    outer = np.array([0, 0, 1, 1, 1, 1, 1, 1, 2])  # each zone's partition (3 partitions)
    part_may = np.array([[True, False, False], [True, True, True]])  # [0, 2]: empty
    part_whole = np.array([[False, False, True], [True, False, False]])
    grid_want = np.where(part_whole[:, outer] | ~part_may[:, outer], part_whole[:, outer],
                         part_may[:, outer] & may[None, :])  # fmt: skip
    for threads, pairs in ((1, 1 << 16), (2, 1)):
        with mock.patch.object(zonemap, "PARALLEL_FLAG_PAIRS", pairs):
            grid = zones.program_zone_may(table, part_may, part_whole, outer, threads)
        np.testing.assert_array_equal(grid, grid_want)


@pytest.mark.parametrize("column", ["d", "ts"])
@pytest.mark.parametrize("part", sorted(PARTS))
def test_compiled_date_parts_select_and_route_exactly(column: str, part: str) -> None:
    """A compiled date part (an interval test of a column of the part's codes)
    selects the rows evaluate does, in NumPy and in the executor's pass, and
    its zone flags are exact: a zone may hold it exactly when one of its rows
    does, and is covered exactly when all are (rows sorted by the part, zones
    of 5 rows, so that many hold one value alone)."""
    timestamp = column == "ts"
    order = np.argsort(STORE.date_part(column, part, timestamp=timestamp), kind="stable")
    store = ColumnStore(TABLE.take(order))
    matrix = AttributeMatrix(store)
    zones = ZoneMaps(store, np.append(np.arange(0, store.num_rows, 5), store.num_rows))
    low, high = PARTS[part]
    middle = (low + high) // 2
    texts = [f"{part}({column}) = {v}" for v in (low, middle, high)]
    texts += [
        f"{part}({column}) BETWEEN {low + 1} AND {middle}",
        f"{part}({column}) NOT IN ({low}, {high})",
        f"{part}({column}) IS DISTINCT FROM {middle} AND s IS NOT NULL",
    ]
    for text in texts:
        pred = parse_filter(text, store.schema)
        program = compile_filter(pred, matrix)
        assert program is not None, text
        want = evaluate(pred, store)
        np.testing.assert_array_equal(program_mask(program, matrix), want)
        table = ProgramTable.of([program], matrix)
        rows, _ = rows_holding(matrix.by_column, table.bounds, table.col, table.group,
                               table.lo, table.hi, *matrix.ranges)  # fmt: skip
        np.testing.assert_array_equal(rows, np.flatnonzero(want))
        every = np.arange(zones.num_parts)
        may, whole = zones.program_flags(table, np.zeros_like(every), every)
        held = np.add.reduceat(want, zones.bounds[:-1])
        if "s IS" not in text:  # one atom: exact
            np.testing.assert_array_equal(may, held > 0, err_msg=text)
            np.testing.assert_array_equal(whole, held == zones.sizes, err_msg=text)
        else:
            assert (may | (held == 0)).all() and (~whole | (held == zones.sizes)).all()


def test_part_columns_are_added_once_on_first_need() -> None:
    """A date part's column joins the matrix when a filter first needs it, once
    however many threads ask at the same time; programs compiled before keep
    their columns, and the column-by-column views follow the new width."""
    matrix = AttributeMatrix(STORE)
    width = matrix.values.shape[1]
    before = compile_filter(parse_filter("i = 1", STORE.schema), matrix)
    assert before is not None
    old = ProgramTable.of([before], matrix)
    texts = [f"{part}(ts) = 1" for part in sorted(PARTS)] * 4
    with ThreadPoolExecutor(4) as pool:
        programs = list(pool.map(lambda t: compile_filter(parse_filter(t, STORE.schema), matrix),
                                 texts))  # fmt: skip
    assert matrix.values.shape[1] == width + len(PARTS)
    assert sorted(int(p.col[0]) for p in programs[: len(PARTS)]) == list(
        range(width, width + len(PARTS))
    )
    assert matrix.by_column.shape == (width + len(PARTS), STORE.num_rows)
    assert matrix.ranges[0].shape == (width + len(PARTS),)
    np.testing.assert_array_equal(matrix.values[:, :width], old.attrs)
    new = ProgramTable.of([before, *programs], matrix)
    assert new.columns[: len(old.columns)] == old.columns
    for program, text in zip(programs, texts, strict=True):
        want = evaluate(parse_filter(text, STORE.schema), STORE)
        np.testing.assert_array_equal(program_mask(program, matrix), want)


@pytest.mark.parametrize(
    ("text", "compiles"),
    [
        ("s = 'jazz' AND i BETWEEN -2 AND 3", True),
        ("NOT b AND f >= 1.5 AND d < DATE '2000-01-01'", True),
        ("s NOT IN ('jazz', 'rock') AND ts IS NOT NULL", True),
        ("NOT (i = 1 OR s = 'zz')", True),  # De Morgan: a conjunction
        ("i IS NULL AND s != 'jazz'", True),
        ("TRUE", True),
        ("s = 'jazz' OR i = 1", True),  # one clause of two columns
        ("list_contains(tags, 'live') AND i = 1", True),  # tags: a bit set
        ("NOT list_contains(tags, 'live') AND tags IS NOT NULL", True),
        ("list_contains(tags, 'live') OR i = 1", True),
        ("NOT (i = 1 AND s = 'zz')", True),  # De Morgan: one clause
        ("s = 'jazz' OR (i = 1 AND f > 2)", True),  # two clauses
        ("tags IS NULL", True),
        ("b IS NOT TRUE AND (i > 2) IS FALSE", True),  # three-valued tests: clauses too
        ("i IS DISTINCT FROM 3 AND s IS NOT DISTINCT FROM NULL", True),
        # 2**6 clauses in conjunctive normal form: more than MAX_INTERVALS
        (" OR ".join(f"(i = {v} AND f > {v})" for v in range(6)), False),
        ("month(d) = 1", True),  # a column of the part's values
        ("i = 1 AND dayofweek(ts) = 0", True),
        ("NOT (month(d) IN (1, 3, 5) OR hour(ts) BETWEEN 6 AND 18) AND s = 'jazz'", True),
        ("month(d) IS DISTINCT FROM 2 AND day(d) IS NOT DISTINCT FROM NULL", True),
    ],
)
def test_which_filters_compile(text: str, compiles: bool) -> None:
    pred = parse_filter(text, STORE.schema)
    program = compile_filter(pred, MATRIX)
    assert (program is not None) == compiles
    if program is not None:
        np.testing.assert_array_equal(program_mask(program, MATRIX), evaluate(pred, STORE))


def test_compiled_programs_are_cached_within_a_bound(monkeypatch) -> None:
    """compile_filter caches programs per matrix, up to PROGRAM_CACHE of them:
    the same filter gives the same program; past the bound the cache starts
    over and programs stay right."""
    from hqi.query import compiled

    matrix = AttributeMatrix(STORE)
    monkeypatch.setattr(compiled, "PROGRAM_CACHE", 2)
    texts = ["i = 1", "s = 'jazz' OR i = 2", "f > 1.5 AND NOT b", "i = 1"]
    programs = [compile_filter(parse_filter(t, STORE.schema), matrix) for t in texts]
    assert programs[0] is not None and len(matrix._programs) <= 2
    for text, program in zip(texts, programs, strict=True):
        want = evaluate(parse_filter(text, STORE.schema), STORE)
        np.testing.assert_array_equal(program_mask(program, matrix), want)
    again = parse_filter(texts[2], STORE.schema)
    assert compile_filter(again, matrix) is compile_filter(again, matrix)


@settings(max_examples=200, deadline=None)
@given(st.lists(predicates, min_size=1, max_size=6))
def test_conjunctions_compile_from_their_kept_tests_as_in_full(texts: list[str]) -> None:
    """A conjunction's program is put together from its tests' kept intervals
    (kept across filters; a comparison's made directly, ``_test_rows``): the
    same program as compiling it whole, and None exactly when that is."""
    from hqi.query import compiled

    matrix = AttributeMatrix(STORE)
    for text in texts:
        pred = parse_filter(text, STORE.schema)
        whole = compiled._program(
            compiled._clause_rows(compiled._Compiler(matrix).clauses(pred, False))
            if pred is not None
            else []
        )
        kept = compiled._compile(pred, matrix)
        assert (kept is None) == (whole is None), text
        if kept is not None and whole is not None:
            got, want = np.array(kept.atoms).reshape(-1, 4), np.array(whole.atoms).reshape(-1, 4)
            np.testing.assert_array_equal(got, want)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.from_regex(r"\A[0-9]{0,4}(\.[0-9]{0,3})?([eE][+-]?[0-9]{0,3})?\Z"),
        st.text(alphabet="0123456789.eE+-_ xinfa", max_size=8),
    )
)
def test_number_literals_read_as_int_then_float(text: str) -> None:
    """``_number`` (its shortcut: a point or an exponent goes straight to
    ``float``) reads what ``int``, failing that ``float``, reads, and raises
    where both do."""
    from hqi.query.parser import _number

    def reference(t: str) -> int | float:
        try:
            return int(t)
        except ValueError:
            return float(t)

    try:
        want: int | float | None = reference(text)
    except ValueError:
        want = None
    if want is None:
        with pytest.raises(ValueError):
            _number(text)
        return
    got = _number(text)
    assert type(got) is type(want) and (got == want or (got != got and want != want)), text


def test_integers_beyond_float64_do_not_compile() -> None:
    """A column with integers float64 cannot hold exactly stays out of the matrix
    (its filters keep masks); literals beyond 2**53 do not compile either."""
    big = 2**60
    store = ColumnStore(pa.table({"n": pa.array([big, big + 1, -3], pa.int64()), "m": [1, 2, 3]}))
    matrix = AttributeMatrix(store)
    assert "n" not in matrix.column_index and "m" in matrix.column_index
    assert compile_filter(parse_filter(f"n = {big + 1}", store.schema), matrix) is None
    assert compile_filter(parse_filter(f"m < {big + 1}", store.schema), matrix) is None
    program = compile_filter(parse_filter("m >= 2", store.schema), matrix)
    assert program is not None
    np.testing.assert_array_equal(program_mask(program, matrix), [False, True, True])


def test_list_columns_compile_as_bit_sets_up_to_the_limit() -> None:
    """A list column of at most BIT_VALUES values is a bit set in the matrix, so its
    ``list_contains`` compiles (and selects what evaluate does, NULL lists, empty
    lists and NULL elements included); a wider one stays out."""
    from hqi.query.compiled import BIT_VALUES

    narrow = [["v51", "v0"], [], None, ["v3", None], ["v51"]] + [[f"v{i}"] for i in range(52)]
    wide = [[f"w{i}"] for i in range(BIT_VALUES + 1)] + [None] * 4
    store = ColumnStore(pa.table({"tags": narrow, "wide": wide}))
    matrix = AttributeMatrix(store)
    assert "tags" in matrix.bit_columns and "wide" not in matrix.column_index
    for text in (
        "list_contains(tags, 'v51')",
        "NOT list_contains(tags, 'v51')",
        "NOT list_contains(tags, 'v3')",  # in no row of the first zone, one of them NULL
        "list_contains(tags, 'v0') AND NOT list_contains(tags, 'v51')",
        "list_contains(tags, 'absent')",
        "NOT list_contains(tags, 'absent')",
        "tags IS NULL",
        "tags IS NOT NULL AND NOT list_contains(tags, 'v3')",
    ):
        pred = parse_filter(text, store.schema)
        program = compile_filter(pred, matrix)
        assert program is not None, text
        want = evaluate(pred, store)
        np.testing.assert_array_equal(program_mask(program, matrix), want, err_msg=text)
        table = ProgramTable.of([program], matrix)
        seg = np.array([0, 3, store.num_rows], dtype=np.int64)
        out = np.empty(2, dtype=np.int64)
        count_holding(np.ascontiguousarray(matrix.values.T), seg, np.zeros(2, dtype=np.int64),
                      np.arange(2), table.bounds, table.col, table.group, table.lo, table.hi,
                      out)  # fmt: skip
        assert out.tolist() == [int(want[:3].sum()), int(want[3:].sum())], text
        rows, offsets = rows_holding(matrix.by_column, table.bounds, table.col, table.group,
                                     table.lo, table.hi, *matrix.ranges)  # fmt: skip
        np.testing.assert_array_equal(rows, np.flatnonzero(want), err_msg=text)
        assert offsets.tolist() == [0, rows.size]
        zones = ZoneMaps(store, seg)
        may, whole = zones.program_flags(table, np.zeros(2), np.arange(2))
        flags = zones.flags(pred)
        np.testing.assert_array_equal(may, flags.may_true, err_msg=text)
        np.testing.assert_array_equal(whole, flags.all_true, err_msg=text)
    assert compile_filter(parse_filter("list_contains(wide, 'w1')", store.schema), matrix) is None


def test_flat_rows_by_programs_equal_evaluate_and_skip_ruled_out_filters() -> None:
    """The flat pass's rows (filter_rows): the filters that compile are found by
    their programs in one compiled call, the others evaluated; the same rows
    as evaluate, for filters past a column's range (ruled out without reading
    a row), on a column of NULLs only, and on one that is not compiled."""
    store = ColumnStore(
        pa.table(
            {
                "x": pa.array([1.0, 5.0, None, 9.0, 3.0]),
                "none": pa.array([None] * 5, pa.float64()),
                "s": ["a", "b", "a", None, "c"],
                "tags": [["t"], [], None, ["u", "t"], ["u"]],
            }
        )
    )
    store.indexed = True
    matrix = AttributeMatrix(store)
    least, greatest = matrix.ranges
    assert least[matrix.column_index["x"]] == 1.0 and greatest[matrix.column_index["x"]] == 9.0
    assert np.isnan(least[matrix.column_index["none"]])
    texts = [
        "x > 9",  # past the range: no row read
        "x >= 9",  # the range's ends are in it
        "x <= 1",
        "x >= 9 OR s = 'c'",
        "x BETWEEN 2 AND 6 AND s != 'b'",
        "none > 1",
        "none IS NULL",
        "NOT (x < 4)",
        "list_contains(tags, 't') AND x IS NOT NULL",
        "x IS NULL OR s IS NULL",
    ]
    preds = [None, *(parse_filter(t, store.schema) for t in texts)]
    found = filter_rows(preds, store, matrix)
    assert found[0] is None
    for text, pred, rows in zip(texts, preds[1:], found[1:], strict=True):
        assert compile_filter(pred, matrix) is not None, text
        np.testing.assert_array_equal(rows, np.flatnonzero(evaluate(pred, store)), err_msg=text)
    # Without a matrix (or not compiled) every filter is evaluated: the same rows.
    for rows, again in zip(found[1:], filter_rows(preds, store, None)[1:], strict=True):
        np.testing.assert_array_equal(rows, again)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 16, 17, 70])
def test_flat_rows_around_whole_words(n) -> None:
    """rows_holding reads its row flags eight at a time, skipping eights where
    none holds: stores of a multiple of eight rows and not, filters holding
    on every row, none, the first or the last only, each alone (its output
    grown past the rows it was given) and all together."""
    store = ColumnStore(pa.table({"x": pa.array(np.arange(n, dtype=np.int64))}))
    matrix = AttributeMatrix(store)
    texts = ["x >= 0", "x < 0", "x = 0", f"x = {n - 1}", "x > 0"]
    preds = [parse_filter(t, store.schema) for t in texts]
    for chosen in [[p] for p in preds] + [preds]:
        found = filter_rows(chosen, store, matrix)
        for pred, rows in zip(chosen, found, strict=True):
            np.testing.assert_array_equal(
                rows, np.flatnonzero(evaluate(pred, store)), err_msg=str(pred)
            )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(max_size=4), max_size=30),
    st.text(max_size=4),
    st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
)
def test_string_dictionaries_are_sorted_and_compared_by_their_spans(
    values: list[str], value: str, op: str
) -> None:
    """Dictionaries are sorted by code point (as DuckDB and Python compare), and a
    comparison's span of them selects what comparing every value does."""
    data = ColumnStore(pa.table({"s": pa.array(values, pa.string())}))["s"]
    assert isinstance(data, StringData)
    assert data.dictionary.tolist() == sorted(set(values))
    assert [data.dictionary[c] for c in data.codes] == values
    want = [bool(OPERATORS[op](v, value)) for v in data.dictionary.tolist()]
    assert data.compare(op, value).tolist() == want


@settings(max_examples=300, deadline=None)
@given(like(negated=False), st.sampled_from(["", "User_", "İ", "ſ", "ǅ", "zz"]))
def test_literal_patterns_looked_up_equal_a_scan(text: str, prefix: str) -> None:
    """A literal or prefix pattern (``lower(col) = 'x'``, ``ILIKE 'ab%'``) is
    looked up by bisection in large dictionaries; the codes must be those a
    pass over every value finds (which the DuckDB tests above check). The
    dictionary: the table's names and many values around them."""
    names = sorted({v for v in TABLE["name"].to_pylist() if v is not None})
    around = [*names, "the WHO", "ı", "I"]
    more = [f"{p}{v}{i}" for v in around for p in ("", prefix) for i in range(100)]
    dictionary = np.array(sorted(set(names + more)), dtype=object)
    assert dictionary.size >= patterns.LOOKUP_FROM
    entry = patterns._matched(dictionary)
    for atom in atoms(parse_filter(text, STORE.schema)):
        if isinstance(atom, Like):
            form, maps = patterns._form(atom), patterns._maps(atom)
            found = patterns._looked_up(form, maps, entry, dictionary)
            if found is not None:
                scan = patterns._match(form, entry.values_of(maps))
                assert found.tolist() == np.flatnonzero(scan).tolist()


@oracle_settings(300)
@given(coalesced())
def test_coalesce_selects_as_duckdb(con, text: str) -> None:
    """``coalesce(column, value)`` and ``ifnull`` in place of a column, in every
    form a column is tested in: DuckDB's rows, and under NOT its complement
    less the rows where both are NULL."""
    assert hqi_ids(text) == duckdb_ids(con, text)
    assert hqi_ids(f"NOT ({text})") == duckdb_ids(con, f"NOT ({text})")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("coalesce(f, 0) >= 3", "(f >= 3) AND (f IS NOT NULL)"),
        ("ifnull(f, 4) >= 3", "(f >= 3) OR (f IS NULL)"),
        ("coalesce(s, 'zz') IN ('jazz', 'zz')", "(s IN ('jazz', 'zz')) OR (s IS NULL)"),
        ("coalesce(i, NULL) > 1", "i > 1"),
        ("coalesce(i, NULL, 3) > 1", "(i > 1) OR (i IS NULL)"),
        ("coalesce(i, 2.0) >= 2", "(i >= 2) OR (i IS NULL)"),
        ("coalesce(i, 0) IS NULL", "(i IS NULL) AND (i IS NOT NULL)"),
        ("coalesce(b, FALSE)", "(b = TRUE) AND (b IS NOT NULL)"),
    ],
)
def test_coalesce_reads_as_tests_of_the_column(text: str, expected: str) -> None:
    """The rewrite: the column's own test where it is not NULL, the test's truth
    at the value where it is; so it routes, compiles and cuts like any test."""
    assert str(parse_filter(text, STORE.schema)) == expected


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("coalesce(f, i) > 1", UnsupportedFilterError, "two columns"),
        ("coalesce(1, f) > 1", UnsupportedFilterError, "takes a column, then values"),
        ("coalesce(f) > 1", UnsupportedFilterError, "takes a column, then values"),
        ("coalesce(i, 2.5) > 1", FilterTypeError, "integers, not 2.5"),
        ("coalesce(i, 9223372036854775808) > 1", FilterTypeError, "64-bit integers"),
        ("coalesce(i, 'x') > 1", FilterTypeError, "does not fit"),
        ("coalesce(f, 0) > coalesce(f, 1)", UnsupportedFilterError, "one coalesce"),
        ("coalesce(tags, ['a']) IS NULL", FilterTypeError, "list column"),
        ("coalesce(f, 0) > i", UnsupportedFilterError, "tested with other columns"),
    ],
)
def test_coalesce_errors(text: str, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        parse_filter(text, STORE.schema)


@oracle_settings(300)
@given(
    st.sampled_from(["d", "ts", "ts::DATE", "CAST(d AS TIMESTAMP)"]),
    st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
    time_literals(),
)
def test_time_arithmetic_literals_select_as_duckdb(con, column: str, op: str, literal: str) -> None:
    """A date or timestamp column against a DATE or TIMESTAMP literal plus or
    minus an INTERVAL or days (folded by hqi), a timestamp against a date
    column included."""
    text = f"{column} {op} {literal}"
    assert hqi_ids(text) == duckdb_ids(con, text)


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("d >= DATE '2020-01-31' + INTERVAL 1 MONTH", "d >= DATE '2020-02-29'"),
        ("d > DATE '2020-03-31' - INTERVAL '1 month 1 day'", "d > DATE '2020-02-28'"),
        ("d < INTERVAL 1 YEAR + DATE '2020-02-29'", "d < DATE '2021-02-28'"),
        ("d >= TIMESTAMP '2020-01-01 10:00:00'", "d >= DATE '2020-01-02'"),
        ("d <= DATE '2020-01-01' + INTERVAL 12 HOUR", "d <= DATE '2020-01-01'"),
        ("d = DATE '2020-01-01' + 45", "d = DATE '2020-02-15'"),
        (
            "ts < DATE '2020-01-30' + INTERVAL '1 month 1 day'",
            "ts < TIMESTAMP '2020-03-01 00:00:00'",
        ),
        (
            "d IN (TIMESTAMP '2020-01-01 00:00:00', TIMESTAMP '2020-01-02 10:00:00')",
            "d IN (DATE '2020-01-01')",
        ),
        ("ts::DATE < DATE '2020-01-01'", "ts < TIMESTAMP '2020-01-01 00:00:00'"),
        ("CAST(ts AS DATE) <= DATE '2020-01-01'", "ts < TIMESTAMP '2020-01-02 00:00:00'"),
        ("CAST(d AS TIMESTAMP) > TIMESTAMP '2020-01-01 10:00:00'", "d >= DATE '2020-01-02'"),
        (
            "date_trunc('month', ts) = DATE '2020-03-01'",
            "(ts >= TIMESTAMP '2020-03-01 00:00:00') AND (ts < TIMESTAMP '2020-04-01 00:00:00')",
        ),
        ("date_trunc('month', d) = DATE '2020-03-02'", "(d IS NULL) AND (NULL)"),  # no month start
        ("date_trunc('year', d) < DATE '2020-03-02'", "d < DATE '2021-01-01'"),
        (
            "date_trunc('week', ts) >= TIMESTAMP '2020-03-04 00:00:00'",
            "ts >= TIMESTAMP '2020-03-09 00:00:00'",
        ),
    ],
)
def test_time_arithmetic_folds_to_one_literal(text: str, folded: str) -> None:
    assert str(parse_filter(text, STORE.schema)) == folded


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("d > DATE '2020-01-01' + INTERVAL '1.5 days'", FilterTypeError, "whole amounts"),
        ("d > DATE '2020-01-01' + INTERVAL 1 FORTNIGHT", FilterTypeError, "unknown interval unit"),
        ("ts > DATE '9999-12-01' + INTERVAL 1 MONTH", FilterTypeError, "past the years 1 to 9999"),
        (
            "d > DATE '2020-01-01' - DATE '2019-01-01'",
            UnsupportedFilterError,
            "INTERVAL or a whole",
        ),
        ("i > 1 + 2", UnsupportedFilterError, "arithmetic on literals"),
        (
            "coalesce(d, TIMESTAMP '2020-01-01 10:00') > DATE '2020-01-01'",
            FilterTypeError,
            "timestamp",
        ),
        ("date_trunc('hour', d) = DATE '2020-01-01'", UnsupportedFilterError, "a date is its own"),
        (
            "date_trunc('isoyear', ts) = DATE '2020-01-01'",
            UnsupportedFilterError,
            "unknown date_trunc",
        ),
        (
            "date_trunc('month', i) = DATE '2020-01-01'",
            FilterTypeError,
            "needs a date or timestamp",
        ),
        ("ts::VARCHAR = '2020'", UnsupportedFilterError, "CAST is read only between date"),
    ],
)
def test_time_arithmetic_errors(text: str, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        parse_filter(text, STORE.schema)
