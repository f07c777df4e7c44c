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
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hqi.benchmark.systems import BenchData
from hqi.errors import InvalidInputError
from hqi.query.predicate import sql_literal

__all__ = ["DATASETS", "data_root", "load_real"]


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
        lambda a: (
            (
                f"list_contains(genres, {sql_literal(a['genres'][0])}) AND year BETWEEN "
                f"{a['year'] - 5} AND {a['year'] + 5}"
            )
            if a["genres"] and a["year"]
            else None
        ),
        lambda a: f"year = {a['year']}" if a["year"] else None,
        lambda a: f"year < {a['year']}" if a["year"] else None,
        lambda a: "rating >= 3.5" if a["rating"] is not None else None,
        lambda a: f"list_contains(tags, {sql_literal(a['tags'][0])})" if a["tags"] else None,
    ]
    return vectors, attrs, templates


DATASETS: dict[str, Callable[[Path], tuple[np.ndarray, pa.Table, list[Any]]]] = {
    "fb15k237": _fb15k237,
    "movielens": _movielens,
}


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
    """A real dataset by folder name, with a generated anchored workload."""
    root = data_root()
    if name not in DATASETS:
        raise InvalidInputError(
            f"unknown dataset {name!r}; choose synthetic or one of {', '.join(DATASETS)}"
        )
    if root is None or not (root / name).is_dir():
        raise InvalidInputError(
            f"dataset {name!r} not found: expected shared/data/{name} beside the working "
            "directory, or set HQI_SHARED_DATA"
        )
    vectors, attrs, templates = DATASETS[name](root)
    q, filters = make_real_workload(vectors, attrs, templates, queries, seed + 1)
    _, train = make_real_workload(vectors, attrs, templates, train_queries, seed + 101)
    return BenchData(name, vectors, attrs, train, q, filters, k)
