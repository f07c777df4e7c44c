"""hqi: high-throughput batch processing of hybrid vector queries.

A hybrid query is a vector, a SQL filter over attributes and k; its answer is
the k entities nearest to the vector among those that satisfy the filter.

    >>> import hqi
    >>> index = hqi.build(vectors, attributes, metric="l2")
    >>> result = index.search(queries, "genre = 'jazz' AND year >= 1990", k=10)
    >>> result.ids, result.distances
"""

from hqi import datasets, kg
from hqi.api import Index, build, open
from hqi.collection import Collection, Metric, read_parquet
from hqi.errors import (
    FilterError,
    FilterSyntaxError,
    FilterTypeError,
    HqiError,
    IndexFormatError,
    InvalidInputError,
    UnknownColumnError,
    UnsupportedFilterError,
)
from hqi.execution import Result, SearchOptions
from hqi.index.partitioned import BuildOptions

__version__ = "0.1.0"

__all__ = [
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
