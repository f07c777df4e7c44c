"""Explicit thread pools: BLAS and OpenMP (FAISS) limited per call, then restored."""

from __future__ import annotations

import itertools
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
from threadpoolctl import ThreadpoolController

__all__ = ["even_bounds", "limit_threads", "one_blas_thread", "run_split"]


_controller: tuple[int, ThreadpoolController] | None = None


def _pools() -> ThreadpoolController:
    """threadpoolctl's handle on the process's BLAS and OpenMP pools, taken again
    when the number of imported modules changed (an import may load a pool).
    Taking it scans every loaded shared library: 0.4 ms with torch loaded,
    twice a search (``threadpool_limits`` takes it on every call); limiting
    through a kept one takes 0.02 ms."""
    global _controller
    modules = len(sys.modules)
    if _controller is None or _controller[0] != modules:
        _controller = (modules, ThreadpoolController())
    return _controller[1]


@contextmanager
def limit_threads(threads: int) -> Iterator[None]:
    """Run the block with at most ``threads`` BLAS and OpenMP threads."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        with _pools().limit(limits=threads):
            yield
    finally:
        faiss.omp_set_num_threads(before)


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block's BLAS calls on the calling thread alone.

    For work whose parallel parts run on the process's own threads: the
    executor's workers (one product each) and the planner (small products).
    After a call that used them, OpenBLAS's extra threads spin for about
    0.1 s waiting for the next one, taking a core from whatever runs next on
    two cores. Planning under it: 1M, nprobe 2, medians of 7, four
    alternating rounds, 0.453 -> 0.430 s a search, the planning itself no
    slower, the same ids."""
    with _pools().limit(limits=1, user_api="blas"):
        yield


def even_bounds(n: int, parts: int) -> list[int]:
    """Bounds of ``parts`` runs of ``[0, n)`` of (about) equal length."""
    return np.linspace(0, n, max(1, parts) + 1).astype(np.int64).tolist()


# run_split's helpers, kept between calls: a search makes about 50 such calls
# (planning, exact distances, sorts), and a pool made for each cost about
# 0.25 ms (two threads started and joined) against 0.06 ms through kept ones.
_split_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (process id, threads, it)
_split_lock = threading.Lock()
_in_split = threading.local()


def _helpers(count: int) -> ThreadPoolExecutor:
    """The kept pool of at least ``count`` helper threads (made again in a forked
    child, whose copy of the pool has no threads)."""
    global _split_pool
    with _split_lock:
        held = _split_pool
        if held is None or held[0] != os.getpid() or held[1] < count:
            if held is not None and held[0] == os.getpid():
                held[2].shutdown(wait=False)  # its queued runs still finish
            pool = ThreadPoolExecutor(count, thread_name_prefix="hqi-split")
            held = _split_pool = (os.getpid(), count, pool)
        return held[2]


def _as_helper(run: Callable[[int, int], None], a: int, b: int) -> None:
    _in_split.active = True  # a split inside runs here: a helper never waits on helpers
    run(a, b)


def run_split(run: Callable[[int, int], None], bounds: Sequence[int]) -> None:
    """``run(a, b)`` for each run ``[a, b)`` between consecutive ``bounds``: the first
    in this thread, each other one on a kept helper thread (a single run, or a
    call from inside a helper: all in this thread). For compiled kernels that
    release the GIL, writing disjoint slices."""
    runs = list(itertools.pairwise(bounds))
    if len(runs) == 1 or getattr(_in_split, "active", False):
        for a, b in runs:
            run(a, b)
        return
    pool = _helpers(len(runs) - 1)
    futures = [pool.submit(_as_helper, run, a, b) for a, b in runs[1:]]
    try:
        run(*runs[0])
    finally:
        errors = [f.exception() for f in futures]  # every run ends before this returns
    for error in errors:
        if error is not None:
            raise error
