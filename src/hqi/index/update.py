"""Rows added to and deleted from a built layout, without learning it again.

The qd-tree and the lists' centroids stay as the build made them. An added
row goes to the leaf its attributes (and, for vector cuts, its vector) fall
in, and there to the list of the nearest centroid, as the build assigns
rows. A leaf that was empty at build time and now gets rows has lists
trained on them. A deleted row leaves its list; a list left empty is
dropped.

The storage invariants of :mod:`hqi.index.partitioned` hold afterwards:
rows sorted by (partition, list), each list nearest its centroid first, and
no list over four times the build's list size (the build's cap: a k-means
list over it is cut into chunks that share its centroid). The chunks of one
k-means list are handled as one *group* here and cut again after the change.

The layout is still the one learned from the build's workload and vectors:
after many changes, or when the workload moves, a new build fits better.
"""

from __future__ import annotations

import numpy as np

from hqi.index.ivf import train_lists
from hqi.index.partitioned import Changes, Partitioning, cap_lists, central_distances
from hqi.layout.vector_cuts import CoarseCentroids

__all__ = ["add_rows", "delete_rows"]


def _list_of_rows(part: Partitioning) -> np.ndarray:
    """The list of every stored row (N,)."""
    return np.repeat(np.arange(part.num_lists), np.diff(part.list_bounds))


def _groups(part: Partitioning) -> tuple[np.ndarray, np.ndarray]:
    """(each list's group (T,), each group's first list (G,)): a group is a run
    of consecutive lists of one partition with one centroid, the chunks the
    build cut from one k-means list."""
    t = part.num_lists
    starts = np.ones(t, dtype=bool)
    if t > 1:
        lp = part.list_part
        starts[1:] = (lp[1:] != lp[:-1]) | np.any(part.centroids[1:] != part.centroids[:-1], axis=1)
    return np.cumsum(starts) - 1, np.flatnonzero(starts)


def _assemble(
    part: Partitioning,
    centroids: np.ndarray,
    group_part: np.ndarray,
    group_sizes: np.ndarray,
    row_part: np.ndarray,
    cap: int,
    changes: Changes | None,
) -> Partitioning:
    """The partitioning of groups (in storage order, partitions non-decreasing)
    of ``group_sizes`` rows: empty groups dropped, the others cut into chunks
    of at most ``cap`` rows as the build cuts them."""
    keep = group_sizes > 0
    centroids, sizes, chunks = cap_lists(centroids[keep], group_sizes[keep], cap)
    lists_per_part = np.bincount(np.repeat(group_part[keep], chunks), minlength=part.num_parts)
    rows_per_part = np.bincount(row_part, minlength=part.num_parts)
    return Partitioning(
        tree=part.tree,
        order=np.arange(row_part.size, dtype=np.int64),
        part_bounds=np.concatenate([[0], np.cumsum(rows_per_part)]).astype(np.int64),
        list_bounds=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        part_lists=np.concatenate([[0], np.cumsum(lists_per_part)]).astype(np.int64),
        centroids=np.ascontiguousarray(centroids, dtype=np.float32),
        stats=dict(part.stats),
        list_size=part.list_size,
        changes=changes,
    )


def _cap(part: Partitioning) -> int:
    """Rows a list may hold: four times the build's list size, as at build."""
    return 4 * part.target_list_size


def delete_rows(part: Partitioning, keep: np.ndarray) -> tuple[Partitioning, np.ndarray]:
    """(the partitioning of the kept rows, the stored rows kept, ascending).

    ``keep`` (N,) marks the stored rows that stay. None may: a replacement
    of every row deletes them all before it adds (:meth:`hqi.Index.add`).
    """
    take = np.flatnonzero(keep)
    group_of_list, heads = _groups(part)
    row_group = group_of_list[_list_of_rows(part)[take]]
    sizes = np.bincount(row_group, minlength=heads.size)
    group_part = part.list_part[heads]
    deleted = keep.size - take.size
    changes = part.changes.after(deleted=deleted) if part.changes else None
    new = _assemble(
        part, part.centroids[heads], group_part, sizes, group_part[row_group], _cap(part), changes
    )
    return new, take


def add_rows(
    part: Partitioning,
    stored: np.ndarray,
    added: np.ndarray,
    leaf: np.ndarray,
    *,
    seed: int = 0,
) -> tuple[Partitioning, np.ndarray]:
    """(the partitioning with rows added, the row of ``[stored; added]`` each
    new stored row is).

    ``stored`` (N, d): the index's rows in storage order; ``added`` (M, d) and
    ``leaf`` (M,): the new rows and the leaf of each (``QdTree.assign``).
    Leaves that get their first rows get lists of the build's list size.
    The stored rows keep their relative order (the returned rows below N
    ascend): new rows are merged into their group by distance to its
    centroid, so the copy of the stored rows is a sequential one.
    """
    n, m = stored.shape[0], added.shape[0]
    group_of_list, heads = _groups(part)
    centroids = [part.centroids[heads]]
    group_part = [part.list_part[heads]]
    count = heads.size
    new_group = np.empty(m, dtype=np.int64)
    for p in np.unique(leaf):
        rows = np.flatnonzero(leaf == p)
        (mine,) = np.nonzero(group_part[0] == p)
        if mine.size:
            # Nearest by faiss's flat L2 search, as the build assigns rows.
            nearest = CoarseCentroids(centroids[0][mine]).nearest(added[rows])[:, 0]
            new_group[rows] = mine[nearest]
            continue
        # A leaf empty at build time: its first rows get lists of their own.
        cents, assign, _ = train_lists(added[rows], part.target_list_size, seed=seed + int(p))
        new_group[rows] = count + assign
        centroids.append(cents)
        group_part.append(np.full(cents.shape[0], p, dtype=np.int64))
        count += cents.shape[0]
    all_centroids = np.concatenate(centroids).astype(np.float32)
    all_parts = np.concatenate(group_part)
    # Groups in storage order: by partition, then as they were.
    by_part = np.argsort(all_parts, kind="stable")
    rank = np.empty_like(by_part)
    rank[by_part] = np.arange(by_part.size)
    # Sort keys: (group, place, distance). A stored row's place is its
    # position; a new row's is just before the first stored row of its group
    # farther from the centroid (so rows stay nearest the centroid first).
    place = np.arange(n + m, dtype=np.float64)
    distance = np.zeros(n + m)
    group_rows = part.list_bounds[np.append(heads, part.num_lists)]
    order = np.argsort(new_group, kind="stable")
    cuts = np.searchsorted(new_group[order], np.arange(count + 1))
    for g in np.flatnonzero(np.diff(cuts)):
        mine = order[cuts[g] : cuts[g + 1]]
        d_new = central_distances(added[mine], all_centroids[g])
        distance[n + mine] = d_new
        if g >= heads.size:  # a new group: its rows by distance alone
            place[n + mine] = -1.0
            continue
        a, b = int(group_rows[g]), int(group_rows[g + 1])
        d_old = central_distances(stored[a:b], all_centroids[g])
        place[n + mine] = a + np.searchsorted(d_old, d_new, side="right") - 0.5
    row_group = np.concatenate([group_of_list[_list_of_rows(part)], new_group])
    take = np.lexsort((distance, place, rank[row_group]))
    sizes = np.bincount(row_group, minlength=count)[by_part]
    changes = part.changes.after(added=m) if part.changes else None
    new = _assemble(
        part,
        all_centroids[by_part],
        all_parts[by_part],
        sizes,
        all_parts[row_group],
        _cap(part),
        changes,
    )
    return new, take
