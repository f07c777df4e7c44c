"""np.unique against hqi._arrays.unique (a sort), and the zone maps of a list column.

.venv/bin/python bench/unique.py --n 1000000

NumPy 2.4's np.unique hashes; on integers with many distinct values that is
much slower than sorting on this project's machines. Prints the medians of
``--repeats`` calls of both, per size, and their ratio; then the time of the
first plan's zone-map summary of the built-in catalog's ``tags`` column,
deduplicated by np.unique over stacked (row, code) pairs (the code before)
and by ``ZoneMaps`` (keys and hqi._arrays.unique), with equal counts checked.
"""

from __future__ import annotations

import argparse

import numpy as np

from common import median_seconds
from hqi._arrays import unique
from hqi.datasets import make_catalog
from hqi.layout.zonemap import ZoneMaps
from hqi.query import ColumnStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="catalog rows")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"numpy {np.__version__}")
    for size in (10_000, 50_000, 200_000, 1_700_000):
        for high, label in ((100, "100 distinct"), (2**40, "mostly distinct")):
            values = rng.integers(0, high, size)
            a = median_seconds(lambda: np.unique(values), args.repeats)  # noqa: B023
            b = median_seconds(lambda: unique(values), args.repeats)  # noqa: B023
            print(
                f"{size:>9,} int64, {label:<15}: np.unique {a * 1e3:8.2f} ms, "
                f"sort {b * 1e3:7.2f} ms ({a / b:.1f}x)"
            )
    catalog = make_catalog(args.n, 8, seed=0)
    store = ColumnStore(catalog.attributes)
    data = store["tags"]
    bounds = np.linspace(0, args.n, 65).astype(np.int64)  # 64 partitions

    def stacked() -> np.ndarray:
        part_of_row = np.repeat(np.arange(64), np.diff(bounds))
        counts = np.zeros((64, data.dictionary.size + 1), dtype=np.int64)
        pairs = np.unique(np.stack([data.rows, data.codes]), axis=1)
        np.add.at(counts, (part_of_row[pairs[0]], pairs[1]), 1)
        return counts[:, :-1]

    old = median_seconds(stacked, max(args.repeats // 2, 1))
    new = median_seconds(lambda: ZoneMaps(store, bounds)._summary("tags"), args.repeats)
    same = np.array_equal(stacked(), ZoneMaps(store, bounds)._summary("tags")["tag_rows"])
    print(
        f"zone maps of tags ({data.codes.size:,} elements, {args.n:,} rows, 64 zones): "
        f"stacked np.unique {old:.3f} s, keys {new:.3f} s ({old / new:.0f}x; same counts: {same})"
    )


if __name__ == "__main__":
    main()
