"""When to build again: Index.drift's error ratio against the recall it loses.

.venv/bin/python bench/drift.py --n 200000 --queries 5000

Each scenario builds an index on some of the catalog's rows and changes it
to hold all of them (or, for the delete, fewer), then compares it with a
build of the same rows: ``Index.drift()``'s error ratio and advice, and
recall@10 of the whole batch (against exact answers) at the default nprobe
and at nprobe 2 with probe_ratio 1.1, for the changed index and for the
build. Scenarios: rows added like the built ones (a random share held
back, then added), rows of an entity type the build never saw (all rows
of that type held back, then added), and a random quarter deleted. The
layout of every build is learned from the same training workload.
"""

from __future__ import annotations

import time

import numpy as np

import hqi
from common import harness_data, harness_parser
from hqi.evaluation import recall_at_k


def main() -> None:
    args = harness_parser(__doc__).parse_args()
    catalog, train_workload, batch = harness_data(args)
    train = train_workload.filters
    q, f = batch.queries, batch.filters
    types = np.asarray(catalog.attributes.column("type").to_pylist())
    rng = np.random.default_rng(0)

    def build(rows: np.ndarray) -> hqi.Index:
        return hqi.build(
            catalog.vectors[rows],
            catalog.attributes.take(rows),
            catalog.ids[rows],
            workload=train,
            threads=args.threads,
        )

    def recalls(index: hqi.Index, truth: hqi.Result) -> list[float]:
        out = []
        for opts in ({}, {"nprobe": 2, "probe_ratio": 1.1}):
            found = index.search(q, f, k=10, threads=args.threads, **opts)
            out.append(float(recall_at_k(found, truth).mean()))
        return out

    everything = np.arange(args.n)
    held_back = {
        "10% added like the built rows": np.sort(rng.permutation(args.n)[: args.n // 10]),
        "25% added like the built rows": np.sort(rng.permutation(args.n)[: args.n // 4]),
        "podcasts added, none built": np.flatnonzero(types == "podcast"),
        "books added, none built": np.flatnonzero(types == "book"),
        "songs added, none built": np.flatnonzero(types == "song"),
    }
    whole = build(everything)
    truth_all = whole.search(q, f, k=10, exact=True, threads=args.threads)
    built_all = recalls(whole, truth_all)
    print(f"N = {args.n:,}, d = {args.dim}, {args.queries:,} queries, {args.threads} threads")
    print(
        "| scenario | rows changed | error ratio | rebuild advised | recall@10 default: "
        "changed / built | nprobe 2, ratio 1.1: changed / built | drift() s |"
    )
    print("|---|---|---|---|---|---|---|")

    def row(name: str, index: hqi.Index, changed: int, built: list[float], truth) -> None:
        t0 = time.perf_counter()
        drift = index.drift()
        seconds = time.perf_counter() - t0
        got = recalls(index, truth)
        print(
            f"| {name} | {changed:,} | {drift['error_ratio']:.3f} | "
            f"{'yes' if drift['rebuild_advised'] else 'no'} | {got[0]:.4f} / {built[0]:.4f} | "
            f"{got[1]:.4f} / {built[1]:.4f} | {seconds:.3f} |"
        )

    for name, later in held_back.items():
        first = np.setdiff1d(everything, later)
        index = build(first)
        index.add(catalog.vectors[later], catalog.attributes.take(later), catalog.ids[later])
        row(name, index, later.size, built_all, truth_all)

    gone = np.sort(rng.permutation(args.n)[: args.n // 4])
    kept = np.setdiff1d(everything, gone)
    index = build(everything)
    index.delete(catalog.ids[gone])
    rebuilt = build(kept)
    truth = rebuilt.search(q, f, k=10, exact=True, threads=args.threads)
    row("25% deleted at random", index, gone.size, recalls(rebuilt, truth), truth)


if __name__ == "__main__":
    main()
