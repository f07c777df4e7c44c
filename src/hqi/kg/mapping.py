"""The declarative mapping from a knowledge graph to hqi attributes.

A mapping is a small TOML file. ``[entities]`` says where entity ids, labels
and text come from; each ``[attributes.NAME]`` table makes one attribute
column, either from a column of the entity table or from relations of the
triples::

    [entities]
    id = "mid"                  # id column of the entity table (default "id")
    label = "label"             # optional: kept as the string attribute `label`
    text = ["label", "description"]   # optional: what a text model embeds
    label_relation = "http://www.w3.org/2000/01/rdf-schema#label"  # optional

    [attributes.type]
    column = "coarse_type"      # from the entity table
    kind = "category"

    [attributes.genres]
    relations = ["/film/film/genre", "/tv/tv_program/genre"]
    inverse = ["/music/genre/artists"]   # the entity is the tail, the value the head
    kind = "list"
    values = "label"            # tail entities by their label ("id": as is)

    [attributes.birth_year]
    relations = ["people.person.date_of_birth"]
    kind = "year"

Kinds and the column they make:

============  ===============  =================================================
kind          column           values
============  ===============  =================================================
``category``  string           one value; several -> the smallest, reported
``string``    string           same as ``category``
``list``      list<string>     every distinct value, sorted
``year``      int64            a year from ``1912``, ``1912.67`` or ``1912-08-31``
``date``      date32           ``1912-08-31``; a fractional year ``1912.67``
``number``    float64          any number
``integer``   int64            a whole number
============  ===============  =================================================

An entity without a value gets NULL. Values that do not parse as the kind
are skipped and counted in the ingestion report, never an error.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hqi.errors import InvalidInputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "KINDS",
    "AttributeSpec",
    "EntitySpec",
    "Mapping",
    "load_mapping",
    "parse_mapping",
    "read_toml",
]

KINDS = ("category", "string", "list", "year", "date", "number", "integer")
VALUE_MODES = ("id", "label")


@dataclass(frozen=True)
class EntitySpec:
    """Where entity ids, labels and embedding text come from."""

    id: str = "id"
    label: str | None = None
    text: tuple[str, ...] = ()
    label_relation: str | None = None


@dataclass(frozen=True)
class AttributeSpec:
    """One attribute column: its source (a column or relations) and kind."""

    name: str
    kind: str
    column: str | None = None
    relations: tuple[str, ...] = ()
    inverse: tuple[str, ...] = ()
    values: str = "id"

    @property
    def from_triples(self) -> bool:
        return self.column is None


@dataclass(frozen=True)
class Mapping:
    """A parsed mapping file."""

    entities: EntitySpec = field(default_factory=EntitySpec)
    attributes: tuple[AttributeSpec, ...] = ()
    source: str = "<mapping>"

    @property
    def relations(self) -> set[str]:
        """Every relation the mapping reads."""
        used = {r for a in self.attributes for r in (*a.relations, *a.inverse)}
        if self.entities.label_relation:
            used.add(self.entities.label_relation)
        return used


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise InvalidInputError(f"{where} must be a string or a list of strings, not {value!r}")


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InvalidInputError(
            f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}"
        )


def parse_mapping(data: dict[str, Any], source: str = "<mapping>") -> Mapping:
    """Validate a mapping given as a dict (the parsed TOML)."""
    _check_keys(data, {"entities", "attributes"}, source)
    ent = data.get("entities", {})
    if not isinstance(ent, dict):
        raise InvalidInputError(f"{source}: [entities] must be a table")
    _check_keys(ent, {"id", "label", "text", "label_relation"}, f"{source} [entities]")
    for key in ("id", "label", "label_relation"):
        if key in ent and not isinstance(ent[key], str):
            raise InvalidInputError(f"{source} [entities] {key} must be a string")
    entities = EntitySpec(
        id=ent.get("id", "id"),
        label=ent.get("label"),
        text=_strings(ent["text"], f"{source} [entities] text") if "text" in ent else (),
        label_relation=ent.get("label_relation"),
    )
    attrs = data.get("attributes", {})
    if not isinstance(attrs, dict) or not attrs:
        raise InvalidInputError(f"{source}: define at least one [attributes.NAME] table")
    specs: list[AttributeSpec] = []
    reserved = {"label"} if entities.label else set()
    for name, spec in attrs.items():
        where = f"{source} [attributes.{name}]"
        if not isinstance(spec, dict):
            raise InvalidInputError(f"{where} must be a table")
        if not name.isidentifier():
            raise InvalidInputError(f"{where}: attribute names must be identifiers")
        if name.lower() in reserved:
            raise InvalidInputError(f"{where}: 'label' is the entity label column already")
        _check_keys(spec, {"column", "relations", "inverse", "kind", "values"}, where)
        kind = spec.get("kind")
        if kind not in KINDS:
            raise InvalidInputError(
                f"{where}: kind must be one of {', '.join(KINDS)}; got {kind!r}"
            )
        values = spec.get("values", "id")
        if values not in VALUE_MODES:
            raise InvalidInputError(f"{where}: values must be 'id' or 'label'; got {values!r}")
        relations = _strings(spec.get("relations", []), f"{where} relations")
        inverse = _strings(spec.get("inverse", []), f"{where} inverse")
        column = spec.get("column")
        if column is not None and not isinstance(column, str):
            raise InvalidInputError(f"{where}: column must be a string")
        if (column is None) == (not relations and not inverse):
            raise InvalidInputError(
                f'{where}: give either column = "..." or relations/inverse, exactly one source'
            )
        specs.append(AttributeSpec(name, kind, column, relations, inverse, values))
    lowered = [s.name.lower() for s in specs]
    if len(set(lowered)) != len(lowered):
        raise InvalidInputError(f"{source}: attribute names must differ (case-insensitively)")
    return Mapping(entities, tuple(specs), source)


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """A TOML file as a dict; a missing or malformed file names itself."""
    if not path.is_file():
        raise InvalidInputError(f"no such {what} file: {path}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise InvalidInputError(f"{path} is not valid TOML: {err}") from None


def load_mapping(path: str | Path) -> Mapping:
    """Read and validate a TOML mapping file."""
    path = Path(path)
    return parse_mapping(read_toml(path, "mapping"), str(path))
