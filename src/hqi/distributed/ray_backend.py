"""Batch search and index build on Ray.

Search
------
The driver plans the batch exactly as locally (:func:`plan_batch`: routing,
strategy, probes). Partitions are placed on ``workers`` Ray actors, balanced
by weight (rows x (1 + how often the workload reaches them); longest
processing time first). Each actor memory-maps the index directory (shared
storage: the path must be readable at the same place on every node) or, for
an index that was never saved, gets the vectors once through the object
store. The driver sends each actor only its share of the plan:

- the (query, list) probes whose list lies in one of its partitions, with
  the filter masks of those partitions only;
- the prefilter (gather) groups whose qualifying rows lie mostly in its
  partitions;
- the query vectors those touch (renumbered), never the whole batch.

Each actor runs the local executor's kernels on its share and returns a
per-query top-k (positions, distances) for the queries it touched; the driver
merges them in (distance, position) order and recomputes the winners'
distances exactly, as the local executor does, so the results are identical
to the local backend for the same parameters.

Faults: each share runs as an actor task. If the actor dies (the task raises
``RayActorError``), the driver starts a new actor for the same partitions and
re-runs that share, up to ``max_retries`` times; results are unchanged. If a
share still fails, or the batch exceeds ``timeout_s``, the search raises
:class:`DistributedError` naming the partitions, never hangs.

Build
-----
:func:`ray_train_leaves` trains every leaf's IVF lists (FAISS k-means) as one
Ray task per leaf, with the vectors put in the object store once; the
partitioning and the written index are the local build's format.
"""

from __future__ import annotations

import contextlib
import os
import time
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from hqi._arrays import unique
from hqi.errors import HqiError, InvalidInputError

__all__ = ["DistributedError", "RayBackend", "ray_train_leaves", "require_ray", "shutdown_all"]

_LIVE: weakref.WeakSet[RayBackend] = weakref.WeakSet()


def shutdown_all() -> None:
    """Stop the actors of every live :class:`RayBackend` of this process."""
    for backend in list(_LIVE):
        backend.shutdown()


class DistributedError(HqiError, RuntimeError):
    """A distributed batch or build that could not complete."""


def require_ray() -> Any:
    """The ``ray`` module, or a clear error naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise InvalidInputError("the Ray backend needs Ray: pip install 'hqi[ray]'") from None
    return ray


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> Any:
    """Connect to the Ray cluster at ``address``, or start a local one."""
    ray = require_ray()
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False}
        if address:
            kwargs["address"] = address
        else:
            kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
            kwargs["include_dashboard"] = False
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise DistributedError(
                f"cannot connect to Ray at {address or 'local'}: {err}"
            ) from None
    return ray


# ------------------------------------------------------------------ placement


def place_partitions(
    sizes: np.ndarray, workers: int, hits: np.ndarray | None = None
) -> list[np.ndarray]:
    """Partitions per worker: longest-processing-time-first on rows x (1 + hits).

    ``hits[p]``: how many workload queries reach partition ``p`` (routing), so a
    hot partition counts for more than its size alone.
    """
    weight = sizes.astype(np.float64)
    if hits is not None and hits.sum() > 0:
        weight = weight * (1.0 + hits / max(1.0, float(hits.mean())))
    load = np.zeros(workers)
    owned: list[list[int]] = [[] for _ in range(workers)]
    for p in np.argsort(-weight, kind="stable"):
        w = int(np.argmin(load))
        owned[w].append(int(p))
        load[w] += weight[p]
    return [np.array(sorted(o), dtype=np.int64) for o in owned]


# ------------------------------------------------------------------ the share


@dataclass
class Share:
    """What one actor runs: a self-contained sub-plan over renumbered queries."""

    plan: Any  # BatchPlan over the share's queries
    queries: np.ndarray  # (q', d) the share's query vectors
    query_ids: np.ndarray  # (q',) their positions in the batch


def split_plan(plan: Any, queries: np.ndarray, owner: np.ndarray, workers: int) -> list[Share]:
    """Cut a :class:`BatchPlan` into one :class:`Share` per worker (see module doc)."""
    from hqi.execution.planner import BatchPlan

    if any(f.program >= 0 for f in plan.filters):
        # The actors hold no attribute matrix to test programs on: such plans
        # are made with backend="ray" (Index._plan), and keep masks.
        raise ValueError("a plan with compiled filter programs cannot be split for Ray")
    probe_worker = owner[plan.cell_part[plan.probe_cell]]
    pre_worker: dict[int, int] = {}
    for i, f in enumerate(plan.filters):
        if f.strategy == "prefilter" and f.parts.size:
            per = np.bincount(owner[f.parts], weights=f.counts, minlength=workers)
            pre_worker[i] = int(np.argmax(per))
    shares: list[Share] = []
    for w in range(workers):
        mine = probe_worker == w
        pre_filters = [i for i, ww in pre_worker.items() if ww == w]
        pre_queries = (
            np.flatnonzero(np.isin(plan.query_filter, pre_filters))
            if pre_filters
            else np.zeros(0, dtype=np.int64)
        )
        qids = unique(np.concatenate([plan.probe_query[mine], pre_queries])).astype(np.int64)
        if qids.size == 0:
            shares.append(Share(None, queries[:0], qids))
            continue
        used = unique(plan.query_filter[qids])
        new_filter = np.full(len(plan.filters), -1, dtype=np.int64)
        new_filter[used] = np.arange(used.size)
        filters = []
        for i in used:
            f = plan.filters[int(i)]
            if f.strategy == "prefilter" and int(i) in pre_filters:
                filters.append(replace(f, pred=None))  # gathers across partitions: all masks
            else:  # scans on this worker's partitions only: their masks, nothing to gather
                keep = {p: m for p, m in f.masks.items() if owner[p] == w}
                lists = {c: m for c, m in f.list_masks.items() if owner[plan.cell_part[c]] == w}
                strategy = "scan" if f.strategy == "prefilter" else f.strategy
                filters.append(
                    replace(f, pred=None, masks=keep, list_masks=lists, strategy=strategy)
                )
        remap = np.full(plan.query_filter.size, -1, dtype=np.int64)
        remap[qids] = np.arange(qids.size)
        sub = BatchPlan(
            query_filter=new_filter[plan.query_filter[qids]],
            filters=filters,
            probe_query=remap[plan.probe_query[mine]],
            probe_cell=plan.probe_cell[mine],
            cell_bounds=plan.cell_bounds,
            cell_part=plan.cell_part,
            nprobe=plan.nprobe,
            list_may=None if plan.list_may is None else plan.list_may[used],
        )
        shares.append(Share(sub, np.ascontiguousarray(queries[qids]), qids))
    return shares


def run_share(
    share: Share,
    vectors: np.ndarray,
    sq_norms: np.ndarray | None,
    part: Any,
    k: int,
    metric: Any,
    block_rows: int,
    query_block: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Run a share with the local executor: (top dist, top pos, computations)."""
    from hqi.execution.batch import collect_topk

    top, done = collect_topk(
        share.plan,
        vectors,
        sq_norms,
        share.queries,
        k,
        metric,
        part,
        block_rows=block_rows,
        query_block=query_block,
    )
    return top.dist, top.pos, done


class _Worker:
    """A Ray actor holding a view of the index's vectors and layout."""

    def __init__(
        self,
        source: Any,
        fault_file: str | None = None,
        fault_always: bool = False,
    ) -> None:
        from threadpoolctl import threadpool_limits

        self._limits = threadpool_limits(limits=1)  # one core per actor: no oversubscription
        self.fault_file = fault_file
        self.fault_always = fault_always
        if isinstance(source, str):
            from hqi.api import open as open_index

            index = open_index(source, verify=False)
            self.vectors = index._vectors
            self.sq_norms = index._sq_norms
            self.part = index._part
            self.metric = index._metric
        else:
            self.vectors, self.sq_norms, self.part, self.metric = source

    def run(self, share: Share, k: int, block_rows: int, query_block: int) -> Any:
        if self.fault_file is not None and (
            self.fault_always or not os.path.exists(self.fault_file)
        ):
            Path(self.fault_file).touch()
            os._exit(1)  # a real process death, as a crash or a lost node would be
        return run_share(
            share, self.vectors, self.sq_norms, self.part, k, self.metric, block_rows, query_block
        )

    def pid(self) -> int:
        return os.getpid()


class RayBackend:
    """Partitions of one index placed on Ray actors; answers planned batches.

    ``index``: an :class:`hqi.Index`. When it has a path (saved or opened),
    actors memory-map that directory, which every node must see at the same
    path; otherwise its arrays go through the object store once.
    ``workers``: actors (default: the cluster's CPUs, at most the partitions).
    ``workload``: sample filters whose routing weighs the placement.
    """

    def __init__(
        self,
        index: Any,
        *,
        address: str | None = None,
        workers: int | None = None,
        workload: list[str] | None = None,
        max_retries: int = 2,
        timeout_s: float = 600.0,
        _fault_file: str | None = None,
        _fault_always: bool = False,
    ) -> None:
        self.ray = ensure_ray(address)
        self.index = index
        cpus = int(self.ray.cluster_resources().get("CPU", 1))
        nparts = index._part.num_parts
        self.workers = max(1, min(workers or cpus, nparts))
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        sizes = np.diff(index._part.part_bounds)
        hits = self._hits(workload) if workload else None
        self.owned = place_partitions(sizes, self.workers, hits)
        self.owner = np.empty(nparts, dtype=np.int64)
        for w, parts in enumerate(self.owned):
            self.owner[parts] = w
        if index.path is not None and index._path_current:  # not changed since saved
            self.source: Any = str(index.path)
        else:
            self.source = self.ray.put(
                (index._vectors, index._sq_norms, index._part, index._metric)
            )
        self._fault = (_fault_file, _fault_always)
        self.actor_cls = self.ray.remote(num_cpus=1, max_restarts=0)(_Worker)
        self.actors = [self._start(w) for w in range(self.workers)]
        self.restarts = 0
        _LIVE.add(self)

    def _start(self, w: int) -> Any:
        fault_file, always = self._fault
        return self.actor_cls.remote(
            self.source, fault_file if w == 0 else None, always if w == 0 else False
        )

    def _hits(self, workload: list[str]) -> np.ndarray:
        hits = np.zeros(self.index._part.num_parts)
        for text in workload:
            pred = self.index.parse(text)
            if pred is None:
                hits += 1
                continue
            hits += self.index._zones.flags(pred).may_true.astype(np.float64)
        return hits

    def describe(self) -> list[dict[str, Any]]:
        """Per worker: its partitions and their rows."""
        sizes = np.diff(self.index._part.part_bounds)
        return [
            {"worker": w, "partitions": parts.tolist(), "rows": int(sizes[parts].sum())}
            for w, parts in enumerate(self.owned)
        ]

    def execute(
        self, plan: Any, queries: np.ndarray, k: int, block_rows: int, query_block: int
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """(positions, distances, computations) for a planned batch, as the local executor."""
        from hqi.execution.batch import finish_topk
        from hqi.execution.topk import TopK

        ray = self.ray
        shares = split_plan(plan, queries, self.owner, self.workers)
        pending = {
            w: self.actors[w].run.remote(s, k, block_rows, query_block)
            for w, s in enumerate(shares)
            if s.plan is not None
        }
        attempts = dict.fromkeys(pending, 0)
        deadline = time.monotonic() + self.timeout_s
        top = TopK(queries.shape[0], k)
        computed = 0
        while pending:
            by_ref = {ref: w for w, ref in pending.items()}
            left = deadline - time.monotonic()
            ready, _ = ray.wait(list(by_ref), num_returns=1, timeout=max(0.0, left))
            if not ready:
                for ref in by_ref:
                    with contextlib.suppress(Exception):  # finished or already cancelled
                        ray.cancel(ref)
                raise DistributedError(
                    f"the Ray batch did not complete within {self.timeout_s:.0f} s "
                    f"(workers {sorted(pending)} still running)"
                )
            ref = ready[0]
            w = by_ref[ref]
            try:
                dist, pos, done = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as err:
                attempts[w] += 1
                if attempts[w] > self.max_retries:
                    raise DistributedError(
                        f"Ray worker {w} (partitions {self.owned[w].tolist()}) failed "
                        f"{attempts[w]} times; the batch cannot complete: "
                        f"{str(err).splitlines()[0]}"
                    ) from None
                self.actors[w] = self._start(w)  # a fresh actor, same partitions
                self.restarts += 1
                pending[w] = self.actors[w].run.remote(shares[w], k, block_rows, query_block)
                continue
            del pending[w]
            qids = shares[w].query_ids
            top.push(qids, dist, pos)
            computed += int(done)
        pos, dist = finish_topk(top, self.index._vectors, queries, self.index._metric)
        return pos, dist, computed

    def shutdown(self) -> None:
        """Stop this backend's actors (each holds one CPU of the cluster)."""
        for a in self.actors:
            with contextlib.suppress(Exception):  # already dead
                self.ray.kill(a)
        self.actors = []
        _LIVE.discard(self)


# ---------------------------------------------------------------------- build


def _train_leaf(vectors: np.ndarray, rows: np.ndarray, seed: int, options: Any) -> Any:
    from threadpoolctl import threadpool_limits

    from hqi.index.ivf import train_lists

    with threadpool_limits(limits=1):
        size = options.rows_per_list(vectors.shape[0])
        return train_lists(vectors[rows], size, seed=seed, niter=options.kmeans_iters)


def ray_train_leaves(address: str | None = None) -> Any:
    """A ``train`` callable for :func:`build_partitioning`: one Ray task per leaf."""

    def train(vectors: np.ndarray, jobs: list[tuple[np.ndarray, int]], options: Any) -> Any:
        ray = ensure_ray(address)
        task = ray.remote(num_cpus=1)(_train_leaf)
        ref = ray.put(vectors)
        futures = [task.remote(ref, rows, seed, options) for rows, seed in jobs]
        try:
            return ray.get(futures)
        except ray.exceptions.RayError as err:
            raise DistributedError(f"a Ray build task failed: {str(err).splitlines()[0]}") from None

    return train
