"""The partitioned index: qd-tree leaves, IVF lists inside each, rows contiguous.

Rows are stored sorted by (partition, list), so every partition and every
list is one contiguous range ``[start, stop)`` of the stored vectors and
attributes: a scan reads them in place, with no gather. Inside a list, rows
run nearest its centroid first: a query's k-th distance falls sooner, so
fewer rows pass it into filter tests and insertions (1M, the same plans
and answers: execution 0.208 -> 0.190 s at nprobe 1, 0.333 -> 0.318 s at
nprobe 2 with ratio 1.1, 0.38 -> 0.366 s at nprobe 6; exact unchanged).

Arrays (saved with the index):

* ``order`` (N,): input row of each stored row (the identity once rows were
  added or deleted: the input is then the index itself);
* ``part_bounds`` (P + 1,): row range of each partition;
* ``list_bounds`` (T + 1,): row range of each list, lists ordered by partition;
* ``part_lists`` (P + 1,): list-id range of each partition;
* ``centroids`` (T, d): the centroid of each list.

Adding and deleting rows keeps this layout (:mod:`hqi.index.update`); the
layout's :class:`Changes` record what it was fitted to and what changed
since, and :func:`quantization_error` how far the rows have moved from the
lists' centroids (``Index.drift``).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from typing import Any

import numpy as np

from hqi.errors import IndexFormatError, InvalidInputError, check_option_names, positive_int
from hqi.index.ivf import train_lists
from hqi.layout.qdtree import QdTree, learn_qdtree
from hqi.query import ColumnStore, FilterParser

__all__ = [
    "BuildOptions",
    "Changes",
    "Partitioning",
    "build_partitioning",
    "default_list_size",
    "quantization_error",
]


@dataclass(frozen=True, kw_only=True)
class BuildOptions:
    """How :func:`hqi.build` lays out and indexes the collection.

    ``workload``: sample filters (SQL; repeats weigh more) to learn the layout
    from. ``None`` gives one partition (a plain IVF index).

    ``min_partition_rows``: the smallest partition the learner may make.
    Smaller partitions fit selective filters better but add per-partition
    overhead (routing, centroid search, more, shorter lists). Default:
    ``max(1000, N // 256)``.

    ``max_partitions``: stop splitting at this many partitions (default 64).

    ``list_size``: target rows per IVF list. Larger lists make better matrix
    products but scan more rows per probe; smaller ones prune finer and cost
    more per-list overhead. Lists k-means leaves above 4x this are split into
    chunks sharing their centroid. Default (:func:`default_list_size`): about
    ``2 * sqrt(N)`` as a power of two from 512 to 4096 (512 up to ~100k rows,
    1024 at 200k, 2048 at 1M), the best of 512/1024/2048/4096 measured at
    200k and 1M rows (``docs/benchmarks.md``).

    ``kmeans_iters``: k-means iterations per partition (default 10).

    ``sample_rows``: rows the layout learner evaluates costs on (default 20,000).

    ``quantizer``: ``"per-leaf"`` (default) trains k-means inside each
    partition, so a partition's lists fit its own vectors; ``"shared"`` trains
    one coarse quantizer on all vectors (``N / list_size`` centroids) and a
    partition's lists are its rows grouped by shared centroid (SPANN- and
    HQI-style), so lists are fragmented where partitions cut clusters.
    ``bench/quantizer.py`` measures both; per-leaf was better here.

    ``vector_cuts``: let similarity shape the layout too (HQI's vector cuts,
    :mod:`hqi.layout.vector_cuts`): the learner may also cut by "nearest of
    this many coarse centroids in a group". 0 (default) cuts on attributes
    only; ``bench/vector_cuts.py`` measures both. ``vector_probe``: how many
    nearest coarse centroids a workload query is assumed to need (default
    ``vector_cuts // 8``).

    ``seed``: for sampling and k-means. ``threads``: BLAS/OpenMP threads for
    the build (default: the cores available).
    """

    workload: tuple[str, ...] | None = None
    min_partition_rows: int | None = None
    max_partitions: int = 64
    list_size: int | None = None
    kmeans_iters: int = 10
    sample_rows: int = 20_000
    seed: int = 0
    threads: int | None = None
    quantizer: str = "per-leaf"
    vector_cuts: int = 0
    vector_probe: int | None = None

    def rows_per_list(self, n: int) -> int:
        """``list_size``, or the default for a collection of ``n`` rows
        (:func:`default_list_size`); every leaf's training asks with the whole N."""
        return self.list_size if self.list_size is not None else default_list_size(n)

    @classmethod
    def from_kwargs(cls, **options: Any) -> BuildOptions:
        check_option_names("build", options, [f.name for f in fields(cls)])
        workload = options.get("workload")
        if workload is not None:
            if isinstance(workload, str) or not isinstance(workload, Sequence):
                raise InvalidInputError("workload must be a sequence of SQL filter strings")
            if not all(isinstance(w, str) for w in workload):
                raise InvalidInputError("workload must contain only SQL filter strings")
            options["workload"] = tuple(workload)
        cuts = options.get("vector_cuts")
        if cuts is not None:
            if (
                isinstance(cuts, bool)
                or not isinstance(cuts, numbers.Integral)
                or cuts < 0
                or cuts == 1
            ):
                raise InvalidInputError(
                    f"vector_cuts must be 0 (off) or an integer >= 2, got {cuts!r}"
                )
            options["vector_cuts"] = int(cuts)
        # Plain ints stored, so NumPy integers are accepted.
        for name in ("min_partition_rows", "threads", "vector_probe", "list_size"):
            if options.get(name) is not None:
                options[name] = positive_int(name, options[name])
        for name in ("max_partitions", "kmeans_iters", "sample_rows"):
            if name in options:
                options[name] = positive_int(name, options[name])
        if options.get("quantizer", "per-leaf") not in ("per-leaf", "shared"):
            raise InvalidInputError(
                f"quantizer must be 'per-leaf' or 'shared', got {options['quantizer']!r}"
            )
        return cls(**options)


def default_list_size(n: int) -> int:
    """Rows per list when none is given: ``2 * sqrt(n)`` rounded to a power of two,
    clipped to [512, 4096]."""
    return int(np.clip(2 ** round(np.log2(2 * np.sqrt(max(n, 1)))), 512, 4096))


@dataclass(frozen=True)
class Changes:
    """What a layout was fitted to at build, and the rows changed since.

    ``built_error``: the mean squared distance of a row to its list's
    centroid when the lists were trained (k-means's own objective, per
    row). Rows added later go to the nearest existing centroid; when they
    come from where the build saw no rows, that distance grows, and recall
    at a given nprobe falls (``Index.drift``).
    """

    built_rows: int
    built_error: float
    added: int = 0
    deleted: int = 0

    def after(self, *, added: int = 0, deleted: int = 0) -> Changes:
        """This record with ``added`` and ``deleted`` more rows."""
        return replace(self, added=self.added + added, deleted=self.deleted + deleted)

    def to_json(self) -> dict[str, float]:
        return {
            "built_rows": self.built_rows,
            "built_error": self.built_error,
            "added": self.added,
            "deleted": self.deleted,
        }

    @classmethod
    def from_json(cls, meta: Any) -> Changes | None:
        """The record saved in an index's manifest (None if it has none)."""
        if meta is None:
            return None
        try:
            return cls(
                int(meta["built_rows"]),
                float(meta["built_error"]),
                int(meta.get("added", 0)),
                int(meta.get("deleted", 0)),
            )
        except (TypeError, KeyError, ValueError, AttributeError):
            raise IndexFormatError(f"the manifest's 'changes' is malformed: {meta!r}") from None


@dataclass(frozen=True)
class Partitioning:
    """The arrays of the module docstring, plus the tree."""

    tree: QdTree
    order: np.ndarray
    part_bounds: np.ndarray
    list_bounds: np.ndarray
    part_lists: np.ndarray
    centroids: np.ndarray
    stats: dict[str, float] = field(default_factory=dict, compare=False)
    # The build's target rows per list (None for indexes saved before it was kept).
    list_size: int | None = None
    # The build's rows and fit, and the changes since (None: saved before kept).
    changes: Changes | None = None

    @property
    def num_parts(self) -> int:
        return int(self.part_bounds.size - 1)

    @property
    def num_lists(self) -> int:
        return int(self.list_bounds.size - 1)

    @cached_property
    def list_part(self) -> np.ndarray:
        """Each list's partition (T,), from ``part_lists``."""
        return np.repeat(np.arange(self.num_parts), np.diff(self.part_lists))

    @property
    def nominal_list_size(self) -> int:
        """Rows per list, as the power of two nearest the mean (the build's
        ``list_size`` for any default one)."""
        mean = max(int(self.list_bounds[-1]), 1) / max(self.num_lists, 1)
        return int(2 ** round(np.log2(max(mean, 1.0))))

    @property
    def target_list_size(self) -> int:
        """The build's ``list_size``, or for an index saved without it the
        nominal list size."""
        return self.list_size or self.nominal_list_size

    def arrays(self) -> dict[str, np.ndarray]:
        out = {
            "order": self.order,
            "part_bounds": self.part_bounds,
            "list_bounds": self.list_bounds,
            "part_lists": self.part_lists,
            "centroids": self.centroids,
        }
        if self.tree.coarse is not None:  # what the tree's vector cuts refer to
            out["coarse_centroids"] = self.tree.coarse.centroids
        return out


def central_distances(x: np.ndarray, centroid: np.ndarray) -> np.ndarray:
    """Squared distance (float64) of each row of ``x`` to ``centroid``."""
    diff = x - centroid
    return np.einsum("ij,ij->i", diff, diff, dtype=np.float64)


def quantization_error(vectors: np.ndarray, part: Partitioning) -> float:
    """The mean squared distance of a stored row to its list's centroid
    (one pass over the rows, about 0.15 s at 1M x 128)."""
    n = int(part.list_bounds[-1])
    bounds = part.list_bounds
    total = sum(
        float(central_distances(vectors[bounds[t] : bounds[t + 1]], part.centroids[t]).sum())
        for t in range(part.num_lists)
    )
    return total / n if n else 0.0


def cap_lists(
    centroids: np.ndarray, sizes: np.ndarray, cap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split lists over ``cap`` rows into contiguous chunks that share the centroid:
    (the chunks' centroids, their sizes, the chunks of each list).

    k-means can leave a few very large lists; chunks keep every product and
    top-k block bounded while probing (by centroid) still reaches all of them.
    """
    chunks = np.maximum(1, -(-sizes // cap))
    if (chunks == 1).all():
        return centroids, sizes, chunks
    new_sizes = np.concatenate(
        [np.full(c, s // c) + (np.arange(c) < s % c) for s, c in zip(sizes, chunks, strict=True)]
    )
    return np.repeat(centroids, chunks, axis=0), new_sizes.astype(np.int64), chunks


# Each leaf's trained lists: (centroids, each row's list, each row's squared
# distance to its list's centroid), as hqi.index.ivf.train_lists returns them.
Lists = tuple[np.ndarray, np.ndarray, np.ndarray]
TrainLeaves = Callable[[np.ndarray, list[tuple[np.ndarray, int]], "BuildOptions"], list[Lists]]


def train_leaves_here(
    vectors: np.ndarray, jobs: list[tuple[np.ndarray, int]], options: BuildOptions
) -> list[Lists]:
    """Train each leaf's lists in this process, one (rows, seed) job at a time."""
    return [
        train_lists(
            vectors[rows],
            options.rows_per_list(vectors.shape[0]),
            seed=seed,
            niter=options.kmeans_iters,
        )
        for rows, seed in jobs
    ]


def _shared_quantizer(
    vectors: np.ndarray, jobs: list[tuple[np.ndarray, int]], options: BuildOptions
) -> list[Lists]:
    """One k-means over all rows; each leaf's lists are its rows by shared centroid."""
    cents, assign, central = train_lists(
        vectors,
        options.rows_per_list(vectors.shape[0]),
        seed=options.seed,
        niter=options.kmeans_iters,
    )
    out = []
    for rows, _ in jobs:
        used, local = np.unique(assign[rows], return_inverse=True)
        out.append((cents[used], local.astype(np.int64), central[rows]))
    return out


def build_partitioning(
    vectors: np.ndarray,
    store: ColumnStore,
    parser: FilterParser,
    options: BuildOptions,
    *,
    on_step: Callable[[str], None] | None = None,
    train: TrainLeaves | None = None,
) -> Partitioning:
    """Learn the layout, train lists per partition and compute the storage order.

    ``train`` trains the lists of every leaf, given (rows, seed) per leaf; the
    default runs them one after another here (the Ray backend runs them as
    parallel tasks, :mod:`hqi.distributed`).
    """
    import time

    n = vectors.shape[0]
    stats: dict[str, float] = {}
    t0 = time.perf_counter()
    if options.workload:
        if on_step is not None:
            on_step("learning layout")
        for text in set(options.workload):
            parser.parse(text)  # a bad workload filter fails here, with its position
        tree = learn_qdtree(
            store,
            options.workload,
            parser,
            min_rows=options.min_partition_rows or max(1000, n // 256),
            max_leaves=options.max_partitions,
            sample_rows=options.sample_rows,
            seed=options.seed,
            vectors=vectors,
            vector_cuts=options.vector_cuts,
            vector_probe=options.vector_probe,
        )
        leaf = tree.assign(store, vectors)
    else:
        tree = QdTree.single()
        leaf = np.zeros(n, dtype=np.int32)
    stats["layout_s"] = time.perf_counter() - t0
    if on_step is not None:
        on_step("training lists")
    t0 = time.perf_counter()
    order_parts: list[np.ndarray] = []
    centroids: list[np.ndarray] = []
    list_sizes: list[np.ndarray] = []
    part_nlists: list[int] = []
    error = 0.0  # the sum of each row's squared distance to its list's centroid
    leaf_rows = [np.flatnonzero(leaf == p) for p in range(tree.num_leaves)]
    jobs = [(rows, options.seed + p) for p, rows in enumerate(leaf_rows) if rows.size]
    if options.quantizer == "shared":
        trained = iter(_shared_quantizer(vectors, jobs, options))
    else:
        trained = iter((train or train_leaves_here)(vectors, jobs, options))
    for rows in leaf_rows:
        if rows.size == 0:
            part_nlists.append(0)
            continue
        cents, assign, central = next(trained)
        error += float(central.sum(dtype=np.float64))
        # By list, and in each list nearest its centroid first: the rows a
        # probing query meets first are likely near it, so its k-th distance
        # falls early and fewer rows pass it (filter tests, insertions).
        by_list = np.lexsort((central, assign))
        order_parts.append(rows[by_list])
        cents, sizes_p, _ = cap_lists(
            cents, np.bincount(assign, minlength=cents.shape[0]), 4 * options.rows_per_list(n)
        )
        centroids.append(cents)
        list_sizes.append(sizes_p)
        part_nlists.append(cents.shape[0])
    stats["lists_s"] = time.perf_counter() - t0
    part_sizes = np.bincount(leaf, minlength=tree.num_leaves)
    sizes = np.concatenate(list_sizes)
    return Partitioning(
        tree=tree,
        order=np.concatenate(order_parts).astype(np.int64),
        part_bounds=np.concatenate([[0], np.cumsum(part_sizes)]).astype(np.int64),
        list_bounds=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        part_lists=np.concatenate([[0], np.cumsum(part_nlists)]).astype(np.int64),
        centroids=np.concatenate(centroids).astype(np.float32),
        stats=stats,
        list_size=options.rows_per_list(n),
        changes=Changes(built_rows=n, built_error=error / n),
    )
