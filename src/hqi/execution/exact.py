"""Exact batch hybrid search: grouped brute force with BLAS.

The batch arrives as groups, one per distinct filter: the queries that share
it and the row positions that satisfy it. For each group the qualifying rows
are processed in blocks; each block is gathered once and its distances to all
of the group's queries are one matrix product (``Q_g @ X_b.T``), reduced to a
per-query top-k and merged into the running top-k (see :mod:`.topk`).

Ranking uses ``||x||^2 - 2<q, x>`` (l2) or ``-<q, x>`` (ip, cosine); the k
winners' distances are then recomputed directly, so reported distances carry
no cancellation error, and re-sorted in (distance, position) order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hqi.collection import Metric
from hqi.execution.topk import TopK

__all__ = ["Group", "exact_search", "exact_distances"]


@dataclass(frozen=True)
class Group:
    """Queries (positions in the batch) that share one filter, and its rows.

    ``rows`` is ``None`` when every row qualifies (no filter), which lets the
    kernel read the vectors in place instead of gathering them.
    """

    queries: np.ndarray
    rows: np.ndarray | None


def exact_distances(
    vectors: np.ndarray, queries: np.ndarray, pos: np.ndarray, metric: Metric
) -> np.ndarray:
    """Distances (q, k) of ``queries`` to rows ``pos`` (-1 = padding -> inf)."""
    valid = pos >= 0
    x = vectors[np.where(valid, pos, 0)]  # (q, k, d)
    if metric is Metric.L2:
        diff = x - queries[:, None, :]
        dist = np.einsum("qkd,qkd->qk", diff, diff)
    else:
        dots = np.einsum("qkd,qd->qk", x, queries)
        dist = -dots if metric is Metric.IP else 1.0 - dots
    return np.where(valid, dist, np.inf).astype(np.float32)


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
    on_progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Exact top-k for every query of every group.

    Returns (positions (Q, k) int64 with -1 padding, distances (Q, k) float32
    with +inf padding, rows scanned summed over queries).
    """
    nq = queries.shape[0]
    top = TopK(nq, k)
    scanned = 0
    for group in groups:
        qidx = group.queries
        nrows = vectors.shape[0] if group.rows is None else group.rows.size
        scanned += nrows * qidx.size
        for start in range(0, nrows, block_rows):
            stop = min(start + block_rows, nrows)
            if group.rows is None:
                block = vectors[start:stop]
                cols = np.arange(start, stop, dtype=np.int64)
            else:
                cols = group.rows[start:stop].astype(np.int64, copy=False)
                block = vectors[cols]
            norms = None
            if metric is Metric.L2:
                assert sq_norms is not None
                norms = sq_norms[start:stop] if group.rows is None else sq_norms[cols]
            for qs in range(0, qidx.size, query_block):
                rows = qidx[qs : qs + query_block]
                dist = queries[rows] @ block.T
                if norms is None:
                    np.negative(dist, out=dist)
                else:
                    dist *= -2.0
                    dist += norms
                top.push_block(rows, dist, cols)
        if on_progress is not None:
            on_progress(int(qidx.size))
    pos, _ = top.finish()
    dist = exact_distances(vectors, queries, pos, metric)
    order = np.lexsort((np.where(pos < 0, np.iinfo(np.int64).max, pos), dist), axis=-1)
    pos = np.take_along_axis(pos, order, axis=1)
    dist = np.take_along_axis(dist, order, axis=1)
    return pos, dist, scanned
