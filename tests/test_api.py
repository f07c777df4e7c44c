"""The public API is pinned: it changes only on purpose."""

from __future__ import annotations

import inspect

import hqi

PUBLIC = [
    "BuildOptions",
    "Collection",
    "FilterError",
    "FilterSyntaxError",
    "FilterTypeError",
    "HqiError",
    "Index",
    "IndexFormatError",
    "InvalidInputError",
    "Metric",
    "Result",
    "SearchOptions",
    "UnknownColumnError",
    "UnsupportedFilterError",
    "__version__",
    "build",
    "datasets",
    "kg",
    "open",
    "read_parquet",
]


def test_all_is_pinned() -> None:
    assert sorted(hqi.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert hasattr(hqi, name)


def test_signatures_are_pinned() -> None:
    assert str(inspect.signature(hqi.build)) == (
        "(vectors: 'Any', attributes: 'Any' = None, ids: 'Any' = None, "
        "metric: 'str' = 'l2', *, on_step: 'Callable[[str], None] | None' = None, "
        "backend: 'str' = 'local', ray_address: 'str | None' = None, "
        "**options: 'Any') -> 'Index'"
    )
    assert list(inspect.signature(hqi.Index.search).parameters) == [
        "self",
        "queries",
        "filters",
        "k",
        "on_progress",
        "options",
    ]
    assert list(inspect.signature(hqi.Index.search_by_id).parameters) == [
        "self",
        "entity_ids",
        "filters",
        "k",
        "exclude_self",
        "on_progress",
        "options",
    ]
    public_methods = {
        n for n, v in vars(hqi.Index).items() if not n.startswith("_") and callable(v)
    }
    assert str(inspect.signature(hqi.Index.add)) == (
        "(self, vectors: 'Any', attributes: 'Any' = None, ids: 'Any' = None, *, "
        "replace: 'bool' = False) -> 'None'"
    )
    assert str(inspect.signature(hqi.Index.delete)) == "(self, entity_ids: 'Any') -> 'None'"
    assert str(inspect.signature(hqi.Index.update)) == (
        "(self, vectors: 'Any' = None, attributes: 'Any' = None, ids: 'Any' = None, *, "
        "delete: 'Any' = None, replace: 'bool' = False) -> 'None'"
    )
    assert str(inspect.signature(hqi.Index.clear_filter_caches)) == (
        "(self, *, shapes: 'bool' = False) -> 'None'"
    )
    assert public_methods == {
        "add",
        "clear_filter_caches",
        "count",
        "delete",
        "drift",
        "ray_backend",
        "explain",
        "info",
        "mask",
        "parse",
        "positions",
        "save",
        "search",
        "search_by_id",
        "update",
        "where",
    }


def test_errors_share_a_base() -> None:
    for name in PUBLIC:
        obj = getattr(hqi, name)
        if inspect.isclass(obj) and name.endswith("Error"):
            assert issubclass(obj, hqi.HqiError)


def test_every_package_folder_is_a_regular_package() -> None:
    """setuptools' find_packages skips folders without __init__.py: they would not install."""
    from pathlib import Path

    root = Path(hqi.__file__).parent
    for folder in [root, *(p for p in root.rglob("*") if p.is_dir() and p.name != "__pycache__")]:
        if any(folder.glob("*.py")):
            assert (folder / "__init__.py").exists(), folder
