"""Recall@k vs QPS of hqi and the baselines on one dataset and workload.

    .venv/bin/python bench/hybrid.py                       # small: 100k x 64, 2,000 queries
    .venv/bin/python bench/hybrid.py --n 1000000 --dim 128 --queries 10000
    .venv/bin/python bench/hybrid.py --dataset fb15k237

Writes points.csv, summary.md, config.json and recall_qps.png to a new folder
under bench/results/ and prints the summary. Same as `hqi bench`.
"""

from __future__ import annotations

import sys

from hqi.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
