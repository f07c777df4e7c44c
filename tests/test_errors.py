"""Every documented bad input raises its documented, clear error."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import hqi
from hqi.errors import (
    FilterSyntaxError,
    FilterTypeError,
    InvalidInputError,
    UnknownColumnError,
    UnsupportedFilterError,
)


@pytest.fixture(scope="module")
def small() -> hqi.Index:
    rng = np.random.default_rng(0)
    attrs = pa.table(
        {
            "genre": ["jazz", "rock", "pop", None],
            "year": pa.array([1990, 2000, None, 1985], pa.int32()),
            "tags": pa.array([["a"], [], None, ["b"]], pa.list_(pa.string())),
            "released": pa.array([None] * 4, pa.date32()),
            "live": [True, False, None, True],
        }
    )
    return hqi.build(rng.standard_normal((4, 3)), attrs, ids=["a", "b", "c", "d"])


@pytest.mark.parametrize(
    ("text", "error", "fragment", "position"),
    [
        ("genre = 'jazz' AND", FilterSyntaxError, "syntax error", 15),
        ("genre = 'jazz", FilterSyntaxError, "unterminated string", 8),
        ("year > (1", FilterSyntaxError, "syntax error", None),
        ("SELECT 1", FilterSyntaxError, "not a statement", 0),
        ("genre = 'a'; year = 1", FilterSyntaxError, "one expression", None),
        ("genr = 'jazz'", UnknownColumnError, "did you mean 'genre'", 0),
        ("year = 1 AND yaer > 2", UnknownColumnError, "did you mean 'year'", 13),
        ("year = 'abc'", FilterTypeError, "does not fit column 'year'", 7),
        ("genre > 3", FilterTypeError, "does not fit column 'genre'", 8),
        ("tags = 'a'", FilterTypeError, "list_contains", None),
        ("list_contains(genre, 'a')", FilterTypeError, "needs a list<string> column", 0),
        ("released > DATE '2020-13-01'", FilterTypeError, "invalid date", 16),
        ("live = 1", FilterTypeError, "does not fit column 'live'", 7),
        ("year", FilterTypeError, "not boolean", 0),
        ("upper(genre) < 5", FilterTypeError, "literal 5 does not fit column 'genre'", 15),
        ("lower(year) = 'a'", FilterTypeError, "lower(year) needs a string column", 0),
        ("lower(upper(genre)) = 'a'", UnsupportedFilterError, "one lower() or upper()", 0),
        ("sqrt(year) = 1", UnsupportedFilterError, "unsupported function sqrt()", 0),
        ("abs(genre) = 1", FilterTypeError, "arithmetic needs a numeric column", 0),
        ("dayname(released) = 1", UnsupportedFilterError, "unsupported function dayname()", 0),
        ("yearweek(released) = 3", UnsupportedFilterError, "yearweek values 100 to 999899", 0),
        ("isoyear(released, 2) = 1", UnsupportedFilterError, "takes one argument", 0),
        ("isoyear(year) = 1", FilterTypeError, "isoyear() needs a date or timestamp column", 0),
        ("foo(year)", UnsupportedFilterError, "unsupported function foo()", 0),
        ("year + year > 3", UnsupportedFilterError, "one column at a time", None),
        ("year // 0 = 1", UnsupportedFilterError, "dividing by zero", None),
        ("year % 2 + 1 = 1", UnsupportedFilterError, "arithmetic takes + - * / and //", None),
        ("genre % 2 = 1", FilterTypeError, "% needs an integer column", None),
        ("year % 0 = 1", UnsupportedFilterError, "whole divisor other than 0", None),
        ("(year + 1) % 3 = 0", UnsupportedFilterError, "% of a column by a number only", None),
        ("genre || 'x' = 'a'", UnsupportedFilterError, "expected a column name", None),
        ("year = genre", FilterTypeError, "cannot compare column 'year' of type int", 0),
        ("year + 1 > year", UnsupportedFilterError, "column compares with another", 11),
        ("genre IN (genre)", UnsupportedFilterError, "a column ('genre') where a value", 10),
        ("live = year", FilterTypeError, "with column 'year' of type int", 0),
        ("length(year) > 1", FilterTypeError, "length() needs a string or list<string>", 0),
        ("strlen(tags) > 1", FilterTypeError, "strlen() needs a string column", 0),
        ("len(lower(genre)) > 1", UnsupportedFilterError, "length() of a column only", 0),
        ("len(tags) > 'a'", FilterTypeError, "does not fit length(tags), an integer", 12),
        ("genre IN (SELECT 1)", UnsupportedFilterError, "subquery", None),
        ("year IS TRUE", FilterTypeError, "not boolean", 0),
        ("year IS 5", UnsupportedFilterError, "IS takes NULL, TRUE or FALSE", 0),
        ("year IS DISTINCT FROM genre", FilterTypeError, "cannot compare column 'year'", 0),
        ("year LIKE '19%'", FilterTypeError, "LIKE needs a string column; 'year' is int", 0),
        ("tags ILIKE 'a'", FilterTypeError, "ILIKE needs a string column", 0),
        ("starts_with(live, 'a')", FilterTypeError, "starts_with() needs a string column", 0),
        ("genre LIKE 3", FilterTypeError, "does not fit column 'genre'", 11),
        ("genre LIKE 'ja!' ESCAPE '!'", FilterSyntaxError, "ends with its escape character", 11),
        ("genre LIKE 'ja' ESCAPE '!!'", FilterSyntaxError, "empty or one character", None),
        ("year GLOB '1*'", FilterTypeError, "GLOB needs a string column; 'year' is int", 0),
        ("genre GLOB 3", FilterTypeError, "does not fit column 'genre'", 11),
        ("prefix(genre)", UnsupportedFilterError, "prefix() takes two arguments", 0),
        ("list_has_any(genre, ['a'])", FilterTypeError, "needs a list<string> column", 0),
        ("regexp_matches(genre, '(j')", FilterSyntaxError, "invalid regular expression", 22),
        ("genre SIMILAR TO 'a['", FilterSyntaxError, "invalid regular expression", 17),
        ("genre ~ 'j'", UnsupportedFilterError, "write regexp_matches", 0),
        ("genre !~ 'j'", UnsupportedFilterError, "write regexp_matches", 0),
        ("regexp_matches(genre, 'j', 'g')", UnsupportedFilterError, "option 'g'", 27),
        ("regexp_full_match(year, '1')", FilterTypeError, "needs a string column", 0),
        ("year(year) = 1990", FilterTypeError, "year() needs a date or timestamp column", 0),
        ("year(released) = 'x'", FilterTypeError, "does not fit year(released), an integer", 17),
        ("year(released) > 99999", UnsupportedFilterError, "years 1 to 9998", 0),
        ("month(year) = 1", FilterTypeError, "month() needs a date or timestamp column", 0),
        ("dayofweek(released) = 'x'", FilterTypeError, "dayofweek(released), an integer", 22),
        ("date_part('mon', genre) IN (1, 2)", FilterTypeError, "needs a date or timestamp", 0),
        ("extract(epoch FROM released) = 1", UnsupportedFilterError, "date part 'epoch'", None),
        ("date_part('epoch', released) > 1", UnsupportedFilterError, "date part 'epoch'", 0),
        ("list_has_all(tags, 'a')", UnsupportedFilterError, "a list of strings", 0),
        ("list_has_any(tags, [1])", FilterTypeError, "does not fit column 'tags'", None),
    ],
)
def test_filter_errors(small, text, error, fragment, position) -> None:
    with pytest.raises(error) as info:
        small.search(np.zeros((1, 3)), text)
    assert fragment in str(info.value)
    assert text in str(info.value)
    if position is not None:
        assert info.value.position == position


def test_unknown_column_offers_no_wild_guess(small) -> None:
    with pytest.raises(UnknownColumnError) as info:
        small.where("zzzzzz = 1")
    assert info.value.suggestion is None
    assert "did you mean" not in str(info.value)


def test_every_filter_error_is_an_hqi_error_and_a_value_error(small) -> None:
    with pytest.raises(hqi.HqiError):
        small.where("nope = 1")
    with pytest.raises(ValueError):
        small.where("genre = ")


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda ix: ix.search(np.zeros((1, 4))), "dimension 4, but the index has dimension 3"),
        (lambda ix: ix.search(np.full((1, 3), np.nan)), "NaN or infinity"),
        (lambda ix: ix.search(np.zeros((2, 3)), ["genre = 'a'"]), "1 filters for 2 queries"),
        (lambda ix: ix.search(np.zeros((1, 3)), k=0), "k must be a positive integer"),
        (lambda ix: ix.search(np.zeros((1, 3)), k=2.5), "k must be a positive integer"),
        (lambda ix: ix.search(np.zeros((1, 3)), nprobes=3), "unknown search option 'nprobes'"),
        (lambda ix: ix.search(np.zeros((1, 3)), treads=2), "did you mean 'threads'"),
        (lambda ix: ix.search(np.zeros((1, 3)), threads=0), "threads must be"),
        (lambda ix: ix.search(np.zeros((1, 3)), shared_scan=2), "shared_scan"),
        (lambda ix: ix.search(np.array([["a", "b", "c"]])), "must be numeric"),
        (lambda ix: ix.search(np.zeros((1, 3)), 42), "filters must be a SQL string"),
        (lambda ix: ix.search_by_id(["zz"]), "unknown entity id 'zz'"),
        (lambda ix: ix.search_by_id([1]), "string ids"),
        (lambda ix: ix.search(np.zeros((1, 3)), k=True), "k must be a positive integer"),
        (lambda ix: ix.search(np.zeros((1, 3)), nprobe=np.int64(-1)), "nprobe must be"),
        (
            lambda ix: ix.search(np.zeros((1, 3)), nprobe=2, recall_target=0.9),
            "nprobe or recall_target, not both",
        ),
        (lambda ix: ix.search(np.zeros((1, 3)), recall_target="0.9"), "recall_target must be"),
        (lambda ix: ix.search(np.zeros((1, 3)), probe_ratio=np.float32(0.5)), "probe_ratio must"),
    ],
)
def test_search_input_errors(small, call, fragment) -> None:
    with pytest.raises(InvalidInputError) as info:
        call(small)
    assert fragment in str(info.value)


@pytest.mark.parametrize(("bad", "name"), [([None, ["x"]], "list"), ([7, None], "int")])
def test_a_filter_that_is_not_text_is_named(small, bad, name) -> None:
    """Not a traceback from a cache's dict: the filter's type, named."""
    with pytest.raises(FilterSyntaxError, match=f"a SQL string or None, not {name}"):
        small.search(np.zeros((2, 3)), bad)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"vectors": np.zeros((0, 3))}, "zero vectors"),
        ({"vectors": np.zeros(3)}, "2-D array"),
        ({"vectors": [[1.0, np.inf]]}, "NaN or infinity (first at row 0)"),
        ({"vectors": np.ones((2, 2)), "metric": "hamming"}, "unknown metric 'hamming'"),
        ({"vectors": np.zeros((2, 2)), "metric": "cosine"}, "zero vector"),
        ({"vectors": np.ones((2, 2)), "ids": [1, 1]}, "ids must be unique; 1 appears"),
        ({"vectors": np.ones((2, 2)), "ids": [1]}, "got 1 ids for 2 vectors"),
        ({"vectors": np.ones((2, 2)), "ids": [1.5, 2.5]}, "integers or strings"),
        ({"vectors": np.ones((2, 2)), "attributes": {"a": [1]}}, "have 1 rows but there are 2"),
        (
            {"vectors": np.ones((1, 2)), "attributes": pa.table({"m": pa.array([{"x": 1}])})},
            "column 'm' has type struct",
        ),
        ({"vectors": np.ones((1, 2)), "attributes": [1]}, "must be a pyarrow Table"),
        ({"vectors": np.ones((1, 2)), "workloads": ["a = 1"]}, "did you mean 'workload'"),
        ({"vectors": np.ones((1, 2)), "workload": "a = 1"}, "sequence of SQL filter strings"),
        ({"vectors": np.ones((1, 2)), "list_size": 0}, "list_size must be a positive integer"),
        ({"vectors": np.ones((1, 2)), "list_size": True}, "list_size must be a positive integer"),
        ({"vectors": np.ones((1, 2)), "max_partitions": 2.0}, "max_partitions must be a positive"),
        ({"vectors": np.ones((1, 2)), "vector_cuts": np.int64(1)}, "vector_cuts must be 0"),
    ],
)
def test_build_input_errors(kwargs, fragment) -> None:
    with pytest.raises(InvalidInputError) as info:
        hqi.build(**kwargs)
    assert fragment in str(info.value)


def test_numpy_scalars_are_accepted_as_options(small) -> None:
    """Options computed with NumPy (k from an array, a ratio from a sweep) are
    the numbers they hold: the same answers as plain Python ones, stored plain."""
    q = np.zeros((1, 3))
    plain = small.search(q, k=2, nprobe=1, probe_ratio=1.5, exact=True)
    numpy = small.search(
        q, k=np.int64(2), nprobe=np.int32(1), probe_ratio=np.float32(1.5), exact=np.True_
    )
    assert np.array_equal(plain.ids, numpy.ids)
    opts = hqi.SearchOptions.from_kwargs(k=np.int64(3), recall_target=np.float32(0.5))
    assert type(opts.k) is int and type(opts.recall_target) is float
    index = hqi.build(np.eye(4, 3), list_size=np.int64(2), max_partitions=np.uint8(4))
    assert index.search(np.eye(1, 3), k=np.int16(1)).ids.tolist() == [[0]]
