"""Adding rows to a built index (Index.add) against building again.

.venv/bin/python bench/update.py --n 1000000 --queries 10000 --added 0.1 0.25

For each fraction f: an index is built on the first (1 - f) N rows (layout
learned from the harness's training workload) and the rest is added with
``Index.add``; a second index is built on all N rows. Printed for both: the
time to get there (the add alone against the whole build), and recall@10
and batch time (median of ``--repeats``) at each nprobe, against the exact
answers on all N rows. The added rows are deleted and added again
``--repeats`` times: the first add, the median of the later ones and of the
deletes are printed. Every figure is from this one run.
"""

from __future__ import annotations

import statistics
import time

import hqi
from common import synthetic_parser
from hqi.datasets import make_catalog, make_workload
from hqi.evaluation import recall_at_k


def main() -> None:
    ap = synthetic_parser(__doc__)
    ap.add_argument("--train", type=int, default=5_000)
    ap.add_argument("--added", type=float, nargs="+", default=[0.1, 0.25])
    ap.add_argument("--nprobe", type=int, nargs="+", default=[1, 2, 4, 8])
    args = ap.parse_args()
    catalog = make_catalog(args.n, args.dim)
    train = make_workload(catalog, args.train, seed=101).filters
    batch = make_workload(catalog, args.queries, seed=1)
    q, f = batch.queries, batch.filters

    def timed(make):
        t0 = time.perf_counter()
        out = make()
        return out, time.perf_counter() - t0

    def build(rows: slice) -> hqi.Index:
        stop = rows.stop or args.n
        return hqi.build(
            catalog.vectors[rows],
            catalog.attributes.slice(0, stop),
            catalog.ids[rows],
            workload=train,
            threads=args.threads,
        )

    hqi.build(catalog.vectors[:20_000], catalog.attributes.slice(0, 20_000), workload=train)
    whole, build_s = timed(lambda: build(slice(0, args.n)))  # after a warm-up build
    truth = whole.search(q, f, k=10, exact=True, threads=args.threads)
    whole.search(q[:200], f[:200], k=10)  # warm-up

    def sweep(index: hqi.Index) -> list[tuple[int, float, float]]:
        out = []
        for nprobe in args.nprobe:
            runs = []
            for _ in range(max(1, args.repeats)):
                index.clear_filter_caches()  # each timed search parses anew, as hqi bench's
                runs.append(index.search(q, f, k=10, nprobe=nprobe, threads=args.threads))
            seconds = statistics.median(r.stats["seconds"] for r in runs)
            out.append((nprobe, float(recall_at_k(runs[-1], truth).mean()), seconds))
        return out

    base = sweep(whole)
    print(f"N = {args.n:,}, d = {args.dim}, {args.queries:,} queries, {args.threads} threads")
    print(f"build of all rows: {build_s:.2f} s, {whole.info()['lists']} lists")
    for fraction in args.added:
        n0 = round(args.n * (1 - fraction))
        index = build(slice(0, n0))
        added = (catalog.vectors[n0:], catalog.attributes.slice(n0), catalog.ids[n0:])
        # Add, delete, add again, ...: the first add also pays for touching
        # fresh memory, the later ones reuse what the deletes freed.
        adds, deletes = [], []
        for cycle in range(max(1, args.repeats)):
            adds.append(timed(lambda index=index, added=added: index.add(*added))[1])
            if cycle < max(1, args.repeats) - 1:
                deletes.append(timed(lambda index=index, n0=n0: index.delete(catalog.ids[n0:]))[1])
        index.search(q[:200], f[:200], k=10)  # warm-up
        exact = index.search(q, f, k=10, exact=True, threads=args.threads)
        exact_recall = float(recall_at_k(exact, truth).mean())  # ties count as hits
        later = statistics.median(adds[1:]) if len(adds) > 1 else adds[0]
        print(
            f"\nadded {args.n - n0:,} rows ({fraction:.0%}) to a build of {n0:,}: "
            f"first {adds[0]:.2f} s, then {later:.2f} s (median of {max(len(adds) - 1, 1)}); "
            f"the build of all is {build_s / adds[0]:.1f}x / {build_s / later:.1f}x that; "
            f"{index.info()['lists']} lists; exact search's recall@10 {exact_recall:.4f}"
        )
        if deletes:
            print(
                f"deleting them again: {statistics.median(deletes):.2f} s "
                f"(median of {len(deletes)})"
            )
        print("nprobe | recall@10 added / built | batch s added / built")
        for (nprobe, r_add, s_add), (_, r_all, s_all) in zip(sweep(index), base, strict=True):
            print(f"{nprobe:6d} | {r_add:.4f} / {r_all:.4f} | {s_add:.3f} / {s_all:.3f}")


if __name__ == "__main__":
    main()
