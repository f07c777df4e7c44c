"""Exact batch search equals an independent per-query float64 brute force."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from threadpoolctl import threadpool_info

import hqi
import hqi.execution.batch as batch_mod
import hqi.execution.exact as exact_mod
from hqi.execution.topk import RowMasks, TopK


def reference(vectors, mask, queries, k, metric):
    """Positions and distances, ties broken by the smaller position (float64)."""
    x = vectors.astype(np.float64)
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    rows = np.flatnonzero(mask)
    pos = np.full((len(queries), k), -1)
    dist = np.full((len(queries), k), np.inf)
    for i, q in enumerate(queries.astype(np.float64)):
        if metric == "cosine":
            q = q / np.linalg.norm(q)
        if metric == "l2":
            d = ((x[rows] - q) ** 2).sum(axis=1)
        elif metric == "ip":
            d = -(x[rows] @ q)
        else:
            d = 1 - x[rows] @ q
        order = np.lexsort((rows, d))[:k]
        pos[i, : order.size] = rows[order]
        dist[i, : order.size] = d[order]
    return pos, dist


def assert_matches(result, ref_pos, ref_dist, tol=1e-3):
    """Same distances; ids equal, or interchangeable members of a tie at the boundary."""
    np.testing.assert_allclose(result.distances, ref_dist, rtol=1e-4, atol=tol)
    assert ((result.ids < 0) == (ref_pos < 0)).all()
    differ = result.ids != ref_pos
    for i, j in zip(*np.nonzero(differ), strict=True):
        assert abs(ref_dist[i, j] - ref_dist[i, -1]) <= tol * max(1.0, abs(ref_dist[i, -1])) or (
            abs(result.distances[i, j] - ref_dist[i, j]) <= tol
        ), (i, j)


@pytest.fixture(scope="module")
def layouts(catalog, workload):
    """Indexes over the same data: unpartitioned and with a learned layout, per metric."""
    out = {}
    for metric in ("l2", "ip", "cosine"):
        out[metric, False] = hqi.build(
            catalog.vectors, catalog.attributes, metric=metric, list_size=200
        )
        out[metric, True] = hqi.build(
            catalog.vectors,
            catalog.attributes,
            metric=metric,
            workload=workload.filters[150:],
            min_partition_rows=200,
            list_size=100,
        )
    return out


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("layout", [False, True])
@pytest.mark.parametrize("prefilter_ratio", [0.0, 20.0, float("inf")])
@pytest.mark.parametrize("query_block", [7, 100])
def test_exact_equals_reference(
    layouts, catalog, workload, metric, layout, prefilter_ratio, query_block
) -> None:
    index = layouts[metric, layout]
    q, filters = workload.queries[:100], workload.filters[:100]
    opts = {
        "exact": True,
        "prefilter_ratio": prefilter_ratio,
        "block_rows": 300,
        "query_block": query_block,
        "threads": 2,
    }
    res = index.search(q, filters, k=10, parallel=True, **opts)
    serial = index.search(q, filters, k=10, parallel=False, **opts)
    np.testing.assert_array_equal(res.ids, serial.ids)  # workers merge to the same answer
    for i in range(len(q)):
        pos, dist = reference(index.vectors, index.mask(filters[i]), q[i : i + 1], 10, metric)
        ids = np.where(pos >= 0, index.ids[np.maximum(pos, 0)], -1)
        assert_matches(hqi.Result(res.ids[i : i + 1], res.distances[i : i + 1]), ids, dist)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 400), max_size=300).map(lambda v: np.unique(np.asarray(v, np.int64))),
    st.integers(1, 20),
)
def test_runs_split_rows_into_long_runs_and_the_rest(rows, min_run) -> None:
    ranges, rest = exact_mod._runs(rows, min_run)
    covered = np.concatenate([np.arange(a, b) for a, b in ranges] + [rest]).astype(np.int64)
    np.testing.assert_array_equal(np.sort(covered), rows)  # every row once
    assert all(b - a >= min_run for a, b in ranges)
    # What is left holds no run of min_run consecutive rows of the input.
    for a, b in ranges:
        assert not np.isin(np.arange(a, b), rest).any()
    if rest.size and min_run > 1:
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        lengths = np.diff(np.concatenate([[0], breaks, [rows.size]]))
        assert rest.size == lengths[lengths < min_run].sum()


def test_prefilter_reads_runs_in_place(layouts, workload, monkeypatch) -> None:
    """Prefiltered groups read runs of consecutive rows in place: same answers as
    the reference, and the in-place branch is taken."""
    index = layouts["l2", True]
    q, filters = workload.queries[:60], workload.filters[:60]
    used = []
    split = exact_mod._runs

    def spy(rows, min_run):
        ranges, rest = split(rows, min_run)
        used.append(len(ranges))
        return ranges, rest

    monkeypatch.setattr(exact_mod, "IN_PLACE_RUN", 8)
    monkeypatch.setattr(exact_mod, "_runs", spy)
    monkeypatch.setattr(batch_mod, "IN_PLACE_DISTANCES", 0)  # every filter gathered
    res = index.search(q, filters, k=10, exact=True, prefilter_ratio=0.0, block_rows=50)
    assert sum(used) > 0
    for i in range(len(q)):
        pos, dist = reference(index.vectors, index.mask(filters[i]), q[i : i + 1], 10, "l2")
        ids = np.where(pos >= 0, index.ids[np.maximum(pos, 0)], -1)
        assert_matches(hqi.Result(res.ids[i : i + 1], res.distances[i : i + 1]), ids, dist)


def test_small_prefilters_compute_their_distances_in_place(layouts, workload, monkeypatch) -> None:
    """Prefiltered filters of few distances go through the one compiled call
    (``TopK.push_gathered``), the others through gathered products, with the
    reference's answers either way."""
    index = layouts["l2", True]
    q, filters = workload.queries[:60], workload.filters[:60]
    in_place, gathered = [], []
    push, scan = TopK.push_gathered, batch_mod._gather_scan

    def spy_push(self, queries, *args, **kwargs):
        in_place.append(len(queries))
        return push(self, queries, *args, **kwargs)

    def spy_scan(*args, **kwargs):
        gathered.append(1)
        return scan(*args, **kwargs)

    monkeypatch.setattr(TopK, "push_gathered", spy_push)
    monkeypatch.setattr(batch_mod, "_gather_scan", spy_scan)
    monkeypatch.setattr(batch_mod, "IN_PLACE_DISTANCES", 400)
    res = index.search(q, filters, k=10, exact=True, prefilter_ratio=0.0)
    assert sum(in_place) > 0 and sum(gathered) > 0  # both paths taken
    for i in range(len(q)):
        pos, dist = reference(index.vectors, index.mask(filters[i]), q[i : i + 1], 10, "l2")
        ids = np.where(pos >= 0, index.ids[np.maximum(pos, 0)], -1)
        assert_matches(hqi.Result(res.ids[i : i + 1], res.distances[i : i + 1]), ids, dist)


_SMALL_INTS = st.integers(-3, 3).map(float)


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_push_gathered_equals_a_sort_of_each_groups_rows(data) -> None:
    """``TopK.push_gathered``: each query takes exactly its group's rows, merged
    with what its top-k held before, in (distance, position) order, ties
    included (small integers: every distance is exact in float32); a shared
    bound is lowered to each query's k-th distance."""
    n, d = data.draw(st.integers(1, 30)), data.draw(st.integers(1, 5))
    nq, k = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 5))
    vectors = data.draw(hnp.arrays(np.float32, (n, d), elements=_SMALL_INTS))
    scaled = data.draw(hnp.arrays(np.float32, (nq, d), elements=_SMALL_INTS))
    norms = data.draw(st.none() | hnp.arrays(np.float32, n, elements=st.integers(0, 4).map(float)))
    group_of = np.array(data.draw(st.lists(st.integers(0, 2), min_size=nq, max_size=nq)))
    row_sets = [data.draw(st.sets(st.integers(0, n - 1))) for _ in range(3)]
    rows_of = [np.array(sorted(rows), dtype=np.int64) for rows in row_sets]
    before = data.draw(hnp.arrays(np.float32, (nq, n), elements=st.integers(-30, 30).map(float)))
    taken_before = data.draw(st.sets(st.integers(0, n - 1), max_size=3))

    distance = vectors.astype(np.float64) @ scaled.astype(np.float64).T  # (n, nq)
    if norms is not None:
        distance += norms.astype(np.float64)[:, None]
    bound = np.full(nq, np.inf, dtype=np.float32)
    top = TopK(nq, k, bound)
    # Candidates already held: other rows (positions past n) at drawn distances.
    extra = np.array(sorted(taken_before), dtype=np.int64)
    if extra.size:
        top.push_scores(np.arange(nq), before[:, extra].T.copy(), extra + n)
    queries = [np.flatnonzero(group_of == g) for g in range(3)]
    starts = lambda parts: np.cumsum([0] + [p.size for p in parts])  # noqa: E731
    top.push_gathered(
        np.concatenate(queries),
        starts(queries),
        np.concatenate(rows_of),
        starts(rows_of),
        vectors=vectors,
        scaled=scaled,
        norms=norms,
    )
    for qi in range(nq):
        rows = rows_of[group_of[qi]]
        cand_d = np.concatenate([distance[rows, qi], before[qi, extra]])
        cand_p = np.concatenate([rows, extra + n])
        order = np.lexsort((cand_p, cand_d))[:k]
        want_d = np.full(k, np.inf)
        want_d[: order.size] = cand_d[order]
        np.testing.assert_array_equal(top.dist[qi], want_d.astype(np.float32))
        np.testing.assert_array_equal(top.pos[qi, : order.size], cand_p[order])
        assert bound[qi] == top.dist[qi, k - 1]


def test_padding_when_fewer_rows_qualify(rng) -> None:
    x = rng.standard_normal((50, 4)).astype(np.float32)
    index = hqi.build(x, {"g": ["a"] * 3 + ["b"] * 47})
    res = index.search(x[:2], ["g = 'a'", "g = 'zzz'"], k=5, exact=True)
    assert res.ids.dtype == np.int64 and res.distances.dtype == np.float32
    assert (res.ids[0, :3] >= 0).all() and (res.ids[0, 3:] == -1).all()
    assert np.isinf(res.distances[0, 3:]).all() and np.isfinite(res.distances[0, :3]).all()
    assert (res.ids[1] == -1).all() and np.isinf(res.distances[1]).all()
    assert res.to_arrow().num_rows == 3


def test_k_larger_than_collection(rng) -> None:
    x = rng.standard_normal((6, 3)).astype(np.float32)
    res = hqi.build(x).search(x, None, k=20, exact=True)
    assert (res.ids[:, :6] >= 0).all() and (res.ids[:, 6:] == -1).all()
    assert (res.ids[:, 0] == np.arange(6)).all()  # each vector is its own nearest


def test_ties_break_by_position(rng) -> None:
    base = rng.standard_normal((20, 8)).astype(np.float32)
    x = np.repeat(base, 5, axis=0)  # every vector five times
    index = hqi.build(x, ids=np.arange(100) * 10)
    res = index.search(base[:4], None, k=7, block_rows=13, exact=True)
    for i in range(4):
        assert list(res.ids[i, :5]) == [(5 * i + j) * 10 for j in range(5)]
    assert (res.distances[:, :5] == 0).all()


def test_string_ids_and_user_ids(rng) -> None:
    x = rng.standard_normal((30, 5)).astype(np.float32)
    keys = [f"e{i}" for i in range(30)]
    index = hqi.build(x, ids=keys)
    res = index.search(x[:3], None, k=2, exact=True)
    assert res.keys is not None and list(res.keys[:, 0]) == ["e0", "e1", "e2"]
    assert list(index.ids[res.ids[:, 0]]) == ["e0", "e1", "e2"]  # positions in index order
    table = res.to_arrow()
    assert table.column("id").type == pa.string()
    res = hqi.build(x, ids=np.arange(30) + 1000).search(x[:3], None, k=2, exact=True)
    assert res.keys is None and list(res.ids[:, 0]) == [1000, 1001, 1002]


def test_arrow_vectors_and_pandas_filters_are_accepted(rng) -> None:
    """Embeddings as Arrow lists (as a Parquet column reads) and filters as a
    pandas Series (missing = no filter) give the numpy inputs' answers; a NULL
    or ragged Arrow vector is a clear error."""
    pd = pytest.importorskip("pandas")
    x = rng.standard_normal((300, 6)).astype(np.float32)
    attrs = pa.table({"g": rng.choice(["a", "b"], 300)})
    fixed = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 6)
    index = hqi.build(fixed, attrs)
    np.testing.assert_array_equal(index.vectors, hqi.build(x, attrs).vectors)
    q = x[:4] + 0.01
    filters = ["g = 'a'", None, "g = 'b'", None]
    want = index.search(q, filters, k=3)
    chunked = pa.chunked_array([pa.array(list(q[:1])), pa.array(list(q[1:]))])
    for queries in (pa.array(list(q)), chunked):
        for as_given in (pd.Series(filters), pd.Series(filters, dtype="string"), pa.array(filters)):
            got = index.search(queries, as_given, k=3)
            np.testing.assert_array_equal(got.ids, want.ids)
    with pytest.raises(hqi.InvalidInputError, match="queries is NULL at row 1"):
        index.search(pa.array([list(q[0]), None]), None, k=3)
    with pytest.raises(hqi.InvalidInputError, match="different lengths"):
        index.search(pa.array([[1.0] * 6, [1.0] * 5]), None, k=3)
    with pytest.raises(hqi.InvalidInputError, match="must be a list of floats"):
        index.search(pa.array(["x"]), None, k=3)


def test_search_by_id_excludes_self(catalog) -> None:
    index = hqi.build(catalog.vectors, catalog.attributes, ids=catalog.ids + 7)
    anchors = [7, 107, 2007]
    res = index.search_by_id(anchors, "genre != 'pop'", k=5, exact=True)
    full = index.search(catalog.vectors[[0, 100, 2000]], "genre != 'pop'", k=6, exact=True)
    for i, anchor in enumerate(anchors):
        expected = [v for v in full.ids[i] if v != anchor][:5]
        assert list(res.ids[i]) == expected
    same = index.search_by_id(anchors, None, k=1, exclude_self=False, exact=True)
    assert list(same.ids[:, 0]) == anchors


def test_single_vector_query_and_threads_restored(catalog) -> None:
    index = hqi.build(catalog.vectors, catalog.attributes)
    before = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
    res = index.search(catalog.vectors[5], None, k=1, threads=1, exact=True)
    assert res.ids.shape == (1, 1) and res.ids[0, 0] == 5
    # Pools the search loaded (torch's, run alone) may join; those there before
    # are back to their own counts.
    after = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
    assert {path: after[path] for path in before} == before


def test_where_and_count(index, catalog) -> None:
    text = "type = 'film' AND year >= 2000"
    ids = index.where(text)
    table = catalog.attributes.to_pandas()
    expected = table.index[(table["type"] == "film") & (table["year"] >= 2000)].to_numpy()
    assert sorted(ids) == sorted(catalog.ids[expected])
    assert index.count(text) == len(expected)


def _assert_global_order(top: TopK, dist: np.ndarray, k: int) -> None:
    """``top`` holds each row's k smallest finite entries of ``dist`` in (distance,
    position) order, padded with -1."""
    pos, d = top.finish()
    for i in range(dist.shape[0]):
        finite = np.flatnonzero(np.isfinite(dist[i]))
        order = finite[np.lexsort((finite, dist[i, finite]))][:k]
        assert list(pos[i, : order.size]) == list(order)
        assert (pos[i, order.size :] == -1).all()
        np.testing.assert_array_equal(d[i, : order.size], dist[i, order])


# (queries, rows) distances with many ties and some +inf (rejected rows).
_TIED_DISTANCES = hnp.arrays(
    np.float32,
    st.tuples(st.integers(1, 4), st.integers(1, 60)),
    elements=st.sampled_from([0.0, 1.0, 2.0, 3.5, np.inf]),
)


def _push_blocks(top: TopK, dist: np.ndarray, block: int, masks=None, reverse=False) -> None:
    """Push ``dist`` (queries x rows) into ``top`` in blocks of rows, as scores
    (rows x queries), optionally with per-query packed masks over all rows."""
    nq, n = dist.shape
    starts = list(range(0, n, block))
    for s in reversed(starts) if reverse else starts:
        cols = np.arange(s, min(s + block, n))
        top.push_scores(np.arange(nq), dist[:, s : s + block].T.copy(), cols, masks=masks)


@settings(max_examples=80, deadline=None)
@given(
    _TIED_DISTANCES,
    st.integers(1, 8),
    st.integers(1, 12),
    st.lists(st.integers(0, 2), min_size=60, max_size=60),
)
def test_workers_sharing_a_bound_merge_to_the_global_order(dist, k, block, owner) -> None:
    """The executor's workers: top-ks that split the blocks between them and
    share a bound on each query's k-th distance (each skips rows another has
    ruled out) merge to one global (distance, position) sort, ties included."""
    nq, n = dist.shape
    bound = np.full(nq, np.inf, dtype=np.float32)
    tops = [TopK(nq, k, bound) for _ in range(3)]
    for b, s in enumerate(range(0, n, block)):  # blocks dealt out, interleaved
        cols = np.arange(s, min(s + block, n))
        tops[owner[b % len(owner)]].push_scores(np.arange(nq), dist[:, cols].T.copy(), cols)
    kth = np.sort(np.where(np.isfinite(dist), dist, np.inf), axis=1)[:, min(k, n) - 1]
    assert (bound >= kth).all()  # never below the true k-th
    merged = TopK(nq, k)
    for t in tops:
        merged.push(np.arange(nq), t.dist, t.pos)
    _assert_global_order(merged, dist, k)


@settings(max_examples=80, deadline=None)
@given(_TIED_DISTANCES, st.integers(1, 8), st.integers(1, 12), st.randoms(use_true_random=False))
def test_push_merges_candidates_in_any_order_and_chunks(dist, k, chunk, random) -> None:
    """``TopK.push`` (the merge of workers' and remote top-ks): candidates in any
    order, in chunks of any width, some at +inf, pushed into some of the
    queries at a time, give one global (distance, position) sort."""
    nq, n = dist.shape
    columns = list(range(n))
    random.shuffle(columns)
    top = TopK(nq, k)
    for s in range(0, n, chunk):
        cols = np.array(columns[s : s + chunk])
        order = random.sample(range(nq), nq)  # every query once, in two pushes
        cut = random.randint(0, nq)
        for part in (order[:cut], order[cut:]):
            rows = np.array(part, dtype=np.int64)
            pos = np.broadcast_to(cols, (rows.size, cols.size))
            top.push(rows, dist[rows][:, cols], pos)
    _assert_global_order(top, dist, k)


def test_workers_bound_keeps_a_tie_at_the_bound() -> None:
    """A row exactly at another worker's k-th distance may still win on its
    position: the bound skips only rows strictly farther."""
    bound = np.full(1, np.inf, dtype=np.float32)
    first, second = TopK(1, 1, bound), TopK(1, 1, bound)
    q = np.zeros(1, dtype=np.int64)
    first.push_scores(q, np.array([[2.0]], dtype=np.float32), np.array([5]))
    assert bound[0] == 2.0
    second.push_scores(q, np.array([[2.0]], dtype=np.float32), np.array([3]))
    merged = TopK(1, 1)
    for t in (first, second):
        merged.push(q, t.dist, t.pos)
    assert merged.finish()[0].tolist() == [[3]]


@settings(max_examples=60, deadline=None)
@given(
    _TIED_DISTANCES,
    st.integers(1, 8),
    st.integers(1, 20),
)
def test_topk_merge_is_order_independent(dist, k, block) -> None:
    """Blocks pushed in any order equal one global (distance, position) sort."""
    top = TopK(dist.shape[0], k)
    _push_blocks(top, dist, block, reverse=True)
    _assert_global_order(top, dist, k)


@settings(max_examples=80, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        # Up to 20 queries: the pass finds a row's flagged queries eight at a
        # time (kernels._BYTE_OF_BIT), so several words and a partial last one.
        st.tuples(st.integers(1, 20), st.integers(1, 90)),
        elements=st.sampled_from([-1.0, 0.0, 1.0, 2.0, 3.5]),
    ),
    st.data(),
    st.integers(1, 12),
    st.integers(1, 40),
)
def test_topk_scores_with_norms_and_masks(dist, data, k, block) -> None:
    """Scores plus norms, each query taking only its mask's rows (some queries
    unmasked), equal a global sort of the masked sums: the compiled pass's
    norms, mask bits and ties all agree with the definition."""
    nq, n = dist.shape
    norms = data.draw(hnp.arrays(np.float32, n, elements=st.sampled_from([0.0, 0.5, 2.0])))
    keep = data.draw(hnp.arrays(np.bool_, (nq, n)))
    masked = data.draw(hnp.arrays(np.bool_, nq))
    base = data.draw(st.integers(0, 3))  # masks may start before the first row
    bits, offsets, used = [], np.full(nq, -1, dtype=np.int64), 0
    for i in np.flatnonzero(masked):
        bits.append(np.packbits(np.concatenate([np.zeros(base, bool), keep[i]])))
        offsets[i], used = used, used + bits[-1].size
    masks = RowMasks(
        np.concatenate(bits) if bits else np.zeros(1, np.uint8),
        offsets,
        np.full(nq, -base, dtype=np.int64),
    )
    top = TopK(nq, k)
    nq, n = dist.shape
    for s in range(0, n, block):
        cols = np.arange(s, min(s + block, n))
        top.push_scores(np.arange(nq), dist[:, cols].T.copy(), cols, norms[cols], masks)
    expected = dist + norms
    expected[masked[:, None] & ~keep] = np.inf
    _assert_global_order(top, expected, k)


def test_topk_wide_blocks_equal_full_sort(rng) -> None:
    """Wide blocks with ties and rejected rows (a mask), a query with fewer than
    k rows and a mostly rejected one still give the global (distance, position)
    order."""
    nq, n, k = 7, 20_000, 10
    dist = rng.integers(0, 2_000, size=(nq, n)).astype(np.float32)  # many ties
    keep = rng.random((nq, n)) >= 0.6
    keep[3, :] = False
    keep[3, [5, 17_000]] = True  # fewer than k rows
    keep[4, rng.random(n) < 0.999] = False  # a mostly rejected query
    bits = np.concatenate([np.packbits(row) for row in keep])
    step = (n + 7) // 8
    masks = RowMasks(bits, np.arange(nq, dtype=np.int64) * step, np.zeros(nq, dtype=np.int64))
    top = TopK(nq, k)
    _push_blocks(top, dist, 8_192, masks=masks)
    _assert_global_order(top, np.where(keep, dist, np.inf), k)


def test_workers_only_for_plans_big_enough(layouts, workload, monkeypatch) -> None:
    """By default a small plan runs on one thread and a big one on ``threads``
    workers (``stats["workers"]``); ``parallel`` forces either; the answers
    are the same."""
    import hqi.api

    index = layouts["l2", True]
    q, filters = workload.queries[:100], workload.filters[:100]
    small = index.search(q, filters, k=10, exact=True, threads=2)
    assert small.stats["workers"] == 1  # 100 queries over a small catalog
    forced = index.search(q, filters, k=10, exact=True, threads=2, parallel=True)
    assert forced.stats["workers"] == 2
    np.testing.assert_array_equal(small.ids, forced.ids)
    monkeypatch.setattr(hqi.api, "PARALLEL_MIN_WORK", 0)
    assert index.search(q, filters, k=10, exact=True, threads=2).stats["workers"] == 2
    off = index.search(q, filters, k=10, exact=True, threads=2, parallel=False)
    assert off.stats["workers"] == 1


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_flat_equals_reference(layouts, workload, metric) -> None:
    """The flat path (one exact pass over all rows, no planner) gives the exact
    answers, gathering selective filters' rows and scanning for the rest."""
    index = layouts[metric, True]
    q, filters = workload.queries[:80], workload.filters[:80]
    res = index.search(q, filters, k=10, flat=True, nprobe=1, block_rows=700)
    assert res.stats["flat"] == 1.0 and res.stats["nprobe"] == float("inf")
    planned = index.search(q, filters, k=10, flat=False, exact=True)
    assert "flat" not in planned.stats
    for i in range(len(q)):
        pos, dist = reference(index.vectors, index.mask(filters[i]), q[i : i + 1], 10, metric)
        ids = np.where(pos >= 0, index.ids[np.maximum(pos, 0)], -1)
        assert_matches(hqi.Result(res.ids[i : i + 1], res.distances[i : i + 1]), ids, dist)
    assert_matches(res, planned.ids, planned.distances)


def test_flat_by_default_only_when_cheaper(layouts, workload, monkeypatch) -> None:
    """By default a batch is flat when its rows x queries x dimension are under
    FLAT_WORK_PER_FILTER per distinct filter; ``flat`` forces either way."""
    import hqi.api

    monkeypatch.setattr(hqi.api, "FLAT_WORK_PER_FILTER", 3e6)
    index = layouts["l2", True]
    n, d = index.vectors.shape
    q, filters = workload.queries[:100], workload.filters[:100]
    distinct = len(set(filters))
    assert n * 100 * d < 3e6 * distinct  # many filters on a small store: flat
    assert index.search(q, filters, k=5).stats["flat"] == 1.0
    assert n * 100 * d >= 3e6  # one filter for the batch: planned
    assert "flat" not in index.search(q, filters[0], k=5).stats
    assert "flat" not in index.search(q, filters, k=5, flat=False).stats
    assert index.search(q, filters[0], k=5, flat=True).stats["flat"] == 1.0
    res = index.search(q, filters, k=5, recall_target=0.9)
    assert res.stats["flat"] == 1.0 and res.stats["estimated_recall"] == 1.0
    with pytest.raises(hqi.InvalidInputError, match="flat must be"):
        index.search(q, filters, k=5, flat="yes")


def test_explain_matches_flat_search(layouts, workload) -> None:
    index = layouts["l2", True]
    q, filters = workload.queries[:120], workload.filters[:120]
    plan = index.explain(q, filters, k=10, flat=True)
    res = index.search(q, filters, k=10, flat=True)
    assert set(plan.column("strategy").to_pylist()) == {"flat"}
    assert sum(plan.column("rows").to_pylist()) == res.stats["rows_scanned"]
    for row in plan.to_pylist():
        assert row["qualifying"] == index.count(filters[row["query"]])
        assert row["rows"] in (row["qualifying"], len(index))


def test_row_masks_of_groups() -> None:
    """Consecutive groups share their bits; a group without bits takes every row."""
    a, b = np.packbits([1, 0, 1]), np.packbits([0, 1])
    masks = RowMasks.of_groups([2, 1, 3], [a, None, b], [10, 0, 20])
    assert masks.offset.tolist() == [0, 0, -1, 1, 1, 1]
    assert masks.base.tolist() == [10, 10, 0, 20, 20, 20]
    assert masks.bits.tolist() == [a[0], b[0]]
    none = RowMasks.of_groups([2, 2], [None, None], [0, 5])
    assert none.offset.tolist() == [-1] * 4
    part = masks.of(2, 4)
    assert part.offset.tolist() == [-1, 1] and part.base.tolist() == [0, 20]


def test_flat_search_reports_progress(layouts, workload) -> None:
    """A flat batch calls ``on_progress`` like a planned one (it once skipped it)."""
    seen: list[int] = []
    index = layouts["l2", True]
    res = index.search(
        workload.queries[:30], workload.filters[:30], k=5, flat=True, on_progress=seen.append
    )
    assert res.stats["flat"] == 1.0 and sum(seen) == 30


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_exact_distances_on_threads_are_the_same(monkeypatch, metric) -> None:
    """The winners' distances, recomputed on several threads: the same values
    as on one, padding (-1) at +inf, and the brute-force values."""
    from hqi.collection import Metric

    monkeypatch.setattr(exact_mod, "PARALLEL_DISTANCES", 1)  # threads even for 17 x 4
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((50, 8)).astype(np.float32)
    queries = rng.standard_normal((17, 8)).astype(np.float32)
    pos = rng.integers(0, 50, (17, 4))
    pos[3, 2:] = -1
    m = Metric(metric)
    one = exact_mod.exact_distances(vectors, queries, pos, m)
    two = exact_mod.exact_distances(vectors, queries, pos, m, workers=2)
    np.testing.assert_array_equal(one, two)
    assert np.isinf(two[3, 2:]).all() and np.isfinite(two[np.arange(17) != 3]).all()
    x = vectors[np.maximum(pos, 0)]
    if m is Metric.L2:
        want = ((x - queries[:, None, :]) ** 2).sum(-1)
    else:
        dots = (x * queries[:, None, :]).sum(-1)
        want = -dots if m is Metric.IP else 1.0 - dots
    np.testing.assert_allclose(two[pos >= 0], want[pos >= 0], rtol=1e-4, atol=1e-4)


def test_thread_limits_reach_pools_loaded_after_the_first_call(monkeypatch) -> None:
    """limit_threads keeps threadpoolctl's handle between calls, and takes it
    again once a module was imported since (it may have loaded a new pool)."""
    import sys
    import types

    from hqi import _threads

    with _threads.limit_threads(1):
        first = _threads._pools()
        blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        assert blas and set(blas) == {1}
    assert _threads._pools() is first
    monkeypatch.setitem(sys.modules, "hqi_test_new_module", types.ModuleType("x"))
    assert _threads._pools() is not first


def test_run_split_runs_every_range_once_on_kept_helpers() -> None:
    """run_split: every range once, the first in the calling thread, the rest on
    helper threads kept between calls; a split from inside a helper runs there
    (no helper waits on helpers); every range ends before an error is raised."""
    import threading
    import time

    from hqi import _threads

    seen: list[tuple[int, int, str]] = []
    lock = threading.Lock()

    def note(a: int, b: int) -> None:
        with lock:
            seen.append((a, b, threading.current_thread().name))

    _threads.run_split(note, [0, 3, 7, 10])
    assert sorted((a, b) for a, b, _ in seen) == [(0, 3), (3, 7), (7, 10)]
    assert dict(((a, b), t) for a, b, t in seen)[(0, 3)] == threading.current_thread().name
    helpers = {t for a, b, t in seen if a}
    assert all(t.startswith("hqi-split") for t in helpers)
    pool = _threads._helpers(1)
    _threads.run_split(note, [0, 1, 2])
    assert _threads._helpers(1) is pool  # kept

    inner: list[tuple[int, int]] = []

    def nested(a: int, b: int) -> None:
        _threads.run_split(lambda c, d: inner.append((c, d)), [a, (a + b) // 2, b])

    _threads.run_split(nested, [0, 4, 8, 12])
    assert sorted(inner) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10), (10, 12)]

    ended: list[int] = []

    def fails(a: int, b: int) -> None:
        if a == 0:
            raise ValueError("first")
        time.sleep(0.05)
        ended.append(a)

    with pytest.raises(ValueError, match="first"):
        _threads.run_split(fails, [0, 1, 2, 3])
    assert sorted(ended) == [1, 2]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(1, 9),
    st.data(),
)
def test_sort_by_distance_equals_lexsort(nq, k, data) -> None:
    """The winners' final order (finish_topk, exact_search): by distance, then
    position, padding (-1) last among equal distances and NaN after all, as
    np.lexsort orders them, on one thread or several; tied and repeated
    distances, padding at +inf and NaN included."""
    values = st.sampled_from([0.0, 0.5, 1.0, -2.0, np.inf, np.nan])
    dist = data.draw(hnp.arrays(np.float32, (nq, k), elements=values))
    pos = data.draw(hnp.arrays(np.int64, (nq, k), elements=st.integers(-1, 5)))
    key = np.where(pos < 0, np.iinfo(np.int64).max, pos)
    order = np.lexsort((key, dist), axis=-1)
    want_pos = np.take_along_axis(pos, order, 1)
    want_dist = np.take_along_axis(dist, order, 1)
    before = exact_mod.PARALLEL_DISTANCES, exact_mod.SORT_COMPILED_MIN
    exact_mod.PARALLEL_DISTANCES = 1  # rows split over threads even here
    try:
        for compiled_min, workers in ((0, 1), (0, 3), (1 << 30, 1)):  # compiled, numpy
            exact_mod.SORT_COMPILED_MIN = compiled_min
            got_pos, got_dist = exact_mod.sort_by_distance(pos.copy(), dist.copy(), workers=workers)
            np.testing.assert_array_equal(got_pos, want_pos)
            np.testing.assert_array_equal(got_dist, want_dist)
    finally:
        exact_mod.PARALLEL_DISTANCES, exact_mod.SORT_COMPILED_MIN = before
