"""Vector cuts for the qd-tree: ``centroid IN {...}`` over a coarse k-means.

HQI's trick for letting similarity shape the layout the way attributes do:
k-means the vectors into ``C`` coarse centroids and give every row the id of
its nearest one. A query's vector constraint becomes "centroid in my
``probe`` nearest centroids", a predicate like any other, so the learner can
weigh a vector cut against an attribute cut with one cost model.

Candidate cuts are the groups of a hierarchical bisection of the coarse
centroids (split at the median along their principal direction, recursively),
so a cut separates
regions of vector space rather than arbitrary sets of centroids: ``2C - 2``
candidates.

The workload's filters carry no vectors, so each sampled workload filter gets
a *pseudo-query*: a random row that satisfies it (a query lies near entities
that satisfy its filter, as anchored knowledge-graph queries do).

A vector cut never decides what a query may see: routing uses the
partitions' zone maps, which know only attributes, so a user's filter
reaches both sides of a vector cut and correctness is untouched. What the
cut changes is which vectors share a partition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CoarseCentroids", "VectorCut", "bisect_groups", "train_coarse"]


@dataclass(frozen=True)
class VectorCut:
    """TRUE for rows whose nearest coarse centroid is in ``centroids``."""

    centroids: tuple[int, ...]

    def __str__(self) -> str:
        return f"nearest_centroid IN ({', '.join(map(str, self.centroids))})"


@dataclass(frozen=True, eq=False)
class CoarseCentroids:
    """The coarse k-means of the vectors (``(C, d)`` float32, L2)."""

    centroids: np.ndarray

    def nearest(self, vectors: np.ndarray, m: int = 1) -> np.ndarray:
        """(n, m) ids of each vector's ``m`` nearest centroids."""
        import faiss

        index = faiss.IndexFlatL2(self.centroids.shape[1])
        index.add(self.centroids)
        _, ids = index.search(np.ascontiguousarray(vectors, dtype=np.float32), m)
        return ids

    def mask(self, cut: VectorCut, codes: np.ndarray) -> np.ndarray:
        return np.isin(codes, np.asarray(cut.centroids))


def train_coarse(vectors: np.ndarray, count: int, *, seed: int = 0) -> CoarseCentroids:
    """k-means (FAISS) of ``vectors`` into ``count`` centroids, on a sample."""
    import faiss

    n, d = vectors.shape
    count = max(2, min(count, n))
    rng = np.random.default_rng(seed)
    train = vectors if n <= 256 * count else vectors[rng.choice(n, 256 * count, replace=False)]
    kmeans = faiss.Kmeans(d, count, niter=20, seed=seed, verbose=False)
    kmeans.train(np.ascontiguousarray(train, dtype=np.float32))
    return CoarseCentroids(np.asarray(kmeans.centroids, dtype=np.float32))


def bisect_groups(coarse: CoarseCentroids) -> list[VectorCut]:
    """Every group of a recursive bisection of the centroids, except the root.

    Each group splits at the median of its centroids' projections on their
    principal direction (balanced halves of nearby centroids).
    """
    cents = coarse.centroids.astype(np.float64)
    out: list[VectorCut] = []
    stack = [np.arange(cents.shape[0])]
    while stack:
        ids = stack.pop()
        if ids.size < 2:
            continue
        centred = cents[ids] - cents[ids].mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        by_side = ids[np.argsort(centred @ vt[0], kind="stable")]
        for half in (by_side[: ids.size // 2], by_side[ids.size // 2 :]):
            out.append(VectorCut(tuple(sorted(int(i) for i in half))))
            stack.append(half)
    return out
