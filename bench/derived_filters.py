"""Filters on values derived from a column: remainders, time arithmetic, lengths.

    .venv/bin/python bench/derived_filters.py [--n 200000] [--queries 5000] [--repeats 3]

On the built-in catalog, one index (its layout learned from the built-in
workload), and batches whose filters hold one derived test per query, made
from the query's anchor entity:

- ``year % 10 = d AND genre = 'g'``: a remainder, kept as masks, against the
  same rows as ``year IN (every year of that remainder) AND genre = 'g'``,
  which compiles;
- ``released >= DATE 'x' - INTERVAL n DAY``: folded when parsed, against the
  literal written out (``released >= DATE 'x - n'``);
- ``released < TIMESTAMP 'x 12:00:00'``: a timestamp against a date column,
  against ``released <= DATE 'x'``;
- ``len(tags) >= 2 AND type = 't'``: a list length, kept as masks (no plain
  form selects the same rows).

Each batch is searched exactly and at ``--nprobe`` (probe_ratio 1.1), every
timed search parsing its filters anew (the filter caches cleared, as ``hqi
bench`` times them): the median of ``--repeats``, queries per second,
recall@10 against the exact answers, and whether two forms of one selection
return the same ids.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

import hqi
from common import median_timed, synthetic_data, synthetic_parser
from hqi.evaluation import recall_at_k


def batches(catalog: hqi.datasets.Catalog, anchors: np.ndarray, seed: int) -> dict[str, list[str]]:
    """Each form's filter per query, from the anchor entity's attributes."""
    rng = np.random.default_rng(seed)
    table = catalog.attributes
    genre = np.asarray(table.column("genre").to_pylist(), dtype=object)[anchors]
    kind = np.asarray(table.column("type").to_pylist(), dtype=object)[anchors]
    year = table.column("year").to_pylist()
    released = table.column("released").to_pylist()
    years = range(1920, 2025)
    out: dict[str, list[str]] = {name: [] for name in FORMS}
    for i, row in enumerate(anchors.tolist()):
        d = (year[row] or 2000) % 10
        same = ", ".join(str(y) for y in years if y % 10 == d)
        out["year % 10 = d"].append(f"year % 10 = {d} AND genre = '{genre[i]}'")
        out["year IN (...)"].append(f"year IN ({same}) AND genre = '{genre[i]}'")
        day = released[row] or dt.date(2000, 1, 1)
        back = int(rng.integers(0, 3650))
        out["DATE - INTERVAL"].append(f"released >= DATE '{day}' - INTERVAL {back} DAY")
        out["DATE written out"].append(f"released >= DATE '{day - dt.timedelta(days=back)}'")
        out["< TIMESTAMP on a date"].append(f"released < TIMESTAMP '{day} 12:00:00'")
        out["<= DATE"].append(f"released <= DATE '{day}'")
        out["len(tags) >= 2"].append(f"len(tags) >= 2 AND type = '{kind[i]}'")
    return out


# Forms in pairs that select the same rows (the second, a plain form), and alone.
FORMS = [
    "year % 10 = d",
    "year IN (...)",
    "DATE - INTERVAL",
    "DATE written out",
    "< TIMESTAMP on a date",
    "<= DATE",
    "len(tags) >= 2",
]
PAIRS = [(0, 1), (2, 3), (4, 5)]


def main() -> None:
    ap = synthetic_parser(__doc__)
    ap.add_argument("--nprobe", type=int, default=4)
    args = ap.parse_args()
    catalog, train, batch = synthetic_data(args)
    index = hqi.build(
        catalog.vectors,
        catalog.attributes,
        catalog.ids,
        workload=train.filters,
        threads=args.threads,
    )
    forms = batches(catalog, batch.anchors, seed=7)
    print(
        f"N = {args.n:,}, d = {args.dim}, {args.queries:,} queries, {args.threads} threads, "
        f"medians of {args.repeats}, filters parsed anew in each timed search"
    )
    print(f"| filter | exact, q/s | nprobe {args.nprobe}, q/s | recall@10 | distinct filters |")
    print("|---|---|---|---|---|")
    exact_ids: dict[str, np.ndarray] = {}
    for name in FORMS:
        filters = forms[name]
        for opts in ({"exact": True}, {"nprobe": args.nprobe}):  # warm (compiled code, caches)
            index.search(batch.queries, filters, k=10, threads=args.threads, **opts)
        s_exact, truth = median_timed(
            lambda f=filters: index.search(
                batch.queries, f, k=10, exact=True, threads=args.threads
            ),
            args.repeats,
            index.clear_filter_caches,
        )
        s_probe, res = median_timed(
            lambda f=filters: index.search(
                batch.queries, f, k=10, nprobe=args.nprobe, probe_ratio=1.1, threads=args.threads
            ),
            args.repeats,
            index.clear_filter_caches,
        )
        exact_ids[name] = truth.ids
        recall = float(recall_at_k(res, truth).mean())
        q = len(filters)
        print(
            f"| `{name}` | {q / s_exact:,.0f} | {q / s_probe:,.0f} | {recall:.4f} | "
            f"{len(set(filters)):,} |"
        )
    for a, b in PAIRS:
        same = np.array_equal(exact_ids[FORMS[a]], exact_ids[FORMS[b]])
        print(f"exact ids of `{FORMS[a]}` and `{FORMS[b]}` equal: {same}")


if __name__ == "__main__":
    main()
