"""The built-in generator: deterministic, well-typed, and shaped as documented."""

from __future__ import annotations

import numpy as np

import hqi
from hqi.datasets import TEMPLATES, make_catalog, make_workload


def test_deterministic_in_seed() -> None:
    a, b, c = (
        make_catalog(500, 8, seed=1),
        make_catalog(500, 8, seed=1),
        make_catalog(500, 8, seed=2),
    )
    assert np.array_equal(a.vectors, b.vectors) and a.attributes.equals(b.attributes)
    assert not np.array_equal(a.vectors, c.vectors)
    wa, wb = make_workload(a, 50, seed=3), make_workload(b, 50, seed=3)
    assert wa.filters == wb.filters and np.array_equal(wa.queries, wb.queries)


def test_schema_and_nulls(catalog) -> None:
    index = hqi.build(catalog.vectors, catalog.attributes)
    assert index.schema == {
        "type": "string",
        "genre": "string",
        "artist": "string",
        "year": "int",
        "released": "date",
        "popularity": "float",
        "explicit": "bool",
        "tags": "list<string>",
    }
    for column in ("year", "popularity", "tags"):
        assert 0 < index.count(f"{column} IS NULL") < len(catalog) * 0.1


def test_workload_selectivities_and_skew() -> None:
    """At the default size, selectivities span about 0.05% to 30% (as documented)."""
    catalog = make_catalog(seed=0)
    workload = make_workload(catalog, 400, seed=1)
    index = hqi.build(catalog.vectors, catalog.attributes)
    assert len(TEMPLATES) == 40
    sel = np.array([index.count(f) for f in workload.filters]) / len(catalog)
    assert sel.max() <= 0.31
    assert np.quantile(sel, 0.05) < 0.002 and np.quantile(sel, 0.95) > 0.1
    assert 0.005 < np.median(sel) < 0.1
    assert (sel > 0).mean() > 0.95  # anchored templates rarely select nothing
    counts = np.bincount(workload.templates, minlength=len(TEMPLATES))
    assert counts.max() >= 5 * np.median(counts)  # Zipf-skewed template frequencies


def test_queries_lie_near_their_anchor_type(catalog, workload, index) -> None:
    res = index.search(workload.queries[:50], None, k=1)
    types = np.asarray(catalog.attributes.column("type").to_pylist(), dtype=object)
    same = types[res.ids[:, 0]] == types[workload.anchors[:50]]
    assert same.mean() > 0.8
