"""The HQI task on real data: related queries for a past query log, recall vs throughput.

From FB15k-237's raw files (``../shared/data/fb15k237``) and hqi's preset
mapping and templates: ingest, learn the layout from one sampled past log,
then answer another log (other anchors, same templates) as related-query
batches. Sweeps hqi's ``nprobe`` and measures, in the same run and on the
same (anchor, filter) pairs with the anchor excluded from its own answer:

- hqi ``related()`` (the whole task: instantiation, one batch search, output
  table) and its search alone;
- FAISS IVF-Flat with one bitmap IDSelector per distinct filter (searching
  k + 1 and dropping the anchor), over an nprobe sweep;
- the foundation's exact grouped brute force, and a naive per-query loop on a
  sample.

Recall@k is against hqi's exact answers. Each time is the median of
``--repeats`` runs, all on ``--threads`` threads. Writes a CSV and a PNG
(default: ``docs/img/kg_fb15k237.{csv,png}``).

    .venv/bin/python bench/kg_related.py [--queries 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path
from typing import Any

import numpy as np

from common import median_timed
from hqi._threads import limit_threads
from hqi.benchmark.systems import BenchData, BruteForce, FaissIVFSelector
from hqi.evaluation import recall_at_k
from hqi.execution.result import Result
from hqi.kg import build_kg, ingest, related, sample_log
from hqi.kg.demo import dataset_files, naive_related
from hqi.kg.presets import preset


def drop_anchor(pos: np.ndarray, anchors: np.ndarray, k: int) -> np.ndarray:
    keep = pos != anchors[:, None]
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    out = np.take_along_axis(pos, order, axis=1)
    return np.where(np.take_along_axis(keep, order, axis=1), out, -1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fb15k237")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--train-queries", type=int, default=2000)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--naive-sample", type=int, default=500)
    ap.add_argument("--out", default="docs/img/kg_fb15k237")
    args = ap.parse_args()
    k, threads, reps = args.k, args.threads, args.repeats

    mapping, templates = preset(args.dataset)
    t0 = time.perf_counter()
    kg = ingest(mapping, **dataset_files(args.dataset))
    ingest_s = time.perf_counter() - t0
    past = sample_log((kg.ids, kg.attributes), templates, args.train_queries, seed=1)
    t0 = time.perf_counter()
    index = build_kg(kg, log=past, templates=templates, threads=threads)
    build_s = time.perf_counter() - t0
    log = sample_log(index, templates, args.queries, seed=2)
    print(
        f"{args.dataset}: {len(kg):,} entities x {index.dim}, ingest {ingest_s:.1f} s, "
        f"build {build_s:.1f} s, {index.info()['partitions']} partitions; "
        f"{args.queries:,} past queries, {threads} threads, median of {reps}"
    )

    exact = related(index, log, templates=templates, k=k, threads=threads, exact=True)
    assert exact.result is not None
    truth = Result(exact.result.ids, exact.result.distances)
    nq = len(exact.filters)
    rows: list[dict[str, Any]] = []

    def record(system: str, param: str, seconds: float, pos: np.ndarray, dist=None) -> None:
        got = Result(pos, dist if dist is not None else np.zeros(pos.shape, np.float32))
        recall = (
            float(recall_at_k(got, truth).mean())
            if dist is not None
            else float(
                np.mean(
                    [
                        len(set(a[a >= 0]) & set(b[b >= 0])) / (b >= 0).sum()
                        if (b >= 0).any()
                        else 1.0
                        for a, b in zip(pos, truth.ids, strict=True)
                    ]
                )
            )
        )
        rows.append(
            {
                "system": system,
                "param": param,
                "seconds": seconds,
                "qps": nq / seconds,
                "recall": recall,
            }
        )
        print(f"  {system:<28} {param:<12} {nq / seconds:>9,.0f} q/s  recall@{k} {recall:.4f}")

    def time_related(**opts: Any) -> tuple[float, float, Any]:
        """Medians of the whole task and of its search, from the same runs."""
        whole, search, res = [], [], None
        for _ in range(reps):
            index.clear_filter_caches()  # each run parses its filters anew, as hqi bench
            t0 = time.perf_counter()
            res = related(index, log, templates=templates, k=k, threads=threads, **opts)
            whole.append(time.perf_counter() - t0)
            search.append(res.stats["search_seconds"])
        return float(np.median(whole)), float(np.median(search)), res

    related(index, log, templates=templates, k=k, threads=threads)  # warm-up
    for param, opts in [(f"nprobe={n}", {"nprobe": n}) for n in (1, 2, 4, 8, 16, 32)] + [
        ("exact", {"exact": True})
    ]:
        whole, search, res = time_related(**opts)
        record("hqi related (whole task)", param, whole, res.result.ids, res.result.distances)
        record("hqi search", param, search, res.result.ids, res.result.distances)

    anchors = exact.anchors
    data = BenchData(
        args.dataset,
        np.ascontiguousarray(index.vectors),
        index.attributes,
        [],
        np.ascontiguousarray(index.vectors[anchors]),
        exact.filters,
        k + 1,
    )
    with limit_threads(threads):
        faiss_ivf = FaissIVFSelector()
        faiss_ivf.build(data, threads)
        for params in (p for p in faiss_ivf.grid() if p["nprobe"] <= 48):
            secs, pos = median_timed(
                lambda p=params: faiss_ivf.search(data, p, threads),
                reps,
                faiss_ivf.clear_filter_caches,
            )
            record(
                "FAISS IVF + IDSelector",
                f"nprobe={params['nprobe']} {params['calls']}",
                secs,
                drop_anchor(pos, anchors, k),
            )
        brute = BruteForce()
        brute.build(data, threads)
        secs, pos = median_timed(
            lambda: brute.search(data, {}, threads), reps, brute.clear_filter_caches
        )
        record("exact grouped brute force", "", secs, drop_anchor(pos, anchors, k))
        sample = np.random.default_rng(0).choice(nq, size=min(args.naive_sample, nq), replace=False)

        def naive() -> np.ndarray:
            filters = [exact.filters[i] for i in sample]
            return naive_related(index, filters, anchors[sample], k)[0]

        secs, pos = median_timed(naive, reps, index.clear_filter_caches)
        naive_qps = len(sample) / secs
        rows.append(
            {
                "system": "naive per-query loop",
                "param": f"sample={len(sample)}",
                "seconds": secs,
                "qps": naive_qps,
                "recall": 1.0,
            }
        )
        print(f"  {'naive per-query loop':<28} {'':<12} {naive_qps:>9,.0f} q/s  (sample)")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, out.with_suffix(".png"), args, len(kg), index.dim)
    best = {}
    for target in (0.90, 0.95, 0.99):
        for system in ("hqi related (whole task)", "hqi search", "FAISS IVF + IDSelector"):
            ok = [r["qps"] for r in rows if r["system"] == system and r["recall"] >= target]
            best[(system, target)] = max(ok) if ok else float("nan")
    print("best QPS at recall >= 0.90 / 0.95 / 0.99:")
    for system in ("hqi related (whole task)", "hqi search", "FAISS IVF + IDSelector"):
        print(
            f"  {system:<28} " + " / ".join(f"{best[(system, t)]:,.0f}" for t in (0.90, 0.95, 0.99))
        )
    for t in (0.90, 0.95, 0.99):
        print(
            f"  hqi search / FAISS IVF at {t}: "
            f"{best[('hqi search', t)] / best[('FAISS IVF + IDSelector', t)]:.2f}x"
        )
    print(f"wrote {out.with_suffix('.csv')} and {out.with_suffix('.png')}")


def plot(rows: list[dict[str, Any]], path: Path, args: argparse.Namespace, n: int, d: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8))
    styles = {"hqi related (whole task)": "o-", "hqi search": "s-", "FAISS IVF + IDSelector": "^--"}
    for system, style in styles.items():
        pts = [r for r in rows if r["system"] == system]
        ax.plot([r["recall"] for r in pts], [r["qps"] for r in pts], style, label=system)
    for r in rows:
        if r["system"] in ("exact grouped brute force", "naive per-query loop"):
            ax.axhline(r["qps"], ls=":", color="grey")
            ax.annotate(
                r["system"],
                (0.0, r["qps"]),
                xycoords=("axes fraction", "data"),
                fontsize=8,
                va="bottom",
                color="grey",
            )
    ax.set_xlabel(f"recall@{args.k} (against exact answers)")
    ax.set_ylabel("past queries / s")
    ax.set_yscale("log")
    ax.set_title(
        f"Related queries on {args.dataset} ({n:,} x {d}), "
        f"{args.queries:,} past queries, {args.threads} threads"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
