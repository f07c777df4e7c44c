"""The HQI task: related queries for a log of past knowledge-graph queries.

A past query is an anchor entity plus a template (the constraints of its
kind of query, with holes the anchor fills). For each past query,
:func:`related` instantiates the template at the anchor, finds the k entities
nearest to the anchor that satisfy it, and emits each neighbour as the anchor
of a *new* query: the same template instantiated at the neighbour. The whole
log is one batch through hqi's executor (one :meth:`Index.search_by_id`
call), so the layout, grouping and shared filter evaluation all apply.

Output, one row per (past query, neighbour), in Parquet via the CLI:

====================  ===========================================================
column                meaning
====================  ===========================================================
``query_id``          the past query's id (its row number when the log has none)
``template``          the template's name
``anchor``            the past query's anchor entity
``filter``            the template at that anchor (what was searched)
``rank``              0-based rank of the neighbour
``new_anchor``        the neighbour: the anchor of the related query
``new_anchor_label``  its label (when the index has a ``label`` column)
``distance``          anchor-to-neighbour distance under the index's metric
``new_filter``        the template at the neighbour: the related query's
                      constraints (NULL where the neighbour lacks a value)
====================  ===========================================================
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from hqi import _gc
from hqi.errors import FilterError, InvalidInputError
from hqi.kg.templates import Template, load_templates

if TYPE_CHECKING:
    from hqi.api import Index
    from hqi.execution.result import Result

__all__ = ["RelatedQueries", "read_log", "related", "sample_log", "workload_from_log"]

Log = Union[pa.Table, str, Path, Sequence[Mapping[str, Any]]]  # noqa: UP007
Templates = Union[Mapping[str, Template], Mapping[str, str], str, Path, None]  # noqa: UP007


@dataclass
class RelatedQueries:
    """What :func:`related` produced: the table, the raw result, and counts."""

    table: pa.Table
    result: Result | None
    searched: np.ndarray  # log rows that were searched, in result order
    anchors: np.ndarray  # index positions of their anchors, in the same order
    filters: list[str]
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    stats: dict[str, float] = field(default_factory=dict)


def read_log(log: Log) -> pa.Table:
    """A query log as a table with ``anchor`` and ``template`` (+ ``query_id``)."""
    if isinstance(log, pa.Table):
        table = log
    elif isinstance(log, str | Path):
        path = Path(log)
        if not path.is_file():
            raise InvalidInputError(f"no such query log: {path}")
        name = path.name.lower()
        try:
            if name.endswith(".parquet"):
                table = pq.read_table(path)
            elif name.endswith((".jsonl", ".json", ".ndjson")):
                table = pajson.read_json(path)
            elif name.endswith((".csv", ".csv.gz")):
                table = pacsv.read_csv(path)
            else:
                raise InvalidInputError(f"query log must be .parquet, .jsonl or .csv: {path}")
        except (pa.ArrowInvalid, OSError) as err:
            raise InvalidInputError(f"cannot read query log {path}: {err}") from None
    else:
        rows = list(log)
        table = pa.Table.from_pylist(rows) if rows else pa.table({"anchor": [], "template": []})
    for col in ("anchor", "template"):
        if col not in table.column_names:
            raise InvalidInputError(
                f"a query log needs columns anchor and template; it has {table.column_names}"
            )
    return table


def _resolve(templates: Templates) -> dict[str, Template]:
    if templates is None:
        return {}
    if isinstance(templates, str | Path):
        return load_templates(templates)
    return {
        name: t if isinstance(t, Template) else Template.parse(name, t)
        for name, t in templates.items()
    }


def _templates_for(log: pa.Table, known: dict[str, Template]) -> list[Template]:
    """The template of every log row: a name in ``known``, else inline text."""
    out: list[Template] = []
    inline: dict[str, Template] = {}
    for i, value in enumerate(log.column("template").to_pylist()):
        if not isinstance(value, str) or not value:
            raise InvalidInputError(f"query log row {i}: template is empty")
        if value in known:
            out.append(known[value])
        elif "{" in value or not known:
            if value not in inline:
                inline[value] = Template.parse(value, value)
            out.append(inline[value])
        else:
            raise InvalidInputError(
                f"query log row {i}: unknown template {value!r}; known: {', '.join(sorted(known))}"
            )
    return out


def _catalog(source: Any) -> tuple[dict[str, int], pa.Table]:
    """(entity id as text -> row, attributes) of an :class:`Index` or an ``(ids, attributes)``
    pair; an index with string ids lends its cached lookup."""
    if isinstance(source, tuple):
        ids, attrs = source
        return {str(v): i for i, v in enumerate(list(ids))}, attrs
    if source.info()["id_type"] == "string":
        return source._id_lookup, source.attributes
    return {str(v): i for i, v in enumerate(source.ids.tolist())}, source.attributes


def _check_columns(templates: Iterable[Template], attrs: pa.Table) -> dict[str, str]:
    """Every template's columns exist (case-insensitively); returns lower -> actual name."""
    lower = {c.lower(): c for c in attrs.column_names}
    for t in templates:
        for col in t.columns:
            if col.lower() not in lower:
                raise InvalidInputError(
                    f"template {t.name!r} reads {col!r}, which the attributes lack; "
                    f"attributes: {', '.join(attrs.column_names)}"
                )
    return lower


def _values(
    attrs: pa.Table, lower: dict[str, str], rows: np.ndarray, columns: Iterable[str]
) -> dict[str, list[Any]]:
    return {c: attrs.column(lower[c.lower()]).take(rows).to_pylist() for c in columns}


@dataclass
class _Instances:
    """A log's templates instantiated at their anchors."""

    positions: np.ndarray  # (n,) each log row's anchor row, -1 when not in the catalog
    searched: np.ndarray  # log rows that instantiated
    filters: list[str]  # their filters
    skipped: Counter[str]


def _instantiate(
    table: pa.Table,
    temps: list[Template],
    source: Any,
    check: Callable[[Template, str], None] | None = None,
) -> _Instances:
    where, attrs = _catalog(source)
    lower = _check_columns({t.name: t for t in temps}.values(), attrs)
    anchors = [str(a) if a is not None else "" for a in table.column("anchor").to_pylist()]
    pos = np.array([where.get(a, -1) for a in anchors], dtype=np.int64)
    skipped: Counter[str] = Counter()
    skipped["anchor not in the index"] = int((pos < 0).sum())
    found = np.flatnonzero(pos >= 0)
    values = _values(attrs, lower, pos[found], sorted({c for t in temps for c in t.columns}))
    keep: list[int] = []
    filters: list[str] = []
    checked: set[str] = set()
    for j, i in enumerate(found):
        t = temps[i]
        f = t.instantiate({c: values[c][j] for c in t.columns})
        if f is None:
            skipped[f"{t.name}: a placeholder is NULL at the anchor"] += 1
            continue
        if check is not None and t.name not in checked:
            check(t, f)
            checked.add(t.name)
        keep.append(int(i))
        filters.append(f)
    return _Instances(pos, np.asarray(keep, dtype=np.int64), filters, skipped)


def workload_from_log(index_or_attrs: Any, log: Log, templates: Templates = None) -> list[str]:
    """The filters of a log's queries (its templates at their anchors): a layout workload.

    ``index_or_attrs`` is an :class:`Index`, or ``(ids, attributes)`` before
    one exists (as when ``hqi kg build`` learns its layout from the log).
    """
    table = read_log(log)
    return _instantiate(table, _templates_for(table, _resolve(templates)), index_or_attrs).filters


# The collector paused for the whole task, as for a search (hqi._gc): the log's
# rows and the written table are many short-lived objects, whose full
# collections cost about 0.11 s, every third run (FB15k-237, 2,000 past
# queries, about 0.15 s a run).
@_gc.paused()
def related(
    index: Index,
    log: Log,
    *,
    templates: Templates = None,
    k: int = 10,
    on_progress: Callable[[int], None] | None = None,
    **search_options: Any,
) -> RelatedQueries:
    """Related queries for every past query of ``log`` (see the module docstring).

    ``templates``: named templates (a dict or a TOML file) that the log's
    ``template`` column refers to; a log may also hold template text inline.
    ``search_options`` go to :meth:`Index.search` (``nprobe``,
    ``recall_target``, ``exact``, ``threads``, ...). Past queries whose anchor
    is not in the index, or whose template has a NULL hole at the anchor, are
    skipped and counted in ``skipped``.
    """
    t0 = time.perf_counter()
    table = read_log(log)
    temps = _templates_for(table, _resolve(templates))

    def check(t: Template, text: str) -> None:
        try:
            index.parse(text)
        except FilterError as err:
            raise InvalidInputError(f"template {t.name!r} gives an invalid filter: {err}") from None

    inst = _instantiate(table, temps, index, check)
    n = table.num_rows
    query_ids = (
        table.column("query_id").to_pylist() if "query_id" in table.column_names else list(range(n))
    )
    searched, filters, skipped = inst.searched, inst.filters, _nonzero(inst.skipped)
    anchor_pos = inst.positions[searched]
    label = next((c for c in index.schema if c.lower() == "label"), None)
    stats: dict[str, float] = {"log_queries": float(n), "queries": float(len(filters))}
    if not filters:
        out = _empty(label is not None)
        return RelatedQueries(out, None, searched, anchor_pos, filters, skipped, stats)
    res = index.search_by_id(
        index.ids[anchor_pos].tolist(),
        filters,
        k=k,
        exclude_self=True,
        on_progress=on_progress,
        **search_options,
    )
    t_search = res.stats.get("seconds", 0.0)
    nb_pos = _neighbour_positions(index, res)
    valid = nb_pos >= 0
    qrow, rank = np.nonzero(valid)
    flat_pos = nb_pos[valid]
    lower = {c.lower(): c for c in index.schema}
    columns = sorted({c for t in temps for c in t.columns})
    nb_values = _values(index.attributes, lower, flat_pos, columns)
    new_filters: list[str | None] = []
    memo: dict[tuple[Any, ...], str | None] = {}
    for j, qi in enumerate(qrow):
        t = temps[searched[qi]]
        vals = tuple(_hashable(nb_values[c][j]) for c in t.columns)
        key = (t.name, *vals)
        if key not in memo:
            memo[key] = t.instantiate(dict(zip(t.columns, vals, strict=True)))
        new_filters.append(memo[key])
    src = searched[qrow]
    ids = index.ids
    cols: dict[str, pa.Array] = {
        "query_id": pa.array([query_ids[i] for i in src]),
        "template": pa.array([temps[i].name for i in src], pa.string()),
        "anchor": pa.array([str(v) for v in ids[anchor_pos[qrow]].tolist()], pa.string()),
        "filter": pa.array([filters[q] for q in qrow], pa.string()),
        "rank": pa.array(rank.astype(np.int32)),
        "new_anchor": pa.array([str(v) for v in ids[flat_pos].tolist()], pa.string()),
    }
    if label is not None:
        cols["new_anchor_label"] = index.attributes.column(label).take(flat_pos).cast(pa.string())
    cols["distance"] = pa.array(res.distances[valid], pa.float32())
    cols["new_filter"] = pa.array(new_filters, pa.string())
    stats.update(
        {
            "seconds": time.perf_counter() - t0,
            "search_seconds": float(t_search),
            "related_queries": float(len(new_filters)),
            "distinct_filters": float(res.stats.get("groups", 0)),
        }
    )
    return RelatedQueries(pa.table(cols), res, searched, anchor_pos, filters, skipped, stats)


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _nonzero(counter: Counter[str]) -> dict[str, int]:
    return {k: v for k, v in counter.items() if v}


def _neighbour_positions(index: Index, res: Result) -> np.ndarray:
    if res.keys is not None:  # string ids: Result.ids are positions already
        return res.ids
    out = np.full(res.ids.shape, -1, dtype=np.int64)
    valid = res.ids >= 0
    if valid.any():
        out[valid] = index.positions(res.ids[valid].tolist())
    return out


def _empty(with_label: bool) -> pa.Table:
    cols: dict[str, pa.Array] = {
        "query_id": pa.array([], pa.int64()),
        "template": pa.array([], pa.string()),
        "anchor": pa.array([], pa.string()),
        "filter": pa.array([], pa.string()),
        "rank": pa.array([], pa.int32()),
        "new_anchor": pa.array([], pa.string()),
    }
    if with_label:
        cols["new_anchor_label"] = pa.array([], pa.string())
    cols["distance"] = pa.array([], pa.float32())
    cols["new_filter"] = pa.array([], pa.string())
    return pa.table(cols)


def sample_log(
    index_or_attrs: Any,
    templates: Mapping[str, Template] | Mapping[str, str] | str | Path,
    n: int,
    *,
    seed: int = 0,
    zipf: float = 1.1,
) -> pa.Table:
    """A synthetic past-query log: ``n`` (query_id, anchor, template) rows.

    Templates are drawn with Zipf-skewed frequencies (as real logs are) and
    anchors uniformly among the entities where the template instantiates.
    ``index_or_attrs``: an :class:`Index` or ``(ids, attributes)``.
    """
    temps = _resolve(templates)
    if isinstance(index_or_attrs, tuple):
        ids, attrs = list(index_or_attrs[0]), index_or_attrs[1]
    else:
        ids, attrs = index_or_attrs.ids.tolist(), index_or_attrs.attributes
    lower = _check_columns(temps.values(), attrs)
    rng = np.random.default_rng(seed)
    names = list(temps)
    weights = 1.0 / np.arange(1, len(names) + 1) ** zipf
    weights = rng.permutation(weights / weights.sum())
    eligible: dict[str, np.ndarray] = {}
    for name, t in temps.items():
        ok = np.ones(len(ids), dtype=bool)
        for c in t.columns:
            col = attrs.column(lower[c.lower()])
            ok &= col.is_valid().to_numpy(zero_copy_only=False)
            if pa.types.is_list(col.type):
                ok &= (
                    np.asarray(
                        pa.compute.fill_null(pa.compute.list_value_length(col), 0), dtype=np.int64
                    )
                    > 0
                )
        eligible[name] = np.flatnonzero(ok)
    usable = [i for i, nm in enumerate(names) if len(eligible[nm])]
    if not usable:
        raise InvalidInputError("no template can be instantiated at any entity")
    w = weights[usable] / weights[usable].sum()
    picks = rng.choice(len(usable), size=n, p=w)
    anchors = [ids[int(rng.choice(eligible[names[usable[p]]]))] for p in picks]
    return pa.table(
        {
            "query_id": pa.array(np.arange(n, dtype=np.int64)),
            "anchor": pa.array([str(a) for a in anchors], pa.string()),
            "template": pa.array([names[usable[p]] for p in picks], pa.string()),
        }
    )
