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

__all__ = ["PAD", "TopK", "kth_bound", "smallest_k"]

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


BOUND_CHUNKS = 1024  # chunks whose minima bound a block's k-th distance (see kth_bound)


def kth_bound(dist: np.ndarray, k: int, chunks: int | None = None) -> np.ndarray:
    """Per row of ``dist``, a value with at least k of the row's entries ``<=`` it.

    The rows' columns are dealt into ``C`` disjoint strided chunks and each
    chunk's minimum taken (one vectorised pass); the k-th smallest chunk
    minimum is such a value (k distinct entries lie at or below it) and,
    with ``C`` well above k, close to the row's true k-th, so a compare pass
    against it leaves about k hits per row. That replaces a partial sort of
    the whole block (``argpartition``, ~10x the cost). Rows with fewer than k
    finite chunk minima (mostly masked) get the dtype's largest value: every
    finite entry is then a candidate. Narrow blocks fall back to the exact k-th.
    """
    q, b = dist.shape
    largest = np.finfo(dist.dtype).max
    chunks = max(BOUND_CHUNKS, 8 * k) if chunks is None else max(chunks, k)
    group = b // chunks
    if group < 4:
        if b <= k:
            return np.full(q, largest, dtype=dist.dtype)
        kth = np.partition(dist, k - 1, axis=1)[:, k - 1]
    else:
        mins = dist[:, : group * chunks].reshape(q, group, chunks).min(axis=1)
        kth = np.partition(mins, k - 1, axis=1)[:, k - 1]
    return np.where(np.isfinite(kth), kth, largest)


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

        Only a distance up to a threshold can enter a query's top-k (``<=``:
        an equal distance at a smaller position still wins), so a block costs
        a compare pass and the few hits are merged. The threshold is the
        query's current k-th distance, or, for a query still short of k (or
        whose k-th is loose), an upper bound on the block's own k-th
        (:func:`kth_bound`), which avoids a partial sort of the whole block.
        (FAISS's C++ heaps were measured as a replacement and were slower
        here: their OpenMP threads compete with the spinning BLAS threads of
        the GEMM before them.)
        """
        rows = np.arange(self.dist.shape[0])[rows] if isinstance(rows, slice) else rows
        if dist.shape[0] == 0 or dist.shape[1] == 0:
            return
        self._push_threshold(rows, dist, cols)

    def _push_threshold(self, rows: np.ndarray, dist: np.ndarray, cols: np.ndarray) -> None:
        thr = self.dist[rows, -1].astype(np.result_type(self.dist, dist))  # a copy
        fresh = ~np.isfinite(thr)
        if fresh.any():  # queries still short of k candidates: bound the block's k-th
            thr[fresh] = kth_bound(dist if fresh.all() else dist[fresh], self.k)
        width = dist.shape[1]
        flat = np.flatnonzero(dist <= thr[:, None])
        if flat.size > 2 * self.k * dist.shape[0]:
            # Some queries hold a loose k-th (their earlier blocks had few
            # qualifying rows): tighten theirs with this block's own bound.
            loose = np.bincount(flat // width, minlength=dist.shape[0]) > 2 * self.k
            thr[loose] = np.minimum(thr[loose], kth_bound(dist[loose], self.k))
            flat = np.flatnonzero(dist <= thr[:, None])
        if flat.size > max(4 * self.k * dist.shape[0], dist.size // 16):  # many ties
            idx = smallest_k(dist, self.k)
            self.push(rows, np.take_along_axis(dist, idx, axis=1), cols[idx])
            return
        if flat.size == 0:
            return
        hit_r, hit_c = np.divmod(flat, width)
        counts = np.bincount(hit_r, minlength=dist.shape[0])
        slot = np.arange(flat.size) - np.repeat(np.cumsum(counts) - counts, counts)
        cand_d = np.full((dist.shape[0], int(counts.max())), np.inf, dtype=np.float32)
        cand_p = np.full(cand_d.shape, PAD, dtype=np.int64)
        cand_d[hit_r, slot] = dist.reshape(-1)[flat]
        cand_p[hit_r, slot] = cols[hit_c]
        self.push(rows, cand_d, cand_p)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions with -1 padding, distances with +inf padding)."""
        pos = np.where(self.pos == PAD, -1, self.pos)
        return pos, self.dist
