"""The errors hqi raises for bad input, documented in one place.

Every error a user can cause derives from :class:`HqiError`, so
``except hqi.HqiError`` catches all of them. Each message names the problem
and, where there is one, the fix.

==========================  ====================================================
error                       raised when
==========================  ====================================================
``FilterSyntaxError``       a filter is not valid SQL; ``.position`` is the
                            0-based character offset of the problem
``UnknownColumnError``      a filter names a column the collection lacks;
                            ``.suggestion`` is the nearest valid name
``FilterTypeError``         a literal does not fit its column's type
                            (``year = 'abc'``, ``tags > 3``, ...)
``UnsupportedFilterError``  valid SQL that hqi does not evaluate (a function
                            other than ``list_contains``, arithmetic, ...)
``InvalidInputError``       vectors, ids, attributes or options are malformed:
                            wrong dimension, NaN/inf, duplicate ids, k <= 0,
                            unknown metric, unknown entity id, ...
``IndexFormatError``        an index directory is missing, truncated,
                            corrupted or written by a newer format version
==========================  ====================================================
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

__all__ = [
    "FilterError",
    "FilterSyntaxError",
    "FilterTypeError",
    "HqiError",
    "IndexFormatError",
    "InvalidInputError",
    "UnknownColumnError",
    "UnsupportedFilterError",
    "check_option_names",
    "positive_int",
    "real_number",
]


class HqiError(Exception):
    """Base class of every error hqi raises for bad input."""


class InvalidInputError(HqiError, ValueError):
    """Vectors, ids, attributes or options that hqi cannot accept."""


class FilterError(HqiError, ValueError):
    """A filter that cannot be parsed, checked or evaluated.

    ``text`` is the filter as given and ``position`` the 0-based offset of the
    problem in it (``None`` when it concerns the whole filter).
    """

    def __init__(self, message: str, *, text: str = "", position: int | None = None) -> None:
        self.text = text
        self.position = position
        where = f" at position {position}" if position is not None else ""
        full = f"{message}{where}"
        if text:
            full += f" in filter {text!r}"
            if position is not None:
                full += "\n  " + text + "\n  " + " " * position + "^"
        super().__init__(full)
        self.message = message


class FilterSyntaxError(FilterError):
    """The filter is not a valid SQL expression."""


class UnknownColumnError(FilterError):
    """The filter names a column the collection does not have."""

    def __init__(
        self,
        column: str,
        *,
        suggestion: str | None,
        text: str = "",
        position: int | None = None,
    ) -> None:
        self.column = column
        self.suggestion = suggestion
        hint = f"; did you mean {suggestion!r}?" if suggestion else ""
        super().__init__(f"unknown column {column!r}{hint}", text=text, position=position)


class FilterTypeError(FilterError):
    """A literal or operator does not fit the type of its column."""


class UnsupportedFilterError(FilterError):
    """Valid SQL that hqi does not evaluate."""


class IndexFormatError(HqiError, OSError):
    """An index directory that cannot be opened as an hqi index."""


def check_option_names(kind: str, given: Iterable[str], valid: list[str]) -> None:
    """Raise :class:`InvalidInputError` for an unknown ``kind`` option, suggesting the nearest."""
    import difflib

    for name in given:
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(valid)}"
            raise InvalidInputError(f"unknown {kind} option {name!r}{hint}")


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int if it is a positive integer (Python's or NumPy's, not a
    bool), else :class:`InvalidInputError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def real_number(name: str, value: Any, requirement: str) -> float:
    """``value`` as a float if it is a real number (Python's or NumPy's, not a bool),
    else :class:`InvalidInputError` saying ``name`` must be ``requirement``; the
    caller checks the range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInputError(f"{name} must be {requirement}, got {value!r}")
    return float(value)
