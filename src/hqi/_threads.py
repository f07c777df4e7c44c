"""Explicit thread pools: BLAS and OpenMP (FAISS) limited per call, then restored."""

from __future__ import annotations

import itertools
import sys
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


def run_split(run: Callable[[int, int], None], bounds: Sequence[int]) -> None:
    """``run(a, b)`` for each run ``[a, b)`` between consecutive ``bounds``, each
    on a thread of its own (a single run: in this thread). For compiled
    kernels that release the GIL, writing disjoint slices."""
    runs = list(itertools.pairwise(bounds))
    if len(runs) == 1:
        run(*runs[0])
        return
    with ThreadPoolExecutor(len(runs)) as pool:
        list(pool.map(run, [a for a, _ in runs], [b for _, b in runs]))
