"""Plan a batch (:func:`plan_batch`): compile and estimate the filters, route
each one, choose its strategy, then list the probes (see the package
docstring for each step and what it measured)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from hqi.collection import Metric
from hqi.execution.planner.estimates import RowSample, count_programs, gather_ratio, sample_hits
from hqi.execution.planner.plans import BatchPlan, FilterPlan, Strategy, filter_queries
from hqi.execution.planner.probing import drop_empty_probes, probe_lists
from hqi.execution.planner.routing import (
    RANGE_BUDGET,
    RangeCache,
    Route,
    masks_of_rows,
    route_filter,
)
from hqi.index.partitioned import Partitioning
from hqi.layout.zonemap import ZoneMaps
from hqi.query import ColumnStore, Predicate
from hqi.query.compiled import AttributeMatrix, Program, ProgramTable, compile_filter
from hqi.query.evaluate import BatchEvaluator

__all__ = ["COUNT_ROWS", "MIN_SAMPLE_HITS", "SAMPLE_MIN_ROWS", "plan_batch"]

# Fewer sample hits than this: count exactly, the estimate is too noisy. At 16
# hits an estimate's relative error is about 1/4, so its 2-sigma range stays
# inside approximate plans' margin of 2 ("clearly scanned"). 16 instead of 64,
# medians of 4 alternating searches, recall within 0.0006 at every point:
# 1M nprobe 3 0.820 -> 0.725 s (planning 0.371 -> 0.275), exact 2.02 -> 1.92 s;
# 200k nprobe 4 0.362 -> 0.287 s; MovieLens nprobe 16 0.385 -> 0.345 s.
MIN_SAMPLE_HITS = 16
# Smaller stores are routed exactly: their sample is too small to reach MIN_SAMPLE_HITS
# for most filters, and counting on all rows is cheap (FB15k-237, 14,541 rows:
# planning 0.15 -> 0.11 s at nprobe 3 for 816 filters, same ids).
SAMPLE_MIN_ROWS = 65536
# Larger stores count their programs exactly too (not on the sample) when the
# rows of the partitions where they are partial are this few in all: about
# 5 ms of compiled counting on two threads. MovieLens (87,585 rows, 12.5M
# such rows): nprobe 16 180 -> 172 ms, nprobe 4 116 -> 107 ms, the same
# recall; a generated 100k store (49.7M) was slower counted (exact 194 ->
# 203 ms), as the 1M batch would be.
COUNT_ROWS = 16_000_000


def plan_batch(
    queries: np.ndarray,
    query_filter: np.ndarray,
    preds: list[Predicate | None],
    *,
    part: Partitioning,
    zones: ZoneMaps,
    store: ColumnStore,
    metric: Metric,
    nprobe: int | None,
    prefilter_ratio: float,
    k: int,
    expected_hits: float,
    sample: RowSample | None = None,
    attributes: AttributeMatrix | None = None,
    list_zones: ZoneMaps | None = None,
    probe_ratio: float = 1.0,
    routes: dict[Predicate | None, Route] | None = None,
    threads: int = 1,
) -> BatchPlan:
    """Plan the batch (see the package docstring); ``nprobe=None`` is exact.

    ``threads``: for the compiled sample counts (:func:`~.estimates.sample_hits`),
    the programs' zone flags (:meth:`~hqi.layout.zonemap.ZoneMaps.program_flags`)
    and probing.

    ``routes``: filters' exact routes (:func:`~.routing.route_filter`), which do not depend on
    nprobe, kept between the plans of one search (``recall_target`` plans the
    same sampled filters at several nprobe, then the batch): read, and filled
    as they are computed.

    With a ``sample`` (stores of ``SAMPLE_MIN_ROWS`` rows or more), filters
    that will clearly be scanned are routed on estimated counts and masked on
    their probed lists only (approximate search). With ``attributes`` too,
    those that compile (:func:`~hqi.query.compiled.compile_filter`) get
    programs instead of masks, on the exact path as well; ``list_zones`` (zone
    maps per list) then drop their probes of lists where they cannot hold.
    See the package docstring."""
    small = store.num_rows < SAMPLE_MIN_ROWS
    if small:
        sample = None  # a small store: every filter is counted exactly
    nlists = np.diff(part.part_lists)
    sizes = zones.sizes
    list_sizes = np.diff(part.list_bounds)
    list_part = part.list_part
    filters: list[FilterPlan] = []
    evaluator = BatchEvaluator(store, max_bytes=16 << 20)
    ranges = RangeCache(budget=RANGE_BUDGET * store.num_rows)  # bounds gathered columns

    def cost(routed_rows: Any, routed_lists: Any, qualifying: Any) -> Any:
        """Rows a query scans (floats, or arrays of them, elementwise)."""
        if nprobe is None:
            return routed_rows
        # expected rows probed: nprobe average lists, or more for sparse filters
        avg_list = routed_rows / np.maximum(routed_lists, 1)
        need = expected_hits * k * routed_rows / np.maximum(qualifying, 1)
        return np.minimum(routed_rows, np.maximum(nprobe * avg_list, need))

    def work(parts: np.ndarray, qualifying: float, may: np.ndarray | None = None) -> float:
        """Rows a query of the filter scans; exact plans pass the lists of
        ``parts`` where it may hold (``list_may``'s row) and count theirs."""
        if may is not None:
            return float(list_sizes[may].sum())
        return float(cost(float(sizes[parts].sum()), int(nlists[parts].sum()), qualifying))

    queries_of = filter_queries(query_filter, len(preds))
    progs = _compile_programs(preds, attributes, zones, threads=threads)
    table, program_of = progs.table, progs.program_of
    program_may, program_all = progs.may, progs.whole
    list_may = None
    if nprobe is None and list_zones is not None:
        list_may = _exact_list_may(progs, len(preds), list_part, list_zones, threads)
    # Programs are counted exactly, all at once, on every row of the partitions
    # where they are partial, in small stores and where those rows are few
    # (COUNT_ROWS); those filters skip the sample and route_filter.
    program_counts = None
    countable = progs.count and attributes is not None and table is not None
    partial = program_may & ~program_all if countable else None
    if partial is not None and (small or int((partial @ sizes).sum()) <= COUNT_ROWS):
        assert attributes is not None
        program_counts = _program_counts(
            progs, partial, attributes.by_column, part.part_bounds, sizes, threads
        )
    # Approximate plans estimate only what will clearly be scanned; exact ones,
    # which scan whole partitions, whatever is estimated to be.
    margin = 2 if nprobe is not None else 1
    nqs = np.array([q.size for q in queries_of], dtype=np.int64)
    counted = None
    if program_counts is not None:
        # The counted filters' routes, costs and strategies, for all of them at
        # once (as arrays over programs), before the per-filter pass.
        counted = _Counted.of(
            program_counts,
            program_of,
            sizes=sizes,
            nlists=nlists,
            list_sizes=list_sizes,
            list_part=list_part,
            list_may=list_may,
            cost=cost,
            ratio=gather_ratio(prefilter_ratio, nqs) if nprobe is None else prefilter_ratio,
        )
    # The programs' estimates, all at once (programs x partitions): those that
    # will clearly be scanned are routed on them (est_scan) and never counted.
    est_scan = np.zeros(progs.count, dtype=bool)
    if progs.count and sample is not None and table is not None and program_counts is None:
        hits = sample_hits(program_may, program_all, sample, table, threads)
        est_counts = np.where(program_all, sizes[None, :], hits * sample.scale[None, :])
        est_counts[~program_may] = 0
        est_qualifying = est_counts.sum(axis=1)
        est_work = cost(
            (program_may * sizes[None, :]).sum(axis=1).astype(np.float64)
            if list_may is None
            else (list_may[program_of >= 0] @ list_sizes).astype(np.float64),
            (program_may * nlists[None, :]).sum(axis=1),
            est_qualifying,
        )
        prog_nq = nqs[program_of >= 0]
        ratios = gather_ratio(prefilter_ratio, prog_nq) if nprobe is None else prefilter_ratio
        with np.errstate(invalid="ignore"):  # ratio inf, nothing qualifying: NaN, not scanned
            weighted = est_qualifying * ratios
        est_scan = (
            (program_may & ~program_all).any(axis=1)
            & (hits.sum(axis=1) >= MIN_SAMPLE_HITS)
            & (weighted > margin * est_work)
        )
    # The estimated programs' routes, split out of one pass over all of them
    # (a filter's own flatnonzero and slices, 4,608 times at 1M: planning 0.211 ->
    # 0.200 s at nprobe 2, 0.220 -> 0.214 s exact; the same plans).
    est_routes: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    if est_scan.any():
        chosen = np.flatnonzero(est_scan)
        at_prog, at_part = np.nonzero(program_may[chosen])
        at_part = at_part.astype(np.int64)
        at_counts = est_counts[chosen[at_prog], at_part]
        partial = ~program_all[chosen[at_prog], at_part]
        at_partial = at_part[partial]
        # Each program's run of pairs, and of its partial pairs: slices (views).
        bounds = np.searchsorted(at_prog, np.arange(chosen.size + 1)).tolist()
        pbounds = np.searchsorted(at_prog[partial], np.arange(chosen.size + 1)).tolist()
        for n, j in enumerate(chosen.tolist()):
            a, b = bounds[n], bounds[n + 1]
            est_routes[j] = (at_part[a:b], at_counts[a:b], at_partial[pbounds[n] : pbounds[n + 1]])
    for i, (pred, nq, program) in enumerate(
        zip(preds, nqs.tolist(), program_of.tolist(), strict=True)
    ):
        may_lists = None if list_may is None else list_may[i]  # a view: filled below
        if program >= 0 and est_scan[program]:
            # With a program the executor tests it: no masks, no exact count.
            routed, counts, partial_parts = est_routes[program]
            filters.append(
                FilterPlan(
                    pred,
                    "scan",
                    routed,
                    {},
                    round(float(est_qualifying[program])),
                    float(est_work[program]),
                    counts,
                    estimated=True,
                    partial=partial_parts,
                    program=program,
                )
            )
            continue
        if counted is not None and program >= 0:
            filters.append(counted.plan(i, pred, program, evaluator))
            continue
        # Routed partitions and which of them are covered.
        if program >= 0:
            may_true, all_true = program_may[program], program_all[program]
        else:
            flags = zones.flags(pred)
            may_true, all_true = flags.may_true, flags.all_true
            if may_lists is not None:
                may_lists[:] = may_true[list_part]
                if pred is not None and not all_true[may_true].all():
                    may_lists &= list_zones.flags(pred).may_true  # type: ignore[union-attr]
        routed = np.flatnonzero(may_true).astype(np.int64)
        covered = all_true[routed]
        # Exact plans share a filter's gather among its queries. Approximate plans
        # keep the one-query ratio: measured at 1M, shared filters that must then
        # be counted exactly (not estimated) cost more planning than they save.
        ratio = gather_ratio(prefilter_ratio, nq) if nprobe is None else prefilter_ratio
        if sample is not None and not covered.all() and nprobe is not None and program < 0:
            # Estimate first. A filter that will clearly be scanned gets no exact
            # count: it gets masks after probing, on the lists its queries probe
            # only (probing.drop_empty_probes).
            est, hits_here = sample.estimate(pred, routed)
            counts = np.where(covered, sizes[routed], est)
            qualifying = float(counts.sum())
            scan_work = work(routed, qualifying)
            if hits_here >= MIN_SAMPLE_HITS and qualifying * ratio > margin * scan_work:
                filters.append(
                    FilterPlan(
                        pred,
                        "scan",
                        routed,
                        {},
                        round(qualifying),
                        scan_work,
                        counts,
                        estimated=True,
                        partial=routed[~covered],
                    )
                )
                continue
        route = None if routes is None else routes.get(pred)
        if route is None:
            route = route_filter(pred, routed, covered, part, sizes, evaluator, ranges)
            if routes is not None:
                routes[pred] = route
        parts, masks, counts, rows = route
        qualifying = int(counts.sum())
        if may_lists is not None:  # exact counts may drop partitions
            kept = np.zeros(part.num_parts, dtype=bool)
            kept[parts] = True
            may_lists &= kept[list_part]  # (np.isin took 16 us a filter, this 1 us)
        scan_work = work(parts, qualifying, may_lists)
        strategy = _strategy(qualifying, ratio, scan_work)
        if masks is not None:
            filters.append(FilterPlan(pred, strategy, parts, masks, qualifying, scan_work, counts))
            continue
        assert rows is not None  # a selective filter: its rows, masks only if scanned
        prefilter = strategy == "prefilter"
        tested = not prefilter and program >= 0  # scanned: the executor tests its program
        filters.append(
            FilterPlan(
                pred,
                strategy,
                parts,
                {} if prefilter or tested else masks_of_rows(rows, parts, counts, part.part_bounds),
                qualifying,
                scan_work,
                counts,
                partial=parts[counts < sizes[parts]] if prefilter or tested else None,
                row_ids=rows if prefilter else None,
                program=program if tested else -1,
            )
        )

    scanning = [i for i, f in enumerate(filters) if f.strategy == "scan"]
    if nprobe is None:  # exact: every routed partition, whole (less list_may's lists)
        probe_query, probe_cell = _exact_probes(
            [queries_of[i] for i in scanning], [filters[i].parts for i in scanning], part.num_lists
        )
    elif scanning:
        probe_query, probe_cell = probe_lists(
            queries,
            filters,
            scanning,
            queries_of,
            part=part,
            sizes=sizes,
            metric=metric,
            nprobe=nprobe,
            probe_ratio=probe_ratio,
            need=expected_hits * k,
            threads=threads,
        )
        probe_query, probe_cell = drop_empty_probes(
            probe_query,
            probe_cell,
            query_filter,
            filters,
            part=part,
            store=store,
            list_zones=list_zones,
            table=table,
        )
    else:
        probe_query = probe_cell = np.zeros(0, dtype=np.int64)
    list_ranges = np.stack([part.list_bounds[:-1], part.list_bounds[1:]], axis=1)
    part_ranges = np.stack([part.part_bounds[:-1], part.part_bounds[1:]], axis=1)
    return BatchPlan(
        query_filter=query_filter,
        filters=filters,
        probe_query=probe_query,
        probe_cell=probe_cell,
        cell_bounds=np.concatenate([list_ranges, part_ranges]),
        cell_part=np.concatenate([list_part, np.arange(part.num_parts)]),
        nprobe=nprobe,
        programs=table,
        list_may=list_may,
    )


def _strategy(qualifying: float, ratio: float, scan_work: float) -> Strategy:
    """A routed filter's strategy from its exact count: nothing qualifies, its
    gathered rows cost no more than its scan (``ratio``: a gathered row's
    cost, :func:`gather_ratio`), or a scan (:class:`_Counted` decides the
    same for all counted programs at once)."""
    if qualifying == 0:
        return "empty"
    if qualifying * ratio <= scan_work:
        return "prefilter"
    return "scan"


@dataclass(frozen=True)
class _Counted:
    """The plans of the filters whose programs were counted exactly
    (:func:`_program_counts`), computed as arrays over their programs: each
    program's routed partitions (those with a qualifying row), their counts,
    the partial ones, its qualifying rows, scan work and strategy. Scanned,
    the executor tests its program (no masks); prefiltered, its rows are
    found by :meth:`plan`. Per filter in NumPy calls, this cost about 8 us a
    filter (FB15k-237: 6.5 ms of 17 ms planning)."""

    parts: list[np.ndarray]  # by program
    counts: list[np.ndarray]
    partial: list[np.ndarray]
    qualifying: np.ndarray  # (programs,) int64
    work: np.ndarray  # (filters,) float64, by filter (exact work depends on its lists)
    strategy: np.ndarray  # (filters,) object: "empty", "prefilter" or "scan"

    @classmethod
    def of(
        cls,
        counts_all: np.ndarray,
        program_of: np.ndarray,
        *,
        sizes: np.ndarray,
        nlists: np.ndarray,
        list_sizes: np.ndarray,
        list_part: np.ndarray,
        list_may: np.ndarray | None,
        cost: Any,
        ratio: Any,
    ) -> _Counted:
        """``ratio``: a gathered row's cost, one for all filters or each
        filter's (:func:`gather_ratio`); ``list_may``: an exact plan's lists
        where each filter may hold, narrowed here to the partitions with a
        qualifying row (in place)."""
        routed = counts_all > 0
        prog, part = np.nonzero(routed)
        bounds = np.searchsorted(prog, np.arange(counts_all.shape[0] + 1)).tolist()
        got = counts_all[prog, part]
        partial = got < sizes[part]
        pbounds = np.searchsorted(prog[partial], np.arange(counts_all.shape[0] + 1)).tolist()
        part_partial = part[partial]
        qualifying = counts_all.sum(axis=1)
        has = np.flatnonzero(program_of >= 0)
        of = program_of[has]
        work = np.zeros(program_of.size)
        if list_may is not None:  # exact: the rows of the lists where it may hold
            list_may[has] &= routed[of][:, list_part]
            work[has] = list_may[has] @ list_sizes
        else:
            rows = (routed * sizes[None, :]).sum(axis=1).astype(np.float64)
            lists = (routed * nlists[None, :]).sum(axis=1)
            work[has] = np.asarray(cost(rows, lists, qualifying), dtype=np.float64)[of]
        ratio = ratio[has] if np.ndim(ratio) else ratio
        q = qualifying[of]
        strategy = np.full(program_of.size, "scan", dtype=object)
        strategy[has[q * ratio <= work[has]]] = "prefilter"
        strategy[has[q == 0]] = "empty"
        return cls(
            [part[a:b] for a, b in itertools.pairwise(bounds)],
            [got[a:b] for a, b in itertools.pairwise(bounds)],
            [part_partial[a:b] for a, b in itertools.pairwise(pbounds)],
            qualifying,
            work,
            strategy,
        )

    def plan(
        self, i: int, pred: Predicate | None, program: int, evaluator: BatchEvaluator
    ) -> FilterPlan:
        """Filter ``i``'s plan (its program ``program``)."""
        strategy = self.strategy[i]
        prefilter = strategy == "prefilter"
        return FilterPlan(
            pred,
            strategy,
            self.parts[program],
            {},
            int(self.qualifying[program]),
            float(self.work[i]),
            self.counts[program],
            partial=self.partial[program],
            row_ids=evaluator.rows(pred) if prefilter and pred is not None else None,
            program=-1 if prefilter else program,
        )


def _program_counts(
    progs: _Programs,
    partial: np.ndarray,
    columns: np.ndarray,
    part_bounds: np.ndarray,
    sizes: np.ndarray,
    threads: int = 1,
) -> np.ndarray:
    """(programs, partitions): each program's qualifying rows in each partition,
    exactly: counted on every row of the partitions where its zone flags
    leave it partial (``partial``: ``progs.may & ~progs.whole``, which the
    caller has sized already), in compiled passes
    (:func:`~.estimates.count_programs`; ``columns``:
    :attr:`~hqi.query.compiled.AttributeMatrix.by_column`); a covered
    partition's rows all qualify."""
    assert progs.table is not None
    prog, parts = np.nonzero(partial)
    counts = np.where(progs.may & progs.whole, sizes[None, :], 0).astype(np.int64)
    counts[prog, parts] = count_programs(columns, part_bounds, progs.table, prog, parts, threads)
    return counts


@dataclass(frozen=True)
class _Programs:
    """The batch's filters that compile (:func:`~hqi.query.compiled.compile_filter`):
    each filter's program (``program_of``, -1: none), their table, and their
    zone flags on every partition (``may``/``whole``: (programs, partitions))."""

    table: ProgramTable | None
    program_of: np.ndarray
    may: np.ndarray
    whole: np.ndarray

    @property
    def count(self) -> int:
        return int(self.may.shape[0])


def _compile_programs(
    preds: list[Predicate | None],
    attributes: AttributeMatrix | None,
    zones: ZoneMaps,
    *,
    threads: int = 1,
) -> _Programs:
    """Compile the filters and take the programs' zone flags in one compiled call.
    The filters that compile are routed by these flags; with a row sample they
    are estimated from their programs too, and those scanned without masks
    are tested by the executor. Stores too small for a sample compile them
    as well: taking the zone maps' flags filter by filter in NumPy cost
    more (FB15k-237, 816 filters, medians of 7: planning 51.5 -> 37.3 ms
    exact, 46.2 -> 39.9 ms at nprobe 3; the same ids)."""
    programs: list[Program] = []
    program_of = np.full(len(preds), -1, dtype=np.int64)
    if attributes is not None:
        for i, pred in enumerate(preds):
            if (compiled := compile_filter(pred, attributes)) is not None:
                program_of[i] = len(programs)
                programs.append(compiled)
    table = None if attributes is None else ProgramTable.of(programs, attributes)
    none = np.zeros((0, zones.num_parts), dtype=bool)
    if not programs:
        return _Programs(table, program_of, none, none)
    assert table is not None
    every = np.arange(zones.num_parts)
    may, whole = zones.program_flags(
        table,
        np.repeat(np.arange(len(programs)), every.size),
        np.tile(every, len(programs)),
        threads,
    )
    return _Programs(
        table, program_of, may.reshape(len(programs), -1), whole.reshape(len(programs), -1)
    )


def _exact_probes(
    queries: list[np.ndarray], parts: list[np.ndarray], num_lists: int
) -> tuple[np.ndarray, np.ndarray]:
    """An exact plan's probes: each of a filter's ``queries`` with each of its
    routed ``parts`` (cell ``num_lists + p``), filter by filter, query by query.
    Made for all filters at once: per filter, ``np.repeat`` and ``np.tile``
    took 14.7 ms on the 1M exact batch, one call 2.7 ms (the same probes)."""
    if not queries:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    nq = np.array([q.size for q in queries], dtype=np.int64)
    npart = np.array([p.size for p in parts], dtype=np.int64)
    all_parts = np.concatenate(parts).astype(np.int64, copy=False)
    part_start = np.cumsum(npart) - npart
    # Each query once per routed partition of its filter.
    probe_query = np.repeat(
        np.concatenate(queries).astype(np.int64, copy=False), np.repeat(npart, nq)
    )
    pairs = nq * npart
    owner = np.repeat(np.arange(nq.size), pairs)  # each probe's filter
    within = np.arange(owner.size) - np.repeat(np.cumsum(pairs) - pairs, pairs)
    probe_cell = num_lists + all_parts[part_start[owner] + within % npart[owner]]
    return probe_query, probe_cell


def _exact_list_may(
    progs: _Programs,
    num_filters: int,
    list_part: np.ndarray,
    list_zones: ZoneMaps,
    threads: int = 1,
) -> np.ndarray:
    """(filters, lists): whether a filter may hold on some row of a list. Exact
    plans scan whole partitions, less the lists where a filter cannot hold, and
    cost a scan by those lists' rows. Filled here for the filters with a
    program (the lists' zone maps, in one call); :func:`plan_batch` fills the
    others' rows as it routes them."""
    if not progs.count:
        return np.zeros((num_filters, list_part.size), dtype=bool)
    assert progs.table is not None
    may = list_zones.program_zone_may(progs.table, progs.may, progs.whole, list_part, threads)
    if progs.count == num_filters:  # every filter compiled (programs in filter order)
        return may
    list_may = np.zeros((num_filters, list_part.size), dtype=bool)
    list_may[progs.program_of >= 0] = may
    return list_may
