"""What ``recall_target`` costs: calibration from plans against running the sample.

.venv/bin/python bench/recall_target.py --n 1000000 --queries 10000 --train 5000 --repeats 5

For each target: searches of the whole batch with ``recall_target``, by the
library's calibration (each nprobe tried is only planned; its recall is
read off where its probes reach the sample's exact answers) and by the one
it replaced (each nprobe tried is planned and run on the sample), alternated
in this process, ``--repeats`` rounds, medians. Also the nprobe each chose,
its estimated recall, the recall measured on the whole batch against exact
answers, and whether both returned the same ids.

A third way, "unshared", is the library's calibration with every plan
routing its filters afresh: the plans of one search have shared their
filters' exact routes since 2026-11-23 (``plan_batch(routes=...)``).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

import hqi.api
from common import harness_index, harness_parser
from hqi.api import Filters, Index, next_nprobe
from hqi.evaluation import recall_at_k
from hqi.execution.options import SearchOptions
from hqi.execution.planner import plan_batch
from hqi.execution.result import Result


def calibrate_by_runs(
    self: Index, q: np.ndarray, filters: Filters, opts: SearchOptions, routes: Any = None
) -> tuple[int, float, float]:
    """The calibration before plans' recall (``Index._calibrate`` until 2026-11-23):
    the same sample and ladder, but each nprobe's plan is run on the sample."""
    nq = q.shape[0]
    sample = np.sort(
        np.random.default_rng(0).choice(nq, size=min(nq, opts.calibration_queries), replace=False)
    )
    sub_q = q[sample]
    sub_f = filters if filters is None or isinstance(filters, str) else [filters[i] for i in sample]
    truth = Result(*self._run(sub_q, self._plan(sub_q, sub_f, opts, None), opts)[:2])
    nprobe = 1
    while True:
        found = Result(*self._run(sub_q, self._plan(sub_q, sub_f, opts, nprobe), opts)[:2])
        recall = float(recall_at_k(found, truth).mean())
        if recall >= opts.recall_target or nprobe >= self._part.num_lists:
            return nprobe, recall, 0.0  # (no standard error then)
        nprobe = min(self._part.num_lists, next_nprobe(nprobe))


def plan_unshared(*args: Any, **kwargs: Any) -> Any:
    """``plan_batch`` as before 2026-11-23: no exact routes kept between plans."""
    kwargs["routes"] = None
    return plan_batch(*args, **kwargs)


def main() -> None:
    parser = harness_parser(__doc__)
    parser.add_argument("--targets", default="0.9,0.95,0.99")
    args = parser.parse_args()
    targets = [float(t) for t in args.targets.split(",")]
    index, batch = harness_index(args)
    q, f = batch.queries, batch.filters
    truth = index.search(q, f, k=10, exact=True, threads=args.threads)
    ways = {
        "plans": (Index._calibrate, plan_batch),
        "unshared": (Index._calibrate, plan_unshared),
        "runs": (calibrate_by_runs, plan_batch),
    }
    index.search(q, f, k=10, recall_target=targets[0], threads=args.threads)  # warm up
    seconds: dict[tuple[str, float], list[float]] = {}
    last = {}
    for _ in range(max(args.repeats, 1)):
        for name, (way, planner) in ways.items():
            Index._calibrate = way  # type: ignore[method-assign]
            hqi.api.plan_batch = planner
            for target in targets:
                t0 = time.perf_counter()
                res = index.search(q, f, k=10, recall_target=target, threads=args.threads)
                seconds.setdefault((name, target), []).append(time.perf_counter() - t0)
                last[name, target] = res
    Index._calibrate, hqi.api.plan_batch = ways["plans"]  # type: ignore[method-assign]
    print(
        "| target | by runs s | by plans, unshared s | by plans s | ratio | nprobe "
        "| estimated | measured | same ids |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for target in targets:
        runs, unshared, plans = (
            statistics.median(seconds[w, target]) for w in ("runs", "unshared", "plans")
        )
        new, old = last["plans", target], last["runs", target]
        measured = float(recall_at_k(new, truth).mean())
        same = all(np.array_equal(new.ids, last[w, target].ids) for w in ("runs", "unshared"))
        print(
            f"| {target:g} | {runs:.3f} | {unshared:.3f} | {plans:.3f} | {runs / plans:.2f}x "
            f"| {new.stats['nprobe']:.0f} (runs: {old.stats['nprobe']:.0f}) "
            f"| {new.stats['estimated_recall']:.4f} ± {new.stats['estimated_recall_stderr']:.4f} "
            f"(runs: {old.stats['estimated_recall']:.4f}) "
            f"| {measured:.4f} | {same} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
