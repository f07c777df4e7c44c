"""Search settings: a frozen, validated object built from keyword options."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from hqi.errors import InvalidInputError, check_option_names, positive_int, real_number

__all__ = ["DEFAULT_PROBE_ROWS", "SearchOptions", "available_cores"]

DEFAULT_PROBE_ROWS = 8192  # rows the default nprobe's lists hold in all (16 lists of 512)


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS/Windows
        return os.cpu_count() or 1


@dataclass(frozen=True, kw_only=True)
class SearchOptions:
    """How one ``Index.search`` call runs.

    ``k``: neighbours per query (> 0). Larger k costs little more on the
    exact path (top-k selection is O(rows), the merge O(k)).

    ``nprobe``: lists probed per query, the nearest by centroid among the
    lists of the partitions its filter is routed to (FAISS's meaning). More
    probes raise recall and cost proportionally. Default: lists of about
    8,192 rows in all, ``8192 // list_size`` (16 lists of 512 rows, 4 of
    2,048: the default list size grows with N, see :class:`hqi.BuildOptions`).

    ``recall_target``: instead of ``nprobe`` (giving both is an error), reach
    this recall@k (e.g. 0.95):
    the smallest nprobe (1, 2, 3, 4, 6, 8, 12, ...) that reaches it on
    ``calibration_queries`` queries sampled from the batch, judged against
    their exact answers, is used; the estimate is
    ``Result.stats["estimated_recall"]``. Calibration costs one exact search
    of the sample (for ``2 * k`` neighbours) and one plan of it per nprobe
    tried: a plan's recall is where its probes reach the exact answers, so
    no approximate search is run (1M, 10,000 queries, 200 sampled: 0.19 s
    at 0.95, beside about 0.85 s for the search at the nprobe chosen). The
    estimate is a sample's, and ``Result.stats["estimated_recall_stderr"]``
    is its standard error: on that batch 0.975 ± 0.005 where the whole
    batch measured 0.968. More ``calibration_queries`` narrow it, at the
    exact search's cost. Where an nprobe would compute about as many
    distances as exact search costs (``hqi.api.EXACT_COST_BF16``, ``_FP32``:
    exact plans' distances are cheaper), the batch is answered exactly
    instead (``stats["nprobe"]`` inf, estimated recall 1): MovieLens at
    0.99 (with bfloat16 products; at 0.95 its nprobe 16 computes 0.38 of
    the exact plan's distances and is the faster, 0.238 s against 0.286 s
    exactly, at recall 0.950).

    ``exact``: ``True`` forces exact answers (every list of every routed
    partition, or a prefilter scan): the reference every faster path is
    judged against.

    ``prefilter_ratio``: a filter whose qualifying rows, times this ratio, do
    not exceed the rows its probes would scan is answered by gathering just
    its qualifying rows (exact). It is the cost of a gathered row relative to
    a row read in place by a large matrix product, for a filter of one query;
    on the exact path a filter shared by ``n`` queries shares the gather's
    extra cost, so its ratio is ``1 + (prefilter_ratio - 1) / n``. Too low
    gathers where a scan is cheaper, too high scans many rows the filter
    rejects. 0 always prefilters; ``inf`` never does. ``None`` (default):
    100 (``hqi.api.PREFILTER_RATIO``), or 400 for exact plans that may run
    their products in bfloat16 (see ``products``; ``hqi.api.BF16_PREFILTER_RATIO``),
    where a row read in place costs less. For float32: on the 1M exact batch
    a single-query filter's gathered row cost 190 ns and a distance inside a
    scanned partition 3.7 ns (52x) where the GEMM ran at 118 GFLOP/s; at 168
    GFLOP/s the exact batch took 2.45 s at 100 against 2.63 s at 50 (200k:
    0.555 against 0.587 s; MovieLens 0.519 against 0.532 s; FB15k-237
    equal), approximate search within noise and recall within 0.0004. In
    bfloat16, 400 against 100: 1M exact 1.644 against 1.781 s, 200k 0.509
    against 0.550 s (MovieLens 0.396 against 0.386 s).

    ``probe_ratio``: besides its ``nprobe`` nearest lists, a query probes every
    list whose centroid is at most ``probe_ratio`` times as far from it as
    the nearest one (l2 and cosine; ``ip`` has no such distance and ignores
    it), up to ``max(4 * nprobe, 64)`` lists. A query near the border of
    several lists gets them all, one deep inside its list only ``nprobe``:
    the same recall for fewer rows. 1 turns it off (FAISS's nprobe).
    Default 1.05. Measured at 1M x 128 (10,000 queries, recall@10 and rows
    scanned per query): nprobe 6 alone 0.957 and 13,348 rows; nprobe 3 with
    1.04, 0.960 and 10,953; nprobe 16 alone 0.991 and 28,020; nprobe 4 with
    1.15, 0.994 and 14,678.

    ``expected_hits``: adaptive probing. Beyond ``nprobe``, a query keeps
    probing its next-nearest lists until they hold an expected
    ``expected_hits * k`` qualifying rows; too low loses recall on selective
    filters, too high scans more than needed. Default 3.

    ``threads``: BLAS and OpenMP threads; ``None`` uses the cores this process
    may run on. More than the cores only adds contention. The previous thread
    settings are restored after the call.

    ``parallel``: run the executor's cells on ``threads`` worker threads (each
    with one BLAS thread) instead of one thread with ``threads`` BLAS threads.
    ``True`` always uses workers, ``False`` never. ``None`` (default) uses
    them when the plan's distances times the dimension reach
    ``hqi.api.PARALLEL_MIN_WORK`` (1e9): measured faster there (exact and
    nprobe 16 at 200k rows: 24-35%; 1M rows: execution 13-20% faster at
    nprobe 4-16; FB15k-237 exact, 2.5e9: 66.8 -> 55.3 ms), and no faster on
    smaller plans, where thread start-up and the GIL outweigh the split.

    ``flat``: answer the batch exactly by one pass over all rows, each distinct
    filter evaluated once on the whole store, without the planner. ``None``
    (default) does so when that is cheaper: when the batch's rows x queries x
    dimension are under ``hqi.api.FLAT_WORK_PER_FILTER`` (3e6) per distinct
    filter, that is on small stores, where planning (about 0.1 ms per filter)
    costs more than scanning everything. ``True`` always, ``False`` never.
    ``Result.stats["flat"]`` says which ran. Never with ``backend="ray"``.

    ``block_rows``: rows per distance block read in place. Larger blocks
    amortize the per-block Python and call overhead; smaller ones bound
    memory, which is about ``4 * block_rows * query_block`` bytes per block.
    Gathered rows go in blocks of at most 4,096 (they are read back from
    cache). 8,192 to 65,536 measured the same at 1M.

    ``query_block``: queries per distance block (see ``block_rows``). Both
    shape float32 products; bfloat16 products (``products``) take their own,
    4,096 rows by 2,048 queries (:mod:`hqi.execution.products`).

    ``products``: how the executor multiplies rows by queries. ``"fp32"``:
    float32 BLAS. ``"bf16"``: bfloat16 on the CPU's AMX units through torch
    (``pip install 'hqi[amx]'``). Plans whose answers must be exact (exact
    search, or probes of every list) bound the rounding so that the answers
    are those of float32; other approximate plans multiply the rows less their
    list's mean (short vectors, so small errors), keep a few more candidates
    than k (12 for k = 10) and re-rank them in float32: the recall of float32
    at the same probes (:mod:`hqi.execution.products`). The first such search
    converts the rows once (2 bytes a value each way, kept with the index).
    ``"auto"`` (default): ``"bf16"`` where torch is installed and the CPU has
    AMX, for exact plans of ``hqi.api.BF16_MIN_WORK`` (1e10) multiply-adds or
    more and approximate ones of ``hqi.api.BF16_APPROX_MIN_WORK`` (4e9), else
    ``"fp32"`` (smaller plans measured no faster in bfloat16).
    ``Result.stats["bf16"]`` says which ran, ``stats["candidates"]`` how many
    candidates a query kept.

    ``backend``: ``"local"`` (this process) or ``"ray"``: the partitions are
    placed on Ray actors and each gets only its share of the planned batch
    (:mod:`hqi.distributed`); the results are identical. ``ray_address``:
    the cluster to join (``None``: a local Ray). ``ray_workers``: actors
    (default: the cluster's CPUs, at most the partitions).
    """

    k: int = 10
    nprobe: int | None = None
    recall_target: float | None = None
    calibration_queries: int = 200
    exact: bool = False
    prefilter_ratio: float | None = None
    expected_hits: float = 3.0
    probe_ratio: float = 1.05
    threads: int | None = None
    parallel: bool | None = None
    flat: bool | None = None
    block_rows: int = 65536
    query_block: int = 256
    products: str = "auto"
    backend: str = "local"
    ray_address: str | None = None
    ray_workers: int | None = None

    def __post_init__(self) -> None:
        # Frozen: each checked value is stored back as a plain int or float, so
        # NumPy scalars (k=np.int64(10)) are accepted.
        def store(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name in ("k", "calibration_queries", "block_rows", "query_block"):
            store(name, positive_int(name, getattr(self, name)))
        for name in ("nprobe", "threads", "ray_workers"):
            if getattr(self, name) is not None:
                store(name, positive_int(name, getattr(self, name)))
        if self.nprobe is not None and self.recall_target is not None:
            raise InvalidInputError(
                "give nprobe or recall_target, not both: recall_target chooses the nprobe"
            )
        if self.recall_target is not None:
            target = real_number("recall_target", self.recall_target, "in (0, 1]")
            if not 0 < target <= 1:
                raise InvalidInputError(f"recall_target must be in (0, 1], got {target!r}")
            store("recall_target", target)
        hits = real_number("expected_hits", self.expected_hits, ">= 0")
        if not hits >= 0:
            raise InvalidInputError(f"expected_hits must be >= 0, got {hits!r}")
        pr = real_number("probe_ratio", self.probe_ratio, "a finite number >= 1")
        if not 1 <= pr < float("inf"):
            raise InvalidInputError(f"probe_ratio must be a finite number >= 1, got {pr!r}")
        if self.prefilter_ratio is not None:
            ratio = real_number("prefilter_ratio", self.prefilter_ratio, ">= 0 or None")
            if not ratio >= 0:
                raise InvalidInputError(f"prefilter_ratio must be >= 0 or None, got {ratio!r}")
            store("prefilter_ratio", ratio)
        store("expected_hits", hits)
        store("probe_ratio", pr)
        for name in ("exact", "parallel", "flat"):
            if isinstance(getattr(self, name), np.bool_):
                store(name, bool(getattr(self, name)))
        if self.parallel is not None and not isinstance(self.parallel, bool):
            raise InvalidInputError(f"parallel must be True, False or None, got {self.parallel!r}")
        if self.flat is not None and not isinstance(self.flat, bool):
            raise InvalidInputError(f"flat must be True, False or None, got {self.flat!r}")
        if self.products not in ("auto", "fp32", "bf16"):
            raise InvalidInputError(
                f"products must be 'auto', 'fp32' or 'bf16', got {self.products!r}"
            )
        if self.backend not in ("local", "ray"):
            raise InvalidInputError(f"backend must be 'local' or 'ray', got {self.backend!r}")
        if not isinstance(self.exact, bool):
            raise InvalidInputError(f"exact must be True or False, got {self.exact!r}")

    @classmethod
    def from_kwargs(cls, **options: Any) -> SearchOptions:
        """Build from keyword options; an unknown name is an error with a suggestion."""
        check_option_names("search", options, [f.name for f in fields(cls)])
        return cls(**options)

    @property
    def num_threads(self) -> int:
        return self.threads or available_cores()
