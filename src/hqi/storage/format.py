"""The on-disk index format (version 1) and its crash-safe writer.

An index is a directory::

    IDX/
      manifest.json          what the index is, and which data directory is live
      data-<token>/
        vectors.npy          float32 (N, d), C order: np.load(..., mmap_mode="r")
        ids.npy | ids.parquet   int64 ids, or string ids (one column "id")
        attributes.parquet   the attribute table (Arrow types as given)
        <extra>.npy          arrays added by later index structures

``manifest.json`` holds ``format`` ("hqi-index"), ``format_version``,
``hqi_version``, ``metric``, ``dim``, ``count``, ``id_type``, ``schema``
(column -> kind), ``data_dir`` and, per file, its size and SHA-256.

Saving is atomic. A new index is written complete under a hidden sibling
name and renamed into place. Over an existing index, the new data directory is
written beside the live one and the manifest is swapped with ``os.replace``;
only then is the old data removed. A crash at any point leaves either the
previous index or the new one, never a mix. Nothing is pickled.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hqi.errors import IndexFormatError, InvalidInputError

__all__ = ["FORMAT_VERSION", "MANIFEST", "StoredIndex", "load", "save"]

FORMAT = "hqi-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass
class StoredIndex:
    """What an index directory holds, in memory (vectors may be memory-mapped)."""

    vectors: np.ndarray
    ids: np.ndarray | pa.Array
    attributes: pa.Table
    metric: str
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem allows it
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_npy(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())


def _write_parquet(path: Path, table: pa.Table) -> None:
    pq.write_table(table, path)
    with path.open("rb+") as fh:
        os.fsync(fh.fileno())


def _check_target(path: Path) -> bool:
    """Whether ``path`` already holds an index (to replace); errors for anything else."""
    if not path.parent.is_dir():
        raise InvalidInputError(f"cannot save to {path}: folder {path.parent} does not exist")
    if not path.exists():
        return False
    if not path.is_dir():
        raise InvalidInputError(f"cannot save to {path}: it exists and is not a directory")
    if (path / MANIFEST).exists():
        return True
    if any(path.iterdir()):
        raise InvalidInputError(
            f"cannot save to {path}: a non-empty folder that is not an hqi index; "
            "choose another path"
        )
    return True


def save(index: StoredIndex, path: str | Path) -> Path:
    """Write ``index`` to ``path`` atomically (see the module docstring)."""
    path = Path(path)
    replacing = _check_target(path)
    token = secrets.token_hex(6)
    root = path if replacing else path.parent / f".{path.name}.tmp-{token}"
    data_dir = root / f"data-{token}"
    try:
        data_dir.mkdir(parents=True)
        files: dict[str, Path] = {"vectors.npy": data_dir / "vectors.npy"}
        _write_npy(files["vectors.npy"], index.vectors)
        if isinstance(index.ids, np.ndarray):
            files["ids.npy"] = data_dir / "ids.npy"
            _write_npy(files["ids.npy"], index.ids.astype(np.int64))
        else:
            files["ids.parquet"] = data_dir / "ids.parquet"
            _write_parquet(files["ids.parquet"], pa.table({"id": index.ids}))
        files["attributes.parquet"] = data_dir / "attributes.parquet"
        _write_parquet(files["attributes.parquet"], index.attributes)
        for name, array in index.extra.items():
            files[f"{name}.npy"] = data_dir / f"{name}.npy"
            _write_npy(files[f"{name}.npy"], array)
        _fsync_dir(data_dir)
        from hqi import __version__

        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "hqi_version": __version__,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "metric": index.metric,
            "dim": int(index.vectors.shape[1]),
            "count": int(index.vectors.shape[0]),
            "id_type": "int64" if isinstance(index.ids, np.ndarray) else "string",
            "data_dir": data_dir.name,
            "extra": sorted(index.extra),
            "files": {
                name: {"bytes": f.stat().st_size, "sha256": _sha256(f)} for name, f in files.items()
            },
            **index.meta,
        }
        tmp_manifest = root / f"{MANIFEST}.tmp-{token}"
        with tmp_manifest.open("w") as fh:
            json.dump(manifest, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_manifest, root / MANIFEST)
        _fsync_dir(root)
        if not replacing:
            os.rename(root, path)
            _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(root if not replacing else data_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            (path / f"{MANIFEST}.tmp-{token}").unlink()
        raise
    for stale in path.iterdir():  # data of the replaced index, or of crashed saves
        if stale.name != data_dir.name and (
            stale.name.startswith("data-") or stale.name.startswith(f"{MANIFEST}.tmp-")
        ):
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink()
    return path


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of the index at ``path``, checked for format and version."""
    path = Path(path)
    if not path.exists():
        raise IndexFormatError(f"no index at {path}: the path does not exist")
    if not (path / MANIFEST).is_file():
        raise IndexFormatError(
            f"{path} is not an hqi index: {MANIFEST} is missing "
            "(an interrupted save leaves no manifest; rebuild the index)"
        )
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise IndexFormatError(f"{path / MANIFEST} is corrupted: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexFormatError(f"{path} is not an hqi index (manifest format is not {FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise IndexFormatError(f"{path / MANIFEST} is corrupted: no format_version")
    if version > FORMAT_VERSION:
        raise IndexFormatError(
            f"{path} was written by a newer hqi (format version {version}, "
            f"hqi {manifest.get('hqi_version', '?')}); this hqi reads format versions up to "
            f"{FORMAT_VERSION}: upgrade hqi"
        )
    for key in ("metric", "dim", "count", "id_type", "data_dir", "files"):
        if key not in manifest:
            raise IndexFormatError(f"{path / MANIFEST} is corrupted: missing {key!r}")
    return manifest


def load(path: str | Path, *, verify: bool = True) -> StoredIndex:
    """Open the index at ``path``; ``verify`` checks every file's SHA-256.

    Sizes are always checked, so truncation is caught even without ``verify``.
    """
    path = Path(path)
    manifest = read_manifest(path)
    data_dir = path / manifest["data_dir"]
    for name, info in manifest["files"].items():
        file = data_dir / name
        if not file.is_file():
            raise IndexFormatError(f"index {path} is incomplete: {file.name} is missing")
        size = file.stat().st_size
        if size != info["bytes"]:
            raise IndexFormatError(
                f"index {path} is truncated or corrupted: {name} has {size} bytes, "
                f"the manifest says {info['bytes']}"
            )
        if verify and _sha256(file) != info["sha256"]:
            raise IndexFormatError(
                f"index {path} is corrupted: the checksum of {name} does not match its manifest"
            )
    n, d = manifest["count"], manifest["dim"]
    try:
        vectors = np.load(data_dir / "vectors.npy", mmap_mode="r", allow_pickle=False)
        if manifest["id_type"] == "int64":
            ids: np.ndarray | pa.Array = np.load(data_dir / "ids.npy", allow_pickle=False)
        else:
            ids = pq.read_table(data_dir / "ids.parquet").column("id").combine_chunks()
        attributes = pq.read_table(data_dir / "attributes.parquet")
        extra = {
            name: np.load(data_dir / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            for name in manifest.get("extra", [])
        }
    except (ValueError, OSError, pa.ArrowException, KeyError) as err:
        raise IndexFormatError(f"index {path} is corrupted: {err}") from None
    if attributes.num_columns == 0:  # Parquet keeps no row count without columns
        attributes = pa.table({"_": pa.nulls(n)}).drop(["_"])
    if vectors.shape != (n, d) or vectors.dtype != np.float32:
        raise IndexFormatError(
            f"index {path} is corrupted: vectors are {vectors.dtype}{vectors.shape}, "
            f"expected float32({n}, {d})"
        )
    if len(ids) != n or attributes.num_rows != n:
        raise IndexFormatError(f"index {path} is corrupted: ids or attributes do not have {n} rows")
    known = {
        "format",
        "format_version",
        "hqi_version",
        "created",
        "metric",
        "dim",
        "count",
        "id_type",
        "data_dir",
        "extra",
        "files",
    }
    meta = {key: value for key, value in manifest.items() if key not in known}
    return StoredIndex(vectors, ids, attributes, manifest["metric"], extra, meta)
