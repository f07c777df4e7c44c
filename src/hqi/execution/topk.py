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
    n = dist.shape[1]
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
        dist = dist.astype(np.float32, copy=False)
        pos = np.where(np.isfinite(dist), pos, PAD)  # +inf marks a rejected row: never a result
        all_d = np.concatenate([self.dist[rows], dist], axis=1)
        all_p = np.concatenate([self.pos[rows], pos], axis=1)
        order = np.lexsort((all_p, all_d), axis=-1)[:, : self.k]
        self.dist[rows] = np.take_along_axis(all_d, order, axis=1)
        self.pos[rows] = np.take_along_axis(all_p, order, axis=1)

    def push_block(self, rows: np.ndarray | slice, dist: np.ndarray, cols: np.ndarray) -> None:
        """Merge a full distance block whose columns are the positions ``cols``.

        Once a query holds k candidates, only distances up to its current k-th
        can enter (``<=``: an equal distance at a smaller position still wins),
        so a block costs one compare pass; queries still short of k get a
        partial sort of their rows only. (FAISS's C++ heaps were measured as a
        replacement and were slower here: their OpenMP threads compete with
        the spinning BLAS threads of the GEMM before them.)
        """
        rows = np.arange(self.dist.shape[0])[rows] if isinstance(rows, slice) else rows
        if dist.shape[0] == 0 or dist.shape[1] == 0:
            return
        self._push_threshold(rows, dist, cols)

    def _push_threshold(self, rows: np.ndarray, dist: np.ndarray, cols: np.ndarray) -> None:
        kth = self.dist[rows, -1]
        full = np.isfinite(kth)
        if not full.all():  # queries still short of k candidates: partial sort, theirs only
            fresh = ~full
            idx = smallest_k(dist[fresh], self.k)
            self.push(rows[fresh], np.take_along_axis(dist[fresh], idx, axis=1), cols[idx])
            if not full.any():
                return
            rows, dist, kth = rows[full], dist[full], kth[full]
        hit_r, hit_c = np.nonzero(dist <= kth[:, None])
        if hit_r.size > 4 * self.k * dist.shape[0]:  # many ties or a poor threshold
            idx = smallest_k(dist, self.k)
            self.push(rows, np.take_along_axis(dist, idx, axis=1), cols[idx])
            return
        counts = np.bincount(hit_r, minlength=dist.shape[0])
        width = int(counts.max()) if counts.size else 0
        if width == 0:
            return
        slot = np.arange(hit_r.size) - np.repeat(np.cumsum(counts) - counts, counts)
        cand_d = np.full((dist.shape[0], width), np.inf, dtype=np.float32)
        cand_p = np.full((dist.shape[0], width), PAD, dtype=np.int64)
        cand_d[hit_r, slot] = dist[hit_r, hit_c]
        cand_p[hit_r, slot] = cols[hit_c]
        self.push(rows, cand_d, cand_p)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions with -1 padding, distances with +inf padding)."""
        pos = np.where(self.pos == PAD, -1, self.pos)
        return pos, self.dist
