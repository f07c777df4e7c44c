"""The one result type every search path returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

__all__ = ["Result"]


@dataclass(frozen=True)
class Result:
    """Answers to a batch of Q hybrid queries, k per query.

    ``ids``: (Q, k) int64. The user's integer ids; when the index was built
    without ids these are row positions; when its ids are strings these are
    row positions and ``keys`` holds the string ids. ``-1`` pads a row when
    fewer than k entities satisfy the query's filter.

    ``distances``: (Q, k) float32, ascending per row, ``+inf`` where padded.
    See :mod:`hqi.collection` for what a distance is under each metric.

    ``keys``: (Q, k) object array of string ids (``None`` where padded) for an
    index with string ids, else ``None``.

    ``stats``: what the search measured (``queries``, ``seconds``,
    ``groups`` = distinct filters, ``rows_scanned``).
    """

    ids: np.ndarray
    distances: np.ndarray
    keys: np.ndarray | None = None
    stats: dict[str, float] = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def k(self) -> int:
        return int(self.ids.shape[1])

    def to_arrow(self, query_ids: pa.Array | None = None) -> pa.Table:
        """Long format: one row per (query, neighbour), padding dropped.

        Columns ``query`` (the query's position in the batch, or
        ``query_ids[position]`` when given), ``rank`` (0-based), ``id`` (int64
        or string, the user's ids) and ``distance`` (float32).
        """
        valid = self.ids >= 0
        qpos, rank = np.nonzero(valid)
        ids: pa.Array
        if self.keys is not None:
            ids = pa.array(self.keys[valid].tolist(), pa.string())
        else:
            ids = pa.array(self.ids[valid], pa.int64())
        query: pa.Array = pa.array(qpos.astype(np.int64))
        if query_ids is not None:
            query = pa.array(query_ids).take(query)
        return pa.table(
            {
                "query": query,
                "rank": pa.array(rank.astype(np.int32)),
                "id": ids,
                "distance": pa.array(self.distances[valid], pa.float32()),
            }
        )
