"""What several benchmark scripts share: the synthetic data set-up and its options."""

from __future__ import annotations

import argparse

from hqi.datasets import Catalog, Workload, make_catalog, make_workload


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
