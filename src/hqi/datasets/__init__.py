"""Built-in data: a knowledge-graph-like catalog and a skewed hybrid workload.

``make_catalog`` (catalog.py) and ``make_workload`` (workload.py) are
deterministic in their seeds; the demo, the tests and the benchmarks all use
them, at different sizes.
"""

from hqi.datasets.catalog import Catalog, make_catalog
from hqi.datasets.workload import TEMPLATES, Workload, make_workload

__all__ = ["TEMPLATES", "Catalog", "Workload", "make_catalog", "make_workload"]
