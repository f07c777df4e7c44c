"""The ``hqi`` command line: build, update, search, info, count, demo, kg and bench.

Every command exits 0 on success. Bad input exits 1 with one line on stderr
(``hqi: error: ...``) and writes nothing; bad usage exits 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hqi.api import Index, build, open
from hqi.collection import read_parquet, vectors_from_arrow
from hqi.errors import HqiError, InvalidInputError

__all__ = ["main"]

console = Console(stderr=True, highlight=False)


def progress() -> Progress:
    """A progress display on stderr; silent when stderr is not a terminal."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def summary(title: str, rows: Sequence[tuple[str, str]]) -> None:
    """The closing table of a command, on stdout."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in rows:
        table.add_row(key, value)
    Console(highlight=False).print(table)


# -- build ---------------------------------------------------------------------
def cmd_build(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("reading", total=3)
        collection = read_parquet(
            args.data, vector_column=args.vector_column, id_column=args.id_column
        )
        workload = None if args.workload is None else read_workload(Path(args.workload))
        bar.update(task, advance=1, description="building")
        options = {
            name: getattr(args, name)
            for name in ("max_partitions", "list_size", "vector_cuts", "threads")
            if getattr(args, name) is not None
        }
        index = build(
            collection.vectors,
            collection.attributes,
            collection.ids,
            metric=args.metric,
            backend="local" if args.ray is None else "ray",
            ray_address=None if args.ray in (None, "local") else args.ray,
            workload=workload,
            **options,
        )
        bar.update(task, advance=1, description="writing")
        index.save(args.out)
        bar.update(task, advance=1)
    summary(
        f"built {args.out}",
        [
            ("entities", f"{len(index):,}"),
            ("dimension", str(index.dim)),
            ("metric", index.metric),
            ("attributes", ", ".join(f"{k} ({v})" for k, v in index.schema.items()) or "none"),
            ("layout", _layout(index.info())),
            ("time", f"{time.perf_counter() - start:.2f} s"),
        ],
    )


# -- update --------------------------------------------------------------------
def cmd_update(args: argparse.Namespace) -> None:
    if args.add is None and args.delete_ids is None and args.delete_where is None:
        raise InvalidInputError("nothing to change: give --add, --delete-ids or --delete-where")
    start = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("reading", total=3)
        index = open(args.index, verify=not args.no_verify)
        before = len(index)
        integer = index.info()["id_type"] == "int64"
        doomed: list[Any] = []
        if args.delete_ids is not None:
            doomed += read_ids(Path(args.delete_ids), integer=integer)
        if args.delete_where is not None:
            doomed += index.where(args.delete_where).tolist()
        collection = None
        if args.add is not None:
            collection = read_parquet(
                args.add, vector_column=args.vector_column, id_column=args.id_column
            )
        bar.update(task, advance=1, description="changing")
        doomed = list(dict.fromkeys(doomed))  # an id listed and selected counts once
        # One change: the deleted rows may be all of them, the added take their place.
        index.update(
            None if collection is None else collection.vectors,
            None if collection is None else collection.attributes,
            collection.ids if collection is not None and args.id_column else None,
            delete=doomed,
            replace=args.replace,
        )
        bar.update(task, advance=1, description="writing")
        out = Path(args.out) if args.out else Path(args.index)
        index.save(out)
        bar.update(task, advance=1)
    added = 0 if collection is None else len(collection.ids)
    summary(
        f"updated {out}",
        [
            ("entities", f"{before:,} -> {len(index):,}"),
            ("deleted", f"{len(doomed):,}"),
            ("added or replaced", f"{added:,}"),
            ("layout", _layout(index.info())),
            ("changes", _drift(index)),
            ("time", f"{time.perf_counter() - start:.2f} s"),
        ],
    )


def read_ids(path: Path, *, integer: bool) -> list[Any]:
    """Entity ids, one per line (blank lines and ``#`` comments skipped);
    integers for an index with integer ids."""
    if not path.exists():
        raise InvalidInputError(f"no such file: {path}")
    ids: list[Any] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if integer:
            try:
                ids.append(int(text))
            except ValueError:
                raise InvalidInputError(
                    f"{path}:{number}: {text!r} is not an integer id (the index has integer ids)"
                ) from None
        else:
            ids.append(text)
    return ids


def read_workload(path: Path) -> list[str]:
    """Sample filters to learn the layout from: a text file (one SQL filter per
    line; blank lines and ``#`` comments skipped) or a queries file (Parquet or
    JSON lines) with a ``filter`` column."""
    if not path.exists():
        raise InvalidInputError(f"no such file: {path}")
    if path.suffix.lower() in {".parquet", ".jsonl", ".ndjson", ".json"}:
        table = read_queries(path)
        if "filter" not in table.column_names:
            raise InvalidInputError(f"{path} has no 'filter' column to learn a layout from")
        filters = [f for f in table.column("filter").to_pylist() if f]
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
        filters = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not filters:
        raise InvalidInputError(f"{path} holds no filters to learn a layout from")
    return filters


# -- search --------------------------------------------------------------------
def read_queries(path: Path) -> pa.Table:
    """A queries table from Parquet or JSON lines (by extension)."""
    if not path.exists():
        raise InvalidInputError(f"no such file: {path}")
    try:
        if path.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
            return pa_json.read_json(path)
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise InvalidInputError(f"cannot read queries from {path}: {err}") from None


def _column(table: pa.Table, name: str) -> list[Any] | None:
    return table.column(name).to_pylist() if name in table.column_names else None


def _query_inputs(
    table: pa.Table, k: int
) -> tuple[list[Any], list[str | None], np.ndarray, np.ndarray, list[Any]]:
    """A queries table's (query ids, filters, each query's k, which rows hold a
    vector, entity ids), checked: every row has a vector or an entity id, not
    both, and a positive k."""
    n = table.num_rows
    if n == 0:
        raise InvalidInputError("the queries file has no rows")
    query_ids = _column(table, "query_id") or list(range(n))
    filters = _column(table, "filter") or [None] * n
    ks = _column(table, "k") or [None] * n
    per_k = np.array([k if v is None else v for v in ks], dtype=np.int64)
    if (per_k <= 0).any():
        bad = int(np.flatnonzero(per_k <= 0)[0])
        raise InvalidInputError(f"query {query_ids[bad]!r}: k must be positive, got {per_k[bad]}")
    has_vec = np.zeros(n, dtype=bool)
    if "vector" in table.column_names:
        has_vec = ~table.column("vector").is_null().to_numpy(zero_copy_only=False)
    entity = _column(table, "entity_id") or [None] * n
    has_ent = np.array([e is not None for e in entity], dtype=bool)
    for cond, what in (
        (has_vec & has_ent, "both 'vector' and 'entity_id'"),
        (~has_vec & ~has_ent, "neither 'vector' nor 'entity_id'"),
    ):
        if cond.any():
            raise InvalidInputError(f"query {query_ids[int(np.flatnonzero(cond)[0])]!r} has {what}")
    return query_ids, filters, per_k, has_vec, entity


def run_queries(
    index: Index,
    table: pa.Table,
    *,
    k: int,
    threads: int | None,
    bar: Progress | None = None,
    options: dict[str, Any] | None = None,
) -> tuple[pa.Table, dict[str, float]]:
    """Answer a queries table (see ``hqi search --help``); long-format results."""
    query_ids, filters, per_k, has_vec, entity = _query_inputs(table, k)
    has_ent = ~has_vec
    n = len(query_ids)
    kmax = int(per_k.max())
    ids = np.full((n, kmax), -1, dtype=np.int64)
    dist = np.full((n, kmax), np.inf, dtype=np.float32)
    keys = None if index.info()["id_type"] == "int64" else np.full((n, kmax), None, dtype=object)
    task = bar.add_task("searching", total=n) if bar is not None else None

    def tick(done: int) -> None:
        if bar is not None and task is not None:
            bar.update(task, advance=done)

    options = {"threads": threads, **(options or {})}
    stats = {"queries": float(n), "groups": 0.0, "rows_scanned": 0.0}
    estimates: list[tuple[int, float, float]] = []  # (queries, recall, stderr) per search
    start = time.perf_counter()
    for rows, run in (
        (np.flatnonzero(has_vec), "vector"),
        (np.flatnonzero(has_ent), "entity"),
    ):
        if rows.size == 0:
            continue
        sub_filters = [filters[i] for i in rows]
        if run == "vector":
            vecs = vectors_from_arrow(table.column("vector").take(pa.array(rows)), "vector")
            res = index.search(vecs, sub_filters, kmax, on_progress=tick, **options)
        else:
            res = index.search_by_id(
                [entity[i] for i in rows], sub_filters, kmax, on_progress=tick, **options
            )
        ids[rows], dist[rows] = res.ids, res.distances
        if keys is not None and res.keys is not None:
            keys[rows] = res.keys
        for key in ("groups", "rows_scanned"):
            stats[key] += res.stats.get(key, 0.0)
        stats["nprobe"] = max(stats.get("nprobe", 0.0), res.stats.get("nprobe", 0.0))
        if "estimated_recall" in res.stats:
            estimates.append(
                (
                    rows.size,
                    res.stats["estimated_recall"],
                    res.stats.get("estimated_recall_stderr", 0.0),
                )
            )
    stats["seconds"] = time.perf_counter() - start
    if estimates:  # vector and entity queries calibrate apart: weigh by queries
        total = sum(m for m, _, _ in estimates)
        stats["estimated_recall"] = sum(m * r for m, r, _ in estimates) / total
        stats["estimated_recall_stderr"] = float(
            np.sqrt(sum((m * e / total) ** 2 for m, _, e in estimates))
        )
    beyond = np.arange(kmax)[None, :] >= per_k[:, None]  # each query's own k
    ids[beyond] = -1
    dist[beyond] = np.inf
    if keys is not None:
        keys[beyond] = None
    from hqi.execution.result import Result

    return Result(ids, dist, keys).to_arrow(pa.array(query_ids)).rename_columns(
        ["query_id", "rank", "id", "distance"]
    ), stats


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` via a temporary sibling and a rename."""
    if not path.parent.is_dir():
        raise InvalidInputError(f"cannot write {path}: folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _add_batch_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of the commands that take a queries file (search, explain):
    the index, the file, k, threads, the search options and --no-verify."""
    p.add_argument("index")
    p.add_argument("queries")
    p.add_argument("-k", "--k", type=_positive, default=10, help="default k (default: 10)")
    p.add_argument("--threads", type=_positive, default=None, help="default: all cores")
    _add_recall_arguments(p)
    p.add_argument("--no-verify", action="store_true", help="skip checksum verification")


def _add_recall_arguments(p: argparse.ArgumentParser) -> None:
    """The search options of the commands that search: how many lists to probe."""
    recall = p.add_mutually_exclusive_group()
    recall.add_argument(
        "--nprobe", type=_positive, default=None, help="IVF lists per query (default: the index's)"
    )
    recall.add_argument("--recall-target", type=float, default=None, help="e.g. 0.95")
    recall.add_argument("--exact", action="store_true", help="exact answers")
    p.add_argument(
        "--probe-ratio",
        type=float,
        default=None,
        help="also probe the lists within this ratio of the nearest one's distance "
        "(default 1.05; 1: exactly nprobe lists)",
    )
    p.add_argument(
        "--products",
        choices=("auto", "fp32", "bf16"),
        default=None,
        help="row-by-query products: bf16 on AMX CPUs with hqi[amx] installed (same "
        "answers), fp32 BLAS; auto (default): bf16 for exact plans where available",
    )


def _recall_options(args: argparse.Namespace) -> dict[str, Any]:
    """``Index.search`` options from :func:`_add_recall_arguments`'s flags."""
    options: dict[str, Any] = {}
    if args.exact:
        options["exact"] = True
    elif args.recall_target is not None:
        options["recall_target"] = args.recall_target
    elif args.nprobe is not None:
        options["nprobe"] = args.nprobe
    if args.probe_ratio is not None:
        options["probe_ratio"] = args.probe_ratio
    if args.products is not None:
        options["products"] = args.products
    return options


def cmd_search(args: argparse.Namespace) -> None:
    index = open(args.index, verify=not args.no_verify)
    queries = read_queries(Path(args.queries))
    options: dict[str, Any] = {}
    if args.ray is not None:
        options = {
            "backend": "ray",
            "ray_address": None if args.ray == "local" else args.ray,
            "ray_workers": args.ray_workers,
        }
    elif args.ray_workers is not None:
        raise InvalidInputError("--ray-workers goes with --ray")
    options.update(_recall_options(args))
    with progress() as bar:
        results, stats = run_queries(
            index, queries, k=args.k, threads=args.threads, bar=bar, options=options
        )
    write_parquet_atomic(results, Path(args.out))
    seconds = stats["seconds"]
    summary(
        f"searched {args.index} -> {args.out}",
        [
            ("queries", f"{int(stats['queries']):,}"),
            ("distinct filters", f"{int(stats['groups']):,}"),
            ("result rows", f"{results.num_rows:,}"),
            ("time", f"{seconds:.3f} s"),
            ("throughput", f"{stats['queries'] / max(seconds, 1e-9):,.0f} queries/s"),
            ("rows scanned / query", f"{stats['rows_scanned'] / stats['queries']:,.0f}"),
            *_nprobe_rows(stats),
            *_estimate_rows(stats),
        ],
    )


def _nprobe_rows(stats: dict[str, float]) -> list[tuple[str, str]]:
    """A search's summary row for its nprobe (none when it reports none)."""
    nprobe = stats.get("nprobe", 0.0)
    if nprobe <= 0:
        return []
    return [("nprobe", "all (exact)" if np.isinf(nprobe) else f"{nprobe:.0f}")]


def _estimate_rows(stats: dict[str, float]) -> list[tuple[str, str]]:
    """A search's summary row for its estimated recall, with its standard error
    (``--recall-target``; none otherwise)."""
    if "estimated_recall" not in stats:
        return []
    estimate = f"{stats['estimated_recall']:.3f}"
    stderr = stats.get("estimated_recall_stderr", 0.0)
    if stderr > 0:
        estimate += f" ± {stderr:.3f} (standard error of a sample)"
    return [("estimated recall", estimate)]


def cmd_explain(args: argparse.Namespace) -> None:
    index = open(args.index, verify=not args.no_verify)
    table = read_queries(Path(args.queries))
    query_ids, filters, per_k, has_vec, entity = _query_inputs(table, args.k)
    q = np.zeros((len(query_ids), index.dim), dtype=np.float32)
    if has_vec.any():
        rows = np.flatnonzero(has_vec)
        q[rows] = vectors_from_arrow(table.column("vector").take(pa.array(rows)), "vector")
    if not has_vec.all():  # entity queries: their stored vectors
        rows = np.flatnonzero(~has_vec)
        q[rows] = index.vectors[index.positions([entity[i] for i in rows])]
    options = {"threads": args.threads, **_recall_options(args)}
    plan = index.explain(q, filters, k=int(per_k.max()), **options)
    plan = plan.set_column(0, "query_id", pa.array(query_ids))
    if args.out is not None:
        write_parquet_atomic(plan, Path(args.out))
    n = plan.num_rows
    strategies = plan.column("strategy").to_pylist()
    share = {s: strategies.count(s) for s in ("scan", "prefilter", "empty", "flat")}
    rows_scanned = plan.column("rows").to_numpy()
    lists = plan.column("lists").to_numpy()
    summary(
        f"plan of {args.queries} on {args.index}" + (f" -> {args.out}" if args.out else ""),
        [
            ("queries", f"{n:,}"),
            ("distinct filters", f"{len(set(plan.column('filter').to_pylist())):,}"),
            *((f"  {s}", f"{c:,} queries") for s, c in share.items() if c),
            ("compiled filters", f"{int(plan.column('compiled').to_numpy().sum()):,} queries"),
            ("estimated counts", f"{int(plan.column('estimated').to_numpy().sum()):,} queries"),
            ("partitions / query", f"{plan.column('partitions').to_numpy().mean():,.1f}"),
            (
                "lists / scanning query",
                f"{lists[lists > 0].mean() if (lists > 0).any() else 0:,.1f}",
            ),
            ("rows / query", f"{rows_scanned.mean():,.0f}"),
            ("distance computations", f"{int(rows_scanned.sum()):,}"),
        ],
    )


# -- info, count ---------------------------------------------------------------
def _layout(info: dict[str, Any]) -> str:
    parts, lists = info["partitions"], info["lists"]
    return (
        f"{parts} partition{'s' * (parts != 1)}, {lists} list{'s' * (lists != 1)} "
        f"of ~{info['list_size']} rows (default nprobe {info['default_nprobe']})"
    )


def _drift(index: Index) -> str:
    """The changes since build and Index.drift's advice, in one line."""
    drift = index.drift()
    if drift["built_rows"] is None:
        return "not recorded (the index was saved before hqi kept its build's record)"
    built, added, deleted = drift["built_rows"], drift["added"], drift["deleted"]
    text = f"+{added:,} / -{deleted:,} rows since a build of {built:,}"
    ratio = drift["error_ratio"]
    if ratio is not None:
        text += f"; rows {ratio:.2f}x as far from their lists' centroids as at build"
    if drift["rebuild_advised"]:
        text += ": rebuild advised (recall at a given nprobe falls; see Index.drift)"
    return text


def cmd_info(args: argparse.Namespace) -> None:
    index = open(args.index, verify=not args.no_verify)
    info = index.info()
    rows = [(key, str(info[key])) for key in ("count", "dim", "metric", "id_type", "path")]
    rows.append(("layout", _layout(info)))
    rows.append(("changes", _drift(index)))
    rows += [(f"  {name}", kind) for name, kind in info["schema"].items()]
    summary(f"index {args.index}", rows)


def cmd_count(args: argparse.Namespace) -> None:
    index = open(args.index, verify=not args.no_verify)
    ids = index.where(args.filter)
    print(len(ids))
    if args.ids:
        for value in ids:
            print(value)


# -- demo ----------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> None:
    common: dict[str, Any] = {
        "k": args.k,
        "seed": args.seed,
        "out": Path(args.out) if args.out else None,
        "threads": args.threads,
        "naive_sample": args.naive_sample,
        "progress": progress,
        "summary": summary,
    }
    if args.dataset != "synthetic":
        from hqi.kg.demo import run_kg_demo

        run_kg_demo(args.dataset, num_queries=args.queries or 2_000, **common)
        return
    from hqi.demo import run_demo

    run_demo(n=args.n, dim=args.dim, num_queries=args.queries or 5_000, **common)


# -- kg ------------------------------------------------------------------------
def cmd_kg_build(args: argparse.Namespace) -> None:
    from hqi.kg import build_kg, ingest, load_mapping

    start = time.perf_counter()
    out = Path(args.out)
    if not out.parent.is_dir():
        raise InvalidInputError(f"cannot write {out}: folder {out.parent} does not exist")
    if (args.embeddings is None) == (args.embed_model is None):
        raise InvalidInputError("give exactly one of --embeddings FILE and --embed-model MODEL")
    mapping = load_mapping(args.mapping)
    with progress() as bar:
        task = bar.add_task("reading", total=None)

        def step(what: str) -> None:
            bar.update(task, description=what)

        kg = ingest(
            mapping,
            triples=args.triples or (),
            entities=args.entities,
            embeddings=args.embeddings,
            embedding_ids=args.embedding_ids,
            embed_model=args.embed_model,
            on_step=step,
        )
        step("learning layout, building" if args.log else "building")
        index = build_kg(
            kg,
            metric=args.metric,
            log=args.log,
            templates=args.templates,
            threads=args.threads,
        )
        step("writing")
        index.save(out)
    for line in kg.report.lines():
        print(line)
    info = index.info()
    summary(
        f"built {out}",
        [
            ("entities", f"{len(index):,}"),
            ("dimension / metric", f"{index.dim} / {index.metric}"),
            ("attributes", ", ".join(f"{k} ({v})" for k, v in index.schema.items())),
            ("layout", f"{info['partitions']} partitions, {info['lists']} IVF lists"),
            ("time", f"{time.perf_counter() - start:.2f} s"),
        ],
    )


def cmd_kg_related(args: argparse.Namespace) -> None:
    from hqi.kg import related

    out = Path(args.out)
    if not out.parent.is_dir():
        raise InvalidInputError(f"cannot write {out}: folder {out.parent} does not exist")
    index = open(args.index, verify=not args.no_verify)
    options: dict[str, Any] = {"threads": args.threads, **_recall_options(args)}
    with progress() as bar:
        task = bar.add_task("searching", total=None)
        res = related(
            index,
            args.log,
            templates=args.templates,
            k=args.k,
            on_progress=lambda done: bar.update(task, advance=done),
            **options,
        )
    write_parquet_atomic(res.table, out)
    rows = [
        ("past queries", f"{int(res.stats['log_queries']):,}"),
        ("searched", f"{len(res.filters):,}"),
    ]
    rows += [(f"  skipped: {why}", f"{n:,}") for why, n in sorted(res.skipped.items())]
    if res.result is not None:
        seconds = res.stats["seconds"]
        rows += [
            ("distinct filters", f"{int(res.stats['distinct_filters']):,}"),
            ("related queries written", f"{res.table.num_rows:,}"),
            ("time", f"{seconds:.3f} s"),
            ("throughput", f"{len(res.filters) / max(seconds, 1e-9):,.0f} past queries/s"),
        ]
        rows += _estimate_rows(res.result.stats)
    summary(f"related queries -> {out}", rows)


# -- bench ---------------------------------------------------------------------
def cmd_bench(args: argparse.Namespace) -> None:
    from hqi.benchmark import BenchConfig, run_benchmark, write_report
    from hqi.benchmark.harness import results_dir
    from hqi.benchmark.systems import SYSTEMS

    systems = tuple(args.systems.split(",")) if args.systems else tuple(SYSTEMS)
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        raise InvalidInputError(f"unknown system {unknown[0]!r}; choose from {', '.join(SYSTEMS)}")
    cfg = BenchConfig(
        dataset=args.dataset,
        n=args.n,
        dim=args.dim,
        queries=args.queries,
        train_queries=args.train_queries,
        k=args.k,
        threads=args.threads,
        repeats=args.repeats,
        cold_filters=not args.warm_filters,
        seed=args.seed,
        systems=systems,
    )
    with progress() as bar:
        task = bar.add_task("benchmark", total=None)

        def on_event(what: str, total: int) -> None:
            if what == "point":
                bar.update(task, advance=1)
            else:
                bar.update(task, description=what, total=total or None, completed=0)

        out = results_dir(Path(args.out), cfg)

        def on_system(points: list[Any], builds: dict[str, Any], data: Any) -> None:
            write_report(out, points, builds, cfg, data.name, data.vectors.shape)

        points, builds, data = run_benchmark(cfg, on_event=on_event, on_system=on_system)
    write_report(out, points, builds, cfg, data.name, data.vectors.shape)
    print((out / "summary.md").read_text())
    print(f"results: {out}")


# -- parser --------------------------------------------------------------------
def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def make_parser() -> argparse.ArgumentParser:
    from hqi import __version__

    parser = argparse.ArgumentParser(
        prog="hqi", description="High-throughput batch hybrid (vector + filter) search."
    )
    parser.add_argument("--version", action="version", version=f"hqi {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("build", help="build an index from a Parquet file")
    p.add_argument("data", help="Parquet file: a vector column plus attribute columns")
    p.add_argument("--out", required=True, help="index directory to write")
    p.add_argument("--vector-column", default="vector", help="default: vector")
    p.add_argument("--id-column", default=None, help="int or string ids (default: row numbers)")
    p.add_argument("--metric", default="l2", choices=["l2", "ip", "cosine"])
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="train the partitions' lists as Ray tasks (local Ray when no ADDRESS)",
    )
    p.add_argument(
        "--workload",
        default=None,
        metavar="FILE",
        help="sample filters to learn the layout from: one SQL filter per line, or a "
        "Parquet/JSON-lines queries file with a 'filter' column (default: no layout, one IVF)",
    )
    p.add_argument("--max-partitions", type=_positive, default=None, help="default: 64")
    p.add_argument(
        "--list-size",
        type=_positive,
        default=None,
        help="rows per list (default: about 2*sqrt(N), 512 to 4096)",
    )
    p.add_argument(
        "--vector-cuts",
        type=int,
        default=None,
        metavar="C",
        help="also let the layout cut by vector region over C coarse centroids (default: off)",
    )
    p.add_argument("--threads", type=_positive, default=None, help="default: all cores")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser(
        "search",
        help="answer a batch of queries",
        description="QUERIES is Parquet or JSON lines with columns: query_id (optional), "
        "vector (list of floats) or entity_id (an id in the index), filter (SQL, optional), "
        "k (optional). Results: Parquet with query_id, rank, id, distance.",
    )
    _add_batch_arguments(p)
    p.add_argument("--out", required=True, help="results Parquet file to write")
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="search on Ray: the cluster at ADDRESS (ray start --head prints it), or a local "
        "Ray when none is given; the index directory must be readable by every node",
    )
    p.add_argument("--ray-workers", type=_positive, default=None, help="Ray actors")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser(
        "update",
        help="add, replace or delete entities of an index, in its layout",
        description="Deletes (--delete-ids, --delete-where) and adds the rows of --add "
        "(a Parquet file as for 'hqi build', with the index's attribute columns), as one "
        "change: every entity may be deleted, and deleted ids added again. The "
        "learned layout and lists are kept (no new build); the index is written back "
        "atomically, or to --out.",
    )
    p.add_argument("index")
    p.add_argument("--add", default=None, metavar="DATA", help="Parquet file of rows to add")
    p.add_argument("--vector-column", default="vector", help="default: vector")
    p.add_argument(
        "--id-column",
        default=None,
        help="ids of the added rows (default: integers after the largest id)",
    )
    p.add_argument(
        "--replace", action="store_true", help="added rows replace entities with their ids"
    )
    p.add_argument("--delete-ids", default=None, metavar="FILE", help="ids to delete, one per line")
    p.add_argument(
        "--delete-where", default=None, metavar="FILTER", help="delete the entities it selects"
    )
    p.add_argument("--out", default=None, help="write here instead of over INDEX")
    p.add_argument("--no-verify", action="store_true", help="skip checksum verification")
    p.set_defaults(func=cmd_update)

    p = sub.add_parser(
        "explain",
        help="show the plan of a batch of queries, without running it",
        description="QUERIES as for 'hqi search'. Prints how the batch would run (per "
        "strategy, compiled filters, partitions, lists and distance computations per "
        "query); --out writes the plan, one row per query (Index.explain's columns).",
    )
    _add_batch_arguments(p)
    p.add_argument("--out", default=None, help="plan Parquet file to write (optional)")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("info", help="describe an index")
    p.add_argument("index")
    p.add_argument("--no-verify", action="store_true", help="skip checksum verification")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("count", help="count (and list) the entities a filter selects")
    p.add_argument("index")
    p.add_argument("filter", help="SQL WHERE expression, e.g. \"genre = 'jazz'\"")
    p.add_argument("--ids", action="store_true", help="also print the matching ids")
    p.add_argument("--no-verify", action="store_true", help="skip checksum verification")
    p.set_defaults(func=cmd_count)

    p = sub.add_parser("demo", help="build and search the built-in dataset end to end")
    p.add_argument("--n", type=_positive, default=200_000, help="entities (default: 200000)")
    p.add_argument("--dim", type=_positive, default=128, help="dimension (default: 128)")
    p.add_argument(
        "--queries", type=_positive, default=None, help="default: 5000 (2000 for a KG dataset)"
    )
    p.add_argument("-k", "--k", type=_positive, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=_positive, default=None, help="default: all cores")
    p.add_argument(
        "--naive-sample",
        type=_positive,
        default=500,
        help="queries run through the naive per-query loop for comparison",
    )
    p.add_argument(
        "--dataset",
        default="synthetic",
        help="synthetic (default: the built-in catalog) or a knowledge graph under "
        "../shared/data: fb15k237 (related queries on real data; 2000 queries by default)",
    )
    p.add_argument("--out", default=None, help="keep the index (and outputs) here")
    p.set_defaults(func=cmd_demo)

    kg = sub.add_parser("kg", help="knowledge graphs: build an index, answer related queries")
    kg_sub = kg.add_subparsers(dest="kg_command", required=True, metavar="KG_COMMAND")
    p = kg_sub.add_parser(
        "build",
        help="build an index from triples, an entity table and embeddings",
        description="The mapping (TOML) says which relations and columns become attributes; "
        "see hqi.kg.mapping. With --log and --templates the layout is learned from a past "
        "query log.",
    )
    p.add_argument("--mapping", required=True, help="TOML mapping file")
    p.add_argument(
        "--triples",
        action="append",
        help="TSV (head, relation, tail) or N-Triples file; repeat for several (literals too)",
    )
    p.add_argument("--entities", default=None, help="entity table: Parquet, CSV or TSV")
    p.add_argument("--embeddings", default=None, help=".npy (with --embedding-ids) or Parquet")
    p.add_argument("--embedding-ids", default=None, help="ids of the .npy rows, one per line")
    p.add_argument(
        "--embed-model",
        default=None,
        help="compute embeddings from entity text with this local sentence-transformers model "
        "(needs hqi[embed]; never downloads)",
    )
    p.add_argument("--metric", default="cosine", choices=["l2", "ip", "cosine"])
    p.add_argument("--log", default=None, help="past query log to learn the layout from")
    p.add_argument("--templates", default=None, help="TOML file of named templates")
    p.add_argument("--threads", type=_positive, default=None, help="default: all cores")
    p.add_argument("--out", required=True, help="index directory to write")
    p.set_defaults(func=cmd_kg_build)

    p = kg_sub.add_parser(
        "related",
        help="related queries for a log of past queries",
        description="LOG (Parquet, JSON lines or CSV) has columns anchor, template (a name "
        "from --templates or template text) and optionally query_id. Output: Parquet with "
        "query_id, template, anchor, filter, rank, new_anchor, new_anchor_label, distance, "
        "new_filter.",
    )
    p.add_argument("index")
    p.add_argument("log")
    p.add_argument("--templates", default=None, help="TOML file of named templates")
    p.add_argument("--out", required=True, help="Parquet file to write")
    p.add_argument("-k", "--k", type=_positive, default=10, help="neighbours per past query")
    _add_recall_arguments(p)
    p.add_argument("--threads", type=_positive, default=None, help="default: all cores")
    p.add_argument("--no-verify", action="store_true", help="skip checksum verification")
    p.set_defaults(func=cmd_kg_related)

    from hqi.benchmark.real import DATASETS, SIGMOD2024

    p = sub.add_parser("bench", help="recall vs QPS of hqi and FAISS/hnswlib baselines")
    p.add_argument(
        "--dataset",
        default="synthetic",
        help="synthetic (default) or a folder under ../shared/data: "
        + ", ".join([*DATASETS, SIGMOD2024]),
    )
    p.add_argument("--n", type=_positive, default=100_000, help="synthetic entities")
    p.add_argument("--dim", type=_positive, default=64, help="synthetic dimension")
    p.add_argument("--queries", type=_positive, default=2_000)
    p.add_argument(
        "--train-queries",
        type=_positive,
        default=2_000,
        help="workload queries the layout is learned from (a different sample)",
    )
    p.add_argument("-k", "--k", type=_positive, default=10)
    p.add_argument("--threads", type=_positive, default=2)
    p.add_argument("--repeats", type=_positive, default=3)
    p.add_argument(
        "--warm-filters",
        action="store_true",
        help="reuse parsed and compiled filters across a point's repeats (as runs up "
        "to 58 did); by default each timed search starts without them",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--systems", default=None, help="comma-separated subset (default: all)")
    p.add_argument("--out", default="bench/results", help="results root folder")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        args.func(args)
    except HqiError as err:
        print(f"hqi: error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hqi: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
