"""The benchmark harness behind ``hqi bench`` and ``bench/hybrid.py``.

systems.py: hqi and the baselines (FAISS IVF with an IDSelector, FAISS IVF
with post-filtering, FAISS HNSW with an IDSelector, hnswlib's filter, and the
foundation's exact grouped brute force) behind one protocol; harness.py runs
them and measures; report.py writes CSV, Markdown and a recall-QPS plot.
"""

from hqi.benchmark.harness import BenchConfig, Point, run_benchmark
from hqi.benchmark.report import write_report

__all__ = ["BenchConfig", "Point", "run_benchmark", "write_report"]
