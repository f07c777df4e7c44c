"""The learned layout: partitions of the rows and how queries are routed to them.

zonemap.py summarises each partition's columns and routes predicates
conservatively (skip / covered / partial); qdtree.py learns the partitioning
from a sample workload, cutting on attributes and, optionally, on
vector regions (vector_cuts.py).
"""

from hqi.layout.qdtree import QdTree, learn_qdtree
from hqi.layout.vector_cuts import VectorCut
from hqi.layout.zonemap import Flags, ZoneMaps

__all__ = ["Flags", "QdTree", "VectorCut", "ZoneMaps", "learn_qdtree"]
