"""String patterns, matched as DuckDB matches them: SQL ``LIKE`` / ``ILIKE``,
``GLOB`` and RE2 regular expressions (``regexp_matches``,
``regexp_full_match``).

A string column is dictionary-coded (:class:`hqi.query.columns.StringData`),
so a pattern is matched once per distinct value, by Arrow's string kernels
(C++: prefixes, suffixes and substrings directly, other patterns as RE2
expressions), and the evaluators turn the matching codes into masks,
intervals of codes (:mod:`hqi.query.compiled`) or partition flags
(:mod:`hqi.layout.zonemap`), as they do for ``=`` and ``IN``.

DuckDB's semantics, checked against DuckDB by the property tests: ``%`` is
any run of characters (newlines too), ``_`` one code point, the whole value
must match; without ``ESCAPE`` no character escapes (a backslash is a
backslash); ``ILIKE`` lowercases the value, the pattern and the escape
character code point by code point (``'ß' ILIKE 'SS'`` is false), and a
pattern on ``lower(col)`` / ``upper(col)`` (``Like.fold``) matches the
values mapped the same way, once per dictionary (``upper('ß')`` is
``'ẞ'``, as in DuckDB). DuckDB
and Arrow both match regular expressions with RE2: ``.`` does not match a
newline unless the ``'s'`` option is given, and ``^`` / ``$`` are the ends
of the value. ``GLOB`` (checked against DuckDB the same way) is read as
tokens like LIKE's (``*`` / ``?``) where it has no set, and as an RE2
expression where it does; a set is one code point of it, ranges by code
point, and a pattern DuckDB can never match (a set without its ``]``, a
trailing backslash) matches no value. A range of ``lower(col)`` /
``upper(col)`` (:class:`~hqi.query.predicate.FoldedRange`) is found by
bisection in the folded values sorted once, in code point order, the
order in which DuckDB compares strings.
"""

from __future__ import annotations

import string
import weakref
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hqi.query.predicate import FoldedRange, Glob, Like, Pattern, Regex

__all__ = ["escaped", "pattern_codes", "pattern_error", "pattern_hits", "regex_error"]

_WILDCARDS = "%_"


def pattern_error(pattern: str, escape: str | None) -> str | None:
    """Why DuckDB rejects ``pattern`` with ``escape``, or None when it is valid."""
    if escape is not None and len(escape) > 1:
        return f"the ESCAPE string must be empty or one character, not {escape!r}"
    if escape:
        i = 0
        while i < len(pattern):
            if pattern[i] == escape:
                if i + 1 == len(pattern):
                    return f"the LIKE pattern {pattern!r} ends with its escape character"
                i += 1
            i += 1
    return None


REGEX_OPTIONS = "cisl"  # DuckDB's options that hqi evaluates


def regex_error(pattern: str, options: str) -> str | None:
    """Why RE2 rejects a regular expression (with DuckDB ``options``, all of
    them in :data:`REGEX_OPTIONS`), or None when it is valid."""
    try:
        regex = _regex_of(Regex("", pattern, options=options))
        pc.match_substring_regex(pa.array([""], pa.string()), regex)
    except pa.ArrowInvalid as err:
        return str(err).replace("Invalid regular expression: ", "invalid regular expression: ")
    return None


def _quoted(text: str) -> str:
    """``text`` as an RE2 expression matching itself: ASCII punctuation written
    as ``\\x{..}``, so nothing in it is syntax."""
    return "".join(c if c.isalnum() or not c.isascii() else f"\\x{{{ord(c):02x}}}" for c in text)


def _regex_of(pred: Regex) -> str:
    """``pred`` as one RE2 expression: its options as flags, a literal
    pattern quoted, a full match anchored."""
    body = pred.pattern
    if "l" in pred.options:
        body = _quoted(body)
    flags = ""
    cases = [c for c in pred.options if c in "ci"]
    if cases and cases[-1] == "i":
        flags += "i"
    if "s" in pred.options:
        flags += "s"
    if pred.full:
        body = f"^(?:{body})$"
    return f"(?{flags}){body}" if flags else body


def escaped(text: str) -> tuple[str, str | None]:
    """A LIKE pattern (and its escape character) matching ``text`` itself."""
    if not any(c in text for c in _WILDCARDS):
        return text, None
    return "".join("\\" + c if c in "%_\\" else c for c in text), "\\"


def _lower(text: str) -> str:
    """``text`` lowercased code point by code point, as DuckDB's ``lower``."""
    return str(pc.utf8_lower(pa.scalar(text, pa.string())).as_py())


_ANY, _ONE = "%", "_"  # the wildcard tokens; literals are (text,) tuples
Token = str | tuple[str] | tuple[str, str]


def _tokens(pred: Like) -> list[Token]:
    """``pred``'s pattern as tokens: the wildcards ``"%"`` and ``"_"``, and
    runs of literal characters as 1-tuples; lowercased for ILIKE."""
    pattern, escape = pred.pattern, pred.escape or None
    if pred.case_insensitive:
        pattern = _lower(pattern)
        escape = _lower(escape) if escape else None
    tokens: list[Token] = []
    literal: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if escape is not None and c == escape:
            i += 1
            literal.append(pattern[i])  # pattern_error rejected a trailing escape
        elif c in _WILDCARDS:
            if literal:
                tokens.append(("".join(literal),))
                literal = []
            if not (c == _ANY and tokens and tokens[-1] == _ANY):  # '%%' is '%'
                tokens.append(c)
        else:
            literal.append(c)
        i += 1
    if literal:
        tokens.append(("".join(literal),))
    return tokens


# A set of characters in a GLOB pattern, as an RE2 class; one that DuckDB
# can never match (a set without its closing bracket) is None.
_SET = "set"
_NO_CHARACTER = "[^\\x00-\\x{10ffff}]"  # an RE2 class no code point is in


def _glob_tokens(pred: Glob) -> list[Token] | None:
    """``pred``'s pattern as tokens: ``"%"`` for ``*``, ``"_"`` for ``?``,
    runs of literal characters as 1-tuples and sets as ``("set", class)``
    2-tuples holding an RE2 class; None when DuckDB matches no value with it
    (a set without its ``]``, a pattern ending in a backslash).

    DuckDB's reading, checked against it on random patterns: a backslash
    makes the next character literal outside a set and is a member inside
    one; ``[!`` starts a set of the characters not in it; a ``]`` just
    after ``[`` or ``[!`` is a member, a later one ends the set; ``x-y`` is
    the range of code points from ``x`` to ``y`` (none when ``y < x``),
    unless ``y`` would be the ``]`` that ends the set, where ``-`` is a
    member."""
    pattern = pred.pattern
    tokens: list[Token] = []
    literal: list[str] = []

    def push(token: Token) -> None:
        if literal:
            tokens.append(("".join(literal),))
            literal.clear()
        if not (token == _ANY and tokens and tokens[-1] == _ANY):  # '**' is '*'
            tokens.append(token)

    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            push(_ANY)
        elif c == "?":
            push(_ONE)
        elif c == "\\":
            if i == n:
                return None
            literal.append(pattern[i])
            i += 1
        elif c == "[":
            negated = i < n and pattern[i] == "!"
            i += negated
            start, members, closed = i, [], False
            while i < n:
                if pattern[i] == "]" and i > start:
                    closed = True
                    i += 1
                    break
                if i + 2 < n and pattern[i + 1] == "-" and pattern[i + 2] != "]":
                    low, high = pattern[i], pattern[i + 2]
                    if low <= high:
                        members.append(f"{_quoted(low)}-{_quoted(high)}")
                    i += 3
                else:
                    members.append(_quoted(pattern[i]))
                    i += 1
            if not closed:
                return None
            if members:
                push((_SET, ("[^" if negated else "[") + "".join(members) + "]"))
            else:  # only empty ranges: no character, or (negated) any
                push(_ONE if negated else (_SET, _NO_CHARACTER))
        else:
            literal.append(c)
    if literal:
        tokens.append(("".join(literal),))
    return tokens


def _regex(tokens: list[Token]) -> str:
    """An RE2 expression matching exactly what the tokens do (whole value)."""
    out = ["(?s)^"]
    for token in tokens:
        if token == _ANY:
            out.append(".*")
        elif token == _ONE:
            out.append(".")
        elif len(token) == 2:  # a GLOB set: its RE2 class
            out.append(token[1])
        else:
            out.append(_quoted(token[0]))
    out.append("$")
    return "".join(out)


# Per dictionary array (the stores of a search share their parent's): its
# Arrow copy, its lowercase copy for ILIKE, and recent patterns' matching
# codes (the planner asks for a filter's matches several times: its program,
# its routes, its inverted-index bound). Kept as codes, not masks, so that
# thousands of selective patterns fit: at most HITS_CODES codes (32 MB) and
# HITS_ENTRIES patterns a dictionary.
HITS_CODES = 1 << 22
HITS_ENTRIES = 1 << 16


class _Matched:
    def __init__(self, dictionary: np.ndarray) -> None:
        self.values = pa.array(dictionary, pa.string())
        self.mapped: dict[tuple[str, ...], pa.Array] = {(): self.values}
        self.ordered: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = {}
        self.hits: dict[Pattern, np.ndarray] = {}
        self.kept = 0  # codes held in hits

    def sorted_of(self, maps: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(the mapped values in code point order, as an object array; their
        codes): for lookups by bisection, made once per mapping."""
        out = self.ordered.get(maps)
        if out is None:
            values = self.values_of(maps)
            order = pc.sort_indices(values).to_numpy()  # UTF-8 bytes: code point order
            out = (values.take(order).to_numpy(zero_copy_only=False), order)
            self.ordered[maps] = out
        return out

    def values_of(self, maps: tuple[str, ...]) -> pa.Array:
        """The values with Arrow's ``utf8_lower`` / ``utf8_upper`` applied in
        turn (``"lower"``, ``"upper"``): ``lower(col)``, ILIKE's lowercase;
        each sequence computed once."""
        out = self.mapped.get(maps)
        if out is None:
            out = self.values
            for name in maps:
                out = pc.utf8_lower(out) if name == "lower" else pc.utf8_upper(out)
            self.mapped[maps] = out
        return out


_MATCHED: dict[int, _Matched] = {}


def _matched(dictionary: np.ndarray) -> _Matched:
    key = id(dictionary)
    entry = _MATCHED.get(key)
    if entry is None:
        entry = _MATCHED[key] = _Matched(dictionary)
        weakref.finalize(dictionary, _MATCHED.pop, key, None)
    return entry


def forget_patterns() -> None:
    """Forget every dictionary's matched patterns (:func:`pattern_codes`' cache)."""
    for entry in list(_MATCHED.values()):
        entry.hits.clear()
        entry.kept = 0


def pattern_codes(pred: Pattern, dictionary: np.ndarray) -> np.ndarray:
    """The codes (ascending) of the values of a string ``dictionary`` (object
    array of str) that match ``pred``, kept for the next call (read-only). A
    literal, a prefix, a suffix or a substring is matched by Arrow's string
    kernels, any other pattern by an RE2 expression. (Arrow's own
    ``match_like`` takes those shortcuts too, but in pyarrow 26 without
    undoing the pattern's escapes: ``'a\\\\b%'`` misses ``'a\\b'``.)"""
    if dictionary.size == 0:
        return np.zeros(0, dtype=np.int64)
    entry = _matched(dictionary)
    codes = entry.hits.get(pred)
    if codes is None:
        if isinstance(pred, FoldedRange):
            codes = _range_codes(pred, entry)
        else:
            form = _form(pred)
            codes = _looked_up(form, _maps(pred), entry, dictionary)
            if codes is None:
                codes = np.flatnonzero(_match(form, entry.values_of(_maps(pred))))
        codes.flags.writeable = False
        if entry.kept + codes.size > HITS_CODES or len(entry.hits) >= HITS_ENTRIES:
            entry.hits.clear()
            entry.kept = 0
        entry.hits[pred] = codes
        entry.kept += codes.size
    return codes


# A literal or prefix pattern on a dictionary at least this large is looked
# up by bisection instead of compared with every value.
LOOKUP_FROM = 1024


def _maps(pred: Pattern) -> tuple[str, ...]:
    """How a pattern maps the values before matching: its ``lower()`` /
    ``upper()``, then ILIKE's lowercase (``lower(upper('ı'))`` is ``'i'``)."""
    fold = (pred.fold,) if pred.fold else ()
    return fold + (("lower",) if isinstance(pred, Like) and pred.case_insensitive else ())


def _looked_up(
    form: tuple[str, str], maps: tuple[str, ...], entry: _Matched, dictionary: np.ndarray
) -> np.ndarray | None:
    """The codes of an equality or a prefix (:func:`_form`: ``lower(col) =
    'text'``, ``ILIKE 'abc%'``, ``regexp_matches(col, '^abc')``) found by
    bisection in the values sorted as matched: the dictionary itself (sorted
    by code point) or, for ``lower()`` / ``upper()`` / ILIKE, their mapped
    values sorted once. None for any other pattern, or a small dictionary,
    where a pass over the values is as cheap."""
    kind, text = form
    if kind not in ("equal", "prefix") or dictionary.size < LOOKUP_FROM:
        return None
    if maps:
        values, order = entry.sorted_of(maps)
    else:
        values, order = dictionary, None
    lo = int(np.searchsorted(values, text, "left"))
    if kind == "equal":
        hi = int(np.searchsorted(values, text, "right"))
    else:
        past = _past_prefix(text)
        hi = len(values) if past is None else int(np.searchsorted(values, past, "left"))
    if order is None:
        return np.arange(lo, hi, dtype=np.int64)
    return np.sort(order[lo:hi]).astype(np.int64, copy=False)


def _range_codes(pred: FoldedRange, entry: _Matched) -> np.ndarray:
    """The codes of a range of folded values (``lower(col) < 'm'``), by bisection
    in the folded values sorted once in code point order, DuckDB's order
    of strings."""
    values, order = entry.sorted_of(_maps(pred))
    side: Literal["left", "right"] = "left" if pred.op in ("<", ">=") else "right"
    at = int(np.searchsorted(values, pred.value, side))
    lo, hi = (0, at) if pred.op in ("<", "<=") else (at, len(values))
    return np.sort(order[lo:hi]).astype(np.int64, copy=False)


def _past_prefix(prefix: str) -> str | None:
    """The least string after every string that starts with ``prefix``; None
    when there is none (``prefix`` is all U+10FFFF)."""
    while prefix and ord(prefix[-1]) == 0x10FFFF:
        prefix = prefix[:-1]
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else None


def pattern_hits(pred: Pattern, dictionary: np.ndarray) -> np.ndarray:
    """Boolean (D,): which values of ``dictionary`` match ``pred`` (:func:`pattern_codes`)."""
    hit = np.zeros(dictionary.size, dtype=bool)
    hit[pattern_codes(pred, dictionary)] = True
    return hit


# Characters that stand for themselves in an RE2 expression.
_PLAIN = frozenset(string.ascii_letters + string.digits + " _-,:;'\"/=<>@#%&~`!")


def _plain_regex(pred: Regex) -> tuple[str, str] | None:
    """A regular expression that is literal text, perhaps anchored, as
    ("equal" | "prefix" | "suffix" | "substring", text); None otherwise (and
    for case-insensitive ones: RE2's case folding is not Arrow's lowercase)."""
    cases = [c for c in pred.options if c in "ci"]
    if cases and cases[-1] == "i":
        return None
    text, start, end = pred.pattern, pred.full, pred.full
    if "l" not in pred.options:
        if text.startswith("^"):
            text, start = text[1:], True
        if text.endswith("$"):
            text, end = text[:-1], True
        if not all(c in _PLAIN for c in text):
            return None
    kind = {(True, True): "equal", (True, False): "prefix", (False, True): "suffix"}
    return kind.get((start, end), "substring"), text


_KERNELS = {
    "equal": pc.equal,
    "prefix": pc.starts_with,
    "suffix": pc.ends_with,
    "substring": pc.match_substring,
    "regex": pc.match_substring_regex,
}


def _form(pred: Like | Regex | Glob) -> tuple[str, str]:
    """``pred`` as (kind, text): an equality, a prefix, a suffix or a
    substring of literal text, matched by Arrow's literal kernels (a suffix:
    4x faster than RE2 at 500k values), or ("regex", an RE2 expression)."""
    if isinstance(pred, Regex):
        return _plain_regex(pred) or ("regex", _regex_of(pred))
    tokens = _tokens(pred) if isinstance(pred, Like) else _glob_tokens(pred)
    if tokens is None:
        return "none", ""
    shape = "".join(t if isinstance(t, str) else "L" if len(t) == 1 else "S" for t in tokens)
    text = next((t[0] for t in tokens if isinstance(t, tuple)), "")
    kinds = {"": "equal", "L": "equal", _ANY: "prefix", "L%": "prefix"}
    kinds |= {"%L": "suffix", "%L%": "substring"}
    kind = kinds.get(shape)
    return (kind, text) if kind else ("regex", _regex(tokens))  # '%' is the prefix ''


def _match(form: tuple[str, str], values: pa.Array) -> np.ndarray:
    """Whether each of ``values`` (mapped as the pattern asks) matches the
    pattern of ``form`` (:func:`_form`), by a pass over them."""
    kind, text = form
    if kind == "none":
        return np.zeros(len(values), dtype=bool)
    hit = _KERNELS[kind](values, text)
    return np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)
