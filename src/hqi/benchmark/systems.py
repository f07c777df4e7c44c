"""The systems a benchmark compares, behind one small protocol.

Every system answers the same batch: (Q, d) queries, one SQL filter each, k.
Filters are evaluated with hqi's filter engine for the baselines too (a FAISS
or hnswlib user needs the selection from somewhere), inside the timed region,
once per distinct filter. Baselines get each distinct filter's queries in one
call where the library allows it. FAISS parallelizes a call over its
queries only, and a batch's distinct filters have about two queries each,
so the FAISS baselines sweep how their calls run as a grid parameter
(:data:`CALLS`): one after the other, or dealt to as many worker threads as
the benchmark has (:func:`_by_filter`). Which is faster depends on the
data: at 1M rows the workers are (1.77x), on FB15k-237's 14,541 rows the
calls one after the other are (the workers' GIL hand-offs cost more than
the calls). Ids returned are input row numbers.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

import hqi
from hqi._threads import one_blas_thread
from hqi.collection import Metric
from hqi.execution.exact import Group, exact_search
from hqi.execution.products import bf16_available
from hqi.query import ColumnStore, FilterParser, Predicate
from hqi.query.columns import normalize_table
from hqi.query.evaluate import BatchEvaluator
from hqi.query.patterns import forget_patterns

__all__ = ["LEVELS", "SYSTEMS", "BenchData", "System"]


LEVELS = (0.90, 0.95, 0.99)  # the recall@k levels the report reads best QPS at
# How a baseline's per-filter calls run (grid parameter "calls"): one after the
# other, or dealt to the benchmark's threads (_by_filter).
CALLS = ("serial", "parallel")


def _workers(params: dict[str, Any], threads: int) -> int:
    """Worker threads for a grid point's per-filter calls (``calls``, default parallel)."""
    calls = params.get("calls", "parallel")
    if calls not in CALLS:
        raise ValueError(f"calls must be one of {CALLS}, not {calls!r}")
    return threads if calls == "parallel" else 1


@dataclass(frozen=True)
class BenchData:
    """A collection, a training workload (filters) and a query batch."""

    name: str
    vectors: np.ndarray
    attributes: Any  # pyarrow Table
    train_filters: list[str]
    queries: np.ndarray
    filters: list[str]
    k: int


def distinct_groups(filters: Sequence[str]) -> Iterator[tuple[str, np.ndarray]]:
    """(filter, query indices) for each distinct filter of the batch."""
    groups: dict[str, list[int]] = {}
    for i, f in enumerate(filters):
        groups.setdefault(f, []).append(i)
    for f, members in groups.items():
        yield f, np.asarray(members)


class System(Protocol):
    name: str

    def build(self, data: BenchData, threads: int) -> None: ...

    def grid(self) -> list[dict[str, Any]]: ...

    def search(self, data: BenchData, params: dict[str, Any], threads: int) -> np.ndarray: ...

    def clear_filter_caches(self) -> None:
        """Forget what is kept per filter text or literal, so that the next
        search parses and compiles its filters as new ones."""


class _Filters:
    """Filter evaluation over input-order rows, for the baselines."""

    def __init__(self, data: BenchData) -> None:
        self.store = ColumnStore(normalize_table(data.attributes))
        self.parser = FilterParser(self.store.schema)

    def clear(self) -> None:
        """Forget the parsed filters and matched patterns (kept per literal)."""
        self.parser.clear()
        forget_patterns()

    def masks(self, filters: Sequence[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        evaluator = BatchEvaluator(self.store)
        for pred, qids in self.parsed(filters):
            yield qids, evaluator.mask(pred)

    def parsed(self, filters: Sequence[str]) -> list[tuple[Predicate | None, np.ndarray]]:
        """(predicate, query indices) of each distinct filter of the batch."""
        return [(self.parser.parse(text), qids) for text, qids in distinct_groups(filters)]


def _by_filter(
    filters: _Filters,
    texts: Sequence[str],
    k: int,
    threads: int,
    answer: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """Ids (Q, k) of a batch answered filter by filter: ``answer(qids, mask)``
    gives the ids (``len(qids)``, k) of one distinct filter's queries, its mask
    over the rows given. The filters go to ``threads`` worker threads, each
    taking the next one when done with its last, evaluating its masks with its
    own evaluator, and running FAISS on one OpenMP thread and BLAS on one
    thread (FAISS and numpy release the GIL).

    FAISS parallelizes one search call over its queries, and the 1M batch's
    5,069 distinct filters have about two queries each: with the calls made
    one after the other, most ran on one core of two. IVF + IDSelector at 1M,
    nprobe 56 (the batch of ``hqi bench --n 1000000``): 7.49 and 7.59 s on
    one worker, 4.24 and 4.24 s on two, the same ids; FAISS's
    ``parallel_mode = 1`` instead (one query's lists split among its
    threads, the calls one after the other): 5.94 and 6.18 s. Small stores
    lose: on FB15k-237's 14,541 rows (``bench/kg_related.py``, nprobe 24)
    26,922 q/s on one worker against 16,000 on two, whose calls of tens of
    microseconds hand the GIL back and forth; hence :data:`CALLS`."""
    groups = filters.parsed(texts)
    out = np.full((len(texts), k), -1, dtype=np.int64)
    taken = itertools.count()  # next() on it is atomic under the GIL
    failed = threading.Event()  # a worker raised: the others stop taking filters

    def worker(own_threads: bool) -> None:
        if own_threads:
            _faiss().omp_set_num_threads(1)  # this thread's OpenMP setting only
        evaluator = BatchEvaluator(filters.store)  # its own cache of the atoms' masks
        while not failed.is_set() and (i := next(taken)) < len(groups):
            pred, qids = groups[i]
            try:
                out[qids] = answer(qids, evaluator.mask(pred))
            except BaseException:
                failed.set()
                raise

    if threads <= 1 or len(groups) <= 1:
        worker(False)
        return out
    with one_blas_thread(), ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(worker, True) for _ in range(threads)]:
            future.result()
    return out


class _Filtered:
    """A baseline that evaluates its filters with :class:`_Filters`."""

    filters: _Filters

    def clear_filter_caches(self) -> None:
        """Forget what is kept per filter text (before each timed search)."""
        self.filters.clear()


class Hqi:
    name = "hqi"

    def build(self, data: BenchData, threads: int) -> None:
        self.index = hqi.build(
            data.vectors, data.attributes, workload=data.train_filters, threads=threads
        )

    def grid(self) -> list[dict[str, Any]]:
        """nprobe with the default probe_ratio; wider and no ratio probing (FAISS's
        nprobe) at a few points; self-tuned (``recall_target`` at each level the
        report reads, its calibration timed with the search); exact."""
        return (
            [{"nprobe": n} for n in (1, 2, 3, 4, 5, 6, 8, 12, 16, 24)]
            + [{"nprobe": n, "probe_ratio": r} for r in (1.1, 1.2) for n in (2, 3, 4)]
            + [{"nprobe": n, "probe_ratio": 1.0} for n in (4, 6, 8, 16, 32)]
            + [{"recall_target": t} for t in LEVELS]
            + [{"exact": True}]
        )

    def warmup_grid(self) -> list[dict[str, Any]]:
        """Untimed searches before the grid (:func:`hqi.benchmark.harness.run_benchmark`):
        the first point, and an exact search, whose first run in a process makes
        the rows' bfloat16 copy and compiles the products' shapes when the
        products run in bfloat16 (``hqi[amx]``). Without it that one-off cost
        fell into one of the exact point's timed runs (1M: 1.398 against 1.207
        s in run 36, whose median of two averaged them). Likewise, where the
        products can run in bfloat16, an approximate search on residuals
        (their copy, 0.24 s at 1M, and their pass's compilation)."""
        warm = [self.grid()[0], {"exact": True}]
        if bf16_available():
            warm.append({"nprobe": 2, "products": "bf16"})
        return warm

    def clear_filter_caches(self) -> None:
        """Forget what the index keeps per filter text or literal
        (:meth:`hqi.Index.clear_filter_caches`; before each timed search)."""
        self.index.clear_filter_caches()

    def search(self, data: BenchData, params: dict[str, Any], threads: int) -> np.ndarray:
        """The batch's ids. A batch small enough for hqi's flat path (exact, no
        planner: ``SearchOptions.flat``) marks its point ``flat=True``, since
        the nprobe asked for then played no part."""
        res = self.index.search(data.queries, data.filters, data.k, threads=threads, **params)
        if res.stats.get("flat"):
            params["flat"] = True
        return res.ids


class BruteForce(_Filtered):
    """The foundation's exact path: grouped brute force over gathered rows."""

    name = "exact-grouped-bruteforce"

    def build(self, data: BenchData, threads: int) -> None:
        self.filters = _Filters(data)
        self.sq = np.einsum("ij,ij->i", data.vectors, data.vectors)

    def grid(self) -> list[dict[str, Any]]:
        return [{}]

    def search(self, data: BenchData, params: dict[str, Any], threads: int) -> np.ndarray:
        groups = [
            Group(qids, np.flatnonzero(mask)) for qids, mask in self.filters.masks(data.filters)
        ]
        pos, _, _ = exact_search(data.vectors, self.sq, data.queries, groups, data.k, Metric.L2)
        return pos


def _faiss() -> Any:
    """FAISS, untyped: its SWIG bindings' type hints do not match the runtime API."""
    import importlib

    return importlib.import_module("faiss")


def _bitmap_selector(mask: np.ndarray) -> tuple[Any, np.ndarray]:
    faiss = _faiss()

    bits = np.packbits(mask, bitorder="little")
    return faiss.IDSelectorBitmap(mask.size, faiss.swig_ptr(bits)), bits


def _selector_search(
    index: Any,
    filters: _Filters,
    data: BenchData,
    threads: int,
    make_params: Callable[[Any], Any],
) -> np.ndarray:
    """One FAISS search call per distinct filter, with a bitmap IDSelector, the
    filters on ``threads`` workers (:func:`_by_filter`)."""

    def answer(qids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        sel, _bits = _bitmap_selector(mask)  # _bits keeps the bitmap alive during the call
        _, ids = index.search(data.queries[qids], data.k, params=make_params(sel))
        return ids

    return _by_filter(filters, data.filters, data.k, threads, answer)


class FaissIVFSelector(_Filtered):
    name = "faiss-ivf-idselector"
    nlist_per_sqrt = 4

    def build(self, data: BenchData, threads: int) -> None:
        faiss = _faiss()

        n, d = data.vectors.shape
        # 4 sqrt(N) lists, but at least 39 training points per list, FAISS's own
        # minimum (below it FAISS warns, and its k-means underfits): small sets.
        nlist = max(1, min(int(self.nlist_per_sqrt * np.sqrt(n)), n // 39))
        quantizer = faiss.IndexFlatL2(d)
        self.index = faiss.IndexIVFFlat(quantizer, d, nlist)
        rng = np.random.default_rng(0)
        train = data.vectors[rng.choice(n, size=min(n, 64 * nlist), replace=False)]
        self.index.train(train)
        self.index.add(data.vectors)
        self.filters = _Filters(data)

    def grid(self) -> list[dict[str, Any]]:
        # Steps of at most 1.25x between recall 0.9 and 0.98, as fine as hqi's grid
        # there (at 1M, nprobe 48 reached 0.9498 and 64 cost 7% more than 56).
        grid = (4, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 128, 256, 512)
        return [{"nprobe": n, "calls": c} for n in grid for c in CALLS]

    def search(self, data: BenchData, params: dict[str, Any], threads: int) -> np.ndarray:
        return _selector_search(
            self.index,
            self.filters,
            data,
            _workers(params, threads),
            lambda sel: _faiss().SearchParametersIVF(sel=sel, nprobe=params["nprobe"]),
        )


class FaissIVFPostFilter(FaissIVFSelector):
    name = "faiss-ivf-postfilter"

    def grid(self) -> list[dict[str, Any]]:
        return [
            {"nprobe": n, "expand": e, "calls": c}
            for n in (8, 32, 128)
            for e in (10, 100)
            for c in CALLS
        ]

    def search(self, data: BenchData, params: dict[str, Any], threads: int) -> np.ndarray:
        faiss = _faiss()

        kk = data.k * params["expand"]
        sp = faiss.SearchParametersIVF(nprobe=params["nprobe"])
        _, cand = self.index.search(data.queries, kk, params=sp)  # all queries, one call

        def answer(qids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            c = cand[qids]
            ok = (c >= 0) & mask[np.maximum(c, 0)]
            order = np.argsort(~ok, axis=1, kind="stable")[:, : data.k]
            picked = np.take_along_axis(c, order, 1)
            return np.where(np.take_along_axis(ok, order, 1), picked, -1)

        return _by_filter(self.filters, data.filters, data.k, _workers(params, threads), answer)


class FaissHNSWSelector(_Filtered):
    name = "faiss-hnsw-idselector"

    def build(self, data: BenchData, threads: int) -> None:
        faiss = _faiss()

        self.index = faiss.IndexHNSWFlat(data.vectors.shape[1], 32)
        self.index.hnsw.efConstruction = 80
        self.index.add(data.vectors)
        self.filters = _Filters(data)

    def grid(self) -> list[dict[str, Any]]:
        return [{"efSearch": e, "calls": c} for e in (16, 32, 64, 128, 256, 512) for c in CALLS]

    def search(self, data: BenchData, params: dict[str, Any], threads: int) -> np.ndarray:
        return _selector_search(
            self.index,
            self.filters,
            data,
            _workers(params, threads),
            lambda sel: _faiss().SearchParametersHNSW(sel=sel, efSearch=params["efSearch"]),
        )


class Hnswlib(_Filtered):
    """hnswlib's filtered search: a Python callback per visited candidate."""

    name = "hnswlib-filter"
    max_queries = 300  # the callback is slow: timed on a prefix of the batch

    def build(self, data: BenchData, threads: int) -> None:
        import hnswlib

        n, d = data.vectors.shape
        self.index = hnswlib.Index(space="l2", dim=d)
        self.index.init_index(max_elements=n, ef_construction=80, M=16, random_seed=0)
        self.index.add_items(data.vectors, np.arange(n), num_threads=threads)
        self.filters = _Filters(data)

    def grid(self) -> list[dict[str, Any]]:
        return [{"ef": e} for e in (32, 128, 512)]

    def search(self, data: BenchData, params: dict[str, Any], threads: int) -> np.ndarray:
        self.index.set_ef(params["ef"])
        nq = min(len(data.queries), self.max_queries)

        def answer(qids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            ids = np.full((qids.size, data.k), -1, dtype=np.int64)
            allowed = mask.__getitem__
            for j, q in enumerate(qids.tolist()):
                try:
                    labels, _ = self.index.knn_query(
                        data.queries[q : q + 1], k=data.k, num_threads=1, filter=allowed
                    )
                except RuntimeError:  # fewer than k reachable matches
                    continue
                ids[j] = labels[0]
            return ids

        out = np.full((len(data.queries), data.k), -1, dtype=np.int64)
        # One after the other: the callback holds the GIL, so workers would only
        # take turns.
        out[:nq] = _by_filter(self.filters, data.filters[:nq], data.k, 1, answer)
        return out


SYSTEMS: dict[str, type] = {
    cls.name: cls
    for cls in (Hqi, BruteForce, FaissIVFSelector, FaissIVFPostFilter, FaissHNSWSelector, Hnswlib)
}
