"""The benchmark: a tiny smoke run of the harness (correct figures, files written, no
timings), real-data loaders, and the baselines' per-filter calls on worker threads."""

from __future__ import annotations

import re
import time

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hqi
from hqi.benchmark import BenchConfig, run_benchmark, write_report
from hqi.benchmark.real import data_root, load_real


def test_smoke_run(tmp_path) -> None:
    cfg = BenchConfig(
        n=3000,
        dim=8,
        queries=60,
        train_queries=200,
        repeats=1,
        systems=(
            "hqi",
            "exact-grouped-bruteforce",
            "faiss-ivf-idselector",
            "faiss-ivf-postfilter",
            "faiss-hnsw-idselector",
        ),
    )
    points, builds, data = run_benchmark(cfg)
    assert {p.system for p in points} == set(cfg.systems)
    assert all(0.0 <= p.recall <= 1.0 and p.qps > 0 for p in points)
    exact = [p for p in points if p.system == "hqi" and p.params.get("exact")]
    assert exact and exact[0].recall == 1.0
    assert [p.recall for p in points if p.system == "exact-grouped-bruteforce"] == [1.0]
    assert builds["floor"]["qualifying_rows"] > 0 and builds["floor"]["floor_s"] > 0
    # Every system was warmed up; hqi's exact search too, and its time is kept.
    assert all(builds[s]["warmup_s"] > 0 for s in cfg.systems)
    assert 0 < builds["hqi"]["first_exact_s"] <= builds["hqi"]["warmup_s"]
    assert "first_exact_s" not in builds["faiss-ivf-idselector"]
    out = write_report(tmp_path / "run", points, builds, cfg, data.name, data.vectors.shape)
    summary = (out / "summary.md").read_text()
    assert "QPS @ 0.95" in summary and "Exact floor" in summary
    assert "hqi's first exact search of the process" in summary
    tuned = [p for p in points if p.system == "hqi" and "recall_target" in p.params]
    assert [p.params["recall_target"] for p in tuned] == [0.90, 0.95, 0.99]
    assert "hqi self-tuned" in summary and f"recall {tuned[1].recall:.4f}" in summary
    assert (out / "points.csv").read_text().count("\n") == len(points) + 1
    assert (out / "recall_qps.png").stat().st_size > 1000


@pytest.mark.parametrize("cold", [True, False])
def test_each_timed_search_starts_without_filter_caches(monkeypatch, cold: bool) -> None:
    """With ``cold_filters`` (the default) every system forgets its parsed
    filters before each timed search, so that no repeat reuses another's."""
    from hqi.benchmark import systems

    cleared: list[str] = []
    for cls in (systems.Hqi, systems._Filtered):
        original = cls.clear_filter_caches

        def counted(self, original=original) -> None:
            cleared.append(self.name)
            original(self)

        monkeypatch.setattr(cls, "clear_filter_caches", counted)
    names = ("hqi", "faiss-ivf-idselector")
    cfg = BenchConfig(
        n=2000, dim=8, queries=40, train_queries=100, repeats=2, systems=names, cold_filters=cold
    )
    points, _, _ = run_benchmark(cfg)
    if not cold:
        assert cleared == []
        return
    for name in names:
        assert cleared.count(name) == 2 * sum(p.system == name for p in points)


@pytest.mark.skipif(
    data_root() is None or not (data_root() / "fb15k237").is_dir(),  # type: ignore[operator]
    reason="../shared/data/fb15k237 is not present (real data is never copied into the repo)",
)
def test_real_fb15k237_loads() -> None:
    data = load_real("fb15k237", queries=40, train_queries=40, k=5)
    assert data.vectors.shape == (14541, 384) and data.attributes.num_rows == 14541
    assert len(data.filters) == 40 and data.queries.shape == (40, 384)
    assert "genres" in data.attributes.column_names


@pytest.mark.skipif(
    data_root() is None or not (data_root() / "spotify_tophits").is_dir(),  # type: ignore[operator]
    reason="../shared/data/spotify_tophits is not present (real data is never in the repo)",
)
def test_real_spotify_songs_exact_against_duckdb_and_brute_force() -> None:
    """The songs example on real data: a learned layout's exact answers equal a
    brute force over the rows DuckDB selects, for every filter template."""
    data = load_real("spotify_tophits", queries=300, train_queries=300, k=10)
    assert data.vectors.shape == (2000, 384) and data.attributes.num_rows == 2000
    # Vectors are aligned to the songs: each song's embedded text names its artist.
    songs = pq.read_table(data_root() / "spotify_tophits" / "songs.parquet")  # type: ignore[operator]
    texts, artists = songs.column("text"), data.attributes.column("artist")
    assert all(f"by {artists[i]}" in texts[i].as_py() for i in range(0, 2000, 97))
    templates = {re.sub(r"'(?:[^']|'')*'|[\d.]+", "?", f) for f in data.filters}
    assert len(templates) == 7, templates
    index = hqi.build(
        data.vectors, data.attributes, workload=data.train_filters, min_partition_rows=100
    )
    assert index.info()["partitions"] > 1
    found = index.search(data.queries, data.filters, k=10, exact=True, flat=False)
    con = duckdb.connect()
    con.register("songs", data.attributes.append_column("row", pa.array(range(2000), pa.int64())))
    for i, text in enumerate(data.filters):
        rows = np.array(
            [r for (r,) in con.execute(f"SELECT row FROM songs WHERE {text}").fetchall()],
            dtype=np.int64,
        )
        d = np.sort(((data.vectors[rows] - data.queries[i]) ** 2).sum(axis=1, dtype=np.float64))
        got = int(np.count_nonzero(found.ids[i] >= 0))
        assert got == min(10, rows.size), text
        # The same neighbours' distances (float32 and float64 may order near-ties apart).
        assert np.allclose(np.sort(found.distances[i][:got]), d[:10], rtol=1e-4, atol=1e-5), text


@pytest.mark.parametrize(
    "name", ["faiss-ivf-idselector", "faiss-ivf-postfilter", "faiss-hnsw-idselector"]
)
def test_baselines_on_two_workers_return_what_one_does(name: str) -> None:
    """The baselines' calls dealt to worker threads (systems._by_filter,
    ``calls="parallel"``) return the ids of the calls one after the other,
    every query answered, and the process's own OpenMP setting is untouched
    by the workers'."""
    import faiss

    from hqi.benchmark.harness import load_data
    from hqi.benchmark.systems import SYSTEMS

    data = load_data(BenchConfig(n=4000, dim=16, queries=120, train_queries=50))
    system = SYSTEMS[name]()
    system.build(data, 1)
    params = system.grid()[2]
    before = faiss.omp_get_max_threads()
    one = system.search(data, dict(params, calls="serial"), 2)
    two = system.search(data, dict(params, calls="parallel"), 2)
    assert faiss.omp_get_max_threads() == before
    assert len(set(data.filters)) > 10  # several filters, so both workers take some
    np.testing.assert_array_equal(one, two)
    assert one.shape == (120, data.k) and (one[:, 0] >= 0).mean() > 0.5


def test_baseline_grids_sweep_how_calls_run() -> None:
    from hqi.benchmark.systems import CALLS, SYSTEMS, _workers

    for name in ("faiss-ivf-idselector", "faiss-ivf-postfilter", "faiss-hnsw-idselector"):
        grid = SYSTEMS[name]().grid()
        assert {p["calls"] for p in grid} == set(CALLS)
        others = {tuple(sorted((k, v) for k, v in p.items() if k != "calls")) for p in grid}
        assert len(grid) == len(CALLS) * len(others)  # every point both ways
    assert _workers({"calls": "serial"}, 2) == 1 and _workers({"calls": "parallel"}, 2) == 2
    with pytest.raises(ValueError, match="calls must be one of"):
        _workers({"calls": "both"}, 2)


def test_by_filter_stops_every_worker_when_one_fails() -> None:
    """An error in one filter's call reaches the caller, and the other worker
    stops taking filters instead of finishing the batch."""
    from hqi.benchmark.harness import load_data
    from hqi.benchmark.systems import _by_filter, _Filters

    data = load_data(BenchConfig(n=2000, dim=8, queries=200, train_queries=20))
    calls = []

    def answer(qids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        calls.append(qids.size)
        if len(calls) == 3:
            raise RuntimeError("boom")
        time.sleep(0.002)  # the others' calls take a while (the GIL released)
        return np.zeros((qids.size, data.k), dtype=np.int64)

    distinct = len(set(data.filters))
    assert distinct > 20
    with pytest.raises(RuntimeError, match="boom"):
        _by_filter(_Filters(data), data.filters, data.k, 2, answer)
    assert len(calls) < distinct
