"""Calibrate the planner's prefilter_ratio on this machine.

prefilter_ratio is the cost of one gathered row (random access, copy, then a
small product) relative to one row read in place by a batched GEMM, per query.
Prints both costs (medians) and their ratio, for a few batch sizes.

    .venv/bin/python bench/calibrate.py [--dim 128] [--threads 2]
"""

from __future__ import annotations

import argparse

import numpy as np

from common import median_seconds
from hqi._threads import limit_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, args.dim), dtype=np.float32)
    picked = np.sort(rng.choice(args.rows, size=20_000, replace=False))
    with limit_threads(args.threads):
        for nq in (1, 4, 32, 256):
            q = rng.standard_normal((nq, args.dim), dtype=np.float32)
            gather = median_seconds(lambda q=q: q @ x[picked].T) / (picked.size * nq)
            block = x[:65_536]
            inplace = median_seconds(lambda q=q, block=block: q @ block.T) / (65_536 * nq)
            print(
                f"queries sharing the rows: {nq:>3}  gathered row-query: {gather * 1e9:7.1f} ns"
                f"  in-place row-query: {inplace * 1e9:6.2f} ns  ratio: {gather / inplace:6.1f}"
            )


if __name__ == "__main__":
    main()
