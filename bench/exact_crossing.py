"""Where exact search overtakes an approximate plan: ``recall_target``'s rule.

``recall_target`` answers a batch exactly when the nprobe it would need
computes at least ``hqi.api.EXACT_COST_BF16`` (or ``EXACT_COST_FP32`` where
exact search runs in float32) of the distances of the exact plan that its
calibration makes (planned with ``PREFILTER_RATIO``). This measures, per
nprobe, that fraction and the fraction at which the two whole searches
would take as long (the break-even: the exact search's time per exact-plan
distance over the approximate search's time per distance). Where the
fraction is under the break-even the approximate search is the faster;
the rule's constant should lie below every crossing.

    .venv/bin/python bench/exact_crossing.py --n 100000 --dims 64,128,384 [--products fp32]
    .venv/bin/python bench/exact_crossing.py --dataset movielens --nprobe 4,8,16,32,64

Medians of ``--repeats`` searches on ``--threads`` threads, recall@10 against
the exact search's answers. Real data is read as ``hqi bench`` reads it.
"""

from __future__ import annotations

import argparse

import numpy as np

import hqi
from common import harness_data, median_timed, timed_build
from hqi.api import PREFILTER_RATIO
from hqi.benchmark.real import load_real
from hqi.evaluation import recall_at_k
from hqi.execution.options import SearchOptions


def crossing(
    index: hqi.Index,
    queries: np.ndarray,
    filters: list[str],
    nprobes: list[int],
    products: str,
    threads: int,
    repeats: int,
) -> None:
    """Print the exact search and, per nprobe, the fraction and the break-even."""

    def timed(**kw: object) -> tuple[float, hqi.Result]:
        def search() -> hqi.Result:
            return index.search(queries, filters, 10, threads=threads, products=products, **kw)

        search()  # warm-up, untimed
        return median_timed(search, repeats, index.clear_filter_caches)

    t_exact, exact = timed(exact=True)
    opts = SearchOptions.from_kwargs(k=10, prefilter_ratio=PREFILTER_RATIO, threads=threads)
    distinct = index._distinct(filters, queries.shape[0])
    d_exact = index._plan(queries, filters, opts, None, distinct, {}).distances()
    print(
        f"  exact {t_exact:.4f} s, the calibration's exact plan {d_exact / 1e6:.1f}M distances "
        f"({t_exact / d_exact * 1e9:.2f} ns each)"
    )
    for nprobe in nprobes:
        t, res = timed(nprobe=nprobe)
        recall = float(recall_at_k(res, exact).mean())
        d = res.stats["rows_scanned"]
        fraction, even = d / d_exact, (t_exact / d_exact) / (t / d)
        faster = "approximate" if t < t_exact else "exact"
        print(
            f"  nprobe {nprobe:3d}: recall {recall:.4f}, {t:.4f} s, {d / 1e6:.1f}M distances, "
            f"fraction {fraction:.3f}, break-even {even:.3f}: {faster} faster"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dims", default="128", help="generated data's dimensions, comma-separated")
    ap.add_argument("--dataset", default=None, help="a real dataset instead (hqi bench's names)")
    ap.add_argument("--queries", type=int, default=5_000)
    ap.add_argument("--train", type=int, default=2_000)
    ap.add_argument("--nprobe", default="1,2,4,8,16,32")
    ap.add_argument("--products", default="auto", choices=("auto", "bf16", "fp32"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    nprobes = [int(x) for x in args.nprobe.split(",")]
    if args.dataset:
        data = load_real(args.dataset, queries=args.queries, train_queries=args.train, k=10)
        index = hqi.build(
            data.vectors, data.attributes, workload=data.train_filters, threads=args.threads
        )
        print(f"{args.dataset}: {index.info()['lists']} lists, d = {index.dim}")
        crossing(
            index, data.queries, data.filters, nprobes, args.products, args.threads, args.repeats
        )
        return
    for dim in (int(x) for x in args.dims.split(",")):
        args.dim = dim
        catalog, train, batch = harness_data(args)
        index, _ = timed_build(catalog, train.filters, args.threads)
        print(f"generated {args.n:,} x {dim}: {index.info()['lists']} lists")
        crossing(
            index, batch.queries, batch.filters, nprobes, args.products, args.threads, args.repeats
        )


if __name__ == "__main__":
    main()
