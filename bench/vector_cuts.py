"""A layout cut on attributes only against one that may also cut by vector region.

HQI's vector cuts (``BuildOptions.vector_cuts``, :mod:`hqi.layout.vector_cuts`):
the learner weighs ``nearest_centroid IN {...}`` cuts over a coarse k-means
against the workload's attribute cuts. Same data, workload sample and batch;
sweeps nprobe and reports recall@10 (against exact answers) and throughput,
median of ``--repeats``, in one run.

    .venv/bin/python bench/vector_cuts.py [--n 200000] [--dim 128] [--queries 5000]
"""

from __future__ import annotations

from common import compare_builds, synthetic_parser


def main() -> None:
    ap = synthetic_parser(__doc__)
    ap.add_argument("--coarse", type=int, default=32, help="coarse centroids (default 32)")
    args = ap.parse_args()
    compare_builds(
        args,
        {
            "attributes": {},
            f"vector-cuts-{args.coarse}": {"vector_cuts": args.coarse},
        },
    )


if __name__ == "__main__":
    main()
