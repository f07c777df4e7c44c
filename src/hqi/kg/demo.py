"""``hqi demo --dataset fb15k237``: the HQI task end to end on a real knowledge graph.

From the raw files in ``../shared/data/fb15k237`` (triples, numeric literals,
entity table, MiniLM embeddings) and the shipped preset mapping and templates:
ingest, sample a past query log, learn the layout from it and build, save,
reopen, then answer a second log (other anchors) as one batch of related-query
searches, approximately and exactly, and a sample through the naive
per-query loop. Prints throughput and recall@k against the exact answers.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hqi._threads import limit_threads
from hqi.api import open
from hqi.errors import InvalidInputError
from hqi.evaluation import recall_at_k
from hqi.execution.naive import naive_search
from hqi.execution.options import available_cores
from hqi.execution.result import Result
from hqi.kg import build_kg, ingest, related, sample_log
from hqi.kg.presets import PRESETS, preset

__all__ = ["dataset_files", "naive_related", "run_kg_demo"]


def dataset_files(name: str, root: Path | None = None) -> dict[str, Any]:
    """The raw files of a shared dataset, as :func:`hqi.kg.ingest` arguments."""
    from hqi.benchmark.real import data_root

    if name not in PRESETS:
        raise InvalidInputError(f"no knowledge-graph preset for {name!r}; available: {PRESETS}")
    root = root or data_root()
    folder = root / name if root else None
    if folder is None or not folder.is_dir():
        raise InvalidInputError(
            f"dataset {name!r} not found: set HQI_SHARED_DATA to the shared data folder "
            "(the one holding fb15k237/), or run from a directory below it"
        )
    return {
        "triples": [folder / "triples.tsv.gz", folder / "numeric_literals.tsv.gz"],
        "entities": folder / "entities.parquet",
        "embeddings": folder / "emb_minilm_l6_v2.npy",
        "embedding_ids": folder / "emb_minilm_l6_v2_ids.txt",
    }


def naive_related(
    index: Any, filters: Sequence[str], anchors: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The per-query loop the batch is compared with: each filter's mask, without its
    anchor, then a brute-force top-k from the anchor's vector. (positions, distances)."""
    masks = [index.mask(f).copy() for f in filters]  # a mask may share the store's arrays
    for m, a in zip(masks, anchors, strict=True):
        m[a] = False  # the anchor is not its own neighbour
    return naive_search(index.vectors, masks, index.vectors[anchors], k, index._metric)


def run_kg_demo(
    dataset: str = "fb15k237",
    *,
    num_queries: int = 2_000,
    train_queries: int = 2_000,
    k: int = 10,
    seed: int = 0,
    out: Path | None = None,
    threads: int | None = None,
    naive_sample: int = 300,
    progress: Callable[[], Any],
    summary: Callable[[str, Sequence[tuple[str, str]]], None],
) -> dict[str, float]:
    """Run the knowledge-graph demo; returns its figures (also printed)."""
    threads = threads or available_cores()
    mapping, templates = preset(dataset)
    files = dataset_files(dataset)
    with tempfile.TemporaryDirectory(prefix="hqi-kg-demo-") as tmp_dir:
        tmp = Path(tmp_dir)
        figures: dict[str, float] = {}
        with progress() as bar:
            task = bar.add_task("ingesting the knowledge graph", total=6)
            t0 = time.perf_counter()
            kg = ingest(mapping, **files)
            figures["ingest_s"] = time.perf_counter() - t0
            bar.update(task, advance=1, description="learning layout from a past log, building")
            past = sample_log((kg.ids, kg.attributes), templates, train_queries, seed=seed + 1)
            t0 = time.perf_counter()
            built = build_kg(kg, log=past, templates=templates, threads=threads)
            path = (out / "index") if out else tmp / "index"
            if out:
                out.mkdir(parents=True, exist_ok=True)
            built.save(path)
            figures["build_s"] = time.perf_counter() - t0
            index = open(path)
            log = sample_log(index, templates, num_queries, seed=seed + 2)
            # Warm-up, untimed: a process's first searches load compiled passes
            # and encode columns (the first approximate run took 0.25 s of search
            # against 0.08 s after).
            for exact_run in (False, True):
                related(index, log, templates=templates, k=k, threads=threads, exact=exact_run)

            # Each timed run starts with the filter caches cleared (as hqi bench
            # does): the exact run would otherwise reuse the approximate run's.
            bar.update(task, advance=1, description="related queries, approximate")
            index.clear_filter_caches()
            approx = related(index, log, templates=templates, k=k, threads=threads)
            bar.update(task, advance=1, description="related queries, exact")
            index.clear_filter_caches()
            exact = related(index, log, templates=templates, k=k, threads=threads, exact=True)
            bar.update(task, advance=1, description="naive per-query loop")
            assert approx.result is not None and exact.result is not None
            sample = np.random.default_rng(seed).choice(
                len(approx.filters), size=min(naive_sample, len(approx.filters)), replace=False
            )
            fresh = open(path, verify=False)  # a cold filter cache: the loop parses too
            with limit_threads(threads):
                t0 = time.perf_counter()
                pos, dist = naive_related(
                    fresh, [approx.filters[i] for i in sample], approx.anchors[sample], k
                )
                naive_s = time.perf_counter() - t0
            bar.update(task, advance=1)
            if out:
                pq.write_table(approx.table, out / "related.parquet")
                pq.write_table(log, out / "log.parquet")
            bar.update(task, advance=1)
        recall = float(recall_at_k(approx.result, exact.result).mean())
        naive = Result(pos, dist)
        exact_pos = exact.result.ids[sample]
        exact_vs_naive = float(
            recall_at_k(Result(exact_pos, exact.result.distances[sample]), naive).mean()
        )
        approx_qps = len(approx.filters) / approx.stats["seconds"]
        exact_qps = len(exact.filters) / exact.stats["seconds"]
        naive_qps = len(sample) / naive_s
        approx_search_qps = len(approx.filters) / approx.stats["search_seconds"]
        exact_search_qps = len(exact.filters) / exact.stats["search_seconds"]
        figures.update(
            approx_qps=approx_qps,
            approx_search_qps=approx_search_qps,
            exact_search_qps=exact_search_qps,
            exact_qps=exact_qps,
            naive_qps=naive_qps,
            recall=recall,
            exact_vs_naive=exact_vs_naive,
            related_rows=float(approx.table.num_rows),
        )
        info = index.info()
        rows = [
            ("entities x dim", f"{len(kg):,} x {index.dim} ({index.metric})"),
            ("attributes", ", ".join(index.schema)),
            (
                "layout",
                f"{info['partitions']} partitions, {info['lists']} IVF lists "
                f"(learned from a {train_queries:,}-query past log)",
            ),
            (
                "log (k)",
                f"{len(approx.filters):,} past queries searched ({k}), "
                f"{int(approx.stats['distinct_filters']):,} distinct filters, "
                f"{sum(approx.skipped.values()):,} skipped",
            ),
            ("related queries written", f"{approx.table.num_rows:,}"),
            ("ingest / build+save", f"{figures['ingest_s']:.1f} s / {figures['build_s']:.1f} s"),
            (
                "approximate: whole task (search)",
                f"{approx_qps:,.0f} ({approx_search_qps:,.0f}) queries/s, recall@{k} {recall:.4f}",
            ),
            (
                "exact: whole task (search)",
                f"{exact_qps:,.0f} ({exact_search_qps:,.0f}) queries/s, recall@{k} 1.0",
            ),
            (f"naive per-query loop ({len(sample)} queries)", f"{naive_qps:,.0f} queries/s"),
            ("exact search / naive", f"{exact_search_qps / naive_qps:.1f}x"),
            (f"exact vs naive answers (recall@{k})", f"{exact_vs_naive:.4f}"),
            ("threads", str(threads)),
            ("output", str(out) if out else "not kept (use --out DIR)"),
        ]
        summary(f"hqi demo: related queries on {dataset}", rows)
        shown: list[str] = []
        seen: set[str] = set()
        for row in (
            approx.table.filter(pc.equal(approx.table.column("rank"), 0)).slice(0, 200).to_pylist()
        ):
            if row["template"] not in seen and row["new_filter"]:
                seen.add(row["template"])
                label = index.attributes.column("label")[int(index.positions([row["anchor"]])[0])]
                shown.append(
                    f"{row['template']} at {label.as_py()!r}: nearest {row['new_anchor_label']!r} "
                    f"-> new query: {row['new_filter']}"
                )
            if len(shown) == 4:
                break
        for line in shown:
            print(line)
        return figures
