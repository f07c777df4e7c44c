"""``length()`` / ``len()`` / ``strlen()`` filters in searches: answers as brute force."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

import hqi
from hqi.query.predicate import Length


def _table(n: int) -> pa.Table:
    rng = np.random.default_rng(5)
    words = np.array(["a", "bb", "ccc", "dddd", "é", "ΣΑΣ", "x y z", "İstanbul"])
    tags = [
        None if rng.random() < 0.05 else rng.choice(["t1", "t2", "t3"], rng.integers(0, 5)).tolist()
        for _ in range(n)
    ]
    names = [None if rng.random() < 0.05 else str(w) for w in rng.choice(words, n)]
    return pa.table(
        {
            "name": pa.array(names),
            "tags": pa.array(tags, pa.list_(pa.string())),
            "year": pa.array(rng.integers(1990, 2020, n)),
        }
    )


FILTERS = [
    "len(tags) >= 3",
    "length(name) = 3 AND year > 2000",
    "strlen(name) > 3",
    "array_length(tags) IN (0, 4) OR length(name) < 2",
    "NOT (len(tags) BETWEEN 1 AND 2)",
    "length(tags) > 2.5 AND name = 'bb'",
]


def test_length_filters_search_as_brute_force(tmp_path: Path) -> None:
    table = _table(3000)
    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((table.num_rows, 16)).astype(np.float32)
    queries = rng.standard_normal((len(FILTERS), 16)).astype(np.float32)
    index = hqi.build(vectors, table, workload=FILTERS * 10 + ["year < 2000"] * 10)
    index.save(tmp_path / "idx")
    reopened = hqi.open(tmp_path / "idx")
    con = duckdb.connect()
    con.register("t", table.append_column("id", pa.array(np.arange(table.num_rows))))
    runs = [(index, {"exact": True}), (index, {"nprobe": 10**6}), (reopened, {"exact": True})]
    for idx, options in runs:
        result = idx.search(queries, FILTERS, k=5, **options)
        for q, text in enumerate(FILTERS):
            rows = [r[0] for r in con.execute(f"SELECT id FROM t WHERE {text}").fetchall()]
            dist = ((vectors[rows] - queries[q]) ** 2).sum(axis=1)
            expected = sorted(np.array(rows)[np.argsort(dist, kind="stable")[:5]].tolist())
            assert sorted(result.ids[q][result.ids[q] >= 0].tolist()) == expected, text
    assert (
        index.count("len(tags) >= 3")
        == con.execute("SELECT count(*) FROM t WHERE len(tags) >= 3").fetchone()[0]
    )
    assert index.parse("len(tags) > 2.5") == Length("tags", ">=", 3, "items")
