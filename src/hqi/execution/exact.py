"""Exact batch hybrid search: grouped brute force with BLAS.

The batch arrives as groups, one per distinct filter: the queries that share
it and the row positions that satisfy it. Two kernels, chosen per group by
the fraction of rows its filter selects:

* selective filters: the qualifying rows are gathered block by block, and
  each block's distances to all of the group's queries are one matrix product;
  runs of consecutive qualifying rows (a covered partition's, on the
  partitioned index) are read in place instead;
* broad filters (and no filter): one shared pass reads every block in place
  and multiplies it with all their queries at once; each query takes only
  its filter's rows. A gathered row costs about 30x a row's share of a large
  GEMM on this hardware (95 ns against 3.1 ns, one thread, d = 128), so
  above a few percent selectivity reading everything in place is cheaper.

Products are ``X_b @ Q.T`` (rows by queries): OpenBLAS computes the same values
as ``Q @ X_b.T`` 1.2x (256 queries) to 2.8x (2 queries) faster in that
orientation. Each block goes into the per-query top-k in one compiled pass
(:meth:`TopK.push_scores <hqi.execution.topk.TopK.push_scores>`).

Ranking uses ``||x||^2 - 2<q, x>`` (l2) or ``-<q, x>`` (ip, cosine); the k
winners' distances are then recomputed directly, so reported distances carry
no cancellation error, and re-sorted in (distance, position) order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hqi._arrays import plain
from hqi._threads import even_bounds, run_split
from hqi.collection import Metric
from hqi.execution.kernels import rows_holding, sort_rows
from hqi.execution.topk import RowMasks, TopK
from hqi.query.compiled import ProgramTable, compile_filter
from hqi.query.evaluate import BatchEvaluator

if TYPE_CHECKING:
    from hqi.execution.products import BF16Queries
    from hqi.query import ColumnStore, Predicate
    from hqi.query.compiled import AttributeMatrix

__all__ = ["Group", "exact_distances", "exact_search", "filter_rows", "sort_by_distance"]


@dataclass(frozen=True)
class Group:
    """Queries (positions in the batch) that share one filter, and its rows.

    ``rows`` is ``None`` when every row qualifies (no filter), which lets the
    kernel read the vectors in place instead of gathering them.
    """

    queries: np.ndarray
    rows: np.ndarray | None


PARALLEL_DISTANCES = 1 << 14  # (query, row) distances from which exact_distances runs on threads


def exact_distances(
    vectors: np.ndarray,
    queries: np.ndarray,
    pos: np.ndarray,
    metric: Metric,
    *,
    workers: int = 1,
) -> np.ndarray:
    """Distances (q, k), float32, of ``queries`` to rows ``pos`` (-1 = padding
    -> inf), read in place by a compiled loop
    (:func:`~hqi.execution.kernels.distances_of`), on ``workers`` threads
    for many. It replaced gathering the rows in cache-sized chunks and
    summing them in numpy: 1M, 10,000 x 12 winners, 13.3 -> 6.9 ms on two
    (medians of 9), equal within 3e-7 relative."""
    from hqi.execution.kernels import distances_of

    nq, k = pos.shape
    out = np.empty((nq, k), dtype=np.float32)
    source = np.ascontiguousarray(plain(vectors), dtype=np.float32)  # no copy if it is
    q32 = np.ascontiguousarray(queries, dtype=np.float32)
    at = np.ascontiguousarray(pos, dtype=np.int64)
    code = {Metric.L2: 0, Metric.IP: 1, Metric.COSINE: 2}[metric]
    run_split(
        lambda a, b: distances_of(source, q32, at, out, a, b, code),
        even_bounds(nq, workers if nq * k >= PARALLEL_DISTANCES else 1),
    )
    return out


# Winners (queries x k) from which sort_by_distance sorts them in compiled code
# rather than np.lexsort: 10,000 x 120 took 64 ms in lexsort, 10,000 x 12 about
# 3 ms, and the compiled sort costs 0.2 s to build on its first call in a
# process (without HQI_CACHE_DIR).
SORT_COMPILED_MIN = 1 << 18


def sort_by_distance(
    pos: np.ndarray, dist: np.ndarray, *, workers: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """``pos`` and ``dist`` (q, k), each row ordered by (distance, position),
    padding (position -1) last among equal distances and NaN distances after
    all: what ``np.lexsort`` gives. From :data:`SORT_COMPILED_MIN` winners
    they are sorted in place, on ``workers`` threads
    (:func:`~hqi.execution.kernels.sort_rows`, an insertion sort: the winners
    come in their approximate order and their float32 distances move few).
    1M, nprobe 3, k = 100 (120 candidates): the search 0.827 -> 0.754-0.763 s."""
    nq, k = pos.shape
    if nq * k < SORT_COMPILED_MIN:
        order = np.lexsort((np.where(pos < 0, np.iinfo(np.int64).max, pos), dist), axis=-1)
        return np.take_along_axis(pos, order, 1), np.take_along_axis(dist, order, 1)
    pos = np.ascontiguousarray(pos, dtype=np.int64)
    dist = np.ascontiguousarray(dist, dtype=np.float32)
    run_split(
        lambda a, b: sort_rows(dist, pos, a, b),
        even_bounds(nq, workers if nq * k >= PARALLEL_DISTANCES else 1),
    )
    return pos, dist


def ranking_queries(queries: np.ndarray, norms: np.ndarray | None) -> np.ndarray:
    """Queries scaled for ranking: ``-2 q`` (l2, with ``norms``) or ``-q``, so that a
    block's ``rows @ scaled.T`` plus the row norms is ``||x||^2 - 2<q, x>`` (l2) or
    ``-<q, x>``. A power-of-two scale is exact in floating point: each product
    is bit for bit the unscaled one times the scale."""
    return queries * np.float32(-2.0 if norms is not None else -1.0)


GATHER_ROWS = 4096  # rows gathered per block: 2 MB at d = 128, the product reads them from L2


SHARED_SCAN = 0.05  # fraction of the rows from which a group joins the shared scan


def shares_scan(qualifying: int, n: int, shared_scan: float = SHARED_SCAN) -> bool:
    """Whether :func:`exact_search` scans a group of ``qualifying`` rows (of ``n``)
    in the shared in-place pass (then each of its queries computes ``n``
    distances) rather than gathering them (``qualifying`` each)."""
    return qualifying >= max(shared_scan * n, 1)


def _shared_scan(
    vectors: np.ndarray,
    sq_norms: np.ndarray | None,
    scaled: np.ndarray,
    groups: Sequence[Group],
    top: TopK,
    *,
    block_rows: int,
    query_block: int,
) -> None:
    """One pass over all rows, in place, for the queries of broad filters
    (``scaled``: :func:`ranking_queries`).

    Each block of rows is read where it lies (no gather) and multiplied with
    every query at once; each query takes only its filter's rows (a packed
    mask per group and block).
    """
    n = vectors.shape[0]
    qidx = np.concatenate([g.queries for g in groups])
    sizes = [g.queries.size for g in groups]
    for b0 in range(0, n, block_rows):
        b1 = min(n, b0 + block_rows)
        block = vectors[b0:b1]
        norms = None if sq_norms is None else sq_norms[b0:b1]
        cols = np.arange(b0, b1, dtype=np.int64)
        bits: list[np.ndarray | None] = []
        for g in groups:  # each group's rows in this block, as packed bits
            if g.rows is None:
                bits.append(None)
                continue
            lo, hi = np.searchsorted(g.rows, [b0, b1])
            member = np.zeros(b1 - b0, dtype=bool)
            member[g.rows[lo:hi] - b0] = True
            bits.append(np.packbits(member))
        masks = RowMasks.of_groups(sizes, bits, [b0] * len(groups))
        for qs in range(0, qidx.size, query_block):
            qe = min(qs + query_block, qidx.size)
            scores = block @ scaled[qidx[qs:qe]].T
            top.push_scores(qidx[qs:qe], scores, cols, norms, masks.of(qs, qe))


# Consecutive qualifying rows from which a prefiltered group reads them in place
# instead of gathering them (covered partitions' rows are contiguous).
IN_PLACE_RUN = 256


def _runs(rows: np.ndarray, min_run: int) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Ascending ``rows`` split into ``[a, b)`` ranges of at least ``min_run``
    consecutive rows and the rows outside them."""
    if rows.size < min_run:
        return [], rows
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [rows.size]])
    long = stops - starts >= min_run
    if not long.any():
        return [], rows
    ranges = [
        (int(rows[s]), int(rows[e - 1]) + 1)
        for s, e in zip(starts[long].tolist(), stops[long].tolist(), strict=True)
    ]
    keep = np.repeat(~long, stops - starts)
    return ranges, rows[keep]


def _gather_scan(
    vectors: np.ndarray,
    sq_norms: np.ndarray | None,
    scaled: np.ndarray,
    group: Group,
    top: TopK,
    *,
    block_rows: int,
    query_block: int,
    bf16: BF16Queries | None = None,
) -> None:
    """The group's qualifying rows against its queries (``scaled``:
    :func:`ranking_queries`): runs of at least :data:`IN_PLACE_RUN` consecutive
    rows are read in place; the others are gathered block by block into one
    reused buffer (:data:`GATHER_ROWS` at most). With ``bf16``, the products
    run in bfloat16 (:mod:`hqi.execution.products`), on rows gathered from
    its bfloat16 copy."""
    assert group.rows is not None
    rows = group.rows.astype(np.int64, copy=False)
    if rows.size == 0:
        return
    step = min(block_rows, GATHER_ROWS)
    source = plain(vectors)

    def push(block: np.ndarray, cols: np.ndarray, norms: np.ndarray | None) -> None:
        for qs in range(0, group.queries.size, query_block):
            qids = group.queries[qs : qs + query_block]
            top.push_scores(qids, block @ scaled[qids].T, cols, norms)

    in_place, scattered = _runs(rows, IN_PLACE_RUN)
    if bf16 is not None:
        for a, b in in_place:
            for r0 in range(a, b, block_rows):
                r1 = min(b, r0 + block_rows)
                norms = None if sq_norms is None else sq_norms[r0:r1]
                bf16.push_range(top, group.queries, r0, r1, norms)
        for start in range(0, scattered.size, step):
            cols = scattered[start : start + step]
            norms = None if sq_norms is None else sq_norms[cols]
            bf16.push_rows(top, group.queries, bf16.gather(cols), cols, norms)
        return
    for a, b in in_place:
        for r0 in range(a, b, block_rows):
            r1 = min(b, r0 + block_rows)
            norms = None if sq_norms is None else sq_norms[r0:r1]
            push(source[r0:r1], np.arange(r0, r1, dtype=np.int64), norms)
    if scattered.size == 0:
        return
    buffer = np.empty((min(step, scattered.size), vectors.shape[1]), dtype=vectors.dtype)
    for start in range(0, scattered.size, step):
        cols = scattered[start : start + step]
        block = np.take(source, cols, axis=0, out=buffer[: cols.size])
        push(block, cols, None if sq_norms is None else sq_norms[cols])


# Stores under this many rows find the flat pass's rows by the filters' programs,
# all in one compiled call (larger ones evaluate each filter, selective ones
# on their candidate rows: hqi.query.evaluate.SPARSE_MIN_ROWS).
PROGRAM_ROWS_MAX = 1 << 16


def filter_rows(
    preds: Sequence[Predicate | None], store: ColumnStore, matrix: AttributeMatrix | None
) -> list[np.ndarray | None]:
    """The rows (ascending) where each filter is TRUE, evaluated once on the
    whole store (None: no filter, every row): the flat pass's groups. In a
    store of under :data:`PROGRAM_ROWS_MAX` rows with ``matrix``, the filters
    that compile to programs are tested in one compiled call
    (:func:`~hqi.execution.kernels.rows_holding`), which also skips those
    whose columns' ranges rule them out; the others are evaluated
    (:meth:`~hqi.query.evaluate.BatchEvaluator.rows`). SIGMOD 2024 contest
    sample (5,034 filters on 10,000 rows): these rows 38.5 -> 24 ms, the
    search 140 -> 129 ms; Spotify top hits: the search 28.2 -> 25.8 ms (the
    same ids)."""
    evaluator = BatchEvaluator(store)
    out: list[np.ndarray | None] = [None] * len(preds)
    small = store.num_rows < PROGRAM_ROWS_MAX
    programs, at = [], []
    for i, pred in enumerate(preds):
        if pred is None:
            continue
        program = compile_filter(pred, matrix) if matrix is not None and small else None
        if program is None:
            out[i] = evaluator.rows(pred)
        else:
            programs.append(program)
            at.append(i)
    if programs:
        assert matrix is not None
        table = ProgramTable.of(programs, matrix)
        least, greatest = matrix.ranges
        rows, offsets = rows_holding(
            matrix.by_column,
            table.bounds,
            table.col,
            table.group,
            table.lo,
            table.hi,
            least,
            greatest,
        )
        bounds = offsets.tolist()
        for j, i in enumerate(at):
            out[i] = rows[bounds[j] : bounds[j + 1]]
    return out


def exact_search(
    vectors: np.ndarray,
    sq_norms: np.ndarray | None,
    queries: np.ndarray,
    groups: Sequence[Group],
    k: int,
    metric: Metric,
    *,
    block_rows: int = 65536,
    query_block: int = 256,
    shared_scan: float = SHARED_SCAN,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Exact top-k for every query of every group.

    Groups whose filter selects at least ``shared_scan`` of the rows share one
    in-place scan; the others gather their rows (see :class:`SearchOptions`).
    ``sq_norms`` (squared row norms) is required for l2, ignored otherwise.

    Returns (positions (Q, k) int64 with -1 padding, distances (Q, k) float32
    with +inf padding, distance computations performed).
    """
    n = vectors.shape[0]
    norms = sq_norms if metric is Metric.L2 else None
    top = TopK(queries.shape[0], k)
    scaled = ranking_queries(queries, norms)

    def is_broad(g: Group) -> bool:
        return g.rows is None or shares_scan(g.rows.size, n, shared_scan)

    broad = [g for g in groups if is_broad(g)]
    narrow = [g for g in groups if not is_broad(g)]  # empty groups cost nothing
    computed = 0
    opts = {"block_rows": block_rows, "query_block": query_block}
    if broad:
        _shared_scan(vectors, norms, scaled, broad, top, **opts)
        nb = sum(g.queries.size for g in broad)
        computed += n * nb
        if on_progress is not None:
            on_progress(nb)
    for group in narrow:
        _gather_scan(
            vectors, norms, scaled, group, top, block_rows=block_rows, query_block=query_block
        )
        computed += group.rows.size * group.queries.size  # type: ignore[union-attr]
        if on_progress is not None:
            on_progress(int(group.queries.size))
    pos, _ = top.finish()
    dist = exact_distances(vectors, queries, pos, metric)
    pos, dist = sort_by_distance(pos, dist)
    return pos, dist, computed
