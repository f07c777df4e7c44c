"""Adding and deleting entities in a built index (hqi.index.update)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hqi
from hqi.datasets import make_catalog, make_workload
from hqi.evaluation import recall_at_k
from hqi.query import ColumnStore

N0 = 3000  # rows built; the rest of the catalog is added


def _build(catalog, workload, rows: slice, **options) -> hqi.Index:
    return hqi.build(
        catalog.vectors[rows],
        catalog.attributes.slice(
            rows.start or 0, (rows.stop or len(catalog.ids)) - (rows.start or 0)
        ),
        catalog.ids[rows],
        workload=workload.filters[150:],
        min_partition_rows=150,
        list_size=64,
        **options,
    )


def check_layout(index: hqi.Index) -> None:
    """The storage invariants: every row in the partition the tree gives it,
    lists inside their partitions, no list empty or over the cap, every row
    in the list (group of chunks) whose centroid is nearest among its
    partition's, nearest its centroid first."""
    part = index._part
    n = len(index)
    row_part = np.repeat(np.arange(part.num_parts), np.diff(part.part_bounds))
    np.testing.assert_array_equal(
        part.tree.assign(ColumnStore(index.attributes), np.asarray(index.vectors)), row_part
    )
    assert part.list_bounds[-1] == n and part.part_bounds[-1] == n
    np.testing.assert_array_equal(part.list_bounds[part.part_lists], part.part_bounds)
    sizes = np.diff(part.list_bounds)
    assert sizes.min() > 0 and sizes.max() <= 4 * part.target_list_size
    x = np.asarray(index.vectors, dtype=np.float64)
    row_list = np.repeat(np.arange(part.num_lists), sizes)
    c = part.centroids.astype(np.float64)
    d = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)  # small stores only
    d[row_part[:, None] != part.list_part[None, :]] = np.inf
    own = d[np.arange(n), row_list]
    assert (own <= d.min(axis=1) + 1e-4 * (1 + own)).all()
    for t in range(part.num_lists):
        run = own[part.list_bounds[t] : part.list_bounds[t + 1]]
        assert (np.diff(run) >= -1e-4 * (1 + run[1:])).all()


@pytest.fixture(scope="module")
def grown(catalog, workload) -> hqi.Index:
    index = _build(catalog, workload, slice(0, N0))
    index.add(catalog.vectors[N0:], catalog.attributes.slice(N0), catalog.ids[N0:])
    return index


@pytest.fixture(scope="module")
def whole(catalog, workload) -> hqi.Index:
    return _build(catalog, workload, slice(0, None))


def test_added_rows_answer_as_a_build_of_all(grown, whole, catalog, workload) -> None:
    q, f = workload.queries[:150], workload.filters[:150]
    assert len(grown) == len(catalog.ids)
    truth = whole.search(q, f, k=10, exact=True)
    exact = grown.search(q, f, k=10, exact=True)
    np.testing.assert_array_equal(exact.ids, truth.ids)
    np.testing.assert_allclose(exact.distances, truth.distances, rtol=1e-5)
    every = grown.search(q, f, k=10, nprobe=10_000)
    np.testing.assert_array_equal(every.ids, truth.ids)
    assert recall_at_k(grown.search(q, f, k=10), truth).mean() >= 0.9
    check_layout(grown)


def test_layout_is_kept(catalog, workload) -> None:
    index = _build(catalog, workload, slice(0, N0))
    tree, parts = index._part.tree, index._part.num_parts
    index.add(catalog.vectors[N0:], catalog.attributes.slice(N0), catalog.ids[N0:])
    assert index._part.tree is tree and index._part.num_parts == parts
    assert "add_s" in index.build_stats


def test_delete_then_search(catalog, workload) -> None:
    index = _build(catalog, workload, slice(0, None))
    gone = index.where("genre = 'jazz' OR year < 1990")
    index.delete(gone)
    assert len(index) == len(catalog.ids) - len(gone)
    assert index.count("genre = 'jazz' OR year < 1990") == 0
    check_layout(index)
    kept = np.flatnonzero(~np.isin(catalog.ids, gone))
    rest = hqi.build(catalog.vectors[kept], catalog.attributes.take(kept), catalog.ids[kept])
    q, f = workload.queries[:150], workload.filters[:150]
    truth = rest.search(q, f, k=10, exact=True)
    np.testing.assert_array_equal(index.search(q, f, k=10, exact=True).ids, truth.ids)
    np.testing.assert_array_equal(index.search(q, f, k=10, nprobe=10_000).ids, truth.ids)


def test_an_emptied_partition_gets_lists_again(catalog, workload) -> None:
    index = _build(catalog, workload, slice(0, None))
    part = index._part
    p = int(np.argmax(np.diff(part.part_bounds)))
    rows = np.arange(part.part_bounds[p], part.part_bounds[p + 1])
    ids, vectors = index.ids[rows], np.array(index.vectors[rows])
    attributes = index.attributes.take(rows)
    index.delete(ids)
    assert index._part.part_lists[p] == index._part.part_lists[p + 1]  # no lists left
    index.add(vectors, attributes, ids)
    assert index._part.part_lists[p + 1] > index._part.part_lists[p]
    check_layout(index)
    q, f = workload.queries[:100], workload.filters[:100]
    whole = hqi.build(catalog.vectors, catalog.attributes, catalog.ids)
    truth = whole.search(q, f, k=10, exact=True)
    np.testing.assert_array_equal(index.search(q, f, k=10, nprobe=10_000).ids, truth.ids)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "delete", "replace", "update"]),
            st.integers(1, 400),
            st.integers(),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_changes_keep_answers_exact(small_setup, steps) -> None:
    """Any sequence of adds, deletes, replacements and updates (a delete and an
    add in one change, some deleted ids added again): the index answers as a
    build of the rows it holds (all probes and exact), and the layout
    invariants hold."""
    catalog, workload, base = small_setup
    index = hqi.open(base, verify=False)
    n = len(catalog.ids)
    source = np.full(n, -1)  # the catalog row each id now holds (-1: absent)
    source[:600] = np.arange(600)
    for op, count, seed in steps:
        rng = np.random.default_rng(abs(seed))
        pool = np.flatnonzero(source < 0 if op == "add" else source >= 0)
        free = np.setdiff1d(np.arange(n), source)  # rows no id holds: no tied distances
        size = min(count, pool.size - (op in ("delete", "update")), free.size)
        if size <= 0:
            continue
        chosen = np.sort(rng.choice(pool, size=size, replace=False))
        rows = rng.choice(free, size=size, replace=False)
        if op == "update":
            absent = np.flatnonzero(source < 0)
            extra = rng.choice(absent, size=min(size - size // 2, absent.size), replace=False)
            added = np.concatenate([chosen[: size // 2], extra])  # half the deleted come back
            rows = rows[: added.size]
            index.update(
                catalog.vectors[rows],
                catalog.attributes.take(rows),
                catalog.ids[added],
                delete=catalog.ids[chosen],
            )
            source[chosen] = -1
            source[added] = rows
        elif op == "delete":
            index.delete(catalog.ids[chosen])
            source[chosen] = -1
        else:
            index.add(
                catalog.vectors[rows],
                catalog.attributes.take(rows),
                catalog.ids[chosen],
                replace=op == "replace",
            )
            source[chosen] = rows
    held = np.flatnonzero(source >= 0)
    assert len(index) == held.size
    check_layout(index)
    rows = source[held]
    oracle = hqi.build(catalog.vectors[rows], catalog.attributes.take(rows), catalog.ids[held])
    q, f = workload.queries[:40], workload.filters[:40]
    truth = oracle.search(q, f, k=5, exact=True)
    np.testing.assert_array_equal(index.search(q, f, k=5, exact=True).ids, truth.ids)
    np.testing.assert_array_equal(index.search(q, f, k=5, nprobe=10_000).ids, truth.ids)


@pytest.fixture(scope="module")
def small_setup(tmp_path_factory):
    catalog = make_catalog(1500, 8, seed=3)
    workload = make_workload(catalog, 200, seed=4)
    index = hqi.build(
        catalog.vectors[:600],
        catalog.attributes.slice(0, 600),
        catalog.ids[:600],
        workload=workload.filters,
        min_partition_rows=40,
        list_size=32,
    )
    path = tmp_path_factory.mktemp("update") / "base"
    index.save(path)
    return catalog, workload, path


def test_vector_cuts_and_cosine(catalog, workload) -> None:
    for options in ({"vector_cuts": 16, "vector_probe": 4}, {"metric": "cosine"}):
        index = _build(catalog, workload, slice(0, N0), **options)
        index.add(catalog.vectors[N0:], catalog.attributes.slice(N0), catalog.ids[N0:])
        check_layout(index)
        whole = _build(catalog, workload, slice(0, None), **options)
        q, f = workload.queries[:100], workload.filters[:100]
        truth = whole.search(q, f, k=10, exact=True)
        got = index.search(q, f, k=10, nprobe=10_000)
        np.testing.assert_array_equal(got.ids, truth.ids)
        np.testing.assert_allclose(got.distances, truth.distances, rtol=1e-5, atol=1e-6)


def test_save_and_open_after_changes(tmp_path, catalog, workload, grown) -> None:
    index = hqi.open(grown.save(tmp_path / "grown"))
    index.delete(catalog.ids[:500])
    index.save(tmp_path / "grown")  # over the files it was opened from
    again = hqi.open(tmp_path / "grown")
    assert len(again) == len(catalog.ids) - 500
    assert again._part.list_size == 64
    q, f = workload.queries[:100], workload.filters[:100]
    np.testing.assert_array_equal(
        again.search(q, f, k=10, nprobe=3).ids, index.search(q, f, k=10, nprobe=3).ids
    )


def test_ids_of_added_rows() -> None:
    catalog = make_catalog(500, 8, seed=1)
    index = hqi.build(catalog.vectors[:300], catalog.attributes.slice(0, 300))
    index.add(catalog.vectors[300:], catalog.attributes.slice(300))
    np.testing.assert_array_equal(np.sort(index.ids), np.arange(500))  # continue from the largest
    named = hqi.build(
        catalog.vectors[:300], catalog.attributes.slice(0, 300), [f"e{i}" for i in range(300)]
    )
    with pytest.raises(hqi.InvalidInputError, match="string ids; give the new rows' ids"):
        named.add(catalog.vectors[300:], catalog.attributes.slice(300))
    with pytest.raises(hqi.InvalidInputError, match="new ids must be strings"):
        named.add(catalog.vectors[300:], catalog.attributes.slice(300), np.arange(200))
    with pytest.raises(hqi.InvalidInputError, match="'e7' is already in the index"):
        named.add(catalog.vectors[300:302], catalog.attributes.slice(300, 2), ["new", "e7"])
    named.add(catalog.vectors[300:302], catalog.attributes.slice(300, 2), ["new", "newer"])
    res = named.search(catalog.vectors[300:302], k=1, exact=True)
    assert res.keys.tolist() == [["new"], ["newer"]]
    named.delete(["new", "e0"])
    assert len(named) == 300 and "e0" not in named.ids.tolist()


def test_attribute_columns_of_added_rows() -> None:
    catalog = make_catalog(400, 8, seed=2)
    index = hqi.build(catalog.vectors[:300], catalog.attributes.slice(0, 300))
    rows = catalog.attributes.slice(300)
    # Any column order; int32 years and an all-NULL column cast to the index's types.
    reordered = rows.select(list(reversed(rows.column_names)))
    reordered = reordered.set_column(
        reordered.column_names.index("year"), "year", rows.column("year").cast(pa.int32())
    )
    reordered = reordered.set_column(
        reordered.column_names.index("artist"), "artist", pa.nulls(100)
    )
    index.add(catalog.vectors[300:], reordered)
    assert index.attributes.schema == catalog.attributes.schema
    assert index.count("artist IS NULL") == 100


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda ix, c: ix.add(np.ones((2, 3)), c.attributes.slice(0, 2)), "dimension 3, but"),
        (lambda ix, c: ix.add(c.vectors[:2] * np.nan, c.attributes.slice(0, 2)), "NaN"),
        (lambda ix, c: ix.add(c.vectors[:2]), "give their values"),
        (
            lambda ix, c: ix.add(c.vectors[:2], c.attributes.slice(0, 2).drop(["genre"])),
            "lack attribute column 'genre'",
        ),
        (
            lambda ix, c: ix.add(
                c.vectors[:2], c.attributes.slice(0, 2).append_column("mood", pa.array(["a"] * 2))
            ),
            "unknown attribute column 'mood'",
        ),
        (
            lambda ix, c: ix.add(
                c.vectors[:2],
                c.attributes.slice(0, 2).set_column(
                    c.attributes.column_names.index("year"), "year", pa.array(["x", "y"])
                ),
            ),
            "'year' is int in the index; the new rows give string",
        ),
        (lambda ix, c: ix.add(c.vectors[:2], c.attributes.slice(0, 3)), "3 rows but there are 2"),
        (lambda ix, c: ix.add(c.vectors[:2], c.attributes.slice(0, 2), [5, 900]), "id 5 is"),
        (lambda ix, c: ix.add(c.vectors[:2], c.attributes.slice(0, 2), [900, 900]), "unique"),
        (lambda ix, c: ix.delete([3, 10_000]), "unknown entity id 10000"),
        (lambda ix, c: ix.delete(ix.ids), "cannot delete every entity"),
    ],
)
def test_bad_changes_change_nothing(change, message) -> None:
    catalog = make_catalog(300, 8, seed=5)
    index = hqi.build(catalog.vectors, catalog.attributes)
    before = index.search(catalog.vectors[:20], k=5, exact=True).ids
    with pytest.raises(hqi.InvalidInputError, match=message):
        change(index, catalog)
    assert len(index) == 300
    np.testing.assert_array_equal(index.search(catalog.vectors[:20], k=5, exact=True).ids, before)


def test_nothing_to_change() -> None:
    catalog = make_catalog(100, 8, seed=6)
    index = hqi.build(catalog.vectors, catalog.attributes)
    index.add(np.zeros((0, 8)), catalog.attributes.slice(0, 0))
    index.delete([])
    assert len(index) == 100


def test_replace_upserts(catalog, workload) -> None:
    index = _build(catalog, workload, slice(0, N0))
    # ids 0..199 get the vectors and attributes of rows N0+100.., and N0..N0+99 are new.
    ids = np.concatenate([catalog.ids[:200], catalog.ids[N0 : N0 + 100]])
    source = np.concatenate([np.arange(N0 + 100, N0 + 300), np.arange(N0, N0 + 100)])
    with pytest.raises(hqi.InvalidInputError, match=r"id 0 is already in the index \(replace"):
        index.add(catalog.vectors[source], catalog.attributes.take(source), ids)
    index.add(catalog.vectors[source], catalog.attributes.take(source), ids, replace=True)
    assert len(index) == N0 + 100
    check_layout(index)
    rows = np.concatenate([source[:200], np.arange(200, N0 + 100)])
    oracle = hqi.build(
        catalog.vectors[rows],
        catalog.attributes.take(rows),
        np.concatenate([catalog.ids[:200], catalog.ids[200 : N0 + 100]]),
    )
    q, f = workload.queries[:150], workload.filters[:150]
    truth = oracle.search(q, f, k=10, exact=True)
    np.testing.assert_array_equal(index.search(q, f, k=10, exact=True).ids, truth.ids)
    np.testing.assert_array_equal(index.search(q, f, k=10, nprobe=10_000).ids, truth.ids)


def test_replace_every_entity() -> None:
    catalog = make_catalog(300, 8, seed=8)
    index = hqi.build(catalog.vectors, catalog.attributes, workload=["year < 2000"])
    shifted = catalog.vectors[::-1].copy()
    index.add(shifted, catalog.attributes, catalog.ids, replace=True)
    assert len(index) == 300
    check_layout(index)
    res = index.search(shifted[:5], k=1, exact=True)
    np.testing.assert_array_equal(res.ids[:, 0], catalog.ids[:5])


def test_update_deletes_and_adds_in_one_change() -> None:
    """Index.update: every entity deleted and others added in their place (an
    index is never empty in between), a deleted id added again without
    replace, and the errors: no rows left, attributes without vectors, an
    unknown id to delete (nothing changes)."""
    catalog = make_catalog(600, 8, seed=9)
    first, second = slice(0, 300), slice(300, 600)
    index = hqi.build(
        catalog.vectors[first], catalog.attributes.slice(0, 300), workload=["year < 2000"]
    )
    with pytest.raises(hqi.InvalidInputError, match="cannot delete every entity"):
        index.update(delete=np.arange(300))
    with pytest.raises(hqi.InvalidInputError, match="without vectors"):
        index.update(attributes=catalog.attributes.slice(0, 3), delete=[0])
    with pytest.raises(hqi.InvalidInputError, match="unknown entity id 9999"):
        index.update(catalog.vectors[second], catalog.attributes.slice(300), delete=[0, 9999])
    assert len(index) == 300
    new_ids = np.arange(1000, 1300)
    new_ids[:5] = [0, 1, 2, 3, 4]  # deleted by the same change: new entities, not an error
    index.update(
        catalog.vectors[second], catalog.attributes.slice(300), new_ids, delete=np.arange(300)
    )
    check_layout(index)
    oracle = hqi.build(catalog.vectors[second], catalog.attributes.slice(300), new_ids)
    q = catalog.vectors[:50] + 0.01
    for filt in (None, "year < 2000", "genre = 'jazz'"):
        truth = oracle.search(q, filt, k=5, exact=True)
        np.testing.assert_array_equal(index.search(q, filt, k=5, exact=True).ids, truth.ids)
        np.testing.assert_array_equal(index.search(q, filt, k=5, nprobe=10_000).ids, truth.ids)
    with pytest.raises(hqi.InvalidInputError, match="id 1005 is already in the index"):
        index.update(catalog.vectors[:1], catalog.attributes.slice(0, 1), [1005], delete=[0])


def test_drift_counts_changes_and_flags_rows_from_elsewhere(catalog, workload, grown) -> None:
    """Index.drift: rows added like the built ones keep the error ratio near 1;
    rows of an entity type the build never saw raise it past the advice's
    threshold (bench/drift.py measures what that costs in recall)."""
    fresh = _build(catalog, workload, slice(0, None)).drift()
    assert fresh["added"] == fresh["deleted"] == 0 and fresh["built_rows"] == len(catalog.ids)
    assert fresh["error_ratio"] == pytest.approx(1.0, abs=1e-5)
    assert not fresh["rebuild_advised"]

    like = grown.drift()  # rows N0.. added to a build of the first N0, alike
    assert (like["built_rows"], like["added"], like["deleted"]) == (N0, len(catalog.ids) - N0, 0)
    assert like["error_ratio"] == pytest.approx(1.0, abs=0.05)
    assert not like["rebuild_advised"]

    types = np.asarray(catalog.attributes.column("type").to_pylist())
    songs, others = np.flatnonzero(types == "song"), np.flatnonzero(types != "song")
    index = hqi.build(
        catalog.vectors[others],
        catalog.attributes.take(others),
        catalog.ids[others],
        workload=workload.filters[150:],
        min_partition_rows=150,
        list_size=64,
    )
    index.add(catalog.vectors[songs], catalog.attributes.take(songs), catalog.ids[songs])
    seven = catalog.attributes.take(songs[:7])
    index.add(catalog.vectors[songs[:7]] * 2, seven, catalog.ids[songs[:7]], replace=True)
    index.delete(catalog.ids[others[:5]])
    moved = index.drift()
    assert (moved["added"], moved["deleted"]) == (songs.size + 7, 7 + 5)
    assert moved["rows"] == len(catalog.ids) - 5
    assert moved["error_ratio"] > hqi.api.REBUILD_ERROR_RATIO and moved["rebuild_advised"]
    # The error is the mean squared distance of a row to its list's centroid.
    part, x = index._part, np.asarray(index.vectors, dtype=np.float64)
    centroid = np.repeat(part.centroids, np.diff(part.list_bounds), axis=0)
    expected = ((x - centroid) ** 2).sum(axis=1).mean()
    assert moved["quantization_error"] == pytest.approx(expected, rel=1e-6)


def test_drift_is_saved_and_absent_from_older_indexes(tmp_path, catalog, grown) -> None:
    import json

    path = grown.save(tmp_path / "grown")
    again = hqi.open(path)
    assert again.drift() == pytest.approx(grown.drift())
    assert again.info()["changes"] == grown.info()["changes"]
    manifest = json.loads((path / "manifest.json").read_text())
    del manifest["changes"]  # as saved before hqi kept the build's record
    (path / "manifest.json").write_text(json.dumps(manifest))
    older = hqi.open(path).drift()
    assert older["built_rows"] is None and older["error_ratio"] is None
    assert not older["rebuild_advised"] and older["quantization_error"] > 0
    manifest["changes"] = {"built_rows": "many"}
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(hqi.IndexFormatError, match="'changes' is malformed"):
        hqi.open(path)
