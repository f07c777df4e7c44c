"""Distance products in bfloat16 on AMX (optional, needs torch): exact results
for exact plans (:class:`BF16Rows`), residuals re-ranked in float32 for
approximate ones (:class:`BF16Residuals`).

The executor's time goes to matrix products of rows by queries (float32 BLAS:
about 130 GFLOP/s a core on this project's machine). CPUs with AMX (Intel
Sapphire Rapids and later) multiply bfloat16 matrices several times faster
(about 1 TFLOP/s a core here, through torch's oneDNN). This module runs the
products in bfloat16 and keeps the answers those of float32:

* the rows are kept once as bfloat16 (half the float32 bytes: 256 MB at 1M x
  128) and each product's queries are rounded likewise; the product comes
  back in bfloat16;
* rounding both operands and the result to bfloat16 (8 significant bits,
  unit roundoff ``u = 2**-8``, round to nearest even) moves a product
  ``s . x`` by at most ``3u |s| |x|``, plus float32 accumulation (``d 2**-24
  |s| |x|``, under ``2**-13`` for d up to 1,024): :data:`SLACK` bounds it;
* the compiled pass (:func:`hqi.execution.kernels.push_scores_bf16`) takes a
  row on for a query only where the approximate distance less that bound
  could beat the query's k-th; there it tests the filter and computes the
  float32 distance from the float32 row, and only that enters the top-k.

So no row that the float32 pass would take is lost: exact search stays
exact. What it costs is the float32 distances of the rows near each query's
k-th (measured at 1M x 128 over the qualifying rows: 328 a query, where the
float32 pass merges 160).

Approximate plans need no such bound: their answers are approximate already.
Bounding the rounding there cost more than it saved (the float32 distances
near the k-th are trips to memory: 1M, nprobe 2, a pass of 0.218 s against
0.110 s in float32), and the products of the rows themselves rounded too much
to rank them (the exact top 10 was 90% of theirs). :class:`BF16Residuals`
multiplies the rows less their list's mean instead, keeps
:func:`rerank_candidates` a query and re-ranks them in float32.

Used when ``Index.search(..., products="bf16")``, or by default
(``"auto"``) for exact plans of ``hqi.api.BF16_MIN_WORK`` multiply-adds or
more and approximate ones of ``hqi.api.BF16_APPROX_MIN_WORK``, when torch is
installed and the CPU has AMX (:func:`bf16_available`); ``"fp32"`` never.
Measured on the 1M exact batch: 2.46 -> 1.83 s, the same ids; 1M, nprobe 2,
ratio 1.1: 0.418 -> 0.394 s, recall 0.9506 -> 0.9505 (``docs/benchmarks.md``).
Install with ``pip install 'hqi[amx]'``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hqi._arrays import plain

if TYPE_CHECKING:
    from hqi.execution.topk import RowMasks, TopK

__all__ = [
    "BLOCK_ROWS",
    "QUERY_BLOCK",
    "RERANK_EXTRA",
    "SLACK",
    "BF16Residuals",
    "BF16Rows",
    "bf16_available",
    "rerank_candidates",
    "torch_threads",
]

# A product's error bound relative to |s| |x|: 3u (the two operands and the
# result rounded to bfloat16, u = 2**-8) plus a margin (2**-12) for the
# second-order terms and float32 accumulation.
SLACK = 3 * 2.0**-8 + 2.0**-12
# Per row, for the float32 sums (score + norm) around the bound: 2**-20 of
# the squared norm, and a floor for rows of (near) zero norm.
ROW_EPS = 2.0**-20
ROW_EPS_FLOOR = 1e-30

# Rows and queries per bfloat16 product. One product runs at 1,000-1,150
# GFLOP/s on one core from 2,048 to 16,384 rows (128-d, 256 queries), 250 at
# 65,536 (a 32 MB result). Each product and top-k pass also costs tens of
# microseconds of Python under the GIL, which two workers take in turn: on
# the 1M exact batch (2,702 products of 256 queries at most), execution took
# 1.251 s at 8,192 x 256, 1.079 s at 8,192 x 512, 1.061 s at 4,096 x 1,024
# and 1.035 s at 4,096 x 2,048 (a 16 MB result; medians of 5, the same ids).
# float32 products keep the search's query_block: larger ones were slower
# there (exact 2.04 s at 256 queries, 2.18 s at 1,024).
BLOCK_ROWS = 4096
QUERY_BLOCK = 2048
# Products come in few shapes: rows rounded up to a multiple of ROW_STEP and
# queries to a bucket of QUERY_BUCKETS (the extra rows and columns are
# computed and ignored). oneDNN compiles a kernel per shape: the 1M exact
# batch's 3,332 products of their own shapes took 2.7 s, the same products
# padded 0.35 s.
ROW_STEP = 512
# Entries past each result row's last column. With rows of a power-of-two
# length (1,024 or 2,048 bfloat16: 2 or 4 KB) the product's writes collide in
# the cache's sets: one core, 4,096 x 2,048 x 128, 1.91 ms unpadded, 1.19 ms
# padded by 16, 1.12 by 32, 1.15 by 64; 4,096 x 1,024 0.78 -> 0.61 ms by 32;
# lengths that are no power of two (768, 1,536) were not slowed.
ROW_PAD = 32
QUERY_BUCKETS = (8, 16, 32, 64, 128, 256)
# Approximate plans on bfloat16 residuals (BF16Residuals) keep k plus this share
# of k candidates (rounded up) for the float32 re-ranking. 1M x 128, nprobe 2,
# ratio 1.1 (recall 0.9506 in float32): 10 candidates 0.9415, 12 0.9505, 15
# 0.9506, 20 0.9506; each candidate more cost about 1% of the search.
RERANK_EXTRA = 0.2


def _padded(n: int, step: int) -> int:
    return -(-n // step) * step


_local = threading.local()


def _product(rows: Any, q: Any) -> Any:
    """``rows @ q.T`` (bfloat16), written into this thread's own buffer, reused
    from product to product: a new 16 MB result each time is new memory to
    fault in, and the reused one is more often in cache when the top-k pass
    reads it (1M exact execution about 6% faster). The result is valid until
    this thread's next product. A thread keeps its buffer (16 MB) while it
    lives; the executor's workers end with each search.

    Each result row is :data:`ROW_PAD` entries longer than the product's
    columns (the returned array has them, unset: ignored like the padded
    queries' columns)."""
    import torch

    cols = q.shape[0] + ROW_PAD
    need = rows.shape[0] * cols
    buf = getattr(_local, "buffer", None)
    if buf is None or buf.numel() < need:
        size = max(need, BLOCK_ROWS * (QUERY_BLOCK + ROW_PAD))
        buf = _local.buffer = torch.empty(size, dtype=torch.bfloat16)
        _local.bits = _bits(buf)
    out = buf[:need].view(rows.shape[0], cols)
    torch.matmul(rows, q.T, out=out[:, : q.shape[0]])
    return out


def _product_bits(rows: Any, q: Any) -> np.ndarray:
    """:func:`_product`'s result as uint16 bit patterns, a numpy view of the same
    buffer (made once per buffer: a view per product cost 4 us)."""
    out = _product(rows, q)
    bits: np.ndarray = _local.bits
    return bits[: out.numel()].reshape(out.shape)


def _query_bucket(m: int) -> int:
    for bucket in QUERY_BUCKETS:
        if m <= bucket:
            return bucket
    return _padded(m, QUERY_BUCKETS[-1])


_lock = threading.Lock()
_available: bool | None = None


def bf16_available() -> bool:
    """Whether bfloat16 products can run fast here: torch is importable and
    the CPU has AMX tiles (without AMX, bfloat16 products are no faster
    than float32 BLAS). Checked once per process."""
    global _available
    with _lock:
        if _available is None:
            try:
                import torch

                _available = bool(torch.cpu._is_amx_tile_supported())
            except Exception:  # no torch, or a build without the check
                _available = False
        return _available


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with torch's intra-op threads set to ``n`` (restored after)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class BF16Rows:
    """An index's rows in bfloat16, with what the error bound needs per row."""

    vectors: np.ndarray  # (N, d) float32, the rows themselves (for exact distances)
    rows: Any  # torch.Tensor (N, d) bfloat16
    row_len: np.ndarray  # (N,) float32: |x|
    row_eps: np.ndarray  # (N,) float32: see ROW_EPS

    @classmethod
    def of(cls, vectors: np.ndarray) -> BF16Rows:
        """Convert ``vectors`` (float32, possibly memory-mapped and read-only): torch
        reads them in place, so the only new memory is the bfloat16 copy (1M x
        128: 0.22 s with a float32 copy of each chunk first, 0.13 s in place)."""
        import warnings

        import torch

        source = np.ascontiguousarray(plain(vectors), dtype=np.float32)  # no copy if it is
        with warnings.catch_warnings():
            # torch warns that it could write to a read-only array; it only reads it.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            rows = torch.from_numpy(source).to(torch.bfloat16)
        sq = np.einsum("ij,ij->i", source, source)
        row_eps = (ROW_EPS * sq + ROW_EPS_FLOOR).astype(np.float32)
        return cls(source, rows, np.sqrt(sq), row_eps)

    def queries(self, scaled: np.ndarray) -> BF16Queries:
        """The ranking queries (:func:`~hqi.execution.exact.ranking_queries`) of
        one search, rounded once."""
        import torch

        scaled = np.ascontiguousarray(scaled, dtype=np.float32)
        rounded = torch.from_numpy(scaled).to(torch.bfloat16)
        slack = (SLACK * np.linalg.norm(scaled, axis=1)).astype(np.float32)
        return BF16Queries(self, scaled, rounded, slack)


@dataclass(frozen=True)
class BF16Queries:
    """One search's queries against :class:`BF16Rows`: products and merges."""

    rows: BF16Rows
    scaled: np.ndarray  # (Q, d) float32
    rounded: Any  # torch.Tensor (Q, d) bfloat16
    slack: np.ndarray  # (Q,) float32: SLACK * |s|

    def push_range(
        self,
        top: TopK,
        qids: np.ndarray,
        r0: int,
        r1: int,
        norms: np.ndarray | None,
        masks: RowMasks | None = None,
    ) -> None:
        """Rows ``r0:r1`` (read in place) against queries ``qids`` into ``top``,
        in products of :data:`BLOCK_ROWS` rows by :data:`QUERY_BLOCK` queries."""
        n = self.rows.rows.shape[0]
        for sub, q, sub_masks in self._query_blocks(qids, masks):
            for a in range(r0, r1, BLOCK_ROWS):
                b = min(r1, a + BLOCK_ROWS)
                # A product of padded shape (see _padded), read from the rows around.
                size = min(n, _padded(b - a, ROW_STEP))
                start = max(0, min(a, n - size))
                scores = _product(self.rows.rows[start : start + size], q)
                cols = np.arange(a, b, dtype=np.int64)
                part = None if norms is None else norms[a - r0 : b - r0]
                self._push(
                    top, sub, scores[a - start : b - start], cols, slice(a, b), part, sub_masks
                )

    def push_rows(
        self,
        top: TopK,
        qids: np.ndarray,
        block: Any,
        cols: np.ndarray,
        norms: np.ndarray | None,
        masks: RowMasks | None = None,
    ) -> None:
        """Rows ``block`` (bfloat16, gathered by :meth:`gather`: its first
        ``cols.size`` rows are those at positions ``cols``) against queries
        ``qids`` into ``top``, in products as :meth:`push_range`'s."""
        for sub, q, sub_masks in self._query_blocks(qids, masks):
            for a in range(0, cols.size, BLOCK_ROWS):
                b = min(cols.size, a + BLOCK_ROWS)
                part = None if norms is None else norms[a:b]
                scores = _product(block[a : a + _padded(b - a, ROW_STEP)], q)
                self._push(top, sub, scores[: b - a], cols[a:b], cols[a:b], part, sub_masks)

    def _query_blocks(
        self, qids: np.ndarray, masks: RowMasks | None
    ) -> Iterator[tuple[np.ndarray, Any, RowMasks | None]]:
        """``qids`` in runs of :data:`QUERY_BLOCK` (bfloat16 products take their
        own shape, whatever the search's ``query_block``): each run's ids,
        rounded queries (:meth:`_q`) and masks."""
        for q0 in range(0, qids.size, QUERY_BLOCK):
            q1 = min(qids.size, q0 + QUERY_BLOCK)
            yield qids[q0:q1], self._q(qids[q0:q1]), None if masks is None else masks.of(q0, q1)

    def gather(self, cols: np.ndarray) -> Any:
        """The bfloat16 rows at positions ``cols`` (half the bytes of float32),
        padded to :func:`_padded` rows by repeating the last."""
        import torch

        at = np.empty(_padded(cols.size, ROW_STEP), dtype=np.int64)
        at[: cols.size] = cols
        at[cols.size :] = cols[-1]
        return self.rows.rows.index_select(0, torch.from_numpy(at))

    def _q(self, qids: np.ndarray) -> Any:
        """The rounded queries ``qids``, padded to :func:`_query_bucket` rows."""
        return _rounded(self.rounded, qids)

    def _push(
        self,
        top: TopK,
        qids: np.ndarray,
        scores: Any,
        cols: np.ndarray,
        at: slice | np.ndarray,
        norms: np.ndarray | None,
        masks: RowMasks | None,
    ) -> None:
        top.push_scores_bf16(
            qids,
            _bits(scores),
            cols,
            norms,
            masks,
            vectors=self.rows.vectors,
            scaled=self.scaled,
            row_len=self.rows.row_len[at],
            row_eps=self.rows.row_eps[at],
            query_slack=self.slack[qids],
        )


@dataclass(frozen=True)
class BF16Residuals:
    """An index's rows in bfloat16 less their list's mean, for approximate plans.

    A row's ranking score is ``x . s`` (plus its squared norm for L2); with
    ``x = c + r`` (``c`` its list's mean, ``r`` the residual) that is ``c . s
    + r . s``: one float32 offset per (query, list) and a product of the
    residuals. Residuals are short beside the rows (a list's rows lie around
    its mean), so their bfloat16 products are off by much less: on the 1M x
    128 benchmark data, 300 queries against the rows of their 6 nearest lists,
    the exact top 10 was 90.2% of the top 10 by bfloat16 products of the rows
    themselves and 99.6% of the top 20, but 98.8% of the top 10 by residual
    products, 99.97% of the top 12 and all of the top 15. Approximate plans
    so keep :func:`rerank_candidates` (12 for k = 10) and recompute their
    distances in float32 at the end (:func:`hqi.execution.batch.finish_topk`).
    """

    rows: Any  # torch.Tensor (N, d) bfloat16: each row less its list's mean
    centers: np.ndarray  # (T, d) float32: each list's mean

    @classmethod
    def of(cls, vectors: np.ndarray, list_bounds: np.ndarray) -> BF16Residuals:
        """The residuals of ``vectors`` (float32, possibly memory-mapped) by the
        lists ``list_bounds`` (T + 1 row offsets), list by list."""
        import torch

        source = plain(vectors)
        bounds = np.asarray(list_bounds, dtype=np.int64)
        rows = torch.empty((source.shape[0], source.shape[1]), dtype=torch.bfloat16)
        centers = np.zeros((bounds.size - 1, source.shape[1]), dtype=np.float32)
        for t, (a, b) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)):
            if b == a:
                continue
            block = np.asarray(source[a:b], dtype=np.float32)
            centers[t] = block.mean(axis=0, dtype=np.float64)
            rows[a:b] = torch.from_numpy(block - centers[t])
        return cls(rows, centers)

    def queries(
        self, scaled: np.ndarray, qids: np.ndarray, segments: list[tuple[int, int]]
    ) -> BF16ResidualQueries:
        """The ranking queries of one search's list probes: ``qids`` in probe
        order, each list's run ``segments[i]`` of them. Rounded and gathered
        once, each run padded by query block (:func:`_query_bucket`): a
        gather per product cost 12 ms a search (1M, nprobe 2)."""
        import torch

        scaled = np.ascontiguousarray(scaled, dtype=np.float32)
        at: list[np.ndarray] = []
        start: dict[int, int] = {}
        used = 0
        for a, b in segments:
            start[a] = used
            for q0 in range(a, b, QUERY_BLOCK):
                q1 = min(b, q0 + QUERY_BLOCK)
                block = np.full(_query_bucket(q1 - q0), qids[q1 - 1], dtype=np.int64)
                block[: q1 - q0] = qids[q0:q1]
                at.append(block)
                used += block.size
        rounded = torch.from_numpy(scaled).to(torch.bfloat16)
        if at:
            rounded = rounded.index_select(0, torch.from_numpy(np.concatenate(at)))
        return BF16ResidualQueries(self, scaled, rounded, start)


@dataclass(frozen=True)
class BF16ResidualQueries:
    """One search's list probes against :class:`BF16Residuals`."""

    residuals: BF16Residuals
    scaled: np.ndarray  # (Q, d) float32
    rounded: Any  # torch.Tensor bfloat16: the probes' queries, padded by block
    start: dict[int, int]  # a list's first probe -> its first row of ``rounded``

    def push_list(
        self,
        top: TopK,
        probe: int,
        qids: np.ndarray,
        cell: int,
        r0: int,
        r1: int,
        norms: np.ndarray | None,
        masks: RowMasks | None = None,
    ) -> None:
        """Rows ``r0:r1`` of list ``cell`` against its queries ``qids`` (its
        probes from ``probe`` on, as :meth:`BF16Residuals.queries` was given
        them) into ``top`` (approximate distances), in products of
        :data:`BLOCK_ROWS` rows by :data:`QUERY_BLOCK` queries."""
        rows = self.residuals.rows
        n = rows.shape[0]
        center = self.residuals.centers[cell]
        base = self.start[probe]
        for q0 in range(0, qids.size, QUERY_BLOCK):
            q1 = min(qids.size, q0 + QUERY_BLOCK)
            sub = qids[q0:q1]
            q = self.rounded[base + q0 : base + q0 + _query_bucket(q1 - q0)]
            sub_masks = None if masks is None else masks.of(q0, q1)
            for a in range(r0, r1, BLOCK_ROWS):
                b = min(r1, a + BLOCK_ROWS)
                size = min(n, _padded(b - a, ROW_STEP))
                start = max(0, min(a, n - size))
                bits = _product_bits(rows[start : start + size], q)[a - start : b - start]
                cols = np.arange(a, b, dtype=np.int64)
                part = None if norms is None else norms[a - r0 : b - r0]
                top.push_scores_bf16_approx(
                    sub, bits, cols, part, sub_masks, scaled=self.scaled, center=center
                )


def rerank_candidates(k: int) -> int:
    """Candidates a query keeps for the float32 re-ranking of residual products:
    k plus :data:`RERANK_EXTRA` of it, rounded up."""
    return k + math.ceil(RERANK_EXTRA * k)


def _rounded(rounded: Any, qids: np.ndarray) -> Any:
    """Rows ``qids`` of ``rounded`` (bfloat16 queries), padded to :func:`_query_bucket` rows."""
    import torch

    at = np.empty(_query_bucket(qids.size), dtype=np.int64)
    at[: qids.size] = qids
    at[qids.size :] = qids[-1]
    return rounded.index_select(0, torch.from_numpy(at))


def _bits(scores: Any) -> np.ndarray:
    """A bfloat16 tensor's bit patterns as a uint16 array (no copy)."""
    import torch

    return scores.view(torch.int16).numpy().view(np.uint16)
