"""The demo job: generate the built-in catalog, build, save, reopen, search the batch.

It reports the batch throughput, and checks a sample of queries against the
naive per-query numpy loop: the speed ratio and the recall@k of the batch
answers against those independent exact answers.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from hqi.api import build, open
from hqi.collection import Metric
from hqi.datasets import make_catalog, make_workload
from hqi.evaluation import recall_at_k
from hqi.execution.naive import naive_search
from hqi.execution.options import available_cores
from hqi.execution.result import Result

__all__ = ["run_demo"]


@contextmanager
def _index_dir(out: Path | None) -> Iterator[Path]:
    if out is not None:
        yield out
        return
    with tempfile.TemporaryDirectory(prefix="hqi-demo-") as tmp:
        yield Path(tmp) / "index"


def run_demo(
    *,
    n: int = 200_000,
    dim: int = 128,
    num_queries: int = 5_000,
    k: int = 10,
    seed: int = 0,
    out: Path | None = None,
    threads: int | None = None,
    naive_sample: int = 500,
    progress: Callable[[], Any],
    summary: Callable[[str, Sequence[tuple[str, str]]], None],
) -> dict[str, float]:
    """Run the demo; returns its figures (also printed through ``summary``)."""
    figures: dict[str, float] = {}
    with progress() as bar:
        task = bar.add_task("generating catalog", total=4)
        t0 = time.perf_counter()
        catalog = make_catalog(n, dim, seed=seed)
        workload = make_workload(catalog, num_queries, k=k, seed=seed + 1)
        figures["generate_s"] = time.perf_counter() - t0
        bar.update(task, advance=1, description="building index")
        with _index_dir(out) as path:
            t0 = time.perf_counter()
            built = build(catalog.vectors, catalog.attributes, catalog.ids, metric="l2")
            built.save(path)
            figures["build_s"] = time.perf_counter() - t0
            bar.update(task, advance=1, description="opening index")
            index = open(path)
            bar.update(task, advance=1, description="searching")
            search_task = bar.add_task("queries", total=num_queries)
            t0 = time.perf_counter()
            result = index.search(
                workload.queries,
                workload.filters,
                k,
                threads=threads,
                on_progress=lambda done: bar.update(search_task, advance=done),
            )
            figures["search_s"] = time.perf_counter() - t0
            bar.update(task, advance=1, description="naive per-query loop")

            sample = np.random.default_rng(seed).choice(
                num_queries, size=min(naive_sample, num_queries), replace=False
            )
            vectors = index.vectors
            fresh = open(path, verify=False)  # a cold filter cache: the loop parses too
            with threadpool_limits(limits=threads or available_cores(), user_api="blas"):
                t0 = time.perf_counter()
                masks = [fresh.mask(workload.filters[i]) for i in sample]
                pos, dist = naive_search(vectors, masks, workload.queries[sample], k, Metric.L2)
                naive_s = time.perf_counter() - t0
    batch_qps = num_queries / figures["search_s"]
    naive_qps = len(sample) / naive_s
    truth = Result(pos, dist)
    found = Result(result.ids[sample], result.distances[sample])
    recall = float(recall_at_k(found, truth).mean())
    selectivity = np.array([m.mean() for m in masks])
    figures.update(
        batch_qps=batch_qps, naive_qps=naive_qps, speedup=batch_qps / naive_qps, recall=recall
    )
    summary(
        "hqi demo: exact batch hybrid search on the built-in catalog",
        [
            ("entities x dim", f"{n:,} x {dim}"),
            ("queries (k)", f"{num_queries:,} ({k})"),
            ("distinct filters", f"{int(result.stats['groups']):,}"),
            ("filter selectivity (median, sample)", f"{100 * np.median(selectivity):.2f}%"),
            (
                "generate / build+save",
                f"{figures['generate_s']:.1f} s / {figures['build_s']:.1f} s",
            ),
            ("batch search time", f"{figures['search_s']:.2f} s"),
            ("batch throughput", f"{batch_qps:,.0f} queries/s"),
            (f"naive per-query loop ({len(sample)} queries)", f"{naive_qps:,.0f} queries/s"),
            ("batch / naive", f"{batch_qps / naive_qps:.2f}x"),
            (f"recall@{k} vs naive exact", f"{recall:.4f}"),
            ("index", str(out) if out else "temporary (use --out to keep it)"),
        ],
    )
    return figures
