"""Run systems over a dataset and a workload; collect (system, params, QPS, recall).

Per system: build once (time and resident memory added), untimed warm-up
searches (the first grid point, and each kind of search that makes state on
first use: the system's ``warmup_grid``), then every grid point ``repeats``
times; the reported time is the median. Before each timed search the
system forgets what it keeps per filter text or literal (``cold_filters``),
so that every repeat parses and compiles the batch's filters as new ones:
the repeats are one batch, and reusing its parsed filters made hqi's 1M
searches about 30% faster than a batch of new texts of the same templates. The warm-up time is kept
(``builds[system]["warmup_s"]``; an exact one's also as ``"first_exact_s"``):
hqi's first exact search makes the rows' bfloat16 copy and compiles the
products' shapes, once per index and process. Recall@k is judged against
hqi's exact answers (themselves tested against brute force) with the
tie-robust definition of :mod:`hqi.evaluation`, on the distances of the
returned ids recomputed exactly. Threads are limited for every system.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import hqi
from hqi._threads import limit_threads
from hqi.benchmark.systems import SYSTEMS, BenchData
from hqi.collection import Metric
from hqi.evaluation import recall_at_k
from hqi.execution.exact import exact_distances

__all__ = ["BenchConfig", "Point", "load_data", "run_benchmark"]


@dataclass(frozen=True)
class BenchConfig:
    dataset: str = "synthetic"
    n: int = 100_000
    dim: int = 64
    queries: int = 2_000
    train_queries: int = 2_000
    k: int = 10
    threads: int = 2
    repeats: int = 3
    # Each timed search starts without the filter caches (parsed texts, compiled
    # programs, ...: System.clear_filter_caches), as a batch of new filter texts
    # would; False reuses them across repeats, as runs up to 58 did.
    cold_filters: bool = True
    seed: int = 0
    systems: tuple[str, ...] = tuple(SYSTEMS)


@dataclass
class Point:
    system: str
    params: dict[str, Any]
    qps: float
    recall: float
    seconds: list[float] = field(default_factory=list)
    queries: int = 0


def load_data(cfg: BenchConfig) -> BenchData:
    """The benchmark data: the built-in generator, or a real dataset by name."""
    if cfg.dataset == "synthetic":
        from hqi.datasets import make_catalog, make_workload

        catalog = make_catalog(cfg.n, cfg.dim, seed=cfg.seed)
        train = make_workload(catalog, cfg.train_queries, k=cfg.k, seed=cfg.seed + 101)
        batch = make_workload(catalog, cfg.queries, k=cfg.k, seed=cfg.seed + 1)
        return BenchData(
            f"synthetic-{cfg.n}x{cfg.dim}",
            catalog.vectors,
            catalog.attributes,
            train.filters,
            batch.queries,
            batch.filters,
            cfg.k,
        )
    from hqi.benchmark.real import load_real

    return load_real(
        cfg.dataset, queries=cfg.queries, train_queries=cfg.train_queries, k=cfg.k, seed=cfg.seed
    )


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            import os

            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # pragma: no cover - not Linux
        return 0


def gemm_rate(dim: int, threads: int) -> float:
    """Measured float32 GEMM rate (flop/s): 256 queries x 65,536 rows x dim, each
    way round (queries by rows and rows by queries), into an output made once
    and reused, median of 5 after one untimed product; the faster way.

    Before run 42 each product made a new 64 MB result, and its page faults
    were measured with it: 164-208 GFLOP/s on this project's 2-core machine,
    against 270-290 reused, which made the floor too lenient by about 1.5x."""
    rng = np.random.default_rng(0)
    q = rng.standard_normal((256, dim), dtype=np.float32)
    x = rng.standard_normal((65536, dim), dtype=np.float32)
    best = 0.0
    with limit_threads(threads):
        for a, b in ((q, x), (x, q)):
            out = np.empty((a.shape[0], b.shape[0]), dtype=np.float32)
            np.matmul(a, b.T, out=out)
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                np.matmul(a, b.T, out=out)
                times.append(time.perf_counter() - t0)
            best = max(best, 2.0 * 256 * 65536 * dim / statistics.median(times))
    return best


def gemm_rate_bf16(dim: int, threads: int) -> float | None:
    """Measured bfloat16 GEMM rate (flop/s) of the products exact search runs
    on AMX (:mod:`hqi.execution.products`: ``BLOCK_ROWS`` rows x
    ``QUERY_BLOCK`` queries into the thread's reused result, torch with
    ``threads`` threads), median of 5 passes over 65,536 rows; None where
    they are not available."""
    from hqi.execution.products import (
        BLOCK_ROWS,
        QUERY_BLOCK,
        _product,
        bf16_available,
        torch_threads,
    )

    if not bf16_available():
        return None
    import torch

    rng = np.random.default_rng(0)
    q = torch.from_numpy(rng.standard_normal((QUERY_BLOCK, dim), dtype=np.float32)).bfloat16()
    x = torch.from_numpy(rng.standard_normal((65536, dim), dtype=np.float32)).bfloat16()
    times = []
    with torch_threads(threads):
        _product(x[:BLOCK_ROWS], q)  # the shape's kernel is compiled on its first call
        for _ in range(5):
            t0 = time.perf_counter()
            for a in range(0, x.shape[0], BLOCK_ROWS):
                _product(x[a : a + BLOCK_ROWS], q)
            times.append(time.perf_counter() - t0)
    return 2.0 * QUERY_BLOCK * 65536 * dim / statistics.median(times)


def exact_floor(index: hqi.Index, data: BenchData, threads: int) -> dict[str, float]:
    """The arithmetic floor of exact answers: 2 d (sum of qualifying rows) / GEMM
    rate, for float32 BLAS and, where exact search runs them, bfloat16 products."""
    plan = index.explain(data.queries, data.filters, data.k, exact=True, threads=threads)
    qualifying = float(np.sum(plan.column("qualifying").to_numpy()))
    dim = data.vectors.shape[1]
    rate = gemm_rate(dim, threads)
    floor = {
        "qualifying_rows": qualifying,
        "gemm_flops": rate,
        "floor_s": 2.0 * dim * qualifying / rate,
    }
    if (rate16 := gemm_rate_bf16(dim, threads)) is not None:
        floor |= {"gemm_flops_bf16": rate16, "floor_bf16_s": 2.0 * dim * qualifying / rate16}
    return floor


def run_benchmark(
    cfg: BenchConfig,
    *,
    on_event: Callable[[str, int], None] | None = None,
    on_system: Callable[[list[Point], dict[str, dict[str, float]], BenchData], None] | None = None,
) -> tuple[list[Point], dict[str, dict[str, float]], BenchData]:
    """All systems' points, their build figures (and ``"floor"``), and the data used."""

    def event(what: str, total: int = 0) -> None:
        if on_event is not None:
            on_event(what, total)

    event("preparing data")
    data = load_data(cfg)
    event("exact answers")
    with limit_threads(cfg.threads):
        truth_index = hqi.build(data.vectors, data.attributes)
        truth = truth_index.search(data.queries, data.filters, data.k, exact=True)
    event("exact floor")
    floor = exact_floor(truth_index, data, cfg.threads)
    del truth_index
    points: list[Point] = []
    builds: dict[str, dict[str, float]] = {"floor": floor}
    for name in cfg.systems:
        system = SYSTEMS[name]()
        gc.collect()
        before = _rss_bytes()
        event(f"building {name}")
        t0 = time.perf_counter()
        with limit_threads(cfg.threads):
            system.build(data, cfg.threads)
        builds[name] = {
            "build_s": time.perf_counter() - t0,
            "memory_mb": max(0, _rss_bytes() - before) / 2**20,
        }
        grid = system.grid()
        event(f"searching {name}", len(grid))
        nq = min(len(data.queries), getattr(system, "max_queries", len(data.queries)))
        warmup = getattr(system, "warmup_grid", None)
        builds[name]["warmup_s"] = 0.0
        for params in grid[:1] if warmup is None else warmup():
            with limit_threads(cfg.threads):  # warm-up: lazy encodings, caches, page faults
                t0 = time.perf_counter()
                system.search(data, params, cfg.threads)
                seconds = time.perf_counter() - t0
            builds[name]["warmup_s"] += seconds
            if params.get("exact"):
                builds[name]["first_exact_s"] = seconds
        for params in grid:
            times = []
            for _ in range(cfg.repeats):
                if cfg.cold_filters:
                    system.clear_filter_caches()  # untimed
                with limit_threads(cfg.threads):
                    t0 = time.perf_counter()
                    ids = system.search(data, params, cfg.threads)
                    times.append(time.perf_counter() - t0)
            ids = ids[:nq]
            found = hqi.Result(
                ids, exact_distances(data.vectors, data.queries[:nq], ids, Metric.L2)
            )
            sub = hqi.Result(truth.ids[:nq], truth.distances[:nq])
            recall = float(recall_at_k(found, sub).mean())
            points.append(Point(name, params, nq / statistics.median(times), recall, times, nq))
            event("point", 1)
        del system
        if on_system is not None:  # partial results survive an interrupted run
            on_system(points, builds, data)
    return points, builds, data


def results_dir(root: Path, cfg: BenchConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    size = f"-{cfg.n}x{cfg.dim}" if cfg.dataset == "synthetic" else ""
    return root / f"{cfg.dataset}{size}-q{cfg.queries}-{stamp}"
