"""Date parts in filters: ``month(col)``, ``day(col)``, ``dayofweek(col)``, ...

A part of a date is not a range of the column (``month(d) = 12`` holds in
every December), so, unlike ``year()``, it is its own atom,
:class:`~hqi.query.predicate.DatePart`: the set of part values where the
filter holds. Every comparison of a part with a number (``=``, ``!=``,
``<``, ``BETWEEN``, ``IN``) is such a set within the part's range, so one
atom serves them all, and :func:`part_values` computes the part of every
row as DuckDB does (a timestamp's in UTC).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["FUNCTIONS", "PARTS", "SPECIFIERS", "PartColumn", "part_values"]

# Each part's range of values, as DuckDB returns them.
PARTS: dict[str, tuple[int, int]] = {
    "month": (1, 12),
    "day": (1, 31),
    "quarter": (1, 4),
    "dayofweek": (0, 6),  # Sunday 0
    "isodow": (1, 7),  # Monday 1
    "dayofyear": (1, 366),
    "week": (1, 53),  # ISO 8601: weeks from Monday, week 1 holds the year's first Thursday
    "hour": (0, 23),
    "minute": (0, 59),
    "second": (0, 59),
}

# The functions DuckDB names each part by (``month(d)``), lowercase; sqlglot
# parses some into nodes of their own, named here by class.
FUNCTIONS: dict[str, str] = {
    **{part: part for part in PARTS},
    "dayofmonth": "day",
    "weekday": "dayofweek",
    "Month": "month",
    "Day": "day",
    "DayOfMonth": "day",
    "Quarter": "quarter",
    "DayOfWeek": "dayofweek",
    "DayOfWeekIso": "isodow",
    "DayOfYear": "dayofyear",
    "weekofyear": "week",
    "Week": "week",
    "WeekOfYear": "week",
    "Hour": "hour",
    "Minute": "minute",
    "Second": "second",
}

# ``extract(x FROM col)`` and ``date_part('x', col)``: DuckDB's specifiers.
SPECIFIERS: dict[str, str] = {
    **{name: "month" for name in ("month", "months", "mon", "mons")},
    **{name: "day" for name in ("day", "days", "d", "dayofmonth")},
    **{name: "quarter" for name in ("quarter", "quarters")},
    **{name: "dayofweek" for name in ("dayofweek", "dow", "weekday")},
    "isodow": "isodow",
    **{name: "dayofyear" for name in ("dayofyear", "doy")},
    **{name: "week" for name in ("week", "weeks", "w", "weekofyear")},
    **{name: "hour" for name in ("hour", "hours", "h", "hr", "hrs")},
    **{name: "minute" for name in ("minute", "minutes", "m", "min", "mins")},
    **{name: "second" for name in ("second", "seconds", "s", "sec", "secs")},
}

_US_PER_DAY = 86_400_000_000


class PartColumn(NamedTuple):
    """A date part of a column as a column of its own: what the attribute matrix
    (:meth:`hqi.query.compiled.AttributeMatrix.part_column`) and the zone maps
    hold for compiled date-part filters, each row's part less the part's
    least value (a code from 0, NULL where the column is)."""

    column: str
    part: str
    timestamp: bool


def part_values(values: np.ndarray, part: str, *, timestamp: bool) -> np.ndarray:
    """The ``part`` of each of ``values`` (int64): days since 1970-01-01, or
    microseconds since its midnight (UTC) when ``timestamp``. A date's hour,
    minute and second are 0, as in DuckDB."""
    v = values.astype(np.int64, copy=False)
    if part in ("hour", "minute", "second"):
        if not timestamp:
            return np.zeros(v.shape, dtype=np.int64)
        seconds = np.floor_divide(v, 1_000_000) % 86_400  # of the day, floored
        if part == "hour":
            return seconds // 3600
        return (seconds // 60) % 60 if part == "minute" else seconds % 60
    days = np.floor_divide(v, _US_PER_DAY) if timestamp else v
    if part == "dayofweek":
        return (days + 4) % 7  # 1970-01-01 was a Thursday
    if part == "isodow":
        return (days + 3) % 7 + 1
    if part == "week":  # the day of the year of this week's Thursday, in weeks
        thursday = (days + 4 - ((days + 3) % 7 + 1)).astype("datetime64[D]")
        return (thursday - thursday.astype("datetime64[Y]")).astype(np.int64) // 7 + 1
    date = days.astype("datetime64[D]")
    if part == "day":
        return (date - date.astype("datetime64[M]")).astype(np.int64) + 1
    if part == "dayofyear":
        return (date - date.astype("datetime64[Y]")).astype(np.int64) + 1
    month = date.astype("datetime64[M]").astype(np.int64) % 12 + 1
    if part == "month":
        return month
    assert part == "quarter", part
    return (month - 1) // 3 + 1
