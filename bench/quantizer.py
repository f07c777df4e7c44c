"""Per-leaf IVF against a shared coarse quantizer with per-leaf lists.

The same layout (learned from one workload sample) with its lists made two
ways (``BuildOptions.quantizer``): k-means inside each partition, or one
k-means over all vectors whose centroids group each partition's rows. Sweeps
nprobe and reports recall@10 (against exact answers) and throughput, median
of ``--repeats``, in one run on the same batch.

    .venv/bin/python bench/quantizer.py [--n 200000] [--dim 128] [--queries 5000]
"""

from __future__ import annotations

import time

import numpy as np

import hqi
from common import synthetic_data, synthetic_parser
from hqi.evaluation import recall_at_k


def main() -> None:
    ap = synthetic_parser(__doc__)
    args = ap.parse_args()
    catalog, train, batch = synthetic_data(args)
    indexes = {}
    for quantizer in ("per-leaf", "shared"):
        t0 = time.perf_counter()
        indexes[quantizer] = hqi.build(
            catalog.vectors,
            catalog.attributes,
            catalog.ids,
            workload=train.filters,
            quantizer=quantizer,
            threads=args.threads,
        )
        info = indexes[quantizer].info()
        print(
            f"{quantizer}: build {time.perf_counter() - t0:.1f} s, {info['partitions']} "
            f"partitions, {info['lists']} lists"
        )
    truth = indexes["per-leaf"].search(batch.queries, batch.filters, 10, exact=True)
    best: dict[tuple[str, float], float] = {}
    for nprobe in (1, 2, 4, 8, 16, 32):
        for quantizer, index in indexes.items():
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                res = index.search(
                    batch.queries, batch.filters, 10, nprobe=nprobe, threads=args.threads
                )
                times.append(time.perf_counter() - t0)
            qps = args.queries / float(np.median(times))
            recall = float(recall_at_k(res, truth).mean())
            rows = res.stats["rows_scanned"] / args.queries
            print(
                f"  {quantizer:<9} nprobe={nprobe:<3} {qps:>7,.0f} q/s  recall@10 {recall:.4f}  "
                f"rows/query {rows:,.0f}"
            )
            for target in (0.90, 0.95, 0.99):
                if recall >= target:
                    best[(quantizer, target)] = max(best.get((quantizer, target), 0.0), qps)
    print("best q/s at recall 0.90 / 0.95 / 0.99:")
    for quantizer in indexes:
        print(
            f"  {quantizer:<9} "
            + " / ".join(
                f"{best.get((quantizer, t), float('nan')):,.0f}" for t in (0.9, 0.95, 0.99)
            )
        )
    for t in (0.9, 0.95, 0.99):
        a, b = best.get(("per-leaf", t)), best.get(("shared", t))
        if a and b:
            print(f"  per-leaf / shared at {t}: {a / b:.2f}x")


if __name__ == "__main__":
    main()
