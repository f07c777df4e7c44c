"""Turn a knowledge graph (triples + entity table + embeddings) into an hqi catalog.

:func:`ingest` applies a :class:`~hqi.kg.mapping.Mapping`: it fixes the set of
entities (those with an embedding), makes one attribute column per mapped
attribute (NULL where an entity has no value) and reports what was mapped and
what was skipped. :func:`build_kg` then builds an hqi index from it, with the
entity ids as string ids and the label as a ``label`` attribute.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hqi.errors import InvalidInputError
from hqi.kg.mapping import AttributeSpec, Mapping, load_mapping
from hqi.kg.sources import (
    TRIPLE_SCHEMA,
    embed_texts,
    read_embeddings,
    read_entity_table,
    read_triples,
)

__all__ = ["AttributeReport", "IngestReport", "KnowledgeGraph", "ingest"]

_ARROW_TYPES: dict[str, pa.DataType] = {
    "category": pa.string(),
    "string": pa.string(),
    "list": pa.list_(pa.string()),
    "year": pa.int64(),
    "date": pa.date32(),
    "number": pa.float64(),
    "integer": pa.int64(),
}
_DATE = re.compile(r"^\s*(-?\d{1,4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?(?:[T ].*)?\s*$")


@dataclass
class AttributeReport:
    """What happened to one mapped attribute."""

    name: str
    kind: str
    source: str
    entities: int = 0  # entities that got a value
    distinct: int = 0  # distinct values over all entities
    multi_valued: int = 0  # scalar kinds: entities with several values (smallest kept)
    unparsable: int = 0  # values that did not parse as the kind (skipped)
    unlabeled: int = 0  # values="label": values without a label (kept as ids)


@dataclass
class IngestReport:
    """What :func:`ingest` mapped and skipped, for the CLI and for logs."""

    entities: int = 0
    skipped_no_embedding: int = 0
    triples: int = 0
    triples_used: int = 0
    triples_other_entities: int = 0
    unmapped_relations: dict[str, int] = field(default_factory=dict)
    attributes: list[AttributeReport] = field(default_factory=list)

    def lines(self, top: int = 8) -> list[str]:
        """A human-readable summary."""
        out = [
            f"entities: {self.entities:,} kept"
            + (
                f", {self.skipped_no_embedding:,} skipped (no embedding)"
                if self.skipped_no_embedding
                else ""
            ),
            f"triples: {self.triples:,} read, {self.triples_used:,} mapped to attributes, "
            f"{self.triples_other_entities:,} about entities without an embedding, "
            f"{sum(self.unmapped_relations.values()):,} triples of "
            f"{len(self.unmapped_relations):,} unmapped relations skipped",
        ]
        for a in self.attributes:
            extra = []
            if a.multi_valued:
                extra.append(f"{a.multi_valued:,} multi-valued (smallest kept)")
            if a.unparsable:
                extra.append(f"{a.unparsable:,} unparsable values skipped")
            if a.unlabeled:
                extra.append(f"{a.unlabeled:,} values without a label kept as ids")
            out.append(
                f"  {a.name} ({a.kind}, from {a.source}): {a.entities:,} entities, "
                f"{a.distinct:,} distinct" + ("; " + "; ".join(extra) if extra else "")
            )
        if self.unmapped_relations:
            most = sorted(self.unmapped_relations.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
            out.append("most frequent unmapped relations:")
            out.extend(f"  {rel}: {n:,}" for rel, n in most)
        return out


@dataclass
class KnowledgeGraph:
    """An ingested knowledge graph: string ids, float32 vectors, attributes."""

    ids: np.ndarray
    vectors: np.ndarray
    attributes: pa.Table
    report: IngestReport

    def __len__(self) -> int:
        return len(self.ids)


# --------------------------------------------------------------- value parsing


def _year(text: str) -> int | None:
    text = text.strip()
    try:
        return math.floor(float(text))
    except ValueError:
        pass
    m = _DATE.match(text)
    return int(m.group(1)) if m else None


def _date(text: str) -> dt.date | None:
    text = text.strip()
    m = _DATE.match(text)
    if m and (m.group(2) is not None or "." not in text):
        try:
            return dt.date(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1))
        except ValueError:
            return None
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or not 1 <= value < 10_000:
        return None
    year = math.floor(value)
    start = dt.date(year, 1, 1)
    days = (dt.date(year + 1, 1, 1) - start).days if year < 9999 else 365
    return start + dt.timedelta(days=int((value - year) * days))


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _integer(text: str) -> int | None:
    value = _number(text)
    return int(value) if value is not None and value == int(value) else None


_PARSERS: dict[str, Callable[[str], Any]] = {
    "category": lambda s: s if s != "" else None,
    "string": lambda s: s if s != "" else None,
    "list": lambda s: s if s != "" else None,
    "year": _year,
    "date": _date,
    "number": _number,
    "integer": _integer,
}


def _parse_values(values: pa.Array, kind: str) -> tuple[list[Any], int]:
    """Parse a string array by ``kind`` (each distinct value once); count failures."""
    encoded = pc.dictionary_encode(values)
    parser = _PARSERS[kind]
    parsed = [parser(v) if v is not None else None for v in encoded.dictionary.to_pylist()]
    out = [parsed[i] if i is not None else None for i in encoded.indices.to_pylist()]
    failed = sum(1 for v, p in zip(values.to_pylist(), out, strict=True) if v and p is None)
    return out, failed


# ------------------------------------------------------------------- ingestion


def _index_of(keys: pa.Array, universe: pa.Array) -> pa.Array:
    return pc.index_in(keys, value_set=universe)


def _collect(
    spec: AttributeSpec,
    rows: pa.Array,
    values: list[Any],
    n: int,
    report: AttributeReport,
) -> pa.Array:
    """Group (row, value) pairs into one column of length ``n``."""
    per_row: dict[int, set[Any]] = {}
    for r, v in zip(rows.to_pylist(), values, strict=True):
        if r is not None and v is not None:
            per_row.setdefault(r, set()).add(v)
    column: list[Any] = [None] * n
    distinct: set[Any] = set()
    for r, vs in per_row.items():
        distinct |= vs
        if spec.kind == "list":
            column[r] = sorted(vs)
        else:
            column[r] = min(vs)
            report.multi_valued += len(vs) > 1
    report.entities = len(per_row)
    report.distinct = len(distinct)
    return pa.array(column, type=_ARROW_TYPES[spec.kind])


def _from_column(
    spec: AttributeSpec, table: pa.Table, rows: pa.Array, n: int, report: AttributeReport
) -> pa.Array:
    assert spec.column is not None
    if spec.column not in table.column_names:
        raise InvalidInputError(
            f"attribute {spec.name!r}: the entity table has no column {spec.column!r}; "
            f"columns: {table.column_names}"
        )
    col = table.column(spec.column).combine_chunks()
    # rows[i] is the entity-table row of entity i (or null)
    picked = col.take(rows)
    if pa.types.is_list(picked.type) or pa.types.is_large_list(picked.type):
        lists = picked.cast(pa.list_(pa.string()))
        ent = pc.list_parent_indices(lists)
        flat = pc.list_flatten(lists)
    else:
        text = picked.cast(pa.string()) if not pa.types.is_string(picked.type) else picked
        if spec.kind == "list":
            text = pc.split_pattern(text, "|")  # `|`-joined multi-valued cells
            ent = pc.list_parent_indices(text)
            flat = pc.list_flatten(text)
        else:
            ent = pa.array(np.arange(n, dtype=np.int64))
            flat = text
    if spec.kind in {"number", "integer", "year"} and not pa.types.is_string(col.type):
        # numeric column: NaN means missing; keep the values exact
        flat = pc.if_else(pc.is_nan(flat.cast(pa.float64())), None, flat) if len(flat) else flat
        flat = flat.cast(pa.string())
    values, report.unparsable = _parse_values(flat.cast(pa.string()), spec.kind)
    return _collect(spec, ent, values, n, report)


def _from_triples(
    spec: AttributeSpec,
    triples: pa.Table,
    universe: pa.Array,
    labels: dict[str, str],
    n: int,
    report: AttributeReport,
) -> tuple[pa.Array, int]:
    parts_rows: list[pa.Array] = []
    parts_vals: list[pa.Array] = []
    used = 0
    for relations, subject, obj in (
        (spec.relations, "head", "tail"),
        (spec.inverse, "tail", "head"),
    ):
        if not relations:
            continue
        sel = triples.filter(pc.is_in(triples.column("relation"), value_set=pa.array(relations)))
        rows = _index_of(sel.column(subject).combine_chunks(), universe)
        keep = pc.is_valid(rows)
        used += pc.sum(keep).as_py() or 0
        parts_rows.append(rows.filter(keep))
        parts_vals.append(sel.column(obj).combine_chunks().filter(keep))
    rows = pa.concat_arrays(parts_rows) if parts_rows else pa.array([], pa.int32())
    vals = pa.concat_arrays(parts_vals) if parts_vals else pa.array([], pa.string())
    if spec.values == "label":
        raw = vals.to_pylist()
        named = [labels.get(v) for v in raw]
        report.unlabeled = sum(1 for v in named if v is None)
        vals = pa.array([nm if nm is not None else v for nm, v in zip(named, raw, strict=True)])
    values, report.unparsable = _parse_values(vals, spec.kind)
    return _collect(spec, rows, values, n, report), used


def ingest(
    mapping: Mapping | str | Path,
    *,
    triples: Sequence[str | Path | pa.Table] = (),
    entities: str | Path | pa.Table | None = None,
    embeddings: str | Path | tuple[Sequence[str] | None, np.ndarray] | None = None,
    embedding_ids: str | Path | None = None,
    embed_model: str | None = None,
    on_step: Callable[[str], None] | None = None,
) -> KnowledgeGraph:
    """Apply ``mapping`` to a knowledge graph.

    ``triples``: files (TSV or N-Triples) or (head, relation, tail) tables;
    literal values (dates, numbers) are triples too. ``entities``: the entity
    table (ids, labels, text, extra columns), optional. ``embeddings``: a
    ``.npy`` file (rows named by ``embedding_ids``, or aligned with the entity
    table), a Parquet file with ``id`` and ``vector`` columns, or an
    ``(ids, array)`` pair; or ``embed_model``, a local sentence-transformers
    model that embeds each entity's ``[entities] text`` columns.

    The entities are those with an embedding; ones that appear only in the
    table or the triples are counted as skipped.
    """
    step = on_step or (lambda _: None)
    if not isinstance(mapping, Mapping):
        mapping = load_mapping(mapping)
    spec = mapping.entities
    step("reading triples")
    tables = [t if isinstance(t, pa.Table) else read_triples(t) for t in triples]
    for t in tables:
        missing = {"head", "relation", "tail"} - set(t.column_names)
        if missing:
            raise InvalidInputError(
                f"a triples table needs head, relation, tail; missing {missing}"
            )
    all_triples = (
        pa.concat_tables([t.select(["head", "relation", "tail"]) for t in tables])
        if tables
        else TRIPLE_SCHEMA.empty_table()
    )
    if any(a.from_triples for a in mapping.attributes) and not tables:
        raise InvalidInputError("the mapping reads relations, but no triples were given")
    step("reading entities")
    table = read_entity_table(entities) if isinstance(entities, str | Path) else entities
    table_ids: pa.Array | None = None
    if table is not None:
        if spec.id not in table.column_names:
            raise InvalidInputError(
                f"the entity table has no id column {spec.id!r} ([entities] id); "
                f"columns: {table.column_names}"
            )
        table_ids = table.column(spec.id).combine_chunks().cast(pa.string())
        for col in (spec.label, *spec.text):
            if col and col not in table.column_names:
                raise InvalidInputError(
                    f"the entity table has no column {col!r} (named in [entities]); "
                    f"columns: {table.column_names}"
                )
    elif any(not a.from_triples for a in mapping.attributes):
        raise InvalidInputError("the mapping reads entity-table columns, but no table was given")

    labels = _labels(table, table_ids, spec.label, all_triples, spec.label_relation)

    step("reading embeddings")
    names, vectors = _embeddings(
        embeddings, embedding_ids, embed_model, table, table_ids, spec.text, labels
    )
    report = IngestReport(triples=all_triples.num_rows)
    if names is None:
        if table_ids is None:
            raise InvalidInputError("embeddings without ids need an entity table to align with")
        if len(table_ids) != vectors.shape[0]:
            raise InvalidInputError(
                f"the embeddings have {vectors.shape[0]} rows but the entity table has "
                f"{len(table_ids)}; give an ids file to say which row is which entity"
            )
        names = table_ids.to_pylist()
    if len(set(names)) != len(names):
        dup = next(v for v, c in Counter(names).items() if c > 1)
        raise InvalidInputError(f"entity id {dup!r} has more than one embedding")
    universe = pa.array(names, pa.string())
    n = len(names)
    report.entities = n

    known: set[str] = set(table_ids.to_pylist()) if table_ids is not None else set()
    is_mapped = pc.is_in(
        all_triples.column("relation"), value_set=pa.array(list(mapping.relations), pa.string())
    )
    if all_triples.num_rows:
        unmapped = all_triples.filter(pc.invert(is_mapped))
        counts = pc.value_counts(unmapped.column("relation").combine_chunks())
        report.unmapped_relations = {
            c["values"]: c["counts"] for c in counts.to_pylist() if c["values"] is not None
        }
        if any(a.from_triples for a in mapping.attributes):
            known |= set(pc.unique(all_triples.column("head").combine_chunks()).to_pylist())
    report.skipped_no_embedding = len(known - set(names))

    table_rows = _index_of(universe, table_ids) if table_ids is not None else None
    columns: dict[str, pa.Array] = {}
    if spec.label:
        columns["label"] = pa.array([labels.get(v) for v in names], pa.string())
    used_total = 0
    for attr in mapping.attributes:
        step(f"mapping {attr.name}")
        source = (
            f"column {attr.column}"
            if attr.column
            else "relations " + ", ".join([*attr.relations, *(f"^{r}" for r in attr.inverse)])
        )
        rep = AttributeReport(attr.name, attr.kind, source)
        if attr.column is not None:
            assert table is not None and table_rows is not None
            columns[attr.name] = _from_column(attr, table, table_rows, n, rep)
        else:
            columns[attr.name], used = _from_triples(attr, all_triples, universe, labels, n, rep)
            used_total += used
        report.attributes.append(rep)
    report.triples_used = used_total
    report.triples_other_entities = _about_others(all_triples.filter(is_mapped), mapping, universe)
    # a mapping has at least one attribute, so the table has columns
    return KnowledgeGraph(np.array(names, dtype=object), vectors, pa.table(columns), report)


def _about_others(mapped: pa.Table, mapping: Mapping, universe: pa.Array) -> int:
    """Mapped triples whose subject entity has no embedding."""
    inverse = {r for a in mapping.attributes for r in a.inverse}
    if not mapped.num_rows:
        return 0
    is_inv = pc.is_in(mapped.column("relation"), value_set=pa.array(list(inverse), pa.string()))
    subject = pc.if_else(is_inv, mapped.column("tail"), mapped.column("head"))
    if mapping.entities.label_relation:
        is_label = pc.equal(mapped.column("relation"), mapping.entities.label_relation)
        subject = pc.if_else(is_label, None, subject)
    found = pc.is_in(subject, value_set=universe)
    return int(pc.sum(pc.and_(pc.invert(found), pc.is_valid(subject))).as_py() or 0)


def _labels(
    table: pa.Table | None,
    table_ids: pa.Array | None,
    label_column: str | None,
    triples: pa.Table,
    label_relation: str | None,
) -> dict[str, str]:
    """Entity id -> label, from the table column, else from the label relation."""
    labels: dict[str, str] = {}
    if label_relation and triples.num_rows:
        sel = triples.filter(pc.equal(triples.column("relation"), label_relation))
        for h, t in zip(
            sel.column("head").to_pylist(), sel.column("tail").to_pylist(), strict=True
        ):
            if h not in labels or t < labels[h]:
                labels[h] = t
    if table is not None and table_ids is not None and label_column:
        col = table.column(label_column).cast(pa.string()).to_pylist()
        for key, value in zip(table_ids.to_pylist(), col, strict=True):
            if value:
                labels[key] = value
    return labels


def _embeddings(
    embeddings: str | Path | tuple[Sequence[str] | None, np.ndarray] | None,
    embedding_ids: str | Path | None,
    model: str | None,
    table: pa.Table | None,
    table_ids: pa.Array | None,
    text_columns: tuple[str, ...],
    labels: dict[str, str],
) -> tuple[list[str] | None, np.ndarray]:
    if embeddings is not None and model is not None:
        raise InvalidInputError("give precomputed embeddings or a model to compute them, not both")
    if isinstance(embeddings, tuple):
        ids, array = embeddings
        return (None if ids is None else [str(i) for i in ids]), np.asarray(array, np.float32)
    if embeddings is not None:
        return read_embeddings(embeddings, embedding_ids)
    if model is None:
        raise InvalidInputError("give entity embeddings (a .npy or Parquet file) or a text model")
    if table is not None and table_ids is not None and text_columns:
        cols = [table.column(c).cast(pa.string()).to_pylist() for c in text_columns]
        texts = [": ".join(p for p in parts if p) for parts in zip(*cols, strict=True)]
        names = table_ids.to_pylist()
    elif labels:
        names = sorted(labels)
        texts = [labels[k] for k in names]
    else:
        raise InvalidInputError(
            "computing embeddings needs entity text: an entity table with [entities] text "
            "columns, or a label_relation"
        )
    return names, embed_texts(texts, model)
