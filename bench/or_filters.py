"""Filters with ORs compiled (conjunctive normal form) against conjunctions only.

.venv/bin/python bench/or_filters.py --n 1000000 --queries 10000 --train 5000 --repeats 5

Builds the index once, then searches the batch alternately with every filter
compiled as it is (:mod:`hqi.query.compiled`: a conjunction of clauses, each
an OR of intervals on one column or more) and with conjunctions only, the
form filters compiled in before: a filter whose normal form has a clause of
two atoms or more keeps its masks. Approximate (nprobe 3, probe ratio 1.1)
and exact. Prints how many distinct filters compile, the median search and
planning seconds of each, and whether the answers are equal.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

import hqi
from common import harness_index, harness_parser
from hqi.query import compiled


@contextmanager
def conjunctions_only(index: hqi.Index) -> Iterator[None]:
    """Compile only filters whose clauses have one atom each (as before ORs compiled)."""
    original: Callable[..., Any] = compiled._Compiler.clauses

    def clauses(self: Any, pred: Any, negated: bool) -> Any:
        out = original(self, pred, negated)
        if out is not None and any(len(clause) > 1 for clause in out):
            return None
        return out

    index._attribute_matrix._programs.clear()
    compiled._Compiler.clauses = clauses  # type: ignore[method-assign]
    try:
        yield
    finally:
        compiled._Compiler.clauses = original  # type: ignore[method-assign]
        index._attribute_matrix._programs.clear()


@contextmanager
def as_built(index: hqi.Index) -> Iterator[None]:
    yield


def main() -> None:
    args = harness_parser(__doc__).parse_args()
    index, batch = harness_index(args)
    q, f = batch.queries, batch.filters
    variants = {"normal form": as_built, "conjunctions only": conjunctions_only}
    modes = {"nprobe 3, ratio 1.1": {"nprobe": 3, "probe_ratio": 1.1}, "exact": {"exact": True}}
    preds = list(dict.fromkeys(index.parse(text) for text in f))
    for name, variant in variants.items():
        with variant(index):
            n = sum(compiled.compile_filter(p, index._attribute_matrix) is not None for p in preds)
        print(f"{name}: {n:,} of {len(preds):,} distinct filters compile")
    index.search(q[:200], f[:200], k=10, nprobe=3)  # compile the kernels
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    answers: dict[tuple[str, str], np.ndarray] = {}
    for _ in range(max(args.repeats, 1)):
        for mode, opts in modes.items():
            for name, variant in variants.items():
                with variant(index):
                    res = index.search(q, f, k=10, threads=args.threads, **opts)
                runs.setdefault((mode, name), []).append(
                    (res.stats["seconds"], res.stats["plan_seconds"])
                )
                answers[(mode, name)] = res.ids
    print("| search | filters | seconds (median) | planning (median) |")
    print("|---|---|---|---|")
    for (mode, name), times in runs.items():
        total = statistics.median(t for t, _ in times)
        plan = statistics.median(p for _, p in times)
        print(f"| {mode} | {name} | {total:.3f} | {plan:.3f} |")
    for mode in modes:
        same = np.array_equal(answers[(mode, "normal form")], answers[(mode, "conjunctions only")])
        print(f"{mode}: same answers: {same}")


if __name__ == "__main__":
    main()
