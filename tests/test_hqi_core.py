"""The HQI core: layout + per-partition IVF + planner + batch executor."""

from __future__ import annotations

import importlib
import itertools
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import hqi
from hqi.evaluation import recall_at_k, recall_of_reached
from hqi.index.partitioned import default_list_size


def _learn(catalog, workload, **options) -> hqi.Index:
    return hqi.build(
        catalog.vectors,
        catalog.attributes,
        catalog.ids,
        workload=workload.filters[150:],
        min_partition_rows=150,
        list_size=64,
        **options,
    )


@pytest.fixture(scope="module")
def learned(catalog, workload) -> hqi.Index:
    return _learn(catalog, workload)


@pytest.fixture(scope="module")
def truth(learned, workload) -> hqi.Result:
    return learned.search(workload.queries[:150], workload.filters[:150], k=10, exact=True)


def test_layout_is_learned_from_the_workload(learned) -> None:
    info = learned.info()
    assert info["partitions"] > 4 and info["lists"] > info["partitions"]
    assert info["layout_cuts"]  # cuts are workload atoms, printed as SQL
    assert all(isinstance(c, str) and c for c in info["layout_cuts"])


def test_all_probes_equal_exact(learned, workload, truth) -> None:
    res = learned.search(workload.queries[:150], workload.filters[:150], k=10, nprobe=10_000)
    np.testing.assert_array_equal(res.ids, truth.ids)
    np.testing.assert_allclose(res.distances, truth.distances, rtol=1e-6)


@pytest.mark.parametrize("shapes", [False, True])
def test_clearing_filter_caches_keeps_answers(catalog, workload, shapes: bool) -> None:
    """clear_filter_caches forgets parsed filters (the next parse is a new
    object) and leaves every answer as it was."""
    index = _learn(catalog, workload)
    queries, filters = workload.queries[:150], workload.filters[:150]
    before = [index.search(queries, filters, k=10, **o) for o in ({"nprobe": 2}, {"exact": True})]
    texts = [t for t in filters if t]
    parsed = [index.parse(t) for t in texts]
    assert all(index.parse(t) is p for t, p in zip(texts, parsed, strict=True))  # cached
    index.clear_filter_caches(shapes=shapes)
    again = [index.parse(t) for t in texts]
    assert again == parsed and all(a is not p for a, p in zip(again, parsed, strict=True))
    index.clear_filter_caches(shapes=shapes)
    after = [index.search(queries, filters, k=10, **o) for o in ({"nprobe": 2}, {"exact": True})]
    for b, a in zip(before, after, strict=True):
        np.testing.assert_array_equal(a.ids, b.ids)


def test_default_settings_reach_recall(learned, workload, truth) -> None:
    res = learned.search(workload.queries[:150], workload.filters[:150], k=10)
    assert recall_at_k(res, truth).mean() >= 0.9


def test_default_build_and_search_reach_recall(catalog, workload, truth) -> None:
    """No options at all: the default list size and nprobe (scaled together)."""
    index = hqi.build(catalog.vectors, catalog.attributes, catalog.ids, workload=workload.filters)
    info = index.info()
    assert info["list_size"] == default_list_size(len(catalog.ids)) == 512
    assert info["default_nprobe"] == 16
    res = index.search(workload.queries[:150], workload.filters[:150], k=10)
    assert res.stats["nprobe"] == 16
    assert recall_at_k(res, truth).mean() >= 0.9


def test_default_list_size_grows_with_n(learned, workload) -> None:
    assert [default_list_size(n) for n in (1, 10_000, 200_000, 1_000_000, 10**9)] == [
        512,
        512,
        1024,
        2048,
        4096,
    ]
    # An explicit list size sets the default nprobe: lists of about 8,192 rows in all.
    assert learned.info()["list_size"] == 64 and learned.info()["default_nprobe"] == 128
    res = learned.search(workload.queries[:20], workload.filters[:20], k=10)
    assert res.stats["nprobe"] == 128
    with pytest.raises(hqi.InvalidInputError, match="nprobe"):
        learned.search(workload.queries[:2], None, k=10, nprobe=0)
    with pytest.raises(hqi.InvalidInputError, match="list_size"):
        hqi.build(np.zeros((4, 2), dtype=np.float32), list_size=0)


def test_recall_grows_with_nprobe(learned, workload, truth) -> None:
    recalls = [
        recall_at_k(
            learned.search(
                workload.queries[:150], workload.filters[:150], k=10, nprobe=n, prefilter_ratio=0.5
            ),
            truth,
        ).mean()
        for n in (1, 4, 64)
    ]
    assert recalls[0] <= recalls[1] <= recalls[2] and recalls[2] == 1.0


def _plan_on_the_sample(monkeypatch) -> None:
    """Make the planner estimate filters on its row sample in this small test
    store (it would count them exactly): a sample at any size, estimates from
    two hits, and no exact program counts (``COUNT_ROWS``)."""
    from hqi.execution.planner import planning

    monkeypatch.setattr(planning, "MIN_SAMPLE_HITS", 2)
    monkeypatch.setattr(planning, "SAMPLE_MIN_ROWS", 0)
    monkeypatch.setattr(planning, "COUNT_ROWS", -1)


def _probed_lists(plan) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for q, cell in zip(plan.probe_query.tolist(), plan.probe_cell.tolist(), strict=True):
        out.setdefault(q, set()).add(cell)
    return out


@pytest.mark.parametrize("head", [64, 2])
@pytest.mark.parametrize("ratio", [1.1, 1.5])
def test_probe_ratio_adds_the_lists_within_the_ratio(
    monkeypatch, learned, workload, ratio, head
) -> None:
    """probe_ratio r: each query probes its nprobe nearest lists (as with r = 1,
    FAISS's nprobe) and also every candidate list (of its routed partitions)
    whose centroid is within r times the nearest one's distance, up to
    max(4 * nprobe, PROBE_HEAD) lists, and no other list (the expected-hits
    rule is off here). A small head caps the lists within the ratio, a large
    one lets them all in."""
    from hqi.execution.planner import probing

    monkeypatch.setattr(probing, "PROBE_HEAD", head)
    cap = max(4 * 2, head)
    q, f = workload.queries[:150], workload.filters[:150]
    part = learned._part
    # Selective filters need no expected-hits extension: isolate the ratio rule.
    base = hqi.SearchOptions.from_kwargs(k=10, expected_hits=0, probe_ratio=1.0)
    wide = hqi.SearchOptions.from_kwargs(k=10, expected_hits=0, probe_ratio=ratio)
    fixed, plan = learned._plan(q, f, base, 2), learned._plan(q, f, wide, 2)
    before, after = _probed_lists(fixed), _probed_lists(plan)
    dist = np.sqrt(((q[:, None, :] - part.centroids[None, :, :]) ** 2).sum(-1))
    added = 0
    for i, fp in enumerate(plan.filters):
        if fp.strategy != "scan":
            continue
        cand = np.concatenate(
            [np.arange(part.part_lists[p], part.part_lists[p + 1]) for p in fp.parts]
        )
        for qi in np.flatnonzero(plan.query_filter == i).tolist():
            near = dist[qi, cand]
            within = set(cand[near <= ratio * near.min() * (1 + 1e-6)].tolist())
            inner = set(cand[near <= ratio * near.min() * (1 - 1e-6)].tolist())
            assert before[qi] <= after[qi]  # nprobe's lists stay
            assert len(before[qi]) == min(2, cand.size)
            assert after[qi] <= before[qi] | within
            if len(within) <= cap:
                assert inner <= after[qi]
            else:
                assert len(after[qi]) == cap
            added += len(after[qi] - before[qi])
    assert added > 0


def test_probe_ratio_is_validated_and_ignored_for_ip(catalog, workload) -> None:
    for bad in (0.5, float("nan"), float("inf"), True, "1.1"):
        with pytest.raises(hqi.InvalidInputError, match="probe_ratio"):
            hqi.SearchOptions.from_kwargs(probe_ratio=bad)
    ip = hqi.build(
        catalog.vectors[:3000], catalog.attributes.slice(0, 3000), metric="ip", list_size=64
    )
    q, f = workload.queries[:40], workload.filters[:40]
    a = ip.search(q, f, k=5, nprobe=2, probe_ratio=1.0, flat=False)
    b = ip.search(q, f, k=5, nprobe=2, probe_ratio=3.0, flat=False)
    np.testing.assert_array_equal(a.ids, b.ids)


def test_recall_target(learned, workload, truth) -> None:
    res = learned.search(
        workload.queries[:150],
        workload.filters[:150],
        k=10,
        recall_target=0.95,
        calibration_queries=150,
    )
    assert res.stats["estimated_recall"] >= 0.95
    # The calibration sample is the batch here, so the estimate is the recall.
    assert recall_at_k(res, truth).mean() == pytest.approx(res.stats["estimated_recall"])
    assert res.stats["estimated_recall_stderr"] == 0.0
    # The smallest nprobe of the ladder that reaches it: the one before misses.
    ladder = [1]
    while ladder[-1] < res.stats["nprobe"]:
        ladder.append(hqi.api.next_nprobe(ladder[-1]))
    assert ladder[-1] == res.stats["nprobe"]
    if len(ladder) > 1:
        below = learned.search(
            workload.queries[:150], workload.filters[:150], k=10, nprobe=ladder[-2]
        )
        assert recall_at_k(below, truth).mean() < 0.95


def test_recall_target_answers_exactly_where_that_costs_less(
    learned, workload, monkeypatch
) -> None:
    """Where an nprobe's plan would compute as many distances as the exact plan
    (scaled by EXACT_COST_*), recall_target runs the exact plan: the exact
    answers, an estimated recall of 1 and no nprobe; never where exact costs
    more."""
    q, f = workload.queries[:150], workload.filters[:150]
    exact = learned.search(q, f, k=10, exact=True)
    monkeypatch.setattr(hqi.api, "EXACT_COST_FP32", 0.0)
    monkeypatch.setattr(hqi.api, "EXACT_COST_BF16", 0.0)
    res = learned.search(q, f, k=10, recall_target=0.95, calibration_queries=150)
    assert res.stats["nprobe"] == float("inf")
    assert res.stats["estimated_recall"] == 1.0 and res.stats["estimated_recall_stderr"] == 0.0
    np.testing.assert_array_equal(res.ids, exact.ids)
    np.testing.assert_array_equal(res.distances, exact.distances)
    plan = learned.explain(q, f, k=10, recall_target=0.95, calibration_queries=150)
    assert (
        plan.column("rows").to_numpy().sum()
        == learned.explain(q, f, k=10, exact=True).column("rows").to_numpy().sum()
    )
    monkeypatch.setattr(hqi.api, "EXACT_COST_FP32", 1e9)
    monkeypatch.setattr(hqi.api, "EXACT_COST_BF16", 1e9)
    res = learned.search(q, f, k=10, recall_target=0.95, calibration_queries=150)
    assert res.stats["nprobe"] < float("inf") and res.stats["estimated_recall"] >= 0.95


def test_plans_of_one_search_share_exact_routes(learned, workload) -> None:
    # recall_target's trial plans and the batch's plan keep the filters' exact
    # routes in one dict: plans made with it are the plans made without.
    # In this small store, filters with programs are counted without routes
    # (plan_batch's program counts); planned as for Ray, every filter is routed.
    q, f = workload.queries[:150], workload.filters[:150]
    for opts in (
        hqi.SearchOptions.from_kwargs(k=10),
        hqi.SearchOptions.from_kwargs(k=10, backend="ray"),
    ):
        routes: dict = {}
        for nprobe in (None, 1, 3, 1):
            alone = learned._plan(q, f, opts, nprobe)
            shared = learned._plan(q, f, opts, nprobe, routes=routes)
            np.testing.assert_array_equal(alone.probe_query, shared.probe_query)
            np.testing.assert_array_equal(alone.probe_cell, shared.probe_cell)
            for a, b in zip(alone.filters, shared.filters, strict=True):
                assert (a.strategy, a.qualifying, sorted(a.masks), a.program) == (
                    b.strategy,
                    b.qualifying,
                    sorted(b.masks),
                    b.program,
                )
                np.testing.assert_array_equal(a.parts, b.parts)
    assert routes
    # The dict is read, not only filled: a route planted there is the one used.
    pred = next(p for p, route in routes.items() if route[2].sum() > 0)
    routes[pred] = (np.zeros(0, dtype=np.int64), {}, np.zeros(0, dtype=np.int64), None)
    planted = learned._plan(q, f, opts, 3, routes=routes)  # opts: as for Ray
    assert next(x for x in planted.filters if x.pred == pred).strategy == "empty"


def test_queries_ranked_together_probe_what_they_probe_apart(
    learned, workload, monkeypatch
) -> None:
    # Filters of few queries are ranked all at once, over the union of their
    # lists (those outside a query's partitions at +inf): the same probes as
    # ranking each set of routed partitions apart, and none outside them.
    from hqi.execution.planner import probing

    q, f = workload.queries[:300], workload.filters[:300]
    opts = hqi.SearchOptions.from_kwargs(k=10, probe_ratio=1.1)

    def probes(alone: int, nprobe: int) -> tuple[Any, set[tuple[int, int]]]:
        monkeypatch.setattr(probing, "PROBE_GROUP_ALONE", alone)
        plan = learned._plan(q, f, opts, nprobe)
        return plan, set(zip(plan.probe_query.tolist(), plan.probe_cell.tolist(), strict=True))

    for nprobe in (1, 3, 40):
        plan, apart = probes(1, nprobe)  # every set alone
        _, together = probes(10**9, nprobe)  # every set together
        assert apart == together
        parts = {tuple(x.parts.tolist()) for x in plan.filters if x.strategy == "scan"}
        assert len(parts) > 1  # sets of different partitions were mixed
        for qi, cell in together:
            assert plan.cell_part[cell] in plan.filters[plan.query_filter[qi]].parts


def test_recall_estimate_standard_error(learned, workload, truth) -> None:
    from hqi.api import _sample_stderr

    values = np.array([0.0, 1.0, 0.0, 1.0])
    assert _sample_stderr(values, 4) == 0.0  # the sample is the population
    assert _sample_stderr(values[:1], 100) == 0.0
    # s = 0.5774 over sqrt(4), times the finite-population factor sqrt(96 / 99)
    assert _sample_stderr(values, 100) == pytest.approx(np.sqrt(1 / 3) / 2 * np.sqrt(96 / 99))
    res = learned.search(
        workload.queries[:150],
        workload.filters[:150],
        k=10,
        recall_target=0.9,
        calibration_queries=60,
    )
    stderr = res.stats["estimated_recall_stderr"]
    assert 0 < stderr < 0.05
    assert abs(recall_at_k(res, truth).mean() - res.stats["estimated_recall"]) < 4 * stderr


@pytest.fixture(scope="module")
def learned_cosine(catalog, workload) -> hqi.Index:
    return _learn(catalog, workload, metric="cosine")


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize(
    "options",
    [
        {"nprobe": 1, "probe_ratio": 1.0, "expected_hits": 0},
        {"nprobe": 1},
        {"nprobe": 2, "probe_ratio": 1.2},
        {"nprobe": 3, "prefilter_ratio": 0.5},
        {"nprobe": 4, "prefilter_ratio": float("inf")},
    ],
)
def test_recall_of_reached_rows_is_the_recall_of_the_run(
    learned, learned_cosine, workload, metric, options
) -> None:
    """What calibration relies on: a plan's recall, computed from where its
    probes reach the exact answers, is the recall its run measures, query by
    query."""
    index = learned if metric == "l2" else learned_cosine
    q, f = workload.queries[:150], workload.filters[:150]
    if metric == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    wide = hqi.SearchOptions.from_kwargs(k=20, exact=True)
    exact = index._plan(q, f, wide, None)
    pos, dist, _ = index._run(q, exact, wide)
    truth = hqi.Result(pos, dist)
    # The exact plan (whole partitions, and prefilters) reaches all its answers.
    np.testing.assert_array_equal(exact.reaches(pos), pos >= 0)
    opts = hqi.SearchOptions.from_kwargs(k=10, **options)
    plan = index._plan(q, f, opts, options["nprobe"])
    found_pos, found_dist, _ = index._run(q, plan, opts)
    measured = recall_at_k(hqi.Result(found_pos, found_dist), truth, 10)
    estimated = recall_of_reached(truth, plan.reaches(pos), 10)
    np.testing.assert_array_equal(estimated, measured)
    assert 0.3 < measured.mean() < 1.0  # some answers missed: the check has teeth


def test_recall_of_reached_rejects_mismatched_shapes(truth) -> None:
    with pytest.raises(hqi.InvalidInputError, match="shape"):
        recall_of_reached(truth, np.ones((3, 3), dtype=bool), 10)
    with pytest.raises(hqi.InvalidInputError, match="exceeds"):
        recall_of_reached(truth, np.ones(truth.ids.shape, dtype=bool), 11)


def test_nprobe_ladder() -> None:
    ladder = [1]
    for _ in range(9):
        ladder.append(hqi.api.next_nprobe(ladder[-1]))
    assert ladder == [1, 2, 3, 4, 6, 8, 12, 16, 24, 32]


def test_layout_survives_save_and_open(tmp_path, learned, workload) -> None:
    learned.save(tmp_path / "idx")
    again = hqi.open(tmp_path / "idx")
    assert again.info() | {"path": None} == learned.info() | {"path": None}
    for opts in ({"exact": True}, {"nprobe": 2}):
        a = learned.search(workload.queries[:80], workload.filters[:80], k=5, **opts)
        b = again.search(workload.queries[:80], workload.filters[:80], k=5, **opts)
        np.testing.assert_array_equal(a.ids, b.ids)


@pytest.mark.parametrize("opts", [{"exact": True}, {"nprobe": 2}])
def test_probes_are_grouped_by_cell_filter_and_query(learned, workload, opts) -> None:
    """The executor takes the probes in (cell, filter, query) order: an exact
    plan's come in (filter, query) order and are sorted by cell alone."""
    from hqi.execution.batch import _cell_segments

    q, f = workload.queries[:150], workload.filters[:150]
    o = hqi.SearchOptions.from_kwargs(k=10, **opts)
    plan = learned._plan(q, f, o, learned._nprobe_for(o))
    cells, qids, fids, segments = _cell_segments(plan)
    pfilter = plan.query_filter[plan.probe_query]
    order = np.lexsort((plan.probe_query, pfilter, plan.probe_cell))
    np.testing.assert_array_equal(cells, plan.probe_cell[order])
    np.testing.assert_array_equal(qids, plan.probe_query[order])
    np.testing.assert_array_equal(fids, pfilter[order])
    assert [a for a, _ in segments] == np.flatnonzero(np.r_[True, np.diff(cells) != 0]).tolist()


def test_explain_matches_what_ran(learned, workload) -> None:
    q, f = workload.queries[:120], workload.filters[:120]
    for opts in ({"exact": True}, {"nprobe": 2}, {"nprobe": 2, "prefilter_ratio": 0.0}):
        plan = learned.explain(q, f, k=10, **opts)
        res = learned.search(q, f, k=10, **opts)
        assert plan.num_rows == len(q)
        assert sum(plan.column("rows").to_pylist()) == res.stats["rows_scanned"]
        o = hqi.SearchOptions.from_kwargs(k=10, **opts)
        batch_plan = learned._plan(q, f, o, learned._nprobe_for(o))
        assert batch_plan.distances() == res.stats["rows_scanned"]  # sizes the workers
        strategies = plan.column("strategy").to_pylist()
        assert strategies.count("prefilter") > 0 or opts.get("prefilter_ratio") != 0.0
        for row in plan.to_pylist():
            assert row["covered"] <= row["partitions"]
            # exact counts, except where the plan estimated them from its row sample
            assert row["estimated"] or row["qualifying"] == learned.count(f[row["query"]])
            if row["strategy"] == "prefilter":
                assert row["rows"] == row["qualifying"] and row["lists"] == 0
            if row["strategy"] == "empty":
                assert row["rows"] == 0


def test_multi_tenant_filters(rng) -> None:
    """Curator's case: tenant = 'x' on a high-cardinality column, learned and not."""
    n, tenants = 6000, 300
    x = rng.standard_normal((n, 12)).astype(np.float32)
    tenant = rng.integers(0, tenants, n)
    attrs = pa.table(
        {"tenant": [f"t{t:03d}" for t in tenant], "tier": rng.choice(["free", "pro"], n).tolist()}
    )
    workload = [f"tenant = 't{t:03d}'" for t in rng.integers(0, tenants, 400)]
    index = hqi.build(x, attrs, workload=workload, min_partition_rows=100, list_size=64)
    q = rng.standard_normal((60, 12)).astype(np.float32)
    filters = [f"tenant = 't{t:03d}'" for t in rng.integers(0, tenants, 60)]
    res = index.search(q, filters, k=5)
    exact = index.search(q, filters, k=5, exact=True)
    assert recall_at_k(res, exact).mean() >= 0.95
    for i, text in enumerate(filters):
        allowed = set(index.where(text).tolist())
        assert set(res.ids[i][res.ids[i] >= 0].tolist()) <= allowed
    plan = index.explain(q, filters, k=5)
    assert set(plan.column("strategy").to_pylist()) <= {"prefilter", "scan"}


def test_filter_on_uncut_column_still_works(learned, catalog, rng) -> None:
    """A predicate on attributes the tree never cut on reaches every partition, with masks."""
    q = catalog.vectors[:20] + 0.01
    text = "popularity BETWEEN 10 AND 30 AND NOT explicit"
    res = learned.search(q, text, k=5, nprobe=10_000)
    exact = learned.search(q, text, k=5, exact=True)
    np.testing.assert_array_equal(res.ids, exact.ids)


def _small_layout(catalog, workload: list[str]) -> hqi.Index:
    """The catalog learned from ``workload`` into partitions of 150 rows or more
    and lists of about 64: many cuts on a small catalog."""
    return hqi.build(
        catalog.vectors, catalog.attributes, workload=workload, min_partition_rows=150, list_size=64
    )


def _answers_equal_brute_force(index: hqi.Index, catalog, filters: list[str], duckdb) -> None:
    """Each filter selects what DuckDB selects (some rows), all probes equal the
    exact search, and that is brute force over those rows (planned, not the
    small-store pass)."""
    con = duckdb.connect()
    n = catalog.attributes.num_rows
    con.register("t", catalog.attributes.append_column("row", pa.array(np.arange(n))))
    q = catalog.vectors[:40] + 0.01
    for text in filters:
        mask = np.zeros(n, dtype=bool)
        mask[[r for (r,) in con.execute(f"SELECT row FROM t WHERE {text}").fetchall()]] = True
        assert index.count(text) == mask.sum() > 0, text
        exact = index.search(q, text, k=10, exact=True, flat=False)
        approx = index.search(q, text, k=10, nprobe=10_000, flat=False)
        np.testing.assert_array_equal(approx.ids, exact.ids)
        rows = np.flatnonzero(mask)
        for i in range(len(q)):
            d = ((catalog.vectors[rows] - q[i]) ** 2).sum(axis=1)
            nearest = rows[np.lexsort((rows, d))[:10]]
            found = exact.ids[i]  # -1 past the rows there are
            assert set(found[found >= 0].tolist()) == set(nearest.tolist()), text


def test_like_filters_are_learned_routed_and_answered_exactly(catalog) -> None:
    """LIKE patterns cut the layout like any atom; searches with them, with
    regular expressions and with ranges of lower() / upper() (planned, not
    the small-store pass) equal brute force over the rows DuckDB selects."""
    duckdb = pytest.importorskip("duckdb")
    workload = ["genre LIKE 'ho%'", "artist LIKE '%1_'", "starts_with(type, 'pod')"] * 20
    workload += ["upper(genre) < 'H'"] * 10
    index = _small_layout(catalog, workload + ["year < 1990"] * 20)
    assert any("LIKE" in cut for cut in index.info()["layout_cuts"])
    filters = [
        "genre LIKE 'ho%'",
        "genre NOT ILIKE 'HO%' AND year < 2000",
        "artist LIKE '%1_' OR ends_with(genre, 'y')",
        "contains(type, 'o') AND genre LIKE '_o%'",
        "regexp_matches(artist, '0[12]$') AND year > 1990",
        "genre SIMILAR TO '(horror|comedy)' OR regexp_matches(type, 'BOOK', 'i')",
        "upper(genre) < 'H' AND year < 2000",
        "lower(artist) BETWEEN 'b' AND 'm' OR lower(genre) >= 'r'",
    ]
    _answers_equal_brute_force(index, catalog, filters, duckdb)


def test_date_part_filters_are_routed_and_answered_exactly(catalog) -> None:
    """Date parts (month(), dayofweek(), ...) in the workload do not cut the
    layout (bench/date_parts.py: the cuts cost throughput), the other atoms
    do; searches with date parts equal brute force over the rows DuckDB
    selects."""
    duckdb = pytest.importorskip("duckdb")
    workload = ["month(released) BETWEEN 6 AND 8", "dayofweek(released) IN (0, 6)"] * 20
    index = _small_layout(catalog, workload + ["year < 1990 AND month(released) = 1"] * 20)
    cuts = index.info()["layout_cuts"]
    assert cuts and not any("released)" in cut for cut in cuts), cuts
    filters = [
        "month(released) BETWEEN 6 AND 8",
        "extract(dow FROM released) IN (0, 6) AND year < 2000",
        "quarter(released) = 4 OR day(released) = 1",
        "NOT isodow(released) BETWEEN 2 AND 6 AND genre = 'rock'",
        "date_part('doy', released) <= 40",
    ]
    _answers_equal_brute_force(index, catalog, filters, duckdb)


def test_bad_workload_filter_is_reported(catalog) -> None:
    with pytest.raises(hqi.UnknownColumnError, match="did you mean 'genre'"):
        hqi.build(catalog.vectors, catalog.attributes, workload=["genr = 'x'"])


def test_partition_structure_is_consistent(learned, catalog) -> None:
    part = learned._part
    n = len(catalog)
    assert np.array_equal(np.sort(part.order), np.arange(n))  # a permutation
    assert np.array_equal(learned.ids, catalog.ids[part.order])  # ids follow the rows
    assert np.array_equal(learned.vectors, catalog.vectors[part.order])
    assert part.part_bounds[0] == 0 and part.part_bounds[-1] == n
    assert part.list_bounds[-1] == n and (np.diff(part.list_bounds) >= 0).all()
    # every partition's lists tile exactly its row range
    for p in range(part.num_parts):
        lo, hi = part.part_lists[p], part.part_lists[p + 1]
        assert part.list_bounds[lo] == part.part_bounds[p]
        assert part.list_bounds[hi] == part.part_bounds[p + 1]
    assert np.diff(part.list_bounds).max() <= 4 * 64  # lists capped at 4 x list_size
    # each list's rows run nearest its centroid first
    v = learned.vectors.astype(np.float64)
    for t in range(part.num_lists):
        a, b = int(part.list_bounds[t]), int(part.list_bounds[t + 1])
        central = ((v[a:b] - part.centroids[t]) ** 2).sum(axis=1)
        assert (np.diff(central) >= -1e-3 * (1 + central[1:])).all(), t


def test_oversized_lists_are_split() -> None:
    from hqi.index.partitioned import cap_lists

    cents = np.arange(6, dtype=np.float32).reshape(3, 2)
    new_cents, sizes, _ = cap_lists(cents, np.array([5, 21, 3]), 8)
    assert sizes.tolist() == [5, 7, 7, 7, 3]
    assert new_cents[1:4].tolist() == [[2.0, 3.0]] * 3


def test_shared_quantizer_variant(catalog, workload, truth) -> None:
    """The shared coarse quantizer (measured against per-leaf in bench/quantizer.py)."""
    shared = _learn(catalog, workload, quantizer="shared")
    # every list's centroid is one of the shared ones, reused across partitions
    cents = shared._part.centroids
    assert len(np.unique(cents, axis=0)) < len(cents)
    res = shared.search(workload.queries[:150], workload.filters[:150], k=10, nprobe=10_000)
    np.testing.assert_array_equal(res.ids, truth.ids)
    with pytest.raises(hqi.InvalidInputError, match="quantizer must be"):
        hqi.build(catalog.vectors[:10], quantizer="global")


def test_vector_cuts(tmp_path, catalog, workload, truth) -> None:
    """HQI's vector cuts: the learner may cut by coarse-centroid region; routing
    is by attributes only, so every qualifying row is still reachable."""
    from hqi.layout import VectorCut

    vec = _learn(catalog, workload, vector_cuts=16, vector_probe=4)
    tree = vec._part.tree
    vcuts = [c for c in tree.cuts if isinstance(c, VectorCut)]
    assert vcuts, "the learner chose no vector cut on a clustered catalog"
    assert tree.coarse is not None and tree.coarse.centroids.shape == (16, catalog.vectors.shape[1])
    # Each leaf's rows agree with the tree: re-assigning them gives the same leaves.
    leaf = tree.assign(vec._store, np.asarray(vec._vectors))
    bounds = vec._part.part_bounds
    assert all((leaf[a:b] == p).all() for p, (a, b) in enumerate(itertools.pairwise(bounds)))
    # A vector cut's TRUE side holds exactly the rows whose nearest centroid is in it.
    codes = tree.coarse.nearest(np.asarray(vec._vectors))[:, 0]
    assert set(np.unique(codes[tree.coarse.mask(vcuts[0], codes)])) <= set(vcuts[0].centroids)
    res = vec.search(workload.queries[:150], workload.filters[:150], k=10, nprobe=10_000)
    np.testing.assert_array_equal(res.ids, truth.ids)
    assert any("nearest_centroid IN" in c for c in vec.info()["layout_cuts"])
    vec.save(tmp_path / "vec")
    again = hqi.open(tmp_path / "vec")
    assert again._part.tree.cuts == tree.cuts
    np.testing.assert_array_equal(again._part.tree.coarse.centroids, tree.coarse.centroids)
    a = again.search(workload.queries[:80], workload.filters[:80], k=5, nprobe=2)
    b = vec.search(workload.queries[:80], workload.filters[:80], k=5, nprobe=2)
    np.testing.assert_array_equal(a.ids, b.ids)
    with pytest.raises(hqi.InvalidInputError, match="vector_cuts must be"):
        hqi.build(catalog.vectors[:10], vector_cuts=1)
    with pytest.raises(ValueError, match="needs the rows' vectors"):
        tree.assign(vec._store)


def test_scanned_selective_filters_are_tested_by_their_programs(
    monkeypatch, learned, workload, truth
) -> None:
    """A selective filter is counted on its candidate rows; when it is scanned
    anyway (here: never prefilter) and compiles, the executor tests its
    program and the planner makes no masks: the same answers as with masks,
    and exact with all probes."""
    import importlib

    _plan_on_the_sample(monkeypatch)
    monkeypatch.setattr(importlib.import_module("hqi.query.evaluate"), "SPARSE_MIN_ROWS", 0)
    q, f = workload.queries[:150], workload.filters[:150]
    for opts in ({"nprobe": 4}, {"nprobe": 10_000}, {"exact": True}):
        o = hqi.SearchOptions.from_kwargs(k=10, prefilter_ratio=float("inf"), **opts)
        plan = learned._plan(q, f, o, opts.get("nprobe"))
        tested = [fp for fp in plan.filters if fp.program >= 0 and not fp.estimated]
        assert tested, "no counted filter was scanned with its program"
        for fp in tested:
            assert fp.strategy == "scan" and not fp.masks and fp.row_ids is None
            mask = learned.mask(str(fp.pred))
            bounds = learned._part.part_bounds
            want = [p for p in fp.parts.tolist() if not mask[bounds[p] : bounds[p + 1]].all()]
            assert sorted(fp.partial.tolist()) == want
        with_programs = learned.search(q, f, k=10, prefilter_ratio=float("inf"), **opts)
        monkeypatch.setattr(hqi.api, "COMPILED_FILTERS", False)
        with_masks = learned.search(q, f, k=10, prefilter_ratio=float("inf"), **opts)
        monkeypatch.setattr(hqi.api, "COMPILED_FILTERS", True)
        np.testing.assert_array_equal(with_programs.ids, with_masks.ids)
        np.testing.assert_allclose(with_programs.distances, with_masks.distances, rtol=1e-5)
        if "nprobe" not in opts or opts["nprobe"] == 10_000:
            np.testing.assert_array_equal(with_programs.ids, truth.ids[:150])


def test_estimated_filters_are_masked_where_probed(monkeypatch, learned, workload, truth) -> None:
    """Approximate plans route clearly-scanned filters on sample estimates and
    evaluate them only on the lists their queries probe: those masks must be
    exact, and all probes must still give the exact answers."""
    from hqi.execution.planner import planning

    monkeypatch.setattr(planning, "MIN_SAMPLE_HITS", 2)  # the test catalog is small
    monkeypatch.setattr(hqi.api, "COMPILED_FILTERS", False)  # masks for every filter
    q, f = workload.queries[:150], workload.filters[:150]
    opts = hqi.SearchOptions.from_kwargs(k=10)
    assert learned.count(None) < planning.SAMPLE_MIN_ROWS  # a small store: counted exactly
    assert not any(fp.estimated for fp in learned._plan(q, f, opts, 4).filters)
    _plan_on_the_sample(monkeypatch)
    plan = learned._plan(q, f, opts, 4)
    estimated = [i for i, fp in enumerate(plan.filters) if fp.estimated]
    assert estimated, "no filter took the estimated path"
    probe_filter = plan.query_filter[plan.probe_query]
    for i in estimated:
        fp = plan.filters[i]
        assert fp.strategy == "scan" and fp.partial is not None
        assert not fp.masks  # its masks are per probed list
        truth_mask = learned.mask(str(fp.pred))
        probed = np.unique(plan.probe_cell[probe_filter == i]).tolist()
        assert set(fp.list_masks) <= set(probed)
        for cell in probed:
            p = int(plan.cell_part[cell])
            start, stop = (int(x) for x in plan.cell_bounds[cell])
            want = truth_mask[start:stop]
            assert want.any()  # a list where nothing qualifies is not probed
            if cell in fp.list_masks:  # in a partial partition: the list's own mask
                assert p in fp.partial
                got = np.unpackbits(fp.list_masks[cell], count=stop - start).view(bool)
                np.testing.assert_array_equal(got, want)
                assert not want.all()  # a list where every row qualifies needs no mask
            else:  # covered partition, or a list where every row qualifies
                assert want.all()
    explained = learned.explain(q, f, k=10, nprobe=4)
    assert explained.column("estimated").to_pylist().count(True) > 0
    res = learned.search(q, f, k=10, nprobe=10_000)
    np.testing.assert_array_equal(res.ids, truth.ids)
    assert recall_at_k(learned.search(q, f, k=10), truth).mean() >= 0.9


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("opts", [{"nprobe": 4}, {"exact": True}])
def test_each_probe_admits_exactly_its_filters_rows(monkeypatch, learned, workload, compiled, opts):
    """The executor's row masks, made for all probes at once: a probe admits (by
    packed mask bits, by program, or all rows when it has neither) exactly the
    rows of its cell where its query's filter holds."""
    from hqi.execution import batch
    from hqi.execution.kernels import _holds

    _plan_on_the_sample(monkeypatch)
    monkeypatch.setattr(hqi.api, "COMPILED_FILTERS", compiled)
    q, f = workload.queries[:150], workload.filters[:150]
    opts_ = hqi.SearchOptions.from_kwargs(k=10, **opts)
    plan = learned._plan(q, f, opts_, opts.get("nprobe"))
    assert (plan.programs is not None) == compiled
    cells, _, fids, _ = batch._cell_segments(plan)
    masks = batch._probe_masks(plan, learned._part, cells, fids)
    truth: dict[int, np.ndarray] = {}
    kinds = set()
    for j in np.unique(cells * len(plan.filters) + fids, return_index=True)[1].tolist():
        cell, fid = int(cells[j]), int(fids[j])
        if fid not in truth:
            pred = plan.filters[fid].pred
            truth[fid] = learned.mask(None if pred is None else str(pred))
        start, stop = (int(x) for x in plan.cell_bounds[cell])
        rows = np.arange(start, stop)
        m = masks.of(j, j + 1)
        if m.offset[0] >= 0:
            kinds.add("bits")
            bit = rows - m.base[0]
            admitted = (m.bits[m.offset[0] + (bit >> 3)] >> (7 - (bit & 7))) & 1 == 1
        elif m.program is not None and m.program[0, 0] >= 0:
            kinds.add("program")
            t = m.table
            first, last = (int(x) for x in m.program[0])
            admitted = np.array(
                [_holds(t.attrs, int(r), first, last, t.col, t.group, t.lo, t.hi) for r in rows]
            )
        else:
            kinds.add("all")
            admitted = np.ones(rows.size, dtype=bool)
        np.testing.assert_array_equal(admitted, truth[fid][start:stop], err_msg=f"probe {j}")
    assert kinds >= ({"program", "all"} if compiled else {"bits", "all"})


@pytest.mark.parametrize("opts", [{"nprobe": 4}, {"nprobe": 10_000}, {"exact": True}])
def test_compiled_filters_give_the_masked_answers(monkeypatch, learned, workload, truth, opts):
    """Estimated filters that compile are tested by the executor, not masked: same
    answers as with masks, exact with all probes, and no list masks made."""

    _plan_on_the_sample(monkeypatch)
    q, f = workload.queries[:150], workload.filters[:150]
    plan = learned._plan(q, f, hqi.SearchOptions.from_kwargs(k=10, **opts), opts.get("nprobe"))
    compiled = [fp for fp in plan.filters if fp.program >= 0]
    assert compiled and plan.programs is not None
    assert all(fp.estimated and fp.strategy == "scan" and not fp.list_masks for fp in compiled)
    explained = learned.explain(q, f, k=10, **opts).to_pylist()
    assert [r["compiled"] for r in explained] == [
        plan.filters[i].program >= 0 for i in plan.query_filter.tolist()
    ]
    with_programs = learned.search(q, f, k=10, **opts)
    monkeypatch.setattr(hqi.api, "COMPILED_FILTERS", False)
    assert not any(
        fp.program >= 0
        for fp in learned._plan(
            q, f, hqi.SearchOptions.from_kwargs(k=10, **opts), opts.get("nprobe")
        ).filters
    )
    assert not any(learned.explain(q, f, k=10, **opts).column("compiled").to_pylist())
    with_masks = learned.search(q, f, k=10, **opts)
    np.testing.assert_array_equal(with_programs.ids, with_masks.ids)
    np.testing.assert_array_equal(with_programs.distances, with_masks.distances)
    if opts.get("nprobe", 10_000) == 10_000:
        np.testing.assert_array_equal(with_programs.ids, truth.ids)


@pytest.mark.parametrize("mode", ["masks", "counted", "estimated"])
def test_exact_plans_skip_only_lists_without_qualifying_rows(
    monkeypatch, learned, workload, mode
) -> None:
    """An exact plan scans whole partitions, but inside each the executor skips
    the lists where a query's filter cannot hold (``BatchPlan.list_may``, from
    the lists' zone maps): never one with a qualifying row; fewer rows scanned
    than the partitions hold; the exact answers. Filters with masks (nothing
    compiled), with programs counted exactly (this small store's default) and
    with programs routed on estimates."""

    if mode == "masks":
        monkeypatch.setattr(importlib.import_module("hqi.api"), "COMPILED_FILTERS", False)
    if mode == "estimated":
        _plan_on_the_sample(monkeypatch)
    q, f = workload.queries, workload.filters
    plan = learned._plan(q, f, hqi.SearchOptions.from_kwargs(k=10, exact=True), None)
    assert plan.list_may is not None
    assert any(fp.program >= 0 for fp in plan.filters) == (mode != "masks")
    assert any(fp.estimated for fp in plan.filters) == (mode == "estimated")
    bounds = learned._part.list_bounds
    skipped = 0
    for i, fp in enumerate(plan.filters):
        if fp.strategy != "scan" or fp.pred is None:
            continue
        mask = learned.mask(str(fp.pred))
        for lst in np.flatnonzero(~plan.list_may[i]).tolist():
            assert not mask[bounds[lst] : bounds[lst + 1]].any(), (str(fp.pred), lst)
            skipped += 1
    assert skipped > 0
    whole = plan.cell_bounds[plan.probe_cell]
    assert plan.distances() < int((whole[:, 1] - whole[:, 0]).sum())
    assert plan.distances() == int(plan.rows_per_query().sum())  # by filter, by probe
    res = learned.search(q, f, k=10, exact=True, threads=2, parallel=True)
    assert res.stats["rows_scanned"] == plan.distances()
    flat = learned.search(q, f, k=10, exact=True, flat=True)  # no planner: one pass
    np.testing.assert_array_equal(res.ids, flat.ids)


def test_prefilter_chunks_hold_each_filter_once(
    learned, workload, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workers' prefilter items hold every prefilter filter once, the
    largest first, closing an item once it holds its share of the work; and
    two workers' answers do not depend on how the filters are chunked."""
    from types import SimpleNamespace

    from hqi.execution import batch

    works = [5.0, 1.0, 40.0, 2.0, 2.0, 9.0]
    ctx = SimpleNamespace(
        plan=SimpleNamespace(filters=[SimpleNamespace(qualifying=w) for w in works]),
        queries_of=[np.zeros(0, dtype=np.int64)] * len(works),  # work = qualifying * GATHER_COST
    )
    pre = [0, 1, 2, 3, 4, 5]
    monkeypatch.setattr(batch, "PREFILTER_CHUNK", 0.1)
    # cell work 81 * GATHER_COST: all the work 140 * GATHER_COST, an item's share 7
    chunks = batch._prefilter_chunks(ctx, pre, 81.0 * batch.GATHER_COST, 2)  # type: ignore[arg-type]
    assert [ids for _, ids in chunks] == [[2], [5], [0, 3], [4, 1]]
    assert [w for w, _ in chunks] == pytest.approx([batch.GATHER_COST * w for w in (40, 9, 7, 3)])
    assert batch._prefilter_chunks(ctx, [], 1.0, 2) == []  # type: ignore[arg-type]

    q, f = workload.queries[:120], workload.filters[:120]
    opts = {"k": 10, "exact": True, "prefilter_ratio": 5.0}  # about half prefiltered
    strategies = learned.explain(q, f, **opts).column("strategy").to_pylist()
    assert strategies.count("prefilter") > 10 and "scan" in strategies
    one = learned.search(q, f, threads=1, parallel=False, **opts)
    for share in (0.0, 0.1, 10.0):  # an item per filter, the default, one item
        monkeypatch.setattr(batch, "PREFILTER_CHUNK", share)
        two = learned.search(q, f, threads=2, parallel=True, **opts)
        np.testing.assert_array_equal(two.ids, one.ids)
        np.testing.assert_array_equal(two.distances, one.distances)


def test_gather_ratio_is_shared_by_a_filters_queries() -> None:
    from hqi.execution.planner import gather_ratio

    assert gather_ratio(20.0, 1) == 20.0
    assert gather_ratio(21.0, 4) == 6.0
    assert gather_ratio(21.0, 100) == pytest.approx(1.2)
    assert gather_ratio(0.0, 3) == 0.0  # always prefilter
    assert gather_ratio(0.5, 10) == 0.5
    assert gather_ratio(float("inf"), 1000) == float("inf")  # never


def test_shared_filters_prefilter_sooner(learned, workload) -> None:
    """A filter shared by many queries gathers its rows at least as readily as the
    same filter alone (the gather is paid once), and some do switch."""
    texts = list(dict.fromkeys(workload.filters))[:60]

    def strategies(copies: int) -> list[str]:
        plan = learned.explain(
            np.repeat(workload.queries[: len(texts)], copies, axis=0),
            [t for t in texts for _ in range(copies)],
            k=10,
            exact=True,
        )
        return plan.column("strategy").to_pylist()[::copies]

    alone, shared = strategies(1), strategies(64)
    pairs = list(zip(alone, shared, strict=True))
    assert ("prefilter", "scan") not in pairs
    assert ("scan", "prefilter") in pairs


def test_selective_filters_evaluated_on_candidate_rows(monkeypatch, learned, workload) -> None:
    """With the candidate-rows path on at this small size, the plans count
    selective filters (artist = ..., list_contains) from inverted indexes: the
    exact and all-probes answers must not change."""
    import importlib

    evaluate_module = importlib.import_module("hqi.query.evaluate")
    q, f = workload.queries[:150], workload.filters[:150]
    before_exact = learned.search(q, f, k=10, exact=True)
    before_all = learned.search(q, f, k=10, nprobe=10_000)
    taken = []
    sparse_rows = evaluate_module.sparse_rows

    def counting(pred, store):
        out = sparse_rows(pred, store)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(evaluate_module, "SPARSE_MIN_ROWS", 0)
    monkeypatch.setattr(evaluate_module, "sparse_rows", counting)
    after_exact = learned.search(q, f, k=10, exact=True)
    assert any(taken), "no filter took the candidate-rows path"
    np.testing.assert_array_equal(after_exact.ids, before_exact.ids)
    np.testing.assert_array_equal(learned.search(q, f, k=10, nprobe=10_000).ids, before_all.ids)


def test_masks_on_row_subsets_equal_whole_store_masks(monkeypatch, learned, workload) -> None:
    """Large stores evaluate a filter on its partial partitions' rows only (small
    ones on every row): turned on at this size, the plans count and mask
    exactly the same rows, and the answers do not change."""
    from hqi.execution.options import SearchOptions
    from hqi.execution.planner import routing

    # Filters routed with masks: here, those with programs are counted instead.
    monkeypatch.setattr(importlib.import_module("hqi.api"), "COMPILED_FILTERS", False)
    q, f = workload.queries[:150], workload.filters[:150]
    opts = SearchOptions.from_kwargs(k=10, exact=True)
    whole = learned._plan(q, f, opts, None)
    before = learned.search(q, f, k=10, exact=True)
    subsets = []
    get = routing.RangeCache.get

    def spy(self, *args):
        subsets.append(args[1].size)
        return get(self, *args)

    monkeypatch.setattr(routing, "RANGE_MIN_ROWS", 0)
    monkeypatch.setattr(routing.RangeCache, "get", spy)
    ranged = learned._plan(q, f, opts, None)
    assert subsets, "no filter was evaluated on a row subset"
    for a, b in zip(whole.filters, ranged.filters, strict=True):
        np.testing.assert_array_equal(a.parts, b.parts)
        np.testing.assert_array_equal(a.counts, b.counts)
        assert a.masks.keys() == b.masks.keys()
        for p in a.masks:
            np.testing.assert_array_equal(a.masks[p], b.masks[p])
    after = learned.search(q, f, k=10, exact=True)
    np.testing.assert_array_equal(after.ids, before.ids)


def test_batched_sample_hits_give_the_same_plans(monkeypatch, learned, workload) -> None:
    """The programs' sample hits, counted in one compiled pass (``sample_hits``),
    equal estimating each filter on the sample alone; and the plans decided on
    them, for all programs at once, are those the per-filter rule gives: a
    filter with a program is routed on its estimate exactly when it has
    partial partitions, enough sample hits, and its estimate says scan."""
    from hqi.execution.options import SearchOptions
    from hqi.execution.planner import estimates, planning
    from hqi.query.compiled import compile_filter

    _plan_on_the_sample(monkeypatch)
    monkeypatch.setattr(estimates, "PARALLEL_SAMPLE_ROWS", 0)  # threads at any size
    q, f = workload.queries[:150], workload.filters[:150]
    matrix = learned._attribute_matrix
    preds, query_filter = learned._distinct(f, q.shape[0])
    nqs = np.bincount(query_filter, minlength=len(preds))
    sizes = learned._zones.sizes
    seen = []
    batch_hits = planning.sample_hits

    def spy(may, whole, sample, table, threads=1):
        out = batch_hits(may, whole, sample, table)
        # Split over threads (runs of about equal sample rows): the same counts.
        np.testing.assert_array_equal(batch_hits(may, whole, sample, table, 3), out)
        seen.append((out, sample))
        return out

    monkeypatch.setattr(planning, "sample_hits", spy)
    for nprobe in (4, None):
        opts = SearchOptions.from_kwargs(k=10, exact=nprobe is None)
        plan = learned._plan(q, f, opts, nprobe)
        hits, sample = seen.pop()
        every = np.arange(sizes.size)
        compiled = [i for i, p in enumerate(preds) if compile_filter(p, matrix) is not None]
        assert hits.shape == (len(compiled), sizes.size)
        assert sum(plan.filters[i].estimated for i in compiled) > 5
        for program, i in enumerate(compiled):
            # Routed on its estimate: tested by its program. Counted: masked or
            # prefiltered. (A filter counted on its candidate rows and scanned
            # keeps its program too, but this store is too small for candidate
            # rows: test_scanned_selective_filters_are_tested_by_their_programs.)
            fp = plan.filters[i]
            assert fp.program == (program if fp.estimated else -1)
            est, total = sample.estimate(preds[i], every)
            np.testing.assert_allclose(hits[program] * sample.scale, est)
            assert hits[program].sum() == total
            if nprobe is not None:
                continue  # approximate: the per-filter rule is checked below
            flags = learned._zones.flags(preds[i])
            routed = np.flatnonzero(flags.may_true)
            covered = flags.all_true[routed]
            counts = np.where(covered, sizes[routed], est[routed])
            ratio = planning.gather_ratio(learned._prefilter_ratio(opts, True, len(q)), int(nqs[i]))
            # exact: the rows of the routed lists where it may hold (list zone maps)
            part_ = learned._part
            list_part = np.repeat(np.arange(sizes.size), np.diff(part_.part_lists))
            lists_may = learned._list_zones.flags(preds[i]).may_true | flags.all_true[list_part]
            lists_may &= flags.may_true[list_part]
            work = float(np.diff(part_.list_bounds)[lists_may].sum())
            rule = (~covered).any() and total >= 2 and counts.sum() * ratio > work
            assert fp.estimated == rule
            if rule:
                assert fp.strategy == "scan" and fp.qualifying == round(counts.sum())
                np.testing.assert_array_equal(fp.parts, routed)
                np.testing.assert_allclose(fp.counts, counts)
        if nprobe is not None:
            # Without programs every filter takes the per-filter estimate (masks
            # after probing): the same strategies, estimates and counts.
            with monkeypatch.context() as m:
                m.setattr(hqi.api, "COMPILED_FILTERS", False)
                single = learned._plan(q, f, opts, nprobe)
            for a, b in zip(plan.filters, single.filters, strict=True):
                assert (a.strategy, a.estimated, a.qualifying) == (
                    b.strategy,
                    b.estimated,
                    b.qualifying,
                )
                assert a.scan_work == pytest.approx(b.scan_work)
                np.testing.assert_array_equal(a.parts, b.parts)
                np.testing.assert_allclose(a.counts, b.counts)


def test_row_sample_counts_hits_per_partition() -> None:
    """The sample's per-partition hit counts (segment sums) equal a direct count,
    with empty partitions and partitions holding no sampled row."""
    from hqi.execution.planner import RowSample
    from hqi.query import ColumnStore, parse_filter

    n = 1000
    store = ColumnStore(pa.table({"x": np.arange(n) % 7}))
    bounds = np.array([0, 0, 5, 400, 401, 407, 990, n])  # [0, 0) empty, [401, 407) unsampled
    sample = RowSample(store, bounds, stride=8)
    pred = parse_filter("x <= 3", store.schema)
    parts = np.arange(bounds.size - 1)
    est, hits = sample.estimate(pred, parts)
    positions = np.arange(0, n, 8)
    selected = positions[(positions % 7) <= 3]
    want = np.bincount(np.searchsorted(bounds, selected, side="right") - 1, minlength=parts.size)
    assert hits == want.sum()
    per_part = np.bincount(np.searchsorted(bounds, positions, side="right") - 1, minlength=7)
    np.testing.assert_allclose(est, want * np.diff(bounds) / np.maximum(per_part, 1))
    # The compiled count of many programs at once gives the same hits, pair by pair.
    from hqi.query.compiled import AttributeMatrix, ProgramTable, compile_filter

    matrix = AttributeMatrix(store)
    programs = [compile_filter(parse_filter(t, store.schema), matrix) for t in ("x <= 3", "x = 9")]
    pair_prog, pair_part = np.array([0, 0, 1, 0]), np.array([6, 0, 2, 2])
    got = sample.program_hits(ProgramTable.of(programs, matrix), pair_prog, pair_part)
    np.testing.assert_array_equal(got, [want[6], 0, 0, want[2]])


def test_the_planner_runs_blas_on_one_thread(monkeypatch, learned, workload) -> None:
    """Planning runs its (small) products on the calling thread alone, so that
    no BLAS thread is left spinning beside the planner's and the executor's
    own threads; the search's BLAS threads come back after it."""
    from threadpoolctl import threadpool_info

    from hqi import api

    def blas() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    seen: list[list[int]] = []
    plan_batch = api.plan_batch

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(blas())
        return plan_batch(*args, **kwargs)

    monkeypatch.setattr(api, "plan_batch", spy)
    before = blas()
    res = learned.search(workload.queries[:50], workload.filters[:50], k=5, nprobe=2, threads=2)
    assert seen and all(threads == [1] * len(threads) for threads in seen)
    assert blas() == before
    assert res.ids.shape == (50, 5)


def test_a_search_pauses_the_garbage_collector(monkeypatch, learned, workload) -> None:
    """The cyclic collector is off while a search runs and back after it; a
    caller who turned it off keeps it off; concurrent searches share the pause."""
    import gc
    import threading

    from hqi import _gc, api

    seen: list[bool] = []
    plan_batch = api.plan_batch

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return plan_batch(*args, **kwargs)

    monkeypatch.setattr(api, "plan_batch", spy)
    q, f = workload.queries[:40], workload.filters[:40]
    assert gc.isenabled()
    learned.search(q, f, k=5, nprobe=2)
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        learned.search(q, f, k=5, nprobe=2)
        assert not gc.isenabled()
    finally:
        gc.enable()
    # Two overlapping pauses (as two threads' searches): on again only after both.
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with _gc.paused():
            inside.set()
            release.wait(10)

    worker = threading.Thread(target=hold)
    worker.start()
    inside.wait(10)
    with _gc.paused():
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other pause still runs
    release.set()
    worker.join()
    assert gc.isenabled()


@pytest.mark.parametrize("sampled", [False, True])
@pytest.mark.parametrize("exact", [True, False])
def test_small_store_program_counts_equal_exact_routes(
    monkeypatch, learned, workload, exact, sampled
) -> None:
    """A small store counts its filters' programs on every row of their partial
    partitions instead of routing each filter (plan_batch's program counts):
    the same partitions, counts and strategies as the routes with masks, the
    programs tested in place of the masks, and the same answers. A store
    with a row sample counts them so too where those rows are few
    (``COUNT_ROWS``; ``sampled``: this store given a sample)."""
    from hqi.execution.planner import planning

    api = importlib.import_module("hqi.api")
    q, f = workload.queries, workload.filters
    opts = hqi.SearchOptions.from_kwargs(k=10, exact=exact)
    nprobe = None if exact else 2
    monkeypatch.setattr(api, "COMPILED_FILTERS", False)
    routed = learned._plan(q, f, opts, nprobe)
    want = learned.search(q, f, k=10, exact=exact, nprobe=nprobe)
    monkeypatch.setattr(api, "COMPILED_FILTERS", True)
    if sampled:
        monkeypatch.setattr(planning, "SAMPLE_MIN_ROWS", 0)
    counted = learned._plan(q, f, opts, nprobe)
    got = learned.search(q, f, k=10, exact=exact, nprobe=nprobe)
    assert not any(fp.estimated for fp in counted.filters)
    assert sum(a.program >= 0 for a in counted.filters) > len(counted.filters) // 2
    for a, b in zip(counted.filters, routed.filters, strict=True):
        assert (a.strategy, a.qualifying) == (b.strategy, b.qualifying), str(a.pred)
        np.testing.assert_array_equal(a.parts, b.parts)
        np.testing.assert_array_equal(a.counts, b.counts)
        if a.program >= 0:  # tested by its program: no masks
            assert not a.masks
            assert a.strategy == "scan" or a.strategy == "empty"
        if a.strategy == "prefilter":
            np.testing.assert_array_equal(
                np.sort(a.row_ids), np.flatnonzero(learned.mask(str(a.pred)))
            )
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.distances, want.distances)
