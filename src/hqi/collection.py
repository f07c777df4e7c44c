"""The data model: a collection is ids, float32 vectors and an attribute table.

Everything a user hands in passes through the ``coerce_*`` functions here, so
validation lives in one place and errors read the same everywhere.

Distances (one convention for every search path; smaller is always closer):

=========  ============================================  ==================
metric     reported distance                             padding
=========  ============================================  ==================
``l2``     squared Euclidean distance ``||q - x||^2``    ``+inf``
``ip``     negative inner product ``-<q, x>``            ``+inf``
``cosine`` ``1 - cos(q, x)``, in [0, 2]                  ``+inf``
=========  ============================================  ==================

For ``cosine`` the stored vectors and the queries are L2-normalised, so it
runs as ``ip``; zero vectors are rejected.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hqi.errors import InvalidInputError
from hqi.query.columns import kind_of, normalize_table

__all__ = [
    "Collection",
    "Metric",
    "coerce_ids",
    "coerce_table",
    "coerce_vectors",
    "conform_table",
    "read_parquet",
]


class Metric(str, enum.Enum):
    """Vector similarity; see the module docstring for the reported distances."""

    L2 = "l2"
    IP = "ip"
    COSINE = "cosine"

    @classmethod
    def parse(cls, value: str | Metric) -> Metric:
        try:
            return cls(value.lower() if isinstance(value, str) else value)
        except ValueError:
            valid = ", ".join(repr(m.value) for m in cls)
            raise InvalidInputError(f"unknown metric {value!r}; use one of {valid}") from None


def coerce_vectors(
    data: Any, *, what: str = "vectors", dim: int | None = None, allow_1d: bool = False
) -> np.ndarray:
    """A C-contiguous float32 (n, d) array, or a clear :class:`InvalidInputError`.

    ``data``: anything NumPy reads as a 2-D array, or an Arrow (chunked) array
    of lists of numbers (list, large list or fixed-size list), as a Parquet
    column of embeddings reads."""
    if isinstance(data, pa.Array | pa.ChunkedArray):
        data = _arrow_rows(data, what)
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError) as err:
        raise InvalidInputError(f"{what} must be a 2-D numeric array: {err}") from None
    if allow_1d and arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InvalidInputError(f"{what} must be a 2-D array (n, d), got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise InvalidInputError(f"{what} must be numeric, got dtype {arr.dtype}")
    if arr.shape[1] == 0:
        raise InvalidInputError(f"{what} have dimension 0")
    if dim is not None and arr.shape[1] != dim:
        raise InvalidInputError(
            f"{what} have dimension {arr.shape[1]}, but the index has dimension {dim}"
        )
    out = np.ascontiguousarray(arr, dtype=np.float32)
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise InvalidInputError(
            f"{what} contain NaN or infinity (first at row {row}); clean or drop those rows"
        )
    return out


def normalize_rows(x: np.ndarray, *, what: str) -> np.ndarray:
    """Rows scaled to unit L2 norm (cosine), rejecting zero vectors."""
    norms = np.linalg.norm(x, axis=1)
    if (norms == 0).any():
        row = int(np.flatnonzero(norms == 0)[0])
        raise InvalidInputError(
            f"{what} row {row} is a zero vector, which has no cosine similarity"
        )
    return np.ascontiguousarray(x / norms[:, None], dtype=np.float32)


def coerce_ids(ids: Any, n: int) -> np.ndarray | pa.Array:
    """int64 numpy ids or an Arrow string array of ``n`` unique ids."""
    if ids is None:
        return np.arange(n, dtype=np.int64)
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if isinstance(ids, pa.Array):
        if pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type):
            out: np.ndarray | pa.Array = ids.cast(pa.string())
        elif pa.types.is_integer(ids.type):
            out = ids.cast(pa.int64()).to_numpy(zero_copy_only=False)
        else:
            raise InvalidInputError(f"ids must be integers or strings, got {ids.type}")
        if ids.null_count:
            raise InvalidInputError("ids contain NULL")
    else:
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise InvalidInputError(f"ids must be 1-D, got shape {arr.shape}")
        if arr.dtype.kind in "iu":
            out = arr.astype(np.int64)
        elif arr.dtype.kind in "UO" and all(isinstance(v, str) for v in arr.tolist()):
            out = pa.array(arr.tolist(), pa.string())
        else:
            raise InvalidInputError(f"ids must be integers or strings, got dtype {arr.dtype}")
    if len(out) != n:
        raise InvalidInputError(f"got {len(out)} ids for {n} vectors")
    values = out if isinstance(out, np.ndarray) else np.asarray(out.to_pylist(), dtype=object)
    uniq, counts = np.unique(values, return_counts=True)
    if len(uniq) != n:
        raise InvalidInputError(
            f"ids must be unique; {np.asarray(uniq[counts > 1][0]).tolist()!r} "
            "appears more than once"
        )
    return out


def coerce_table(attributes: Any, n: int) -> pa.Table:
    """An Arrow table of ``n`` rows with supported column types."""
    return normalize_table(_as_table(attributes, n))


def conform_table(attributes: Any, n: int, schema: pa.Schema) -> pa.Table:
    """``attributes`` (what :func:`coerce_table` takes) as ``n`` rows of exactly
    ``schema``'s columns, in its order and types: rows to append to a table
    with that schema. A missing or unknown column, or values of another kind,
    are errors that name the column; all-NULL columns take the schema's type."""
    if attributes is None and len(schema):
        raise InvalidInputError(
            f"the index has attribute columns {schema.names}; give their values for the new rows"
        )
    table = _as_table(attributes, n)
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise InvalidInputError(
            f"the new rows lack attribute column {missing[0]!r}; the index has {schema.names}"
        )
    unknown = [name for name in table.column_names if name not in schema.names]
    if unknown:
        raise InvalidInputError(
            f"unknown attribute column {unknown[0]!r}; the index has {schema.names}"
        )
    columns = []
    for field in schema:
        col = table.column(field.name)
        if col.type != field.type:
            if not pa.types.is_null(col.type):
                want, got = kind_of(field.name, field.type), kind_of(field.name, col.type)
                if want is not got:
                    raise InvalidInputError(
                        f"attribute column {field.name!r} is {want.value} in the index; "
                        f"the new rows give {got.value} ({col.type})"
                    )
            try:
                col = col.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise InvalidInputError(
                    f"attribute column {field.name!r}: cannot store {col.type} values as "
                    f"{field.type}: {err}"
                ) from None
        columns.append(col)
    return normalize_table(pa.table(columns, schema=schema))


def _as_table(attributes: Any, n: int) -> pa.Table:
    """``attributes`` as an Arrow table of ``n`` rows with distinct column names."""
    if attributes is None:
        table = pa.table({"_": pa.nulls(n)}).drop(["_"])
    elif isinstance(attributes, pa.Table):
        table = attributes
    elif isinstance(attributes, pa.RecordBatch):
        table = pa.Table.from_batches([attributes])
    elif isinstance(attributes, Mapping):
        table = pa.table(dict(attributes))
    elif type(attributes).__module__.startswith("pandas"):
        table = pa.Table.from_pandas(attributes, preserve_index=False)
    else:
        raise InvalidInputError(
            "attributes must be a pyarrow Table, a pandas DataFrame or a dict of columns, "
            f"not {type(attributes).__name__}"
        )
    if table.num_rows != n:
        raise InvalidInputError(f"attributes have {table.num_rows} rows but there are {n} vectors")
    if len(set(table.column_names)) != len(table.column_names):
        raise InvalidInputError(f"attribute column names repeat: {table.column_names}")
    return table


def vectors_from_arrow(column: pa.ChunkedArray | pa.Array, name: str) -> np.ndarray:
    """(n, d) float32 from a fixed-size-list or list<float> column."""
    return coerce_vectors(column, what=f"vector column {name!r}")


def _arrow_rows(column: pa.ChunkedArray | pa.Array, what: str) -> np.ndarray:
    """(n, d) numbers from an Arrow list, large-list or fixed-size-list array."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    typ = arr.type
    if not (
        pa.types.is_fixed_size_list(typ) or pa.types.is_list(typ) or pa.types.is_large_list(typ)
    ):
        raise InvalidInputError(f"{what} must be a list of floats, got {typ}")
    if arr.null_count:
        row = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        raise InvalidInputError(f"{what} is NULL at row {row}")
    lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths != lengths[0]).any():
        row = int(np.flatnonzero(lengths != lengths[0])[0])
        raise InvalidInputError(
            f"{what} has rows of different lengths "
            f"(row 0 has {lengths[0]}, row {row} has {lengths[row]})"
        )
    d = int(lengths[0]) if len(lengths) else 0
    flat = pc.list_flatten(arr)
    if flat.null_count:
        raise InvalidInputError(f"{what} contains NULL elements")
    if not (pa.types.is_floating(flat.type) or pa.types.is_integer(flat.type)):
        raise InvalidInputError(f"{what} must hold numbers, got {flat.type}")
    return flat.to_numpy(zero_copy_only=False).reshape(len(arr), d)


@dataclass(frozen=True)
class Collection:
    """Validated inputs of an index: what :func:`read_parquet` returns."""

    vectors: np.ndarray
    attributes: pa.Table
    ids: np.ndarray | pa.Array


def read_parquet(
    path: str | Path, *, vector_column: str = "vector", id_column: str | None = None
) -> Collection:
    """Read a collection from Parquet: one vector column plus attribute columns.

    ``id_column`` (int or string) becomes the ids; without it ids are row
    positions. Every other column is an attribute.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"no such file: {path}")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise InvalidInputError(f"cannot read {path} as Parquet: {err}") from None
    for name, role in ((vector_column, "--vector-column"), (id_column, "--id-column")):
        if name is not None and name not in table.column_names:
            raise InvalidInputError(
                f"{path} has no column {name!r} ({role}); columns: {table.column_names}"
            )
    vectors = vectors_from_arrow(table.column(vector_column), vector_column)
    ids = coerce_ids(table.column(id_column) if id_column else None, table.num_rows)
    drop: Sequence[str] = [c for c in (vector_column, id_column) if c]
    return Collection(vectors, coerce_table(table.drop(list(drop)), table.num_rows), ids)
