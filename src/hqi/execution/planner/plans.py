"""The plan as data: :class:`FilterPlan` per distinct filter and the batch's
:class:`BatchPlan` (probes as arrays), which the executor runs and
``Index.explain`` prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise
from typing import Literal

import numpy as np

from hqi._arrays import isin_sorted, unique
from hqi.query import Predicate
from hqi.query.compiled import ProgramTable

__all__ = ["BatchPlan", "FilterPlan", "Strategy", "filter_queries"]

Strategy = Literal["scan", "prefilter", "empty"]


def filter_queries(query_filter: np.ndarray, num_filters: int) -> list[np.ndarray]:
    """Each filter's queries (positions in the batch, ascending), given each query's
    filter: one sort of the batch instead of a pass over it per filter."""
    order = np.argsort(query_filter, kind="stable")
    bounds = np.searchsorted(query_filter[order], np.arange(num_filters + 1)).tolist()
    return [order[a:b] for a, b in pairwise(bounds)]


@dataclass
class FilterPlan:
    """How one distinct filter is answered (shared by all its queries).

    ``masks`` holds, for each routed partition where the filter is partial,
    the packed bits (``np.packbits``) of its mask over that partition's rows;
    :meth:`rows` unpacks any row range of it. An estimated filter has
    ``list_masks`` instead: packed bits over the rows of each list its
    queries probe in its partial partitions (list id -> bits from the list's
    first row). A selective filter that is prefiltered keeps its qualifying
    rows (``row_ids``) and no masks.
    """

    pred: Predicate | None
    strategy: Strategy
    parts: np.ndarray  # routed partitions (ids)
    masks: dict[int, np.ndarray]  # partial partition -> packed mask bits
    qualifying: int
    scan_work: float  # estimated distance computations per query if scanned
    counts: np.ndarray  # qualifying rows in each routed partition
    estimated: bool = False  # counts and qualifying estimated from the row sample
    # The partitions where it is partial, when ``masks`` does not hold them
    # (estimated filters: ``list_masks``; selective prefilters: ``row_ids``).
    partial: np.ndarray | None = None
    list_masks: dict[int, np.ndarray] = field(default_factory=dict)  # estimated: probed lists
    row_ids: np.ndarray | None = None  # selective prefilter: its qualifying rows, ascending
    # Tested by the executor (BatchPlan.programs), not by masks: an estimated
    # filter, or a selective one counted on its candidate rows and scanned.
    program: int = -1

    @cached_property
    def partial_parts(self) -> np.ndarray:
        """The routed partitions where the filter is partial (int64): ``partial``,
        or those ``masks`` holds."""
        if self.partial is not None:
            return self.partial.astype(np.int64, copy=False)
        return np.fromiter(self.masks, dtype=np.int64, count=len(self.masks))

    @property
    def num_covered(self) -> int:
        """Routed partitions where the filter needs no row mask."""
        return int(self.parts.size - self.partial_parts.size)

    def rows(self, p: int, start: int, stop: int) -> np.ndarray | None:
        """Mask (bool) of rows ``[start, stop)`` of partition ``p`` (offsets within
        it), or None when the filter holds on every row there."""
        bits = self.masks.get(p)
        if bits is None:
            if self.partial is not None and p in self.partial:
                raise ValueError(
                    f"partition {p}: this filter keeps no partition masks (an estimated "
                    "filter has list_masks, a selective prefilter row_ids)"
                )
            return None
        b0 = start // 8
        unpacked = np.unpackbits(bits[b0 : (stop + 7) // 8])
        return unpacked[start - 8 * b0 : stop - 8 * b0].view(bool)


@dataclass
class BatchPlan:
    """Everything the executor does, as arrays.

    Probes are (query, cell) pairs; a cell is a list (ids ``0..T-1``) or a
    whole partition (``T + p``), a contiguous row range either way.
    """

    query_filter: np.ndarray  # (Q,) index into filters
    filters: list[FilterPlan]
    probe_query: np.ndarray
    probe_cell: np.ndarray
    cell_bounds: np.ndarray  # (T + P, 2) row range of each cell
    cell_part: np.ndarray  # (T + P,) partition of each cell
    nprobe: int | None
    stats: dict[str, float] = field(default_factory=dict)
    programs: ProgramTable | None = None  # the filters' programs (FilterPlan.program)
    # Exact plans: (filters, lists) whether a filter may hold on some row of a list
    # (the lists' zone maps); the executor skips the others inside a partition.
    list_may: np.ndarray | None = None

    def distances(self) -> int:
        """Distance computations the whole plan performs."""
        if self.nprobe is None and self.list_may is not None:
            return self._exact_distances()
        return int(self.rows_per_query().sum())

    def _exact_distances(self) -> int:
        """:meth:`distances` of an exact plan, by filter: each query of a scanned
        filter probes every partition its filter is routed to, whole, less the
        lists ``list_may`` skips (:func:`~.planning.plan_batch`), and its
        ``list_may`` row holds no list outside them, so a query scans that
        row's lists. The same count as :meth:`rows_per_query` without a pass
        over the probes (1M exact plan: 22 -> 3 ms, on the search's path)."""
        assert self.list_may is not None
        num_lists = self.num_lists
        sizes = self.cell_bounds[:num_lists, 1] - self.cell_bounds[:num_lists, 0]
        scanned = self.list_may @ sizes
        per_query = np.array(
            [
                scanned[i] if f.strategy == "scan" else f.qualifying * (f.strategy == "prefilter")
                for i, f in enumerate(self.filters)
            ],
            dtype=np.int64,
        )
        return int(per_query @ np.bincount(self.query_filter, minlength=len(self.filters)))

    @property
    def num_lists(self) -> int:
        """Cells ``0..num_lists-1`` are lists; the rest are whole partitions."""
        return int(self.cell_part.size - (self.cell_part[-1] + 1))

    def probe_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows and lists each probe scans: a list cell's own; a partition cell's
        lists, less those its filter's ``list_may`` skips."""
        num_lists = self.num_lists
        ranges = self.cell_bounds[self.probe_cell]
        rows = ranges[:, 1] - ranges[:, 0]
        lists = np.ones(self.probe_cell.size, dtype=np.int64)
        whole = self.probe_cell >= num_lists
        if not whole.any():
            return rows, lists
        list_part = self.cell_part[:num_lists]
        p = self.cell_part[self.probe_cell[whole]]
        if self.list_may is None:  # the whole partition: its range and all its lists
            lists[whole] = np.bincount(list_part, minlength=self.cell_part.size - num_lists)[p]
            return rows, lists
        # (filters, partitions): rows and lists of the lists scanned in each
        sizes = self.cell_bounds[:num_lists, 1] - self.cell_bounds[:num_lists, 0]
        onehot = np.zeros((num_lists, self.cell_part.size - num_lists))
        onehot[np.arange(num_lists), list_part] = 1.0
        f = self.query_filter[self.probe_query[whole]]
        rows[whole] = np.rint((self.list_may * sizes) @ onehot).astype(np.int64)[f, p]
        lists[whole] = np.rint(self.list_may @ onehot).astype(np.int64)[f, p]
        return rows, lists

    def reaches(self, rows: np.ndarray) -> np.ndarray:
        """Whether each query's probes reach the rows ``rows[i]`` (positions,
        ``-1`` for none), as a bool array of the same shape. A prefiltered
        query reaches every row: it gathers all its filter's rows. The plan
        answers a query with the nearest qualifying rows it reaches, so
        reaching a query's exact answers is having found them
        (:func:`hqi.evaluation.recall_of_reached`)."""
        rows = np.asarray(rows, dtype=np.int64)
        nq = self.query_filter.size
        if rows.ndim != 2 or rows.shape[0] != nq:
            raise ValueError(f"rows must be ({nq}, m), got shape {rows.shape}")
        num_lists, num_cells = self.num_lists, self.cell_part.size
        valid = rows >= 0
        at = np.where(valid, rows, 0)
        # Lists are contiguous and ascending: a row's list is the last one starting
        # at or before it (empty lists share their start with the next one).
        lists = np.searchsorted(self.cell_bounds[:num_lists, 0], at, side="right") - 1
        queries = np.arange(nq, dtype=np.int64)[:, None]
        probed = unique(self.probe_query * num_cells + self.probe_cell)
        hit = isin_sorted(queries * num_cells + lists, probed)
        whole = num_lists + self.cell_part[lists]  # the list's partition, probed whole
        hit |= isin_sorted(queries * num_cells + whole, probed)
        prefiltered = np.array([f.strategy == "prefilter" for f in self.filters], dtype=bool)
        hit |= prefiltered[self.query_filter][:, None]
        return hit & valid

    def rows_per_query(self) -> np.ndarray:
        """Distance computations each query will perform."""
        nq = self.query_filter.size
        rows = self.probe_rows()[0]
        out = np.bincount(self.probe_query, weights=rows, minlength=nq).astype(np.int64)
        # A prefiltered query computes its filter's qualifying rows (it has no probes).
        gathered = np.array(
            [f.qualifying if f.strategy == "prefilter" else -1 for f in self.filters],
            dtype=np.int64,
        )[self.query_filter]
        return np.where(gathered >= 0, gathered, out)
