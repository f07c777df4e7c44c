"""Date-part filters (``month(released) IN (6, 7, 8)``): their cost, and a layout cut on them.

    .venv/bin/python bench/date_parts.py [--n 200000] [--queries 5000] [--train 2000]

1. Evaluation: one mask of each date-part filter over all ``--n`` rows,
   against a ``year()`` range of the same column (a range, compiled and
   routed by the column's zone maps); ms per filter, median of
   ``--repeats``.
   The first mask of a part computes the column's part values, which are
   kept; the median is of the masks after it.
2. Search: the batch's filters are the generator's, each ANDed with one of
   ``PARTS`` (every third one a date part alone). The same rows are built
   twice: the layout learned from the generator's filters only
   (``plain``), and from filters made like the batch's (``with parts``,
   another seed; the learner does not cut on date parts, see
   ``hqi.layout.qdtree``). Each is searched at nprobe 1-32 (probe_ratio
   1.1) and exactly; printed: best throughput at recall@10 0.90 / 0.95 /
   0.99, the exact batch time, and the share of the date-part filters'
   routed partitions that they cover (no row test there).
"""

from __future__ import annotations

import numpy as np

import hqi
from common import (
    harness_data,
    harness_parser,
    median_seconds,
    median_timed,
    sweep_nprobe,
    target_cells,
    timed_build,
)
from hqi.datasets import make_workload
from hqi.query import evaluate

PARTS = [
    "month(released) BETWEEN 6 AND 8",
    "dayofweek(released) IN (0, 6)",
    "quarter(released) = 4",
    "day(released) <= 7",
    "month(released) != 12",
]


def with_parts(filters: list[str]) -> list[str]:
    """Every filter ANDed with a date part; every third one a date part alone."""
    out = []
    for i, text in enumerate(filters):
        part = PARTS[i % len(PARTS)]
        out.append(part if i % 3 == 0 else f"({text}) AND {part}")
    return out


def main() -> None:
    args = harness_parser(__doc__).parse_args()
    catalog, train_workload, batch = harness_data(args)
    train = train_workload.filters
    q, f = batch.queries, with_parts(batch.filters)
    print(f"N = {args.n:,}, d = {args.dim}, {len(f):,} queries, {args.threads} threads")

    index = hqi.build(catalog.vectors, catalog.attributes, catalog.ids, threads=args.threads)
    print("\n| filter | ms per mask | rows |")
    print("|---|---|---|")
    for text in [*PARTS, "year(released) BETWEEN 1990 AND 1999"]:
        pred = index.parse(text)
        ms = median_seconds(lambda pred=pred: evaluate(pred, index._store), args.repeats) * 1e3
        print(f"| `{text}` | {ms:.2f} | {index.count(text):,} |")

    layouts = {
        "plain": train,
        "with parts": with_parts(make_workload(catalog, args.train, seed=102).filters),
    }
    truth = None
    summary = []
    alone = [i for i in range(len(f)) if i % 3 == 0]
    for name, workload in layouts.items():
        index, build_s = timed_build(catalog, workload, args.threads)
        plan = index.explain(q[alone], [f[i] for i in alone], k=10).to_pydict()
        covered = sum(plan["covered"]) / max(1, sum(plan["partitions"]))
        exact_s, exact = median_timed(
            lambda index=index: index.search(q, f, k=10, exact=True, threads=args.threads),
            args.repeats,
            index.clear_filter_caches,
        )
        if truth is None:
            truth = exact
        assert np.array_equal(exact.ids, truth.ids), "exact answers differ between layouts"
        best = sweep_nprobe(index, q, f, truth, args, f"{name:<10}")
        summary.append((name, index.info()["partitions"], build_s, covered, best, exact_s))

    print(
        "\n| layout learned from | partitions | build s | date parts alone: routed "
        "partitions covered | q/s at 0.90 | at 0.95 | at 0.99 | exact s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    base = summary[0][4]
    for name, parts, build_s, covered, best, exact_s in summary:
        cells = target_cells(best, base, "plain")
        print(
            f"| {name} | {parts} | {build_s:.1f} | {covered:.0%} | "
            + " | ".join(cells)
            + f" | {exact_s:.3f} |"
        )


if __name__ == "__main__":
    main()
