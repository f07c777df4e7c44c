"""A synthetic knowledge-graph-like catalog, generated deterministically from a seed.

Entities have a ``type`` (song, film, album, book, artist, podcast), a
``genre`` (24 values, Zipf-distributed per type), an ``artist`` (high
cardinality, Zipf: the multi-tenant column), a ``year`` (skewed recent,
nullable), ``released`` (a date in that year), ``popularity`` (float,
nullable), ``explicit`` (bool, nullable) and ``tags`` (list<string>, nullable).

Vectors are clustered and correlated with the attributes: the sum of a type
centroid, a genre centroid, an artist offset and Gaussian noise. So "near
this song" and "same genre" overlap the way they do in real embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

__all__ = ["GENRES", "TAGS", "TYPES", "Catalog", "make_catalog"]

TYPES = ("song", "film", "album", "book", "artist", "podcast")
TYPE_P = (0.24, 0.20, 0.16, 0.16, 0.12, 0.12)
GENRES = (
    "pop",
    "rock",
    "hip hop",
    "jazz",
    "classical",
    "electronic",
    "country",
    "blues",
    "metal",
    "folk",
    "reggae",
    "latin",
    "drama",
    "comedy",
    "thriller",
    "documentary",
    "sci-fi",
    "horror",
    "romance",
    "fantasy",
    "mystery",
    "biography",
    "history",
    "news",
)
TAGS = tuple(
    f"{w}"
    for w in (
        "live",
        "remaster",
        "acoustic",
        "award",
        "classic",
        "indie",
        "cover",
        "remix",
        "instrumental",
        "soundtrack",
        "debut",
        "bestseller",
        "cult",
        "explicit-lyrics",
        "duet",
        "holiday",
        "kids",
        "vinyl",
        "bootleg",
        "anniversary",
        "short",
        "series",
        "sequel",
        "adaptation",
        "true-story",
        "foreign",
        "silent",
        "b-side",
        "single",
        "ep",
        "compilation",
        "deluxe",
        "demo",
        "tribute",
        "festival",
        "unplugged",
        "orchestral",
        "lo-fi",
        "viral",
        "chart-topper",
    )
)


@dataclass(frozen=True)
class Catalog:
    """Vectors (N, d) float32, an Arrow attribute table and int64 ids."""

    vectors: np.ndarray
    attributes: pa.Table
    ids: np.ndarray
    seed: int

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


def _zipf(n: int, s: float, rng: np.random.Generator) -> np.ndarray:
    p = 1.0 / np.arange(1, n + 1) ** s
    return rng.permutation(p / p.sum())


def _strings(codes: np.ndarray, values: Sequence[str]) -> pa.Array:
    """A plain string column from codes into ``values``."""
    return pa.DictionaryArray.from_arrays(
        pa.array(codes.astype(np.int32)), pa.array(values, pa.string())
    ).cast(pa.string())


def make_catalog(n: int = 200_000, d: int = 128, *, seed: int = 0) -> Catalog:
    """Generate ``n`` entities with ``d``-dimensional vectors (deterministic in ``seed``)."""
    if n <= 0 or d <= 0:
        raise ValueError(f"n and d must be positive, got n={n}, d={d}")
    rng = np.random.default_rng(seed)
    n_types, n_genres, n_tags = len(TYPES), len(GENRES), len(TAGS)
    n_artists = max(10, n // 200)

    # Each artist has a home type and genre; entities mostly follow their artist.
    artist_p = _zipf(n_artists, 1.05, rng)
    artist_type = rng.choice(n_types, size=n_artists, p=TYPE_P)
    genre_p_by_type = np.stack([_zipf(n_genres, 1.1, rng) for _ in range(n_types)])
    artist_genre = np.array(
        [rng.choice(n_genres, p=genre_p_by_type[t]) for t in artist_type], dtype=np.int64
    )
    artist = rng.choice(n_artists, size=n, p=artist_p)
    own_type = rng.random(n) < 0.5
    typ = np.where(own_type, artist_type[artist], rng.choice(n_types, size=n, p=TYPE_P))
    own_genre = rng.random(n) < 0.75
    genre_u = rng.random(n)
    cdf = np.cumsum(genre_p_by_type, axis=1)
    random_genre = np.minimum((genre_u[:, None] > cdf[typ]).sum(axis=1), n_genres - 1)
    genre = np.where(own_genre, artist_genre[artist], random_genre)

    year = np.clip(2024 - np.floor(rng.exponential(14.0, size=n)), 1920, 2024).astype(np.int32)
    year_null = rng.random(n) < 0.03
    day = rng.integers(0, 365, size=n)
    released = (year - 1970).astype("datetime64[Y]").astype("datetime64[D]") + day
    popularity = np.round(np.clip(rng.lognormal(3.0, 0.8, size=n), 0, 100), 2)
    pop_null = rng.random(n) < 0.02
    explicit = rng.random(n) < 0.1
    explicit_null = rng.random(n) < 0.01

    # Each tag independently, Zipf-weighted, about 2 tags per entity on average.
    tag_p = np.minimum(_zipf(n_tags, 1.0, rng) * 2.0, 0.25)
    has_tag = rng.random((n, n_tags)) < tag_p
    _, flat_tags = np.nonzero(has_tag)
    offsets = np.concatenate([[0], np.cumsum(has_tag.sum(axis=1))]).astype(np.int32)
    tags_null = rng.random(n) < 0.05
    tag_strings = _strings(flat_tags, TAGS)
    tags = pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()), tag_strings, mask=pa.array(tags_null)
    )

    # Vectors: type + genre + artist structure plus noise.
    type_c = rng.standard_normal((n_types, d)).astype(np.float32) * 1.0
    genre_c = rng.standard_normal((n_genres, d)).astype(np.float32) * 0.8
    artist_c = rng.standard_normal((n_artists, d)).astype(np.float32) * 0.5
    vectors = type_c[typ] + genre_c[genre] + artist_c[artist]
    vectors += rng.standard_normal((n, d), dtype=np.float32) * np.float32(0.6)

    artist_names = [f"artist_{i:05d}" for i in range(n_artists)]
    table = pa.table(
        {
            "type": _strings(typ, TYPES),
            "genre": _strings(genre, GENRES),
            "artist": _strings(artist, artist_names),
            "year": pa.array(year, pa.int32(), mask=year_null),
            "released": pa.array(released, pa.date32(), mask=year_null),
            "popularity": pa.array(popularity, pa.float64(), mask=pop_null),
            "explicit": pa.array(explicit, pa.bool_(), mask=explicit_null),
            "tags": tags,
        }
    )
    ids = np.arange(n, dtype=np.int64)
    return Catalog(np.ascontiguousarray(vectors, dtype=np.float32), table, ids, seed)
