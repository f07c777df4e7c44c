"""Save/open round trips; corrupted, truncated and newer indexes fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import hqi
from hqi.errors import IndexFormatError, InvalidInputError
from hqi.storage import format as storage


def data_file(path: Path, name: str) -> Path:
    manifest = json.loads((path / "manifest.json").read_text())
    return path / manifest["data_dir"] / name


def test_round_trip(tmp_path, index, workload) -> None:
    index.save(tmp_path / "idx")
    again = hqi.open(tmp_path / "idx")
    assert again.info() | {"path": None} == index.info() | {"path": None}
    assert again.attributes.equals(index.attributes)
    assert isinstance(again.vectors, np.memmap) or isinstance(again.vectors.base, np.memmap)
    a = index.search(workload.queries[:50], workload.filters[:50], k=5)
    b = again.search(workload.queries[:50], workload.filters[:50], k=5)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.distances, b.distances)


@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_round_trip_string_ids_no_attributes(tmp_path, rng, metric) -> None:
    x = rng.standard_normal((40, 6)).astype(np.float32)
    index = hqi.build(x, None, ids=[f"k{i}" for i in range(40)], metric=metric)
    index.save(tmp_path / "idx")
    again = hqi.open(tmp_path / "idx")
    assert again.metric == metric and len(again) == 40 and again.schema == {}
    assert list(again.search_by_id(["k3"], k=2).keys[0]) == list(
        index.search_by_id(["k3"], k=2).keys[0]
    )


def test_resave_replaces_atomically_and_cleans_up(tmp_path, rng) -> None:
    path = tmp_path / "idx"
    hqi.build(rng.standard_normal((10, 3))).save(path)
    hqi.build(rng.standard_normal((20, 3))).save(path)
    assert len(hqi.open(path)) == 20
    assert sorted(p.name for p in path.iterdir() if p.name.startswith("data-")) == [
        json.loads((path / "manifest.json").read_text())["data_dir"]
    ]
    assert not list(tmp_path.glob(".idx.tmp-*"))


def test_crash_during_save_keeps_previous_index(tmp_path, rng, monkeypatch) -> None:
    path = tmp_path / "idx"
    hqi.build(rng.standard_normal((10, 3)), {"a": list(range(10))}).save(path)

    def boom(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(storage, "_write_parquet", boom)
    with pytest.raises(OSError, match="simulated"):
        hqi.build(rng.standard_normal((30, 3)), {"a": list(range(30))}).save(path)
    assert len(hqi.open(path)) == 10  # the previous index, intact and verified
    assert len([p for p in path.iterdir() if p.name.startswith("data-")]) == 1
    with pytest.raises(OSError, match="simulated"):
        hqi.build(rng.standard_normal((30, 3)), {"a": list(range(30))}).save(tmp_path / "new")
    assert not (tmp_path / "new").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".new.tmp-")]


def test_refuses_to_overwrite_other_things(tmp_path, rng) -> None:
    index = hqi.build(rng.standard_normal((5, 2)))
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "keep.txt").write_text("x")
    with pytest.raises(InvalidInputError, match="not a directory"):
        index.save(tmp_path / "file")
    with pytest.raises(InvalidInputError, match="not an hqi index"):
        index.save(tmp_path / "dir")
    with pytest.raises(InvalidInputError, match="does not exist"):
        index.save(tmp_path / "missing" / "idx")
    assert (tmp_path / "dir" / "keep.txt").read_text() == "x"


@pytest.fixture
def saved(tmp_path, rng) -> Path:
    x = rng.standard_normal((100, 8)).astype(np.float32)
    attrs = pa.table({"g": [str(i % 3) for i in range(100)]})
    return hqi.build(x, attrs).save(tmp_path / "idx")


def test_truncated_vectors(saved) -> None:
    f = data_file(saved, "vectors.npy")
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(IndexFormatError, match=r"truncated or corrupted: vectors\.npy"):
        hqi.open(saved)
    with pytest.raises(IndexFormatError, match="truncated"):
        hqi.open(saved, verify=False)


def test_flipped_byte_is_caught_by_checksum(saved) -> None:
    f = data_file(saved, "attributes.parquet")
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    f.write_bytes(bytes(raw))
    with pytest.raises(IndexFormatError, match=r"checksum of attributes\.parquet"):
        hqi.open(saved)


def test_missing_file(saved) -> None:
    data_file(saved, "ids.npy").unlink()
    with pytest.raises(IndexFormatError, match=r"ids\.npy is missing"):
        hqi.open(saved)


def test_newer_format_version(saved) -> None:
    manifest = json.loads((saved / "manifest.json").read_text())
    manifest["format_version"] = storage.FORMAT_VERSION + 1
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match=r"newer hqi .* upgrade hqi"):
        hqi.open(saved)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", r"manifest\.json is corrupted"),
        ('{"format": "something-else"}', "not an hqi index"),
        ('{"format": "hqi-index", "format_version": 1}', "missing 'metric'"),
    ],
)
def test_bad_manifest(saved, content, fragment) -> None:
    (saved / "manifest.json").write_text(content)
    with pytest.raises(IndexFormatError, match=fragment):
        hqi.open(saved)


def test_not_an_index(tmp_path) -> None:
    with pytest.raises(IndexFormatError, match="does not exist"):
        hqi.open(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexFormatError, match=r"manifest\.json is missing"):
        hqi.open(tmp_path / "empty")


GOLDEN = Path(__file__).parent / "golden" / "v1"


def test_golden_v1_index_still_opens() -> None:
    """A format-1 index written by hqi 0.1.0 keeps loading (tests/golden/make_golden.py)."""
    index = hqi.open(GOLDEN)
    assert len(index) == 12 and index.dim == 4 and index.metric == "l2"
    assert index.schema == {"genre": "string", "year": "int", "tags": "list<string>"}
    res = index.search(index.vectors[:1], "genre = 'jazz'", k=3)
    assert list(res.ids[0]) == [100, 103, 106]
