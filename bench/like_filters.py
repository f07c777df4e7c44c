"""LIKE filters on a high-cardinality string column: bounded by the inverted
index of their matching values against a whole mask, in one run.

.venv/bin/python bench/like_filters.py --rows 1000000 --distinct 200000 --repeats 9

A store of ``--rows`` rows with ``--distinct`` names (``Artist 000123``),
each filter evaluated ``--repeats`` times with the pattern matches dropped
before each one (a filter's first evaluation in a search), once as hqi does
(selective patterns through the postings of their matching values) and once
with that path switched off (``SPARSE_MIN_ROWS`` above the store: one mask
gathered from the dictionary's matches). Prints medians, their ratio, and
checks that both select the same rows.

``--batch N`` then searches a batch of N queries whose filters are N
distinct ``regexp_matches(name, '0123$')`` expressions (an index over the
store's names, d = 16): once as hqi does (a literal, anchored expression runs
on Arrow's ``ends_with``) and once through RE2, the first search of each
filter set, with the same answers checked.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time

import numpy as np
import pyarrow as pa

import hqi
from hqi.query import ColumnStore, evaluate, parse_filter

evaluate_module = importlib.import_module("hqi.query.evaluate")
like_module = importlib.import_module("hqi.query.patterns")

FILTERS = [
    "name LIKE 'Artist 01234%'",
    "name LIKE '%99'",
    "name LIKE 'Art_st 0001%'",
    "name ILIKE 'artist 0000%'",
    "name LIKE 'Artist 1%'",
]


def _median_ms(store: ColumnStore, text: str, repeats: int) -> tuple[float, np.ndarray]:
    pred = parse_filter(text, store.schema)
    times = []
    mask = evaluate(pred, store)
    for _ in range(repeats):
        for entry in like_module._MATCHED.values():
            entry.hits.clear()
            entry.kept = 0
        start = time.perf_counter()
        mask = evaluate(pred, store)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times), mask


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--distinct", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--batch", type=int, default=0, help="queries of distinct regex filters")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    names = np.array([f"Artist {i:06d}" for i in range(args.distinct)], dtype=object)
    store = ColumnStore(pa.table({"name": names[rng.integers(0, args.distinct, args.rows)]}))
    print(f"{args.rows:,} rows, {args.distinct:,} distinct names, medians of {args.repeats}")
    print("| filter | rows | hqi ms | whole mask ms | ratio | same rows |")
    print("|---|---|---|---|---|---|")
    for text in FILTERS:
        fast, mask = _median_ms(store, text, args.repeats)
        saved = evaluate_module.SPARSE_MIN_ROWS
        evaluate_module.SPARSE_MIN_ROWS = args.rows + 1
        try:
            slow, whole = _median_ms(store, text, args.repeats)
        finally:
            evaluate_module.SPARSE_MIN_ROWS = saved
        same = bool(np.array_equal(mask, whole))
        print(
            f"| `{text}` | {int(mask.sum()):,} | {fast:.2f} | {slow:.2f} | "
            f"{slow / fast:.2f}x | {same} |"
        )
    if args.batch:
        regex_batch(names, args.batch)


def regex_batch(names: np.ndarray, n: int) -> None:
    """A batch of ``n`` distinct literal-suffix regular expressions, through
    Arrow's ``ends_with`` and through RE2: the first search of the filters,
    each on an index of its own (no cache shared), the same answers checked."""
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((names.size, 16)).astype(np.float32)
    queries = vectors[rng.integers(0, names.size, n)] + 0.01
    filters = [f"regexp_matches(name, '{i:04d}$')" for i in range(n)]
    answers, seconds = {}, {}
    for label in ("Arrow ends_with", "RE2"):
        index = hqi.build(vectors, pa.table({"name": names}))
        index.search(queries[:5], "regexp_matches(name, '^x')", k=10)  # compilation
        saved = like_module._plain_regex
        if label == "RE2":
            like_module._plain_regex = lambda pred: None
        try:
            start = time.perf_counter()
            answers[label] = index.search(queries, filters, k=10).ids
            seconds[label] = time.perf_counter() - start
        finally:
            like_module._plain_regex = saved
    same = np.array_equal(answers["Arrow ends_with"], answers["RE2"])
    print(
        f"{n:,} distinct suffix expressions over {names.size:,} names: Arrow ends_with "
        f"{seconds['Arrow ends_with']:.2f} s, RE2 {seconds['RE2']:.2f} s "
        f"({seconds['RE2'] / seconds['Arrow ends_with']:.1f}x), the same answers: {same}"
    )


if __name__ == "__main__":
    main()
