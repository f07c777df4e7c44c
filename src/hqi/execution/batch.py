"""Execute a :class:`~hqi.execution.planner.BatchPlan`: the multi-query executor.

The shape of FAISS's ``big_batch_search``: the plan's (query, cell) probes
are inverted to cell -> queries; each cell (a list, or a whole partition on
the exact path) is a contiguous row range, read in place, and its distances
to all of its queries are one matrix product. Queries whose filter is partial
in the cell's partition take only the rows of its packed mask, one mask per
distinct filter; covered partitions need none. A filter the planner
compiled (:mod:`hqi.query.compiled`) has no masks: the compiled pass tests
it on the rows under a query's k-th distance only. Each block goes into the
per-query top-k in one compiled pass (:meth:`TopK.push_scores
<hqi.execution.topk.TopK.push_scores>`: norms, masks and selection together).
Prefilter filters gather their qualifying rows and scan them exactly
(:func:`hqi.execution.exact._gather_scan`).

The parallel axis is the BLAS threads inside each product; chunk sizes are
``block_rows`` (rows per product) and ``query_block`` (queries per product).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hqi.collection import Metric
from hqi.execution.exact import Group, _gather_scan, exact_distances, ranking_queries
from hqi.execution.planner import BatchPlan, FilterPlan, filter_queries
from hqi.execution.topk import RowMasks, TopK
from hqi.index.partitioned import Partitioning

__all__ = ["collect_topk", "execute_plan", "finish_topk"]


def _qualifying_rows(plan_filter: FilterPlan, part: Partitioning) -> np.ndarray:
    if plan_filter.row_ids is not None:  # found by the planner (a selective filter)
        return plan_filter.row_ids
    rows = []
    for p in plan_filter.parts:
        start, stop = int(part.part_bounds[p]), int(part.part_bounds[p + 1])
        mask = plan_filter.rows(int(p), 0, stop - start)
        rows.append(np.arange(start, stop) if mask is None else start + np.flatnonzero(mask))
    return np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, dtype=np.int64)


def _cell_segments(
    plan: BatchPlan,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """Probes sorted by (cell, filter, query) and each cell's [a, b) segment of them."""
    pfilter = plan.query_filter[plan.probe_query]
    order = np.lexsort((plan.probe_query, pfilter, plan.probe_cell))
    cells, qids, fids = plan.probe_cell[order], plan.probe_query[order], pfilter[order]
    seg = np.flatnonzero(np.diff(cells)) + 1
    starts = np.concatenate([[0], seg]).astype(int)
    stops = np.concatenate([seg, [cells.size]]).astype(int)
    return cells, qids, fids, list(zip(starts.tolist(), stops.tolist(), strict=True))


@dataclass(frozen=True)
class _Context:
    """What every piece of work of one execution reads."""

    plan: BatchPlan
    part: Partitioning
    vectors: np.ndarray
    norms: np.ndarray | None
    scaled: np.ndarray  # the queries, scaled for ranking (ranking_queries)
    queries_of: list[np.ndarray]  # each filter's queries (filter_queries)
    block_rows: int
    query_block: int


def _cell_masks(
    plan: BatchPlan, cell: int, part_start: int, queries_filters: np.ndarray
) -> RowMasks:
    """The row masks of a cell's queries (in filter order): the filters partial in
    the cell's partition have one (their partition's, or for an estimated filter
    the list's own); the others take every row."""
    p = int(plan.cell_part[cell])
    start = int(plan.cell_bounds[cell, 0])
    bounds = np.concatenate(
        [[0], np.flatnonzero(np.diff(queries_filters)) + 1, [queries_filters.size]]
    )
    bits: list[np.ndarray | None] = []
    bases: list[int] = []
    programs: list[int] = []
    for fid in queries_filters[bounds[:-1]].tolist():
        f = plan.filters[fid]
        program = -1
        if (mask := f.masks.get(p)) is not None:
            bits.append(mask)
            bases.append(part_start)
        else:
            bits.append(f.list_masks.get(cell))
            bases.append(start)
            if f.program >= 0 and p in f.partial_set:
                program = f.program
        programs.append(program)
    return RowMasks.of_groups(np.diff(bounds).tolist(), bits, bases, programs, plan.programs)


def _scan_cells(
    ctx: _Context,
    top: TopK,
    probes: tuple[np.ndarray, np.ndarray, np.ndarray],
    segments: list[tuple[int, int]],
) -> int:
    """Scan the given cells into ``top``; returns the distance computations."""
    plan, part, vectors, norms, scaled = ctx.plan, ctx.part, ctx.vectors, ctx.norms, ctx.scaled
    block_rows, query_block = ctx.block_rows, ctx.query_block
    cells, qids, fids = probes
    computed = 0
    for a, b in segments:
        cell = int(cells[a])
        start, stop = (int(x) for x in plan.cell_bounds[cell])
        if stop == start:
            continue
        pstart = int(part.part_bounds[int(plan.cell_part[cell])])
        cq = qids[a:b]
        # The cell's queries run in filter order; only the filters partial in
        # this partition have a mask here.
        masks = _cell_masks(plan, cell, pstart, fids[a:b])
        computed += (stop - start) * cq.size
        for r0 in range(start, stop, block_rows):
            r1 = min(stop, r0 + block_rows)
            block = vectors[r0:r1]
            bnorms = None if norms is None else norms[r0:r1]
            cols = np.arange(r0, r1, dtype=np.int64)
            for q0 in range(0, cq.size, query_block):
                q1 = min(cq.size, q0 + query_block)
                scores = block @ scaled[cq[q0:q1]].T
                top.push_scores(cq[q0:q1], scores, cols, bnorms, masks.of(q0, q1))
    return computed


def _prefilter(ctx: _Context, top: TopK, filter_ids: list[int]) -> int:
    """Gather-and-scan the given prefilter filters into ``top``; returns the computations."""
    computed = 0
    for i in filter_ids:
        rows = _qualifying_rows(ctx.plan.filters[i], ctx.part)
        group = Group(ctx.queries_of[i], rows)
        _gather_scan(
            ctx.vectors,
            ctx.norms,
            ctx.scaled,
            group,
            top,
            block_rows=ctx.block_rows,
            query_block=ctx.query_block,
        )
        computed += rows.size * group.queries.size
    return computed


def execute_plan(
    plan: BatchPlan,
    vectors: np.ndarray,
    sq_norms: np.ndarray | None,
    queries: np.ndarray,
    k: int,
    metric: Metric,
    part: Partitioning,
    *,
    block_rows: int = 65536,
    query_block: int = 256,
    workers: int = 1,
) -> tuple[np.ndarray, np.ndarray, int]:
    """(positions (Q, k), distances (Q, k), distance computations).

    With ``workers > 1`` the cells and prefilter groups are dealt to that many
    threads, each with its own top-k state and one BLAS thread (numpy and
    BLAS release the GIL in their loops), merged at the end.
    """
    top, computed = collect_topk(
        plan,
        vectors,
        sq_norms,
        queries,
        k,
        metric,
        part,
        block_rows=block_rows,
        query_block=query_block,
        workers=workers,
    )
    pos, dist = finish_topk(top, vectors, queries, metric)
    return pos, dist, computed


def collect_topk(
    plan: BatchPlan,
    vectors: np.ndarray,
    sq_norms: np.ndarray | None,
    queries: np.ndarray,
    k: int,
    metric: Metric,
    part: Partitioning,
    *,
    block_rows: int = 65536,
    query_block: int = 256,
    workers: int = 1,
) -> tuple[TopK, int]:
    """Run the plan into a running top-k, before :func:`finish_topk`: the part a
    remote worker runs on its share of a plan (:mod:`hqi.distributed`)."""
    norms = sq_norms if metric is Metric.L2 else None
    cells, qids, fids, segments = (
        _cell_segments(plan) if plan.probe_query.size else (None, None, None, [])
    )
    probes = (cells, qids, fids)
    pre = [i for i, f in enumerate(plan.filters) if f.strategy == "prefilter"]

    scaled = ranking_queries(queries, norms)
    queries_of = filter_queries(plan.query_filter, len(plan.filters))
    ctx = _Context(plan, part, vectors, norms, scaled, queries_of, block_rows, query_block)

    def run(seg_share: list[tuple[int, int]], pre_share: list[int], top: TopK) -> int:
        done = _prefilter(ctx, top, pre_share)
        if seg_share:
            done += _scan_cells(ctx, top, probes, seg_share)  # type: ignore[arg-type]
        return done

    top = TopK(queries.shape[0], k)
    if workers <= 1:
        computed = run(segments, pre, top)
    else:
        from concurrent.futures import ThreadPoolExecutor

        from threadpoolctl import threadpool_limits

        tops = [TopK(queries.shape[0], k) for _ in range(workers)]
        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
            futures = [
                pool.submit(run, segments[w::workers], pre[w::workers], tops[w])
                for w in range(workers)
            ]
            computed = sum(f.result() for f in futures)
        everyone = np.arange(queries.shape[0])
        for t in tops:
            top.push(everyone, t.dist, t.pos)
    return top, computed


def finish_topk(
    top: TopK, vectors: np.ndarray, queries: np.ndarray, metric: Metric
) -> tuple[np.ndarray, np.ndarray]:
    """Final (positions, distances): distances recomputed exactly for the winners,
    ordered by (distance, position). Every backend ends with this."""
    pos, _ = top.finish()
    dist = exact_distances(vectors, queries, pos, metric)
    order = np.lexsort((np.where(pos < 0, np.iinfo(np.int64).max, pos), dist), axis=-1)
    return np.take_along_axis(pos, order, 1), np.take_along_axis(dist, order, 1)
