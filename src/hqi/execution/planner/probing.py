"""Global probing: which lists each scanned query reads (approximate plans).

Each query ranks the lists of its routed partitions by centroid distance
(one product of the batch with all centroids) and probes the nearest
``nprobe``, or more until they are expected to hold ``need`` qualifying
rows, and every list within ``probe_ratio`` of the nearest one's distance
(:func:`probe_lists`). Then the lists where an estimated filter has no
qualifying row are dropped from its queries' probes (:func:`drop_empty_probes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hqi._arrays import isin_sorted, unique
from hqi.collection import Metric
from hqi.execution.planner.plans import FilterPlan
from hqi.execution.planner.routing import mask_probed
from hqi.index.partitioned import Partitioning
from hqi.layout.zonemap import ZoneMaps
from hqi.query import ColumnStore
from hqi.query.compiled import ProgramTable

__all__ = ["PROBE_CHUNK", "PROBE_GROUP_ALONE", "PROBE_HEAD", "drop_empty_probes", "probe_lists"]


@dataclass(frozen=True)
class _Expected:
    """Expected qualifying rows of (query, candidate list) pairs, made only where
    asked: the query's filter's qualifying fraction in the list's partition
    (``density``: (queries, partitions)) times the list's size. The full
    (queries, candidates) matrix is never made: ranking reads it at each
    query's ``head`` nearest lists only (1M, nprobe 2: probing 0.092 ->
    0.067 s, medians of 7, planning 0.252 -> 0.240 s; the same plans)."""

    density: np.ndarray  # (queries, partitions)
    cand_part: np.ndarray  # (candidates,) each candidate list's partition
    cand_size: np.ndarray  # (candidates,) its rows

    def at(self, order: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Expected rows at candidates ``order`` (queries, c) of the queries ``rows``
        (all: None)."""
        density = self.density if rows is None else self.density[rows]
        return np.take_along_axis(density, self.cand_part[order], axis=1) * self.cand_size[order]


def _nearest_enough(
    dist: np.ndarray,
    expected: _Expected,
    need: float,
    nprobe: int,
    head: int,
    bound: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Each query's (row of ``dist``) candidate lists in distance order, and how many
    it probes: ``nprobe``, or more until their ``expected`` qualifying rows
    reach ``need``, and at least those at a distance of at most its ``bound``
    (if given: :func:`_ratio_bounds`), up to ``head``. As (query rows,
    candidate order, count) groups: the ``head`` nearest candidates are
    selected and sorted for everyone (a partial sort), and only queries they
    do not satisfy sort all of their candidates."""
    m = dist.shape[1]
    m_rows = dist.shape[0]
    out = []
    rows = np.arange(m_rows)
    if head < m:
        top = np.argpartition(dist, head - 1, axis=1)[:, :head]
        order = np.take_along_axis(
            top, np.argsort(np.take_along_axis(dist, top, axis=1), axis=1, kind="stable"), axis=1
        )
        cum = np.cumsum(expected.at(order), axis=1)
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
        dist = dist[rows]
        bound = None if bound is None else bound[rows]
    order = np.argsort(dist, axis=1, kind="stable")
    cum = np.cumsum(expected.at(order, None if rows.size == m_rows else rows), axis=1)
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


def _centroid_distances(q: np.ndarray, cents: np.ndarray, metric: Metric) -> np.ndarray:
    dist = q @ cents.T
    if metric is Metric.L2:  # in place: the (Q, T) matrix is the big one
        dist *= -2.0
        dist += np.einsum("ij,ij->i", cents, cents)[None, :]
    else:
        np.negative(dist, out=dist)
    return dist


def _routes_and_densities(
    filters: list[FilterPlan], scanning: list[int], num_parts: int, sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(filters, partitions) for the ``scanning`` filters: whether each is routed
    there, and the fraction of the partition's rows that qualify (its counts
    over the partitions' ``sizes``), set for all filters at once."""
    routed = np.zeros((len(scanning), num_parts), dtype=bool)
    density = np.zeros((len(scanning), num_parts))
    if not scanning:
        return routed, density
    parts = [filters[i].parts for i in scanning]
    at = np.concatenate(parts)
    row = np.repeat(np.arange(len(scanning)), [p.size for p in parts])
    counts = np.concatenate([filters[i].counts for i in scanning])
    routed[row, at] = True
    density[row, at] = counts / sizes[at]
    return routed, density


def _same_partitions(routed: np.ndarray) -> list[list[int]]:
    """The rows of ``routed`` grouped by equal rows (filters routed to the same
    partitions), each group ascending, the groups in order of their first row."""
    if routed.shape[0] == 0:
        return []
    packed = np.ascontiguousarray(np.packbits(routed, axis=1))
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    rows = np.argsort(inverse, kind="stable")  # ascending within each group
    bounds = np.searchsorted(inverse[rows], np.arange(first.size + 1))
    return [rows[bounds[g] : bounds[g + 1]].tolist() for g in np.argsort(first).tolist()]


def probe_lists(
    queries: np.ndarray,
    filters: list[FilterPlan],
    scanning: list[int],
    queries_of: list[np.ndarray],
    *,
    part: Partitioning,
    sizes: np.ndarray,
    metric: Metric,
    nprobe: int,
    probe_ratio: float,
    need: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The probes (query, list) of the queries of the ``scanning`` filters: each
    query's nearest lists among its routed partitions, ``nprobe`` of them, or
    more until they hold ``need`` expected qualifying rows, and all within
    ``probe_ratio`` of the nearest one's distance (not for ip). ``sizes``:
    the partitions' rows."""
    nlists = np.diff(part.part_lists)
    list_sizes = np.diff(part.list_bounds)
    list_part = part.list_part
    pq_: list[np.ndarray] = []
    pc_: list[np.ndarray] = []
    centroids = part.centroids
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
    routed, density = _routes_and_densities(filters, scanning, part.num_parts, sizes)
    num_cand = routed.astype(np.int64) @ nlists  # each filter's candidate lists
    # (members, mixed): mixed when the members come from several such sets.
    groups: list[tuple[list[int], bool]] = []
    together: list[list[int]] = []
    nqs = np.array([queries_of[i].size for i in scanning], dtype=np.int64)
    for members in _same_partitions(routed):
        if int(nqs[members].sum()) >= PROBE_GROUP_ALONE:
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
        # Only the group's candidate lists, one product per group: no (queries,
        # all lists) matrix to gather from (1M, nprobe 2: probing 0.082 ->
        # 0.054 s, medians of 7 alternating, same plans).
        cand_centroids = centroids[cand]
        step = max(PROBE_CHUNK // max(cand.size, 1), 1)
        for c0 in range(0, qids.size, step):
            cq, lq = qids[c0 : c0 + step], local[c0 : c0 + step]
            dist = _centroid_distances(queries[cq], cand_centroids, metric)
            if mixed:
                dist[~routed[lq][:, list_part[cand]]] = np.inf
            # Expected qualifying rows of each list: its size times its
            # partition's qualifying fraction for the query's filter.
            expected = _Expected(density[lq], list_part[cand], list_sizes[cand])
            bound = None if offset is None else _ratio_bounds(dist, offset[cq], probe_ratio)
            for rows, order, count in _nearest_enough(dist, expected, need, nprobe, head, bound):
                if mixed:
                    count = np.minimum(count, num_cand[lq[rows]])
                take = np.arange(order.shape[1])[None, :] < count[:, None]
                pq_.append(np.broadcast_to(cq[rows, None], order.shape)[take])
                pc_.append(cand[order][take].astype(np.int64))
    if not pq_:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(pq_), np.concatenate(pc_)


def drop_empty_probes(
    pq: np.ndarray,
    pc: np.ndarray,
    query_filter: np.ndarray,
    filters: list[FilterPlan],
    *,
    part: Partitioning,
    store: ColumnStore,
    list_zones: ZoneMaps | None,
    table: ProgramTable | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The probes (query ``pq``, list ``pc``) less those of lists where the
    query's estimated filter has no qualifying row. Estimated filters get masks
    of the lists their queries probe here (:func:`~.routing.mask_probed`);
    those with a program are tested by the executor instead, and only the
    lists' zone maps rule lists out for them, all in one call."""
    t = part.num_lists
    list_part = part.list_part
    estimated = np.array([f.estimated for f in filters], dtype=bool)
    if not estimated.any():
        return pq, pc
    pf = query_filter[pq]
    mine = estimated[pf]
    keys = unique(pf[mine] * t + pc[mine])
    fid, cell = np.divmod(keys, t)
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
        + mask_probed(filters[i], masked_cell[bounds[i] : bounds[i + 1]], part, list_part, store)
        for i in unique(masked).tolist()
    ]
    dropped = np.concatenate(empty)
    if dropped.size:  # lists where nothing qualifies: not worth a product
        keep = ~isin_sorted(pf * t + pc, unique(dropped))
        pq, pc = pq[keep], pc[keep]
    return pq, pc
