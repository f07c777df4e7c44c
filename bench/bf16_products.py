"""Whole searches with float32 and bfloat16 products, alternating in one process.

.venv/bin/python bench/bf16_products.py --n 1000000 --queries 10000 --train 5000 --repeats 3

Needs ``pip install -e '.[amx]'`` and a CPU with AMX. For exact search and a
few nprobe, runs ``index.search(..., products=...)`` with "fp32" and "bf16"
in turn and prints each one's median time (and planning time), and whether
the answers are the same ids (the fraction of (query, rank) entries equal:
float32 distances computed by BLAS and by the compiled pass can differ in the
last bit, so near-ties may order differently).
"""

from __future__ import annotations

import statistics

import numpy as np

from common import harness_index, harness_parser
from hqi.execution.products import bf16_available


def main() -> None:
    ap = harness_parser(__doc__)
    ap.add_argument("--nprobe", type=int, nargs="*", default=[3, 8, 24])
    args = ap.parse_args()
    if not bf16_available():
        raise SystemExit("bfloat16 products need torch and a CPU with AMX (pip install '.[amx]')")
    index, batch = harness_index(args)
    q, f = batch.queries, batch.filters
    modes: list[dict[str, object]] = [{"exact": True}] + [{"nprobe": n} for n in args.nprobe]
    for opts in modes:  # warm-up: kernels, the bfloat16 copy, page faults
        for products in ("fp32", "bf16"):
            index.search(q[:500], f[:500], k=10, products=products, threads=args.threads, **opts)
    print("| search | fp32 s (plan) | bf16 s (plan) | same ids |")
    print("|---|---|---|---|")
    for opts in modes:
        runs: dict[str, list[tuple[float, float]]] = {"fp32": [], "bf16": []}
        ids = {}
        for _ in range(max(args.repeats, 1)):
            for products in runs:
                res = index.search(q, f, k=10, products=products, threads=args.threads, **opts)
                runs[products].append((res.stats["seconds"], res.stats["plan_seconds"]))
                ids[products] = res.ids
        cells = [
            f"{statistics.median(t for t, _ in r):.3f} ({statistics.median(p for _, p in r):.3f})"
            for r in runs.values()
        ]
        same = f"{float(np.mean(ids['fp32'] == ids['bf16'])):.5f}"
        name = "exact" if "exact" in opts else f"nprobe {opts['nprobe']}"
        print(f"| {name} | {cells[0]} | {cells[1]} | {same} |")


if __name__ == "__main__":
    main()
