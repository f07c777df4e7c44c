"""Plan a batch: route every filter, choose a strategy, list the probes.

For each distinct filter of the batch (evaluated once, shared by its queries):

1. *Route* it with the partitions' zone maps: partitions where it cannot be
   TRUE are skipped; where it is TRUE for every row it is *covered* (no row
   filter); elsewhere it is *partial*, and the filter is evaluated on that
   partition's rows, giving a mask (and the exact count of qualifying rows,
   which also drops partitions the zone maps could not rule out). Masks are
   slices of one whole-store mask per filter, built from atom masks shared
   across the batch (:class:`~hqi.query.evaluate.BatchEvaluator`).
2. *Choose a strategy* by estimated cost, in distance computations:
   ``scan`` probes lists (all of them on the exact path) of the routed
   partitions, reading rows in place; ``prefilter`` gathers just the
   qualifying rows and scans them all, exactly. A gathered row costs about
   ``prefilter_ratio`` times a row scanned in place inside a large matrix
   product, so prefilter wins when ``qualifying * prefilter_ratio <= scan work``
   (the rule of MicroNN and ACORN's cost models). ``bench/calibrate.py``
   measures the kernel-level ratio on this machine: about 10 when one query
   uses the gathered rows, 3 for four, 1 for hundreds. End to end (200k rows,
   5,000 queries), ratios from 5 to 40 perform within noise of each other and
   20, the default, was best for exact search.
3. *Probe*: exact: every routed partition, whole. Otherwise *global
   probing*: each query ranks all lists of its routed partitions by centroid
   distance (one GEMM of the batch against all centroids) and probes the
   nearest ``nprobe`` (FAISS's meaning of nprobe), or more, in the same
   order, until the lists hold an expected ``expected_hits * k`` qualifying
   rows (a list's expected qualifying rows: its size times its partition's
   qualifying fraction). So a selective filter reaches far enough to find its
   neighbours, and a partition far from the query costs nothing.

The plan is data (:class:`BatchPlan`); :mod:`.batch` executes it and
``Index.explain`` prints it, so what is explained is what runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from hqi.collection import Metric
from hqi.index.partitioned import Partitioning
from hqi.layout.zonemap import ZoneMaps
from hqi.query import ColumnStore, Predicate
from hqi.query.columns import RangeStore
from hqi.query.evaluate import BatchEvaluator

__all__ = ["BatchPlan", "FilterPlan", "plan_batch"]

Strategy = Literal["scan", "prefilter", "empty"]


@dataclass
class FilterPlan:
    """How one distinct filter is answered (shared by all its queries).

    ``masks`` holds, for each routed partition where the filter is partial,
    the packed bits (``np.packbits``) of its mask over that partition's rows;
    :meth:`rows` unpacks any row range of it.
    """

    pred: Predicate | None
    strategy: Strategy
    parts: np.ndarray  # routed partitions (ids)
    masks: dict[int, np.ndarray]  # partial partition -> packed mask bits
    qualifying: int
    scan_work: float  # estimated distance computations per query if scanned
    counts: np.ndarray  # qualifying rows in each routed partition

    def rows(self, p: int, start: int, stop: int) -> np.ndarray | None:
        """Mask (bool) of rows ``[start, stop)`` of partition ``p`` (offsets within
        it), or None when the filter holds on every row there."""
        bits = self.masks.get(p)
        if bits is None:
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

    def rows_per_query(self) -> np.ndarray:
        """Distance computations each query will perform."""
        nq = self.query_filter.size
        ranges = self.cell_bounds[self.probe_cell]
        out = np.bincount(
            self.probe_query, weights=(ranges[:, 1] - ranges[:, 0]), minlength=nq
        ).astype(np.int64)
        for i, f in enumerate(self.filters):
            if f.strategy == "prefilter":
                out[self.query_filter == i] = f.qualifying
        return out


RANGE_BUDGET = 4  # row subsets cached while planning, in multiples of the store's rows


ATOMS_PER_RANGE = 8  # atom masks cached per row subset (filters of a template share atoms)


class _RangeCache:
    """Evaluators over row subsets (:class:`RangeStore`) by their partitions, up to
    ``budget`` rows in all. Each caches its atoms' masks, so filters routed to
    the same partitions share both the gathered columns and atoms such as
    ``type = 'song'``."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.stores: dict[bytes, BatchEvaluator] = {}

    def get(
        self, parent: ColumnStore, parts: np.ndarray, starts: np.ndarray, stops: np.ndarray
    ) -> BatchEvaluator:
        key = parts.tobytes()
        evaluator = self.stores.get(key)
        if evaluator is None:
            store = RangeStore(parent, starts, stops)
            evaluator = BatchEvaluator(store, max_bytes=ATOMS_PER_RANGE * max(store.num_rows, 1))
            if store.num_rows <= self.budget:
                self.stores[key] = evaluator
                self.budget -= store.num_rows
        return evaluator


def _route(
    pred: Predicate | None,
    part: Partitioning,
    zones: ZoneMaps,
    evaluator: BatchEvaluator,
    ranges: _RangeCache,
) -> tuple[np.ndarray, dict[int, np.ndarray], np.ndarray]:
    """(routed partitions, packed masks of the partial ones, qualifying rows per routed one).

    The whole-store mask is transient: only the partial partitions' bits are
    kept, packed, so a batch of thousands of filters holds little memory.
    ``ranges`` caches the row subsets by partial partitions: filters of one
    template usually route to the same partitions and share the gathered
    columns.
    """
    flags = zones.flags(pred)
    routed = np.flatnonzero(flags.may_true)
    covered = flags.all_true[routed]
    sizes = zones.sizes
    counts = sizes[routed].copy()
    if covered.all():
        return routed.astype(np.int64), {}, counts
    partial = np.flatnonzero(~covered)
    partial_parts = routed[partial]
    starts = part.part_bounds[partial_parts]
    stops = part.part_bounds[partial_parts + 1]
    if 2 * int((stops - starts).sum()) < evaluator.num_rows:
        # Few rows need a mask: evaluate on just those rows, concatenated.
        mask = ranges.get(evaluator.store, partial_parts, starts, stops).mask(pred)
        lengths = stops - starts
        stops = np.cumsum(lengths)
        starts = stops - lengths
    else:
        mask = evaluator.mask(pred)
    masks: dict[int, np.ndarray] = {}
    # One pass per partial partition: count (a popcount) and pack its mask.
    bounds = zip(partial_parts.tolist(), starts.tolist(), stops.tolist(), strict=True)
    for j, (p, a, b) in enumerate(bounds):
        piece = mask[a:b]
        c = int(np.count_nonzero(piece))
        counts[partial[j]] = c
        if 0 < c < piece.size:
            masks[p] = np.packbits(piece)
    keep = counts > 0
    return routed[keep].astype(np.int64), masks, counts[keep]


def _centroid_distances(q: np.ndarray, cents: np.ndarray, metric: Metric) -> np.ndarray:
    dots = q @ cents.T
    if metric is Metric.L2:
        return np.einsum("ij,ij->i", cents, cents)[None, :] - 2 * dots
    return -dots


def plan_batch(
    queries: np.ndarray,
    query_filter: np.ndarray,
    preds: list[Predicate | None],
    *,
    part: Partitioning,
    zones: ZoneMaps,
    store: ColumnStore,
    metric: Metric,
    nprobe: int | None,
    prefilter_ratio: float,
    k: int,
    expected_hits: float,
) -> BatchPlan:
    """Plan the batch (see the module docstring); ``nprobe=None`` is exact."""
    nlists = np.diff(part.part_lists)
    sizes = zones.sizes
    list_sizes = np.diff(part.list_bounds)
    list_part = np.repeat(np.arange(part.num_parts), nlists)
    filters: list[FilterPlan] = []
    evaluator = BatchEvaluator(store, max_bytes=16 << 20)
    part_list_ids = [
        np.arange(part.part_lists[p], part.part_lists[p + 1]) for p in range(part.num_parts)
    ]
    ranges = _RangeCache(budget=RANGE_BUDGET * store.num_rows)  # bounds gathered columns
    for pred in preds:
        parts, masks, counts = _route(pred, part, zones, evaluator, ranges)
        qualifying = int(counts.sum())
        routed_rows = float(sizes[parts].sum())
        if nprobe is None:
            scan_work = routed_rows
        else:  # expected rows probed: nprobe average lists, or more for sparse filters
            lists_here = int(nlists[parts].sum())
            avg_list = routed_rows / max(lists_here, 1)
            need = expected_hits * k * routed_rows / max(qualifying, 1)
            scan_work = min(routed_rows, max(nprobe * avg_list, need))
        strategy: Strategy
        if qualifying == 0:
            strategy = "empty"
        elif qualifying * prefilter_ratio <= scan_work:
            strategy = "prefilter"
        else:
            strategy = "scan"
        filters.append(FilterPlan(pred, strategy, parts, masks, qualifying, scan_work, counts))

    t = part.num_lists
    pq_, pc_ = [], []
    scanning = [i for i, f in enumerate(filters) if f.strategy == "scan"]
    if nprobe is None:  # exact: every routed partition, whole
        for i in scanning:
            qids = np.flatnonzero(query_filter == i)
            parts = filters[i].parts
            pq_.append(np.repeat(qids, parts.size))
            pc_.append(np.tile(t + parts, qids.size))
    elif scanning:
        # Global probing: each query's nearest lists among its routed partitions,
        # nprobe of them, or more until they hold expected_hits * k qualifying rows.
        cent_dist = _centroid_distances(queries, part.centroids, metric)
        for i in scanning:
            f = filters[i]
            qids = np.flatnonzero(query_filter == i)
            cand = np.concatenate([part_list_ids[p] for p in f.parts])
            density = np.zeros(part.num_parts)
            density[f.parts] = f.counts / sizes[f.parts]
            expected = list_sizes[cand] * density[list_part[cand]]
            dist = cent_dist[np.ix_(qids, cand)]
            order = np.argsort(dist, axis=1, kind="stable")
            cum = np.cumsum(expected[order], axis=1)
            enough = (cum >= expected_hits * k).argmax(axis=1) + 1
            enough[cum[:, -1] < expected_hits * k] = cand.size
            count = np.minimum(np.maximum(enough, nprobe), cand.size)
            take = np.arange(cand.size)[None, :] < count[:, None]
            pq_.append(np.broadcast_to(qids[:, None], order.shape)[take])
            pc_.append(cand[order][take].astype(np.int64))
    list_ranges = np.stack([part.list_bounds[:-1], part.list_bounds[1:]], axis=1)
    part_ranges = np.stack([part.part_bounds[:-1], part.part_bounds[1:]], axis=1)
    return BatchPlan(
        query_filter=query_filter,
        filters=filters,
        probe_query=np.concatenate(pq_) if pq_ else np.zeros(0, dtype=np.int64),
        probe_cell=np.concatenate(pc_) if pc_ else np.zeros(0, dtype=np.int64),
        cell_bounds=np.concatenate([list_ranges, part_ranges]),
        cell_part=np.concatenate([list_part, np.arange(part.num_parts)]),
        nprobe=nprobe,
    )
