"""Recall against rows scanned for nprobe with and without ``probe_ratio``.

.venv/bin/python bench/probe_ratio.py --n 1000000 --queries 10000 --train 5000

For each ``nprobe:ratio`` point: recall@10 against the exact answers, the
rows scanned per query (``Result.stats["rows_scanned"]``, deterministic),
and the median time of ``--repeats`` searches of the whole batch (noisy on a
shared machine: compare rows). ``ratio`` 1 is FAISS's nprobe.
"""

from __future__ import annotations

import statistics

from common import harness_index, harness_parser
from hqi.evaluation import recall_at_k

DEFAULT_POINTS = "4:1,6:1,8:1,16:1,3:1.02,3:1.04,3:1.06,3:1.1,4:1.05,4:1.1,4:1.15,3:1.25"


def main() -> None:
    parser = harness_parser(__doc__)
    parser.add_argument("--points", default=DEFAULT_POINTS, help="nprobe:ratio,...")
    args = parser.parse_args()
    points = [(int(a), float(b)) for a, b in (p.split(":") for p in args.points.split(","))]
    index, batch = harness_index(args)
    q, f = batch.queries, batch.filters
    truth = index.search(q, f, k=10, exact=True, threads=args.threads)
    print("| nprobe | probe_ratio | recall@10 | rows / query | seconds (median) |")
    print("|---|---|---|---|---|")
    for nprobe, ratio in points:
        runs = [
            index.search(q, f, k=10, nprobe=nprobe, probe_ratio=ratio, threads=args.threads)
            for _ in range(max(args.repeats, 1))
        ]
        recall = float(recall_at_k(runs[-1], truth).mean())
        rows = runs[-1].stats["rows_scanned"] / len(q)
        seconds = statistics.median(r.stats["seconds"] for r in runs)
        print(f"| {nprobe} | {ratio:g} | {recall:.4f} | {rows:,.0f} | {seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
