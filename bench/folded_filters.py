"""``lower(col) = 'x'`` and friends: looked up by bisection against a pass over the values.

    .venv/bin/python bench/folded_filters.py [--values 500000] [--n 200000] [--queries 5000]

1. A string dictionary of ``--values`` distinct values; 2,000 literal or
   prefix patterns of each form (``lower(c) = 'x'``, ``upper(c) = 'X'``,
   ``c ILIKE 'x'``, ``c LIKE 'x'``, ``lower(c) LIKE 'x%'``) matched by
   bisection (the default from ``patterns.LOOKUP_FROM`` values) and by a pass
   over every value; milliseconds per pattern (the one sort of the mapped
   values included), median of ``--repeats``, same codes checked.
2. The built-in catalog (``--n`` rows): one exact search of a batch whose
   filters are ``artist = 'x'``, then the same artists as ``lower(artist) =
   'x'`` and ``upper(artist) = 'X'``; median of ``--repeats``, same ids checked.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

import hqi
from common import synthetic_parser
from hqi.datasets import make_catalog, make_workload
from hqi.query import patterns
from hqi.query.patterns import escaped, pattern_codes
from hqi.query.predicate import Like


def per_pattern_ms(preds: list[Like], values: list[str], repeats: int) -> tuple[float, list]:
    times, found = [], []
    for _ in range(repeats):
        dictionary = np.array(values, dtype=object)  # a new array: nothing cached
        t0 = time.perf_counter()
        found = [pattern_codes(p, dictionary) for p in preds]
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / len(preds) * 1e3, found


def main() -> None:
    ap = synthetic_parser(__doc__)
    ap.add_argument("--values", type=int, default=500_000)
    args = ap.parse_args()

    values = sorted(f"User_{i:07d}" for i in range(args.values))
    picks = range(1, args.values, max(1, args.values // 2000))
    forms = {
        "lower(c) = 'x'": [Like("c", *escaped(f"user_{i:07d}"), fold="lower") for i in picks],
        "upper(c) = 'X'": [Like("c", *escaped(f"USER_{i:07d}"), fold="upper") for i in picks],
        "c ILIKE 'x'": [Like("c", *escaped(f"user_{i:07d}"), True) for i in picks],
        "c LIKE 'x' (c = 'x')": [Like("c", *escaped(f"User_{i:07d}")) for i in picks],
        "lower(c) LIKE 'x%'": [
            Like("c", escaped(f"user_{i:06d}")[0] + "%", "\\", fold="lower") for i in picks
        ],
    }
    print(f"{args.values:,} distinct values, {len(picks):,} patterns a form, ms per pattern")
    print("| form | bisection | a pass over the values | ratio |")
    print("|---|---|---|---|")
    default = patterns.LOOKUP_FROM
    for name, preds in forms.items():
        fast, got = per_pattern_ms(preds, values, args.repeats)
        patterns.LOOKUP_FROM = 1 << 62
        slow, want = per_pattern_ms(preds, values, args.repeats)
        patterns.LOOKUP_FROM = default
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True)), name
        print(f"| {name} | {fast:.3f} | {slow:.3f} | {slow / fast:.0f}x |")

    catalog = make_catalog(args.n, args.dim)
    batch = make_workload(catalog, args.queries, seed=1)
    artists = np.asarray(catalog.attributes.column("artist").to_pylist(), dtype=object)
    chosen = artists[batch.anchors]
    index = hqi.build(catalog.vectors, catalog.attributes, catalog.ids, threads=args.threads)
    filters = {
        "artist = 'x'": [f"artist = '{a}'" for a in chosen],
        "lower(artist) = 'x'": [f"lower(artist) = '{a.lower()}'" for a in chosen],
        "upper(artist) = 'X'": [f"upper(artist) = '{a.upper()}'" for a in chosen],
    }
    print(
        f"\nexact search, N = {args.n:,}, {args.queries:,} queries, "
        f"{len(set(chosen)):,} distinct artists of {len(set(artists)):,}"
    )
    reference = None
    for name, f in filters.items():
        index.search(batch.queries, f, k=10, exact=True, threads=args.threads)  # warm
        times = []
        for _ in range(args.repeats):
            index.clear_filter_caches()  # each timed search parses anew, as hqi bench's
            t0 = time.perf_counter()
            res = index.search(batch.queries, f, k=10, exact=True, threads=args.threads)
            times.append(time.perf_counter() - t0)
        reference = res.ids if reference is None else reference
        same = np.array_equal(res.ids, reference)
        print(f"  {name:<22} {statistics.median(times):.3f} s  same ids: {same}")


if __name__ == "__main__":
    main()
