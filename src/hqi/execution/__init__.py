"""Execution: search options, the batch executors and the result type.

exact.py is the grouped brute-force executor (the correctness reference);
topk.py the deterministic top-k selection and merge shared by every path.
"""

from hqi.execution.options import SearchOptions
from hqi.execution.result import Result

__all__ = ["Result", "SearchOptions"]
