"""What several benchmark scripts share: the synthetic data set-up and its options."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar, cast

from hqi.datasets import Catalog, Workload, make_catalog, make_workload

if TYPE_CHECKING:
    import hqi

T = TypeVar("T")


def median_seconds(fn: Callable[[], object], repeats: int = 7) -> float:
    """The median wall time of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


NPROBES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
TARGETS = (0.90, 0.95, 0.99)


def median_timed(
    fn: Callable[[], T], repeats: int, before: Callable[[], object] | None = None
) -> tuple[float, T]:
    """(the median wall time of ``repeats`` calls of ``fn``, the last call's result);
    ``before`` runs untimed before each call: an index's or a baseline's
    ``clear_filter_caches``, so that every call parses and compiles its
    filters as new texts, as ``hqi bench`` times them."""
    times, out = [], None
    for _ in range(repeats):
        if before is not None:
            before()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), cast(T, out)


def sweep_nprobe(
    index: hqi.Index,
    queries: object,
    filters: list[str],
    truth: hqi.Result,
    args: argparse.Namespace,
    label: str,
) -> dict[float, tuple[float, int]]:
    """Search at each of :data:`NPROBES` (probe_ratio 1.1, median of
    ``args.repeats``), print each point's throughput, recall@10 against
    ``truth`` and rows per query, and return the best (q/s, nprobe) at each of
    :data:`TARGETS` reached."""
    from hqi.evaluation import recall_at_k

    best: dict[float, tuple[float, int]] = {}
    for nprobe in NPROBES:
        s, res = median_timed(
            lambda nprobe=nprobe: index.search(
                queries, filters, k=10, nprobe=nprobe, probe_ratio=1.1, threads=args.threads
            ),
            args.repeats,
            index.clear_filter_caches,
        )
        qps = len(filters) / s
        recall = float(recall_at_k(res, truth).mean())
        rows = res.stats["rows_scanned"] / len(filters)
        print(
            f"  {label} nprobe={nprobe:<3} {qps:>8,.0f} q/s  "
            f"recall@10 {recall:.4f}  rows/query {rows:>9,.0f}"
        )
        for target in TARGETS:
            if recall >= target and qps > best.get(target, (0.0, 0))[0]:
                best[target] = (qps, nprobe)
    return best


def target_cells(
    best: dict[float, tuple[float, int]], base: dict[float, tuple[float, int]], base_name: str
) -> list[str]:
    """Markdown cells of the best throughput at each of :data:`TARGETS`, with its
    ratio to ``base``'s (none when ``best`` is ``base``)."""
    cells = []
    for t in TARGETS:
        if t not in best:
            cells.append("not reached")
            continue
        vs = (
            f", {best[t][0] / base[t][0]:.2f}x {base_name}"
            if t in base and best is not base
            else ""
        )
        cells.append(f"{best[t][0]:,.0f} (nprobe {best[t][1]}{vs})")
    return cells


def synthetic_parser(doc: str) -> argparse.ArgumentParser:
    """Options for a run on the built-in catalog: size, batch, repeats, threads."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=5_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    return ap


def synthetic_data(args: argparse.Namespace) -> tuple[Catalog, Workload, Workload]:
    """(catalog, workload to learn the layout from, batch): the demo's seeds."""
    catalog = make_catalog(args.n, args.dim, seed=0)
    train = make_workload(catalog, max(1000, args.queries // 2), seed=100)
    batch = make_workload(catalog, args.queries, seed=1)
    return catalog, train, batch


def harness_parser(doc: str) -> argparse.ArgumentParser:
    """:func:`synthetic_parser`'s options and ``--train``, the size of the workload
    the layout is learned from (:func:`harness_index`)."""
    ap = synthetic_parser(doc)
    ap.add_argument("--train", type=int, default=2_000)
    return ap


def harness_data(args: argparse.Namespace) -> tuple[Catalog, Workload, Workload]:
    """(catalog, workload to learn the layout from, batch) with ``hqi bench``'s
    seeds: ``args.train`` queries of seed 101, a batch of seed 1."""
    catalog = make_catalog(args.n, args.dim)
    train = make_workload(catalog, args.train, seed=101)
    batch = make_workload(catalog, args.queries, seed=1)
    return catalog, train, batch


def timed_build(
    catalog: Catalog, workload: list[str] | None, threads: int
) -> tuple[hqi.Index, float]:
    """(the catalog's index, learned from ``workload``; its build time in seconds)."""
    import hqi

    t0 = time.perf_counter()
    index = hqi.build(
        catalog.vectors, catalog.attributes, catalog.ids, workload=workload, threads=threads
    )
    return index, time.perf_counter() - t0


def harness_index(args: argparse.Namespace) -> tuple[hqi.Index, Workload]:
    """(index, batch) of :func:`harness_data`; prints the build time and layout."""
    catalog, train, batch = harness_data(args)
    index, seconds = timed_build(catalog, train.filters, args.threads)
    info = index.info()
    print(
        f"build {seconds:.1f} s: {info['partitions']} partitions, "
        f"{info['lists']} lists, {index.build_stats}"
    )
    return index, batch


def compare_builds(args: argparse.Namespace, variants: dict[str, dict[str, object]]) -> None:
    """Build the same data with each variant's build options, sweep nprobe, print
    throughput (median of ``args.repeats``) and recall@10 against exact answers,
    then the best throughput of each at recall 0.90 / 0.95 / 0.99 and the ratios
    of the first variant to the others: every figure from this one run. Each
    timed search starts with the filter caches cleared, as ``hqi bench``."""
    import time

    import hqi
    from hqi.evaluation import recall_at_k

    catalog, train, batch = synthetic_data(args)
    indexes = {}
    for name, options in variants.items():
        t0 = time.perf_counter()
        indexes[name] = hqi.build(
            catalog.vectors,
            catalog.attributes,
            catalog.ids,
            workload=train.filters,
            threads=args.threads,
            **options,
        )
        info = indexes[name].info()
        print(
            f"{name}: build {time.perf_counter() - t0:.1f} s, {info['partitions']} "
            f"partitions, {info['lists']} lists"
        )
    first = next(iter(indexes))
    truth = indexes[first].search(batch.queries, batch.filters, 10, exact=True)
    best: dict[tuple[str, float], float] = {}
    width = max(map(len, indexes))
    for nprobe in (1, 2, 4, 8, 16, 32):
        for name, index in indexes.items():
            seconds, res = median_timed(
                lambda index=index, nprobe=nprobe: index.search(
                    batch.queries, batch.filters, 10, nprobe=nprobe, threads=args.threads
                ),
                args.repeats,
                before=index.clear_filter_caches,
            )
            qps = args.queries / seconds
            recall = float(recall_at_k(res, truth).mean())
            rows = res.stats["rows_scanned"] / args.queries
            print(
                f"  {name:<{width}} nprobe={nprobe:<3} {qps:>7,.0f} q/s  recall@10 {recall:.4f}"
                f"  rows/query {rows:,.0f}"
            )
            for target in (0.90, 0.95, 0.99):
                if recall >= target:
                    best[(name, target)] = max(best.get((name, target), 0.0), qps)
    targets = (0.90, 0.95, 0.99)
    print("best q/s at recall 0.90 / 0.95 / 0.99:")
    for name in indexes:
        cells = [f"{best[(name, t)]:,.0f}" if (name, t) in best else "not reached" for t in targets]
        print(f"  {name:<{width}} " + " / ".join(cells))
    for name in list(indexes)[1:]:
        for t in targets:
            a, b = best.get((first, t)), best.get((name, t))
            if a and b:
                print(f"  {first} / {name} at {t}: {a / b:.2f}x")
