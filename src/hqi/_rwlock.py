"""A readers-writer lock: searches share an index, a change swaps it alone.

:class:`hqi.Index` holds one. Searches (and every other read of the index's
state) take it shared, so any number run at once; :meth:`hqi.Index.add` and
:meth:`hqi.Index.delete` compute the changed index while searches go on and
take it exclusively only to swap the new state in. So a search sees the
index before a change or after it, never a mix.

A waiting writer stops new readers from entering (a stream of searches does
not starve a change), and a thread that already reads may read again
(a search calls other reading methods). A thread may not ask to write while
it reads (from a search's ``on_progress``): that would wait for itself
forever, so it is an error instead.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["ReadWriteLock"]


class ReadWriteLock:
    """Many readers or one writer; writers first; reads reentrant per thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0
        self._depth = threading.local()

    def held(self) -> bool:
        """Whether the calling thread reads or writes under this lock."""
        return getattr(self._depth, "n", 0) > 0

    @contextmanager
    def read(self) -> Iterator[None]:
        """Run the block as a reader (nested in the same thread: no wait)."""
        depth = getattr(self._depth, "n", 0)
        if depth:
            self._depth.n = depth + 1
            try:
                yield
            finally:
                self._depth.n = depth
            return
        with self._cond:
            while self._writing or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        self._depth.n = 1
        try:
            yield
        finally:
            self._depth.n = 0
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        """Run the block alone: after every reader has left, before new ones enter."""
        if self.held():
            raise RuntimeError("a thread that reads under this lock cannot write under it")
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writing or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writing = True
        self._depth.n = 1  # reads inside the write need no wait
        try:
            yield
        finally:
            self._depth.n = 0
            with self._cond:
                self._writing = False
                self._cond.notify_all()
