"""The public entry points: :func:`build`, :func:`open` and :class:`Index`."""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from functools import cached_property
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import numpy as np
import pyarrow as pa

from hqi import _gc
from hqi._rwlock import ReadWriteLock
from hqi._threads import limit_threads, one_blas_thread
from hqi.collection import (
    Metric,
    coerce_ids,
    coerce_table,
    coerce_vectors,
    conform_table,
    normalize_rows,
)
from hqi.errors import InvalidInputError
from hqi.evaluation import recall_of_reached
from hqi.execution.batch import execute_plan
from hqi.execution.exact import Group, exact_search, filter_rows, shares_scan
from hqi.execution.options import DEFAULT_PROBE_ROWS, SearchOptions, available_cores
from hqi.execution.planner import BatchPlan, Route, RowSample, filter_queries, plan_batch
from hqi.execution.products import (
    BF16Residuals,
    BF16Rows,
    bf16_available,
    rerank_candidates,
    torch_threads,
)
from hqi.execution.result import Result
from hqi.index.partitioned import (
    BuildOptions,
    Changes,
    Partitioning,
    build_partitioning,
    quantization_error,
)
from hqi.index.update import add_rows, delete_rows
from hqi.layout.qdtree import QdTree
from hqi.layout.vector_cuts import CoarseCentroids
from hqi.layout.zonemap import ZoneMaps
from hqi.query import ColumnStore, FilterParser, Predicate, coalesce, evaluate
from hqi.query.compiled import AttributeMatrix
from hqi.query.intervals import one_day
from hqi.query.patterns import forget_patterns
from hqi.storage import format as storage

__all__ = ["Filters", "Index", "build", "open"]

Filters = str | None | Sequence[str | None]
"""One filter for the whole batch, or one per query (``None`` = no filter): a
list, a NumPy array, an Arrow string array or a pandas Series (missing = no
filter)."""

# Multiply-adds (distances x dimension) from which a search runs its executor on
# worker threads by default. Measured with 2 threads (one worker against two):
# at 1-3G (FB15k-237; 20k and 200k synthetic rows at nprobe 3-16) one thread
# was as fast or faster (FB15k-237 nprobe 3: 0.119 against 0.135 s); from 8G
# up workers were 24-35% faster (200k rows: nprobe 16, exact). Since small
# stores' filters are tested by their programs (no masks), two workers pay
# from about 1G: FB15k-237 nprobe 3 (1.2G) 58.5 -> 56.0 ms, exact (2.5G) 66.8
# -> 55.3 ms, nprobe 8 73.4 -> 62.8 ms; 60k x 64, 4,000 queries, nprobe 1-3
# and exact 15-20% faster; 20k x 64 at 0.1-0.4G: even (12.1 against 12.5 ms,
# 38.2 against 38.3 ms).
PARALLEL_MIN_WORK = 1e9

# products="auto" runs exact plans of at least this many multiply-adds (distances
# x dimension) in bfloat16. Measured exact, float32 against bfloat16 (medians of
# 5): 1M x 128, 1.7e11: 2.46 -> 1.83 s; MovieLens, 4.0e10: 0.537 -> 0.425 s;
# FB15k-237, 2.2e9: 0.101 -> 0.136 s; Spotify, 8.0e8: 0.057 -> 0.123 s (small
# products, where padding and per-call overheads outweigh the faster arithmetic).
BF16_MIN_WORK = 1e10

# products="auto" runs approximate plans of at least this many multiply-adds on
# bfloat16 residuals (hqi.execution.products.BF16Residuals), re-ranked in float32.
# Measured, whole searches on 2 threads, float32 against residuals, the same
# recall: 1M x 128 (medians of 7, alternating) nprobe 1 (4.1e9) 0.397-0.401
# against 0.365-0.369 s, nprobe 2 (7.5e9) 0.412-0.416 against 0.375-0.377,
# nprobe 2 with ratio 1.1 (1.5e10) 0.417-0.422 against 0.379-0.384; MovieLens
# (384-d, best of two medians of 5) 5.1e9 0.136 against 0.131-0.141 s, 6.6e9
# 0.150-0.153 against 0.151-0.158, 8.3e9 0.170 against 0.164-0.166, 1.5e10
# 0.225 against 0.193-0.198; FB15k-237 (one worker) 1.0e9-2.2e9: within
# +-8% either way from run to run. Below this, no gain worth the copy.
BF16_APPROX_MIN_WORK = 4e9

# The planner's prefilter_ratio when none is given (SearchOptions.prefilter_ratio):
# a gathered row's cost relative to a row read in place by a large product. In
# place is cheaper in bfloat16, so exact plans that may run there use a higher
# one. Exact search, 100 against 400, medians of 3-5 alternating: float32 1M
# 2.63 against 2.67 s, 200k 0.541 against 0.562 s, MovieLens 0.515 against
# 0.538 s; bfloat16 1M 1.781 against 1.644 s, 200k 0.550 against 0.509 s,
# FB15k-237 0.114 against 0.107 s, MovieLens 0.386 against 0.396 s.
PREFILTER_RATIO = 100.0
BF16_PREFILTER_RATIO = 400.0

# recall_target answers exactly when an nprobe's plan would compute at least
# this fraction of the distances of the sample's exact plan (planned with
# PREFILTER_RATIO): exact plans' distances are cheaper, in large products,
# and in bfloat16 where the batch's exact plan runs there. The fraction is
# where whole searches (2 threads) cross: an approximate plan computing
# that fraction of the exact plan's distances takes as long as exact search.
# An approximate search has costs that do not grow with its distances
# (planning, 0.14 s for 5,000 queries of 100k rows at nprobe 1), so that is
# not the ratio of the two searches' time per distance at a low nprobe (0.20
# at 1M, nprobe 2, which set 0.3 before). Measured crossings, bfloat16:
# MovieLens (384-d) 0.59 and over 0.61 (two runs), 1M x 128 0.65, generated
# 100k at d = 64, 128, 256, 384 and 768: over 0.69, 0.69, 0.59, 0.70 and
# 0.71; float32: MovieLens over 0.88, 1M over 0.85, 100k x 128 0.71, 100k x
# 384 over 0.70. Below each, with a margin (docs/benchmarks.md,
# "recall_target's exact crossing").
EXACT_COST_BF16 = 0.5
EXACT_COST_FP32 = 0.65

# By default (``flat=None``) a batch is answered by one exact pass over all rows,
# without the planner, when its multiply-adds (rows x queries x dimension) are
# under this many per distinct filter. Planning costs about 0.1 ms per filter
# at any store size, which on small stores is more than scanning everything.
# Measured with 2 threads, flat exact against planned nprobe 2-8 (medians of
# 7): 0.9e6 per filter (20k x 32, 500 queries): 27 against 42-47 ms; 2.1e6
# (10k x 128, 2,000 queries): 89 against 122-148; 2.9e6 (30k x 64, 1,000
# queries): 70 against 90-103; 4.3e6 (100k x 32, 500 queries): 131 against
# 80-92; 9.2e6 (15k x 384, 2,000 queries): 185 against 160-187.
FLAT_WORK_PER_FILTER = 3e6
# Filters that compile to interval programs (hqi.query.compiled) are tested by the
# executor instead of masked by the planner (1M, 10,000 queries: see docs/benchmarks.md).
COMPILED_FILTERS = True
# Index.drift advises a rebuild when the rows sit this much farther (mean squared
# distance) from their lists' centroids than at build. bench/drift.py (200k and 1M
# x 128): 10-25% of rows added like the built ones, or 25% deleted, kept the ratio
# at 1.000-1.001 and recall@10 within 0.007 of a build of the same rows; all rows
# of an entity type the build never saw (10-31% of the rows) took it to 1.29-1.83
# and recall@10 at the default nprobe 0.017-0.123 below the build's.
REBUILD_ERROR_RATIO = 1.1


def next_nprobe(nprobe: int) -> int:
    """The nprobe after ``nprobe`` on ``recall_target``'s ladder 1, 2, 3, 4, 6, 8,
    12, 16, ...: steps of 1.5x and 1.33x, finer than doubling (with
    ``probe_ratio``, nprobe 3 often reaches a target that 2 misses and 4
    overshoots by a third more rows)."""
    if nprobe < 2:
        return 2
    if nprobe & (nprobe - 1) == 0:  # a power of two
        return nprobe + nprobe // 2
    return nprobe * 4 // 3


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _reads(method: Callable[Concatenate[Index, _P], _R]) -> Callable[Concatenate[Index, _P], _R]:
    """Run an :class:`Index` method as a reader of the index's state (see
    :mod:`hqi._rwlock`): a change waits for it, and it for a change's swap."""

    @functools.wraps(method)
    def reading(self: Index, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._lock.read():
            return method(self, *args, **kwargs)

    return reading


class Index:
    """A searchable collection: vectors, ids and attributes.

    Make one with :func:`hqi.build` or :func:`hqi.open`. One index may serve
    many threads: searches run side by side, and :meth:`add` and
    :meth:`delete` may run beside them. A change is computed while searches
    go on and swapped in between them, so each search sees the index before
    a change or after it, never a mix; changes run one at a time.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        ids: np.ndarray | pa.Array,
        attributes: pa.Table,
        metric: Metric,
        partitioning: Partitioning,
        *,
        path: Path | None = None,
        build_stats: dict[str, float] | None = None,
    ) -> None:
        self._vectors = vectors
        self._ids = ids
        self._store = ColumnStore(attributes)
        self._metric = metric
        self._part = partitioning
        self._path = path
        self._path_current = path is not None  # the files at path hold this index
        self._sq_norms = np.einsum("ij,ij->i", vectors, vectors) if metric is Metric.L2 else None
        self._parser = FilterParser(self._store.schema)
        self._zones = ZoneMaps(self._store, partitioning.part_bounds)
        self.build_stats = dict(build_stats or {})
        self._ray: tuple[tuple[str | None, int | None], Any] | None = None  # see ray_backend()
        self._bf16: BF16Rows | None = None  # the rows in bfloat16, made on first use
        self._residuals: BF16Residuals | None = None  # rows less their list's mean, bfloat16
        self._lock = ReadWriteLock()  # searches share the state; a change swaps it alone
        self._change_lock = threading.Lock()  # one change at a time

    # -- description ----------------------------------------------------------
    @property
    def dim(self) -> int:
        """Vector dimension d."""
        return int(self._vectors.shape[1])

    @property
    def metric(self) -> str:
        """``"l2"``, ``"ip"`` or ``"cosine"``."""
        return self._metric.value

    @property
    def schema(self) -> dict[str, str]:
        """Attribute column -> kind (string, int, float, bool, date, timestamp, list<string>)."""
        return {name: kind.value for name, kind in self._store.schema.items()}

    @property
    def vectors(self) -> np.ndarray:
        """The stored (N, d) float32 vectors (unit-normalised for cosine); read-only."""
        view = self._vectors.view()
        view.flags.writeable = False
        return view

    @property
    def attributes(self) -> pa.Table:
        """The attribute table, row i belonging to vector i."""
        return self._store.table

    @property
    def ids(self) -> np.ndarray:
        """The ids: int64 array, or an object array of strings."""
        if isinstance(self._ids, np.ndarray):
            return self._ids
        return self._string_ids[:-1]

    @cached_property
    def _string_ids(self) -> np.ndarray:
        """String ids as an object array with a trailing None (position -1 = padding)."""
        assert not isinstance(self._ids, np.ndarray)
        return np.asarray([*self._ids.to_pylist(), None], dtype=object)

    @cached_property
    def _id_order(self) -> np.ndarray:
        """argsort of integer ids, for lookups by id."""
        return np.argsort(self._ids, kind="stable")

    @cached_property
    def _id_lookup(self) -> dict[str, int]:
        """String id -> position."""
        return {v: i for i, v in enumerate(self._string_ids[:-1].tolist())}

    @property
    def path(self) -> Path | None:
        """Where the index was saved or opened from, if anywhere (the files
        there lack changes made since: :meth:`add`, :meth:`delete`)."""
        return self._path

    def __len__(self) -> int:
        return int(self._vectors.shape[0])

    def __repr__(self) -> str:
        cols = ", ".join(f"{k}: {v}" for k, v in self.schema.items())
        return f"<hqi.Index {len(self)} x {self.dim} {self.metric} [{cols}]>"

    @_reads
    def info(self) -> dict[str, Any]:
        """A summary: count, dim, metric, id type, schema, layout (partitions,
        lists, rows per list, the default nprobe, the tree's cuts), path, and
        the rows at build and changed since (``changes``; see :meth:`drift`)."""
        return {
            "count": len(self),
            "dim": self.dim,
            "metric": self.metric,
            "id_type": "int64" if isinstance(self._ids, np.ndarray) else "string",
            "schema": self.schema,
            "partitions": self._part.num_parts,
            "lists": self._part.num_lists,
            "list_size": self._part.nominal_list_size,
            "default_nprobe": self._nprobe_for(SearchOptions()),
            "layout_cuts": [str(c) for c in self._part.tree.cuts],
            "path": str(self._path) if self._path else None,
            "changes": None if self._part.changes is None else self._part.changes.to_json(),
        }

    @_reads
    def drift(self) -> dict[str, Any]:
        """How far the index has moved from the layout it was built with.

        ``built_rows``, ``added``, ``deleted``: rows at build and changed
        since (:meth:`add`, :meth:`delete`; a replacement counts as both).
        ``quantization_error``: the mean squared distance of a row to its
        list's centroid, now and (``built_quantization_error``) when the
        lists were trained; ``error_ratio`` the first over the second. Rows
        added where the build saw rows keep it near 1; rows from where it saw
        none (a new kind of entity) go to distant centroids, and recall at a
        given nprobe falls. ``rebuild_advised``: the ratio is over
        :data:`REBUILD_ERROR_RATIO`; build again (from :attr:`vectors`,
        :attr:`attributes` and :attr:`ids`, with a current workload). For an
        index saved before hqi kept the build's record, the ``built_*``
        fields and the ratio are None. One pass over the rows (about 0.1 s
        at 1M x 128).
        """
        changes = self._part.changes
        error = quantization_error(self._vectors, self._part)
        ratio = None
        if changes is not None and changes.built_error > 0:
            ratio = error / changes.built_error
        return {
            "rows": len(self),
            "built_rows": None if changes is None else changes.built_rows,
            "added": 0 if changes is None else changes.added,
            "deleted": 0 if changes is None else changes.deleted,
            "quantization_error": error,
            "built_quantization_error": None if changes is None else changes.built_error,
            "error_ratio": ratio,
            "rebuild_advised": ratio is not None and ratio > REBUILD_ERROR_RATIO,
        }

    # -- filters --------------------------------------------------------------
    def parse(self, text: str | None) -> Predicate | None:
        """Parse and check a filter against this index's schema (cached)."""
        return self._parser.parse(text)

    def clear_filter_caches(self, *, shapes: bool = False) -> None:
        """Forget what this index keeps per filter text or literal: parsed
        filters, their compiled programs, the zone flags of their tests and
        matched LIKE patterns. The memory comes back, and the next search
        times its filters as new ones (``hqi bench`` clears them before each
        timed search). Kept: each filter shape's syntax tree (``type = '?'
        AND year >= #``), unless ``shapes``. Waits for running searches."""
        with self._lock.write():
            self._parser.clear(shapes=shapes)
            self._zones.forget_filters()
            for name in ("_list_zones", "_attribute_matrix"):  # made on first use
                made = self.__dict__.get(name)
                if made is not None:
                    made.forget_filters()
            forget_patterns()
            coalesce.truth_at.cache_clear()

    @_reads
    def mask(self, filter: str | None) -> np.ndarray:
        """Boolean mask (N,) of the rows that satisfy ``filter``."""
        return evaluate(self.parse(filter), self._store)

    @_reads
    def where(self, filter: str | None) -> np.ndarray:
        """The ids of the entities that satisfy ``filter``, in row order."""
        rows = np.flatnonzero(self.mask(filter))
        return self.ids[rows]

    @_reads
    def count(self, filter: str | None) -> int:
        """How many entities satisfy ``filter``."""
        return int(np.count_nonzero(self.mask(filter)))

    # -- search ---------------------------------------------------------------
    @_reads
    def search(
        self,
        queries: Any,
        filters: Filters = None,
        k: int = 10,
        *,
        on_progress: Callable[[int], None] | None = None,
        **options: Any,
    ) -> Result:
        """The k nearest entities to each query among those that satisfy its filter.

        ``queries``: (Q, d) float array (a single (d,) vector is one query).
        ``filters``: one SQL filter for all queries, ``None``, or a sequence of
        Q filters. ``options``: see :class:`hqi.SearchOptions` (``nprobe``,
        ``recall_target``, ``exact``, ``threads``, ``prefilter_ratio``, ...).
        Approximate by default (``nprobe`` lists per routed partition);
        ``exact=True`` gives exact answers. ``on_progress(n)`` is called as
        queries complete.
        """
        opts = SearchOptions.from_kwargs(k=k, **options)
        q = coerce_vectors(queries, what="queries", dim=self.dim, allow_1d=True)
        if self._metric is Metric.COSINE:
            q = normalize_rows(q, what="queries")
        return self._search(q, filters, opts, on_progress=on_progress)

    @_reads
    def search_by_id(
        self,
        entity_ids: Any,
        filters: Filters = None,
        k: int = 10,
        *,
        exclude_self: bool = True,
        on_progress: Callable[[int], None] | None = None,
        **options: Any,
    ) -> Result:
        """Search with stored entities' vectors as queries ("related entities").

        ``entity_ids``: ids of entities in this index. With ``exclude_self``
        (the default) an entity is not returned as its own neighbour.
        """
        opts = SearchOptions.from_kwargs(k=k, **options)
        positions = self.positions(entity_ids)
        q = np.ascontiguousarray(self._vectors[positions])
        if not exclude_self:
            return self._search(q, filters, opts, on_progress=on_progress)
        wide = dataclasses.replace(opts, k=opts.k + 1)
        res = self._search(q, filters, wide, on_progress=on_progress, as_positions=True)
        keep = res.ids != positions[:, None]
        # Keep the first k that are not the query itself, preserving order.
        order = np.argsort(~keep, axis=1, kind="stable")[:, : opts.k]
        pos = np.take_along_axis(res.ids, order, axis=1)
        dist = np.take_along_axis(res.distances, order, axis=1)
        return self._result(pos, dist, res.stats)

    @_reads
    def positions(self, entity_ids: Any) -> np.ndarray:
        """Row positions (int64) of the given ids; unknown ids are an error."""
        values = (
            [entity_ids] if isinstance(entity_ids, str | int | np.integer) else list(entity_ids)
        )
        if isinstance(self._ids, np.ndarray):
            if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
                raise InvalidInputError("this index has integer ids; entity ids must be integers")
            order = self._id_order
            wanted = np.asarray(values, dtype=np.int64)
            at = np.clip(np.searchsorted(self._ids, wanted, sorter=order), 0, len(order) - 1)
            pos = order[at]
            missing = self._ids[pos] != wanted
        else:
            if not all(isinstance(v, str) for v in values):
                raise InvalidInputError("this index has string ids; entity ids must be strings")
            pos = np.asarray([self._id_lookup.get(str(v), -1) for v in values], dtype=np.int64)
            missing = pos < 0
        if missing.any():
            raise InvalidInputError(
                f"unknown entity id {values[int(np.flatnonzero(missing)[0])]!r}"
            )
        return pos.astype(np.int64)

    # -- changes --------------------------------------------------------------
    def add(
        self, vectors: Any, attributes: Any = None, ids: Any = None, *, replace: bool = False
    ) -> None:
        """Add entities, in place, in this index's layout.

        ``vectors`` (M, d), ``attributes`` (the index's columns, any order;
        types that cast to the index's), ``ids`` (M unique ids; for integer
        ids the default continues from the largest, string ids must be
        given). An id already in the index is an error, unless ``replace``:
        then that entity is replaced (an upsert). Each new row goes to the
        partition its attributes fall in and there to the list of its nearest
        centroid, as the build assigns rows; the layout is not learned again
        (:mod:`hqi.index.update`). Bad input changes nothing. The on-disk
        copy changes only with :meth:`save`. Searches in other threads go
        on while the change is computed and see it once it returns.
        """
        self.update(vectors, attributes, ids, replace=replace)

    def delete(self, entity_ids: Any) -> None:
        """Delete the entities with these ids, in place (unknown ids are an
        error and delete nothing). Rows matching a filter:
        ``index.delete(index.where("year < 1990"))``. The layout stays; lists
        left empty are dropped. Searches in other threads go on while the
        change is computed and see it once it returns; the on-disk copy
        changes only with :meth:`save`."""
        self.update(delete=entity_ids)

    def update(
        self,
        vectors: Any = None,
        attributes: Any = None,
        ids: Any = None,
        *,
        delete: Any = None,
        replace: bool = False,
    ) -> None:
        """Delete the entities ``delete`` and add the rows ``vectors``,
        ``attributes``, ``ids`` (as :meth:`add`) in one change: a search in
        another thread sees the index before both or after both, and the
        rows in between are never rebuilt. An added id may be one that
        ``delete`` removes (it is then a new entity, not an error). Every
        entity may be deleted when rows are added in their place; an index
        left with none is an error. Bad input changes nothing."""
        if vectors is None and (attributes is not None or ids is not None):
            raise InvalidInputError("attributes or ids without vectors: give the rows' vectors")
        with self._changing():
            with self._lock.read():
                fresh = self._updated(vectors, attributes, ids, delete, replace=replace)
            if fresh is not None:
                self._swap(fresh)

    def _updated(
        self, vectors: Any, attributes: Any, ids: Any, delete: Any, *, replace: bool
    ) -> Index | None:
        """The index after :meth:`update` (None: nothing changes)."""
        t0 = time.perf_counter()
        doomed = np.zeros(0, dtype=np.int64) if delete is None else self.positions(delete)
        m = 0
        if vectors is not None:
            x = coerce_vectors(vectors)
            m = x.shape[0]
            if x.shape[1] != self.dim:
                raise InvalidInputError(
                    f"vectors have dimension {x.shape[1]}, but the index has dimension {self.dim}"
                )
            if self._metric is Metric.COSINE:
                x = normalize_rows(x, what="vectors")
            table = conform_table(attributes, m, self._store.table.schema)
            new_ids, replaced = self._new_ids(ids, m, replace=replace, gone=doomed)
            doomed = np.concatenate([doomed, replaced])
        keep = np.ones(len(self), dtype=bool)
        keep[doomed] = False
        if m == 0:
            if keep.all():
                return None
            if not keep.any():
                raise InvalidInputError(
                    "cannot delete every entity: an index holds at least one; build a new one"
                )
        vectors_now, ids_now, table_now, part = (
            self._vectors,
            self._ids,
            self._store.table,
            self._part,
        )
        if not keep.all():
            part, kept = delete_rows(part, keep)
            vectors_now = np.ascontiguousarray(vectors_now[kept])
            ids_now, table_now = _take(kept, ids_now, table_now)
        if m == 0:
            stats = {**self.build_stats, "delete_s": time.perf_counter() - t0}
            return self._changed(vectors_now, ids_now, table_now, part, stats)
        leaf = part.tree.assign(ColumnStore(table), x)
        with limit_threads(available_cores()):
            part, take = add_rows(part, vectors_now, x, leaf)
        # The stored rows keep their order: one sequential copy, the new rows between.
        n = vectors_now.shape[0]
        is_new = take >= n
        merged = np.empty((take.size, self.dim), dtype=np.float32)
        merged[~is_new] = vectors_now
        merged[is_new] = x[take[is_new] - n]
        if isinstance(ids_now, np.ndarray):
            assert isinstance(new_ids, np.ndarray)
            all_ids: np.ndarray | pa.Array = np.concatenate([ids_now, new_ids])
        else:
            all_ids = pa.concat_arrays([ids_now, new_ids])
        ids_out, table_out = _take(take, all_ids, pa.concat_tables([table_now, table]))
        stats = {**self.build_stats, "add_s": time.perf_counter() - t0}
        return self._changed(merged, ids_out, table_out, part, stats)

    def _new_ids(
        self, ids: Any, m: int, *, replace: bool = False, gone: np.ndarray | None = None
    ) -> tuple[np.ndarray | pa.Array, np.ndarray]:
        """(the ids of ``m`` rows to add, the positions of the entities they
        replace): ids given (unique, of the index's id type, new unless
        ``replace``) or, for integer ids, continuing from the largest. The
        entities at positions ``gone`` (deleted by the same change) count as
        absent."""
        integer = isinstance(self._ids, np.ndarray)
        none = np.zeros(0, dtype=np.int64)
        if ids is None:
            if not integer:
                raise InvalidInputError("this index has string ids; give the new rows' ids")
            start = int(self._ids.max()) + 1 if len(self._ids) else 0
            return np.arange(start, start + m, dtype=np.int64), none
        new = coerce_ids(ids, m)
        if isinstance(new, np.ndarray) != integer:
            kind = "integer" if integer else "string"
            raise InvalidInputError(f"this index has {kind} ids; the new ids must be {kind}s")
        if isinstance(new, np.ndarray):
            present = new[np.isin(new, self._ids)]
        else:
            present = np.asarray([v for v in new.to_pylist() if v in self._id_lookup], dtype=object)
        if not present.size:
            return new, none
        held = self.positions(present.tolist())
        if gone is not None and gone.size:
            staying = ~np.isin(held, gone)
            present, held = present[staying], held[staying]
        if held.size and not replace:
            raise InvalidInputError(
                f"id {present[0].item() if integer else present[0]!r} is already in the index "
                "(replace=True replaces such entities)"
            )
        return new, held

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """Hold the change lock: one :meth:`update` (add, delete) at a time,
        never from inside a search of this index (it would wait for itself)."""
        if self._lock.held():
            raise InvalidInputError(
                "an index cannot change inside one of its own searches (from on_progress): "
                "change it after the search returns"
            )
        with self._change_lock:
            yield

    def _changed(
        self,
        vectors: np.ndarray,
        ids: np.ndarray | pa.Array,
        attributes: pa.Table,
        part: Partitioning,
        stats: dict[str, float],
    ) -> Index:
        """The index of these arrays, with this one's metric and path: every
        derived structure (masks, zone maps, bfloat16 rows, id lookups) made
        again."""
        fresh = Index(
            vectors, ids, attributes, self._metric, part, path=self._path, build_stats=stats
        )
        fresh._path_current = False  # until saved
        return fresh

    def _swap(self, fresh: Index) -> None:
        """Become ``fresh`` (from :meth:`_changed`), between searches: its state
        replaces this one's, attribute by attribute, while no search reads;
        what this index derived and kept (id lookups, Ray actors) goes."""
        locks = {"_lock": self._lock, "_change_lock": self._change_lock}
        state = {**fresh.__dict__, **locks}
        with self._lock.write():
            ray = self._ray
            for key in [key for key in self.__dict__ if key not in state]:
                del self.__dict__[key]
            self.__dict__.update(state)
        if ray is not None:
            ray[1].shutdown()  # its actors hold the old rows

    def _nprobe_for(self, opts: SearchOptions) -> int | None:
        """The lists each query probes under ``opts`` (None: exact): ``opts.nprobe``,
        or by default ``8192 // list_size`` (lists of about 8,192 rows in all)."""
        if opts.exact:
            return None
        if opts.nprobe is not None:
            return opts.nprobe
        return max(1, DEFAULT_PROBE_ROWS // self._part.nominal_list_size)

    def _distinct(self, filters: Filters, nq: int) -> tuple[list[Predicate | None], np.ndarray]:
        """The batch's distinct filters and, per query, the index of its filter."""
        if filters is None or isinstance(filters, str):
            texts: Sequence[str | None] = [filters] * nq
        elif isinstance(filters, Sequence | np.ndarray | pa.Array | pa.ChunkedArray) or (
            type(filters).__name__ == "Series" and hasattr(filters, "tolist")  # pandas
        ):
            if isinstance(filters, pa.Array | pa.ChunkedArray):
                texts = filters.to_pylist()
            elif hasattr(filters, "isna"):  # pandas: a missing value (NaN, NA) is no filter
                series: Any = filters
                missing = series.isna().tolist()
                texts = [None if m else t for t, m in zip(series.tolist(), missing, strict=True)]
            else:
                texts = list(filters)
            if len(texts) != nq:
                raise InvalidInputError(f"got {len(texts)} filters for {nq} queries")
        else:
            raise InvalidInputError(
                "filters must be a SQL string, None, or a sequence of them (one per query), "
                f"not {type(filters).__name__}"
            )
        # Distinct texts first (a string keeps its hash), then their filters:
        # texts that parse alike (spacing, case) share one (1M batch: 5.5 -> 3.7 ms).
        text_of: dict[str | None, int] = {}
        try:
            by_text = np.fromiter(
                (text_of.setdefault(text, len(text_of)) for text in texts), dtype=np.int64, count=nq
            )
        except TypeError:  # an unhashable filter (a list, ...): the parser names it
            for text in texts:
                self.parse(text)
            raise
        index_of: dict[Predicate | None, int] = {}
        with one_day():  # current_date: one date for the whole batch
            filter_of = np.array(
                [index_of.setdefault(self.parse(text), len(index_of)) for text in text_of],
                dtype=np.int64,
            )
        return list(index_of), filter_of[by_text]

    def _plan(
        self,
        q: np.ndarray,
        filters: Filters,
        opts: SearchOptions,
        nprobe: int | None,
        distinct: tuple[list[Predicate | None], np.ndarray] | None = None,
        routes: dict[Predicate | None, Route] | None = None,
    ) -> BatchPlan:
        """The batch's plan; ``distinct``: :meth:`_distinct` of ``filters``, if known;
        ``routes``: exact routes kept between the plans of one search
        (:func:`~hqi.execution.planner.plan_batch`)."""
        preds, query_filter = self._distinct(filters, q.shape[0]) if distinct is None else distinct
        with one_blas_thread():  # its products are small, its own threads run next
            return plan_batch(
                q,
                query_filter,
                preds,
                part=self._part,
                zones=self._zones,
                store=self._store,
                metric=self._metric,
                nprobe=nprobe,
                prefilter_ratio=self._prefilter_ratio(opts, nprobe is None, q.shape[0]),
                k=opts.k,
                expected_hits=opts.expected_hits,
                probe_ratio=opts.probe_ratio,
                sample=self._row_sample,
                # Ray's executors hold no attribute matrix: their plans keep masks.
                attributes=(
                    self._attribute_matrix if COMPILED_FILTERS and opts.backend != "ray" else None
                ),
                list_zones=self._list_zones,
                routes=routes,
                threads=opts.num_threads,
            )

    @cached_property
    def _list_zones(self) -> ZoneMaps:
        """Zone maps of every list (built on first use)."""
        return ZoneMaps(self._store, self._part.list_bounds)

    @cached_property
    def _attribute_matrix(self) -> AttributeMatrix:
        """The attributes as the executor's compiled filters read them (built on
        first use)."""
        return AttributeMatrix(self._store)

    @cached_property
    def _row_sample(self) -> RowSample:
        """The planner's estimation sample (built on the first approximate search)."""
        return RowSample(self._store, self._part.part_bounds)

    @_reads
    def ray_backend(
        self,
        address: str | None = None,
        workers: int | None = None,
        workload: list[str] | None = None,
    ) -> Any:
        """The :class:`hqi.distributed.RayBackend` that ``backend="ray"`` searches use.

        Created on first use (actors placed, index mapped on each) and kept
        for later calls with the same ``address`` and ``workers``; pass a
        ``workload`` to weigh the placement by how often it reaches each
        partition (this replaces a kept backend).
        """
        from hqi.distributed import RayBackend

        key = (address, workers)
        cached = self._ray
        if cached is not None and cached[0] == key and workload is None and cached[1].actors:
            return cached[1]
        if cached is not None:
            cached[1].shutdown()
        backend = RayBackend(self, address=address, workers=workers, workload=workload)
        self._ray = (key, backend)
        return backend

    def _run(
        self,
        q: np.ndarray,
        plan: BatchPlan,
        opts: SearchOptions,
        workers: int | None = None,
        stats: dict[str, float] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Execute ``plan`` (``workers``: executor threads, :meth:`_workers` when
        None); ``stats``, if given, gets the workers and whether the products
        ran in bfloat16."""
        if opts.backend == "ray":
            backend = self.ray_backend(opts.ray_address, opts.ray_workers)
            return backend.execute(plan, q, opts.k, opts.block_rows, opts.query_block)
        work = plan.distances() * self.dim  # 29 ms for the 1M exact plan: once
        workers = self._workers(opts, work) if workers is None else workers
        bf16, residual = self._products(opts, plan.nprobe, work)
        candidates = None if residual is None else rerank_candidates(opts.k)
        if stats is not None:
            stats["workers"] = float(workers)
            stats["bf16"] = float(bf16 is not None or residual is not None)
            stats["candidates"] = float(candidates or opts.k)
        threads = bf16 is not None or residual is not None
        with torch_threads(opts.num_threads) if threads else nullcontext():
            return execute_plan(
                plan,
                self._vectors,
                self._sq_norms,
                q,
                opts.k,
                self._metric,
                self._part,
                block_rows=opts.block_rows,
                query_block=opts.query_block,
                workers=workers,
                bf16=bf16,
                residual=residual,
                candidates=candidates,
            )

    def _products(
        self, opts: SearchOptions, nprobe: int | None, work: float
    ) -> tuple[BF16Rows | None, BF16Residuals | None]:
        """How a plan (exact: ``nprobe`` None) of ``work`` multiply-adds runs its
        products: (the rows in bfloat16, with float32's answers, or None;
        the rows less their list's mean in bfloat16, approximate, or None),
        each made once per index and kept. Neither for ``products="fp32"``.

        A plan whose answers must be exact (an exact one, or one that probes
        every list: :meth:`_probes_all`) runs in bfloat16 with float32's
        answers for ``products="bf16"``, or for ``"auto"`` from
        :data:`BF16_MIN_WORK` where :func:`bf16_available`. Other approximate
        plans run their lists' products on the residuals
        (:class:`~hqi.execution.products.BF16Residuals`, re-ranked in float32)
        for ``"bf16"``, or for ``"auto"`` from :data:`BF16_APPROX_MIN_WORK`."""
        if opts.products == "fp32":
            return None, None
        available = bf16_available()
        if opts.products == "bf16" and not available:
            raise InvalidInputError(
                "products='bf16' needs torch and a CPU with AMX "
                "(pip install 'hqi[amx]'); use products='fp32' or 'auto'"
            )
        chosen = opts.products == "bf16"
        if nprobe is None or self._probes_all(nprobe):
            if not (chosen or (available and work >= BF16_MIN_WORK)):
                return None, None
            if self._bf16 is None:
                self._bf16 = BF16Rows.of(self._vectors)
            return self._bf16, None
        if not (chosen or (available and work >= BF16_APPROX_MIN_WORK)):
            return None, None
        if self._residuals is None:
            self._residuals = BF16Residuals.of(self._vectors, self._part.list_bounds)
        return None, self._residuals

    def _probes_all(self, nprobe: int) -> bool:
        """Whether ``nprobe`` reaches every list a query could be routed to
        (answers as exact search's). Probing is global (a query's nearest
        ``nprobe`` lists across all its routed partitions), so that takes
        ``nprobe`` of at least the index's lists, not of the most lists one
        partition holds: by that rule MovieLens (at most 5 lists a partition,
        168 in all) ran nprobe 6-64 with exact search's products and rounding
        bound; on residuals, nprobe 8 0.152 -> 0.121 s (see docs/benchmarks.md)."""
        return nprobe >= self._part.num_lists

    def _prefilter_ratio(self, opts: SearchOptions, exact: bool, nq: int) -> float:
        """``opts.prefilter_ratio``, or by default :data:`BF16_PREFILTER_RATIO` for
        an exact plan that may run its products in bfloat16 (``products="bf16"``,
        or ``"auto"`` where :func:`bf16_available` and the batch's rows x queries
        x dimension, an upper bound of the plan's work, reach
        :data:`BF16_MIN_WORK`), else :data:`PREFILTER_RATIO`."""
        if opts.prefilter_ratio is not None:
            return opts.prefilter_ratio
        if exact and opts.products != "fp32":
            bound = float(self._vectors.shape[0]) * nq * self.dim
            if opts.products == "bf16" or (bound >= BF16_MIN_WORK and bf16_available()):
                return BF16_PREFILTER_RATIO
        return PREFILTER_RATIO

    def _exact_in_bf16(self, opts: SearchOptions, work: float) -> bool:
        """Whether an exact plan of ``work`` multiply-adds would run its products
        in bfloat16 (as :meth:`_products` decides; never on Ray)."""
        if opts.products == "fp32" or opts.backend == "ray" or not bf16_available():
            return False
        return opts.products == "bf16" or work >= BF16_MIN_WORK

    def _workers(self, opts: SearchOptions, work: float) -> int:
        """Executor threads for a plan of ``work`` multiply-adds (distances x
        dimension): ``threads`` workers, or one (with ``threads`` BLAS threads)
        when ``parallel=False`` or, by default, when the plan is too small for
        workers to pay (see :data:`PARALLEL_MIN_WORK`)."""
        if opts.parallel is False:
            return 1
        if opts.parallel is None and work < PARALLEL_MIN_WORK:
            return 1
        return opts.num_threads

    def _calibrate(
        self,
        q: np.ndarray,
        filters: Filters,
        opts: SearchOptions,
        routes: dict[Predicate | None, Route] | None = None,
    ) -> tuple[int | None, float, float]:
        """The smallest nprobe (of :func:`next_nprobe`'s ladder) whose recall on a
        sample of the batch reaches the target, that recall, and its standard
        error as an estimate of the whole batch's (0 when the sample is the
        batch). None (and recall 1) where exact search costs less: where a
        tried nprobe's plan computes at least :data:`EXACT_COST_BF16` (or
        ``_FP32``) times the distances of the sample's exact plan.

        The sample is searched exactly once, for ``2 * k`` neighbours. Each
        nprobe is then only planned: its plan finds a query's exact answers
        exactly where its probes reach them (:meth:`BatchPlan.reaches`), so
        its recall is known without running it
        (:func:`~hqi.evaluation.recall_of_reached`). The plans share their
        filters' exact routes (``routes``: pass the dict the batch's plan
        will use, so that it shares them too).
        """
        nq = q.shape[0]
        routes = {} if routes is None else routes
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(nq, size=min(nq, opts.calibration_queries), replace=False))
        sub_q = q[sample]
        sub_f: Filters = filters
        if not (filters is None or isinstance(filters, str)):
            texts = list(filters)  # once, not per sampled query
            sub_f = [texts[i] for i in sample]
        distinct = self._distinct(sub_f, sub_q.shape[0])
        # The sample's exact plan is small (its products run in float32 unless
        # calibration_queries is very large): by default it keeps float32's
        # prefilter ratio (1M, recall_target=0.95: 0.848 s, against 0.894 s with
        # the bf16 one that the sample's size bound would pick).
        ratio = PREFILTER_RATIO if opts.prefilter_ratio is None else opts.prefilter_ratio
        wide = dataclasses.replace(opts, k=2 * opts.k, prefilter_ratio=ratio)
        exact_plan = self._plan(sub_q, sub_f, wide, None, distinct, routes)
        truth_pos, truth_dist, _ = self._run(sub_q, exact_plan, wide)
        truth = Result(truth_pos, truth_dist)
        exact_distances = exact_plan.distances()
        batch_work = exact_distances * (nq / sub_q.shape[0]) * self.dim  # estimated
        exact_cost = exact_distances * (
            EXACT_COST_BF16 if self._exact_in_bf16(opts, batch_work) else EXACT_COST_FP32
        )
        max_lists = self._part.num_lists
        nprobe = 1
        while True:
            plan = self._plan(sub_q, sub_f, opts, nprobe, distinct, routes)
            if plan.distances() >= exact_cost:
                return None, 1.0, 0.0  # the batch's exact plan costs less
            per_query = recall_of_reached(truth, plan.reaches(truth_pos), opts.k)
            recall = float(per_query.mean())
            if recall >= opts.recall_target or nprobe >= max_lists:  # type: ignore[operator]
                return nprobe, recall, _sample_stderr(per_query, nq)
            nprobe = min(max_lists, next_nprobe(nprobe))

    def _flat(self, nq: int, distinct: int, opts: SearchOptions) -> bool:
        """Whether to answer a batch of ``nq`` queries with ``distinct`` filters by
        one exact pass over all rows (``opts.flat``; by default when cheaper than
        planning, :data:`FLAT_WORK_PER_FILTER`). Never on Ray."""
        if opts.backend == "ray" or opts.flat is False:
            return False
        if opts.flat:
            return True
        return float(self._vectors.shape[0]) * nq * self.dim < FLAT_WORK_PER_FILTER * distinct

    def _flat_groups(self, preds: list[Predicate | None], query_filter: np.ndarray) -> list[Group]:
        """The flat path's groups: each distinct filter's queries and the rows it
        selects (None: every row), evaluated once on the whole store
        (:func:`~hqi.execution.exact.filter_rows`)."""
        matrix = self._attribute_matrix if COMPILED_FILTERS else None
        rows = filter_rows(preds, self._store, matrix)
        queries_of = filter_queries(query_filter, len(preds))
        return [Group(qids, r) for qids, r in zip(queries_of, rows, strict=True)]

    def _search(
        self,
        q: np.ndarray,
        filters: Filters,
        opts: SearchOptions,
        *,
        on_progress: Callable[[int], None] | None,
        as_positions: bool = False,
    ) -> Result:
        start = time.perf_counter()
        stats: dict[str, float] = {"queries": float(q.shape[0])}
        # one_day: the batch and its calibration sample read one current_date.
        with _gc.paused(), limit_threads(opts.num_threads), one_day():
            preds, query_filter = distinct = self._distinct(filters, q.shape[0])
            if self._flat(q.shape[0], len(preds), opts):
                # One exact pass over all rows, without the planner.
                groups = self._flat_groups(preds, query_filter)
                t_plan = time.perf_counter()
                pos, dist, scanned = exact_search(
                    self._vectors,
                    self._sq_norms,
                    q,
                    groups,
                    opts.k,
                    self._metric,
                    block_rows=opts.block_rows,
                    query_block=opts.query_block,
                )
                stats.update(
                    {
                        "nprobe": float("inf"),
                        "prefilter_filters": 0.0,
                        "scan_filters": 0.0,
                        "flat": 1.0,
                        "workers": 1.0,
                        "bf16": 0.0,
                    }
                )
                if not opts.exact and opts.recall_target is not None:
                    stats["estimated_recall"] = 1.0
                    stats["estimated_recall_stderr"] = 0.0
            else:
                nprobe = self._nprobe_for(opts)
                routes: dict[Predicate | None, Route] = {}  # shared by this search's plans
                if not opts.exact and opts.recall_target is not None:
                    nprobe, estimated, stderr = self._calibrate(q, filters, opts, routes)
                    stats["estimated_recall"] = estimated
                    stats["estimated_recall_stderr"] = stderr
                plan = self._plan(q, filters, opts, nprobe, distinct, routes)
                t_plan = time.perf_counter()
                pos, dist, scanned = self._run(q, plan, opts, stats=stats)
                strategies = [f.strategy for f in plan.filters]
                stats.update(
                    {
                        "nprobe": float(nprobe) if nprobe is not None else float("inf"),
                        "prefilter_filters": float(strategies.count("prefilter")),
                        "scan_filters": float(strategies.count("scan")),
                    }
                )
        if on_progress is not None:
            on_progress(q.shape[0])
        stats.update(
            {
                "seconds": time.perf_counter() - start,
                "plan_seconds": t_plan - start,
                "groups": float(len(preds)),
                "rows_scanned": float(scanned),
            }
        )
        if as_positions:
            return Result(pos, dist, None, stats)
        return self._result(pos, dist, stats)

    @_reads
    def explain(
        self, queries: Any, filters: Filters = None, k: int = 10, **options: Any
    ) -> pa.Table:
        """Each query's plan, without running it: one row per query.

        Columns: ``query``, ``filter`` (canonical SQL), ``strategy`` (scan,
        prefilter, empty, or flat: the whole batch by one exact pass over all
        rows, see ``SearchOptions.flat``), ``partitions`` (routed), ``covered`` (routed
        partitions needing no row filter), ``lists`` (lists probed),
        ``qualifying`` (rows satisfying the filter), ``estimated``
        (``qualifying`` estimated from the row sample, not counted),
        ``compiled`` (the executor tests the filter's compiled program on
        the rows that could enter the top-k: no row masks; see
        :mod:`hqi.query.compiled`), ``rows`` (distance computations: the
        estimated cost). With ``recall_target`` the probes are the calibrated
        ones.
        """
        opts = SearchOptions.from_kwargs(k=k, **options)
        q = coerce_vectors(queries, what="queries", dim=self.dim, allow_1d=True)
        if self._metric is Metric.COSINE:
            q = normalize_rows(q, what="queries")
        nq = q.shape[0]
        distinct = self._distinct(filters, nq)
        if self._flat(nq, len(distinct[0]), opts):
            return self._explain_flat(*distinct)
        with limit_threads(opts.num_threads):
            nprobe = self._nprobe_for(opts)
            routes: dict[Predicate | None, Route] = {}
            if not opts.exact and opts.recall_target is not None:
                nprobe, _, _ = self._calibrate(q, filters, opts, routes)
            plan = self._plan(q, filters, opts, nprobe, distinct, routes)
        # a whole-partition probe scans its lists, less those its filter skips
        lists = np.bincount(plan.probe_query, weights=plan.probe_rows()[1], minlength=nq)
        f = plan.filters
        qf = plan.query_filter
        return pa.table(
            {
                "query": pa.array(np.arange(nq)),
                "filter": [None if f[i].pred is None else str(f[i].pred) for i in qf],
                "strategy": [f[i].strategy for i in qf],
                "partitions": np.array([f[i].parts.size for i in qf], dtype=np.int64),
                "covered": np.array([f[i].num_covered for i in qf], dtype=np.int64),
                "lists": np.where([f[i].strategy == "scan" for i in qf], lists, 0).astype(np.int64),
                "qualifying": np.array([f[i].qualifying for i in qf], dtype=np.int64),
                "estimated": np.array([f[i].estimated for i in qf], dtype=bool),
                "compiled": np.array([f[i].program >= 0 for i in qf], dtype=bool),
                "rows": plan.rows_per_query(),
            }
        )

    def _explain_flat(self, preds: list[Predicate | None], query_filter: np.ndarray) -> pa.Table:
        """:meth:`explain` of a flat batch: every query scans all rows, or gathers
        its filter's rows when they are few (:func:`shares_scan`)."""
        n = self._vectors.shape[0]
        groups = self._flat_groups(preds, query_filter)
        counts = np.array([n if g.rows is None else g.rows.size for g in groups], dtype=np.int64)
        broad = [g.rows is None or shares_scan(g.rows.size, n) for g in groups]
        rows = np.where(broad, n, counts)
        parts = self._part.num_parts
        return pa.table(
            {
                "query": pa.array(np.arange(query_filter.size)),
                "filter": [None if preds[i] is None else str(preds[i]) for i in query_filter],
                "strategy": ["flat"] * query_filter.size,
                "partitions": np.full(query_filter.size, parts, dtype=np.int64),
                "covered": np.where([p is None for p in preds], parts, 0)[query_filter],
                "lists": np.zeros(query_filter.size, dtype=np.int64),
                "qualifying": counts[query_filter],
                "estimated": np.zeros(query_filter.size, dtype=bool),
                "compiled": np.zeros(query_filter.size, dtype=bool),
                "rows": rows[query_filter],
            }
        )

    def _result(self, pos: np.ndarray, dist: np.ndarray, stats: dict[str, float]) -> Result:
        if isinstance(self._ids, np.ndarray):
            ids = np.where(pos >= 0, self._ids[np.maximum(pos, 0)], -1)
            return Result(ids.astype(np.int64), dist, None, stats)
        keys = self._string_ids[pos]  # -1 (padding) picks the trailing None
        return Result(pos, dist, keys, stats)

    # -- persistence ----------------------------------------------------------
    @_reads
    def save(self, path: str | Path) -> Path:
        """Write the index to directory ``path`` atomically; see :mod:`hqi.storage`."""
        stored = storage.StoredIndex(
            vectors=np.asarray(self._vectors),
            ids=self._ids,
            attributes=self._store.table,
            metric=self._metric.value,
            extra=self._part.arrays(),
            meta={
                "schema": self.schema,
                "layout": self._part.tree.to_json(),
                **({"list_size": self._part.list_size} if self._part.list_size else {}),
                **({"changes": changes.to_json()} if (changes := self._part.changes) else {}),
            },
        )
        self._path = storage.save(stored, path)
        self._path_current = True
        return self._path


def _take(
    rows: np.ndarray, ids: np.ndarray | pa.Array, table: pa.Table
) -> tuple[np.ndarray | pa.Array, pa.Table]:
    """``rows`` of an index's ids and attribute table."""
    picked = pa.array(rows)
    return ids[rows] if isinstance(ids, np.ndarray) else ids.take(picked), table.take(picked)


def _sample_stderr(values: np.ndarray, population: int) -> float:
    """Standard error of ``values.mean()`` as an estimate of the mean over a
    ``population`` the values were drawn from without replacement (0 when
    they are all of it)."""
    n = values.size
    if n < 2 or n >= population:
        return 0.0
    correction = (population - n) / (population - 1)  # finite population
    return float(values.std(ddof=1) / np.sqrt(n) * np.sqrt(correction))


def build(
    vectors: Any,
    attributes: Any = None,
    ids: Any = None,
    metric: str = "l2",
    *,
    on_step: Callable[[str], None] | None = None,
    backend: str = "local",
    ray_address: str | None = None,
    **options: Any,
) -> Index:
    """Build an index over a collection.

    ``vectors``: (N, d) numbers, stored as float32; NaN/inf are rejected.
    ``attributes``: a pyarrow Table, pandas DataFrame or dict of N-row columns
    (string, integer, float, bool, date, timestamp, list<string>), or None.
    ``ids``: N unique integers or strings; default: row positions 0..N-1.
    ``metric``: ``"l2"``, ``"ip"`` or ``"cosine"`` (see :mod:`hqi.collection`).
    ``options``: see :class:`hqi.BuildOptions`; chiefly ``workload``, sample
    filters to learn the partitioning from (without it: one partition, a
    plain IVF index). ``on_step(name)`` is called as build steps start.
    ``backend="ray"`` trains the partitions' lists as parallel Ray tasks (on
    the cluster at ``ray_address``, or a local Ray); the index is the same.
    """
    opts = BuildOptions.from_kwargs(**options)
    if backend not in ("local", "ray"):
        raise InvalidInputError(f"backend must be 'local' or 'ray', got {backend!r}")
    train = None
    if backend == "ray":
        from hqi.distributed import ray_train_leaves, require_ray

        require_ray()
        train = ray_train_leaves(ray_address)
    m = Metric.parse(metric)
    x = coerce_vectors(vectors)
    if x.shape[0] == 0:
        raise InvalidInputError("cannot build an index over zero vectors")
    if m is Metric.COSINE:
        x = normalize_rows(x, what="vectors")
    table = coerce_table(attributes, x.shape[0])
    ids = coerce_ids(ids, x.shape[0])
    store = ColumnStore(table)
    from hqi.execution.options import available_cores

    with limit_threads(opts.threads or available_cores()):
        part = build_partitioning(
            x, store, FilterParser(store.schema), opts, on_step=on_step, train=train
        )
    order = part.order
    stored_ids = ids[order] if isinstance(ids, np.ndarray) else ids.take(pa.array(order))
    return Index(
        np.ascontiguousarray(x[order]),
        stored_ids,
        table.take(pa.array(order)),
        m,
        part,
        build_stats=part.stats,
    )


def _partitioning(stored: storage.StoredIndex, parser: FilterParser) -> Partitioning:
    """The saved layout, or (indexes saved without one) one partition with one list."""
    extra = stored.extra
    if "part_bounds" not in extra:
        n = stored.vectors.shape[0]
        return Partitioning(
            tree=QdTree.single(),
            order=np.arange(n, dtype=np.int64),
            part_bounds=np.array([0, n], dtype=np.int64),
            list_bounds=np.array([0, n], dtype=np.int64),
            part_lists=np.array([0, 1], dtype=np.int64),
            centroids=np.asarray(stored.vectors).mean(axis=0, keepdims=True).astype(np.float32),
        )
    coarse = extra.get("coarse_centroids")
    tree = QdTree.from_json(
        stored.meta.get("layout", []),
        parser.parse,
        None if coarse is None else CoarseCentroids(np.asarray(coarse)),
    )
    return Partitioning(
        tree=tree,
        order=np.asarray(extra["order"]),
        part_bounds=np.asarray(extra["part_bounds"]),
        list_bounds=np.asarray(extra["list_bounds"]),
        part_lists=np.asarray(extra["part_lists"]),
        centroids=np.asarray(extra["centroids"]),
        list_size=stored.meta.get("list_size"),
        changes=Changes.from_json(stored.meta.get("changes")),
    )


def open(path: str | Path, *, verify: bool = True) -> Index:
    """Open a saved index. ``verify`` checks every file's SHA-256 (reads it all)."""
    stored = storage.load(path, verify=verify)
    parser = FilterParser(ColumnStore(stored.attributes).schema)
    return Index(
        stored.vectors,
        stored.ids,
        stored.attributes,
        Metric.parse(stored.metric),
        _partitioning(stored, parser),
        path=Path(path),
    )
