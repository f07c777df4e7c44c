"""hqi's compiled kernels and where numba may keep them.

Every process compiles hqi's numba kernels once: about 1 s when hqi is
imported (the executor's top-k pass) and 2 s on the first search that plans
with compiled filters, on the 2-core machine. By default nothing is written
to disk, so every process pays it again. Setting ``HQI_CACHE_DIR`` to a
folder lets numba keep the compiled kernels there and load them in later
processes (a CLI call, a worker); hqi writes nowhere else. The cache is keyed
by each kernel's source file, so a new hqi version recompiles.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

import numba
from numba.core import config as _config

# numba's stubs know neither its config module's settings nor njit's options
# passed through: both are used as plain objects here.
_njit: Any = numba.njit
config: Any = _config

__all__ = ["CACHE_ENV", "cache_dir", "njit"]

CACHE_ENV = "HQI_CACHE_DIR"


def cache_dir() -> str | None:
    """The folder named by ``$HQI_CACHE_DIR``, created if need be, or None when it
    is unset (or cannot be written: then a warning, and no cache)."""
    path = os.environ.get(CACHE_ENV, "").strip()
    if not path:
        return None
    path = os.path.abspath(os.path.expanduser(path))
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        warnings.warn(
            f"{CACHE_ENV}={path!r} cannot be written ({err}); compiled kernels are not cached",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    return path


_CACHE_DIR = cache_dir()


def njit(*args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
    """``numba.njit``, cached in ``$HQI_CACHE_DIR`` when it is set and not at all
    otherwise (numba's own default would write beside hqi's source files).
    numba's cache folder setting is hqi's only while a kernel is declared (it
    picks the folder then), so the caller's own numba functions are untouched."""

    def declare(fn: Callable[..., Any]) -> Any:
        if _CACHE_DIR is None:
            return _njit(*args, cache=False, **kwargs)(fn)
        previous = config.CACHE_DIR
        config.CACHE_DIR = _CACHE_DIR
        try:
            return _njit(*args, cache=True, **kwargs)(fn)
        finally:
            config.CACHE_DIR = previous

    return declare
