"""What the learned layout buys, and what a workload that moved costs.

    .venv/bin/python bench/layout.py [--n 200000] [--queries 5000] [--train 2000]

The batch's templates are split in two halves, A and B (every other
template of ``hqi.datasets.TEMPLATES``); the batch holds half B's queries
only. The same rows are built four ways:

- ``none``: no workload, one partition (a plain IVF index with masks);
- ``moved``: the layout learned from half A's filters (the workload moved
  to templates the layout never saw);
- ``all``: learned from every template (the batch's half among them);
- ``fits``: learned from half B's filters (other anchors than the batch's).

Each is searched with the batch at nprobe 1-32 (probe_ratio 1.1) and
exactly; throughput is the median of ``--repeats``, recall@10 against exact
answers. Printed: each layout's best throughput at recall 0.90 / 0.95 /
0.99 (and its ratio to ``none``'s) and its exact batch time, all from one
run.
"""

from __future__ import annotations

import numpy as np

from common import harness_parser, median_timed, sweep_nprobe, target_cells, timed_build
from hqi.datasets import make_catalog, make_workload


def half(filters: list[str], templates: np.ndarray, which: int) -> list[str]:
    """The filters whose template index is even (``which`` 0) or odd (1)."""
    return [f for f, t in zip(filters, templates, strict=True) if t % 2 == which]


def main() -> None:
    args = harness_parser(__doc__).parse_args()
    catalog = make_catalog(args.n, args.dim)
    # Twice the sizes asked for, then halves: each half keeps about the size.
    pool = make_workload(catalog, 2 * args.train, seed=101)
    big = make_workload(catalog, 2 * args.queries, seed=1)
    keep = np.flatnonzero(big.templates % 2 == 1)
    q = big.queries[keep]
    f = [big.filters[i] for i in keep]
    workloads: dict[str, list[str] | None] = {
        "none": None,
        "moved": half(pool.filters, pool.templates, 0),
        "all": pool.filters[: args.train],
        "fits": half(pool.filters, pool.templates, 1),
    }
    print(
        f"N = {args.n:,}, d = {args.dim}, {len(f):,} queries (half B), "
        f"{args.threads} threads, median of {args.repeats}"
    )

    truth = None
    rows_out = []
    for name, workload in workloads.items():
        index, build_s = timed_build(catalog, workload, args.threads)
        exact_s, exact = median_timed(
            lambda index=index: index.search(q, f, k=10, exact=True, threads=args.threads),
            args.repeats,
            index.clear_filter_caches,
        )
        if truth is None:
            truth = exact
        best = sweep_nprobe(index, q, f, truth, args, f"{name:<6}")
        rows_out.append((name, index.info()["partitions"], build_s, best, exact_s))

    print()
    base = rows_out[0][3]
    print(
        "| layout learned from | partitions | build s | q/s at 0.90 | at 0.95 | at 0.99 | exact s |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, parts, build_s, best, exact_s in rows_out:
        cells = target_cells(best, base, "none")
        print(f"| {name} | {parts} | {build_s:.1f} | " + " | ".join(cells) + f" | {exact_s:.3f} |")


if __name__ == "__main__":
    main()
