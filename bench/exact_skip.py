"""Exact search's execution with and without skipping lists inside partitions.

.venv/bin/python bench/exact_skip.py --n 1000000 --queries 10000 --train 5000 --repeats 5

Plans the batch exactly once, then executes that plan alternately as it is
and without ``BatchPlan.list_may`` (every list of a scanned partition
multiplied with all of its queries), and prints the distance computations
and the median execution time of each, and whether their answers are equal.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import numpy as np

import hqi
from common import harness_index, harness_parser
from hqi.execution.batch import execute_plan


def main() -> None:
    args = harness_parser(__doc__).parse_args()
    index, batch = harness_index(args)
    q, f = batch.queries, batch.filters
    opts = hqi.SearchOptions.from_kwargs(k=10, exact=True, threads=args.threads)
    plan = index._plan(q, f, opts, None)
    variants = {"skip lists": plan, "whole partitions": dataclasses.replace(plan, list_may=None)}
    workers = index._workers(opts, plan.distances() * index.dim)
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    answers = {}
    for _ in range(max(args.repeats, 1)):
        for name, p in variants.items():
            start = time.perf_counter()
            pos, _, computed = execute_plan(
                p,
                index._vectors,
                index._sq_norms,
                q,
                10,
                index._metric,
                index._part,
                workers=workers,
            )
            seconds[name].append(time.perf_counter() - start)
            answers[name] = (pos, computed)
    print("| execution | distances | seconds (median) |")
    print("|---|---|---|")
    for name, runs in seconds.items():
        print(f"| {name} | {answers[name][1]:,} | {statistics.median(runs):.2f} |")
    same = np.array_equal(answers["skip lists"][0], answers["whole partitions"][0])
    print(f"same answers: {same}")


if __name__ == "__main__":
    main()
