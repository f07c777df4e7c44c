"""``coalesce(column, value)`` (and ``ifnull``) in a test, read as tests of the column.

``coalesce(r, 0) >= 3`` holds where ``r >= 3`` holds and ``r`` is not NULL,
and where ``r`` is NULL exactly when ``0 >= 3`` holds. So any test of
``coalesce(column, v)`` is the same test of the column (where the column is
not NULL) and that test's truth at ``v`` (where it is NULL): ``r >= 3 AND r
IS NOT NULL`` here, ``g = 'x' OR g IS NULL`` for ``coalesce(g, 'x') = 'x'``.
The truth at ``v`` is found by evaluating the column's test on a one-row
column holding ``v``, with the same code that evaluates it on rows, so
every form a column can be tested in (comparisons, arithmetic, ``lower()``,
date parts, patterns) takes a ``coalesce()`` without a rule of its own. The
result is plain predicates: it compiles, routes by zone maps and cuts the
layout like any test. The parser (:mod:`hqi.query.parser`) checks the call
and parses the test with the column in its place.
"""

from __future__ import annotations

import functools

import pyarrow as pa
from sqlglot import exp

from hqi.query.columns import ColumnKind, ColumnStore
from hqi.query.evaluate import evaluate
from hqi.query.predicate import And, Const, IsNull, Not, Or, Predicate, Value

__all__ = ["operands", "rewrite", "truth_at"]

# The Arrow type of a one-value column of each kind (truth_at).
_ARROW_TYPES = {
    ColumnKind.STRING: pa.string(),
    ColumnKind.INT: pa.int64(),
    ColumnKind.FLOAT: pa.float64(),
    ColumnKind.BOOL: pa.bool_(),
    ColumnKind.DATE: pa.date32(),
    ColumnKind.TIMESTAMP: pa.timestamp("us"),
}


def operands(node: exp.Expression) -> list[exp.Coalesce]:
    """The ``coalesce()`` calls among the operands of test ``node``: not inside a
    test nested in it (``(coalesce(x, 0) > 1) IS TRUE`` holds one, ``(a AND
    coalesce(b, TRUE)) IS TRUE`` none: the AND's own tests have it)."""
    if isinstance(node, exp.Coalesce):
        return [node]
    found = []
    for call in node.find_all(exp.Coalesce):
        up = call.parent
        while up is not None and up is not node:
            if isinstance(up, exp.Predicate | exp.Connector | exp.Not):
                break
            up = up.parent
        else:
            found.append(call)
    return found


@functools.lru_cache(maxsize=4096)
def truth_at(pred: Predicate, column: str, kind: ColumnKind, value: Value) -> bool | None:
    """``pred`` (a test of ``column`` alone) where the column holds ``value``:
    TRUE, FALSE or NULL (neither it nor its negation holds), evaluated on a
    one-row store as on any rows."""
    store = ColumnStore(pa.table({column: pa.array([value], type=_ARROW_TYPES[kind])}))
    if bool(evaluate(pred, store)[0]):
        return True
    if bool(evaluate(Not(pred), store)[0]):
        return False
    return None


def rewrite(pred: Predicate, column: str, truth: bool | None) -> Predicate:
    """The test ``pred`` of ``column`` where it is not NULL, ``truth`` where it is
    (exact in three-valued logic, also under NOT)."""
    if truth is True:
        return Or((pred, IsNull(column)))
    present = And((pred, Not(IsNull(column))))
    if truth is False:
        return present
    return Or((present, And((IsNull(column), Const(None)))))
