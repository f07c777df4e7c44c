"""Inverted lists inside a partition: k-means (FAISS) on the partition's vectors.

Each partition of ``m`` rows gets ``max(1, round(m / list_size))`` lists. The
centroids are trained on at most ``max_train_per_list`` sampled rows per list
and every row is assigned to its nearest centroid (L2; vectors are already
normalised for cosine). Probing ranks a partition's lists by the search
metric's distance to their centroids.
"""

from __future__ import annotations

import numpy as np

__all__ = ["train_lists"]


def train_lists(
    vectors: np.ndarray,
    list_size: int,
    *,
    seed: int = 0,
    niter: int = 10,
    max_train_per_list: int = 128,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centroids (nlist, d) float32, list of every row (m,) int64, every row's
    squared distance to its list's centroid (m,) float32: the assignment's own
    distances, which the build orders each list's rows by)."""
    import faiss

    m, d = vectors.shape
    nlist = max(1, round(m / list_size))
    if nlist == 1:
        mean = vectors.mean(axis=0, keepdims=True).astype(np.float32)
        residual = vectors - mean
        central = np.einsum("ij,ij->i", residual, residual).astype(np.float32)
        return mean, np.zeros(m, dtype=np.int64), central
    rng = np.random.default_rng(seed)
    train = vectors
    if m > nlist * max_train_per_list:
        train = vectors[np.sort(rng.choice(m, size=nlist * max_train_per_list, replace=False))]
    kmeans = faiss.Kmeans(
        d,
        nlist,
        niter=niter,
        seed=seed,
        max_points_per_centroid=max_train_per_list,
        min_points_per_centroid=1,
        verbose=False,
    )
    kmeans.train(np.ascontiguousarray(train, dtype=np.float32))
    central, assign = kmeans.index.search(np.ascontiguousarray(vectors, dtype=np.float32), 1)
    centroids = np.asarray(kmeans.centroids, dtype=np.float32)
    return centroids, assign[:, 0].astype(np.int64), central[:, 0]
