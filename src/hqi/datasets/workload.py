"""A skewed batch workload of hybrid queries over a :class:`Catalog`.

Each query comes from one of :data:`TEMPLATES` (40 predicate shapes with
selectivities from about 0.05% to 30% on the default catalog), instantiated
from an *anchor* entity the way knowledge-graph query logs are ("films like
this one, same genre, within 5 years"): its placeholders take the anchor's
attribute values, and the query vector is the anchor's vector plus noise, so
it lies near entities of the anchor's type. Template frequencies follow a
Zipf law, as real logs do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from hqi.datasets.catalog import GENRES, TAGS, TYPES, Catalog
from hqi.query.predicate import sql_literal

__all__ = ["TEMPLATES", "Workload", "make_workload"]

TEMPLATES: tuple[str, ...] = (
    "genre = {genre}",
    "type = {type} AND genre = {genre}",
    "type = {type} AND year BETWEEN {year_m5} AND {year_p5}",
    "type = {type} AND genre = {genre} AND year BETWEEN {year_m5} AND {year_p5}",
    "genre = {genre} AND year >= {decade}",
    "artist = {artist}",
    "artist = {artist} AND year >= {year_m5}",
    "list_contains(tags, {tag})",
    "type = {type} AND list_contains(tags, {tag})",
    "genre = {genre} AND list_contains(tags, {tag})",
    "popularity >= {pop_double}",
    "type = {type} AND popularity >= {pop}",
    "genre IN ({genre}, {genre2}) AND type = {type}",
    "genre IN ({genre}, {genre2}, {genre3})",
    "type = {type} AND NOT explicit",
    "type = {type} AND explicit AND genre = {genre}",
    "released >= {date_m1y} AND type = {type}",
    "released BETWEEN {date_m1y} AND {date_p1y}",
    "year < {decade} AND genre = {genre}",
    "year IS NULL AND type = {type}",
    "type = {type} AND year >= {year} AND popularity > {pop_half}",
    "type != {type} AND genre = {genre}",
    "(genre = {genre} OR list_contains(tags, {tag})) AND type = {type}",
    "artist IN ({artist}, {artist2})",
    "type = {type} AND year BETWEEN {decade} AND {decade_end}",
    "genre = {genre} AND NOT list_contains(tags, {tag})",
    "type = {type} AND tags IS NULL",
    "popularity BETWEEN {pop_half} AND {pop} AND genre = {genre}",
    "type = {type} AND genre = {genre} AND popularity >= {pop_half}",
    "year = {year} AND type = {type}",
    "year = {year} AND genre = {genre}",
    "list_contains(tags, {tag}) AND list_contains(tags, {tag2})",
    "type = {type} AND year >= 2000 AND NOT explicit",
    "genre NOT IN ({genre2}, {genre3}) AND type = {type} AND year >= {decade}",
    "type IN ({type}, {type2}) AND genre = {genre}",
    "artist = {artist} OR (genre = {genre} AND year = {year})",
    "type = {type} AND released >= {date}",
    "popularity >= {pop_top}",
    "genre = {genre} AND year BETWEEN {year_m2} AND {year_p2}",
    "type = {type} AND genre = {genre} AND list_contains(tags, {tag})",
)


@dataclass(frozen=True)
class Workload:
    """Q hybrid queries: vectors (Q, d), one SQL filter each, template and anchor ids."""

    queries: np.ndarray
    filters: list[str]
    templates: np.ndarray
    anchors: np.ndarray
    k: int
    seed: int

    def __len__(self) -> int:
        return int(self.queries.shape[0])


def _other(rng: np.random.Generator, values: tuple[str, ...], not_this: str) -> str:
    while True:
        pick = values[int(rng.integers(len(values)))]
        if pick != not_this:
            return pick


def make_workload(
    catalog: Catalog,
    num_queries: int = 10_000,
    *,
    k: int = 10,
    seed: int = 1,
    noise: float = 0.3,
) -> Workload:
    """Generate ``num_queries`` queries over ``catalog`` (deterministic in ``seed``)."""
    if num_queries <= 0:
        raise ValueError(f"num_queries must be positive, got {num_queries}")
    rng = np.random.default_rng(seed)
    table = catalog.attributes
    cols = {
        name: table.column(name).to_pylist()
        for name in (
            "type",
            "genre",
            "artist",
            "year",
            "released",
            "popularity",
            "explicit",
            "tags",
        )
    }
    eligible = np.flatnonzero(
        np.array(
            [
                y is not None and p is not None and e is not None and bool(t)
                for y, p, e, t in zip(
                    cols["year"], cols["popularity"], cols["explicit"], cols["tags"], strict=True
                )
            ]
        )
    )
    pops = np.array([p for p in cols["popularity"] if p is not None])
    pop_top = round(float(np.quantile(pops, 0.95)), 2)
    pop_q75 = round(float(np.quantile(pops, 0.75)), 2)
    artists = sorted(set(cols["artist"]))

    weights = 1.0 / np.arange(1, len(TEMPLATES) + 1) ** 1.1
    weights = rng.permutation(weights / weights.sum())
    templates = rng.choice(len(TEMPLATES), size=num_queries, p=weights)
    anchors = eligible[rng.integers(len(eligible), size=num_queries)]

    filters = []
    for template, anchor in zip(templates, anchors, strict=True):
        year = cols["year"][anchor]
        released: dt.date = cols["released"][anchor]
        pop = float(cols["popularity"][anchor])
        decade = year - year % 10
        tag = cols["tags"][anchor][int(rng.integers(len(cols["tags"][anchor])))]
        values = {
            "type": cols["type"][anchor],
            "genre": cols["genre"][anchor],
            "artist": cols["artist"][anchor],
            "tag": tag,
            "type2": _other(rng, TYPES, cols["type"][anchor]),
            "genre2": _other(rng, GENRES, cols["genre"][anchor]),
            "genre3": _other(rng, GENRES, cols["genre"][anchor]),
            "artist2": artists[int(rng.integers(len(artists)))],
            "tag2": _other(rng, TAGS, tag),
            "year": year,
            "year_m5": year - 5,
            "year_p5": year + 5,
            "year_m2": year - 2,
            "year_p2": year + 2,
            "decade": decade,
            "decade_end": decade + 9,
            "pop": round(pop, 2),
            "pop_half": round(pop / 2, 2),
            "pop_top": pop_top,
            "pop_double": round(float(np.clip(2 * pop, pop_q75, pop_top)), 2),
            "date": released,
            "date_m1y": released - dt.timedelta(days=365),
            "date_p1y": released + dt.timedelta(days=365),
        }
        filters.append(
            TEMPLATES[template].format(**{key: sql_literal(v) for key, v in values.items()})
        )
    d = catalog.vectors.shape[1]
    queries = catalog.vectors[anchors] + rng.standard_normal((num_queries, d), dtype=np.float32) * (
        np.float32(noise)
    )
    return Workload(
        np.ascontiguousarray(queries, dtype=np.float32), filters, templates, anchors, k, seed
    )
