"""bfloat16 products (hqi.execution.products): the bound and the same answers
(exact plans); residual products re-ranked in float32 (approximate plans).

Tests that run the products need torch and an AMX CPU (``pip install
'hqi[amx]'``) and skip without them; the option's validation and the
compiled passes run anywhere.
"""

from __future__ import annotations

import itertools

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hqi
from hqi.errors import InvalidInputError
from hqi.execution import products
from hqi.execution.batch import collect_topk, execute_plan
from hqi.execution.exact import exact_distances
from hqi.execution.products import SLACK, BF16Rows, bf16_available
from hqi.execution.topk import PAD, RowMasks, TopK

needs_amx = pytest.mark.skipif(
    not bf16_available(), reason="needs torch and a CPU with AMX (pip install 'hqi[amx]')"
)


def _brute(vectors, queries, mask, k, metric="l2"):
    """Exact top-k by float64 brute force: ids and distances, rows of ``mask`` only."""
    x = vectors.astype(np.float64)
    q = queries.astype(np.float64)
    if metric == "l2":
        d = (q**2).sum(1)[:, None] + (x**2).sum(1)[None] - 2 * q @ x.T
    elif metric == "ip":
        d = -(q @ x.T)
    else:
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        d = 1 - qn @ xn.T
    d[:, ~mask] = np.inf
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(d, order, 1)


def test_products_option_is_validated() -> None:
    index = hqi.build(np.eye(4, dtype=np.float32), None)
    with pytest.raises(InvalidInputError, match="products must be 'auto', 'fp32' or 'bf16'"):
        index.search(np.eye(4, dtype=np.float32), k=1, products="int8")


def test_bf16_without_torch_or_amx_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setattr(products, "_available", False)
    index = hqi.build(np.random.default_rng(0).random((64, 4), dtype=np.float32), None)
    with pytest.raises(InvalidInputError, match=r"products='bf16' needs torch and a CPU with AMX"):
        index.search(np.zeros((2, 4), dtype=np.float32), k=1, exact=True, products="bf16")
    # auto falls back to float32 and says so
    res = index.search(np.zeros((2, 4), dtype=np.float32), k=1, exact=True)
    assert res.stats["bf16"] == 0.0


@needs_amx
@settings(max_examples=40, deadline=None)
@given(
    d=st.sampled_from([1, 3, 16, 128, 384, 1000]),
    scale=st.sampled_from([1e-20, 1e-3, 1.0, 37.0, 1e15]),
    shift=st.sampled_from([0.0, 1.0, -3.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_products_stay_within_the_bound(d, scale, shift, seed) -> None:
    """Every bfloat16 product is within ``SLACK |s| |x|`` of the exact one: the
    bound the compiled pass relies on to lose nothing."""
    rng = np.random.default_rng(seed)
    x = ((rng.standard_normal((300, d)) + shift) * scale).astype(np.float32)
    s = ((rng.standard_normal((40, d)) - shift) * scale).astype(np.float32)
    x.setflags(write=False)  # as a memory-mapped index's rows: read in place, no warning
    rows = BF16Rows.of(x)
    qs = rows.queries(s)
    approx = (rows.rows @ qs.rounded.T).float().numpy()
    exact = x.astype(np.float64) @ s.astype(np.float64).T
    bound = np.linalg.norm(x, axis=1)[:, None].astype(np.float64) * np.linalg.norm(s, axis=1)
    assert np.all(np.abs(approx - exact) <= SLACK * bound + 1e-30)


@needs_amx
@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("prefilter_ratio", [0.0, 100.0, float("inf")])
@pytest.mark.parametrize("parallel", [False, True])
def test_bf16_exact_search_equals_brute_force(
    catalog, workload, metric, prefilter_ratio, parallel
) -> None:
    """Exact search in bfloat16: the brute force's answers, on the gathered
    (prefilter), mixed and scanned paths, for every metric, on one thread and
    on two workers (which share a bound on each query's k-th distance)."""
    index = hqi.build(
        catalog.vectors,
        catalog.attributes,
        workload=workload.filters[150:],
        metric=metric,
        min_partition_rows=150,
        list_size=64,
    )
    q, filters = workload.queries[:150], workload.filters[:150]
    res = index.search(
        q,
        filters,
        k=10,
        exact=True,
        products="bf16",
        prefilter_ratio=prefilter_ratio,
        parallel=parallel,
        threads=2,
    )
    assert res.stats["bf16"] == 1.0 and res.stats["workers"] == (2.0 if parallel else 1.0)
    ref = index.search(
        q, filters, k=10, exact=True, products="fp32", prefilter_ratio=prefilter_ratio
    )
    assert ref.stats["bf16"] == 0.0
    np.testing.assert_array_equal(res.ids, ref.ids)
    np.testing.assert_allclose(res.distances, ref.distances, rtol=1e-5, atol=1e-6)
    # The oracle: DuckDB selects the rows, float64 brute force ranks them.
    con = duckdb.connect()
    con.register("t", catalog.attributes.append_column("row_", pa.array(np.arange(len(catalog)))))
    for i in range(0, len(filters), 10):
        where = "" if filters[i] is None else f" WHERE {filters[i]}"
        rows = [r[0] for r in con.execute(f"SELECT row_ FROM t{where}").fetchall()]
        mask = np.zeros(len(catalog), dtype=bool)
        mask[rows] = True
        _, want_d = _brute(catalog.vectors, q[i : i + 1], mask, 10, metric)
        n = int(np.isfinite(want_d).sum())
        np.testing.assert_allclose(res.distances[i, :n], want_d[0, :n], rtol=1e-4, atol=1e-4)
        assert (res.ids[i, n:] == -1).all()


@needs_amx
@pytest.mark.parametrize("query_block", [5, 2048])
def test_bf16_products_of_any_query_block_give_the_same_answers(
    catalog, workload, monkeypatch, query_block
) -> None:
    """bfloat16 products take their own shape (``products.QUERY_BLOCK`` queries
    by ``BLOCK_ROWS`` rows): chunks of a few queries, and products of more
    than 256 queries (padded to a multiple of 256), give float32's answers."""
    monkeypatch.setattr(products, "QUERY_BLOCK", query_block)
    monkeypatch.setattr(products, "BLOCK_ROWS", 1024)
    index = hqi.build(
        catalog.vectors,
        catalog.attributes,
        workload=workload.filters[150:],
        min_partition_rows=150,
        list_size=64,
    )
    rng = np.random.default_rng(3)
    picked = catalog.vectors[rng.choice(len(catalog), 600)]
    q = picked + rng.normal(0, 0.01, picked.shape)
    q = q.astype(np.float32)
    filters = [None if i % 3 else workload.filters[i % 150] for i in range(600)]
    for prefilter_ratio in (0.0, float("inf")):  # gathered, and read in place
        res = index.search(
            q, filters, k=10, exact=True, products="bf16", prefilter_ratio=prefilter_ratio
        )
        ref = index.search(
            q, filters, k=10, exact=True, products="fp32", prefilter_ratio=prefilter_ratio
        )
        assert res.stats["bf16"] == 1.0
        np.testing.assert_array_equal(res.ids, ref.ids)
        np.testing.assert_allclose(res.distances, ref.distances, rtol=1e-5, atol=1e-6)


@needs_amx
def test_bf16_keeps_ties_and_short_answers(rng) -> None:
    """Duplicate rows (equal distances: the smaller position wins) and filters
    with fewer qualifying rows than k."""
    base = rng.standard_normal((500, 32)).astype(np.float32)
    vectors = np.concatenate([base, base[:100]])  # rows 500.. repeat rows 0..99
    attrs = {"g": np.arange(600) % 7}
    index = hqi.build(vectors, attrs, workload=["g = 1", "g < 3"], min_partition_rows=50)
    q = vectors[[3, 50, 520]] + 1e-3
    filters = ["g < 3", "g = 6 AND g > 5", "g = 1"]
    for k in (5, 200):
        a = index.search(q, filters, k=k, exact=True, products="bf16")
        b = index.search(q, filters, k=k, exact=True, products="fp32")
        np.testing.assert_array_equal(a.ids, b.ids)


@needs_amx
def test_auto_runs_bf16_on_large_plans_only(catalog, workload, monkeypatch) -> None:
    index = hqi.build(catalog.vectors, catalog.attributes, workload=workload.filters[150:])
    q, filters = workload.queries[:50], workload.filters[:50]
    assert index.search(q, filters, k=10, exact=True).stats["bf16"] == 0.0  # small plan
    monkeypatch.setattr(hqi.api, "BF16_MIN_WORK", 0.0)
    assert index.search(q, filters, k=10, exact=True).stats["bf16"] == 1.0
    assert index.search(q, filters, k=10, nprobe=2).stats["bf16"] == 0.0  # approximate
    assert index.search(q, filters, k=10, exact=True, products="fp32").stats["bf16"] == 0.0
    monkeypatch.setattr(hqi.api, "BF16_APPROX_MIN_WORK", 0.0)  # residual products
    stats = index.search(q, filters, k=10, nprobe=2).stats
    assert (stats["bf16"], stats["candidates"]) == (1.0, 12.0)
    assert index.search(q, filters, k=10, nprobe=2, products="fp32").stats["bf16"] == 0.0


def test_default_prefilter_ratio_follows_the_products(catalog, workload, monkeypatch) -> None:
    """``prefilter_ratio=None`` (default) plans exact searches that may run in
    bfloat16 with ``BF16_PREFILTER_RATIO`` and everything else with
    ``PREFILTER_RATIO``; a given ratio is used as it is. Plans only: runs
    without torch."""
    index = hqi.build(catalog.vectors, catalog.attributes, workload=workload.filters[150:])
    q, filters = workload.queries[:60], workload.filters[:60]
    fp32, bf16 = hqi.api.PREFILTER_RATIO, hqi.api.BF16_PREFILTER_RATIO
    assert fp32 < bf16

    def ratio(nq: int, **kw) -> float:
        opts = hqi.SearchOptions.from_kwargs(k=10, **kw)
        return index._prefilter_ratio(opts, opts.exact, nq)

    monkeypatch.setattr(hqi.api, "bf16_available", lambda: True)
    monkeypatch.setattr(hqi.api, "BF16_MIN_WORK", float(catalog.vectors.size) * 10)
    assert ratio(10, exact=True) == bf16  # rows x 10 queries x d reach the threshold
    assert ratio(9, exact=True) == fp32  # below it: float32 for sure
    assert ratio(10) == fp32  # approximate plans keep float32
    assert ratio(10, exact=True, products="fp32") == fp32
    assert ratio(1, exact=True, products="bf16") == bf16
    assert ratio(10, exact=True, prefilter_ratio=7) == 7.0
    monkeypatch.setattr(hqi.api, "bf16_available", lambda: False)
    assert ratio(10, exact=True) == fp32

    def strategies(**kw) -> list[str]:
        opts = hqi.SearchOptions.from_kwargs(k=10, exact=True, **kw)
        return [f.strategy for f in index._plan(q, filters, opts, None).filters]

    monkeypatch.setattr(hqi.api, "bf16_available", lambda: True)
    assert strategies(products="bf16") == strategies(prefilter_ratio=bf16)
    assert strategies(products="fp32") == strategies(prefilter_ratio=fp32)
    assert strategies(prefilter_ratio=bf16) != strategies(prefilter_ratio=fp32)


# -- approximate plans: bfloat16 products of residuals, re-ranked in float32 --


def _bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 values rounded to bfloat16 (nearest, ties to even), as bit patterns."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_residual_pass_takes_scores_plus_offsets(seed) -> None:
    """The compiled pass for residual products (no torch needed): a row's
    distance is its bfloat16 score widened, plus the query's score of the
    centre (its offset), plus the row's norm; masked rows are skipped; the
    top-k is in (distance, position) order, as a numpy reference computes it
    in the same float32 order."""
    rng = np.random.default_rng(seed)
    b, m, k, nq = 300, 11, 7, 20
    queries = rng.choice(nq, size=m, replace=False).astype(np.int64)
    bits = _bf16_bits(rng.standard_normal((b, m + 5)).astype(np.float32) * 8)  # 5 padding
    norms = rng.random(b).astype(np.float32) * 4
    # Small integers: the offsets' dot products are exact in any order.
    scaled = rng.integers(-4, 5, size=(nq, 6)).astype(np.float32)
    center = rng.integers(-4, 5, size=6).astype(np.float32)
    offsets = (scaled[queries] @ center).astype(np.float32)
    cols = np.arange(1000, 1000 + b, dtype=np.int64)
    allowed = rng.random((m, b)) < 0.6
    allowed[::3] = True  # every third query: no mask
    packed = [None if i % 3 == 0 else np.packbits(allowed[i]) for i in range(m)]
    masks = RowMasks.of_groups([1] * m, packed, [1000] * m)
    top = TopK(nq, k)
    top.push_scores_bf16_approx(queries, bits, cols, norms, masks, scaled=scaled, center=center)
    widened = (bits[:, :m].astype(np.uint32) << 16).view(np.float32)
    dist = (widened + offsets[None, :]) + norms[:, None]  # float32, the kernel's order
    for i, q in enumerate(queries.tolist()):
        d = np.where(allowed[i], dist[:, i], np.inf)
        order = np.lexsort((cols, d))[:k]
        np.testing.assert_array_equal(top.pos[q], cols[order])
        np.testing.assert_array_equal(top.dist[q], d[order])
    others = np.setdiff1d(np.arange(nq), queries)
    assert (top.pos[others] == PAD).all()


def test_rerank_candidates() -> None:
    assert [products.rerank_candidates(k) for k in (1, 5, 10, 100)] == [2, 6, 12, 120]


@needs_amx
def test_residuals_are_rows_less_their_lists_mean(rng) -> None:
    vectors = (rng.standard_normal((1000, 24)) * 3 + 10).astype(np.float32)
    bounds = np.array([0, 100, 100, 550, 1000])  # an empty list too
    res = products.BF16Residuals.of(vectors, bounds)
    rows = res.rows.float().numpy()
    for t, (a, b) in enumerate(itertools.pairwise(bounds)):
        if b > a:
            np.testing.assert_allclose(res.centers[t], vectors[a:b].mean(0), rtol=1e-5)
        exact = vectors[a:b] - res.centers[t]
        assert (np.abs(rows[a:b] - exact) <= 2.0**-8 * np.abs(exact) + 1e-30).all()


@needs_amx
@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_residual_products_keep_the_recall(catalog, workload, metric) -> None:
    """Approximate plans on bfloat16 residuals, re-ranked in float32: the recall
    of float32 at the same probes, nearly the same ids, and float32
    distances (recomputed for the answer)."""
    from hqi.evaluation import recall_at_k

    index = hqi.build(
        catalog.vectors,
        catalog.attributes,
        workload=workload.filters[150:],
        metric=metric,
        list_size=128,
    )
    q, filters = workload.queries[:150], workload.filters[:150]
    truth = index.search(q, filters, k=10, exact=True, products="fp32")
    for nprobe in (1, 4):
        a = index.search(q, filters, k=10, nprobe=nprobe, products="bf16")
        b = index.search(q, filters, k=10, nprobe=nprobe, products="fp32")
        assert a.stats["bf16"] == 1.0 and a.stats["candidates"] == 12.0
        assert b.stats["bf16"] == 0.0 and b.stats["candidates"] == 10.0
        assert recall_at_k(a, truth).mean() >= recall_at_k(b, truth).mean() - 0.005
        assert (a.ids == b.ids).mean() >= 0.98
        same = a.ids == b.ids
        np.testing.assert_allclose(a.distances[same], b.distances[same], rtol=1e-5, atol=1e-5)


@needs_amx
def test_residual_products_with_all_probes_stay_exact(catalog, workload) -> None:
    """A plan that probes every list answers as exact search, so it runs its
    products with float32's answers (not on residuals), even with products="bf16"."""
    index = hqi.build(catalog.vectors, catalog.attributes, workload=workload.filters[150:])
    q, filters = workload.queries[:150], workload.filters[:150]
    truth = index.search(q, filters, k=10, exact=True, products="fp32")
    res = index.search(q, filters, k=10, nprobe=10_000, products="bf16")
    assert res.stats["bf16"] == 1.0 and res.stats["candidates"] == 10.0
    np.testing.assert_array_equal(res.ids, truth.ids)


@needs_amx
def test_nprobe_of_one_partitions_lists_is_still_approximate(catalog, workload) -> None:
    """Probing is global (a query's nearest lists across its routed partitions):
    nprobe as large as the most lists one partition holds, but under the
    index's lists, is an approximate plan and multiplies residuals (re-ranked
    candidates); nprobe of every list answers as exact search."""
    index = hqi.build(
        catalog.vectors, catalog.attributes, workload=workload.filters[150:], list_size=128
    )
    per_part = int(np.diff(index._part.part_lists).max())
    assert 1 < per_part < index.info()["lists"]
    q, filters = workload.queries[:150], workload.filters[:150]
    res = index.search(q, filters, k=10, nprobe=per_part, products="bf16")
    assert res.stats["bf16"] == 1.0 and res.stats["candidates"] == products.rerank_candidates(10)
    truth = index.search(q, filters, k=10, exact=True, products="fp32")
    every = index.search(q, filters, k=10, nprobe=index.info()["lists"], products="bf16")
    assert every.stats["candidates"] == 10.0
    np.testing.assert_array_equal(every.ids, truth.ids)


@needs_amx
def test_residual_products_keep_ties_and_short_answers(rng) -> None:
    """Duplicate rows and filters with fewer qualifying rows than k (and than
    the candidates kept): the answers of float32."""
    base = rng.standard_normal((2000, 32)).astype(np.float32)
    vectors = np.concatenate([base, base[:300]])
    attrs = {"g": np.arange(2300) % 7}
    index = hqi.build(vectors, attrs, workload=["g = 1", "g < 3"], min_partition_rows=100)
    q = vectors[[3, 50, 2100]] + 1e-3
    filters = ["g < 3", "g = 6 AND g > 5", "g = 1"]
    for k in (1, 5, 400):
        a = index.search(q, filters, k=k, nprobe=2, products="bf16")
        b = index.search(q, filters, k=k, nprobe=2, products="fp32")
        assert a.ids.shape == (3, k)
        assert ((a.ids >= 0).sum(1) == (b.ids >= 0).sum(1)).all()
        np.testing.assert_array_equal(a.ids[:, :1], b.ids[:, :1])


def _residual_plan(catalog, workload):
    """An index with lists of 128 rows, the plan of 100 queries at nprobe 2, and
    the index's bfloat16 residuals."""
    index = hqi.build(
        catalog.vectors, catalog.attributes, workload=workload.filters[150:], list_size=128
    )
    q, filters = workload.queries[:100], workload.filters[:100]
    opts = hqi.SearchOptions.from_kwargs(k=5, nprobe=2)
    plan = index._plan(q, filters, opts, 2)
    return index, q, plan, products.BF16Residuals.of(index._vectors, index._part.list_bounds)


@needs_amx
def test_residual_plans_rerank_their_candidates(catalog, workload) -> None:
    """The executor keeps ``candidates`` per query on residual products, and the
    answer is the k nearest of them by float32 distance."""
    index, q, plan, residual = _residual_plan(catalog, workload)
    args = (plan, index._vectors, index._sq_norms, q, 5, index._metric, index._part)
    top, _ = collect_topk(*args, residual=residual, candidates=9)
    assert top.pos.shape == (100, 9)
    pos, _, _ = execute_plan(*args, residual=residual, candidates=9)
    assert pos.shape == (100, 5)
    cand = np.where(top.pos == PAD, -1, top.pos)
    d = exact_distances(index._vectors, q, cand, index._metric)
    for i in range(100):
        best = cand[i][np.lexsort((cand[i], d[i]))][:5]
        np.testing.assert_array_equal(pos[i], best)


@needs_amx
def test_executor_workers_run_torch_on_one_thread_each(catalog, workload, monkeypatch) -> None:
    """OpenMP's thread count is per thread: each executor worker sets its own
    to one (the caller's setting does not reach it), so two workers' products
    do not each run a team of every core's threads."""
    import threading

    import torch

    index, q, plan, residual = _residual_plan(catalog, workload)
    set_to: dict[int, int] = {}  # each thread's last torch.set_num_threads
    ran: set[int] = set()  # threads that ran a list's products, and their setting then
    push, set_threads = products.BF16ResidualQueries.push_list, torch.set_num_threads

    def spy_push(self, *args, **kwargs):
        ran.add((threading.get_ident(), set_to.get(threading.get_ident())))
        return push(self, *args, **kwargs)

    def spy_set(n: int) -> None:
        set_to[threading.get_ident()] = n
        set_threads(n)

    monkeypatch.setattr(products.BF16ResidualQueries, "push_list", spy_push)
    monkeypatch.setattr(torch, "set_num_threads", spy_set)
    before = torch.get_num_threads()
    args = (plan, index._vectors, index._sq_norms, q, 5, index._metric, index._part)
    pos, _, _ = execute_plan(*args, residual=residual, candidates=9, workers=2)
    one, _, _ = execute_plan(*args, residual=residual, candidates=9, workers=1)
    workers = {(t, n) for t, n in ran if t != threading.get_ident()}
    assert workers and all(n == 1 for _, n in workers)
    assert torch.get_num_threads() == before
    np.testing.assert_array_equal(pos, one)
