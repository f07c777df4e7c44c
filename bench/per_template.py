"""The ceiling of a per-template nprobe for ``recall_target`` (measured, not built).

.venv/bin/python bench/per_template.py --n 1000000 --queries 10000 --train 5000

``recall_target`` picks one nprobe for the whole batch. This measures the
most a per-template choice could save, with the batch's own exact answers
as the oracle (no sample, so no sampling noise and no selection bias: an
upper bound on what a calibration could reach). For each nprobe of the
ladder, each query's recall is read off where the plan's probes reach its
exact answers (``BatchPlan.reaches``) and its cost is the distances it
computes (``BatchPlan.rows_per_query``); no approximate search is run. A
template is a filter with its literals replaced by ``?``. Starting from the
first rung for every template, the template whose next rung adds the most
recall per row added is raised until the batch's mean recall reaches the
target. Printed: rows per query and recall per target, per-template
against the global nprobe ``recall_target`` would choose with the oracle.
"""

from __future__ import annotations

import re

import numpy as np

from common import harness_index, harness_parser
from hqi.evaluation import recall_of_reached
from hqi.execution.options import SearchOptions
from hqi.execution.result import Result

LADDER = [1, 2, 3, 4, 6, 8, 12]


def template(text: str) -> str:
    """The filter's shape: string and number literals replaced by ``?``."""
    return re.sub(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b", "?", text)


def per_template(recall: np.ndarray, rows: np.ndarray, tid: np.ndarray, target: float):
    """Greedy rung per template (``recall``/``rows``: rungs x queries) until the
    mean recall reaches ``target``: (rung of each template, recall, rows/query)."""
    n_t, n_q = int(tid.max()) + 1, tid.size
    r = np.stack([np.bincount(tid, weights=x, minlength=n_t) for x in recall])
    w = np.stack([np.bincount(tid, weights=x, minlength=n_t) for x in rows])
    level = np.zeros(n_t, dtype=np.int64)
    cols = np.arange(n_t)
    while r[level, cols].sum() < target * n_q:
        up = level + 1 < len(recall)
        if not up.any():
            break
        nxt = np.minimum(level + 1, len(recall) - 1)
        gain = (r[nxt, cols] - r[level, cols]) / np.maximum(w[nxt, cols] - w[level, cols], 1e-9)
        level[np.argmax(np.where(up, gain, -np.inf))] += 1
    return level, r[level, cols].sum() / n_q, w[level, cols].sum() / n_q


def main() -> None:
    parser = harness_parser(__doc__)
    parser.add_argument("--targets", default="0.9,0.95,0.99")
    parser.add_argument("--probe-ratio", type=float, default=1.05)
    args = parser.parse_args()
    index, batch = harness_index(args)
    q, f = batch.queries, batch.filters
    _, tid = np.unique([template(x) for x in f], return_inverse=True)
    wide = SearchOptions.from_kwargs(k=20, threads=args.threads, exact=True)
    pos, dist, _ = index._run(q, index._plan(q, f, wide, None), wide, args.threads)
    truth = Result(pos, dist)
    recall, rows = [], []
    for nprobe in LADDER:
        opts = SearchOptions.from_kwargs(
            k=10, threads=args.threads, nprobe=nprobe, probe_ratio=args.probe_ratio
        )
        plan = index._plan(q, f, opts, nprobe)
        recall.append(recall_of_reached(truth, plan.reaches(pos), 10))
        rows.append(plan.rows_per_query().astype(np.float64))
        print(f"nprobe {nprobe}: recall {recall[-1].mean():.4f}, rows/query {rows[-1].mean():,.0f}")
    rec, cost = np.array(recall), np.array(rows)
    print(f"{tid.max() + 1} templates")
    for target in (float(t) for t in args.targets.split(",")):
        hit = [i for i in range(len(LADDER)) if rec[i].mean() >= target]
        if not hit:
            print(f"target {target}: not reached by nprobe {LADDER[-1]}")
            continue
        g = hit[0]
        level, r, w = per_template(rec, cost, tid, target)
        print(
            f"target {target}: per template recall {r:.4f}, rows/query {w:,.0f} "
            f"(templates per rung {np.bincount(level, minlength=len(LADDER)).tolist()}); "
            f"global nprobe {LADDER[g]} recall {rec[g].mean():.4f}, rows/query "
            f"{cost[g].mean():,.0f}; {100 * (w / cost[g].mean() - 1):+.1f}% rows"
        )


if __name__ == "__main__":
    main()
