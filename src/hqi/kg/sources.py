"""Readers for the files a knowledge graph arrives in.

- triples: TSV (``head, relation, tail[, ...]``; an optional header line;
  ``.gz`` is fine) or N-Triples (``.nt``, ``.nt.gz``);
- entity tables: Parquet, CSV or TSV (``.gz`` is fine);
- embeddings: ``.npy`` (rows aligned with an ids file, one id per line, or with
  the entity table), or Parquet with an id column and a vector column;
- text embeddings from a local sentence-transformers model (optional extra
  ``hqi[embed]``; nothing is downloaded at run time).

Every reader turns a malformed file into an :class:`InvalidInputError` that
names the file (and the line, for N-Triples).
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from hqi.collection import vectors_from_arrow
from hqi.errors import InvalidInputError

__all__ = [
    "TRIPLE_SCHEMA",
    "embed_texts",
    "read_embeddings",
    "read_entity_table",
    "read_ntriples",
    "read_triples",
]

TRIPLE_SCHEMA = pa.schema([("head", pa.string()), ("relation", pa.string()), ("tail", pa.string())])
_HEADER_WORDS = {
    "head", "relation", "tail", "subject", "predicate", "object", "s", "p", "o", "h", "r", "t",
    "mid", "entity", "attribute", "value", "property", "id",
}  # fmt: skip


def _exists(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no such {what} file: {path}")
    return path


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _is_ntriples(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".nt", ".nt.gz", ".ntriples", ".ntriples.gz"))


def read_triples(path: str | Path) -> pa.Table:
    """Triples as a (head, relation, tail) string table, from TSV or N-Triples."""
    path = _exists(path, "triples")
    if _is_ntriples(path):
        return read_ntriples(path)
    try:
        with _open_text(path) as fh:
            first = fh.readline().rstrip("\n").split("\t")
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInputError(f"cannot read triples file {path}: {err}") from None
    if len(first) < 3:
        raise InvalidInputError(
            f"{path}: expected tab-separated head, relation, tail; the first line has "
            f"{len(first)} field(s)"
        )
    header = all(f.strip().lower() in _HEADER_WORDS for f in first[:3])
    names = [f"c{i}" for i in range(len(first))]
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(
                column_names=names, skip_rows=1 if header else 0, block_size=1 << 24
            ),
            parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, include_columns=names[:3]
            ),
        )
    except (pa.ArrowInvalid, OSError) as err:
        raise InvalidInputError(f"cannot read triples file {path}: {err}") from None
    return pa.Table.from_arrays(table.columns[:3], schema=TRIPLE_SCHEMA)


_TERM = r'<([^>]*)>|_:(\S+)|"((?:[^"\\]|\\.)*)"(?:\^\^<[^>]*>|@[A-Za-z][A-Za-z0-9-]*)?'
_NT_LINE = re.compile(rf"^\s*(?:{_TERM})\s+<([^>]*)>\s+(?:{_TERM})\s*\.\s*(?:#.*)?$")
_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)")
_SIMPLE = {"t": "\t", "b": "\b", "n": "\n", "r": "\r", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


def _unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        code = m.group(1)
        if code[0] in "uU" and len(code) > 1:
            return chr(int(code[1:], 16))
        return _SIMPLE.get(code, code)

    return _ESCAPE.sub(one, text) if "\\" in text else text


def read_ntriples(path: str | Path) -> pa.Table:
    """Parse N-Triples: IRIs lose their brackets, blank nodes keep ``_:``,
    literals keep their lexical form (datatype and language tags dropped)."""
    path = _exists(path, "triples")
    heads: list[str] = []
    rels: list[str] = []
    tails: list[str] = []
    try:
        with _open_text(path) as fh:
            for lineno, line in enumerate(fh, 1):
                stripped = line.strip()
                if not stripped or stripped.startswith("#"):
                    continue
                m = _NT_LINE.match(stripped)
                if m is None:
                    raise InvalidInputError(
                        f"{path}:{lineno}: not an N-Triples statement: {stripped[:80]!r}"
                    )
                s_iri, s_blank, s_lit, pred, o_iri, o_blank, o_lit = m.groups()
                if s_lit is not None:
                    raise InvalidInputError(f"{path}:{lineno}: a literal cannot be a subject")
                heads.append(s_iri if s_iri is not None else "_:" + s_blank)
                rels.append(pred)
                if o_iri is not None:
                    tails.append(o_iri)
                elif o_blank is not None:
                    tails.append("_:" + o_blank)
                else:
                    tails.append(_unescape(o_lit))
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInputError(f"cannot read triples file {path}: {err}") from None
    return pa.table([heads, rels, tails], schema=TRIPLE_SCHEMA)


def read_entity_table(path: str | Path) -> pa.Table:
    """An entity table from Parquet, CSV or TSV (optionally gzipped)."""
    path = _exists(path, "entity table")
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            return pq.read_table(path)
        delimiter = "\t" if name.endswith((".tsv", ".tsv.gz", ".txt", ".txt.gz")) else ","
        return pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            read_options=pacsv.ReadOptions(block_size=1 << 24),
        )
    except (pa.ArrowInvalid, OSError) as err:
        raise InvalidInputError(f"cannot read entity table {path}: {err}") from None


def read_embeddings(
    path: str | Path,
    ids: str | Path | None = None,
    *,
    id_column: str = "id",
    vector_column: str = "vector",
) -> tuple[list[str] | None, np.ndarray]:
    """(ids or None, float32 vectors) from ``.npy`` (+ ids file) or Parquet."""
    path = _exists(path, "embeddings")
    if path.suffix == ".npy":
        try:
            vectors = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as err:
            raise InvalidInputError(f"cannot read embeddings {path}: {err}") from None
        if vectors.ndim != 2:
            raise InvalidInputError(f"{path}: embeddings must be 2-D, got shape {vectors.shape}")
        names: list[str] | None = None
        if ids is not None:
            ids_path = _exists(ids, "embedding ids")
            with _open_text(ids_path) as fh:
                names = [line.rstrip("\n") for line in fh]
            if names and names[-1] == "":
                names.pop()
            if len(names) != vectors.shape[0]:
                raise InvalidInputError(
                    f"{ids_path} has {len(names)} ids but {path} has {vectors.shape[0]} rows"
                )
        return names, np.asarray(vectors, dtype=np.float32)
    if path.suffix == ".parquet":
        if ids is not None:
            raise InvalidInputError("an ids file goes with .npy embeddings; Parquet has its own")
        table = pq.read_table(path)
        for col, role in ((id_column, "id"), (vector_column, "vector")):
            if col not in table.column_names:
                raise InvalidInputError(
                    f"{path} has no {role} column {col!r}; columns: {table.column_names}"
                )
        names = [str(v) for v in table.column(id_column).to_pylist()]
        return names, vectors_from_arrow(table.column(vector_column), vector_column)
    raise InvalidInputError(f"embeddings must be .npy (with an ids file) or .parquet: {path}")


def embed_texts(texts: Sequence[str], model: str, *, batch_size: int = 64) -> np.ndarray:
    """Embed ``texts`` with a local sentence-transformers model (L2-normalised).

    Needs the optional extra ``hqi[embed]``. hqi sets the Hugging Face
    libraries offline: ``model`` must be a local folder or already cached.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise InvalidInputError(
            "computing embeddings from text needs sentence-transformers: "
            "pip install 'hqi[embed]' (or give precomputed --embeddings)"
        ) from None
    try:
        encoder = SentenceTransformer(model, device="cpu")
    except Exception as err:  # the library raises many kinds for a missing model
        raise InvalidInputError(
            f"cannot load the sentence-embedding model {model!r} locally (hqi never downloads "
            f"at run time; give a local folder or a cached model): {err}"
        ) from None
    out = encoder.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
    )
    return np.ascontiguousarray(np.asarray(out, dtype=np.float32))
