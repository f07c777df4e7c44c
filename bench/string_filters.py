"""Batch search with string-pattern filters (LIKE prefixes, string ranges)
against a naive per-query numpy loop, in one run.

.venv/bin/python bench/string_filters.py --rows 200000 --names 50000 --queries 5000

A store of ``--rows`` rows (d = 64) with ``--names`` distinct names
(``name_01234``), a genre and a year; a layout learned from 1,000 filters of
three templates: ``name LIKE 'name_3%' AND genre = 'jazz'``, ``name >=
'name_1' AND name < 'name_4' AND year > 1990`` and ``name LIKE 'name_42%'``.
Prints the medians of the batch's approximate (default nprobe, and
``recall_target=0.95``, calibration included) and exact searches, their
planning, the share of filters tested by compiled programs, recall@10
against the exact answers, and the naive loop's throughput on a sample of
the batch, with the share of answers it has in common with the exact search.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pyarrow as pa

import hqi
from hqi.evaluation import recall_at_k
from hqi.execution.naive import naive_search


def _filter(rng: np.random.Generator) -> str:
    kind = rng.integers(0, 3)
    if kind == 0:
        genre = rng.choice(["rock", "jazz", "pop"])
        return f"name LIKE 'name_{rng.integers(0, 5)}%' AND genre = '{genre}'"
    if kind == 1:
        low, high, year = rng.integers(0, 4), rng.integers(4, 5), rng.integers(1950, 2020)
        return f"name >= 'name_{low}' AND name < 'name_{high}' AND year > {year}"
    return f"name LIKE 'name_{rng.integers(0, 5)}{rng.integers(0, 10)}%'"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--names", type=int, default=50_000)
    ap.add_argument("--queries", type=int, default=5_000)
    ap.add_argument("--naive-sample", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n, d = args.rows, 64
    vectors = rng.standard_normal((n, d)).astype(np.float32)
    names = np.array([f"name_{i:05d}" for i in range(args.names)], dtype=object)
    attributes = pa.table(
        {
            "name": names[rng.integers(0, args.names, n)],
            "genre": rng.choice(["rock", "jazz", "pop", "folk", "soul"], n),
            "year": rng.integers(1950, 2025, n),
        }
    )
    workload_rng = np.random.default_rng(1)
    start = time.perf_counter()
    index = hqi.build(vectors, attributes, workload=[_filter(workload_rng) for _ in range(1000)])
    print(f"{n:,} rows, {args.names:,} names; build {time.perf_counter() - start:.1f} s")
    query_rng = np.random.default_rng(2)
    picks = query_rng.integers(0, n, args.queries)
    noise = query_rng.standard_normal((args.queries, d)).astype(np.float32)
    queries = vectors[picks] + 0.01 * noise
    filters = [_filter(query_rng) for _ in range(args.queries)]
    index.search(queries, filters, k=10)  # warm-up: compilation, encodings
    rows = {}
    searches = (("default nprobe", {}), ("recall_target=0.95", {"recall_target": 0.95}))
    for name, opts in (*searches, ("exact", {"exact": True})):
        times, plans = [], []
        for _ in range(args.repeats):
            index.clear_filter_caches()  # each timed search parses anew, as hqi bench's
            res = index.search(queries, filters, k=10, **opts)
            times.append(res.stats["seconds"])
            plans.append(res.stats["plan_seconds"])
        compiled = index.explain(queries, filters, k=10, **opts).column("compiled").to_pylist()
        rows[name] = (res, statistics.median(times), statistics.median(plans), sum(compiled))
    exact = rows["exact"][0]
    print("| search | seconds | planning | queries/s | compiled | recall@10 |")
    print("|---|---|---|---|---|---|")
    for name, (res, seconds, plan, compiled) in rows.items():
        print(
            f"| {name} | {seconds:.3f} | {plan:.3f} | {args.queries / seconds:,.0f} | "
            f"{compiled / args.queries:.0%} | {recall_at_k(res, exact).mean():.4f} |"
        )
    sample = np.arange(min(args.naive_sample, args.queries))
    start = time.perf_counter()
    masks = [index.mask(filters[i]) for i in sample]
    positions, _ = naive_search(index.vectors, masks, queries[sample], 10)
    naive = time.perf_counter() - start
    naive_ids = np.where(positions >= 0, index.ids[positions], -1)
    pairs = zip(naive_ids, exact.ids[sample], strict=True)
    # The share of the batch's answers the loop found too; a query that neither
    # answers (no row qualifies) agrees.
    shared = np.mean(
        [
            len(set(a[a >= 0]) & set(b[b >= 0])) / max((b >= 0).sum(), (a >= 0).sum(), 1)
            if (a >= 0).any() or (b >= 0).any()
            else 1.0
            for a, b in pairs
        ]
    )
    exact_qps = args.queries / rows["exact"][1]
    print(
        f"naive per-query loop ({sample.size} queries): {sample.size / naive:,.0f} queries/s; "
        f"exact batch {exact_qps / (sample.size / naive):.1f}x it; answers shared with it "
        f"{shared:.4f} (float32 distances computed two ways may order near-ties apart)"
    )


if __name__ == "__main__":
    main()
