"""Shared fixtures: a seeded rng (never a global seed) and small built-in data."""

from __future__ import annotations

import numpy as np
import pytest

import hqi
from hqi.datasets import Catalog, Workload, make_catalog, make_workload


@pytest.fixture(autouse=True)
def planned_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' stores are small enough for searches to take the flat path by
    default (``hqi.api.FLAT_WORK_PER_FILTER``), so they would not exercise the
    planner and executor: here they always plan unless asked (``flat=True``).
    The flat path's own tests restore the threshold."""
    monkeypatch.setattr(hqi.api, "FLAT_WORK_PER_FILTER", 0.0)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return make_catalog(4000, 16, seed=7)


@pytest.fixture(scope="session")
def workload(catalog: Catalog) -> Workload:
    return make_workload(catalog, 300, seed=8)


@pytest.fixture(scope="session")
def index(catalog: Catalog) -> hqi.Index:
    return hqi.build(catalog.vectors, catalog.attributes, catalog.ids)
