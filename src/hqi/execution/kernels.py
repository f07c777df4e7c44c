"""The executor's compiled inner loop (numba): a distance block into the top-k.

After each block's matrix product, :func:`push_scores` makes one pass over
the block: it adds the row norms, skips the rows a query's filter rejects
(packed mask bits) and inserts the few distances at or under the query's
current k-th into its sorted top-k, in (distance, position) order. Each
block row is first tested against every query's k-th at once (a loop the
compiler vectorises), so a row no query takes costs a few instructions.

This replaced four numpy passes over every block (adding the norms, adding
+inf penalties, the threshold compare, gathering and merging the hits). At
1M x 128 with 10,000 queries it cut execution by 40% (nprobe 6) and 38%
(exact), with the same ids: see ``docs/benchmarks.md``.

:func:`count_holding` is the planner's: it counts where many filter programs
hold on the estimation sample's rows, in one call.

Both are compiled once per process (:func:`push_scores` on import, about
1 s on the 2-core machine; :func:`count_holding` on its first call, about
1 s), and nothing is written to disk unless ``$HQI_CACHE_DIR`` names a folder
to keep them in (:mod:`hqi._jit`).
"""

from __future__ import annotations

import numpy as np
from numba import types

from hqi._jit import njit

__all__ = [
    "count_holding",
    "distances_of",
    "merge_rows",
    "push_scores",
    "push_scores_bf16",
    "push_scores_bf16_approx",
    "rows_holding",
]


def _array(dtype: types.Type, ndim: int, writable: bool = False) -> types.Array:
    return types.Array(dtype, ndim, "C", readonly=not writable)


# Argument types, by element type and dimensions (C order, read-only unless "w").
_I64, _I64_2, _I64_2W = (_array(types.int64, n, w) for n, w in ((1, False), (2, False), (2, True)))
_F32, _F32_W, _F32_2, _F32_2W = (
    _array(types.float32, n, w) for n, w in ((1, False), (1, True), (2, False), (2, True))
)
_F64, _F64_2, _U8 = _array(types.float64, 1), _array(types.float64, 2), _array(types.uint8, 1)

# One signature: compiled once; read-only inputs (memory-mapped norms, Ray's
# shared-memory arrays) and writable ones both match it. Arguments: top_dist,
# top_pos, queries, scores, norms, cols, bits, mask_offset, mask_base, attrs,
# program, atom_col, atom_group, atom_lo, atom_hi, bound.
_SIGNATURE = types.void(
    _F32_2W,
    _I64_2W,
    _I64,
    _F32_2,
    _F32,
    _I64,
    _U8,
    _I64,
    _I64,
    _F64_2,
    _I64_2,
    _I64,
    _I64,
    _F64,
    _F64,
    _F32_W,
)


@njit(nogil=True, boundscheck=False)
def _holds(
    attrs: np.ndarray,
    p: int,
    a: int,
    stop: int,
    col: np.ndarray,
    group: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
) -> bool:
    """Whether row ``p`` satisfies the program in atoms ``[a, stop)`` (see
    :class:`hqi.query.compiled.Program`)."""
    while a < stop:
        g = group[a]
        held = False
        while a < stop and group[a] == g:
            if not held:
                held = _interval_holds(attrs[p, col[a]], lo[a], hi[a])
            a += 1
        if not held:
            return False
    return True


@njit(nogil=True, boundscheck=False)
def _interval_holds(v: float, lo: float, hi: float) -> bool:
    """Whether value ``v`` passes one interval of a program (see
    :class:`hqi.query.compiled.Program`): lo NaN is the NULL test (``v != v``:
    v is NaN); hi NaN a bit test of a bit set; else ``lo <= v <= hi``."""
    if lo != lo:
        return v != v
    if hi != hi:
        if v != v:
            return False
        bit = int(lo)
        if bit >= 0:
            return (np.int64(v) >> bit) & 1 == 1
        return (np.int64(v) >> (-bit - 1)) & 1 == 0
    return v >= lo and v <= hi


# A word's lowest set bit (``w & -w``) times this de Bruijn sequence has the
# bit's index in its top 6 bits; _BYTE_OF_BIT turns that into the index of its
# byte in the word: of the flag, where a row's flags are one byte per query.
# Finding a word's set flags so, rather than testing each of its eight, made
# the passes 6-9% faster (1M, exact and nprobe 2, the same results).
_DE_BRUIJN = np.uint64(0x03F79D71B4CB0A89)
_BYTE_OF_BIT = np.zeros(64, dtype=np.int64)
for _bit in range(64):
    _BYTE_OF_BIT[((1 << _bit) * 0x03F79D71B4CB0A89 % (1 << 64)) >> 58] = _bit // 8


@njit(nogil=True, boundscheck=False)
def _lower_bound(bound: np.ndarray, queries: np.ndarray, thr: np.ndarray) -> None:
    """``bound[queries[i]] = min(bound[queries[i]], thr[i])``: see :func:`push_scores`."""
    for i in range(queries.size):
        q = queries[i]
        if thr[i] < bound[q]:
            bound[q] = thr[i]


@njit(_SIGNATURE, nogil=True, boundscheck=False)
def push_scores(
    top_dist: np.ndarray,
    top_pos: np.ndarray,
    queries: np.ndarray,
    scores: np.ndarray,
    norms: np.ndarray,
    cols: np.ndarray,
    bits: np.ndarray,
    mask_offset: np.ndarray,
    mask_base: np.ndarray,
    attrs: np.ndarray,
    program: np.ndarray,
    atom_col: np.ndarray,
    atom_group: np.ndarray,
    atom_lo: np.ndarray,
    atom_hi: np.ndarray,
    bound: np.ndarray,
) -> None:
    """Merge ``scores`` (b, m): block rows at positions ``cols`` (b,) by the
    queries ``queries`` (m,), into ``top_dist`` / ``top_pos`` (Q, k), each row
    sorted by (distance, position) and padded with (+inf, any position).

    A row's distance is ``scores[j, i] + norms[j]`` (``norms`` empty: the score
    alone). Query ``i`` with ``mask_offset[i] >= 0`` takes only the rows whose
    bit is set in its packed mask (most significant bit first, as
    ``np.packbits``), which starts at byte ``mask_offset[i]`` of ``bits``; its
    bit 0 is the row at position ``mask_base[i]``. Query ``i`` with
    ``program[i, 0] >= 0`` takes only the rows of ``attrs`` (the
    :class:`~hqi.query.compiled.AttributeMatrix`) where its filter's program,
    atoms ``program[i, 0]:program[i, 1]`` of the ``atom_*`` arrays, holds:
    tested only for rows under its k-th distance.

    ``bound`` (Q,), shared by workers that split the rows of the same queries
    (empty: none): an upper bound of each query's k-th distance over all the
    workers' rows. A row farther than it cannot be in the merged top-k, so it
    is skipped even where this worker's own k-th would take it; on return,
    each query's entry is lowered to this worker's k-th if that is smaller.
    Any worker's k-th is such a bound (the k-th nearest of any k rows is at
    least the k-th nearest of all of them), and the entries only ever hold
    such values, so unsynchronised reads and writes lose nothing: a lost
    update leaves a looser bound.
    """
    b, m = scores.shape
    k = top_dist.shape[1]
    has_norms = norms.size > 0
    has_bound = bound.size > 0
    inf = np.float32(np.inf)
    zero = np.float32(0.0)
    thr = np.empty(m, dtype=np.float32)  # each query's k-th distance and position
    thr_pos = np.empty(m, dtype=np.int64)
    cut = np.empty(m, dtype=np.float32)  # rows farther than this are skipped
    for i in range(m):
        thr[i] = top_dist[queries[i], k - 1]
        thr_pos[i] = top_pos[queries[i], k - 1]
        cut[i] = min(thr[i], bound[queries[i]]) if has_bound else thr[i]
    words = (m + 7) // 8
    flags = np.zeros(8 * words, dtype=np.uint8)  # which queries take the row
    flag_words = flags.view(np.uint64)
    for j in range(b):
        norm = norms[j] if has_norms else zero
        row = scores[j]
        for i in range(m):  # vectorised: which queries take this row?
            flags[i] = np.uint8(row[i] + norm <= cut[i])
        any_word = np.uint64(0)
        for w in range(words):
            any_word |= flag_words[w]
        if any_word == 0:
            continue
        p = cols[j]
        for w in range(words):  # the set flags, by their bits (see _BYTE_OF_BIT)
            word = flag_words[w]
            while word != 0:
                low = word & (~word + np.uint64(1))  # its lowest set bit
                word ^= low
                i = 8 * w + _BYTE_OF_BIT[(low * _DE_BRUIJN) >> np.uint64(58)]
                d = row[i] + norm
                if not d <= cut[i]:
                    continue
                if d == thr[i] and (p >= thr_pos[i] or d == inf):
                    continue  # an equal distance wins only at a smaller position
                offset = mask_offset[i]
                if offset >= 0:
                    bit = p - mask_base[i]
                    if (bits[offset + (bit >> 3)] >> (7 - (bit & 7))) & 1 == 0:
                        continue
                first = program[i, 0]
                if first >= 0 and not _holds(
                    attrs, p, first, program[i, 1], atom_col, atom_group, atom_lo, atom_hi
                ):
                    continue
                dist = top_dist[queries[i]]
                pos = top_pos[queries[i]]
                s = k - 1
                while s > 0 and (dist[s - 1] > d or (dist[s - 1] == d and pos[s - 1] > p)):
                    dist[s] = dist[s - 1]
                    pos[s] = pos[s - 1]
                    s -= 1
                dist[s] = d
                pos[s] = p
                thr[i] = dist[k - 1]
                thr_pos[i] = pos[k - 1]
                cut[i] = min(cut[i], thr[i])
    if has_bound:
        _lower_bound(bound, queries, thr)


@njit(nogil=True, boundscheck=False)
def _after(d1: float, p1: int, d2: float, p2: int) -> bool:
    """Whether ``(d1, p1)`` sorts after ``(d2, p2)`` in :func:`sort_rows`'s order."""
    if d1 != d1 or d2 != d2:  # NaN last
        if d1 != d1 and d2 != d2:
            return p1 > p2
        return d1 != d1
    return d1 > d2 or (d1 == d2 and p1 > p2)


@njit(nogil=True, boundscheck=False)
def sort_rows(dist: np.ndarray, pos: np.ndarray, r0: int, r1: int) -> None:
    """Sort rows ``r0:r1`` of ``dist`` / ``pos`` (n, k) in place by (distance,
    position), a position below 0 (padding) last among equal distances and
    NaN distances after all others: ``np.lexsort((where(pos < 0, max, pos),
    dist))`` row by row. By insertion: the winners come in their approximate
    order and their exact distances move few of them (1M, 10,000 x 120
    winners: 64 ms in lexsort)."""
    k = dist.shape[1]
    big = np.iinfo(np.int64).max
    for r in range(r0, r1):
        d_row = dist[r]
        p_row = pos[r]
        for j in range(1, k):
            d = d_row[j]
            p = p_row[j]
            key = p if p >= 0 else big
            s = j
            while s > 0:
                q = p_row[s - 1]
                if not _after(d_row[s - 1], q if q >= 0 else big, d, key):
                    break
                d_row[s] = d_row[s - 1]
                p_row[s] = q
                s -= 1
            d_row[s] = d
            p_row[s] = p


@njit(nogil=True, boundscheck=False)
def merge_rows(
    top_dist: np.ndarray,
    top_pos: np.ndarray,
    rows: np.ndarray,
    dist: np.ndarray,
    pos: np.ndarray,
) -> None:
    """Merge candidates ``dist`` / ``pos`` (r, c) into rows ``rows`` of the top-k
    (each sorted by (distance, position), padded at +inf): each
    candidate under its row's k-th in that order is inserted in place. A
    candidate at +inf (a rejected row) or NaN is never taken.
    (:meth:`hqi.execution.topk.TopK.push`: merging two workers' top-k, 10,000
    x 12, took 7 ms in numpy's lexsort.)"""
    k = top_dist.shape[1]
    inf = np.float32(np.inf)
    for r in range(rows.size):
        d_row = top_dist[rows[r]]
        p_row = top_pos[rows[r]]
        for c in range(dist.shape[1]):
            d = dist[r, c]
            p = pos[r, c]
            if not d < inf:
                continue
            last = d_row[k - 1]
            if d > last or (d == last and p >= p_row[k - 1]):
                continue
            s = k - 1
            while s > 0 and (d_row[s - 1] > d or (d_row[s - 1] == d and p_row[s - 1] > p)):
                d_row[s] = d_row[s - 1]
                p_row[s] = p_row[s - 1]
                s -= 1
            d_row[s] = d
            p_row[s] = p


@njit(nogil=True, boundscheck=False, fastmath=True)
def distances_of(
    vectors: np.ndarray,
    queries: np.ndarray,
    pos: np.ndarray,
    out: np.ndarray,
    start: int,
    stop: int,
    metric: int,
) -> None:
    """``out[i, j]``: query ``i``'s distance to row ``pos[i, j]`` (+inf where it
    is negative, padding) for queries ``start:stop``, read in place: squared
    l2 (``metric`` 0), ``-<q, x>`` (1, ip) or ``1 - <q, x>`` (2, cosine of
    unit vectors). Summed in float32, reassociated (vectorised), so a
    distance may differ from numpy's in its last bits. Its rows were
    gathered into a copy first before (:func:`hqi.execution.exact.exact_distances`)."""
    d = vectors.shape[1]
    inf = np.float32(np.inf)
    for i in range(start, stop):
        q = queries[i]
        for j in range(pos.shape[1]):
            p = pos[i, j]
            if p < 0:
                out[i, j] = inf
                continue
            x = vectors[p]
            s = np.float32(0.0)
            if metric == 0:
                for t in range(d):
                    z = x[t] - q[t]
                    s += z * z
                out[i, j] = s
            else:
                for t in range(d):
                    s += x[t] * q[t]
                out[i, j] = -s if metric == 1 else np.float32(1.0) - s


@njit(nogil=True, boundscheck=False, fastmath=True)
def _dot(x: np.ndarray, y: np.ndarray) -> np.float32:
    """``x . y`` in float32 (reassociated: the compiler vectorises it)."""
    acc = np.float32(0.0)
    for t in range(x.size):
        acc += x[t] * y[t]
    return acc


@njit(nogil=True, boundscheck=False)
def push_gathered(
    top_dist: np.ndarray,
    top_pos: np.ndarray,
    queries: np.ndarray,
    query_start: np.ndarray,
    rows: np.ndarray,
    row_start: np.ndarray,
    vectors: np.ndarray,
    scaled: np.ndarray,
    norms: np.ndarray,
    bound: np.ndarray,
) -> None:
    """Merge groups of rows read in place: group ``g``'s queries
    ``queries[query_start[g]:query_start[g + 1]]`` each take every row of
    ``rows[row_start[g]:row_start[g + 1]]`` (positions into ``vectors``), at
    distance ``x . scaled[q]`` (float32, :func:`_dot`) plus the row's entry of
    ``norms`` (empty: none), merged as :func:`push_scores` merges a block,
    ``bound`` included.

    The prefilter of a filter with few queries and rows: a matrix product of
    its gathered rows costs a gather, a product and a pass, in NumPy calls of
    tens of microseconds each, for a few hundred distances
    (:func:`hqi.execution.batch._prefilter`). Its insertion steps repeat
    :func:`push_scores`'s (see :func:`push_scores_bf16` on why each kernel
    keeps its own copy)."""
    k = top_dist.shape[1]
    has_norms = norms.size > 0
    has_bound = bound.size > 0
    inf = np.float32(np.inf)
    zero = np.float32(0.0)
    most = 0
    for g in range(query_start.size - 1):
        most = max(most, query_start[g + 1] - query_start[g])
    thr = np.empty(most, dtype=np.float32)
    thr_pos = np.empty(most, dtype=np.int64)
    cut = np.empty(most, dtype=np.float32)
    for g in range(query_start.size - 1):
        q0 = query_start[g]
        m = query_start[g + 1] - q0
        for i in range(m):
            q = queries[q0 + i]
            thr[i] = top_dist[q, k - 1]
            thr_pos[i] = top_pos[q, k - 1]
            cut[i] = min(thr[i], bound[q]) if has_bound else thr[i]
        for r in range(row_start[g], row_start[g + 1]):  # each row read once
            p = rows[r]
            x = vectors[p]
            norm = norms[p] if has_norms else zero
            for i in range(m):
                q = queries[q0 + i]
                d = _dot(x, scaled[q]) + norm
                if not d <= cut[i]:
                    continue
                if d == thr[i] and (p >= thr_pos[i] or d == inf):
                    continue  # an equal distance wins only at a smaller position
                dist = top_dist[q]
                pos = top_pos[q]
                t = k - 1
                while t > 0 and (dist[t - 1] > d or (dist[t - 1] == d and pos[t - 1] > p)):
                    dist[t] = dist[t - 1]
                    pos[t] = pos[t - 1]
                    t -= 1
                dist[t] = d
                pos[t] = p
                thr[i] = dist[k - 1]
                thr_pos[i] = pos[k - 1]
                cut[i] = min(cut[i], thr[i])
        if has_bound:
            _lower_bound(bound, queries[q0 : q0 + m], thr)


# No signature: compiled on its first call (about 2 s), only where the bf16
# products run (hqi.execution.products).
@njit(nogil=True, boundscheck=False)
def push_scores_bf16(
    top_dist: np.ndarray,
    top_pos: np.ndarray,
    queries: np.ndarray,
    scores: np.ndarray,
    norms: np.ndarray,
    cols: np.ndarray,
    bits: np.ndarray,
    mask_offset: np.ndarray,
    mask_base: np.ndarray,
    attrs: np.ndarray,
    program: np.ndarray,
    atom_col: np.ndarray,
    atom_group: np.ndarray,
    atom_lo: np.ndarray,
    atom_hi: np.ndarray,
    vectors: np.ndarray,
    scaled: np.ndarray,
    row_len: np.ndarray,
    row_eps: np.ndarray,
    query_slack: np.ndarray,
    bound: np.ndarray,
) -> None:
    """:func:`push_scores` for approximate scores, with the same results.

    ``scores`` (b, m' >= m) holds bfloat16 bit patterns (uint16): products of
    the rows and queries rounded to bfloat16 (:mod:`hqi.execution.products`);
    columns past the m queries are padding, ignored.
    Each is off the float32 score by at most ``row_len[j] * query_slack[i] +
    row_eps[j]`` (a bound, not an estimate). A row goes on only where its
    score less that bound could be under a query's k-th distance; there its
    mask or program is tested, then its float32 distance is computed from
    ``vectors[cols[j]]`` and ``scaled[queries[i]]`` and merged exactly as
    :func:`push_scores` merges one. So nothing the float32 pass would take
    is skipped, and only distances computed in float32 enter the top-k.

    Its mask, program and insertion steps repeat :func:`push_scores`'s. Shared
    helpers (numba functions, ``inline="always"`` or not) made
    :func:`push_scores` slower: 1M, nprobe 3, 0.77 -> 1.06 s; exact 2.58 ->
    2.96 s. So each kernel keeps its own copy.
    """
    b = scores.shape[0]
    m = queries.size
    k = top_dist.shape[1]
    has_norms = norms.size > 0
    has_bound = bound.size > 0
    inf = np.float32(np.inf)
    zero = np.float32(0.0)
    thr = np.empty(m, dtype=np.float32)  # each query's k-th distance and position
    thr_pos = np.empty(m, dtype=np.int64)
    cut = np.empty(m, dtype=np.float32)  # rows farther than this are skipped (bound)
    for i in range(m):
        thr[i] = top_dist[queries[i], k - 1]
        thr_pos[i] = top_pos[queries[i], k - 1]
        cut[i] = min(thr[i], bound[queries[i]]) if has_bound else thr[i]
    widened = np.empty(m, dtype=np.uint32)
    approx = widened.view(np.float32)  # a row's scores as float32 (bf16 is the top half)
    words = (m + 7) // 8
    flags = np.zeros(8 * words, dtype=np.uint8)  # which queries could take the row
    flag_words = flags.view(np.uint64)
    for j in range(b):
        norm = norms[j] if has_norms else zero
        rl = row_len[j]
        base = norm - row_eps[j]
        row = scores[j]
        for i in range(m):
            widened[i] = np.uint32(row[i]) << 16
        for i in range(m):  # vectorised: which queries could take this row?
            flags[i] = np.uint8(approx[i] + base - rl * query_slack[i] <= cut[i])
        any_word = np.uint64(0)
        for w in range(words):
            any_word |= flag_words[w]
        if any_word == 0:
            continue
        p = cols[j]
        x = vectors[p]
        # Visit only the queries flagged (about 2% of them where any is, on
        # the 1M exact batch), found by their bits (see _BYTE_OF_BIT).
        for w in range(words):
            word = flag_words[w]
            while word != 0:
                low = word & (~word + np.uint64(1))  # its lowest set bit
                word ^= low
                i = 8 * w + _BYTE_OF_BIT[(low * _DE_BRUIJN) >> np.uint64(58)]
                offset = mask_offset[i]
                if offset >= 0:
                    bit = p - mask_base[i]
                    if (bits[offset + (bit >> 3)] >> (7 - (bit & 7))) & 1 == 0:
                        continue
                first = program[i, 0]
                if first >= 0 and not _holds(
                    attrs, p, first, program[i, 1], atom_col, atom_group, atom_lo, atom_hi
                ):
                    continue
                d = _dot(x, scaled[queries[i]]) + norm
                if not d <= cut[i]:
                    continue
                if d == thr[i] and (p >= thr_pos[i] or d == inf):
                    continue  # an equal distance wins only at a smaller position
                dist = top_dist[queries[i]]
                pos = top_pos[queries[i]]
                s = k - 1
                while s > 0 and (dist[s - 1] > d or (dist[s - 1] == d and pos[s - 1] > p)):
                    dist[s] = dist[s - 1]
                    pos[s] = pos[s - 1]
                    s -= 1
                dist[s] = d
                pos[s] = p
                thr[i] = dist[k - 1]
                thr_pos[i] = pos[k - 1]
                cut[i] = min(cut[i], thr[i])
    if has_bound:
        _lower_bound(bound, queries, thr)


# No signature: compiled on its first call, only where approximate plans run
# their products in bfloat16 (hqi.execution.products).
@njit(nogil=True, boundscheck=False)
def push_scores_bf16_approx(
    top_dist: np.ndarray,
    top_pos: np.ndarray,
    queries: np.ndarray,
    scores: np.ndarray,
    norms: np.ndarray,
    cols: np.ndarray,
    bits: np.ndarray,
    mask_offset: np.ndarray,
    mask_base: np.ndarray,
    attrs: np.ndarray,
    program: np.ndarray,
    atom_col: np.ndarray,
    atom_group: np.ndarray,
    atom_lo: np.ndarray,
    atom_hi: np.ndarray,
    scaled: np.ndarray,
    center: np.ndarray,
    bound: np.ndarray,
) -> None:
    """:func:`push_scores` for bfloat16 scores (uint16 bit patterns, (b, m' >= m):
    columns past the m queries are padding, ignored), taken as they are: a
    row's approximate distance is ``scores[j, i] + offset[i] + norms[j]``.
    The products are of rows less their list's ``center``, and ``offset[i]``
    is query ``i``'s score of it, ``scaled[queries[i]] . center`` in float32,
    computed here (:class:`hqi.execution.products.BF16Residuals`).
    The top-k holds approximate distances: approximate plans keep more
    candidates than k and recompute the winners' distances in float32 at the
    end (:func:`hqi.execution.batch.finish_topk`).

    Its steps repeat :func:`push_scores`'s (see :func:`push_scores_bf16` on
    why each kernel keeps its own copy)."""
    b = scores.shape[0]
    m = queries.size
    k = top_dist.shape[1]
    has_norms = norms.size > 0
    has_bound = bound.size > 0
    inf = np.float32(np.inf)
    zero = np.float32(0.0)
    thr = np.empty(m, dtype=np.float32)
    thr_pos = np.empty(m, dtype=np.int64)
    cut = np.empty(m, dtype=np.float32)
    offsets = np.empty(m, dtype=np.float32)
    for i in range(m):
        thr[i] = top_dist[queries[i], k - 1]
        thr_pos[i] = top_pos[queries[i], k - 1]
        cut[i] = min(thr[i], bound[queries[i]]) if has_bound else thr[i]
        offsets[i] = _dot(scaled[queries[i]], center)
    widened = np.empty(m, dtype=np.uint32)
    row = widened.view(np.float32)  # a row's scores as float32 (bf16 is the top half)
    words = (m + 7) // 8
    flags = np.zeros(8 * words, dtype=np.uint8)
    flag_words = flags.view(np.uint64)
    for j in range(b):
        norm = norms[j] if has_norms else zero
        source = scores[j]
        for i in range(m):
            widened[i] = np.uint32(source[i]) << 16
        for i in range(m):
            flags[i] = np.uint8(row[i] + offsets[i] + norm <= cut[i])
        any_word = np.uint64(0)
        for w in range(words):
            any_word |= flag_words[w]
        if any_word == 0:
            continue
        p = cols[j]
        for w in range(words):
            word = flag_words[w]
            while word != 0:
                low = word & (~word + np.uint64(1))
                word ^= low
                i = 8 * w + _BYTE_OF_BIT[(low * _DE_BRUIJN) >> np.uint64(58)]
                d = row[i] + offsets[i] + norm
                if not d <= cut[i]:
                    continue
                if d == thr[i] and (p >= thr_pos[i] or d == inf):
                    continue
                offset = mask_offset[i]
                if offset >= 0:
                    bit = p - mask_base[i]
                    if (bits[offset + (bit >> 3)] >> (7 - (bit & 7))) & 1 == 0:
                        continue
                first = program[i, 0]
                if first >= 0 and not _holds(
                    attrs, p, first, program[i, 1], atom_col, atom_group, atom_lo, atom_hi
                ):
                    continue
                dist = top_dist[queries[i]]
                pos = top_pos[queries[i]]
                s = k - 1
                while s > 0 and (dist[s - 1] > d or (dist[s - 1] == d and pos[s - 1] > p)):
                    dist[s] = dist[s - 1]
                    pos[s] = pos[s - 1]
                    s -= 1
                dist[s] = d
                pos[s] = p
                thr[i] = dist[k - 1]
                thr_pos[i] = pos[k - 1]
                cut[i] = min(cut[i], thr[i])
    if has_bound:
        _lower_bound(bound, queries, thr)


@njit(nogil=True, boundscheck=False)
def _combine_interval(dst: np.ndarray, vals: np.ndarray, lo: float, hi: float, union: bool) -> None:
    """``dst[r] |=`` (``union``) or ``dst[r] &=`` whether ``vals[r]`` passes one
    interval (loops the compiler vectorises for plain intervals and bits)."""
    n = vals.size
    if lo == lo and hi == hi:  # a plain interval
        for r in range(n):
            t = (vals[r] >= lo) & (vals[r] <= hi)
            dst[r] = (dst[r] | t) if union else (dst[r] & t)
    elif lo == lo:  # one bit of a bit set (NULL: NaN fails)
        shift = int(lo) if lo >= 0 else -int(lo) - 1
        want = 1 if lo >= 0 else 0
        for r in range(n):
            v = vals[r]
            valid = v == v
            bits = np.int64(v if valid else 0.0)
            t = valid & (((bits >> shift) & 1) == want)
            dst[r] = (dst[r] | t) if union else (dst[r] & t)
    else:  # the NULL test
        for r in range(n):
            t = vals[r] != vals[r]
            dst[r] = (dst[r] | t) if union else (dst[r] & t)


@njit(nogil=True, boundscheck=False)
def _program_on_rows(
    ok: np.ndarray,
    held: np.ndarray,
    columns: np.ndarray,
    r0: int,
    n: int,
    a: int,
    stop: int,
    atom_col: np.ndarray,
    atom_group: np.ndarray,
    atom_lo: np.ndarray,
    atom_hi: np.ndarray,
) -> None:
    """``ok[:n]``: whether rows ``r0:r0 + n`` of ``columns`` (the attributes column
    by column) satisfy the program in atoms ``[a, stop)``, clause by clause,
    interval by interval over the rows (loops the compiler vectorises);
    ``held``: scratch of at least ``n``."""
    ok[:n] = 1
    while a < stop:  # one clause (a group of intervals, ORed) at a time
        e = a + 1
        while e < stop and atom_group[e] == atom_group[a]:
            e += 1
        if e == a + 1:  # one interval: straight into ok
            vals = columns[atom_col[a], r0 : r0 + n]
            _combine_interval(ok[:n], vals, atom_lo[a], atom_hi[a], False)
        else:  # several: OR them into held, interval by interval
            held[:n] = 0
            for x in range(a, e):
                vals = columns[atom_col[x], r0 : r0 + n]
                _combine_interval(held[:n], vals, atom_lo[x], atom_hi[x], True)
            for r in range(n):
                ok[r] &= held[r]
        a = e


# No signature: compiled on its first call (about 1 s), so that a process which never
# plans with a sample (small stores, exact-only use) does not pay for it.
@njit(nogil=True, boundscheck=False)
def count_holding(
    columns: np.ndarray,
    seg: np.ndarray,
    pair_prog: np.ndarray,
    pair_part: np.ndarray,
    bounds: np.ndarray,
    atom_col: np.ndarray,
    atom_group: np.ndarray,
    atom_lo: np.ndarray,
    atom_hi: np.ndarray,
    out: np.ndarray,
) -> None:
    """For each pair ``j``, count into ``out[j]`` the rows ``seg[p]:seg[p + 1]``
    (``p = pair_part[j]``) where program ``i = pair_prog[j]`` (atoms
    ``bounds[i]:bounds[i + 1]`` of the ``atom_*`` arrays) holds, given the
    rows' attributes column by column (``columns``: the transposed
    :class:`~hqi.query.compiled.AttributeMatrix` rows). The planner's sample
    estimate of many programs in one call. Interval by interval over the rows
    (loops the compiler vectorises), not row by row as :func:`_holds`: 7 ns a
    (program, row) test row by row, against about 1 ns."""
    longest = 0
    for p in range(seg.size - 1):
        longest = max(longest, seg[p + 1] - seg[p])
    ok = np.empty(longest, dtype=np.uint8)
    held = np.empty(longest, dtype=np.uint8)
    for j in range(pair_prog.size):
        i = pair_prog[j]
        r0 = seg[pair_part[j]]
        n = seg[pair_part[j] + 1] - r0
        a, stop = bounds[i], bounds[i + 1]
        _program_on_rows(ok, held, columns, r0, n, a, stop, atom_col, atom_group, atom_lo, atom_hi)
        c = 0
        for r in range(n):
            c += ok[r]
        out[j] = c


# No signature: compiled on its first call (about 1 s), only where the flat pass
# finds a small store's rows by the filters' programs (hqi.execution.exact).
@njit(nogil=True, boundscheck=False)
def rows_holding(
    columns: np.ndarray,
    bounds: np.ndarray,
    atom_col: np.ndarray,
    atom_group: np.ndarray,
    atom_lo: np.ndarray,
    atom_hi: np.ndarray,
    col_min: np.ndarray,
    col_max: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """For each program ``i`` (atoms ``bounds[i]:bounds[i + 1]`` of the ``atom_*``
    arrays, see :class:`hqi.query.compiled.Program`), the rows (ascending) of
    ``columns`` (the attributes column by column, ``(C, N)``) where it holds:
    ``rows[offsets[i]:offsets[i + 1]]`` of the returned ``(rows, offsets)``.
    A program with a clause none of whose plain intervals meets its column's
    least and greatest values (``col_min``, ``col_max``: NaN for a column of
    NULLs only) holds nowhere and reads no row: in the SIGMOD 2024 contest
    sample most time windows lie past every timestamp. The others are
    tested interval by interval over all rows (loops the compiler
    vectorises, as :func:`count_holding`), and their rows written out eight
    flags at a time, skipping the eights where none holds (a generated 20k
    store's 369 filters: 7.0 -> 5.4 ms; the SIGMOD sample's 5,035: 23.0 ->
    21.4 ms; the same rows)."""
    n = columns.shape[1]
    programs = bounds.size - 1
    possible = np.ones(programs, dtype=np.bool_)
    for i in range(programs):  # each clause: may one of its intervals hold?
        x, stop = bounds[i], bounds[i + 1]
        while x < stop and possible[i]:
            e = x + 1
            while e < stop and atom_group[e] == atom_group[x]:
                e += 1
            meets = False
            for y in range(x, e):
                lo, hi = atom_lo[y], atom_hi[y]
                # A NULL or bit test is not ruled out here; a plain interval is
                # when it misses its column's range.
                plain = lo == lo and hi == hi
                if not plain or (lo <= col_max[atom_col[y]] and hi >= col_min[atom_col[y]]):
                    meets = True
            possible[i] = meets
            x = e
    # Room for every row of every program left (untouched memory costs nothing),
    # up to 2**27 rows; more are copied into a larger array as they come.
    rows = np.empty(max(min(int(possible.sum()) * n, 1 << 27), 1), dtype=np.int64)
    offsets = np.zeros(programs + 1, dtype=np.int64)
    used = 0
    words = -(-n // 8)
    ok = np.zeros(8 * words, dtype=np.uint8)  # past n: 0, never kept
    ok_words = ok.view(np.uint64)
    held = np.empty(n, dtype=np.uint8)
    for i in range(programs):
        offsets[i] = used
        if not possible[i]:
            continue
        a, stop = bounds[i], bounds[i + 1]
        _program_on_rows(ok, held, columns, 0, n, a, stop, atom_col, atom_group, atom_lo, atom_hi)
        if used + 8 * words > rows.size:
            grown = np.empty(max(2 * rows.size, used + 8 * words), dtype=np.int64)
            grown[:used] = rows[:used]
            rows = grown
        for w in range(words):  # eight rows at a time, none where none holds
            if ok_words[w] == 0:
                continue
            for r in range(8 * w, 8 * w + 8):  # each written, kept where it holds
                rows[used] = r
                used += ok[r]
    offsets[programs] = used
    return rows[:used], offsets
