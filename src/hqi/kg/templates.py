"""Query templates: a filter with holes that an anchor entity's attributes fill.

A template is filter text with placeholders in braces::

    type = 'film' AND list_contains(genres, {genres[0]})
        AND release_year BETWEEN {release_year - 5} AND {release_year + 5}

================  ==============================================================
placeholder       becomes
================  ==============================================================
``{col}``         the anchor's value of ``col`` as a SQL literal (strings quoted
                  and escaped, dates as ``DATE '...'``)
``{col + 5}``     the value plus (or minus) a number; for a date, days
``{col[0]}``      element 0 of a list column (lists are sorted; ``[-1]`` = last)
``{{`` ``}}``     a literal brace
================  ==============================================================

A template whose placeholder is NULL (or out of range) at an anchor cannot be
instantiated there: :meth:`Template.instantiate` returns ``None`` and the
caller reports the query as skipped. Values are rendered as literals, never
spliced in as SQL, and the result is parsed like any other filter.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hqi.errors import InvalidInputError
from hqi.kg.mapping import read_toml
from hqi.query.predicate import sql_literal

__all__ = ["Template", "load_templates"]

_TOKEN = re.compile(
    r"\{\{|\}\}|\{\s*(?P<col>[A-Za-z_]\w*)\s*(?:\[\s*(?P<idx>-?\d+)\s*\])?\s*"
    r"(?:(?P<op>[+-])\s*(?P<num>\d+(?:\.\d+)?))?\s*\}"
)


@dataclass(frozen=True)
class _Hole:
    column: str
    index: int | None
    offset: float | int | None


@dataclass(frozen=True)
class Template:
    """A parsed template; ``columns`` are the attributes its placeholders read."""

    name: str
    text: str
    parts: tuple[str | _Hole, ...]
    columns: tuple[str, ...] = ()

    @classmethod
    def parse(cls, name: str, text: str) -> Template:
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError(f"template {name!r} must be non-empty filter text")
        parts: list[str | _Hole] = []
        pos = 0
        for m in _TOKEN.finditer(text):
            parts.append(_literal(name, text, pos, m.start()))
            token = m.group(0)
            if token in ("{{", "}}"):
                parts.append(token[0])
            else:
                num = m.group("num")
                offset: float | int | None = None
                if num is not None:
                    offset = float(num) if "." in num else int(num)
                    if m.group("op") == "-":
                        offset = -offset
                idx = m.group("idx")
                parts.append(_Hole(m.group("col"), int(idx) if idx else None, offset))
            pos = m.end()
        parts.append(_literal(name, text, pos, len(text)))
        kept = tuple(p for p in parts if p != "")
        columns = tuple(dict.fromkeys(p.column for p in kept if isinstance(p, _Hole)))
        return cls(name, text, kept, columns)

    def instantiate(self, values: Mapping[str, Any]) -> str | None:
        """The filter at an anchor whose attributes are ``values``; None if a hole is NULL."""
        out: list[str] = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
                continue
            rendered = _render(values.get(p.column), p, self.name)
            if rendered is None:
                return None
            out.append(rendered)
        return "".join(out)


def _literal(name: str, text: str, start: int, stop: int) -> str:
    """``text[start:stop]``, which lies between placeholders: a stray brace is an error."""
    literal = text[start:stop]
    for ch in "{}":
        if ch in literal:
            raise InvalidInputError(
                f"template {name!r}: malformed placeholder at position "
                f"{start + literal.index(ch)}: use {{column}}, {{column + N}}, "
                f"{{column[i]}} or {{{{ for a brace}}"
            )
    return literal


def _render(value: Any, hole: _Hole, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        if hole.index is None:
            raise InvalidInputError(
                f"template {name!r}: {{{hole.column}}} is a list column; pick an element, "
                f"for example {{{hole.column}[0]}}"
            )
        if not -len(value) <= hole.index < len(value):
            return None
        value = sorted(value)[hole.index]
    elif hole.index is not None:
        raise InvalidInputError(f"template {name!r}: {hole.column} is not a list; drop [i]")
    if value is None:
        return None
    if hole.offset is not None:
        if isinstance(value, bool) or not isinstance(value, int | float | dt.date):
            raise InvalidInputError(
                f"template {name!r}: {{{hole.column} ± N}} needs a number or date column"
            )
        if isinstance(value, float) and value != value:
            return None
        if isinstance(value, dt.date):
            value = value + dt.timedelta(days=float(hole.offset))
        else:
            value = value + hole.offset
    return sql_literal(value)


def load_templates(source: str | Path | Mapping[str, str]) -> dict[str, Template]:
    """Templates by name from a dict or a TOML file with a ``[templates]`` table."""
    if isinstance(source, Mapping):
        data: Any = dict(source)
        where = "templates"
    else:
        path = Path(source)
        parsed = read_toml(path, "templates")
        if set(parsed) != {"templates"} or not isinstance(parsed["templates"], dict):
            raise InvalidInputError(f"{path}: put templates in one [templates] table: name = '...'")
        data = parsed["templates"]
        where = str(path)
    if not data:
        raise InvalidInputError(f"{where}: no templates")
    return {str(name): Template.parse(str(name), text) for name, text in data.items()}
