"""Shared test data: a table with NULLs in every column kind, predicate strategies,
and the rows DuckDB selects (the oracle)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import duckdb
import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from hqi.query import ColumnStore
from hqi.query.columns import normalize_table

N = 300
STRINGS = ["jazz", "rock", "Rock", "hip hop", "O'Brien", "émile", "", "zz"]
TAGS = ["live", "remix", "a", "b"]
# Values for LIKE: wildcards and a backslash as data, case pairs, and code
# points whose lowercase DuckDB maps one to one ('İ' -> 'i', 'Σ' -> 'σ', 'ß'
# stays), and whose uppercase is another letter's ('ı' -> 'I', 'ſ' -> 'S').
NAMES = [
    "The Who",
    "the who",
    "50%_off",
    "50% off",
    "a\\b",
    "a_b",
    "İstanbul",
    "ΣΑΣ",
    "ß",
    "x\ny",
    "",
    "ı",
    "ſun",
]


def _table() -> pa.Table:
    rng = np.random.default_rng(3)

    def nulls(p: float = 0.15) -> np.ndarray:
        return rng.random(N) < p

    tags = []
    for _ in range(N):
        if rng.random() < 0.1:
            tags.append(None)
        else:
            items: list[str | None] = list(rng.choice(TAGS, size=rng.integers(0, 4)))
            if rng.random() < 0.1:
                items.append(None)
            tags.append(items)
    floats = rng.normal(0, 10, N).round(2)
    floats[rng.random(N) < 0.05] = np.nan  # NaN counts as NULL in hqi
    days = rng.integers(0, 20000, N)
    table = pa.table(
        {
            "id": pa.array(np.arange(N)),
            "s": pa.array(rng.choice(STRINGS, N).tolist(), mask=nulls()),
            "i": pa.array(rng.integers(-5, 6, N), pa.int64(), mask=nulls()),
            "f": pa.array(floats, mask=nulls()),
            "b": pa.array(rng.random(N) < 0.5, mask=nulls()),
            "d": pa.array(
                (np.datetime64("1970-01-01") + days).astype("datetime64[D]"),
                pa.date32(),
                mask=nulls(),
            ),
            "ts": pa.array(
                np.datetime64("2020-01-01T00:00:00", "us") + rng.integers(0, 10**11, N),
                pa.timestamp("us"),
                mask=nulls(),
            ),
            "tags": pa.array(tags, pa.list_(pa.string())),
        }
    )
    names = np.random.default_rng(4)  # its own stream: the columns above stay as they were
    table = table.append_column(
        "name", pa.array(names.choice(NAMES, N).tolist(), mask=names.random(N) < 0.15)
    )
    return normalize_table(table)


TABLE = _table()
STORE = ColumnStore(TABLE)


def oracle_settings(max_examples: int) -> settings:
    """Hypothesis settings of the tests that check generated filters against
    DuckDB: no deadline and no too-slow check (the first examples parse and
    plan cold), and DuckDB's connection may be a test's fixture."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


def duckdb_with(name: str, table: pa.Table) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection with ``table`` registered as ``name``, closed after:
    the body of a module's oracle-connection fixture (``yield from``)."""
    connection = duckdb.connect()
    connection.register(name, table)
    yield connection
    connection.close()


def duckdb_ids(con: duckdb.DuckDBPyConnection, text: str) -> list[int]:
    """The ``id`` of the rows of table ``t`` that DuckDB selects with ``text``, ascending."""
    return sorted(r[0] for r in con.execute(f"SELECT id FROM t WHERE {text}").fetchall())


def quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


ops = st.sampled_from(["=", "!=", "<>", "<", "<=", ">", ">="])
str_lit = st.sampled_from([*STRINGS, "jaz", "zzz"]).map(quote)
int_lit = st.integers(-7, 7).map(str)
float_lit = st.floats(-30, 30, allow_nan=False).map(lambda x: f"{x:.3f}")
date_lit = st.dates(dt.date(1965, 1, 1), dt.date(2030, 1, 1)).map(lambda d: f"DATE '{d}'")
ts_lit = st.datetimes(dt.datetime(2019, 6, 1), dt.datetime(2023, 6, 1)).map(
    lambda t: f"TIMESTAMP '{t.replace(microsecond=0)}'"
)
columns = {"s": str_lit, "i": int_lit, "f": float_lit, "d": date_lit, "ts": ts_lit}


def _compared(
    draw: st.DrawFn, expr: str, number: st.SearchStrategy[str], *, null_low: bool, items: int
) -> str:
    """``expr`` (a number) compared with ``number``s: ``op`` either way round,
    [NOT] BETWEEN (its low bound NULL too when ``null_low``), [NOT] IN up to
    ``items`` numbers or NULL, IS [NOT] NULL, IS [NOT] DISTINCT FROM."""
    form = draw(st.sampled_from(["cmp", "cmp", "between", "in", "null"]))
    if form == "null":  # IS [NOT] NULL, IS [NOT] DISTINCT FROM a number or NULL
        right = draw(st.one_of(number, st.just("NULL")))
        op = draw(st.sampled_from(["IS DISTINCT FROM", "IS NOT DISTINCT FROM"]))
        return (
            f"{expr} IS {'NOT ' if draw(st.booleans()) else ''}NULL"
            if right == "NULL" and draw(st.booleans())
            else f"{expr} {op} {right}"
        )
    if form == "between":
        neg = "NOT " if draw(st.booleans()) else ""
        low = draw(st.one_of(number, st.just("NULL")) if null_low else number)
        return f"{expr} {neg}BETWEEN {low} AND {draw(number)}"
    if form == "in":
        listed = draw(st.lists(st.one_of(number, st.just("NULL")), min_size=1, max_size=items))
        return f"{expr} {'NOT ' if draw(st.booleans()) else ''}IN ({', '.join(listed)})"
    left, right, op = expr, draw(number), draw(ops)
    return f"{left} {op} {right}" if draw(st.booleans()) else f"{right} {op} {left}"


@st.composite
def years(draw: st.DrawFn) -> str:
    """``year(d)`` / ``extract(year FROM ts)`` / ``date_part('year', d)`` compared,
    BETWEEN, IN (with NULL): integers and some halves, rewritten by hqi as
    ranges of the column; ``isoyear`` and ``yearweek`` alike (week numbers
    0-54, some naming no week)."""
    col = draw(st.sampled_from(["d", "ts"]))
    unit = draw(st.sampled_from(["year", "year", "isoyear", "yearweek"]))
    forms = [f"{unit}({{}})", f"extract({unit} FROM {{}})", f"date_part('{unit}', {{}})"]
    fn = draw(st.sampled_from(forms))
    year = st.one_of(st.integers(1965, 2030).map(str), st.sampled_from(["1990.5", "2020.5"]))
    if unit == "yearweek":
        weeks = st.tuples(st.integers(1965, 2030), st.integers(0, 54))
        year = st.one_of(weeks.map(lambda yw: str(100 * yw[0] + yw[1])), st.just("202052.5"))
    return _compared(draw, fn.format(col), year, null_low=False, items=3)


# Date parts as DuckDB names them: functions, then extract / date_part specifiers.
_PART_FUNCTIONS = ["month", "day", "dayofmonth", "quarter", "dayofweek", "weekday", "isodow"]
_PART_FUNCTIONS += ["dayofyear", "week", "weekofyear", "hour", "minute", "second"]
_PART_SPECIFIERS = ["month", "mons", "d", "quarter", "dow", "isodow", "doy", "w", "hr", "min", "s"]


@st.composite
def date_parts(draw: st.DrawFn) -> str:
    """``month(d)``, ``extract(dow FROM ts)``, ``date_part('hr', ts)``, ... compared,
    BETWEEN, IN (with NULL), IS [NOT] NULL and DISTINCT: numbers in and out of
    each part's range and some halves, which hqi reads as sets of the part's
    values (a date's hour is 0)."""
    col = draw(st.sampled_from(["d", "ts"]))
    form = draw(st.sampled_from(["function", "function", "extract", "date_part"]))
    if form == "function":
        expr = f"{draw(st.sampled_from(_PART_FUNCTIONS))}({col})"
    elif form == "extract":
        expr = f"extract({draw(st.sampled_from(_PART_SPECIFIERS))} FROM {col})"
    else:
        expr = f"date_part('{draw(st.sampled_from(_PART_SPECIFIERS))}', {col})"
    number = st.one_of(
        st.integers(-1, 13).map(str),
        st.integers(50, 54).map(str),
        st.integers(0, 370).map(str),
        st.sampled_from(["2.5", "6.5", "0.5", "-0.0"]),
    )
    return _compared(draw, expr, number, null_low=True, items=4)


# LIKE patterns: pieces of the values above, wildcards, escapes and case changes.
_PIECES = ["%", "_", "The", "the", "WHO", " ", "who", "50", "\\", "!", "!%", "!_", "!!", "b"]
_PIECES += ["i", "İ", "σ", "Σ", "SS", "ß", "\n", "r", "o", "ck", "'", "é"]
like_pattern = st.lists(st.sampled_from(_PIECES), max_size=4).map("".join)


# NAMES as lower() / upper() make them (and as they do not: 'ß' has no 'SS').
_FOLDED = ["THE WHO", "İSTANBUL", "ISTANBUL", "istanbul", "σασ", "SUN", "ẞ", "SS", "I", "50%_OFF"]


# Bounds for ranges of folded values: between and around the values above.
_BOUNDS = ["", "a", "m", "the", "THE", "i", "ı", "ss", "ß", "σ", "z", "ÿ", "\U0010ffff"]


def folded(col: str, draw: st.DrawFn) -> str:
    """``col`` as is (half the time) or inside ``lower()`` / ``upper()`` (or
    DuckDB's ``lcase`` / ``ucase``)."""
    fn = draw(st.sampled_from([None, None, None, "lower", "upper", "lcase", "ucase"]))
    return col if fn is None else f"{fn}({col})"


@st.composite
def like(draw: st.DrawFn, negated: bool = True) -> str:
    """``LIKE`` / ``ILIKE`` (optionally with ``ESCAPE '!'``, and ``NOT`` unless
    ``negated`` is False) and the string functions that hqi reads as LIKE
    patterns, on ``name`` or ``s`` or ``lower()`` / ``upper()`` of them, and
    ``lower(col)`` / ``upper(col)`` compared with text (``=``, ``!=``, ``IN``,
    ranges)."""
    col = folded(draw(st.sampled_from(["name", "name", "s"])), draw)
    kind = draw(st.sampled_from(["like", "like", "function", "equal"]))
    if kind == "equal" and col.endswith(")"):  # lower(col) = 'text', IN, !=, IS NULL, <
        texts = st.sampled_from([*NAMES, *_FOLDED, *_BOUNDS])
        ranges = ["<", "<=", ">", ">=", "BETWEEN"]
        forms = ["=", "!=", "IN", "NOT IN", "null", *ranges] if negated else ["=", *ranges]
        form = draw(st.sampled_from(forms))
        if form == "null":
            return f"{col} IS {'NOT ' if draw(st.booleans()) else ''}NULL"
        if form in ("IN", "NOT IN"):
            items = draw(st.lists(texts.map(quote) | st.just("NULL"), min_size=1, max_size=3))
            return f"{col} {form} ({', '.join(items)})"
        if form == "BETWEEN":
            low, high = (draw(texts.map(quote) | st.just("NULL")) for _ in range(2))
            return f"{col} BETWEEN {low} AND {high}"
        return f"{col} {form} {quote(draw(texts))}"
    if kind == "function":
        fn = draw(st.sampled_from(["starts_with", "prefix", "ends_with", "suffix", "contains"]))
        text = draw(st.sampled_from([*NAMES, "50%", "_", "\\", "who", "%", "a_"]))
        return f"{fn}({col}, {quote(text)})"
    pattern = draw(like_pattern)
    escape = draw(st.sampled_from([None, None, "!", ""]))
    if escape == "!":  # DuckDB rejects a pattern that ends with its escape character
        trailing = len(pattern) - len(pattern.rstrip("!"))
        pattern += "!" if trailing % 2 else ""
    words = ["LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"] if negated else ["LIKE", "ILIKE"]
    symbols = ["~~", "~~*", "!~~"] if negated else ["~~", "~~*"]
    op = draw(st.sampled_from(words if escape is not None else [*words, *symbols]))
    tail = "" if escape is None else f" ESCAPE {quote(escape)}"
    return f"{col} {op} {quote(pattern)}{tail}"


# Regular expressions: pieces that are valid RE2 in any order.
_RE_PIECES = ["a", "b", "W", "ho", ".", ".*", "[a-z]+", "\\d+", "(?:The|the)", "5", "%", "_"]
_RE_PIECES += ["\\\\", "İ", "σ", "Σ", "ß", " ", "^", "$", "|", "\\n"]


@st.composite
def regex(draw: st.DrawFn) -> str:
    """``regexp_matches`` / ``regexp_full_match`` with DuckDB's options and
    ``[NOT] SIMILAR TO``, on ``name`` or ``s`` (or ``lower()`` / ``upper()`` of them)."""
    col = folded(draw(st.sampled_from(["name", "name", "s"])), draw)
    pattern = quote("".join(draw(st.lists(st.sampled_from(_RE_PIECES), max_size=4))))
    form = draw(st.sampled_from(["fn", "fn", "SIMILAR TO", "NOT SIMILAR TO"]))
    if form != "fn":
        return f"{col} {form} {pattern}"
    fn = draw(st.sampled_from(["regexp_matches", "regexp_full_match"]))
    options = draw(st.sampled_from([None, "i", "s", "l", "c", "ic", "ci", "is", ""]))
    return f"{fn}({col}, {pattern}{'' if options is None else ', ' + quote(options)})"


# GLOB: wildcards, sets (negated, ranges, a leading ']', a trailing '-', a
# reversed range, one left open) and escapes, among the names' characters.
_GLOB_PIECES = ["*", "?", "T", "he", " ", "W", "ho", "a", "b", "%", "_", "\\", "\\*", "\\?"]
_GLOB_PIECES += ["[a-z]", "[!a-z]", "[A-Z]", "[]a]", "[a-]", "[b-a]", "[!b-a]", "[", "]", "!"]
_GLOB_PIECES += ["[%_]", "[\\]", "[!]", "ß", "İ", "[ß-ſ]", "\n", "[^T]"]


@st.composite
def glob(draw: st.DrawFn, negated: bool = True) -> str:
    """``[NOT] GLOB`` on ``name`` or ``s`` (or ``lower()`` / ``upper()`` of them)."""
    col = folded(draw(st.sampled_from(["name", "name", "s"])), draw)
    pattern = "".join(draw(st.lists(st.sampled_from(_GLOB_PIECES), max_size=4)))
    op = draw(st.sampled_from(["GLOB", "NOT GLOB"] if negated else ["GLOB"]))
    return f"{col} {op} {quote(pattern)}"


@st.composite
def coalesced(draw: st.DrawFn) -> str:
    """``coalesce(col, value)`` / ``ifnull`` (a NULL first or as the only value
    too) in place of the column: compared as :func:`_compared` compares
    (BETWEEN, IN, IS [NOT] NULL / DISTINCT FROM included), after one
    arithmetic step on ``i`` and ``f``, inside ``lower()`` on ``s``, and bare
    on ``b``."""
    col = draw(st.sampled_from([*sorted(columns), "b"]))
    lit = columns.get(col, st.sampled_from(["TRUE", "FALSE"]))
    head = draw(
        st.sampled_from(
            [
                "coalesce({c}, {v})",
                "ifnull({c}, {v})",
                "coalesce({c}, NULL, {v})",
                "coalesce({c}, NULL)",
            ]
        )
    )
    expr = head.format(c=col, v=draw(lit))
    if col == "b":
        return draw(st.sampled_from([expr, f"NOT {expr}", f"{expr} = FALSE"]))
    if col in ("i", "f") and draw(st.booleans()):
        step = draw(st.sampled_from(["+ 1", "* 3", "* -0.5", "/ 2"]))
        numbers = st.sampled_from(["0", "1", "-2", "2.5", "7"])
        return _compared(draw, f"{expr} {step}", numbers, null_low=True, items=3)
    if col == "s" and draw(st.booleans()):
        expr = f"lower({expr})"
    return _compared(draw, expr, lit, null_low=True, items=3)


_UNITS = ["DAY", "MONTH", "YEAR", "QUARTER", "WEEK", "HOUR", "MINUTE", "SECOND"]
_TEXT_UNITS = ["year", "months", "day", "hours", "minutes", "weeks", "quarter", "us", "mon"]
_MONTH_ENDS = ["DATE '2020-01-31'", "DATE '2019-02-28'", "DATE '2020-02-29'", "DATE '2021-03-31'"]


@st.composite
def time_literals(draw: st.DrawFn) -> str:
    """A date or timestamp literal, or one plus or minus an INTERVAL (by unit or
    as text, month ends included) or a DATE plus or minus days: folded by hqi
    into one value (:mod:`hqi.query.intervals`)."""
    base = draw(st.one_of(date_lit, ts_lit, st.sampled_from(_MONTH_ENDS)))
    form = draw(st.sampled_from(["plain", "unit", "unit", "text", "days"]))
    sign = draw(st.sampled_from(["+", "-"]))
    if form == "unit":
        amount = draw(st.integers(-40, 40))
        unit = draw(st.sampled_from(_UNITS))
        shown = f"'{amount}'" if amount < 0 or draw(st.booleans()) else str(amount)
        interval = f"INTERVAL {shown} {unit}"
        return (
            f"{interval} + {base}"
            if sign == "+" and draw(st.booleans())
            else f"{base} {sign} {interval}"
        )
    if form == "text":
        parts = draw(
            st.lists(
                st.tuples(st.integers(-14, 14), st.sampled_from(_TEXT_UNITS)),
                min_size=1,
                max_size=3,
            )
        )
        return f"{base} {sign} INTERVAL '{' '.join(f'{n} {u}' for n, u in parts)}'"
    if form == "days" and base.startswith("DATE"):
        return f"{base} {sign} {draw(st.integers(-400, 400))}"
    return base


# Columns subtracted (Difference): numbers, or two dates (a number of days).
_DIFFERENCES = [("i", "f"), ("f", "i"), ("i", "i"), ("f", "f"), ("d", "d")]


# Columns compared with columns (ColumnCompare): the string pair has two dictionaries.
_PAIRS = [
    ("i", "f"),
    ("f", "i"),
    ("i", "i"),
    ("f", "f"),
    ("s", "name"),
    ("name", "s"),
    ("s", "s"),
    ("d", "ts"),
    ("ts", "d"),
    ("d", "d"),
    ("ts", "ts"),
]


@st.composite
def atom(draw: st.DrawFn) -> str:
    kind = draw(
        st.sampled_from(
            [
                "cmp",
                "between",
                "in",
                "null",
                "bool",
                "contains",
                "like",
                "const",
                "distinct",
                "arith",
                "coalesce",
                "pair",
                "length",
                "time",
            ]
        )
    )
    if kind == "time":  # a date or timestamp (or a cast between them) against time literals
        casts = ["ts::DATE", "CAST(d AS TIMESTAMP)", "TRY_CAST(ts AS DATE)"]
        truncs = ["date_trunc('{}', ts)", "date_trunc('{}', d)"]
        col = draw(st.sampled_from(["d", "ts", "d", "ts", *casts, *truncs]))
        if "{}" in col:  # a date is truncated by a day or more, a timestamp by any unit
            units = ["day", "week", "month", "quarter", "year", "decade", "century"]
            if col.endswith("ts)"):
                units += ["hour", "minute", "second", "ms"]
            col = col.format(draw(st.sampled_from(units)))
        return _compared(draw, col, time_literals(), null_low=True, items=3)
    if kind == "length":  # characters or bytes of a string, items of a list (NULL items too)
        strings = ["length(s)", "len(name)", "char_length(name)", "strlen(name)", "strlen(s)"]
        lists = ["len(tags)", "length(tags)", "array_length(tags)"]
        call = draw(st.sampled_from([*strings, *lists]))
        number = st.one_of(st.integers(-1, 9).map(str), st.sampled_from(["2.5", "1e0", "NULL"]))
        return _compared(draw, call, number, null_low=True, items=3)
    if kind == "pair":  # two columns: of one kind, int with float, date with timestamp
        left, right = draw(st.sampled_from(_PAIRS))
        form = draw(st.sampled_from(["cmp", "cmp", "between", "distinct", "difference"]))
        if form == "difference" and (left, right) in _DIFFERENCES:  # a - b against numbers
            expr = f"{left} - {right}"
            if draw(st.booleans()):
                expr = f"abs({expr})"
            number = st.sampled_from(["0", "1", "-3", "2.5", "0.3", "30", "-400", "NULL"])
            return _compared(draw, expr, number, null_low=True, items=3)
        if form == "difference":
            form = "cmp"
        if form == "between":  # a column and a literal bound, or two columns
            third = draw(st.sampled_from([right, left, "lit"]))
            low, high = right, (draw(columns.get(left, str_lit)) if third == "lit" else third)
            if draw(st.booleans()):
                low, high = high, low
            return f"{left} {'NOT ' if draw(st.booleans()) else ''}BETWEEN {low} AND {high}"
        if form == "distinct":
            op = "IS NOT DISTINCT FROM" if draw(st.booleans()) else "IS DISTINCT FROM"
            return f"{left} {op} {right}"
        return f"{left} {draw(ops)} {right}"
    if kind == "coalesce":
        return draw(coalesced())
    if kind == "like":
        return draw(st.one_of(like(), regex(), glob(), years(), date_parts()))
    if kind == "arith" and draw(st.integers(0, 3)) == 0:  # a remainder: truncated, as DuckDB's
        divisor = draw(st.sampled_from(["2", "3", "-3", "7", "1", "10"]))
        number = st.one_of(st.integers(-4, 4).map(str), st.sampled_from(["1.5", "NULL"]))
        return _compared(draw, f"i % {divisor}", number, null_low=True, items=3)
    if kind == "arith":  # one step on a numeric column (tests/test_arithmetic.py: more)
        col = draw(st.sampled_from(["i", "f"]))
        step = draw(st.sampled_from(["+ 1", "- 2.5", "* 3", "* -0.5", "/ 2", "/ 0.1"]))
        op = draw(ops)
        return f"{col} {step} {op} {draw(st.sampled_from(['0', '1', '-2', '2.5', '0.3']))}"
    col = draw(st.sampled_from(sorted(columns)))
    lit = columns[col]
    if kind == "cmp":
        left, right = col, draw(lit)
        op = draw(ops)
        return f"{left} {op} {right}" if draw(st.booleans()) else f"{right} {op} {left}"
    if kind == "distinct":  # NULL-safe comparisons, NULL on either side included
        right = "NULL" if draw(st.integers(0, 3)) == 0 else draw(lit)
        op = "IS NOT DISTINCT FROM" if draw(st.booleans()) else "IS DISTINCT FROM"
        return f"{col} {op} {right}" if draw(st.booleans()) else f"{right} {op} {col}"
    if kind == "between":
        neg = "NOT " if draw(st.booleans()) else ""
        return f"{col} {neg}BETWEEN {draw(lit)} AND {draw(lit)}"
    if kind == "in":
        items = draw(st.lists(lit, min_size=1, max_size=4))
        if draw(st.integers(0, 4)) == 0:
            items.append("NULL")
        neg = "NOT " if draw(st.booleans()) else ""
        return f"{col} {neg}IN ({', '.join(items)})"
    if kind == "null":
        col = draw(st.sampled_from([*sorted(columns), "b", "tags"]))
        return f"{col} IS {'NOT ' if draw(st.booleans()) else ''}NULL"
    if kind == "bool":
        return draw(st.sampled_from(["b", "NOT b", "b = TRUE", "b = FALSE", "b != TRUE"]))
    if kind == "contains":
        form = draw(st.sampled_from(["list_contains", "list_contains", "has"]))
        if form == "has":  # list_has_any / list_has_all: NULL items and [] included
            items = draw(st.lists(st.sampled_from([*TAGS, "zz", None]), max_size=3))
            fn = draw(st.sampled_from(["list_has_any", "list_has_all", "array_has_all", "&&"]))
            listed = "[" + ", ".join("NULL" if v is None else quote(v) for v in items) + "]"
            return f"tags && {listed}" if fn == "&&" else f"{fn}(tags, {listed})"
        return f"list_contains(tags, {quote(draw(st.sampled_from([*TAGS, 'zz'])))})"
    return draw(st.sampled_from(["TRUE", "FALSE", "NULL", "i = NULL"]))


predicates = st.recursive(
    atom(),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda p: f"({p[0]}) AND ({p[1]})"),
        st.tuples(inner, inner).map(lambda p: f"({p[0]}) OR ({p[1]})"),
        inner.map(lambda p: f"NOT ({p})"),
        st.tuples(inner, st.sampled_from(["TRUE", "FALSE", "NULL"]), st.booleans()).map(
            lambda p: f"({p[0]}) IS {'NOT ' if p[2] else ''}{p[1]}"
        ),
    ),
    max_leaves=6,
)


# Dates and timestamps of the table's rows (random literals would seldom hit one).
_ROW_DATES = sorted({str(d) for d in TABLE["d"].to_pylist() if d is not None})
_ROW_TIMES = sorted({str(t) for t in TABLE["ts"].to_pylist() if t is not None})

# Filters an inverted index bounds (a string column's equality or IN, a list
# column's list_contains, an integer, date or timestamp column's equality),
# alone or combined with arbitrary predicates, for the candidate-rows path.
_bounded_atom = st.one_of(
    st.sampled_from([*STRINGS, "zzz"]).map(lambda v: f"s = {quote(v)}"),
    st.lists(str_lit, min_size=1, max_size=3).map(lambda v: f"s IN ({', '.join(v)})"),
    like(negated=False),
    glob(negated=False),
    st.sampled_from([*TAGS, "zz"]).map(lambda v: f"list_contains(tags, {quote(v)})"),
    st.one_of(int_lit, st.sampled_from(["2.0", "2.5", "-0.0", "9223372036854775808"])).flatmap(
        lambda v: st.sampled_from([f"i = {v}", f"{v} = i"])
    ),
    st.sampled_from([*_ROW_DATES[:20], "1965-01-01"]).map(lambda v: f"d = DATE '{v}'"),
    st.sampled_from(_ROW_TIMES[:20]).map(lambda v: f"ts = TIMESTAMP '{v}'"),
)
bounded_predicates = st.recursive(
    _bounded_atom,
    lambda inner: st.one_of(
        st.tuples(inner, predicates).map(lambda p: f"({p[0]}) AND ({p[1]})"),
        st.tuples(predicates, inner).map(lambda p: f"({p[0]}) AND ({p[1]})"),
        st.tuples(inner, inner).map(lambda p: f"({p[0]}) OR ({p[1]})"),
    ),
    max_leaves=4,
)
