"""Scale-out on Ray: distributed batch search and index build.

``Index.search(..., backend="ray")`` and ``hqi.build(..., backend="ray")``;
see :mod:`hqi.distributed.ray_backend` for how work is placed, what is sent,
and how failures are handled. Ray is an optional extra: ``pip install 'hqi[ray]'``.
"""

from hqi.distributed.ray_backend import (
    DistributedError,
    RayBackend,
    place_partitions,
    ray_train_leaves,
    require_ray,
    shutdown_all,
    split_plan,
)

__all__ = [
    "DistributedError",
    "RayBackend",
    "place_partitions",
    "ray_train_leaves",
    "require_ray",
    "shutdown_all",
    "split_plan",
]
