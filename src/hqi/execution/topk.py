"""Top-k selection and merging with one deterministic order.

Every search path orders candidates by ``(distance, row position)``: equal
distances are broken by the smaller row position. Because the order is total,
exact results do not depend on chunk sizes, thread counts or backends, and
partial top-k lists can be merged in any order.

Padding (fewer than k candidates) is distance ``+inf`` with position
:data:`PAD` internally; :func:`finish` turns the positions into ``-1``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PAD", "TopK", "smallest_k"]

PAD = np.iinfo(np.int64).max


def smallest_k(dist: np.ndarray, k: int) -> np.ndarray:
    """Column indices (q, min(k, n)) of each row's k smallest, in (value, index) order."""
    q, n = dist.shape
    if n <= k:
        return np.argsort(dist, axis=1, kind="stable")
    part = np.argpartition(dist, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(dist, part, axis=1)
    kth = vals.max(axis=1)
    # Rows where a value equal to the k-th lies outside the partition: redo them
    # so that the smaller indices win the tie. One compare pass, cheap next to the GEMM.
    tied = np.count_nonzero(dist <= kth[:, None], axis=1) > k
    for row in np.flatnonzero(tied):
        cand = np.flatnonzero(dist[row] <= kth[row])
        order = np.lexsort((cand, dist[row, cand]))[:k]
        part[row] = cand[order]
        vals[row] = dist[row, part[row]]
    order = np.lexsort((part, vals), axis=-1)
    return np.take_along_axis(part, order, axis=1)


class TopK:
    """Running per-query top-k over candidate blocks, merged in (distance, position) order."""

    def __init__(self, nq: int, k: int) -> None:
        self.k = k
        self.dist = np.full((nq, k), np.inf, dtype=np.float32)
        self.pos = np.full((nq, k), PAD, dtype=np.int64)

    def push(self, rows: np.ndarray | slice, dist: np.ndarray, pos: np.ndarray) -> None:
        """Merge candidates ``dist``/``pos`` (r, c) into queries ``rows``."""
        if dist.shape[1] == 0:
            return
        all_d = np.concatenate([self.dist[rows], dist.astype(np.float32, copy=False)], axis=1)
        all_p = np.concatenate([self.pos[rows], pos.astype(np.int64, copy=False)], axis=1)
        order = np.lexsort((all_p, all_d), axis=-1)[:, : self.k]
        self.dist[rows] = np.take_along_axis(all_d, order, axis=1)
        self.pos[rows] = np.take_along_axis(all_p, order, axis=1)

    def push_block(self, rows: np.ndarray | slice, dist: np.ndarray, cols: np.ndarray) -> None:
        """Merge a full distance block whose columns are the positions ``cols``."""
        idx = smallest_k(dist, self.k)
        self.push(rows, np.take_along_axis(dist, idx, axis=1), cols[idx])

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions with -1 padding, distances with +inf padding)."""
        pos = np.where(self.pos == PAD, -1, self.pos)
        return pos, self.dist
