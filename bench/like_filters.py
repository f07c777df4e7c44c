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
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time

import numpy as np
import pyarrow as pa

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


if __name__ == "__main__":
    main()
