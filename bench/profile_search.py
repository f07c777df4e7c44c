"""Where hqi's batch time goes: planning vs execution, rows scanned, strategies.

.venv/bin/python bench/profile_search.py --n 1000000 --queries 10000 --train 5000 --nprobe 6

Times are medians over ``--repeats`` searches of the whole batch.
``--compare-compiled`` alternates plans with and without compiled filters
(``hqi.api.COMPILED_FILTERS``) and checks that their answers are identical.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

import hqi
import hqi.api
from common import harness_index, harness_parser


def main() -> None:
    parser = harness_parser(__doc__)
    parser.add_argument("--nprobe", type=int, default=32)
    parser.add_argument("--compare-compiled", action="store_true")
    args = parser.parse_args()
    index, batch = harness_index(args)
    index.search(batch.queries[:100], batch.filters[:100], k=10)  # warm-up
    if args.compare_compiled:
        compare_compiled(index, batch, args)
        return
    for opts in ({"nprobe": args.nprobe}, {"exact": True}):
        runs = [
            index.search(batch.queries, batch.filters, k=10, threads=args.threads, **opts).stats
            for _ in range(max(args.repeats, 1))
        ]
        s = runs[-1]
        total = statistics.median(r["seconds"] for r in runs)
        plan = statistics.median(r["plan_seconds"] for r in runs)
        execution = statistics.median(r["seconds"] - r["plan_seconds"] for r in runs)
        print(
            f"{opts}: total {total:.2f} s, planning {plan:.2f} s, "
            f"execution {execution:.2f} s (medians of {len(runs)}), rows scanned/query "
            f"{s['rows_scanned'] / len(batch):,.0f}, filters: {s['groups']:.0f} distinct, "
            f"{s['prefilter_filters']:.0f} prefilter, {s['scan_filters']:.0f} scan"
        )


def compare_compiled(index: hqi.Index, batch, args: argparse.Namespace) -> None:
    """Masks only against compiled filters, alternating, same answers required."""
    for opts in ({"nprobe": args.nprobe}, {"exact": True}):
        stats: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        ids: dict[bool, np.ndarray] = {}
        for _ in range(max(args.repeats, 1)):
            for compiled in (False, True):
                hqi.api.COMPILED_FILTERS = compiled
                res = index.search(batch.queries, batch.filters, k=10, threads=args.threads, **opts)
                stats[compiled].append(res.stats)
                ids[compiled] = res.ids
        hqi.api.COMPILED_FILTERS = True
        assert np.array_equal(ids[False], ids[True]), "compiled filters changed the answers"
        for compiled, runs in stats.items():
            total = statistics.median(r["seconds"] for r in runs)
            plan = statistics.median(r["plan_seconds"] for r in runs)
            print(
                f"{opts} {'compiled filters' if compiled else 'masks only      '}: "
                f"total {total:.2f} s, planning {plan:.2f} s, execution {total - plan:.2f} s, "
                f"rows scanned {runs[-1]['rows_scanned']:,.0f} (medians of {len(runs)}; "
                "same ids)"
            )


if __name__ == "__main__":
    main()
