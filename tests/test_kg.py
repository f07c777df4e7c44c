"""The knowledge-graph front end: mapping, ingestion, templates, related queries, CLI.

Oracles: a hand-written graph whose attributes are known, and numpy brute
force (with the index's own filter masks, themselves checked against DuckDB
in test_filters_oracle) for the related-queries search.
"""

from __future__ import annotations

import datetime as dt
import gzip
import sys
import types
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hqi
from hqi.cli import main
from hqi.errors import InvalidInputError
from hqi.evaluation import recall_at_k
from hqi.kg import (
    Template,
    build_kg,
    ingest,
    load_templates,
    parse_mapping,
    related,
    sample_log,
    workload_from_log,
)
from hqi.kg.sources import read_ntriples, read_triples

MAPPING = """
[entities]
id = "id"
label = "name"
text = ["name", "blurb"]

[attributes.type]
column = "kind"
kind = "category"

[attributes.tags]
column = "tags"
kind = "list"

[attributes.genres]
relations = ["genre"]
inverse = ["genre_of"]
kind = "list"
values = "label"

[attributes.country]
relations = ["country"]
kind = "category"
values = "label"

[attributes.born]
relations = ["birth_date"]
kind = "year"

[attributes.released]
relations = ["release"]
kind = "date"

[attributes.height]
relations = ["height"]
kind = "number"

[attributes.episodes]
relations = ["episodes"]
kind = "integer"
"""

TRIPLES = [
    ("head", "relation", "tail"),
    ("e0", "genre", "g_jazz"),
    ("e0", "genre", "g_blues"),
    ("e0", "genre", "g_jazz"),  # duplicate: one value
    ("g_rock", "genre_of", "e1"),  # inverse: e1's genre is rock
    ("e0", "country", "c_fr"),
    ("e0", "country", "c_de"),  # multi-valued category: smallest label kept
    ("e1", "country", "c_xx"),  # no label: kept as its id
    ("e0", "birth_date", "1912.67"),
    ("e1", "birth_date", "1990-05-01"),
    ("e2", "birth_date", "not a date"),  # unparsable: skipped, counted
    ("e1", "release", "2001-02-03"),
    ("e2", "release", "1999.5"),
    ("e0", "height", "1.83"),
    ("e2", "episodes", "12"),
    ("e3", "genre", "g_jazz"),  # e3 has no embedding
    ("e0", "knows", "e1"),  # unmapped relation
]


def _entities() -> pa.Table:
    return pa.table(
        {
            "id": ["e0", "e1", "e2", "e3", "g_jazz", "g_blues", "g_rock", "c_fr", "c_de"],
            "name": ["Ann", "Bob", "Cy", "Dee", "jazz", "blues", "rock", "France", "Germany"],
            "blurb": ["singer", "drummer", None, "x", "", "", "", "", ""],
            "kind": ["person", "person", "show", "person", "genre", "genre", "genre", "c", "c"],
            "tags": ["a|b", None, "b", "", None, None, None, None, None],
        }
    )


@pytest.fixture
def graph_files(tmp_path: Path) -> dict[str, Path]:
    triples = tmp_path / "triples.tsv.gz"
    with gzip.open(triples, "wt") as fh:
        fh.write("\n".join("\t".join(t) for t in TRIPLES) + "\n")
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(MAPPING)
    entities = tmp_path / "entities.parquet"
    pq.write_table(_entities(), entities)
    ids = ["e0", "e1", "e2", "g_jazz"]
    vectors = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    np.save(tmp_path / "emb.npy", vectors)
    (tmp_path / "emb_ids.txt").write_text("\n".join(ids) + "\n")
    return {
        "triples": triples,
        "mapping": mapping,
        "entities": entities,
        "emb": tmp_path / "emb.npy",
        "emb_ids": tmp_path / "emb_ids.txt",
    }


def _ingest(files: dict[str, Path]) -> hqi.kg.KnowledgeGraph:
    return ingest(
        files["mapping"],
        triples=[files["triples"]],
        entities=files["entities"],
        embeddings=files["emb"],
        embedding_ids=files["emb_ids"],
    )


# ----------------------------------------------------------------- ingestion


def test_ingest_maps_every_kind(graph_files) -> None:
    kg = _ingest(graph_files)
    assert kg.ids.tolist() == ["e0", "e1", "e2", "g_jazz"]
    rows = {r["label"]: r for r in kg.attributes.to_pylist()}
    ann, bob, cy, jazz = rows["Ann"], rows["Bob"], rows["Cy"], rows["jazz"]
    assert ann["type"] == "person" and jazz["type"] == "genre"
    assert ann["tags"] == ["a", "b"] and bob["tags"] is None and cy["tags"] == ["b"]
    assert ann["genres"] == ["blues", "jazz"]  # labels, distinct, sorted
    assert bob["genres"] == ["rock"]  # from the inverse relation
    assert cy["genres"] is None
    assert ann["country"] == "France"  # smallest of France, Germany
    assert bob["country"] == "c_xx"  # no label: the id
    assert ann["born"] == 1912 and bob["born"] == 1990 and cy["born"] is None
    assert bob["released"] == dt.date(2001, 2, 3)
    assert cy["released"] == dt.date(1999, 7, 2)  # fractional year
    assert ann["height"] == pytest.approx(1.83) and bob["height"] is None
    assert cy["episodes"] == 12
    assert kg.attributes.schema.field("episodes").type == pa.int64()
    assert kg.attributes.schema.field("released").type == pa.date32()


def test_ingest_report(graph_files) -> None:
    report = _ingest(graph_files).report
    by_name = {a.name: a for a in report.attributes}
    assert report.entities == 4
    assert report.skipped_no_embedding == 5  # e3, g_blues, g_rock, c_fr, c_de
    assert report.triples == len(TRIPLES) - 1
    assert report.unmapped_relations == {"knows": 1}
    assert report.triples_other_entities == 1  # e3's genre
    assert by_name["born"].unparsable == 1
    assert by_name["country"].multi_valued == 1 and by_name["country"].unlabeled == 1
    assert by_name["genres"].entities == 2 and by_name["genres"].distinct == 3
    text = "\n".join(report.lines())
    assert "knows: 1" in text and "unparsable" in text


def test_ingest_ntriples_and_inline_embeddings(tmp_path) -> None:
    nt = tmp_path / "g.nt"
    nt.write_text(
        "# a comment\n"
        '<http://x/a> <http://www.w3.org/2000/01/rdf-schema#label> "A \\"quoted\\""@en .\n'
        '<http://x/b> <http://www.w3.org/2000/01/rdf-schema#label> "B" .\n'
        '<http://x/a> <http://x/year> "1999"^^<http://www.w3.org/2001/XMLSchema#gYear> .\n'
        "<http://x/a> <http://x/type> <http://x/Film> .\n"
        "_:n1 <http://x/type> <http://x/Film> .\n"
        "\n"
    )
    table = read_ntriples(nt)
    assert table.column("tail").to_pylist()[0] == 'A "quoted"'
    assert table.column("head").to_pylist()[-1] == "_:n1"
    mapping = parse_mapping(
        {
            "entities": {"label_relation": "http://www.w3.org/2000/01/rdf-schema#label"},
            "attributes": {
                "year": {"relations": "http://x/year", "kind": "year"},
                "type": {"relations": ["http://x/type"], "kind": "category"},
            },
        }
    )
    kg = ingest(
        mapping,
        triples=[nt],
        embeddings=(["http://x/a", "http://x/b"], np.eye(2, 4, dtype=np.float32)),
    )
    assert kg.attributes.to_pylist() == [
        {"year": 1999, "type": "http://x/Film"},
        {"year": None, "type": None},
    ]


def test_ntriples_error_names_line(tmp_path) -> None:
    nt = tmp_path / "bad.nt"
    nt.write_text("<a> <b> <c> .\n<a> <b> .\n")
    with pytest.raises(InvalidInputError, match=r"bad.nt:2: not an N-Triples statement"):
        read_ntriples(nt)


def test_tsv_without_header_and_short_lines(tmp_path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("a\tr\tb\tsplit\nc\tr\td\ttest\n")
    assert read_triples(path).num_rows == 2
    short = tmp_path / "short.tsv"
    short.write_text("a\tb\n")
    with pytest.raises(InvalidInputError, match="head, relation, tail"):
        read_triples(short)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"attributes": {}}, "at least one"),
        ({"attributes": {"x": {"kind": "year"}}}, "exactly one source"),
        ({"attributes": {"x": {"column": "a", "relations": "r", "kind": "year"}}}, "exactly one"),
        ({"attributes": {"x": {"column": "a", "kind": "color"}}}, "kind must be one of"),
        ({"attributes": {"x": {"column": "a", "kind": "year", "colour": 1}}}, "unknown key"),
        ({"attributes": {"x": {"column": "a", "kind": "list", "values": "x"}}}, "values must"),
        ({"entities": {"idd": "x"}, "attributes": {"x": {"column": "a", "kind": "list"}}}, "idd"),
        ({"attributes": {"x y": {"column": "a", "kind": "list"}}}, "identifiers"),
    ],
)
def test_mapping_errors(data, message) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_mapping(data)


def test_ingest_errors(graph_files, tmp_path) -> None:
    with pytest.raises(InvalidInputError, match="no such mapping file"):
        ingest(tmp_path / "nope.toml", triples=[graph_files["triples"]])
    mapping = parse_mapping({"attributes": {"x": {"column": "nope", "kind": "category"}}})
    with pytest.raises(InvalidInputError, match="no column 'nope'"):
        ingest(
            mapping,
            entities=_entities(),
            embeddings=graph_files["emb"],
            embedding_ids=graph_files["emb_ids"],
        )
    with pytest.raises(InvalidInputError, match="4 rows but the entity table has 9"):
        ingest(
            parse_mapping({"attributes": {"x": {"column": "kind", "kind": "category"}}}),
            entities=_entities(),
            embeddings=graph_files["emb"],
        )
    with pytest.raises(InvalidInputError, match="no triples were given"):
        ingest(graph_files["mapping"], entities=_entities(), embeddings=graph_files["emb"])
    bad_ids = tmp_path / "ids.txt"
    bad_ids.write_text("a\nb\n")
    with pytest.raises(InvalidInputError, match="2 ids but"):
        _ingest({**graph_files, "emb_ids": bad_ids})


def test_embed_model_uses_local_sentence_transformers(graph_files, monkeypatch) -> None:
    seen: dict[str, object] = {}

    class FakeModel:
        def __init__(self, name: str, device: str) -> None:
            seen["name"], seen["device"] = name, device

        def encode(self, texts, **kwargs):
            seen["texts"], seen["kwargs"] = list(texts), kwargs
            return np.ones((len(texts), 3), dtype=np.float32)

    module = types.ModuleType("sentence_transformers")
    module.SentenceTransformer = FakeModel  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sentence_transformers", module)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    kg = ingest(
        graph_files["mapping"],
        triples=[graph_files["triples"]],
        entities=graph_files["entities"],
        embed_model="/models/minilm",
    )
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert seen["name"] == "/models/minilm" and seen["device"] == "cpu"
    assert seen["texts"][:3] == ["Ann: singer", "Bob: drummer", "Cy"]
    assert seen["kwargs"]["normalize_embeddings"] is True
    assert kg.vectors.shape == (9, 3) and len(kg) == 9


def test_embed_model_missing_library(graph_files, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(InvalidInputError, match=r"hqi\[embed\]"):
        ingest(
            graph_files["mapping"],
            triples=[graph_files["triples"]],
            entities=graph_files["entities"],
            embed_model="x",
        )


# ----------------------------------------------------------------- templates


def test_template_rendering() -> None:
    t = Template.parse(
        "t", "name = {name} AND y BETWEEN {y - 5} AND {y + 5} AND list_contains(g, {g[-1]})"
    )
    assert t.columns == ("name", "y", "g")
    got = t.instantiate({"name": "O'Hara", "y": 1990, "g": ["b", "a"]})
    assert got == "name = 'O''Hara' AND y BETWEEN 1985 AND 1995 AND list_contains(g, 'b')"
    assert t.instantiate({"name": "x", "y": None, "g": ["a"]}) is None
    assert t.instantiate({"name": "x", "y": 1, "g": []}) is None
    d = Template.parse("d", "d >= {d - 7} AND s = {{not a hole}}")
    assert (
        d.instantiate({"d": dt.date(2020, 1, 8)}) == "d >= DATE '2020-01-01' AND s = {not a hole}"
    )


@pytest.mark.parametrize(
    ("text", "values", "message"),
    [
        ("a = {a", {}, "position 4"),
        ("a = {a * 2}", {}, "position 4"),
        ("a = {g}", {"g": ["x"]}, "pick an element"),
        ("a = {a[0]}", {"a": "x"}, "not a list"),
        ("a = {a + 1}", {"a": "x"}, "number or date"),
    ],
)
def test_template_errors(text, values, message) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Template.parse("t", text).instantiate(values)


def test_load_templates(tmp_path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[templates]\nsame = "type = {type}"\n')
    assert load_templates(path)["same"].columns == ("type",)
    path.write_text('same = "x"\n')
    with pytest.raises(InvalidInputError, match=r"\[templates\]"):
        load_templates(path)


# ----------------------------------------------------------- related queries


@pytest.fixture(scope="module")
def kg_index() -> hqi.Index:
    rng = np.random.default_rng(3)
    n = 3000
    kinds = rng.choice(["film", "person", "place"], n, p=[0.5, 0.3, 0.2])
    genres = [
        sorted(set(rng.choice(["a", "b", "c", "d"], rng.integers(0, 3)))) or None for _ in range(n)
    ]
    years = np.where(rng.random(n) < 0.9, rng.integers(1950, 2020, n), -1)
    attrs = pa.table(
        {
            "label": [f"entity {i}" for i in range(n)],
            "type": kinds,
            "genres": pa.array(genres, pa.list_(pa.string())),
            "year": pa.array([int(y) if y >= 0 else None for y in years], pa.int64()),
        }
    )
    centers = rng.standard_normal((20, 16)).astype(np.float32)
    vectors = centers[rng.integers(0, 20, n)] + 0.3 * rng.standard_normal((n, 16)).astype(
        np.float32
    )
    ids = np.array([f"/m/{i:05d}" for i in range(n)], dtype=object)
    kg = hqi.kg.KnowledgeGraph(ids, vectors, attrs, hqi.kg.IngestReport())
    log = sample_log((ids, attrs), TEMPLATES, 400, seed=1)
    return build_kg(kg, log=log, templates=TEMPLATES, list_size=64, min_partition_rows=200)


TEMPLATES = {
    "same_type": "type = {type}",
    "genre_era": "list_contains(genres, {genres[0]}) AND year BETWEEN {year - 5} AND {year + 5}",
    "type_after": "type = {type} AND year >= {year}",
}


def _oracle(index: hqi.Index, anchors: list[str], filters: list[str], k: int):
    pos = index.positions(anchors)
    vecs = np.asarray(index.vectors, dtype=np.float64)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    out = []
    for p, f in zip(pos, filters, strict=True):
        mask = index.mask(f).copy()
        mask[p] = False
        cand = np.flatnonzero(mask)
        d = 1.0 - vecs[cand] @ vecs[p]
        order = np.lexsort((cand, d))[:k]
        out.append([str(index.ids[c]) for c in cand[order]])
    return out


def test_related_exact_matches_brute_force(kg_index) -> None:
    log = sample_log(kg_index, TEMPLATES, 150, seed=5)
    res = related(kg_index, log, templates=TEMPLATES, k=5, exact=True)
    assert not res.skipped
    anchors = log.column("anchor").to_pylist()
    expected = _oracle(kg_index, anchors, res.filters, 5)
    table = res.table.to_pylist()
    got: dict[int, list[str]] = {}
    for row in table:
        got.setdefault(row["query_id"], []).append(row["new_anchor"])
        assert row["new_anchor"] != row["anchor"]
    for qid, want in enumerate(expected):
        assert got.get(qid, []) == want
    # each new query is the template at the neighbour
    temps = load_templates(TEMPLATES)
    for row in table[:200]:
        p = int(kg_index.positions([row["new_anchor"]])[0])
        values = kg_index.attributes.slice(p, 1).to_pylist()[0]
        assert row["new_filter"] == temps[row["template"]].instantiate(values)
        assert row["new_anchor_label"] == values["label"]


def test_related_all_probes_equal_exact_and_default_recall(kg_index) -> None:
    log = sample_log(kg_index, TEMPLATES, 200, seed=6)
    exact = related(kg_index, log, templates=TEMPLATES, k=10, exact=True)
    full = related(kg_index, log, templates=TEMPLATES, k=10, nprobe=10_000)
    assert full.table.equals(exact.table)
    approx = related(kg_index, log, templates=TEMPLATES, k=10)
    recall = recall_at_k(approx.result, exact.result).mean()
    assert recall >= 0.9


def test_related_skips_and_errors(kg_index) -> None:
    no_year = next(
        str(kg_index.ids[i])
        for i, y in enumerate(kg_index.attributes.column("year").to_pylist())
        if y is None
    )
    log = [
        {"anchor": "/m/missing", "template": "same_type"},
        {"anchor": no_year, "template": "type_after"},
        {"anchor": str(kg_index.ids[0]), "template": "type = {type} AND year > 2000"},  # inline
    ]
    res = related(kg_index, log, templates=TEMPLATES, k=3)
    assert res.skipped == {
        "anchor not in the index": 1,
        "type_after: a placeholder is NULL at the anchor": 1,
    }
    assert set(res.table.column("query_id").to_pylist()) == {2}
    with pytest.raises(InvalidInputError, match="unknown template 'nope'"):
        related(kg_index, [{"anchor": no_year, "template": "nope"}], templates=TEMPLATES)
    with pytest.raises(InvalidInputError, match="reads 'colour'"):
        related(kg_index, [{"anchor": no_year, "template": "colour = {colour}"}])
    with pytest.raises(InvalidInputError, match="invalid filter"):
        related(kg_index, [{"anchor": no_year, "template": "type = {type} AND"}])
    with pytest.raises(InvalidInputError, match="columns anchor and template"):
        related(kg_index, pa.table({"anchor": ["x"]}))
    empty = related(
        kg_index, [{"anchor": "/m/missing", "template": "same_type"}], templates=TEMPLATES
    )
    assert empty.table.num_rows == 0 and empty.result is None


def test_workload_from_log_feeds_layout(kg_index) -> None:
    log = sample_log(kg_index, TEMPLATES, 50, seed=9)
    filters = workload_from_log(kg_index, log, TEMPLATES)
    assert 0 < len(filters) <= 50
    assert all(kg_index.count(f) >= 0 for f in filters)
    assert kg_index.info()["partitions"] > 1


# ------------------------------------------------------------------------ CLI


def test_cli_kg_build_and_related(graph_files, tmp_path, capsys) -> None:
    out = tmp_path / "idx"
    templates = tmp_path / "t.toml"
    templates.write_text('[templates]\nsame_type = "type = {type}"\n')
    log = tmp_path / "log.jsonl"
    log.write_text(
        '{"query_id": "q1", "anchor": "e0", "template": "same_type"}\n'
        '{"query_id": "q2", "anchor": "e9", "template": "same_type"}\n'
    )
    code = main(
        [
            "kg", "build", "--mapping", str(graph_files["mapping"]),
            "--triples", str(graph_files["triples"]), "--entities", str(graph_files["entities"]),
            "--embeddings", str(graph_files["emb"]), "--embedding-ids", str(graph_files["emb_ids"]),
            "--log", str(log), "--templates", str(templates), "--out", str(out),
        ]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0, text
    assert "genres (list" in text and "knows: 1" in text
    assert hqi.open(out).schema["genres"] == "list<string>"
    result = tmp_path / "related.parquet"
    code = main(["kg", "related", str(out), str(log), "--templates", str(templates),
                 "--out", str(result), "-k", "2", "--exact"])  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0, text
    rows = pq.read_table(result).to_pylist()
    assert {r["query_id"] for r in rows} == {"q1"}
    assert {r["new_anchor"] for r in rows} == {"e1"}  # the only other person with a vector
    assert "anchor not in the index" in text


def test_cli_kg_errors(graph_files, tmp_path, capsys) -> None:
    out = tmp_path / "idx"
    code = main(["kg", "build", "--mapping", str(graph_files["mapping"]), "--out", str(out)])
    assert code == 1
    assert "exactly one of --embeddings" in capsys.readouterr().err
    assert not out.exists()
    code = main(
        ["kg", "build", "--mapping", str(graph_files["mapping"]), "--embeddings",
         str(graph_files["emb"]), "--entities", str(graph_files["entities"]), "--out", str(out)]
    )  # fmt: skip
    assert code == 1
    assert "no triples were given" in capsys.readouterr().err
    assert not out.exists()


# ------------------------------------------------------------------ real data


def _fb15k237() -> Path | None:
    from hqi.benchmark.real import data_root

    root = data_root()
    folder = root / "fb15k237" if root else None
    return folder if folder is not None and folder.is_dir() else None


needs_fb15k237 = pytest.mark.skipif(
    _fb15k237() is None,
    reason="../shared/data/fb15k237 is not present (real data is never copied into the repo)",
)


@needs_fb15k237
def test_fb15k237_subset_end_to_end(tmp_path) -> None:
    from hqi.kg.presets import preset

    folder = _fb15k237()
    assert folder is not None
    mapping, templates = preset("fb15k237")
    entities = pq.read_table(folder / "entities.parquet").slice(0, 2000)
    vectors = np.load(folder / "emb_minilm_l6_v2.npy", mmap_mode="r")[:2000]
    ids = entities.column("mid").to_pylist()
    kg = ingest(
        mapping,
        triples=[folder / "triples.tsv.gz", folder / "numeric_literals.tsv.gz"],
        entities=entities,
        embeddings=(ids, np.asarray(vectors)),
    )
    assert len(kg) == 2000
    by_name = {a.name: a for a in kg.report.attributes}
    assert by_name["type"].entities == 2000
    assert by_name["birth_year"].entities > 100 and by_name["genres"].entities > 100
    assert kg.report.triples_other_entities > 0  # triples about the other 12.5k entities
    log = sample_log((kg.ids, kg.attributes), templates, 300, seed=1)
    index = build_kg(kg, log=log, templates=templates)
    index.save(tmp_path / "idx")
    index = hqi.open(tmp_path / "idx")
    batch = sample_log(index, templates, 300, seed=2)
    exact = related(index, batch, templates=templates, k=10, exact=True)
    approx = related(index, batch, templates=templates, k=10)
    assert exact.table.num_rows > 1000
    assert recall_at_k(approx.result, exact.result).mean() >= 0.9
    anchors = batch.column("anchor").take(pa.array(exact.searched[:50])).to_pylist()
    expected = _oracle(index, anchors, exact.filters[:50], 10)
    got: dict[int, list[str]] = {}
    for row in exact.table.to_pylist():
        got.setdefault(row["query_id"], []).append(row["new_anchor"])
    qids = batch.column("query_id").take(pa.array(exact.searched[:50])).to_pylist()
    for qid, want in zip(qids, expected, strict=True):
        assert got.get(qid, []) == want


@needs_fb15k237
def test_demo_fb15k237(capsys, tmp_path) -> None:
    code = main(["demo", "--dataset", "fb15k237", "--queries", "300", "--out", str(tmp_path)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "related queries on fb15k237" in text
    rows = pq.read_table(tmp_path / "related.parquet")
    assert rows.num_rows > 1000
    assert hqi.open(tmp_path / "index").info()["partitions"] > 1
