"""Whole searches with generated filters against a brute force over DuckDB's rows.

Every filter form of ``strategies.predicates`` (NULLs, patterns, arithmetic,
two-column tests, lengths, remainders, time arithmetic) goes through the
layout, zone-map routing, compiled programs or masks and the executor here:
the answers must be the k nearest of the rows DuckDB selects.
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hqi
from strategies import TABLE, duckdb_ids, duckdb_with, predicates

DIM = 8
VECTORS = np.random.default_rng(11).standard_normal((TABLE.num_rows, DIM)).astype(np.float32)


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    yield from duckdb_with("t", TABLE)


@pytest.fixture(scope="module")
def index() -> hqi.Index:
    """A learned layout of small partitions over the oracle table, its cuts
    from filters of every kind."""
    workload = [
        "i > 0",
        "s = 'jazz'",
        "d < DATE '1990-01-01'",
        "f BETWEEN -5 AND 5",
        "list_contains(tags, 'live')",
        "b",
        "ts >= TIMESTAMP '2021-06-01 00:00:00'",
    ] * 5
    built = hqi.build(
        VECTORS, TABLE.drop_columns(["id"]), workload=workload, min_partition_rows=20, threads=1
    )
    assert built.info()["partitions"] >= 4  # routing has partitions to skip and cover
    return built


def _brute(rows: list[int], query: np.ndarray, k: int, vectors: np.ndarray = VECTORS) -> list[int]:
    dist = ((vectors[rows] - query) ** 2).sum(axis=1)
    return sorted(np.array(rows, dtype=np.int64)[np.argsort(dist, kind="stable")[:k]].tolist())


# The oracle table repeated past the planner's row sample (planning.SAMPLE_MIN_ROWS):
# filters are estimated from the sample and masked on the lists their queries probe.
REPEATS = 240
LARGE = pa.concat_tables([TABLE.drop_columns(["id"])] * REPEATS)
LARGE = LARGE.append_column("id", pa.array(np.arange(LARGE.num_rows)))
LARGE_VECTORS = np.random.default_rng(12).standard_normal((LARGE.num_rows, DIM)).astype(np.float32)


@pytest.fixture(scope="module")
def large() -> tuple[hqi.Index, duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    con.register("t", LARGE)
    workload = ["i > 0", "s = 'jazz'", "d < DATE '1990-01-01'", "list_contains(tags, 'live')"]
    index = hqi.build(LARGE_VECTORS, LARGE.drop_columns(["id"]), workload=workload * 5, threads=1)
    return index, con


@settings(max_examples=40, deadline=None)
@given(st.lists(predicates, min_size=1, max_size=4), st.integers(0, 2**31 - 1))
def test_searches_of_a_sampled_store_answer_as_brute_force(large, texts, seed) -> None:
    """The same on a store large enough to plan from its row sample."""
    index, con = large
    rng = np.random.default_rng(seed)
    queries = rng.standard_normal((len(texts), DIM)).astype(np.float32)
    result = index.search(queries, texts, k=5, nprobe=10**6, threads=1)
    for q, text in enumerate(texts):
        got = sorted(result.ids[q][result.ids[q] >= 0].tolist())
        assert got == _brute(duckdb_ids(con, text), queries[q], 5, LARGE_VECTORS), text


@settings(max_examples=150, deadline=None)
@given(st.lists(predicates, min_size=1, max_size=6), st.integers(0, 2**31 - 1))
def test_searches_answer_the_k_nearest_of_duckdbs_rows(index, con, texts, seed) -> None:
    """Exact and all-probe searches of a batch of generated filters (several
    queries each) equal a brute force over the rows DuckDB selects."""
    rng = np.random.default_rng(seed)
    filters = [t for t in texts for _ in range(2)]
    queries = rng.standard_normal((len(filters), DIM)).astype(np.float32)
    k = 5
    for opts in ({"exact": True}, {"nprobe": 10**6}):
        result = index.search(queries, filters, k=k, threads=1, **opts)
        for q, text in enumerate(filters):
            got = sorted(result.ids[q][result.ids[q] >= 0].tolist())
            assert got == _brute(duckdb_ids(con, text), queries[q], k), (text, opts)
