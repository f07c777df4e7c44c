"""Search settings: a frozen, validated object built from keyword options."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, fields
from typing import Any

from hqi.errors import InvalidInputError

__all__ = ["SearchOptions", "available_cores"]


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS/Windows
        return os.cpu_count() or 1


@dataclass(frozen=True, kw_only=True)
class SearchOptions:
    """How one ``Index.search`` call runs.

    ``k``: neighbours per query (> 0). Larger k costs little more on the
    exact path (top-k selection is O(rows), the merge O(k)).

    ``exact``: ``True`` forces the exact path (brute force over each query's
    qualifying rows), the reference every faster path is judged against.

    ``threads``: BLAS threads for the distance kernels; ``None`` uses the cores
    this process may run on. More than the cores only adds contention. The
    previous thread settings are restored after the call.

    ``block_rows``: rows per distance block. Larger blocks amortize the
    per-block top-k merge; smaller ones bound memory, which is about
    ``4 * block_rows * query_block`` bytes per block.

    ``query_block``: queries per distance block (see ``block_rows``).

    ``shared_scan``: filters that select at least this fraction of the rows
    are answered by one shared in-place scan (a GEMM over every row, rejected
    rows masked); more selective ones gather their rows. Too low wastes
    arithmetic on rows a filter rejects; too high pays for gathers that a
    shared GEMM would have amortized. 0 shares everything, 1 gathers everything.
    """

    k: int = 10
    exact: bool = True
    threads: int | None = None
    block_rows: int = 65536
    query_block: int = 256
    shared_scan: float = 0.05

    def __post_init__(self) -> None:
        for name in ("k", "block_rows", "query_block"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
        if self.threads is not None and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads <= 0
        ):
            raise InvalidInputError(
                f"threads must be a positive integer or None, got {self.threads!r}"
            )
        if (
            isinstance(self.shared_scan, bool)
            or not isinstance(self.shared_scan, int | float)
            or not (0.0 <= self.shared_scan <= 1.0)
        ):
            raise InvalidInputError(
                f"shared_scan must be a fraction in [0, 1], got {self.shared_scan!r}"
            )
        if not isinstance(self.exact, bool):
            raise InvalidInputError(f"exact must be True or False, got {self.exact!r}")

    @classmethod
    def from_kwargs(cls, **options: Any) -> SearchOptions:
        """Build from keyword options; an unknown name is an error with a suggestion."""
        valid = [f.name for f in fields(cls)]
        for name in options:
            if name not in valid:
                close = difflib.get_close_matches(name, valid, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(valid)}"
                raise InvalidInputError(f"unknown search option {name!r}{hint}")
        return cls(**options)

    @property
    def num_threads(self) -> int:
        return self.threads or available_cores()
