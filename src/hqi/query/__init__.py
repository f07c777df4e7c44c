"""Filters: SQL text -> typed predicate tree -> selection mask.

``parse_filter`` (parser.py) turns DuckDB-dialect WHERE expressions into the
frozen trees of predicate.py; ``evaluate`` (evaluate.py) runs a tree over the
dictionary-encoded columns of columns.py (LIKE patterns and regular
expressions matched by patterns.py).
"""

from hqi.query.columns import ColumnKind, ColumnStore, Schema
from hqi.query.evaluate import evaluate
from hqi.query.parser import parse_filter
from hqi.query.predicate import Predicate
from hqi.query.shapes import FilterParser

__all__ = [
    "ColumnKind",
    "ColumnStore",
    "FilterParser",
    "Predicate",
    "Schema",
    "evaluate",
    "parse_filter",
]
