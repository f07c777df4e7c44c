"""The CLI end to end on a small dataset: build, info, count, search, demo, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hqi
from hqi.cli import main


@pytest.fixture(scope="module")
def data_file(tmp_path_factory, catalog) -> Path:
    path = tmp_path_factory.mktemp("data") / "catalog.parquet"
    vectors = pa.FixedSizeListArray.from_arrays(
        pa.array(catalog.vectors.ravel()), catalog.vectors.shape[1]
    )
    table = catalog.attributes.append_column("vector", vectors).append_column(
        "key", pa.array([f"e{i}" for i in range(len(catalog))])
    )
    pq.write_table(table, path)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory, data_file) -> Path:
    out = tmp_path_factory.mktemp("idx") / "index"
    assert main(["build", str(data_file), "--out", str(out), "--id-column", "key"]) == 0
    return out


def test_build_and_info(built, capsys) -> None:
    assert main(["info", str(built)]) == 0
    out = capsys.readouterr().out
    assert "4000" in out and "genre" in out and "string" in out
    assert "lists of ~512 rows (default nprobe 16)" in out
    assert "+0 / -0 rows since a build of 4,000; rows 1.00x" in out
    index = hqi.open(built)
    assert index.info()["id_type"] == "string" and "key" not in index.schema


def test_count(built, capsys, catalog) -> None:
    assert main(["count", str(built), "type = 'film'", "--ids"]) == 0
    lines = capsys.readouterr().out.split()
    expected = sum(t == "film" for t in catalog.attributes.column("type").to_pylist())
    assert int(lines[0]) == expected and len(lines) == expected + 1


def test_search_jsonl(tmp_path, built, catalog) -> None:
    queries = tmp_path / "q.jsonl"
    rows = [
        {"query_id": "q1", "vector": catalog.vectors[0].tolist(), "filter": "genre = 'rock'"},
        {"query_id": "q2", "entity_id": "e5", "k": 3},
        {"query_id": "q3", "vector": catalog.vectors[9].tolist(), "filter": None, "k": 2},
    ]
    queries.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "res.parquet"
    assert main(["search", str(built), str(queries), "--out", str(out), "-k", "4"]) == 0
    res = pq.read_table(out).to_pylist()
    by_q = {q: [r for r in res if r["query_id"] == q] for q in ("q1", "q2", "q3")}
    assert [len(v) for v in by_q.values()] == [4, 3, 2]
    assert by_q["q3"][0]["id"] == "e9"
    assert "e5" not in [r["id"] for r in by_q["q2"]]  # entity queries exclude themselves
    index = hqi.open(built)
    direct = index.search(catalog.vectors[0], "genre = 'rock'", k=4)
    assert [r["id"] for r in by_q["q1"]] == list(direct.keys[0])
    np.testing.assert_allclose([r["distance"] for r in by_q["q1"]], direct.distances[0])


def test_search_parquet_queries(tmp_path, built, catalog) -> None:
    queries = tmp_path / "q.parquet"
    pq.write_table(
        pa.table(
            {
                "vector": pa.array([catalog.vectors[i].tolist() for i in range(5)]),
                "filter": ["year > 2000"] * 5,
            }
        ),
        queries,
    )
    out = tmp_path / "res.parquet"
    assert main(["search", str(built), str(queries), "--out", str(out)]) == 0
    table = pq.read_table(out)
    assert table.column_names == ["query_id", "rank", "id", "distance"]
    assert table.num_rows == 50


def test_search_recall_options(tmp_path, built, catalog, capsys) -> None:
    """--exact, --nprobe and --probe-ratio reach Index.search; a bad ratio is a
    one-line error and writes nothing."""
    queries = tmp_path / "q.jsonl"
    rows = [{"vector": (catalog.vectors[i] + 0.5).tolist()} for i in range(0, 600, 10)]
    queries.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    index = hqi.open(built)
    q = np.array([r["vector"] for r in rows], dtype=np.float32)
    f = None
    narrow = index.search(q, f, k=10, nprobe=1, probe_ratio=1.0)
    wide = index.search(q, f, k=10, nprobe=1, probe_ratio=3.0)
    assert (narrow.ids != wide.ids).any()  # so the flags below are told apart
    for flags, opts in (
        (["--exact"], {"exact": True}),
        (["--nprobe", "1", "--probe-ratio", "1"], {"nprobe": 1, "probe_ratio": 1.0}),
        (["--nprobe", "1", "--probe-ratio", "3"], {"nprobe": 1, "probe_ratio": 3.0}),
    ):
        out = tmp_path / f"res{len(flags)}{flags[-1]}.parquet"
        assert main(["search", str(built), str(queries), "--out", str(out), *flags]) == 0
        got = pq.read_table(out).column("id").to_pylist()
        want = index.search(q, f, k=10, **opts).keys.ravel().tolist()
        assert got == [w for w in want if w is not None]
    out = tmp_path / "bad.parquet"
    args = ["search", str(built), str(queries), "--out", str(out), "--probe-ratio", "0.5"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert "probe_ratio must be" in err and "\n" not in err and not out.exists()


def _search_recall_target(tmp_path, built, rows, capsys) -> str:
    """``hqi search --recall-target 0.95`` of the query ``rows`` (JSON lines):
    what it printed, table borders and line breaks flattened."""
    queries = tmp_path / "q.jsonl"
    queries.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "res.parquet"
    args = ["search", str(built), str(queries), "--out", str(out), "--recall-target", "0.95"]
    assert main(args) == 0
    return " ".join(capsys.readouterr().out.replace("│", " ").split())


def test_search_recall_target_reports_estimate(tmp_path, built, catalog, capsys) -> None:
    """--recall-target prints the calibrated nprobe and the estimated recall with
    its standard error (300 queries: the 200-query sample is not all of them)."""
    rows = [
        {"vector": (catalog.vectors[i] + 0.5).tolist(), "filter": "popularity > 0.3"}
        for i in range(0, 3000, 10)
    ]
    printed = _search_recall_target(tmp_path, built, rows, capsys)
    q = np.array([r["vector"] for r in rows], dtype=np.float32)
    stats = hqi.open(built).search(q, [r["filter"] for r in rows], k=10, recall_target=0.95).stats
    assert stats["estimated_recall"] >= 0.95 and stats["estimated_recall_stderr"] > 0
    want = f"{stats['estimated_recall']:.3f} ± {stats['estimated_recall_stderr']:.3f}"
    assert f"estimated recall {want}" in printed
    assert f"nprobe {stats['nprobe']:.0f}" in printed


def test_search_recall_target_answered_exactly(tmp_path, built, catalog, capsys, monkeypatch):
    """Where recall_target finds exact search cheaper than any nprobe, the CLI
    says so: nprobe "all (exact)" and an estimated recall of 1 (no error bar)."""
    monkeypatch.setattr(hqi.api, "EXACT_COST_FP32", 0.0)
    monkeypatch.setattr(hqi.api, "EXACT_COST_BF16", 0.0)
    rows = [
        {"vector": catalog.vectors[i].tolist(), "filter": "popularity > 0.3"}
        for i in range(0, 3000, 10)
    ]
    printed = _search_recall_target(tmp_path, built, rows, capsys)
    assert "nprobe all (exact)" in printed and "estimated recall 1.000 " in printed


def test_explain(tmp_path, built, catalog, capsys, monkeypatch) -> None:
    """hqi explain: the plan Index.explain gives for the same queries (entity
    rows by their stored vectors), keyed by query_id; a summary on stdout; an
    unknown entity is a one-line error and writes nothing."""
    monkeypatch.setattr(hqi.api, "FLAT_WORK_PER_FILTER", 0)  # planned at this size
    queries = tmp_path / "q.jsonl"
    rows = [
        {"query_id": f"v{i}", "vector": catalog.vectors[i].tolist(), "filter": "genre = 'rock'"}
        for i in range(0, 40, 2)
    ] + [{"query_id": "e", "entity_id": "e7", "filter": "year > 2000 OR type = 'film'", "k": 3}]
    queries.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "plan.parquet"
    assert main(["explain", str(built), str(queries), "--out", str(out), "--nprobe", "2"]) == 0
    printed = capsys.readouterr().out
    assert "distance computations" in printed and "compiled filters" in printed
    plan = pq.read_table(out)
    index = hqi.open(built)
    q = np.stack([catalog.vectors[i] for i in range(0, 40, 2)] + [catalog.vectors[7]])
    want = index.explain(q, [r.get("filter") for r in rows], k=10, nprobe=2)
    assert plan.column("query_id").to_pylist() == [r["query_id"] for r in rows]
    assert plan.drop_columns(["query_id"]) == want.drop_columns(["query"])
    assert "flat" not in plan.column("strategy").to_pylist()
    assert main(["explain", str(built), str(queries), "--exact"]) == 0
    exact = index.explain(q, [r.get("filter") for r in rows], exact=True)
    assert f"{sum(exact.column('rows').to_pylist()):,}" in capsys.readouterr().out
    queries.write_text(json.dumps({"query_id": 1, "entity_id": "nope"}) + "\n")
    bad = tmp_path / "bad.parquet"
    assert main(["explain", str(built), str(queries), "--out", str(bad)]) == 1
    assert "unknown entity id 'nope'" in capsys.readouterr().err and not bad.exists()


@pytest.mark.parametrize(
    ("lines", "fragment"),
    [
        ([{"query_id": 1, "vector": [1.0, 2.0]}], "dimension 2, but the index has dimension 16"),
        ([{"query_id": 1, "entity_id": "nope"}], "unknown entity id 'nope'"),
        ([{"query_id": 7, "filter": "x = 1"}], "query 7 has neither"),
        ([{"query_id": 1, "entity_id": "e1", "filter": "genr = 'a'"}], "did you mean 'genre'"),
        ([{"query_id": 1, "entity_id": "e1", "k": 0}], "k must be positive"),
    ],
)
def test_search_bad_input(tmp_path, built, capsys, lines, fragment) -> None:
    queries = tmp_path / "q.jsonl"
    queries.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    out = tmp_path / "res.parquet"
    assert main(["search", str(built), str(queries), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("hqi: error:") and fragment in err and "\n" not in err
    assert not out.exists() and not list(tmp_path.glob(".res.parquet*"))


def test_build_bad_input(tmp_path, data_file, capsys) -> None:
    out = tmp_path / "idx"
    assert main(["build", str(data_file), "--out", str(out), "--vector-column", "vec"]) == 1
    assert "has no column 'vec'" in capsys.readouterr().err
    assert main(["build", str(tmp_path / "none.parquet"), "--out", str(out)]) == 1
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "bad.parquet").write_text("not parquet")
    assert main(["build", str(tmp_path / "bad.parquet"), "--out", str(out)]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert not out.exists()
    assert main(["info", str(out)]) == 1


def test_ragged_vectors_rejected(tmp_path, capsys) -> None:
    path = tmp_path / "ragged.parquet"
    pq.write_table(pa.table({"vector": [[1.0, 2.0], [1.0]], "a": [1, 2]}), path)
    assert main(["build", str(path), "--out", str(tmp_path / "i")]) == 1
    assert "different lengths" in capsys.readouterr().err


@pytest.mark.parametrize("flat, exact_cheaper", [(False, False), (True, False), (False, True)])
def test_demo_small(capsys, tmp_path, monkeypatch, flat, exact_cheaper) -> None:
    """The demo reports the default search: planned, or at this size by default
    (``flat``: the real threshold) one flat exact pass; and recall_target's
    choice, an exact plan where that costs less (``exact_cheaper``)."""
    if flat:
        monkeypatch.setattr(hqi.api, "FLAT_WORK_PER_FILTER", 3e6)
    if exact_cheaper:
        monkeypatch.setattr(hqi.api, "EXACT_COST_FP32", 0.0)
        monkeypatch.setattr(hqi.api, "EXACT_COST_BF16", 0.0)
    out = tmp_path / "demo-index"
    assert (
        main(
            [
                "demo",
                "--n",
                "3000",
                "--dim",
                "8",
                "--queries",
                "200",
                "--naive-sample",
                "50",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    label = "default search (flat" if flat else "approximate (nprobe="
    assert label in text and "exact vs naive answers (recall@10)" in text
    tuned = "flat" if flat else "exact plan" if exact_cheaper else "nprobe="
    assert "recall_target=0.95 (" + tuned in text
    assert "warm-up (one-off" in text  # the first searches' cost, kept out of the rest
    assert "1.0000" in text
    assert len(hqi.open(out)) == 3000


def test_console_script_runs() -> None:
    exe = Path(sys.executable).with_name("hqi")
    proc = subprocess.run(
        [str(exe), "--version"],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("hqi ")
    proc = subprocess.run([str(exe), "search"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "required" in proc.stderr


def test_build_with_a_workload(tmp_path, data_file, workload, capsys) -> None:
    """`hqi build --workload` learns the layout from a filters file (text or JSON lines)."""
    text = tmp_path / "workload.sql"
    text.write_text("# sample filters\n\n" + "\n".join(workload.filters[:200]) + "\n")
    out = tmp_path / "idx"
    args = ["build", str(data_file), "--out", str(out), "--list-size", "64"]
    layout = ["--workload", str(text), "--max-partitions", "8", "--vector-cuts", "8"]
    assert main([*args, *layout]) == 0
    assert "partitions" in capsys.readouterr().out
    info = hqi.open(out).info()
    assert 1 < info["partitions"] <= 8 and info["layout_cuts"]
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(json.dumps({"filter": f}) for f in workload.filters[:200]))
    assert main([*args[:3], str(tmp_path / "idx2"), "--workload", str(log)]) == 0
    assert hqi.open(tmp_path / "idx2").info()["partitions"] > 1
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    assert main([*args[:3], str(tmp_path / "idx3"), "--workload", str(empty)]) == 1
    assert "holds no filters" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_text("genre = \n")
    assert main([*args[:3], str(tmp_path / "idx4"), "--workload", str(bad)]) == 1
    assert "position" in capsys.readouterr().err
    assert not (tmp_path / "idx3").exists() and not (tmp_path / "idx4").exists()


def test_update(tmp_path, catalog, capsys) -> None:
    """`hqi update`: delete by ids and by filter, add and replace from Parquet,
    written back (or to --out); the result answers as a build of its rows."""
    first, rest = catalog.attributes.slice(0, 3000), catalog.attributes.slice(3000)

    def parquet(path: Path, table: pa.Table, vectors: np.ndarray, keys: list[str]) -> Path:
        column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1])
        pq.write_table(
            table.append_column("vector", column).append_column("key", pa.array(keys)), path
        )
        return path

    keys = [f"e{i}" for i in range(len(catalog))]
    base = parquet(tmp_path / "base.parquet", first, catalog.vectors[:3000], keys[:3000])
    more = parquet(tmp_path / "more.parquet", rest, catalog.vectors[3000:], keys[3000:])
    index = tmp_path / "index"
    assert main(["build", str(base), "--out", str(index), "--id-column", "key"]) == 0
    doomed = tmp_path / "doomed.txt"
    doomed.write_text("# ids\ne1\ne2\n\ne3\n")
    args = ["update", str(index), "--add", str(more), "--id-column", "key"]
    args += ["--delete-ids", str(doomed), "--delete-where", "genre = 'jazz'"]
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "updated" in printed and "+1,000 / -98 rows since a build of 3,000" in printed
    updated = hqi.open(index)
    jazz = np.asarray(first.column("genre").to_pylist()) == "jazz"
    kept = np.flatnonzero(np.concatenate([~jazz, np.ones(1000, bool)]))
    kept = kept[~np.isin(kept, [1, 2, 3])]
    assert (
        len(updated) == kept.size
        and updated.count("genre = 'jazz'")
        == 1000 - (np.asarray(rest.column("genre").to_pylist()) != "jazz").sum()
    )
    oracle = hqi.build(
        catalog.vectors[kept], catalog.attributes.take(kept), [keys[i] for i in kept]
    )
    q = catalog.vectors[:20] + 0.01
    np.testing.assert_array_equal(
        updated.search(q, k=5, exact=True).keys, oracle.search(q, k=5, exact=True).keys
    )
    # Rows already present: refused, then replaced with --replace, into --out.
    assert main(["update", str(index), "--add", str(more), "--id-column", "key"]) == 1
    assert "already in the index (replace=True" in capsys.readouterr().err
    out = tmp_path / "copy"
    assert main([*args[:6], "--replace", "--out", str(out)]) == 0
    assert len(hqi.open(out)) == len(updated) and len(hqi.open(index)) == len(updated)
    # Errors name the problem and write nothing.
    assert main(["update", str(index)]) == 1
    assert "nothing to change" in capsys.readouterr().err
    doomed.write_text("e1\n")
    assert main(["update", str(index), "--delete-ids", str(doomed)]) == 1
    assert "unknown entity id 'e1'" in capsys.readouterr().err
    assert main(["update", str(index), "--delete-where", "genre = "]) == 1
    assert "position" in capsys.readouterr().err
    assert len(hqi.open(index)) == len(updated)
    # Every row deleted and others added, in one change (their ids among the deleted).
    everything = ["--delete-where", "TRUE", "--add", str(more), "--id-column", "key"]
    assert main(["update", str(index), *everything]) == 0
    replaced = hqi.open(index)
    assert len(replaced) == 1000 and sorted(replaced.where("TRUE").tolist()) == sorted(keys[3000:])
