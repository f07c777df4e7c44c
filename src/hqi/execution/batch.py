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
(:func:`hqi.execution.exact._gather_scan`); those of few distances (most
are one query's few hundred rows) are computed in place instead, all of a
worker's in one compiled call (:meth:`TopK.push_gathered
<hqi.execution.topk.TopK.push_gathered>`). On the exact path a cell is a
whole partition, and inside it each list is multiplied only with the queries
whose filter may hold there (``BatchPlan.list_may``, from the lists' zone
maps): 1M exact batch, 1.248G -> 1.059G distance computations.

The parallel axis is the BLAS threads inside each product; chunk sizes are
``block_rows`` (rows per product) and ``query_block`` (queries per product).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np

from hqi._arrays import plain
from hqi._threads import one_blas_thread
from hqi.collection import Metric
from hqi.execution.exact import (
    Group,
    _gather_scan,
    exact_distances,
    ranking_queries,
    sort_by_distance,
)
from hqi.execution.planner import BatchPlan, FilterPlan, filter_queries
from hqi.execution.products import (
    BF16Queries,
    BF16ResidualQueries,
    BF16Residuals,
    BF16Rows,
    torch_threads,
)
from hqi.execution.topk import _NO_BITS, RowMasks, TopK
from hqi.index.partitioned import Partitioning

__all__ = ["collect_topk", "execute_plan", "finish_topk"]

GATHER_COST = 10  # a gathered row, in distances of a large product (bench/calibrate.py)


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
    """Probes sorted by (cell, filter, query) and each cell's [a, b) segment of
    them (none without probes)."""
    pfilter = plan.query_filter[plan.probe_query]
    key = pfilter * plan.query_filter.size + plan.probe_query
    if np.all(key[1:] >= key[:-1]):
        # Already in (filter, query) order (an exact plan's probes): a stable sort
        # by cell alone, a radix sort for 16-bit ids (1M exact: 5.5 -> 1.0 ms).
        small = plan.cell_part.size <= np.iinfo(np.int16).max
        order = np.argsort(plan.probe_cell.astype(np.int16 if small else np.int64), kind="stable")
    else:
        order = np.lexsort((plan.probe_query, pfilter, plan.probe_cell))
    cells, qids, fids = plan.probe_cell[order], plan.probe_query[order], pfilter[order]
    if cells.size == 0:
        return cells, qids, fids, []
    seg = np.flatnonzero(np.diff(cells)) + 1
    starts = np.concatenate([[0], seg]).astype(int)
    stops = np.concatenate([seg, [cells.size]]).astype(int)
    return cells, qids, fids, list(zip(starts.tolist(), stops.tolist(), strict=True))


@dataclass(frozen=True)
class _FilterTable:
    """The plan's filters as arrays, for :func:`_probe_masks`: each filter's
    program (-1: none), the (filter, partition) pairs where a filter with a
    program is partial (as sorted keys ``filter * P + partition``), and which
    filters keep masks (of partitions, or an estimated filter's of lists)."""

    program: np.ndarray  # (F,) int64
    partial_keys: np.ndarray  # sorted int64
    masked: np.ndarray  # (F,) bool
    num_parts: int

    @classmethod
    def of(cls, plan: BatchPlan, num_parts: int) -> _FilterTable:
        program = np.array([f.program for f in plan.filters], dtype=np.int64)
        with_program = np.flatnonzero(program >= 0)
        partial = [plan.filters[i].partial_parts for i in with_program.tolist()]
        lengths = np.array([a.size for a in partial], dtype=np.int64)
        # One addition for all the filters (1M, nprobe 2: 10 -> 6 ms, the same keys).
        keys = np.repeat(with_program * num_parts, lengths) + np.concatenate(
            [np.zeros(0, dtype=np.int64), *partial]
        )
        masked = np.array([bool(f.masks or f.list_masks) for f in plan.filters], dtype=bool)
        return cls(program, np.sort(keys), masked, num_parts)


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
    masks: RowMasks  # of every probe, in (cell, filter, query) order (_probe_masks)
    bf16: BF16Queries | None = None  # products in bfloat16 (hqi.execution.products)
    residual: BF16ResidualQueries | None = None  # lists' products in bfloat16, approximate


def _probe_masks(
    plan: BatchPlan, part: Partitioning, cells: np.ndarray, fids: np.ndarray
) -> RowMasks:
    """Every probe's row mask, made once for the whole plan, in probe order (sorted
    by cell, then filter: ``cells``, ``fids``, as :func:`_cell_segments` sorts
    them): a cell's masks are a slice of them (:meth:`RowMasks.of`), so the
    workers make none. A probe whose filter is partial in the cell's
    partition has one: its filter's packed mask of the partition, or for an
    estimated filter the list's own, or with a program that program; the
    others take every row. Made cell by cell in the workers before, they
    were 40% of the workers' time under the GIL (py-spy, 1M, nprobe 2); made
    once: 1M execution 0.248 -> 0.208 s at nprobe 1, 0.382 -> 0.332 s at
    nprobe 2 (ratio 1.1), exact unchanged (medians of 7, two alternating
    runs, the same ids and distances)."""
    table = _FilterTable.of(plan, part.num_parts)
    n = cells.size
    offset = np.full(n, -1, dtype=np.int64)
    base = np.zeros(n, dtype=np.int64)
    if n == 0:
        return RowMasks(_NO_BITS, offset, base, None, plan.programs)
    # Groups: runs of one (cell, filter).
    change = (cells[1:] != cells[:-1]) | (fids[1:] != fids[:-1])
    starts = np.concatenate([[0], np.flatnonzero(change) + 1])
    stops = np.concatenate([starts[1:], [n]])
    g_cell, g_fid = cells[starts], fids[starts]
    g_part = plan.cell_part[g_cell]
    programs = table.program[g_fid]
    known = table.partial_keys
    if not known.size:
        programs[:] = -1  # no program is partial anywhere
    else:  # a program applies where its filter is partial
        has = programs >= 0
        keys = g_fid[has] * table.num_parts + g_part[has]
        at = np.minimum(np.searchsorted(known, keys), known.size - 1)
        programs[has] = np.where(known[at] == keys, programs[has], -1)
    pieces: list[np.ndarray] = []
    used = 0
    for g in np.flatnonzero(table.masked[g_fid]).tolist():
        f = plan.filters[int(g_fid[g])]
        p, cell = int(g_part[g]), int(g_cell[g])
        mask = f.masks.get(p)
        if mask is not None:  # the partition's mask
            bit0 = int(part.part_bounds[p])
            programs[g] = -1
        else:  # an estimated filter's mask of this list, if it has one
            mask = f.list_masks.get(cell)
            bit0 = int(plan.cell_bounds[cell, 0])
        if mask is None:
            continue
        a, b = starts[g], stops[g]
        offset[a:b] = used
        base[a:b] = bit0
        pieces.append(mask)
        used += mask.size
    program = None
    if plan.programs is not None and (programs >= 0).any():
        bounds = plan.programs.bounds
        ranges = np.where(
            (programs >= 0)[:, None],
            np.stack([bounds[programs], bounds[programs + 1]], axis=1),
            -1,
        )
        program = np.repeat(ranges, stops - starts, axis=0)
    bits = np.concatenate(pieces) if pieces else _NO_BITS
    return RowMasks(bits, offset, base, program, plan.programs)


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
        cq = qids[a:b]
        # The cell's queries run in filter order; only the filters partial in
        # this partition have a mask here.
        masks = ctx.masks.of(a, b)
        for r0, r1, sel in _cell_pieces(plan, part, cell, fids[a:b], start, stop, block_rows):
            queries = cq if sel is None else cq[sel]
            piece = masks if sel is None else masks.take(sel)
            computed += (r1 - r0) * queries.size
            bnorms = None if norms is None else norms[r0:r1]
            if ctx.residual is not None and cell < part.num_lists:
                ctx.residual.push_list(top, a, queries, cell, r0, r1, bnorms, piece)
                continue
            if ctx.bf16 is not None:  # bfloat16 products take their own shape
                ctx.bf16.push_range(top, queries, r0, r1, bnorms, piece)
                continue
            block = vectors[r0:r1]
            cols = np.arange(r0, r1, dtype=np.int64)
            for q0 in range(0, queries.size, query_block):
                q1 = min(queries.size, q0 + query_block)
                scores = block @ scaled[queries[q0:q1]].T
                top.push_scores(queries[q0:q1], scores, cols, bnorms, piece.of(q0, q1))
    return computed


def _cell_pieces(
    plan: BatchPlan,
    part: Partitioning,
    cell: int,
    cell_filters: np.ndarray,
    start: int,
    stop: int,
    block_rows: int,
) -> list[tuple[int, int, np.ndarray | None]]:
    """A cell's products: row ranges ``[r0, r1)`` and which of its queries (None:
    all) each multiplies. Blocks of ``block_rows``; in a partition cell of an exact
    plan with ``list_may``, list by list, each with the queries whose filter may
    hold there (runs of lists with the same queries stay one product)."""

    def blocks(a: int, b: int, sel: np.ndarray | None) -> list[tuple[int, int, np.ndarray | None]]:
        return [(r0, min(b, r0 + block_rows), sel) for r0 in range(a, b, block_rows)]

    if plan.list_may is None or cell < part.num_lists:
        return blocks(start, stop, None)
    p = int(plan.cell_part[cell])
    l0, l1 = int(part.part_lists[p]), int(part.part_lists[p + 1])
    may = plan.list_may[cell_filters, l0:l1]  # (cell queries, lists)
    if may.all():
        return blocks(start, stop, None)
    pieces: list[tuple[int, int, np.ndarray | None]] = []
    bounds = part.list_bounds
    j = 0
    while j < l1 - l0:
        column = may[:, j]
        e = j + 1  # lists j..e-1 take the same queries
        while e < l1 - l0 and np.array_equal(may[:, e], column):
            e += 1
        sel = np.flatnonzero(column)
        if sel.size:
            chosen = None if sel.size == column.size else sel
            a, b = int(bounds[l0 + j]), int(bounds[l0 + e])
            pieces += blocks(a, b, chosen)
        j = e
    return pieces


# An item of the workers' queue holds prefilter filters up to this share of a
# worker's work (_prefilter_chunks). An item per filter cost each worker some
# Python under the GIL, taken in turn with the other, for little work: on
# the 1M batch (nprobe 2), 265 such items took the workers 41 ms in all
# where one thread ran them in 13 ms. Items of 0.01, 0.05, 0.1 and 0.2 of a
# worker's share were all 2-6% faster than an item per filter (nprobe 2 and
# exact; medians of 9 alternating, the same ids). Small cells chunked so
# too were no faster.
PREFILTER_CHUNK = 0.1


def _prefilter(ctx: _Context, top: TopK, filter_ids: list[int]) -> int:
    """Gather-and-scan the given prefilter filters into ``top``; returns the
    computations. Filters of few distances (:func:`_in_place`) are computed
    together, in place, in one compiled call."""
    computed = 0
    few_queries: list[np.ndarray] = []
    few_rows: list[np.ndarray] = []
    for i in filter_ids:
        rows = _qualifying_rows(ctx.plan.filters[i], ctx.part)
        queries = ctx.queries_of[i]
        computed += rows.size * queries.size
        if _in_place(rows.size, queries.size):
            few_queries.append(queries)
            few_rows.append(rows)
            continue
        _gather_scan(
            ctx.vectors,
            ctx.norms,
            ctx.scaled,
            Group(queries, rows),
            top,
            block_rows=ctx.block_rows,
            query_block=ctx.query_block,
            bf16=ctx.bf16,
        )
    if few_queries:
        top.push_gathered(
            np.concatenate(few_queries),
            _starts(few_queries),
            np.concatenate(few_rows),
            _starts(few_rows),
            vectors=ctx.vectors,
            scaled=ctx.scaled,
            norms=ctx.norms,
        )
    return computed


# A prefilter filter's distances are computed in place, one by one, rather than
# by a product of its gathered rows when its rows times its queries are at most
# this many (see _in_place). Random rows of the 1M x 128 store, one thread,
# gathered product against in place (medians of 30): one query, 200 rows 21 ->
# 6 us, 2,000 rows 361 -> 139 us, 5,000 rows 877 -> 292 us; 4 queries x 2,000
# rows 415 -> 377 us; 8 x 1,000 210 -> 194 us; 8 x 2,000 414 -> 457 us. The 1M
# batch (265 prefiltered filters, 34k distances at nprobe 3): prefiltering
# 12.4 -> 6.9 ms of one thread (exact: 146 -> 116 ms); whole searches on two
# workers, where prefilters run beside the scans, gained 0-3% (nprobe 3, three
# runs of 8-10 alternating: 351 -> 339, 352 -> 351, 358 -> 354 ms; exact 942
# -> 926, 970 -> 962 ms), the same ids; MovieLens and FB15k-237 within noise.
IN_PLACE_DISTANCES = 8192


def _in_place(rows: int, queries: int) -> bool:
    """Whether a prefilter filter of ``rows`` qualifying rows and ``queries``
    queries computes its distances in place (:func:`TopK.push_gathered
    <hqi.execution.topk.TopK.push_gathered>`): a gather and a product cost
    tens of microseconds of calls; a row read in place at random, about
    60-150 ns (from cache or from memory), then a distance per query."""
    return rows * queries <= IN_PLACE_DISTANCES


def _starts(groups: list[np.ndarray]) -> np.ndarray:
    """Each group's first index in their concatenation, and the total (len + 1)."""
    starts = np.zeros(len(groups) + 1, dtype=np.int64)
    np.cumsum([g.size for g in groups], out=starts[1:])
    return starts


def _prefilter_work(ctx: _Context, i: int) -> float:
    """A prefilter filter's estimated cost, in distances: its qualifying rows
    times its queries, plus the gather (about ``GATHER_COST`` distances a row)."""
    return float(ctx.plan.filters[i].qualifying) * (ctx.queries_of[i].size + GATHER_COST)


def _prefilter_chunks(
    ctx: _Context, pre: list[int], cell_work: float, workers: int
) -> list[tuple[float, list[int]]]:
    """The prefilter filters ``pre`` as the workers' items, (work, filters): by
    work, largest first, each item taking filters until it holds
    :data:`PREFILTER_CHUNK` of a worker's share of all the work (``cell_work``
    and theirs), so a large filter is an item alone and small ones share
    items."""
    works = [_prefilter_work(ctx, i) for i in pre]
    least = (cell_work + sum(works)) / max(workers, 1) * PREFILTER_CHUNK
    chunks: list[tuple[float, list[int]]] = []
    held, taken = 0.0, []
    for w, i in sorted(zip(works, pre, strict=True), key=lambda item: -item[0]):
        held += w
        taken.append(i)
        if held >= least:
            chunks.append((held, taken))
            held, taken = 0.0, []
    if taken:
        chunks.append((held, taken))
    return chunks


def _cell_work(plan: BatchPlan, cells: np.ndarray, a: int, b: int) -> float:
    """A cell's cost, in distances: its rows times its queries."""
    start, stop = plan.cell_bounds[int(cells[a])]
    return float(stop - start) * (b - a)


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
    bf16: BF16Rows | None = None,
    residual: BF16Residuals | None = None,
    candidates: int | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """(positions (Q, k), distances (Q, k), distance computations).

    With ``workers > 1``, that many threads, each with its own top-k state and
    one BLAS thread (numpy, BLAS and the compiled pass release the GIL), take
    the cells and prefilter filters from one queue, largest estimated work
    first, and their top-k are merged at the end. (Dealing them out in turn
    left one worker up to 0.45 s behind the other on the 1M exact batch.)
    The workers share one bound on each query's k-th distance (the best of
    their k-ths, :class:`~hqi.execution.topk.TopK`), so none keeps rows that
    another has already ruled out: 1M exact execution 1.343 -> 1.229 s in
    bfloat16 and 2.053 -> 1.965 s in float32, nprobe 2 0.392 -> 0.380 s
    (medians of 5, 3 and 7 alternating runs, the same ids and distances).

    With ``bf16`` (the rows in bfloat16), the products run in bfloat16 and the
    results are the same (:mod:`hqi.execution.products`). With ``residual``
    (rows less their list's mean, in bfloat16), lists' products run in
    bfloat16 and their distances are approximate: each query keeps
    ``candidates`` (at least k) and the k nearest of them by their float32
    distances are the answer (:class:`~hqi.execution.products.BF16Residuals`).
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
        bf16=bf16,
        residual=residual,
        candidates=candidates,
    )
    pos, dist = finish_topk(top, plain(vectors), queries, metric, workers=workers)
    return pos[:, :k], dist[:, :k], computed


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
    bf16: BF16Rows | None = None,
    residual: BF16Residuals | None = None,
    candidates: int | None = None,
) -> tuple[TopK, int]:
    """Run the plan into a running top-k (of ``candidates`` per query, k by
    default), before :func:`finish_topk`: the part a remote worker runs on its
    share of a plan (:mod:`hqi.distributed`)."""
    vectors = plain(vectors)  # slices of a np.memmap run Python: see plain
    norms = None if sq_norms is None or metric is not Metric.L2 else plain(sq_norms)
    cells, qids, fids, segments = _cell_segments(plan)
    probes = (cells, qids, fids)
    pre = [i for i, f in enumerate(plan.filters) if f.strategy == "prefilter"]

    scaled = ranking_queries(queries, norms)
    queries_of = filter_queries(plan.query_filter, len(plan.filters))
    lists = [(a, b) for a, b in segments if cells[a] < part.num_lists]  # not partitions
    ctx = _Context(
        plan,
        part,
        vectors,
        norms,
        scaled,
        queries_of,
        block_rows,
        query_block,
        _probe_masks(plan, part, cells, fids),
        None if bf16 is None else bf16.queries(scaled),
        None if residual is None else residual.queries(scaled, qids, lists),
    )
    k = max(k, candidates or k)

    top = TopK(queries.shape[0], k)
    if workers <= 1:
        computed = _prefilter(ctx, top, pre)
        if segments:
            computed += _scan_cells(ctx, top, probes, segments)
        return top, computed
    from concurrent.futures import ThreadPoolExecutor
    from itertools import count

    # Work items (prefilter filters or a cell), largest first; each worker takes
    # the next one when it is done with its last, so the workers end together.
    cell_items = [(_cell_work(plan, cells, a, b), 1, j) for j, (a, b) in enumerate(segments)]
    chunks = _prefilter_chunks(ctx, pre, sum(w for w, _, _ in cell_items), workers)
    items = [(w, 0, j) for j, (w, _) in enumerate(chunks)] + cell_items
    items.sort(key=lambda item: -item[0])
    taken = count()  # next() on it is atomic under the GIL

    uses_torch = bf16 is not None or residual is not None

    def run(top: TopK) -> int:
        done = 0
        # OpenMP's thread count is each thread's own: set here, in the worker
        # (the caller's setting does not reach it, and each product would run
        # a team of every core's threads beside the other worker's).
        with torch_threads(1) if uses_torch else nullcontext():
            while (n := next(taken)) < len(items):
                _, kind, i = items[n]
                if kind == 0:
                    done += _prefilter(ctx, top, chunks[i][1])
                else:
                    done += _scan_cells(ctx, top, probes, [segments[i]])
        return done

    # One bound on each query's k-th distance, shared: a worker skips rows that
    # another's top-k already rules out (exact on the merge; see TopK).
    bound = np.full(queries.shape[0], np.inf, dtype=np.float32)
    tops = [TopK(queries.shape[0], k, bound) for _ in range(workers)]
    with (
        one_blas_thread(),  # each worker's products on its own thread (torch's: run)
        ThreadPoolExecutor(workers) as pool,
    ):
        futures = [pool.submit(run, tops[w]) for w in range(workers)]
        computed = sum(f.result() for f in futures)
    # The first worker's top-k is sorted already: taken as it is, the others
    # merged in (1M: 12.6 -> 7.4 ms for two workers, the same top-k).
    top.dist[:], top.pos[:] = tops[0].dist, tops[0].pos
    everyone = np.arange(queries.shape[0])
    for t in tops[1:]:
        top.push(everyone, t.dist, t.pos)
    return top, computed


def finish_topk(
    top: TopK, vectors: np.ndarray, queries: np.ndarray, metric: Metric, *, workers: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Final (positions, distances): distances recomputed exactly for the winners
    (on ``workers`` threads), ordered by (distance, position). Every backend
    ends with this."""
    pos, _ = top.finish()
    dist = exact_distances(vectors, queries, pos, metric, workers=workers)
    return sort_by_distance(pos, dist, workers=workers)
