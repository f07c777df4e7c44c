"""Exact batch throughput (no learned layout) against a naive per-query numpy loop.

Both sides parse and evaluate filters with a cold cache in every repeat; the
naive loop runs on a random sample of the batch (it is slow), and throughput
is queries per second on each side's own set.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import hqi
from hqi.collection import Metric
from hqi.datasets import make_catalog, make_workload
from hqi.evaluation import recall_at_k
from hqi.execution.naive import naive_search


@dataclass(frozen=True)
class Config:
    n: int = 200_000
    dim: int = 128
    queries: int = 5_000
    naive_sample: int = 1_000
    k: int = 10
    repeats: int = 3
    threads: int = 2
    seed: int = 0


def run(cfg: Config) -> dict[str, object]:
    catalog = make_catalog(cfg.n, cfg.dim, seed=cfg.seed)
    workload = make_workload(catalog, cfg.queries, k=cfg.k, seed=cfg.seed + 1)
    sample = np.random.default_rng(cfg.seed).choice(
        cfg.queries, size=min(cfg.naive_sample, cfg.queries), replace=False
    )
    # The executor's compiled pass is built once per process (numba), not per batch:
    # compile it before timing, on a throwaway index.
    hqi.build(catalog.vectors[:100]).search(catalog.vectors[:1], None, 1)
    batch_s, naive_s = [], []
    for _ in range(cfg.repeats):
        index = hqi.build(catalog.vectors, catalog.attributes, catalog.ids)  # cold caches
        t0 = time.perf_counter()
        result = index.search(
            workload.queries, workload.filters, cfg.k, threads=cfg.threads, exact=True
        )
        batch_s.append(time.perf_counter() - t0)

        index = hqi.build(catalog.vectors, catalog.attributes, catalog.ids)
        with threadpool_limits(limits=cfg.threads, user_api="blas"):
            t0 = time.perf_counter()
            masks = [index.mask(workload.filters[i]) for i in sample]
            pos, dist = naive_search(
                index.vectors, masks, workload.queries[sample], cfg.k, Metric.L2
            )
            naive_s.append(time.perf_counter() - t0)
    truth = hqi.Result(np.where(pos >= 0, index.ids[np.maximum(pos, 0)], -1), dist)
    found = hqi.Result(result.ids[sample], result.distances[sample])
    batch_qps = cfg.queries / statistics.median(batch_s)
    naive_qps = len(sample) / statistics.median(naive_s)
    return {
        "config": asdict(cfg),
        "machine": {"python": platform.python_version(), "cpu": platform.processor()},
        "batch_seconds": batch_s,
        "naive_seconds": naive_s,
        "batch_qps_median": batch_qps,
        "naive_qps_median": naive_qps,
        "ratio": batch_qps / naive_qps,
        "distinct_filters": result.stats["groups"],
        "distance_computations_per_query": result.stats["rows_scanned"] / cfg.queries,
        "recall_vs_naive": float(recall_at_k(found, truth).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for field, default in asdict(Config()).items():
        parser.add_argument(f"--{field.replace('_', '-')}", type=int, default=default)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = vars(parser.parse_args())
    out = Path(args.pop("out"))
    cfg = Config(**args)
    figures = run(cfg)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"exact_batch-{stamp}.json").write_text(json.dumps(figures, indent=2))
    print(
        f"exact batch vs naive per-query loop: N={cfg.n:,} d={cfg.dim} Q={cfg.queries:,} "
        f"k={cfg.k} threads={cfg.threads} repeats={cfg.repeats}"
    )
    print(f"  batch : {figures['batch_qps_median']:>10,.0f} queries/s (median)")
    print(
        f"  naive : {figures['naive_qps_median']:>10,.0f} queries/s (median, "
        f"{min(cfg.naive_sample, cfg.queries):,}-query sample)"
    )
    print(
        f"  ratio : {figures['ratio']:.2f}x   recall@{cfg.k} vs naive: "
        f"{figures['recall_vs_naive']:.4f}   distinct filters: "
        f"{figures['distinct_filters']:,.0f}"
    )


if __name__ == "__main__":
    main()
