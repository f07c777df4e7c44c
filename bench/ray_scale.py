"""Batch search on Ray with 1 and 2 local workers, against the local backend.

Same data, layout and batch for every row (the built-in catalog and
workload; the layout learned from another sample). For each mode it reports
the median over ``--repeats`` of the whole ``Index.search`` call, and for Ray
what is sent per query (pickled plan shares and query vectors) and returned.
Ray runs locally with ``--cpus`` CPUs (2 here); each actor uses one core and
one BLAS thread; the local backend uses ``--threads``.

    .venv/bin/python bench/ray_scale.py [--n 200000] [--dim 128] [--queries 5000]
"""

from __future__ import annotations

import pickle
import time

import numpy as np

import hqi
from common import synthetic_data, synthetic_parser
from hqi.distributed import split_plan
from hqi.execution.options import SearchOptions


def main() -> None:
    ap = synthetic_parser(__doc__)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--out", default=None, help="save the index here (default: a temp dir)")
    args = ap.parse_args()

    import tempfile

    import ray

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    catalog, train, batch = synthetic_data(args)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.out or f"{tmp}/index"
        t0 = time.perf_counter()
        hqi.build(catalog.vectors, catalog.attributes, catalog.ids, workload=train.filters).save(
            path
        )
        local_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        hqi.build(
            catalog.vectors,
            catalog.attributes,
            catalog.ids,
            workload=train.filters,
            backend="ray",
        )
        ray_build = time.perf_counter() - t0
        index = hqi.open(path)
        info = index.info()
        print(
            f"{args.n:,} x {args.dim}, {args.queries:,} queries, {info['partitions']} partitions, "
            f"{info['lists']} lists; local Ray with {args.cpus} CPUs; median of {args.repeats}"
        )
        print(f"build: local {local_build:.1f} s, Ray {ray_build:.1f} s (lists as Ray tasks)")
        rows = []
        for label, opts in (("approximate (default nprobe)", {}), ("exact", {"exact": True})):
            local = index.search(batch.queries, batch.filters, 10, threads=args.threads, **opts)
            base = None
            for mode, extra in (
                ("local", {"threads": args.threads}),
                ("ray, 1 worker", {"backend": "ray", "ray_workers": 1}),
                ("ray, 2 workers", {"backend": "ray", "ray_workers": 2}),
            ):
                index.search(batch.queries[:50], batch.filters[:50], 10, **extra, **opts)
                times = []
                for _ in range(args.repeats):
                    index.clear_filter_caches()  # each timed search parses anew
                    t0 = time.perf_counter()
                    res = index.search(batch.queries, batch.filters, 10, **extra, **opts)
                    times.append(time.perf_counter() - t0)
                    assert np.array_equal(res.ids, local.ids), "results differ from local"
                secs = float(np.median(times))
                qps = args.queries / secs
                base = base or qps
                sent = f", planning {res.stats['plan_seconds'] / res.stats['seconds']:.0%} of it"
                if extra.get("backend") == "ray":
                    o = SearchOptions.from_kwargs(k=10, backend="ray", **opts)  # as searched
                    plan = index._plan(batch.queries, batch.filters, o, index._nprobe_for(o))
                    backend = index.ray_backend(None, extra["ray_workers"])
                    shares = split_plan(plan, batch.queries, backend.owner, backend.workers)
                    nbytes = sum(len(pickle.dumps(s, protocol=5)) for s in shares)
                    back = sum(s.query_ids.size for s in shares) * 10 * 12
                    sent += (
                        f", sent {nbytes / args.queries:,.0f} B/query "
                        f"(returned {back / args.queries:,.0f} B/query)"
                    )
                print(f"  {label:<24} {mode:<15} {qps:>8,.0f} q/s  ({qps / base:.2f}x local){sent}")
                rows.append((label, mode, qps))
    ray.shutdown()


if __name__ == "__main__":
    main()
