"""Per-leaf IVF against a shared coarse quantizer with per-leaf lists.

The same layout (learned from one workload sample) with its lists made two
ways (``BuildOptions.quantizer``): k-means inside each partition, or one
k-means over all vectors whose centroids group each partition's rows. Sweeps
nprobe and reports recall@10 (against exact answers) and throughput, median
of ``--repeats``, in one run on the same batch.

    .venv/bin/python bench/quantizer.py [--n 200000] [--dim 128] [--queries 5000]
"""

from __future__ import annotations

from common import compare_builds, synthetic_parser


def main() -> None:
    args = synthetic_parser(__doc__).parse_args()
    compare_builds(args, {"per-leaf": {"quantizer": "per-leaf"}, "shared": {"quantizer": "shared"}})


if __name__ == "__main__":
    main()
