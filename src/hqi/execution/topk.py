"""Top-k selection and merging with one deterministic order.

Every search path orders candidates by ``(distance, row position)``: equal
distances are broken by the smaller row position. Because the order is total,
exact results do not depend on chunk sizes, thread counts or backends, and
partial top-k lists can be merged in any order.

Padding (fewer than k candidates) is distance ``+inf`` with position
:data:`PAD` internally; :func:`finish` turns the positions into ``-1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from hqi.query.compiled import ProgramTable

__all__ = ["PAD", "RowMasks", "TopK"]

PAD = np.iinfo(np.int64).max

_NO_NORMS = np.zeros(0, dtype=np.float32)
_NO_BOUND = np.zeros(0, dtype=np.float32)  # writable: the compiled passes' signature
_NO_BITS = np.zeros(1, dtype=np.uint8)
_NO_ATTRS = np.zeros((1, 1), dtype=np.float64)
_NO_INTS = np.zeros(1, dtype=np.int64)
_NO_FLOATS = np.zeros(1, dtype=np.float64)
_NO_PROGRAM = np.full((4096, 2), -1, dtype=np.int64)  # views of it: no allocation per block


@dataclass(frozen=True)
class RowMasks:
    """Which rows each query of a block may take: packed mask bits (``np.packbits``
    order) in one buffer, and per query the byte where its mask starts in
    ``bits`` (-1: every row) and the row position of its bit 0. A query may
    instead have a filter program (:mod:`hqi.query.compiled`): the range of
    its atoms in ``table`` (``program[i, 0]`` -1: none), tested on the rows
    under its k-th distance only."""

    bits: np.ndarray  # uint8
    offset: np.ndarray  # (m,) int64
    base: np.ndarray  # (m,) int64
    program: np.ndarray | None = None  # (m, 2) int64 atom range in table, or -1
    table: ProgramTable | None = None

    @classmethod
    def none(cls, m: int) -> RowMasks:
        return cls(_NO_BITS, np.full(m, -1, dtype=np.int64), np.zeros(m, dtype=np.int64))

    @classmethod
    def of_groups(
        cls,
        sizes: Sequence[int] | np.ndarray,
        bits: Sequence[np.ndarray | None],
        bases: Sequence[int],
        programs: Sequence[int] | np.ndarray | None = None,
        table: ProgramTable | None = None,
    ) -> RowMasks:
        """Masks of consecutive groups of queries: group ``g``'s ``sizes[g]`` queries
        share the packed ``bits[g]`` (None: every row), whose bit 0 is the row at
        position ``bases[g]``, or, where ``programs[g] >= 0``, that program of
        ``table`` (and no bits)."""
        program = None
        ids = np.zeros(0, dtype=np.int64) if programs is None else np.asarray(programs)
        if table is not None and ids.size and ids.max() >= 0:
            ids = ids.astype(np.int64, copy=False)
            ranges = np.where(
                (ids >= 0)[:, None],
                np.stack([table.bounds[ids], table.bounds[ids + 1]], axis=1),
                -1,
            )
            program = np.repeat(ranges, sizes, axis=0)
        present = [b for b in bits if b is not None]
        if not present:
            none = cls.none(int(sum(sizes)))
            return cls(none.bits, none.offset, none.base, program, table)
        lengths = np.array([0 if b is None else b.size for b in bits], dtype=np.int64)
        starts = np.cumsum(lengths) - lengths
        offset = np.where([b is None for b in bits], -1, starts)
        return cls(
            np.concatenate(present),
            np.repeat(offset.astype(np.int64), sizes),
            np.repeat(np.asarray(bases, dtype=np.int64), sizes),
            program,
            table,
        )

    def take(self, queries: np.ndarray) -> RowMasks:
        """The masks of the given queries (indices into these; the same bits)."""
        program = None if self.program is None else self.program[queries]
        return RowMasks(self.bits, self.offset[queries], self.base[queries], program, self.table)

    def of(self, start: int, stop: int) -> RowMasks:
        """The masks of queries ``start:stop`` (the same bits)."""
        program = None if self.program is None else self.program[start:stop]
        return RowMasks(
            self.bits, self.offset[start:stop], self.base[start:stop], program, self.table
        )


class TopK:
    """Running per-query top-k over candidate blocks, merged in (distance, position) order."""

    def __init__(self, nq: int, k: int, bound: np.ndarray | None = None) -> None:
        """``bound``: (nq,) float32 shared by top-ks that split the rows of the same
        queries and are merged at the end (the executor's workers): each
        query's best known k-th distance over all of them, which the compiled
        passes read to skip rows and lower as they go
        (:func:`hqi.execution.kernels.push_scores`)."""
        self.k = k
        self.dist = np.full((nq, k), np.inf, dtype=np.float32)
        self.pos = np.full((nq, k), PAD, dtype=np.int64)
        self.bound = _NO_BOUND if bound is None else bound

    def push(self, rows: np.ndarray | slice, dist: np.ndarray, pos: np.ndarray) -> None:
        """Merge candidates ``dist``/``pos`` (r, c) into queries ``rows``; a
        candidate at +inf (a rejected row) is never a result
        (:func:`hqi.execution.kernels.merge_rows`)."""
        from hqi.execution.kernels import merge_rows

        if dist.shape[1] == 0:
            return
        if isinstance(rows, slice):
            rows = np.arange(self.dist.shape[0])[rows]
        merge_rows(
            self.dist,
            self.pos,
            np.ascontiguousarray(rows, dtype=np.int64),
            np.ascontiguousarray(dist, dtype=np.float32),
            np.ascontiguousarray(pos, dtype=np.int64),
        )

    def push_scores(
        self,
        queries: np.ndarray,
        scores: np.ndarray,
        cols: np.ndarray,
        norms: np.ndarray | None = None,
        masks: RowMasks | None = None,
    ) -> None:
        """Merge a block of scores (b, m): rows at positions ``cols`` (b,) by the
        ``queries`` (m,); a row's distance is its score plus its entry of ``norms``
        (if given), and each query takes only the rows its ``masks`` allow.

        One compiled pass over the block (:func:`hqi.execution.kernels.push_scores`).
        """
        from hqi.execution.kernels import push_scores

        if scores.shape[0] == 0 or scores.shape[1] == 0:
            return
        push_scores(
            self.dist,
            self.pos,
            np.ascontiguousarray(queries, dtype=np.int64),
            np.ascontiguousarray(scores, dtype=np.float32),
            _NO_NORMS if norms is None else np.ascontiguousarray(norms, dtype=np.float32),
            np.ascontiguousarray(cols, dtype=np.int64),
            *_mask_args(masks, scores.shape[1]),
            self.bound,
        )

    def push_gathered(
        self,
        queries: np.ndarray,
        query_start: np.ndarray,
        rows: np.ndarray,
        row_start: np.ndarray,
        *,
        vectors: np.ndarray,
        scaled: np.ndarray,
        norms: np.ndarray | None,
    ) -> None:
        """Merge groups of rows, each taken by all of its group's queries: group
        ``g``'s queries ``queries[query_start[g]:query_start[g + 1]]`` and rows
        ``rows[row_start[g]:row_start[g + 1]]`` (positions into ``vectors``),
        each distance ``x . scaled[q]`` plus the row's norm, computed in place
        (:func:`hqi.execution.kernels.push_gathered`)."""
        from hqi.execution.kernels import push_gathered

        if len(queries) == 0 or len(rows) == 0:
            return
        push_gathered(
            self.dist,
            self.pos,
            np.ascontiguousarray(queries, dtype=np.int64),
            np.ascontiguousarray(query_start, dtype=np.int64),
            np.ascontiguousarray(rows, dtype=np.int64),
            np.ascontiguousarray(row_start, dtype=np.int64),
            vectors,
            np.ascontiguousarray(scaled, dtype=np.float32),
            _NO_NORMS if norms is None else np.ascontiguousarray(norms, dtype=np.float32),
            self.bound,
        )

    def push_scores_bf16(
        self,
        queries: np.ndarray,
        scores: np.ndarray,
        cols: np.ndarray,
        norms: np.ndarray | None,
        masks: RowMasks | None,
        *,
        vectors: np.ndarray,
        scaled: np.ndarray,
        row_len: np.ndarray,
        row_eps: np.ndarray,
        query_slack: np.ndarray,
    ) -> None:
        """:meth:`push_scores` for bfloat16 scores (uint16 bit patterns) within a
        known bound of the float32 ones (columns past ``queries``: padding,
        ignored); the same results
        (:func:`hqi.execution.kernels.push_scores_bf16`, :mod:`hqi.execution.products`)."""
        from hqi.execution.kernels import push_scores_bf16

        if scores.shape[0] == 0 or len(queries) == 0:
            return
        push_scores_bf16(
            *self._pass_args(queries, scores.astype(np.uint16, copy=False), cols, norms, masks),
            vectors,
            scaled,
            np.ascontiguousarray(row_len, dtype=np.float32),
            np.ascontiguousarray(row_eps, dtype=np.float32),
            np.ascontiguousarray(query_slack, dtype=np.float32),
            self.bound,
        )

    def push_scores_bf16_approx(
        self,
        queries: np.ndarray,
        scores: np.ndarray,
        cols: np.ndarray,
        norms: np.ndarray | None,
        masks: RowMasks | None,
        *,
        scaled: np.ndarray,
        center: np.ndarray,
    ) -> None:
        """:meth:`push_scores` for bfloat16 scores of rows less ``center`` (uint16
        bit patterns; columns past ``queries``: padding, ignored), plus each
        query's float32 score of ``center`` (its row of ``scaled``), merged as
        they are: approximate distances
        (:func:`hqi.execution.kernels.push_scores_bf16_approx`)."""
        from hqi.execution.kernels import push_scores_bf16_approx

        if scores.shape[0] == 0 or len(queries) == 0:
            return
        push_scores_bf16_approx(
            *self._pass_args(queries, scores.astype(np.uint16, copy=False), cols, norms, masks),
            scaled,
            np.ascontiguousarray(center, dtype=np.float32),
            self.bound,
        )

    def _pass_args(
        self,
        queries: np.ndarray,
        scores: np.ndarray,
        cols: np.ndarray,
        norms: np.ndarray | None,
        masks: RowMasks | None,
    ) -> tuple[np.ndarray, ...]:
        """The bfloat16 passes' leading arguments: the top-k, the block (scores
        as given), its norms and positions, and the masks of ``queries``."""
        return (
            self.dist,
            self.pos,
            np.ascontiguousarray(queries, dtype=np.int64),
            np.ascontiguousarray(scores),
            _NO_NORMS if norms is None else np.ascontiguousarray(norms, dtype=np.float32),
            np.ascontiguousarray(cols, dtype=np.int64),
            *_mask_args(masks, len(queries)),
        )

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions with -1 padding, distances with +inf padding)."""
        pos = np.where(self.pos == PAD, -1, self.pos)
        return pos, self.dist


def _mask_args(masks: RowMasks | None, m: int) -> tuple[np.ndarray, ...]:
    """The compiled passes' mask and program arguments for ``m`` queries: bits,
    offsets, bases, attributes, programs and the atoms' columns, groups,
    lows and highs."""
    masks = RowMasks.none(m) if masks is None else masks
    table = masks.table
    if masks.program is None or table is None:
        program = _NO_PROGRAM[:m] if m <= _NO_PROGRAM.shape[0] else np.full((m, 2), -1)
        attrs, col, group, lo, hi = _NO_ATTRS, _NO_INTS, _NO_INTS, _NO_FLOATS, _NO_FLOATS
    else:
        program = np.ascontiguousarray(masks.program, dtype=np.int64)
        attrs, col, group, lo, hi = table.attrs, table.col, table.group, table.lo, table.hi
    return (
        np.ascontiguousarray(masks.bits, dtype=np.uint8),
        np.ascontiguousarray(masks.offset, dtype=np.int64),
        np.ascontiguousarray(masks.base, dtype=np.int64),
        attrs,
        program,
        col,
        group,
        lo,
        hi,
    )
