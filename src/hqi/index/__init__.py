"""Vector index structures: IVF lists per partition and the partitioned storage order.

ivf.py trains k-means lists inside a partition; partitioned.py combines the
learned layout with the lists and computes the order rows are stored in.
"""

from hqi.index.partitioned import BuildOptions, Partitioning, build_partitioning

__all__ = ["BuildOptions", "Partitioning", "build_partitioning"]
