"""Global probing: which lists each scanned query reads (approximate plans).

Each query ranks the lists of its routed partitions by centroid distance
(one product of the batch with all centroids) and probes the nearest
``nprobe``, or more until they are expected to hold ``need`` qualifying
rows, and every list within ``probe_ratio`` of the nearest one's distance
(:func:`probe_lists`). Then the lists where an estimated filter has no
qualifying row are dropped from its queries' probes (:func:`drop_empty_probes`).
"""

from __future__ import annotations

import numpy as np

from hqi._arrays import isin_sorted, unique
from hqi._jit import njit
from hqi._threads import even_bounds, run_split
from hqi.collection import Metric
from hqi.execution.planner.plans import FilterPlan
from hqi.execution.planner.routing import mask_probed
from hqi.index.partitioned import Partitioning
from hqi.layout.zonemap import ZoneMaps
from hqi.query import ColumnStore
from hqi.query.compiled import ProgramTable

__all__ = ["PROBE_CHUNK", "PROBE_GROUP_ALONE", "PROBE_HEAD", "drop_empty_probes", "probe_lists"]


# Probing keeps each query's nearest lists in a sorted buffer of this many (or
# 2 * nprobe), in one pass over its candidates; a query that needs more makes
# another pass for the next as many.
_NEAREST_BUFFER = 16


@njit(nogil=True, boundscheck=False)
def _select_probes(
    dist: np.ndarray,
    density: np.ndarray,
    local: np.ndarray,
    cand_part: np.ndarray,
    cand_size: np.ndarray,
    need: float,
    nprobe: int,
    head: int,
    bound: np.ndarray,
    cap: np.ndarray,
    order: np.ndarray,
    count: np.ndarray,
) -> None:
    """Each query's (row of ``dist``: ranking distances to the candidate lists)
    probed lists, nearest first (ties by candidate index), into ``order[row,
    :count[row]]``: ``nprobe`` of them, or more until their expected
    qualifying rows reach ``need``, and at least those at a distance of at
    most ``bound[row]`` (``bound`` empty: none) up to ``head``; never more than
    ``cap[row]``. A list's expected qualifying rows are its size
    (``cand_size``) times the fraction of its partition (``cand_part``) that
    qualifies for the query's filter (``density[local[row]]``).

    One pass over a query's candidates keeps its nearest :data:`_NEAREST_BUFFER`
    (or ``2 * nprobe``), sorted; most queries need fewer (1M, nprobe 2 with
    ratio 1.1: 4.5 lists a query). A query that needs more makes another pass
    for the next as many, and so on. It replaced numpy's partial sort of each
    query's 64 nearest and cumulative sums (the same probes): 1M, nprobe 2
    with ratio 1.1, probing 0.051 -> 0.038 s and planning 0.184 -> 0.174 s
    (medians, alternating); MovieLens planning 0.055 -> 0.048 s. Compiled on
    the first approximate search (about 0.4 s; :mod:`hqi._jit`)."""
    rows, m = dist.shape
    has_bound = bound.size > 0
    size = min(max(_NEAREST_BUFFER, 2 * nprobe), m)
    near_d = np.empty(size, dtype=np.float64)
    near_c = np.empty(size, dtype=np.int64)
    for r in range(rows):
        d_row = dist[r]
        fraction = density[local[r]]
        limit = min(m, cap[r])
        target = nprobe
        if has_bound:
            near = 0  # candidates within the bound
            for c in range(m):
                if d_row[c] <= bound[r]:
                    near += 1
            target = max(target, min(near, head))
        out = order[r]
        taken = 0
        expected = 0.0
        done = False
        after_d = -np.inf  # the last list taken, in (distance, index) order
        after_c = -1
        while not done and taken < limit:
            # The nearest `size` lists after the last one taken, sorted.
            held = 0
            for c in range(m):
                d = np.float64(d_row[c])
                if d < after_d or (d == after_d and c <= after_c):
                    continue  # taken already
                if held == size and not d < near_d[size - 1]:
                    continue  # (a tie ranks after: its index is larger)
                at = held if held < size else size - 1
                while at > 0 and near_d[at - 1] > d:
                    near_d[at] = near_d[at - 1]
                    near_c[at] = near_c[at - 1]
                    at -= 1
                near_d[at] = d
                near_c[at] = c
                if held < size:
                    held += 1
            for j in range(held):
                c = near_c[j]
                out[taken] = c
                taken += 1
                expected += fraction[cand_part[c]] * cand_size[c]
                if (taken >= target and expected >= need) or taken == limit:
                    done = True
                    break
            after_d = near_d[held - 1]
            after_c = near_c[held - 1]
        count[r] = taken


@njit(nogil=True, boundscheck=False)
def _emit_probes(
    order: np.ndarray,
    count: np.ndarray,
    qids: np.ndarray,
    cand: np.ndarray,
    pq: np.ndarray,
    pc: np.ndarray,
) -> None:
    """The probes ``(qids[row], cand[order[row, j]])`` for ``j < count[row]``, row
    by row, into ``pq`` and ``pc``."""
    at = 0
    for r in range(count.size):
        for j in range(count[r]):
            pq[at] = qids[r]
            pc[at] = cand[order[r, j]]
            at += 1


def _nearest_enough(
    dist: np.ndarray,
    qids: np.ndarray,
    local: np.ndarray,
    density: np.ndarray,
    cand: np.ndarray,
    cand_part: np.ndarray,
    cand_size: np.ndarray,
    *,
    need: float,
    nprobe: int,
    head: int,
    bound: np.ndarray | None,
    cap: np.ndarray,
    threads: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The probes (query ids, list ids) of the queries ``qids`` (rows of ``dist``)
    among the lists ``cand`` (:func:`_select_probes`), on ``threads`` threads
    (the compiled loop releases the GIL) when there are many."""
    rows, m = dist.shape
    order = np.empty((rows, m), dtype=np.int32)
    count = np.empty(rows, dtype=np.int64)
    bounds = np.zeros(0) if bound is None else np.ascontiguousarray(bound, dtype=np.float64)
    cap = np.ascontiguousarray(cap, dtype=np.int64)

    def select(a: int, b: int) -> None:
        _select_probes(
            dist[a:b],
            density,
            local[a:b],
            cand_part,
            cand_size,
            float(need),
            nprobe,
            head,
            bounds[a:b],  # empty (no bound) stays empty
            cap[a:b],
            order[a:b],
            count[a:b],
        )

    parallel = threads > 1 and rows * m >= PARALLEL_PROBE_PAIRS
    run_split(select, even_bounds(rows, threads if parallel else 1))
    pq = np.empty(int(count.sum()), dtype=np.int64)
    pc = np.empty_like(pq)
    _emit_probes(order, count, qids, cand, pq, pc)
    return pq, pc


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


# A query probes the lists within probe_ratio of its nearest, up to
# max(4 * nprobe, this) of them.
PROBE_HEAD = 64
PROBE_CHUNK = 1 << 22  # (query, candidate list) distances ranked at once while probing
# Filters routed to the same partitions with this many queries in all rank them
# apart, over their own lists; fewer are ranked with all such sets at once.
PROBE_GROUP_ALONE = 64
# (query, candidate list) distances from which probing picks lists on two threads.
PARALLEL_PROBE_PAIRS = 1 << 16


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
    threads: int = 1,
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
    head = max(4 * nprobe, PROBE_HEAD)  # the most lists taken for the ratio
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
            bound = None if offset is None else _ratio_bounds(dist, offset[cq], probe_ratio)
            # A set of few queries' sets: none takes lists beyond its own.
            cap = num_cand[lq] if mixed else np.full(cq.size, cand.size, dtype=np.int64)
            pq, pc = _nearest_enough(
                dist,
                cq,
                lq,
                density,
                cand,
                list_part[cand],
                list_sizes[cand],
                need=need,
                nprobe=nprobe,
                head=head,
                bound=bound,
                cap=cap,
                threads=threads,
            )
            pq_.append(pq)
            pc_.append(pc)
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
