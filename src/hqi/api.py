"""The public entry points: :func:`build`, :func:`open` and :class:`Index`."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from threadpoolctl import threadpool_limits

from hqi.collection import (
    Metric,
    coerce_ids,
    coerce_table,
    coerce_vectors,
    normalize_rows,
)
from hqi.errors import InvalidInputError
from hqi.execution.exact import Group, exact_search
from hqi.execution.options import SearchOptions
from hqi.execution.result import Result
from hqi.query import ColumnStore, FilterParser, Predicate, evaluate
from hqi.storage import format as storage

__all__ = ["Filters", "Index", "build", "open"]

Filters = str | None | Sequence[str | None]
"""One filter for the whole batch, or one per query (``None`` = no filter)."""


class Index:
    """A searchable collection: vectors, ids and attributes.

    Make one with :func:`hqi.build` or :func:`hqi.open`. Searching never
    mutates an index, so one index may serve many threads.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        ids: np.ndarray | pa.Array,
        attributes: pa.Table,
        metric: Metric,
        *,
        path: Path | None = None,
    ) -> None:
        self._vectors = vectors
        self._ids = ids
        self._store = ColumnStore(attributes)
        self._metric = metric
        self._path = path
        self._sq_norms = np.einsum("ij,ij->i", vectors, vectors) if metric is Metric.L2 else None
        self._parser = FilterParser(self._store.schema)

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
        return np.asarray(self._ids.to_pylist(), dtype=object)

    @property
    def path(self) -> Path | None:
        """Where the index was saved or opened from, if anywhere."""
        return self._path

    def __len__(self) -> int:
        return int(self._vectors.shape[0])

    def __repr__(self) -> str:
        cols = ", ".join(f"{k}: {v}" for k, v in self.schema.items())
        return f"<hqi.Index {len(self)} x {self.dim} {self.metric} [{cols}]>"

    def info(self) -> dict[str, Any]:
        """A summary: count, dim, metric, id type, schema, path."""
        return {
            "count": len(self),
            "dim": self.dim,
            "metric": self.metric,
            "id_type": "int64" if isinstance(self._ids, np.ndarray) else "string",
            "schema": self.schema,
            "path": str(self._path) if self._path else None,
        }

    # -- filters --------------------------------------------------------------
    def parse(self, text: str | None) -> Predicate | None:
        """Parse and check a filter against this index's schema (cached)."""
        return self._parser.parse(text)

    def mask(self, filter: str | None) -> np.ndarray:
        """Boolean mask (N,) of the rows that satisfy ``filter``."""
        return evaluate(self.parse(filter), self._store)

    def where(self, filter: str | None) -> np.ndarray:
        """The ids of the entities that satisfy ``filter``, in row order."""
        rows = np.flatnonzero(self.mask(filter))
        return self.ids[rows]

    def count(self, filter: str | None) -> int:
        """How many entities satisfy ``filter``."""
        return int(np.count_nonzero(self.mask(filter)))

    # -- search ---------------------------------------------------------------
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
        Q filters. ``options``: see :class:`hqi.execution.options.SearchOptions`
        (``exact``, ``threads``, ``block_rows``, ``query_block``).
        ``on_progress(n)`` is called as each batch of n queries completes.
        """
        opts = SearchOptions.from_kwargs(k=k, **options)
        q = coerce_vectors(queries, what="queries", dim=self.dim, allow_1d=True)
        if self._metric is Metric.COSINE:
            q = normalize_rows(q, what="queries")
        return self._search(q, filters, opts, on_progress=on_progress)

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

    def positions(self, entity_ids: Any) -> np.ndarray:
        """Row positions (int64) of the given ids; unknown ids are an error."""
        values = (
            [entity_ids] if isinstance(entity_ids, str | int | np.integer) else list(entity_ids)
        )
        if isinstance(self._ids, np.ndarray):
            if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
                raise InvalidInputError("this index has integer ids; entity ids must be integers")
            order = np.argsort(self._ids, kind="stable")
            wanted = np.asarray(values, dtype=np.int64)
            at = np.clip(np.searchsorted(self._ids, wanted, sorter=order), 0, len(order) - 1)
            pos = order[at]
            missing = self._ids[pos] != wanted
        else:
            if not all(isinstance(v, str) for v in values):
                raise InvalidInputError("this index has string ids; entity ids must be strings")
            lookup = {v: i for i, v in enumerate(self._ids.to_pylist())}
            pos = np.asarray([lookup.get(v, -1) for v in values], dtype=np.int64)
            missing = pos < 0
        if missing.any():
            raise InvalidInputError(
                f"unknown entity id {values[int(np.flatnonzero(missing)[0])]!r}"
            )
        return pos.astype(np.int64)

    def _group(self, filters: Filters, nq: int) -> list[Group]:
        if filters is None or isinstance(filters, str):
            texts: Sequence[str | None] = [filters] * nq
        elif isinstance(filters, Sequence | np.ndarray | pa.Array | pa.ChunkedArray):
            texts = (
                list(filters)
                if not isinstance(filters, pa.Array | pa.ChunkedArray)
                else (filters.to_pylist())
            )
            if len(texts) != nq:
                raise InvalidInputError(f"got {len(texts)} filters for {nq} queries")
        else:
            raise InvalidInputError(
                "filters must be a SQL string, None, or a sequence of them (one per query), "
                f"not {type(filters).__name__}"
            )
        by_pred: dict[Predicate | None, list[int]] = {}
        for i, text in enumerate(texts):
            by_pred.setdefault(self.parse(text), []).append(i)
        groups = []
        for pred, members in by_pred.items():
            rows = None if pred is None else np.flatnonzero(evaluate(pred, self._store))
            groups.append(Group(np.asarray(members, dtype=np.int64), rows))
        return groups

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
        groups = self._group(filters, q.shape[0])
        with threadpool_limits(limits=opts.num_threads, user_api="blas"):
            pos, dist, scanned = exact_search(
                self._vectors,
                self._sq_norms,
                q,
                groups,
                opts.k,
                self._metric,
                block_rows=opts.block_rows,
                query_block=opts.query_block,
                shared_scan=opts.shared_scan,
                on_progress=on_progress,
            )
        stats = {
            "queries": float(q.shape[0]),
            "seconds": time.perf_counter() - start,
            "groups": float(len(groups)),
            "rows_scanned": float(scanned),
        }
        if as_positions:
            return Result(pos, dist, None, stats)
        return self._result(pos, dist, stats)

    def _result(self, pos: np.ndarray, dist: np.ndarray, stats: dict[str, float]) -> Result:
        if isinstance(self._ids, np.ndarray):
            ids = np.where(pos >= 0, self._ids[np.maximum(pos, 0)], -1)
            return Result(ids.astype(np.int64), dist, None, stats)
        keys = np.asarray([*self._ids.to_pylist(), None], dtype=object)[pos]
        return Result(pos, dist, keys, stats)

    # -- persistence ----------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the index to directory ``path`` atomically; see :mod:`hqi.storage`."""
        stored = storage.StoredIndex(
            vectors=np.asarray(self._vectors),
            ids=self._ids,
            attributes=self._store.table,
            metric=self._metric.value,
            meta={"schema": self.schema},
        )
        self._path = storage.save(stored, path)
        return self._path


def build(
    vectors: Any,
    attributes: Any = None,
    ids: Any = None,
    metric: str = "l2",
    **options: Any,
) -> Index:
    """Build an index over a collection.

    ``vectors``: (N, d) numbers, stored as float32; NaN/inf are rejected.
    ``attributes``: a pyarrow Table, pandas DataFrame or dict of N-row columns
    (string, integer, float, bool, date, timestamp, list<string>), or None.
    ``ids``: N unique integers or strings; default: row positions 0..N-1.
    ``metric``: ``"l2"``, ``"ip"`` or ``"cosine"`` (see :mod:`hqi.collection`).
    """
    if options:
        name = next(iter(options))
        raise InvalidInputError(
            f"unknown build option {name!r}; this version takes vectors, attributes, ids, metric"
        )
    m = Metric.parse(metric)
    x = coerce_vectors(vectors)
    if x.shape[0] == 0:
        raise InvalidInputError("cannot build an index over zero vectors")
    if m is Metric.COSINE:
        x = normalize_rows(x, what="vectors")
    table = coerce_table(attributes, x.shape[0])
    return Index(x, coerce_ids(ids, x.shape[0]), table, m)


def open(path: str | Path, *, verify: bool = True) -> Index:
    """Open a saved index. ``verify`` checks every file's SHA-256 (reads it all)."""
    stored = storage.load(path, verify=verify)
    return Index(
        stored.vectors,
        stored.ids,
        stored.attributes,
        Metric.parse(stored.metric),
        path=Path(path),
    )
