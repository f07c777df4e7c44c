"""Plan a batch: route every filter, choose a strategy, list the probes.

For each distinct filter of the batch (evaluated once, shared by its queries):

1. *Route* it with the partitions' zone maps: partitions where it cannot be
   TRUE are skipped; where it is TRUE for every row it is *covered* (no row
   filter); elsewhere it is *partial*, and the filter is evaluated on that
   partition's rows, giving a mask (and the exact count of qualifying rows,
   which also drops partitions the zone maps could not rule out). Masks are
   slices of one whole-store mask per filter, built from atom masks shared
   across the batch (:class:`~hqi.query.evaluate.BatchEvaluator`). A
   selective filter (few candidate rows in a string column's inverted
   index) is evaluated on those rows only; its qualifying rows are counted
   per partition by binary search and, if it is prefiltered, kept for the
   gather (``FilterPlan.row_ids``) instead of masks.
2. *Choose a strategy* by estimated cost, in distance computations:
   ``scan`` probes lists of the routed partitions (on the exact path all
   those where the lists' zone maps say the filter may hold), reading rows
   in place; ``prefilter`` gathers just the
   qualifying rows and scans them all, exactly. For a filter of one query a
   gathered row costs about ``prefilter_ratio`` times a row scanned in place
   inside a large matrix product, so prefilter wins when
   ``qualifying * ratio <= scan work`` (the rule of MicroNN and ACORN's cost
   models). The gather is shared by the filter's queries and the distances
   are not, so on the exact path a filter of ``n`` queries uses
   ``ratio = 1 + (prefilter_ratio - 1) / n`` (:func:`gather_ratio`; 1M exact
   batch: rows scanned per query 194,712 -> 124,713, time -12%).
   ``bench/calibrate.py`` measures the kernel-level ratio on this machine:
   about 10 when one query uses the gathered rows, 3 for four, 1 for
   hundreds. In a whole search a scanned row is shared by the many queries
   of its cell; the default, 100, is from whole exact searches at 1M, 200k
   and on real data (see ``SearchOptions``).
3. *Probe*: exact: every routed partition, whole, less the lists where the
   lists' zone maps say the filter cannot hold (``BatchPlan.list_may``; the
   k-means lists follow the attributes the vectors correlate with). Otherwise *global
   probing*: each query ranks all lists of its routed partitions by centroid
   distance (one GEMM of the batch against all centroids) and probes the
   nearest ``nprobe`` (FAISS's meaning of nprobe), or more, in the same
   order, until the lists hold an expected ``expected_hits * k`` qualifying
   rows (a list's expected qualifying rows: its size times its partition's
   qualifying fraction), and at least every list within ``probe_ratio`` of
   the nearest one's distance (:func:`_ratio_bounds`: a query near the
   border of several lists probes them all, one deep inside a list only
   ``nprobe``). So a selective filter reaches far enough to find
   its neighbours, and a partition far from the query costs nothing.
   Filters routed to the same partitions rank their queries together, in
   one partial sort; sets of few queries are all ranked at once, over the
   union of their lists (those outside a query's partitions at ``+inf``).

*Estimated routing* (approximate search): evaluating a filter on all rows of
its partial partitions is most of a plan's cost (about 2 ns a row, hundreds
of thousands of rows per filter at N = 1M), yet its queries probe a few
lists. So the planner first evaluates the filter on a fixed row sample
(:class:`RowSample`, every 32nd row) and estimates its qualifying rows per
partition. When the estimate rests on enough sample hits and the filter will
clearly be scanned (not prefiltered), probing runs on the estimates and the
filter is then evaluated only on the lists its queries probe
(:func:`_mask_probed`); bits of lists nobody probes are never computed or
read. Those masks also drop the probes of lists where none of the filter's
rows qualify (they could only add +inf) and need no mask where all do.
Otherwise (selective filters, exact search) the filter is counted exactly
as in step 1. ``FilterPlan.estimated`` and ``explain`` say which. The
filters that compile to programs (below) are counted on the sample all at
once, before the per-filter pass, in one compiled loop over their partial
partitions' sample rows (:func:`_sample_hits`; 1M batch: 0.17 s -> 0.03 s),
and their estimates, costs and choices are computed as arrays over
(program, partition), so a program routed on its estimate costs the
per-filter loop only its :class:`FilterPlan` (1M, nprobe 6: the median
plan 4-14% faster in 5 of 6 alternating runs, the same plans).

*Compiled filters*: a filter that compiles to an interval program
(:mod:`hqi.query.compiled`: conjunctive normal form, every template of the
built-in workload; ``list_contains`` on a list column of at most 52 values
is a bit test) gets no masks at all.
The executor's compiled pass tests it on the rows under a query's k-th
distance only, a few hundred per query, where a mask costs every row the
query scans. On the exact path too, such a filter is routed on its estimate
when that says it will be scanned (approximate plans ask for a 2x margin:
"clearly"). The lists' own zone maps (``list_zones``) drop the probes of
lists where it cannot hold, as :func:`_mask_probed` does for masked filters:
all such filters' probed lists are tested in one compiled call
(:meth:`~hqi.layout.zonemap.ZoneMaps.program_flags`; 1M batch: 0.07 s of
per-filter zone maps -> under 0.01 s).

The plan is data (:class:`BatchPlan`); :mod:`.batch` executes it and
``Index.explain`` prints it, so what is explained is what runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise
from typing import Any, Literal

import numpy as np

from hqi._arrays import isin_sorted, unique
from hqi.collection import Metric
from hqi.execution.kernels import count_holding
from hqi.index.partitioned import Partitioning
from hqi.layout.zonemap import ZoneMaps
from hqi.query import ColumnStore, Predicate, evaluate
from hqi.query.columns import RangeStore
from hqi.query.compiled import AttributeMatrix, Program, ProgramTable, compile_filter
from hqi.query.evaluate import BatchEvaluator

__all__ = ["BatchPlan", "FilterPlan", "filter_queries", "plan_batch"]

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
        return int(self.rows_per_query().sum())

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


# Smaller stores evaluate a filter on all rows, with the whole store's atom masks
# (shared by every filter), instead of on its partial partitions' rows. Planning,
# same ids: FB15k-237 (14,541 rows) 0.073 -> 0.061 s at nprobe 3 and 0.070 ->
# 0.052 s exact; 200k 0.55 -> 0.52 s; at 500k and 1M the row subsets were
# 14% and 9% faster and stay.
RANGE_MIN_ROWS = 1 << 18
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


SAMPLE_STRIDE = 32  # one row in this many makes the planner's estimation sample
MIN_SAMPLE_HITS = 64  # fewer sample hits than this: count exactly, the estimate is too noisy
# Smaller stores are routed exactly: their sample is too small to reach MIN_SAMPLE_HITS
# for most filters, and counting on all rows is cheap (FB15k-237, 14,541 rows:
# planning 0.15 -> 0.11 s at nprobe 3 for 816 filters, same ids).
SAMPLE_MIN_ROWS = 65536


class RowSample:
    """Every ``stride``-th stored row, to estimate a filter's qualifying rows per
    partition from one evaluation over ``N / stride`` rows."""

    def __init__(self, store: ColumnStore, part_bounds: np.ndarray, stride: int = SAMPLE_STRIDE):
        positions = np.arange(0, store.num_rows, stride, dtype=np.int64)
        self.positions = positions
        # Sample rows of partition p: seg[p]:seg[p + 1] (program_hits).
        self.seg = np.searchsorted(positions, part_bounds).astype(np.int64)
        # The attribute matrix's sample rows, column by column (program_hits).
        self._attrs: tuple[np.ndarray, np.ndarray] | None = None
        sampled = ColumnStore(store.table.take(positions))
        self.evaluator = BatchEvaluator(sampled, max_bytes=64 * max(positions.size, 1))
        part = np.searchsorted(part_bounds, positions, side="right") - 1
        num_parts = part_bounds.size - 1
        per_part = np.bincount(part, minlength=num_parts)
        self.scale = np.diff(part_bounds) / np.maximum(per_part, 1)
        # Sample rows are in partition order: each non-empty partition's hits are
        # one segment sum (np.add.reduceat; 10 us at any selectivity, where a
        # bincount of the hits took 11-75 us).
        self.nonempty = np.flatnonzero(per_part > 0)
        self.first = np.searchsorted(part, self.nonempty)

    def estimate(self, pred: Predicate | None, parts: np.ndarray) -> tuple[np.ndarray, int]:
        """(estimated qualifying rows of each of ``parts``, sample hits in them)."""
        hits = np.zeros(self.scale.size, dtype=np.int64)
        if self.first.size:
            hits[self.nonempty] = np.add.reduceat(
                self.evaluator.mask(pred), self.first, dtype=np.int64
            )
        hits = hits[parts]
        return hits * self.scale[parts], int(hits.sum())

    def program_hits(
        self, table: ProgramTable, pair_prog: np.ndarray, pair_part: np.ndarray
    ) -> np.ndarray:
        """Sample hits of program ``pair_prog[j]`` of ``table`` in partition
        ``pair_part[j]``, for every pair ``j``: what :meth:`estimate` counts,
        for many filters in one compiled pass (a program selects the rows its
        filter does) and on the given partitions' sample rows only."""
        if self._attrs is None or self._attrs[0] is not table.attrs:
            self._attrs = (table.attrs, np.ascontiguousarray(table.attrs[self.positions].T))
        out = np.empty(pair_prog.size, dtype=np.int64)
        count_holding(
            self._attrs[1],
            self.seg,
            pair_prog.astype(np.int64),
            pair_part.astype(np.int64),
            table.bounds,
            table.col,
            table.group,
            table.lo,
            table.hi,
            out,
        )
        return out


def _sample_hits(
    may: np.ndarray, whole: np.ndarray, sample: RowSample, table: ProgramTable
) -> np.ndarray:
    """Sample hits (programs, partitions) of every program of ``table`` in every
    partition it is routed to (``may``: its zone flags; ``whole``: covered
    there), as :meth:`RowSample.estimate` counts them; 0 where not routed. The
    partial partitions are counted in one compiled pass
    (:meth:`RowSample.program_hits`); a covered partition's sample rows all
    hit. Measured at 1M (about 4,160 programs): 60,525 partial partitions,
    30M (program, row) tests, 0.02 s, where evaluating each filter on the
    whole sample took 0.17 s."""
    prog, parts = np.nonzero(may & ~whole)
    hits = np.where(may & whole, np.diff(sample.seg)[None, :], 0).astype(np.int64)
    hits[prog, parts] = sample.program_hits(table, prog, parts)
    return hits


# A filter's exact route: (routed partitions, packed masks of the partial ones
# or None, qualifying rows per routed one, the qualifying rows or None).
Route = tuple[np.ndarray, dict[int, np.ndarray] | None, np.ndarray, np.ndarray | None]


def _route(
    pred: Predicate | None,
    routed: np.ndarray,
    covered: np.ndarray,
    part: Partitioning,
    sizes: np.ndarray,
    evaluator: BatchEvaluator,
    ranges: _RangeCache,
) -> Route:
    """(routed partitions, packed masks of the partial ones, qualifying rows per
    routed one, the qualifying rows themselves), given the partitions the zone
    maps route to and which of them are covered.

    A selective filter (:meth:`BatchEvaluator.sparse_rows`) is evaluated on its
    candidate rows only and returns its qualifying rows instead of masks
    (None): :func:`_masks_of_rows` makes them if it is scanned. Otherwise the
    rows are None and the whole-store mask is transient: only the partial
    partitions' bits are kept, packed, so a batch of thousands of filters
    holds little memory. In stores of :data:`RANGE_MIN_ROWS` rows or more,
    a filter whose partial partitions hold under half the rows is evaluated
    on those rows only; ``ranges`` caches the row subsets by partial
    partitions: filters of one template usually route to the same
    partitions and share the gathered columns.
    """
    counts = sizes[routed].copy()
    if covered.all():
        return routed, {}, counts, None
    partial = np.flatnonzero(~covered)
    partial_parts = routed[partial]
    starts = part.part_bounds[partial_parts]
    stops = part.part_bounds[partial_parts + 1]
    rows = None if pred is None else evaluator.sparse_rows(pred)
    if rows is not None:
        counts[partial] = np.searchsorted(rows, stops) - np.searchsorted(rows, starts)
        keep = counts > 0
        return routed[keep], None, counts[keep], rows
    n = evaluator.num_rows
    if n >= RANGE_MIN_ROWS and 2 * int((stops - starts).sum()) < n:
        # A large store, and few rows need a mask: evaluate on just those rows,
        # concatenated (RANGE_MIN_ROWS).
        mask = ranges.get(evaluator.store, partial_parts, starts, stops).mask(pred)
        lengths = stops - starts
        stops = np.cumsum(lengths)
        starts = stops - lengths
    else:
        mask = evaluator.mask(pred, sparse=False)
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
    return routed[keep], masks, counts[keep], None


def _masks_of_rows(
    rows: np.ndarray, parts: np.ndarray, counts: np.ndarray, bounds: np.ndarray
) -> dict[int, np.ndarray]:
    """Packed masks of the partitions ``parts`` where the qualifying ``rows``
    (ascending) are some but not all of their rows."""
    masks: dict[int, np.ndarray] = {}
    sizes = bounds[parts + 1] - bounds[parts]
    for p in parts[(counts > 0) & (counts < sizes)].tolist():
        a, b = int(bounds[p]), int(bounds[p + 1])
        inside = rows[np.searchsorted(rows, a) : np.searchsorted(rows, b)]
        piece = np.zeros(b - a, dtype=bool)
        piece[inside - a] = True
        masks[p] = np.packbits(piece)
    return masks


def _mask_probed(
    f: FilterPlan, cells: np.ndarray, part: Partitioning, list_part: np.ndarray, store: ColumnStore
) -> np.ndarray:
    """Evaluate estimated filter ``f`` on the probed ``cells`` (lists) of its partial
    partitions only and keep each list's packed mask (``f.list_masks``); a list
    where every row qualifies needs none. Returns the lists where no row
    qualifies: their probes can be dropped (measured at 1M, nprobe 6: 13% of
    the probed rows)."""
    assert f.partial is not None
    is_partial = np.zeros(part.num_parts, dtype=bool)
    is_partial[f.partial] = True
    cells = cells[is_partial[list_part[cells]]]
    lengths = part.list_bounds[cells + 1] - part.list_bounds[cells]
    cells, lengths = cells[lengths > 0], lengths[lengths > 0]
    if cells.size == 0:
        return cells
    starts = part.list_bounds[cells]
    mask = evaluate(f.pred, RangeStore(store, starts, starts + lengths))
    offsets = np.cumsum(lengths) - lengths
    counts = np.add.reduceat(mask, offsets, dtype=np.int64)
    bounds = zip(offsets.tolist(), lengths.tolist(), strict=True)
    for cell, (offset, n), c in zip(cells.tolist(), bounds, counts.tolist(), strict=True):
        if 0 < c < n:
            f.list_masks[cell] = np.packbits(mask[offset : offset + n])
    return cells[counts == 0]


def _nearest_enough(
    dist: np.ndarray,
    expected: np.ndarray,
    need: float,
    nprobe: int,
    head: int,
    bound: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Each query's (row of ``dist``) candidate lists in distance order, and how many
    it probes: ``nprobe``, or more until their ``expected`` qualifying rows (the
    same row of ``expected``) reach ``need``, and at least those at a distance
    of at most its ``bound`` (if given: :func:`_ratio_bounds`), up to ``head``.
    As (query rows, candidate order, count) groups: the ``head`` nearest
    candidates are selected and sorted for everyone (a partial sort), and only
    queries they do not satisfy sort all of their candidates."""
    m = dist.shape[1]
    out = []
    rows = np.arange(dist.shape[0])
    if head < m:
        top = np.argpartition(dist, head - 1, axis=1)[:, :head]
        order = np.take_along_axis(
            top, np.argsort(np.take_along_axis(dist, top, axis=1), axis=1, kind="stable"), axis=1
        )
        cum = np.cumsum(np.take_along_axis(expected, order, axis=1), axis=1)
        done = cum[:, -1] >= need  # (head >= nprobe: the head always holds nprobe lists)
        enough = (cum >= need).argmax(axis=1) + 1
        if bound is not None:  # the head's lists within the bound
            near = np.take_along_axis(dist, order, axis=1) <= bound[:, None]
            enough = np.maximum(enough, near.sum(axis=1))
        count = np.minimum(np.maximum(enough, nprobe), head)
        out.append((rows[done], order[done], count[done]))
        rows = rows[~done]
        if rows.size == 0:
            return out
        dist, expected = dist[rows], expected[rows]
        bound = None if bound is None else bound[rows]
    order = np.argsort(dist, axis=1, kind="stable")
    cum = np.cumsum(np.take_along_axis(expected, order, axis=1), axis=1)
    enough = (cum >= need).argmax(axis=1) + 1
    enough[cum[:, -1] < need] = m
    if bound is not None:
        enough = np.maximum(enough, np.minimum((dist <= bound[:, None]).sum(axis=1), head))
    out.append((rows, order, np.minimum(np.maximum(enough, nprobe), m)))
    return out


def _ratio_bounds(dist: np.ndarray, offset: np.ndarray, probe_ratio: float) -> np.ndarray:
    """Per query (row of ``dist``, ranking distances to its candidate lists'
    centroids), the ranking distance up to which a list is within
    ``probe_ratio`` of the nearest one in true distance. ``offset`` turns a
    ranking distance into a squared distance: ``||q||^2`` for l2 (ranking
    ``||c||^2 - 2<q, c>``), 1 for cosine (ranking ``-<q, c>`` of a unit query;
    for a unit ``c``, ``1 - <q, c>`` is half their squared distance); so the
    bound is ``probe_ratio^2 * (d_1 + offset) - offset``."""
    nearest = dist.min(axis=1)
    return np.float64(probe_ratio) ** 2 * (nearest + offset) - offset


PROBE_HEAD = 64  # a query's nearest lists ranked first: max(4 * nprobe, this)
PROBE_CHUNK = 1 << 22  # (query, candidate list) distances ranked at once while probing
# Filters routed to the same partitions with this many queries in all rank them
# apart, over their own lists; fewer are ranked with all such sets at once.
PROBE_GROUP_ALONE = 64


def gather_ratio(prefilter_ratio: float, queries: Any) -> Any:
    """Cost of a gathered row relative to a row read in place, for a filter of
    ``queries`` queries (or an array of such counts, elementwise): the
    gather's extra cost (``prefilter_ratio - 1`` for one query) is shared by
    them, the distances are not, so ``1 + (prefilter_ratio - 1) / queries``.
    Ratios up to 1 (0: always prefilter) and inf (never) are kept as given."""
    if prefilter_ratio <= 1 or np.isinf(prefilter_ratio):
        return prefilter_ratio
    return 1 + (prefilter_ratio - 1) / np.maximum(queries, 1)


def _centroid_distances(q: np.ndarray, cents: np.ndarray, metric: Metric) -> np.ndarray:
    dist = q @ cents.T
    if metric is Metric.L2:  # in place: the (Q, T) matrix is the big one
        dist *= -2.0
        dist += np.einsum("ij,ij->i", cents, cents)[None, :]
    else:
        np.negative(dist, out=dist)
    return dist


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
    sample: RowSample | None = None,
    attributes: AttributeMatrix | None = None,
    list_zones: ZoneMaps | None = None,
    probe_ratio: float = 1.0,
    routes: dict[Predicate | None, Route] | None = None,
) -> BatchPlan:
    """Plan the batch (see the module docstring); ``nprobe=None`` is exact.

    ``routes``: filters' exact routes (:func:`_route`), which do not depend on
    nprobe, kept between the plans of one search (``recall_target`` plans the
    same sampled filters at several nprobe, then the batch): read, and filled
    as they are computed.

    With a ``sample`` (stores of ``SAMPLE_MIN_ROWS`` rows or more), filters
    that will clearly be scanned are routed on estimated counts and masked on
    their probed lists only (approximate search). With ``attributes`` too,
    those that compile (:func:`~hqi.query.compiled.compile_filter`) get
    programs instead of masks, on the exact path as well; ``list_zones`` (zone
    maps per list) then drop their probes of lists where they cannot hold.
    See the module docstring."""
    if store.num_rows < SAMPLE_MIN_ROWS:
        sample = None  # a small store: every filter is counted exactly
    nlists = np.diff(part.part_lists)
    sizes = zones.sizes
    list_sizes = np.diff(part.list_bounds)
    list_part = np.repeat(np.arange(part.num_parts), nlists)
    filters: list[FilterPlan] = []
    evaluator = BatchEvaluator(store, max_bytes=16 << 20)
    ranges = _RangeCache(budget=RANGE_BUDGET * store.num_rows)  # bounds gathered columns

    def cost(routed_rows: Any, routed_lists: Any, qualifying: Any) -> Any:
        """Rows a query scans (floats, or arrays of them, elementwise)."""
        if nprobe is None:
            return routed_rows
        # expected rows probed: nprobe average lists, or more for sparse filters
        avg_list = routed_rows / np.maximum(routed_lists, 1)
        need = expected_hits * k * routed_rows / np.maximum(qualifying, 1)
        return np.minimum(routed_rows, np.maximum(nprobe * avg_list, need))

    def work(parts: np.ndarray, qualifying: float, may: np.ndarray | None = None) -> float:
        """Rows a query of the filter scans; exact plans pass the lists of
        ``parts`` where it may hold (``list_may``'s row) and count theirs."""
        if may is not None:
            return float(list_sizes[may].sum())
        return float(cost(float(sizes[parts].sum()), int(nlists[parts].sum()), qualifying))

    queries_of = filter_queries(query_filter, len(preds))
    # Each filter's program (-1: none): with a sample, the filters that compile
    # are routed, estimated and tested by the executor from their programs.
    programs: list[Program] = []
    program_of = np.full(len(preds), -1, dtype=np.int64)
    if sample is not None and attributes is not None:
        for i, pred in enumerate(preds):
            if (compiled := compile_filter(pred, attributes)) is not None:
                program_of[i] = len(programs)
                programs.append(compiled)
    table = None if attributes is None else ProgramTable.of(programs, attributes)
    if programs:  # the programs' zone flags in one compiled call
        assert table is not None
        every = np.arange(zones.num_parts)
        may, whole = zones.program_flags(
            table,
            np.repeat(np.arange(len(programs)), every.size),
            np.tile(every, len(programs)),
        )
        program_may = may.reshape(len(programs), -1)
        program_all = whole.reshape(len(programs), -1)
    # Exact plans scan whole partitions, less the lists where a filter cannot
    # hold (list_may, by the lists' zone maps; the programs' in one call), and
    # cost a scan by those lists' rows.
    list_may = None
    if nprobe is None and list_zones is not None:
        list_may = np.zeros((len(preds), part.num_lists), dtype=bool)
        if programs:
            assert table is not None
            routed_lists = program_may[:, list_part]
            covered_lists = program_all[:, list_part]
            pj, pl = np.nonzero(routed_lists & ~covered_lists)
            may, _ = list_zones.program_flags(table, pj, pl)
            filter_of = np.flatnonzero(program_of >= 0)
            list_may[filter_of] = covered_lists
            list_may[filter_of[pj[may]], pl[may]] = True
    # Approximate plans estimate only what will clearly be scanned; exact ones,
    # which scan whole partitions, whatever is estimated to be.
    margin = 2 if nprobe is not None else 1
    nqs = np.array([q.size for q in queries_of], dtype=np.int64)
    # The programs' estimates, all at once (programs x partitions): those that
    # will clearly be scanned are routed on them (est_scan) and never counted.
    est_scan = np.zeros(len(programs), dtype=bool)
    if programs and sample is not None and table is not None:
        hits = _sample_hits(program_may, program_all, sample, table)
        est_counts = np.where(program_all, sizes[None, :], hits * sample.scale[None, :])
        est_counts[~program_may] = 0
        est_qualifying = est_counts.sum(axis=1)
        est_work = cost(
            (program_may * sizes[None, :]).sum(axis=1).astype(np.float64)
            if list_may is None
            else (list_may[program_of >= 0] @ list_sizes).astype(np.float64),
            (program_may * nlists[None, :]).sum(axis=1),
            est_qualifying,
        )
        prog_nq = nqs[program_of >= 0]
        ratios = gather_ratio(prefilter_ratio, prog_nq) if nprobe is None else prefilter_ratio
        with np.errstate(invalid="ignore"):  # ratio inf, nothing qualifying: NaN, not scanned
            weighted = est_qualifying * ratios
        est_scan = (
            (program_may & ~program_all).any(axis=1)
            & (hits.sum(axis=1) >= MIN_SAMPLE_HITS)
            & (weighted > margin * est_work)
        )
    for i, (pred, nq, program) in enumerate(
        zip(preds, nqs.tolist(), program_of.tolist(), strict=True)
    ):
        may_lists = None if list_may is None else list_may[i]  # a view: filled below
        # Routed partitions and which of them are covered.
        if program >= 0:
            may_true, all_true = program_may[program], program_all[program]
        else:
            flags = zones.flags(pred)
            may_true, all_true = flags.may_true, flags.all_true
            if may_lists is not None:
                may_lists[:] = may_true[list_part]
                if pred is not None and not all_true[may_true].all():
                    may_lists &= list_zones.flags(pred).may_true  # type: ignore[union-attr]
        routed = np.flatnonzero(may_true).astype(np.int64)
        covered = all_true[routed]
        if program >= 0 and est_scan[program]:
            # With a program the executor tests it: no masks, no exact count.
            filters.append(
                FilterPlan(
                    pred,
                    "scan",
                    routed,
                    {},
                    round(float(est_qualifying[program])),
                    float(est_work[program]),
                    est_counts[program, routed],
                    estimated=True,
                    partial=routed[~covered],
                    program=program,
                )
            )
            continue
        # Exact plans share a filter's gather among its queries. Approximate plans
        # keep the one-query ratio: measured at 1M, shared filters that must then
        # be counted exactly (not estimated) cost more planning than they save.
        ratio = gather_ratio(prefilter_ratio, nq) if nprobe is None else prefilter_ratio
        if sample is not None and not covered.all() and nprobe is not None and program < 0:
            # Estimate first. A filter that will clearly be scanned gets no exact
            # count: it gets masks after probing, on the lists its queries probe
            # only (_mask_probed).
            est, hits_here = sample.estimate(pred, routed)
            counts = np.where(covered, sizes[routed], est)
            qualifying = float(counts.sum())
            scan_work = work(routed, qualifying)
            if hits_here >= MIN_SAMPLE_HITS and qualifying * ratio > margin * scan_work:
                filters.append(
                    FilterPlan(
                        pred,
                        "scan",
                        routed,
                        {},
                        round(qualifying),
                        scan_work,
                        counts,
                        estimated=True,
                        partial=routed[~covered],
                    )
                )
                continue
        route = None if routes is None else routes.get(pred)
        if route is None:
            route = _route(pred, routed, covered, part, sizes, evaluator, ranges)
            if routes is not None:
                routes[pred] = route
        parts, masks, counts, rows = route
        qualifying = int(counts.sum())
        if may_lists is not None:  # exact counts may drop partitions
            kept = np.zeros(part.num_parts, dtype=bool)
            kept[parts] = True
            may_lists &= kept[list_part]  # (np.isin took 16 us a filter, this 1 us)
        scan_work = work(parts, qualifying, may_lists)
        strategy: Strategy
        if qualifying == 0:
            strategy = "empty"
        elif qualifying * ratio <= scan_work:
            strategy = "prefilter"
        else:
            strategy = "scan"
        if masks is not None:
            filters.append(FilterPlan(pred, strategy, parts, masks, qualifying, scan_work, counts))
            continue
        assert rows is not None  # a selective filter: its rows, masks only if scanned
        prefilter = strategy == "prefilter"
        tested = not prefilter and program >= 0  # scanned: the executor tests its program
        filters.append(
            FilterPlan(
                pred,
                strategy,
                parts,
                {}
                if prefilter or tested
                else _masks_of_rows(rows, parts, counts, part.part_bounds),
                qualifying,
                scan_work,
                counts,
                partial=parts[counts < sizes[parts]] if prefilter or tested else None,
                row_ids=rows if prefilter else None,
                program=program if tested else -1,
            )
        )

    t = part.num_lists
    pq_, pc_ = [], []
    scanning = [i for i, f in enumerate(filters) if f.strategy == "scan"]
    if nprobe is None:  # exact: every routed partition, whole (less list_may's lists)
        for i in scanning:
            qids = queries_of[i]
            parts = filters[i].parts
            pq_.append(np.repeat(qids, parts.size))
            pc_.append(np.tile(t + parts, qids.size))
    elif scanning:
        # Global probing: each query's nearest lists among its routed partitions,
        # nprobe of them, or more until they hold expected_hits * k qualifying rows,
        # and all within probe_ratio of the nearest one's distance (not for ip).
        cent_dist = _centroid_distances(queries, part.centroids, metric)
        offset = None  # ranking distance + offset = squared distance (_ratio_bounds)
        if probe_ratio > 1 and metric is Metric.L2:
            offset = np.einsum("ij,ij->i", queries, queries)
        elif probe_ratio > 1 and metric is Metric.COSINE:
            offset = np.ones(queries.shape[0])
        head = max(4 * nprobe, PROBE_HEAD)  # ranked first; the rest only if needed
        # Filters routed to the same partitions rank their queries together, over
        # those partitions' lists. Sets of few queries are ranked all together
        # instead, over the union of their lists: a list outside a query's routed
        # partitions is at +inf and expects nothing, so it sorts after the
        # query's own lists and is cut off by their count. One partial sort per
        # chunk then replaces hundreds of small ones (recall_target's sample).
        routed = np.zeros((len(scanning), part.num_parts), dtype=bool)
        density = np.zeros((len(scanning), part.num_parts))
        for j, i in enumerate(scanning):
            f = filters[i]
            routed[j, f.parts] = True
            density[j, f.parts] = f.counts / sizes[f.parts]
        num_cand = routed.astype(np.int64) @ nlists  # each filter's candidate lists
        same_parts: dict[bytes, list[int]] = {}
        for j, i in enumerate(scanning):
            same_parts.setdefault(filters[i].parts.tobytes(), []).append(j)
        # (members, mixed): mixed when the members come from several such sets.
        groups: list[tuple[list[int], bool]] = []
        together: list[list[int]] = []
        for members in same_parts.values():
            if sum(queries_of[scanning[j]].size for j in members) >= PROBE_GROUP_ALONE:
                groups.append((members, False))
            else:
                together.append(members)
        if together:
            groups.append((sorted(j for members in together for j in members), len(together) > 1))
        for members, mixed in groups:
            union = np.any(routed[members], axis=0)  # partitions of any member
            cand = np.flatnonzero(union[list_part])
            qids = np.concatenate([queries_of[scanning[j]] for j in members])
            local = np.repeat(members, [queries_of[scanning[j]].size for j in members])
            step = max(PROBE_CHUNK // max(cand.size, 1), 1)
            for c0 in range(0, qids.size, step):
                cq, lq = qids[c0 : c0 + step], local[c0 : c0 + step]
                dist = cent_dist[np.ix_(cq, cand)]
                if mixed:
                    dist[~routed[lq][:, list_part[cand]]] = np.inf
                # Expected qualifying rows of each list: its size times its
                # partition's qualifying fraction for the query's filter.
                expected = density[lq][:, list_part[cand]] * list_sizes[cand][None, :]
                bound = None if offset is None else _ratio_bounds(dist, offset[cq], probe_ratio)
                for rows, order, count in _nearest_enough(
                    dist, expected, expected_hits * k, nprobe, head, bound
                ):
                    if mixed:
                        count = np.minimum(count, num_cand[lq[rows]])
                    take = np.arange(order.shape[1])[None, :] < count[:, None]
                    pq_.append(np.broadcast_to(cq[rows, None], order.shape)[take])
                    pc_.append(cand[order][take].astype(np.int64))
        estimated = np.array([f.estimated for f in filters], dtype=bool)
        if estimated.any():
            # Estimated filters get masks of the lists their queries probe (those
            # with a program are tested by the executor instead); probes of lists
            # where none of a filter's rows qualify are dropped.
            pq, pc = np.concatenate(pq_), np.concatenate(pc_)
            pf = query_filter[pq]
            mine = estimated[pf]
            keys = unique(pf[mine] * t + pc[mine])
            fid, cell = np.divmod(keys, t)
            # A filter with a program is tested by the executor: only the lists'
            # zone maps rule lists out, for all such filters in one call. The
            # others get their masks here (_mask_probed).
            key_program = np.array([f.program for f in filters], dtype=np.int64)[fid]
            tested = key_program >= 0
            empty = [np.zeros(0, dtype=np.int64)]
            if tested.any() and list_zones is not None and table is not None:
                may, _ = list_zones.program_flags(table, key_program[tested], cell[tested])
                empty.append(keys[tested][~may])
            masked, masked_cell = fid[~tested], cell[~tested]
            bounds = np.searchsorted(masked, np.arange(len(filters) + 1))
            empty += [
                i * t
                + _mask_probed(
                    filters[i], masked_cell[bounds[i] : bounds[i + 1]], part, list_part, store
                )
                for i in unique(masked).tolist()
            ]
            dropped = np.concatenate(empty)
            if dropped.size:  # lists where nothing qualifies: not worth a product
                keep = ~isin_sorted(pf * t + pc, unique(dropped))
                pq, pc = pq[keep], pc[keep]
            pq_, pc_ = [pq], [pc]
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
        programs=table,
        list_may=list_may,
    )
