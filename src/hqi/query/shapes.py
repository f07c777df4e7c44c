"""Parse many filters fast by reusing the work for filters of the same shape.

Query logs are instances of a few templates: ``genre = 'jazz' AND year > 1990``
and ``genre = 'rock' AND year > 2001`` differ only in their literals. A
filter's *shape* is its text with every string and number literal replaced by
a slot. The first filter of a shape is parsed by sqlglot; later ones reuse its
syntax tree with their own literals put into the slots, and only the (cheap)
schema check runs again.

The shortcut is taken only when this module's literal scan agrees exactly
with sqlglot's literals for the shape's first filter; anything unusual
(comments, escapes, a scan that disagrees) simply parses in full. Errors are
always reported from a full parse, so their positions are exact.
"""

from __future__ import annotations

import threading

from sqlglot import exp

from hqi.errors import FilterError, FilterSyntaxError
from hqi.query.columns import Schema
from hqi.query.parser import _Checker, _sqlglot_parse, parse_filter
from hqi.query.predicate import Predicate

__all__ = ["FilterParser", "shape_of"]

Literal = tuple[str, str]  # ("s" | "n", value)


def _scan_number(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i].isdigit():
        i += 1
    if i < n and text[i] == ".":
        i += 1
        while i < n and text[i].isdigit():
            i += 1
    if i < n and text[i] in "eE":
        j = i + 1
        if j < n and text[j] in "+-":
            j += 1
        if j < n and text[j].isdigit():
            i = j
            while i < n and text[i].isdigit():
                i += 1
    return i


def shape_of(text: str) -> tuple[str, list[Literal]] | None:
    """(shape, literals in order), or None when the text is not simple to scan."""
    out: list[str] = []
    lits: list[Literal] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "'":
            j, buf = i + 1, []
            while True:
                if j >= n:
                    return None
                if text[j] == "'":
                    if j + 1 < n and text[j + 1] == "'":
                        buf.append("'")
                        j += 2
                        continue
                    break
                buf.append(text[j])
                j += 1
            lits.append(("s", "".join(buf)))
            out.append("'?'")
            i = j + 1
        elif c == '"':
            j = text.find('"', i + 1)
            if j < 0:
                return None
            out.append(text[i : j + 1])
            i = j + 1
        elif c.isalpha() or c == "_":
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            out.append(text[i:j])
            i = j
        elif c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit()):
            j = _scan_number(text, i)
            lits.append(("n", text[i:j]))
            out.append("#")
            i = j
        elif c.isspace():
            while i < n and text[i].isspace():
                i += 1
            out.append(" ")
        elif c in "-/#":  # comments and operators that could hide a literal: no shortcut
            if text.startswith("--", i) or text.startswith("/*", i) or c == "#":
                return None
            out.append(c)
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out), lits


def _literal_nodes(tree: exp.Expression) -> list[exp.Literal]:
    nodes = [n for n in tree.walk() if isinstance(n, exp.Literal)]
    return sorted(nodes, key=lambda n: (getattr(n, "_meta", None) or {}).get("start", -1))


class FilterParser:
    """Parses filters for one schema, caching by text and by shape (thread-safe).

    ``max_entries`` bounds each cache; past it the cache starts afresh.
    """

    def __init__(self, schema: Schema, *, max_entries: int = 100_000) -> None:
        self.schema = schema
        self.max_entries = max_entries
        self._texts: dict[str, Predicate | None] = {}
        self._shapes: dict[str, tuple[exp.Expression, list[exp.Literal]] | None] = {}
        self._lock = threading.Lock()

    def parse(self, text: str | None) -> Predicate | None:
        """Like :func:`hqi.query.parse_filter`, with caching."""
        if text is None:
            return None
        if not isinstance(text, str):  # not a cache key either (a list, ...)
            raise FilterSyntaxError(
                f"a filter must be a SQL string or None, not {type(text).__name__}"
            )
        if text in self._texts:
            return self._texts[text]
        pred = self._parse_uncached(text)
        if len(self._texts) >= self.max_entries:
            self._texts.clear()
        self._texts[text] = pred
        return pred

    def _parse_uncached(self, text: str) -> Predicate | None:
        if not isinstance(text, str) or not text.strip():
            return parse_filter(text, self.schema)
        scanned = shape_of(text)
        if scanned is None:
            return parse_filter(text, self.schema)
        shape, lits = scanned
        with self._lock:
            if shape not in self._shapes:
                tree = _sqlglot_parse(text)  # errors surface here, positioned
                pred = _Checker(text, self.schema).predicate(tree)
                nodes = _literal_nodes(tree)
                agrees = len(nodes) == len(lits) and all(
                    node.is_string == (kind == "s") and str(node.this) == value
                    for node, (kind, value) in zip(nodes, lits, strict=False)
                )
                if len(self._shapes) >= self.max_entries:
                    self._shapes.clear()
                self._shapes[shape] = (tree, nodes) if agrees else None
                return pred
            entry = self._shapes[shape]
            if entry is None:
                return parse_filter(text, self.schema)
            tree, nodes = entry
            for node, (_, value) in zip(nodes, lits, strict=True):
                node.set("this", value)
            try:
                return _Checker(text, self.schema).predicate(tree)
            except FilterError:
                pass
        return parse_filter(text, self.schema)  # raises with exact positions
