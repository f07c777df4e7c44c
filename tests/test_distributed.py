"""The Ray backend: identical results to the local one, placement, faults, build, CLI.

Runs on a local Ray (``ray.init(num_cpus=2)``), started once for the module.
Skips when Ray is not installed (it is in the ``test`` extra).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hqi
from hqi.distributed import DistributedError, RayBackend, place_partitions, split_plan
from hqi.execution.options import SearchOptions


@given(
    sizes=st.lists(st.integers(0, 10_000), min_size=1, max_size=40),
    workers=st.integers(1, 8),
    with_hits=st.booleans(),
)
@settings(max_examples=100, deadline=None)
def test_placement_assigns_each_partition_once_and_balances(sizes, workers, with_hits) -> None:
    sizes_a = np.array(sizes)
    hits = np.arange(len(sizes), dtype=np.float64) % 3 if with_hits else None
    owned = place_partitions(sizes_a, workers, hits)
    assert len(owned) == workers
    every = np.sort(np.concatenate(owned))
    assert every.tolist() == list(range(len(sizes)))
    weight = sizes_a.astype(float)
    if hits is not None and hits.sum() > 0:
        weight = weight * (1 + hits / max(1.0, hits.mean()))
    loads = [weight[o].sum() for o in owned]
    # LPT: no worker exceeds the lightest by more than the heaviest single partition
    assert max(loads) - min(loads) <= weight.max() + 1e-9


@pytest.fixture(scope="module")
def data():
    from hqi.datasets import make_catalog, make_workload

    catalog = make_catalog(12_000, 16, seed=21)
    train = make_workload(catalog, 400, seed=22)
    batch = make_workload(catalog, 300, seed=23)
    return catalog, train, batch


@pytest.fixture(scope="module")
def index(data):
    catalog, train, _ = data
    return hqi.build(
        catalog.vectors, catalog.attributes, catalog.ids, workload=train.filters, list_size=128
    )


def _estimate_here(monkeypatch) -> None:
    """Route on the row sample at this small size, as the planner does at 1M."""
    from hqi.execution.planner import planning

    monkeypatch.setattr(planning, "SAMPLE_MIN_ROWS", 0)
    monkeypatch.setattr(planning, "COUNT_ROWS", -1)  # on the sample, not counted
    monkeypatch.setattr(planning, "MIN_SAMPLE_HITS", 2)


@pytest.mark.parametrize("estimate", [False, True])
@pytest.mark.parametrize("opts", [{}, {"exact": True}, {"nprobe": 2}, {"prefilter_ratio": 0}])
def test_split_plan_covers_every_probe_once(index, data, opts, estimate, monkeypatch) -> None:
    """Without Ray: the shares together are the plan (every probe, every gather)."""
    _, _, batch = data
    if estimate:
        _estimate_here(monkeypatch)
    # Every fourth query's filter does not compile (2**6 clauses in normal
    # form): estimated, it is masked on its probed lists.
    filters = list(batch.filters)
    filters[::4] = [NOT_COMPILED] * len(filters[::4])
    local_opts = SearchOptions.from_kwargs(**opts)
    o = SearchOptions.from_kwargs(**opts, backend="ray")  # planned as for Ray: masks only
    plan = index._plan(batch.queries, filters, o, index._nprobe_for(o))
    if estimate and opts in ({}, {"nprobe": 2}):  # scans (not exact, not all prefilter)
        assert any(f.list_masks for f in plan.filters)
    assert not any(f.program >= 0 for f in plan.filters)
    owner = np.arange(index._part.num_parts) % 3
    # A plan made for this process tests compiled programs, which the actors
    # cannot: it is refused.
    tested = index._plan(batch.queries, filters, local_opts, index._nprobe_for(local_opts))
    if any(f.program >= 0 for f in tested.filters):
        with pytest.raises(ValueError, match="programs"):
            split_plan(tested, batch.queries, owner, 3)
    shares = split_plan(plan, batch.queries, owner, 3)
    probes = sorted(
        (int(s.query_ids[q]), int(c))
        for s in shares
        if s.plan is not None
        for q, c in zip(s.plan.probe_query, s.plan.probe_cell, strict=True)
    )
    assert probes == sorted(zip(plan.probe_query.tolist(), plan.probe_cell.tolist(), strict=True))
    from hqi.distributed.ray_backend import run_share

    computed = sum(
        run_share(s, index._vectors, index._sq_norms, index._part, 10, index._metric, 65536, 256)[2]
        for s in shares
        if s.plan is not None
    )
    _, _, local = index._run(batch.queries, plan, o)
    assert computed == local


NOT_COMPILED = " OR ".join(f"(year >= {1960 + 5 * i} AND popularity > {i})" for i in range(6))


def test_split_plan_ships_selective_filters_rows(index, data, monkeypatch) -> None:
    """Without Ray: with the candidate-rows path on at this size, prefiltered
    selective filters carry their rows (no masks) to the shares, and the
    shares' merged top-k is the local answer."""
    import importlib

    from hqi.distributed.ray_backend import run_share
    from hqi.execution.topk import TopK

    monkeypatch.setattr(importlib.import_module("hqi.query.evaluate"), "SPARSE_MIN_ROWS", 0)
    _, _, batch = data
    o = SearchOptions.from_kwargs(exact=True, backend="ray")  # planned as for Ray: no programs
    plan = index._plan(batch.queries, batch.filters, o, index._nprobe_for(o))
    assert any(f.row_ids is not None and not f.masks for f in plan.filters)
    shares = split_plan(plan, batch.queries, np.arange(index._part.num_parts) % 3, 3)
    top = TopK(len(batch.queries), 10)
    for share in shares:
        if share.plan is not None:
            dist, pos, _ = run_share(
                share, index._vectors, index._sq_norms, index._part, 10, index._metric, 65536, 256
            )
            top.push(share.query_ids, dist, pos)
    from hqi.execution.batch import collect_topk

    local, _ = collect_topk(
        plan, index._vectors, index._sq_norms, batch.queries, 10, index._metric, index._part
    )
    np.testing.assert_array_equal(top.pos, local.pos)


ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'hqi[ray]')")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def _release_actors():
    """Each backend's actors hold a CPU of the 2-CPU test cluster: stop them after a test."""
    yield
    from hqi.distributed import shutdown_all

    shutdown_all()


def _same(a: hqi.Result, b: hqi.Result) -> None:
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.distances, b.distances)


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"exact": True},
        {"nprobe": 1},
        {"recall_target": 0.9},
        {"prefilter_ratio": 0},
        {"estimate": True},
    ],
)
def test_ray_results_identical_to_local(local_ray, index, data, opts, monkeypatch) -> None:
    _, _, batch = data
    opts = dict(opts)
    if opts.pop("estimate", False):  # estimated filters: their list masks split by owner
        _estimate_here(monkeypatch)
    # Ray plans keep masks (no compiled filters: the executors there hold no
    # attribute matrix), so the local plan does too, for equal rows scanned.
    monkeypatch.setattr(hqi.api, "COMPILED_FILTERS", False)
    local = index.search(batch.queries, batch.filters, 10, **opts)
    distributed = index.search(
        batch.queries, batch.filters, 10, backend="ray", ray_workers=2, **opts
    )
    _same(local, distributed)
    assert distributed.stats["rows_scanned"] == local.stats["rows_scanned"]


def test_ray_from_saved_index_cosine_string_ids(local_ray, data, tmp_path) -> None:
    catalog, train, batch = data
    ids = [f"e{i}" for i in range(len(catalog.ids))]
    built = hqi.build(
        catalog.vectors, catalog.attributes, ids, metric="cosine", workload=train.filters
    )
    built.save(tmp_path / "idx")
    index = hqi.open(tmp_path / "idx")
    backend = index.ray_backend(workers=2, workload=train.filters)
    assert backend.source == str(tmp_path / "idx")  # actors memory-map the directory
    assert sorted(p for w in backend.describe() for p in w["partitions"]) == list(
        range(index._part.num_parts)
    )
    local = index.search(batch.queries, batch.filters, 5)
    distributed = index.search(batch.queries, batch.filters, 5, backend="ray", ray_workers=2)
    _same(local, distributed)
    assert (local.keys == distributed.keys).all()
    related = index.search_by_id(ids[:20], "year >= 1990", 5, backend="ray", ray_workers=2)
    _same(index.search_by_id(ids[:20], "year >= 1990", 5), related)


def test_ray_after_changes_to_an_opened_index(local_ray, data, tmp_path) -> None:
    """Actors of an opened index map its files; once it changes (add, delete)
    they must get its rows instead, until it is saved again."""
    catalog, train, batch = data
    n0 = len(catalog.ids) - 500
    rows = (catalog.vectors[:n0], catalog.attributes.slice(0, n0), catalog.ids[:n0])
    hqi.build(*rows, workload=train.filters).save(tmp_path / "idx")
    index = hqi.open(tmp_path / "idx")
    assert isinstance(index.ray_backend(workers=2).source, str)
    index.add(catalog.vectors[n0:], catalog.attributes.slice(n0), catalog.ids[n0:])
    index.delete(catalog.ids[:100])
    q, f = batch.queries, batch.filters
    truth = index.search(q, f, 5, exact=True)
    assert not isinstance(index.ray_backend(workers=2).source, str)
    _same(truth, index.search(q, f, 5, exact=True, backend="ray", ray_workers=2))
    index.save(tmp_path / "idx")
    index.ray_backend(workers=2).shutdown()  # its actors hold the test cluster's CPUs
    again = hqi.open(tmp_path / "idx")
    assert isinstance(again.ray_backend(workers=2).source, str)
    _same(truth, again.search(q, f, 5, exact=True, backend="ray", ray_workers=2))


def test_actor_death_mid_batch_is_recovered(local_ray, index, data, tmp_path) -> None:
    _, _, batch = data
    marker = tmp_path / "died"
    backend = RayBackend(index, workers=2, _fault_file=str(marker))
    o = SearchOptions(k=10, backend="ray")  # planned as for Ray: masks, no programs
    plan = index._plan(batch.queries, batch.filters, o, index._nprobe_for(o))
    pos, dist, _ = backend.execute(plan, batch.queries, 10, o.block_rows, o.query_block)
    assert marker.exists(), "the worker did not die: the test did not inject the fault"
    assert backend.restarts == 1
    local = index.search(batch.queries, batch.filters, 10)
    np.testing.assert_array_equal(np.where(pos >= 0, index._ids[pos], -1), local.ids)
    np.testing.assert_array_equal(dist, local.distances)
    backend.shutdown()


def test_killed_actor_between_batches_is_replaced(local_ray, index, data) -> None:
    _, _, batch = data
    backend = RayBackend(index, workers=2)
    o = SearchOptions(k=10, backend="ray")  # planned as for Ray: masks, no programs
    plan = index._plan(batch.queries, batch.filters, o, index._nprobe_for(o))
    first = backend.execute(plan, batch.queries, 10, o.block_rows, o.query_block)
    ray.kill(backend.actors[1])
    second = backend.execute(plan, batch.queries, 10, o.block_rows, o.query_block)
    assert backend.restarts >= 1
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    backend.shutdown()


def test_batch_that_cannot_complete_fails_clearly(local_ray, index, data, tmp_path) -> None:
    _, _, batch = data
    backend = RayBackend(
        index, workers=2, max_retries=1, _fault_file=str(tmp_path / "x"), _fault_always=True
    )
    o = SearchOptions(k=10, backend="ray")  # planned as for Ray: masks, no programs
    plan = index._plan(batch.queries, batch.filters, o, index._nprobe_for(o))
    start = time.perf_counter()
    with pytest.raises(DistributedError, match=r"Ray worker 0 \(partitions .*failed 2 times"):
        backend.execute(plan, batch.queries, 10, o.block_rows, o.query_block)
    assert time.perf_counter() - start < 60
    backend.shutdown()


def test_batch_timeout_is_an_error_not_a_hang(local_ray, index, data) -> None:
    _, _, batch = data
    backend = RayBackend(index, workers=2, timeout_s=0.0)
    o = SearchOptions(k=10, exact=True, backend="ray")  # planned as for Ray
    plan = index._plan(batch.queries, batch.filters, o, None)
    with pytest.raises(DistributedError, match="did not complete within"):
        backend.execute(plan, batch.queries, 10, o.block_rows, o.query_block)
    backend.shutdown()


def test_ray_build_equals_local_build(local_ray, data) -> None:
    catalog, train, batch = data
    local = hqi.build(
        catalog.vectors, catalog.attributes, catalog.ids, workload=train.filters, threads=1
    )
    distributed = hqi.build(
        catalog.vectors, catalog.attributes, catalog.ids, workload=train.filters, backend="ray"
    )
    np.testing.assert_array_equal(local.ids, distributed.ids)
    np.testing.assert_array_equal(local._part.list_bounds, distributed._part.list_bounds)
    np.testing.assert_allclose(local._part.centroids, distributed._part.centroids, rtol=1e-5)
    _same(
        local.search(batch.queries, batch.filters, 10),
        distributed.search(batch.queries, batch.filters, 10),
    )


def test_cli_search_and_build_on_ray(local_ray, data, tmp_path, capsys) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hqi.cli import main

    catalog, _, batch = data
    table = catalog.attributes.append_column(
        "vector", pa.array(list(catalog.vectors), pa.list_(pa.float32(), catalog.vectors.shape[1]))
    )
    pq.write_table(table, tmp_path / "catalog.parquet")
    assert main(["build", str(tmp_path / "catalog.parquet"), "--out", str(tmp_path / "idx"),
                 "--ray"]) == 0  # fmt: skip
    queries = tmp_path / "q.jsonl"
    queries.write_text(
        "\n".join(
            json.dumps({"query_id": i, "vector": batch.queries[i].tolist(), "filter": f})
            for i, f in enumerate(batch.filters[:50])
        )
    )
    for extra, out in (([], "local.parquet"), (["--ray", "--ray-workers", "2"], "ray.parquet")):
        code = main(["search", str(tmp_path / "idx"), str(queries), "--out",
                     str(tmp_path / out), *extra])  # fmt: skip
        assert code == 0, capsys.readouterr().err
    assert pq.read_table(tmp_path / "local.parquet").equals(pq.read_table(tmp_path / "ray.parquet"))


def test_missing_ray_is_a_clear_error(index, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(hqi.InvalidInputError, match=r"hqi\[ray\]"):
        index.search(np.zeros((1, index.dim), np.float32), None, 1, backend="ray")
    with pytest.raises(hqi.InvalidInputError, match="backend must be"):
        index.search(np.zeros((1, index.dim), np.float32), None, 1, backend="spark")
