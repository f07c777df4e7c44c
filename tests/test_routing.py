"""Routing never drops a qualifying row, and 'covered' means every row qualifies."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hqi.layout import ZoneMaps
from hqi.query import ColumnStore, evaluate, parse_filter
from hqi.query.predicate import Not
from strategies import TABLE, predicates

STORE = ColumnStore(TABLE)
N = TABLE.num_rows


@st.composite
def bounds(draw: st.DrawFn) -> np.ndarray:
    cuts = draw(st.lists(st.integers(0, N), min_size=0, max_size=12))
    return np.unique(np.array([0, N, *cuts]))


@settings(max_examples=300, deadline=None)
@given(predicates, bounds())
def test_routing_is_conservative(text: str, cuts: np.ndarray) -> None:
    pred = parse_filter(text, STORE.schema)
    zones = ZoneMaps(STORE, cuts)
    flags = zones.flags(pred)
    true_rows = evaluate(pred, STORE)
    false_rows = evaluate(Not(pred), STORE) if pred is not None else np.zeros(N, dtype=bool)
    for p in range(zones.num_parts):
        part = slice(cuts[p], cuts[p + 1])
        size = cuts[p + 1] - cuts[p]
        n_true, n_false = int(true_rows[part].sum()), int(false_rows[part].sum())
        if n_true:
            assert flags.may_true[p], "a partition with qualifying rows was routed away"
        if flags.all_true[p]:
            assert n_true == size, "a partition marked covered has rows that do not qualify"
        if n_false:
            assert flags.may_false[p]
        if flags.all_false[p]:
            assert n_false == size


@settings(max_examples=300, deadline=None)
@given(predicates)
def test_rows_skip_only_filters_true_nowhere(text: str) -> None:
    """The flat pass takes a filter's rows from ``BatchEvaluator.rows``, which
    answers none without evaluating when the columns' ranges rule it out:
    only where its mask has no TRUE row."""
    from hqi.query.evaluate import BatchEvaluator

    pred = parse_filter(text, STORE.schema)
    if pred is None:
        return
    evaluator = BatchEvaluator(STORE)
    mask = evaluate(pred, STORE)
    if evaluator._evaluator.never_true(pred):
        assert not mask.any(), f"{pred}: ruled out, yet {int(mask.sum())} rows qualify"
    np.testing.assert_array_equal(evaluator.rows(pred), np.flatnonzero(mask))


def test_rows_rule_out_comparisons_past_a_columns_values() -> None:
    from hqi.query.evaluate import BatchEvaluator

    evaluator = BatchEvaluator(STORE)._evaluator
    least, greatest = STORE["i"].value_range
    assert (least, greatest) == (-5, 5)
    ruled_out = ["i > 5", "i >= 6", "i < -5", "i = 7", "i = 2.5 AND i > 9", "f > 1e300"]
    for text in ruled_out:
        assert evaluator.never_true(parse_filter(text, STORE.schema)), text
    for text in ["i >= 5", "i <= -5", "i = 0", "i != 7", "i > 9 OR i = 1", "NOT i > 9"]:
        assert not evaluator.never_true(parse_filter(text, STORE.schema)), text


def test_cut_columns_give_exact_coverage() -> None:
    """Partitions sorted on a column are covered or skipped exactly by predicates on it."""
    order = np.argsort(np.nan_to_num(TABLE.column("i").to_numpy(zero_copy_only=False), nan=99))
    store = ColumnStore(TABLE.take(order))
    values = store["i"].values
    valid = store["i"].valid
    bounds_ = [0, *np.flatnonzero(np.diff(values) != 0) + 1, N]
    bounds_ = sorted(set(bounds_) | {int(np.flatnonzero(~valid)[0])} if (~valid).any() else bounds_)
    zones = ZoneMaps(store, np.array(bounds_))
    flags = zones.flags(parse_filter("i >= 2", store.schema))
    mask = evaluate(parse_filter("i >= 2", store.schema), store)
    for p in range(zones.num_parts):
        part = mask[bounds_[p] : bounds_[p + 1]]
        assert flags.all_true[p] == part.all() and flags.may_true[p] == part.any()


def test_length_zones_are_exact_on_partitions_by_length() -> None:
    """Partitions of rows sorted by list length: a length test covers or skips
    each exactly; NULL lists (length NULL) are a partition of their own."""
    tags = TABLE.column("tags").to_pylist()
    order = sorted(range(N), key=lambda r: (tags[r] is None, len(tags[r] or [])))
    store = ColumnStore(TABLE.take(order))
    sizes = [len(t) if t is not None else -1 for t in (tags[r] for r in order)]
    bounds_ = np.array([0, *np.flatnonzero(np.diff(sizes)) + 1, N])
    zones = ZoneMaps(store, bounds_)
    for text in ["len(tags) >= 2", "length(tags) = 1", "array_length(tags) != 3", "len(tags) < 1"]:
        pred = parse_filter(text, store.schema)
        flags = zones.flags(pred)
        mask = evaluate(pred, store)
        for p in range(zones.num_parts):
            part = mask[bounds_[p] : bounds_[p + 1]]
            assert flags.all_true[p] == part.all() and flags.may_true[p] == part.any(), text


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(-40, 40), min_size=1, max_size=30),
    st.lists(st.integers(0, 30), max_size=8),
    st.sampled_from([1, 2, 3, -3, 7, 10, 64]),
    st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
    st.integers(-8, 8),
)
def test_remainder_zones_are_conservative(values, cuts, divisor, op, target) -> None:
    """Zones of sorted integers, a remainder test: never routed away from a
    qualifying row, covered only where every row qualifies (runs within one
    divisor, across 0, negative ones, wrapping past a multiple)."""
    values = sorted(values)
    store = ColumnStore(pa.table({"x": pa.array(values, pa.int64())}))
    bounds_ = np.unique(np.array([0, len(values), *(c for c in cuts if c < len(values))]))
    zones = ZoneMaps(store, bounds_)
    pred = parse_filter(f"x % {divisor} {op} {target}", store.schema)
    flags, mask = zones.flags(pred), evaluate(pred, store)
    false = evaluate(Not(pred), store)
    for p in range(zones.num_parts):
        part, rows = slice(bounds_[p], bounds_[p + 1]), bounds_[p + 1] - bounds_[p]
        assert flags.may_true[p] or not mask[part].any()
        assert not flags.all_true[p] or mask[part].sum() == rows
        assert flags.may_false[p] or not false[part].any()
        assert not flags.all_false[p] or false[part].sum() == rows


def test_date_part_zones_are_exact() -> None:
    """Partitions sorted by a date part: a filter on that part covers or skips
    each partition exactly (the zone maps keep each partition's part values),
    a partition of NULL dates neither."""
    from hqi.query.dateparts import part_values

    data = STORE["d"]
    month = np.where(data.valid, part_values(data.values, "month", timestamp=False), 99)
    order = np.argsort(month, kind="stable")
    store = ColumnStore(TABLE.take(order))
    cuts = np.flatnonzero(np.diff(month[order]) != 0) + 1
    zones = ZoneMaps(store, np.array([0, *cuts, N]))
    for text in ["month(d) BETWEEN 6 AND 8", "month(d) != 2", "quarter(d) = 1", "month(d) = 13"]:
        pred = parse_filter(text, store.schema)
        flags, mask = zones.flags(pred), evaluate(pred, store)
        false = evaluate(Not(pred), store)
        for p in range(zones.num_parts):
            part, no = (
                mask[zones.bounds[p] : zones.bounds[p + 1]],
                false[zones.bounds[p] : zones.bounds[p + 1]],
            )
            assert flags.all_true[p] == part.all() and flags.may_true[p] == part.any(), text
            assert flags.all_false[p] == no.all() and flags.may_false[p] == no.any(), text


@settings(max_examples=150, deadline=None)
@given(predicates, bounds())
def test_range_store_evaluates_like_the_whole(text: str, cuts: np.ndarray) -> None:
    """Evaluating on concatenated row ranges equals slicing the whole-store mask."""
    from hqi.query.columns import RangeStore

    pred = parse_filter(text, STORE.schema)
    starts, stops = cuts[:-1][::2], cuts[1:][::2]  # every other range
    rows = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops, strict=True)])
    got = evaluate(pred, RangeStore(STORE, starts, stops))
    np.testing.assert_array_equal(got, evaluate(pred, STORE)[rows.astype(int)])


@pytest.mark.parametrize(
    "text",
    [
        "len(tags) >= 2",
        "length(name) = 3",
        "strlen(name) > 4",
        "i % 3 = 1",
        "i < f",
        "s < name",
        "d < ts",
        "i - f > 0.5",
        "abs(d - d) = 0",
    ],
)
def test_range_stores_evaluate_derived_values_like_the_whole(text: str) -> None:
    """Lengths, remainders, pairs and differences on rows in several ranges
    (not from the first row): the whole store's mask at those rows."""
    from hqi.query.columns import RangeStore

    pred = parse_filter(text, STORE.schema)
    starts, stops = np.array([7, 60, 150, 290]), np.array([40, 61, 260, 300])
    rows = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops, strict=True)])
    for store in (RangeStore(STORE, starts, stops), RangeStore.of_rows(STORE, rows)):
        np.testing.assert_array_equal(evaluate(pred, store), evaluate(pred, STORE)[rows])


@settings(max_examples=150, deadline=None)
@given(predicates, st.lists(st.integers(0, STORE.num_rows - 1), max_size=40), st.booleans())
def test_range_store_of_single_rows_evaluates_like_the_whole(
    text: str, picked: list[int], with_empty: bool
) -> None:
    """Candidate rows as one-row ranges (the planner's selective filters), with or
    without empty ranges among them: the same as slicing the whole-store mask."""
    from hqi.query.columns import RangeStore

    pred = parse_filter(text, STORE.schema)
    rows = np.unique(np.asarray(picked, dtype=np.int64))
    starts, stops = rows, rows + 1
    if with_empty and rows.size:
        starts = np.concatenate([starts, rows[:1]])  # one empty range at the end
        stops = np.concatenate([stops, rows[:1]])
    got = evaluate(pred, RangeStore(STORE, starts, stops))
    np.testing.assert_array_equal(got, evaluate(pred, STORE)[rows])
    # The candidates' own constructor (int32 rows, as the sorted indexes give).
    single = RangeStore.of_rows(STORE, rows.astype(np.int32))
    assert single.num_rows == rows.size
    np.testing.assert_array_equal(evaluate(pred, single), evaluate(pred, STORE)[rows])


def test_exact_probes_pair_each_query_with_each_routed_partition() -> None:
    """An exact plan's probes, made for all filters at once, are each filter's
    queries repeated over its partitions (filters with none add nothing)."""
    from hqi.execution.planner.planning import _exact_probes

    queries = [np.array([4, 7]), np.array([1]), np.array([0, 2, 3]), np.array([5])]
    parts = [np.array([3, 0, 5]), np.array([], dtype=np.int64), np.array([2]), np.array([1, 4])]
    pq, pc = _exact_probes(queries, parts, num_lists=10)
    want_q = np.concatenate([np.repeat(q, p.size) for q, p in zip(queries, parts, strict=True)])
    want_c = np.concatenate([np.tile(10 + p, q.size) for q, p in zip(queries, parts, strict=True)])
    np.testing.assert_array_equal(pq, want_q)
    np.testing.assert_array_equal(pc, want_c)
    assert [a.size for a in _exact_probes([], [], 10)] == [0, 0]


def _probes_by_sorting(
    dist: np.ndarray,
    expected: np.ndarray,
    need: float,
    nprobe: int,
    head: int,
    bound: np.ndarray | None,
    cap: np.ndarray,
) -> list[list[int]]:
    """Probing's rule stated plainly: each row's candidates by (distance, index);
    the first ``nprobe``, or more until the expected rows reach ``need`` (all
    when they never do), at least those within the bound up to ``head``,
    never more than ``cap``."""
    out = []
    for r in range(dist.shape[0]):
        order = np.argsort(dist[r], kind="stable")
        cum = np.cumsum(expected[r][order])
        enough = int(np.argmax(cum >= need)) + 1 if cum[-1] >= need else order.size
        if bound is not None:
            enough = max(enough, min(int((dist[r] <= bound[r]).sum()), head))
        count = min(max(enough, nprobe), order.size, int(cap[r]))
        out.append(order[:count].tolist())
    return out


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 40),  # candidate lists
    st.integers(1, 12),  # queries
    st.integers(1, 5),  # partitions
    st.integers(1, 20),  # nprobe
    st.floats(0.0, 200.0),  # need
    st.booleans(),  # a ratio bound
    st.integers(0, 2**32 - 1),
)
def test_probing_takes_the_nearest_lists_its_rule_asks_for(
    m: int, rows: int, parts: int, nprobe: int, need: float, with_bound: bool, seed: int
) -> None:
    """The compiled one-pass selection (a buffer of the nearest, a full sort past
    it) gives exactly the lists, in order, that sorting every row gives: with
    tied and infinite distances, empty partitions, caps and bounds."""
    from hqi.execution.planner import probing

    rng = np.random.default_rng(seed)
    dist = rng.integers(0, 8, size=(rows, m)).astype(np.float32)  # many ties
    dist[rng.random((rows, m)) < 0.1] = np.inf
    density = rng.random((rows + 1, parts)) * (rng.random((rows + 1, parts)) < 0.7)
    local = rng.integers(0, rows + 1, size=rows)
    cand = rng.permutation(m * 3)[:m].astype(np.int64)
    cand_part = rng.integers(0, parts, size=m)
    cand_size = rng.integers(0, 50, size=m)
    bound = rng.integers(0, 8, size=rows).astype(np.float64) if with_bound else None
    cap = rng.integers(1, m + 2, size=rows)
    head = max(4 * nprobe, 8)
    qids = rng.permutation(rows * 2)[:rows].astype(np.int64)
    expected = density[local][:, cand_part] * cand_size
    want = _probes_by_sorting(dist, expected, need, nprobe, head, bound, cap)
    split = probing.PARALLEL_PROBE_PAIRS
    try:
        for threads, probing.PARALLEL_PROBE_PAIRS in ((1, split), (2, 0)):  # 2: split rows
            pq, pc = probing._nearest_enough(
                dist, qids, local, density, cand, cand_part, cand_size,
                need=need, nprobe=nprobe, head=head, bound=bound, cap=cap, threads=threads,
            )  # fmt: skip
            got = [pc[pq == q].tolist() for q in qids]
            assert got == [cand[w].tolist() for w in want]
    finally:
        probing.PARALLEL_PROBE_PAIRS = split


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.floats(0, 1))
def test_zone_counts_of_few_values_equal_counts_over_every_entry(seed, values, share) -> None:
    """A string column's per-zone count of hit codes, read through the few hit
    values' entries, equals the count over every entry."""
    rng = np.random.default_rng(seed)
    names = rng.choice([f"v{i:02d}" for i in range(values)], 500).tolist()
    table = pa.table({"s": pa.array(names, mask=rng.random(500) < 0.1)})
    cuts = np.unique(np.array([0, 500, *rng.integers(0, 500, 9)]))
    zones = ZoneMaps(ColumnStore(table), cuts)
    summary = zones._summary("s")
    hit = rng.random(zones.store["s"].dictionary.size) < share
    weights = hit[summary["codes"]]
    every = np.bincount(summary["zone_of"], weights=weights, minlength=zones.num_parts)
    np.testing.assert_array_equal(zones._zones_holding(summary, hit), every)
