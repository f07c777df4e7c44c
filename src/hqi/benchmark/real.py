"""Real datasets from ``../shared/data`` as benchmark data (never copied into the repo).

Each loader turns a dataset's table into hqi attributes (``|``-joined
multi-valued fields become list<string> columns) and generates a hybrid
workload the way KG query logs arise: pick an anchor entity, instantiate a
template from its attributes, and use its embedding (plus a little noise) as
the query vector. The layout is learned from one such sample and the batch
is another (different seeds).

The data folder is found from ``$HQI_SHARED_DATA``, else ``shared/data`` in
the working directory or one of its parents.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hqi.benchmark.systems import BenchData
from hqi.errors import InvalidInputError
from hqi.query.predicate import sql_literal

__all__ = ["DATASETS", "ContestData", "data_root", "load_real", "load_sigmod2024"]


def data_root() -> Path | None:
    """The shared data folder, or None when it is not there."""
    env = os.environ.get("HQI_SHARED_DATA")
    if env:
        return Path(env) if Path(env).is_dir() else None
    for base in (Path.cwd(), *Path.cwd().parents):
        candidate = base / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def _split_list(col: pa.ChunkedArray) -> pa.Array:
    """'a|b|c' strings -> list<string> (empty or NULL -> NULL)."""
    values = pc.if_else(pc.equal(col, ""), pa.scalar(None, col.type), col)
    return pc.split_pattern(values.cast(pa.string()), "|").combine_chunks()


def _fb15k237(
    root: Path,
) -> tuple[np.ndarray, pa.Table, list[Callable[[dict[str, Any]], str | None]]]:
    folder = root / "fb15k237"
    table = pq.read_table(folder / "entities.parquet")
    vectors = np.load(folder / "emb_minilm_l6_v2.npy").astype(np.float32)
    attrs = pa.table(
        {
            "coarse_type": table.column("coarse_type").cast(pa.string()),
            "domain": table.column("domain").cast(pa.string()),
            "genres": _split_list(table.column("genres")),
            "year": table.column("year"),
            "birth_year": table.column("birth_year"),
            "population": table.column("population"),
            "degree": table.column("degree"),
        }
    )
    templates: list[Callable[[dict[str, Any]], str | None]] = [
        lambda a: f"coarse_type = {sql_literal(a['coarse_type'])}",
        lambda a: (
            (
                f"coarse_type = {sql_literal(a['coarse_type'])} AND year BETWEEN "
                f"{int(a['year']) - 10} AND {int(a['year']) + 10}"
            )
            if a["year"]
            else None
        ),
        lambda a: f"list_contains(genres, {sql_literal(a['genres'][0])})" if a["genres"] else None,
        lambda a: (
            f"coarse_type = {sql_literal(a['coarse_type'])} AND "
            f"list_contains(genres, {sql_literal(a['genres'][-1])})"
            if a["genres"]
            else None
        ),
        lambda a: (
            (f"birth_year BETWEEN {int(a['birth_year']) - 5} AND {int(a['birth_year']) + 5}")
            if a["birth_year"]
            else None
        ),
        lambda a: f"domain = {sql_literal(a['domain'])} AND degree >= {int(a['degree']) // 2}",
        lambda a: "population > 100000" if a["coarse_type"] == "location" else None,
        lambda a: f"coarse_type != {sql_literal(a['coarse_type'])} AND year >= 1950",
    ]
    return vectors, attrs, templates


def _genre_near_year(a: dict[str, Any], years: int) -> str | None:
    """An entity's first genre and years within ``years`` of its own (None
    without a genre or a year): MovieLens's and the songs' template."""
    if not a["genres"] or not a["year"]:
        return None
    genre, year = sql_literal(a["genres"][0]), a["year"]
    return f"list_contains(genres, {genre}) AND year BETWEEN {year - years} AND {year + years}"


def _movielens(
    root: Path,
) -> tuple[np.ndarray, pa.Table, list[Callable[[dict[str, Any]], str | None]]]:
    folder = root / "movielens"
    table = pq.read_table(folder / "movies.parquet")
    vectors = np.load(folder / "emb_minilm_l6_v2_fp16.npy").astype(np.float32)
    attrs = pa.table(
        {
            "year": table.column("year"),
            "genres": _split_list(table.column("genres")),
            "rating": table.column("small_avg_rating"),
            "num_ratings": table.column("small_num_ratings"),
            "tags": _split_list(table.column("small_user_tags")),
        }
    )
    templates: list[Callable[[dict[str, Any]], str | None]] = [
        lambda a: f"list_contains(genres, {sql_literal(a['genres'][0])})" if a["genres"] else None,
        lambda a: _genre_near_year(a, 5),
        lambda a: f"year = {a['year']}" if a["year"] else None,
        lambda a: f"year < {a['year']}" if a["year"] else None,
        lambda a: "rating >= 3.5" if a["rating"] is not None else None,
        lambda a: f"list_contains(tags, {sql_literal(a['tags'][0])})" if a["tags"] else None,
    ]
    return vectors, attrs, templates


def _spotify_tophits(
    root: Path,
) -> tuple[np.ndarray, pa.Table, list[Callable[[dict[str, Any]], str | None]]]:
    """2,000 hit songs (1998-2020): the "songs like this one, same genre,
    released around the same time" example on real data. Vectors are the
    folder's MiniLM embeddings, aligned to ``song_id`` by its ids file."""
    folder = root / "spotify_tophits"
    table = pq.read_table(folder / "songs.parquet")
    vectors = np.load(folder / "emb_minilm_l6_v2.npy").astype(np.float32)
    ids = np.loadtxt(folder / "emb_minilm_l6_v2_ids.txt", dtype=np.int64, ndmin=1)
    order = np.argsort(ids)
    song_ids = table.column("song_id").to_numpy()
    if ids.size != table.num_rows or not np.array_equal(ids[order], np.sort(song_ids)):
        raise InvalidInputError(f"{folder}: the embedding ids do not match songs.parquet's song_id")
    vectors = np.ascontiguousarray(vectors[order[np.searchsorted(ids[order], song_ids)]])
    attrs = pa.table(
        {
            "artist": table.column("artist").cast(pa.string()),
            "year": table.column("year"),
            "genres": _split_list(table.column("genres")),
            "popularity": table.column("popularity"),
            "explicit": table.column("explicit"),
            "danceability": table.column("danceability"),
            "energy": table.column("energy"),
        }
    )
    templates: list[Callable[[dict[str, Any]], str | None]] = [
        lambda a: _genre_near_year(a, 5),
        lambda a: f"list_contains(genres, {sql_literal(a['genres'][-1])})" if a["genres"] else None,
        lambda a: f"artist = {sql_literal(a['artist'])}",
        lambda a: (
            f"artist != {sql_literal(a['artist'])} AND "
            f"list_contains(genres, {sql_literal(a['genres'][0])})"
            if a["genres"]
            else None
        ),
        lambda a: f"explicit = FALSE AND popularity >= {a['popularity']}",
        lambda a: f"danceability >= {a['danceability']:.2f} AND energy >= {a['energy']:.2f}",
        lambda a: f"year = {a['year']}",
    ]
    return vectors, attrs, templates


DATASETS: dict[str, Callable[[Path], tuple[np.ndarray, pa.Table, list[Any]]]] = {
    "fb15k237": _fb15k237,
    "movielens": _movielens,
    "spotify_tophits": _spotify_tophits,
}
SIGMOD2024 = "sigmod2024_hybrid"  # real queries of its own (not generated from templates)


@dataclass(frozen=True)
class ContestData:
    """The SIGMOD 2024 programming contest's public sample (``sigmod2024_hybrid``).

    10,000 points (100-d CLIP + PCA; a categorical ``C`` and a timestamp ``T``)
    and 10,000 real queries of four types: no filter, ``C = v``,
    ``T BETWEEN l AND r``, or both. ``filters`` holds them as hqi filters
    (``""`` for none). ``truth_ids`` / ``truth_sqdist``: the folder's exact
    filtered top-100 (row positions; float64 brute force, ties by id; ``-1``
    and ``inf`` pad), computed apart from hqi: an independent oracle.
    """

    vectors: np.ndarray
    attributes: pa.Table
    queries: np.ndarray
    filters: list[str]
    truth_ids: np.ndarray
    truth_sqdist: np.ndarray


def _contest_filter(kind: int, value: float, low: float, high: float) -> str:
    """One contest query's predicate as an hqi filter. ``T`` and the bounds are
    float32; ``repr`` of a float32 widened to float64 is exact, so the filter
    compares the same numbers the contest does."""
    label = f"C = {int(value)}"
    window = f"T BETWEEN {float(np.float32(low))!r} AND {float(np.float32(high))!r}"
    if kind == 0:
        return ""
    if kind == 1:
        return label
    if kind == 2:
        return window
    if kind == 3:
        return f"{label} AND {window}"
    raise InvalidInputError(f"unknown contest query type {kind} (expected 0-3)")


def _read_rows(path: Path, width: int) -> np.ndarray:
    """A contest ``.bin`` file: a uint32 count, then that many rows of ``width`` float32."""
    raw = np.fromfile(path, dtype=np.uint8)
    count = int(raw[:4].view(np.uint32)[0]) if raw.size >= 4 else -1
    body = raw[4:]
    if count < 0 or body.size != count * width * 4:
        raise InvalidInputError(
            f"{path}: expected a uint32 count and count x {width} float32 values, got "
            f"{raw.size} bytes"
        )
    return body.view(np.float32).reshape(count, width)


def load_sigmod2024(root: Path | None = None) -> ContestData:
    """The contest sample from ``root`` (default: :func:`data_root`)."""
    root = data_root() if root is None else root
    folder = None if root is None else root / SIGMOD2024
    if folder is None or not folder.is_dir():
        raise InvalidInputError(
            f"dataset {SIGMOD2024!r} not found: expected shared/data/{SIGMOD2024} beside the "
            "working directory, or set HQI_SHARED_DATA"
        )
    data = _read_rows(folder / "dummy-data.bin", 102)
    queries = _read_rows(folder / "dummy-queries.bin", 104)
    attrs = pa.table(
        {
            "C": pa.array(data[:, 0].astype(np.int64)),
            "T": pa.array(np.ascontiguousarray(data[:, 1])),
        }
    )
    filters = [_contest_filter(int(kind), v, lo, hi) for kind, v, lo, hi in queries[:, :4].tolist()]
    return ContestData(
        np.ascontiguousarray(data[:, 2:]),
        attrs,
        np.ascontiguousarray(queries[:, 4:]),
        filters,
        np.load(folder / "groundtruth_top100_ids.npy").astype(np.int64),
        np.load(folder / "groundtruth_top100_sqdist.npy"),
    )


def make_real_workload(
    vectors: np.ndarray,
    attrs: pa.Table,
    templates: list[Any],
    n: int,
    seed: int,
    noise: float = 0.02,
) -> tuple[np.ndarray, list[str]]:
    """``n`` anchored queries: (vectors, filters)."""
    rng = np.random.default_rng(seed)
    rows = attrs.to_pylist()
    weights = 1.0 / np.arange(1, len(templates) + 1) ** 1.1
    weights = rng.permutation(weights / weights.sum())
    anchors: list[int] = []
    filters: list[str] = []
    while len(filters) < n:
        anchor = int(rng.integers(len(rows)))
        text = templates[int(rng.choice(len(templates), p=weights))](rows[anchor])
        if text is None:
            continue
        anchors.append(anchor)
        filters.append(text)
    d = vectors.shape[1]
    q = vectors[anchors] + rng.standard_normal((n, d), dtype=np.float32) * np.float32(noise)
    return np.ascontiguousarray(q, dtype=np.float32), filters


def load_real(name: str, *, queries: int, train_queries: int, k: int, seed: int = 0) -> BenchData:
    """A real dataset by folder name, with a generated anchored workload (the
    SIGMOD 2024 contest sample brings its own queries: :func:`_contest_bench`)."""
    root = data_root()
    if name not in DATASETS and name != SIGMOD2024:
        raise InvalidInputError(
            f"unknown dataset {name!r}; choose synthetic or one of "
            f"{', '.join([*DATASETS, SIGMOD2024])}"
        )
    if root is None or not (root / name).is_dir():
        raise InvalidInputError(
            f"dataset {name!r} not found: expected shared/data/{name} beside the working "
            "directory, or set HQI_SHARED_DATA"
        )
    if name == SIGMOD2024:
        return _contest_bench(load_sigmod2024(root), queries, train_queries, k, seed)
    vectors, attrs, templates = DATASETS[name](root)
    q, filters = make_real_workload(vectors, attrs, templates, queries, seed + 1)
    _, train = make_real_workload(vectors, attrs, templates, train_queries, seed + 101)
    return BenchData(name, vectors, attrs, train, q, filters, k)


def _contest_bench(
    data: ContestData, queries: int, train_queries: int, k: int, seed: int
) -> BenchData:
    """The contest's own queries as a benchmark: the batch is its first ``queries``
    (all 10,000 at most); the layout learns from ``train_queries`` filters drawn
    (seeded) from the queries after the batch, or from all when none are left."""
    total = len(data.filters)
    n = min(queries, total)
    pool = np.arange(n, total) if n < total else np.arange(total)
    rng = np.random.default_rng(seed + 101)
    picks = rng.choice(pool, size=train_queries, replace=train_queries > pool.size)
    train = [data.filters[i] for i in picks.tolist()]
    return BenchData(
        SIGMOD2024, data.vectors, data.attributes, train, data.queries[:n], data.filters[:n], k
    )
