"""The cyclic garbage collector paused while a search runs (:func:`paused`)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused"]

_lock = threading.Lock()
_depth = 0  # searches running now, in any thread
_restore = False  # whether the collector was on when the first of them began


@contextmanager
def paused() -> Iterator[None]:
    """Run the block with Python's cyclic garbage collector off, then restore it.

    A search makes thousands of short-lived containers (filters, plans,
    routes), which trigger collections; a full one walks every object the
    process tracks, with hqi's caches and the caller's own. On the 1M batch
    (270k-415k tracked objects) the young collections cost about 5 ms a
    search and a full one 77 ms, every third or fourth search. Objects freed
    by reference counting (nearly all of a search's) need no collection,
    so pausing it skips that work rather than deferring it. Searches in
    several threads share one pause: the collector comes back when the last
    ends, and only if it was on when the first began (a caller who turned
    it off keeps it off)."""
    global _depth, _restore
    with _lock:
        if _depth == 0:
            _restore = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _restore:
                gc.enable()
