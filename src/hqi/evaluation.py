"""Recall@k, defined once and robust to ties (as in ann-benchmarks).

A returned neighbour is a hit when its distance is within the k-th true
distance plus a small tolerance, so an answer that picks a different member
of a tied group is not penalised. A query with fewer than k qualifying
entities is judged on those it has; one with none has recall 1 when nothing
is returned and 0 otherwise.
"""

from __future__ import annotations

import numpy as np

from hqi.errors import InvalidInputError
from hqi.execution.result import Result

__all__ = ["recall_at_k", "recall_of_reached"]


def recall_at_k(
    found: Result, truth: Result, k: int | None = None, *, eps: float = 1e-3
) -> np.ndarray:
    """Per-query recall@k of ``found`` against the exact answers ``truth``.

    ``eps`` is relative: a hit lies within ``kth_true * (1 + eps) + eps``.
    Returns a float array (Q,); take ``.mean()`` for the usual figure.
    """
    k = k or truth.k
    if len(found) != len(truth):
        raise InvalidInputError(f"found has {len(found)} queries, truth has {len(truth)}")
    if k > truth.k or k > found.k:
        raise InvalidInputError(f"k={k} exceeds the results' k ({found.k}, {truth.k})")
    expected, limit = _hit_limits(truth.distances, k, eps)
    got = found.distances[:, :k].astype(np.float64)
    hits = ((got <= limit[:, None]) & np.isfinite(got) & (found.ids[:, :k] >= 0)).sum(axis=1)
    hits = np.minimum(hits, expected)
    returned_any = (found.ids[:, :k] >= 0).any(axis=1)
    return np.where(expected > 0, hits / np.maximum(expected, 1), np.where(returned_any, 0.0, 1.0))


def recall_of_reached(
    truth: Result, reached: np.ndarray, k: int, *, eps: float = 1e-3
) -> np.ndarray:
    """Per-query recall@k (as :func:`recall_at_k` judges it) of a search that
    answers each query with the k nearest of the rows it reaches, without
    running it.

    ``truth``: exact answers with more than ``k`` neighbours (``2 * k`` is
    plenty), so that rows tied within the tolerance of the k-th are seen;
    ``reached`` (same shape): whether the search reaches each of them. Such
    a search returns every reached row within the k-th true distance (they
    are nearer than any row outside it), so its hits are those rows, at most
    the query's expected count. A query with no qualifying row has recall 1
    (the search finds none either).
    """
    if reached.shape != truth.ids.shape:
        raise InvalidInputError(
            f"reached has shape {reached.shape}, the exact answers {truth.ids.shape}"
        )
    if k > truth.k:
        raise InvalidInputError(f"k={k} exceeds the exact answers' k ({truth.k})")
    expected, limit = _hit_limits(truth.distances, k, eps)
    true_d = truth.distances.astype(np.float64)
    within = (true_d <= limit[:, None]) & np.isfinite(true_d) & (truth.ids >= 0) & reached
    hits = np.minimum(within.sum(axis=1), expected)
    return np.where(expected > 0, hits / np.maximum(expected, 1), 1.0)


def _hit_limits(distances: np.ndarray, k: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per query: how many of the k nearest exist, and the distance a hit may have."""
    true_d = distances[:, :k].astype(np.float64)
    expected = np.isfinite(true_d).sum(axis=1)
    kth = np.where(expected > 0, true_d[np.arange(len(true_d)), np.maximum(expected - 1, 0)], 0.0)
    return expected, kth + np.abs(kth) * eps + eps
