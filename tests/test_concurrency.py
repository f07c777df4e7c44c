"""Searches and changes of one index from many threads (hqi._rwlock)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import hqi
from hqi._rwlock import ReadWriteLock
from hqi.datasets import make_catalog, make_workload

N0 = 2500  # rows built; changes add the rest of the catalog in steps


@pytest.fixture(scope="module")
def setup():
    catalog = make_catalog(4000, 16, seed=21)
    workload = make_workload(catalog, 200, seed=22)
    return catalog, workload


def _build(catalog, workload) -> hqi.Index:
    return hqi.build(
        catalog.vectors[:N0],
        catalog.attributes.slice(0, N0),
        catalog.ids[:N0],
        workload=workload.filters[40:],
        min_partition_rows=150,
        list_size=64,
    )


def _changes(catalog) -> list[tuple[str, object]]:
    """Adds of 250 rows each, some followed by a delete of 100 rows, and some
    such pairs as one change (Index.update)."""
    steps: list[tuple[str, object]] = []
    for i, start in enumerate(range(N0, 4000, 250)):
        added = slice(start, start + 250)
        doomed = catalog.ids[start - 400 : start - 300]
        if i % 3 == 2:
            steps.append(("update", (added, doomed)))
            continue
        steps.append(("add", added))
        if i % 3 == 1:
            steps.append(("delete", doomed))
    return steps


def _apply(index: hqi.Index, catalog, step: tuple[str, object]) -> None:
    kind, what = step
    if kind == "delete":
        index.delete(what)
        return
    added, doomed = (what, None) if kind == "add" else what  # type: ignore[misc]
    assert isinstance(added, slice)
    rows = catalog.attributes.slice(added.start, added.stop - added.start)
    index.update(catalog.vectors[added], rows, catalog.ids[added], delete=doomed)


def test_searches_beside_changes_see_whole_states(setup) -> None:
    """Exact searches in three threads while a fourth changes the index: each
    answer is the answer of the index before or after some change (computed
    first, one change at a time, on a second index), never of a mix, and no
    thread sees an older state after a newer one."""
    catalog, workload = setup
    q, f = workload.queries[:40], workload.filters[:40]
    steps = _changes(catalog)
    reference = _build(catalog, workload)
    states = [reference.search(q, f, k=10, exact=True).ids.tobytes()]
    for step in steps:
        _apply(reference, catalog, step)
        states.append(reference.search(q, f, k=10, exact=True).ids.tobytes())
    assert len(set(states)) == len(states)  # every change shows in the answers

    index = _build(catalog, workload)
    seen: list[list[int]] = [[] for _ in range(3)]
    errors: list[BaseException] = []
    done = threading.Event()

    def search(slot: int) -> None:
        try:
            while not done.is_set():
                ids = index.search(q, f, k=10, exact=True, threads=1).ids.tobytes()
                seen[slot].append(states.index(ids) if ids in states else -1)
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=search, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    try:
        for step in steps:
            time.sleep(0.005)  # let searches run between changes
            _apply(index, catalog, step)
        time.sleep(0.02)
    finally:
        done.set()
        for t in threads:
            t.join()
    assert not errors, errors
    for observed in seen:
        assert -1 not in observed, "a search answered from a mix of states"
        assert observed == sorted(observed), "a search saw an older state after a newer one"
    assert sum(len(s) for s in seen) > len(steps)  # searches did run beside the changes
    assert index.search(q, f, k=10, exact=True).ids.tobytes() == states[-1]


def test_changes_from_two_threads_are_both_kept(setup) -> None:
    catalog, workload = setup
    index = _build(catalog, workload)
    halves = [slice(N0, 3250), slice(3250, 4000)]
    start = threading.Barrier(2)

    def add(rows: slice) -> None:
        start.wait()
        n = rows.stop - rows.start
        index.add(catalog.vectors[rows], catalog.attributes.slice(rows.start, n), catalog.ids[rows])

    threads = [threading.Thread(target=add, args=(rows,)) for rows in halves]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(index) == 4000
    np.testing.assert_array_equal(np.sort(index.ids), np.sort(catalog.ids))
    whole = hqi.build(catalog.vectors, catalog.attributes, catalog.ids)
    q, f = setup[1].queries[:40], setup[1].filters[:40]
    np.testing.assert_array_equal(
        index.search(q, f, k=10, exact=True).ids, whole.search(q, f, k=10, exact=True).ids
    )


def test_a_change_inside_its_own_search_is_an_error(setup) -> None:
    catalog, workload = setup
    index = _build(catalog, workload)
    q = workload.queries[:5]

    def change(_: int) -> None:
        index.delete(catalog.ids[:10])

    with pytest.raises(hqi.InvalidInputError, match="inside one of its own searches"):
        index.search(q, k=10, on_progress=change)
    assert len(index) == N0
    index.delete(catalog.ids[:10])  # the lock was left as it was
    assert len(index) == N0 - 10


def _wait_until(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_lock_writer_waits_for_readers_and_blocks_new_ones() -> None:
    lock = ReadWriteLock()
    events: list[str] = []
    reading, release = threading.Event(), threading.Event()

    def reader() -> None:
        with lock.read():
            reading.set()
            release.wait()
            events.append("first read ends")

    def writer() -> None:
        with lock.write():
            events.append("write")

    def late_reader() -> None:
        with lock.read():
            events.append("late read")

    first = threading.Thread(target=reader)
    first.start()
    reading.wait()
    w = threading.Thread(target=writer)
    w.start()
    _wait_until(lambda: lock._writers_waiting == 1)
    late = threading.Thread(target=late_reader)
    late.start()
    time.sleep(0.05)
    assert events == []  # the writer waits for the reader, the late reader for the writer
    release.set()
    for t in (first, w, late):
        t.join()
    assert events == ["first read ends", "write", "late read"]


def test_lock_reads_nest_and_a_reader_cannot_write() -> None:
    lock = ReadWriteLock()
    assert not lock.held()
    with lock.read():
        with lock.read():  # no wait, even with a writer queued elsewhere
            assert lock.held()
        assert lock.held()
        with pytest.raises(RuntimeError, match="cannot write"), lock.write():
            pass
    assert not lock.held()
    with lock.write(), lock.read():
        assert lock.held()
    assert not lock.held()
