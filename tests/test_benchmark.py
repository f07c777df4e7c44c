"""A tiny smoke run of the benchmark harness: correct figures, files written (no timings)."""

from __future__ import annotations

import pytest

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
    out = write_report(tmp_path / "run", points, builds, cfg, data.name, data.vectors.shape)
    summary = (out / "summary.md").read_text()
    assert "QPS @ 0.95" in summary and "Exact floor" in summary
    tuned = [p for p in points if p.system == "hqi" and "recall_target" in p.params]
    assert [p.params["recall_target"] for p in tuned] == [0.90, 0.95, 0.99]
    assert "hqi self-tuned" in summary and f"recall {tuned[1].recall:.4f}" in summary
    assert (out / "points.csv").read_text().count("\n") == len(points) + 1
    assert (out / "recall_qps.png").stat().st_size > 1000


@pytest.mark.skipif(
    data_root() is None or not (data_root() / "fb15k237").is_dir(),  # type: ignore[operator]
    reason="../shared/data/fb15k237 is not present (real data is never copied into the repo)",
)
def test_real_fb15k237_loads() -> None:
    data = load_real("fb15k237", queries=40, train_queries=40, k=5)
    assert data.vectors.shape == (14541, 384) and data.attributes.num_rows == 14541
    assert len(data.filters) == 40 and data.queries.shape == (40, 384)
    assert "genres" in data.attributes.column_names
