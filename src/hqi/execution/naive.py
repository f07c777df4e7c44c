"""The naive baseline: one query at a time, filter, gather, distances, top-k.

This is what a user writes with numpy alone. Benchmarks and the demo measure
the batch executors against it; it shares no code with them beyond filter
evaluation, so it is also an independent check of their answers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hqi.collection import Metric

__all__ = ["naive_search"]


def naive_search(
    vectors: np.ndarray,
    masks: Sequence[np.ndarray],
    queries: np.ndarray,
    k: int,
    metric: Metric = Metric.L2,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-query exact top-k: (row positions (Q, k), distances (Q, k)), -1/inf padded.

    ``masks[i]`` is query i's selection mask (N,) bool. Ties are broken by the
    smaller row position, as in the batch executors.
    """
    nq = queries.shape[0]
    pos = np.full((nq, k), -1, dtype=np.int64)
    dist = np.full((nq, k), np.inf, dtype=np.float32)
    for i in range(nq):
        rows = np.flatnonzero(masks[i])
        if rows.size == 0:
            continue
        x = vectors[rows]
        if metric is Metric.L2:
            diff = x - queries[i]
            d = np.einsum("ij,ij->i", diff, diff)
        elif metric is Metric.IP:
            d = -(x @ queries[i])
        else:
            d = 1.0 - x @ queries[i]
        take = min(k, rows.size)
        best = np.argpartition(d, take - 1)[:take] if rows.size > take else np.arange(rows.size)
        order = np.lexsort((rows[best], d[best]))
        pos[i, :take] = rows[best[order]]
        dist[i, :take] = d[best[order]]
    return pos, dist
