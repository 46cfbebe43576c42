"""Peak finding of the decoder: max-pool NMS, top-k and the candidates' tags (numba).

Every kernel takes the maps of one image, ``heat (K, H, W)`` and ``tags (K, D,
H, W)`` of one float dtype (the "work dtype", float32 or float64), and writes
the candidates into a :class:`Candidates` record of preallocated arrays.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import uint64

from .jit import kernel

# side of the tiles of the peak search and of the missing-joint search
TILE = 16


class Candidates(NamedTuple):
    """The detection candidates of one image (or of a batch, with a leading B axis).

    ``val (K, M)`` their heat (work dtype), ``idx (K, M)`` int64 flat index ``y *
    W + x``, ``cnt (K,)`` int64 how many of the M slots are used, ``tag (K, M,
    D)`` their tags, ``nb (K, M, 4)`` the original heatmap's left, right, upper
    and lower neighbour of each candidate (indices clipped to the map).
    """

    val: np.ndarray
    idx: np.ndarray
    cnt: np.ndarray
    tag: np.ndarray
    nb: np.ndarray


def empty_candidates(lead: tuple[int, ...], k: int, m: int, d: int, dtype: np.dtype) -> Candidates:
    """Allocate a :class:`Candidates` record with leading axes ``lead`` (``()`` or ``(B,)``)."""
    return Candidates(
        np.zeros((*lead, k, m), dtype),
        np.zeros((*lead, k, m), np.int64),
        np.zeros((*lead, k), np.int64),
        np.zeros((*lead, k, m, d), dtype),
        np.zeros((*lead, k, m, 4), dtype),
    )


@kernel()
def strip_max(hk, y0, y1, col, fin):
    """``col[x] = max(hk[y0:y1, x])``: the column maxima of a strip of rows (vectorised).

    Also adds ``v - v`` of every value to ``fin[x]``: 0 for a finite value, NaN
    for NaN or infinity, so ``fin`` stays all zeros while the maps are finite
    (see :func:`all_zero`). No fast-math flags here: "no NaN" would let the
    compiler fold ``v - v`` to 0. Column-wise selects and adds vectorise
    without them.
    """
    w = uint64(hk.shape[1])
    uy0 = uint64(y0)
    for x in range(w):  # two-dimensional indexing: a row view costs two reference counts
        v = hk[uy0, x]
        col[x] = v
        fin[x] = fin[x] + (v - v)
    for y in range(uy0 + uint64(1), uint64(y1)):
        for x in range(w):
            v = hk[y, x]
            c = col[x]
            col[x] = v if v > c else c
            fin[x] = fin[x] + (v - v)


@kernel()
def rows_finite(a, fin):
    """Whether every value of the 2-D array ``a`` is finite; ``fin (a.shape[1],)`` is scratch.

    One pass adding ``v - v`` column-wise (vectorised, no fast-math), as :func:`strip_max`.
    """
    fin[:] = 0
    w = uint64(a.shape[1])
    for y in range(uint64(a.shape[0])):
        for x in range(w):
            v = a[y, x]
            fin[x] = fin[x] + (v - v)
    return all_zero(fin)


@kernel()
def all_zero(fin):
    """Return whether every entry of the 1-D ``fin`` is 0 (a NaN entry is not)."""
    n_bad = 0
    for x in range(fin.shape[0]):
        n_bad += fin[x] != 0
    return n_bad == 0


@kernel(inline="always", no_cpython_wrapper=True)
def _peak_at_edge(hk, y, yu, yd, x, threshold):
    """:func:`_peak_row`'s test at one pixel, with columns outside the map left out."""
    w_size = hk.shape[1]
    v = hk[y, x]
    ok = v > threshold and hk[yu, x] <= v and hk[yd, x] <= v
    return ok and (x == 0 or hk[y, x - 1] <= v) and (x + 1 == w_size or hk[y, x + 1] <= v)


@kernel(inline="always", no_cpython_wrapper=True)
def _inner_peak(hk, uy, yu, yd, x, threshold):
    """:func:`_peak_row`'s branch-free test at pixel ``(uy, x)`` with both columns beside it.

    Above ``threshold`` and no 4-neighbour larger; ``yu`` / ``yd`` are the rows
    above and below (clipped to the map: the pixel's own row at its edges).
    """
    v = hk[uy, x]
    return (
        (v > threshold)
        & (hk[uy, x - uint64(1)] <= v)
        & (hk[uy, x + uint64(1)] <= v)
        & (hk[yu, x] <= v)
        & (hk[yd, x] <= v)
    )


@kernel(no_cpython_wrapper=True)
def _peak_row(hk, y, xs, xe, threshold, keep, o):
    """Flag the pixels of row y, columns ``xs:xe``, that may be peaks; return their number.

    ``keep[o + x - xs]`` = pixel ``(y, x)`` of ``hk`` is above ``threshold`` and no
    4-neighbour is larger.

    Neighbours outside the map do not count (the clipped window of the
    references' max-pool). The inner columns take one branch-free vectorised
    loop; the map's first and last columns are tested one by one.
    """
    h_size, w_size = hk.shape
    uy = uint64(y)
    yu = uint64(y - 1 if y > 0 else y)  # a clipped neighbour is the pixel itself
    yd = uint64(y + 1 if y + 1 < h_size else y)
    lo = max(xs, 1)
    hi = max(min(xe, w_size - 1), lo)
    n_keep = 0
    for x in range(xs, min(lo, xe)):
        ok = _peak_at_edge(hk, y, yu, yd, x, threshold)
        keep[o + x - xs] = ok
        n_keep += ok
    uxs = uint64(xs - o)
    for x in range(uint64(lo), uint64(hi)):
        ok = _inner_peak(hk, uy, yu, yd, x, threshold)
        keep[x - uxs] = ok
        n_keep += ok
    for x in range(hi, xe):
        ok = _peak_at_edge(hk, y, yu, yd, x, threshold)
        keep[o + x - xs] = ok
        n_keep += ok
    return n_keep


@kernel(no_cpython_wrapper=True)
def _flag_tile(hk, y0, y1, xs, xe, threshold, r, keep):
    """Flag the pixels of tile ``y0:y1, xs:xe`` that may be peaks, in ``keep``.

    ``keep[(y - y0) * TILE + x - xs]`` (``TILE**2`` entries, the
    rest zero): above ``threshold`` and, for a window radius ``r > 0``, no
    4-neighbour larger (:func:`_peak_row`). Nothing is counted in the loops, so
    that they compare eight or more pixels at a time; the caller reads the
    flags eight at a time.
    """
    keep[:] = False
    h_size, w_size = hk.shape
    inner = xs > 0 and xe < w_size and xe - xs == TILE
    for y in range(y0, y1):
        o = (y - y0) * TILE
        uy = uint64(y)
        if r == 0:
            for x in range(uint64(xs), uint64(xe)):
                keep[o + x - xs] = hk[uy, x] > threshold
        elif inner:  # _peak_row's inner loop, without a call per row
            yu = uint64(y - 1 if y > 0 else y)
            yd = uint64(y + 1 if y + 1 < h_size else y)
            uo = uint64(o - xs)
            for i in range(TILE):  # a constant trip count: unrolled, no remainder loop
                x = uint64(xs + i)
                keep[uo + x] = _inner_peak(hk, uy, yu, yd, x, threshold)
        else:
            _peak_row(hk, y, xs, xe, threshold, keep, o)


@kernel(inline="always", no_cpython_wrapper=True)
def _ranks_before(v, idx, v_other, idx_other):
    """Whether peak ``(v, idx)`` ranks before ``(v_other, idx_other)`` (larger, or tied, first)."""
    return v > v_other or (v == v_other and idx < idx_other)


@kernel(inline="always", no_cpython_wrapper=True)
def _is_peak(hk, y, x, r):
    """Whether no pixel of the window of radius r around ``(y, x)`` (clipped) is larger."""
    h_size, w_size = hk.shape
    v = hk[y, x]
    for yy in range(max(y - r, 0), min(y + r + 1, h_size)):
        for xx in range(max(x - r, 0), min(x + r + 1, w_size)):
            if hk[yy, xx] > v:
                return False
    return True


@kernel(inline="always", no_cpython_wrapper=True)
def _insert_ranked(vals, idxs, cnt, v, idx):
    """Insert peak ``(v, idx)`` into the ranking ``vals``, ``idxs`` (M slots, cnt used).

    An insertion sort: the last is dropped when all M slots are used. The
    caller checked that the peak ranks before that last one. Returns the new
    count.
    """
    if cnt < vals.shape[0]:
        cnt += 1
    pos = cnt - 1
    while pos > 0 and _ranks_before(v, idx, vals[pos - 1], idxs[pos - 1]):
        vals[pos] = vals[pos - 1]
        idxs[pos] = idxs[pos - 1]
        pos -= 1
    vals[pos] = v
    idxs[pos] = idx
    return cnt


@kernel(inline="always", no_cpython_wrapper=True)
def _joint_peaks(hk, threshold, r, scratch, rank, tile_max, k):
    """Rank the peaks of joint k's map ``hk`` into ``rank = (vals, idxs)``; return their count.

    A strip of ``TILE`` rows at a time: the strip's column maxima
    (:func:`strip_max`) tell which tiles hold a value above the threshold
    (:func:`_hot_tiles`). In those, vectorised, a tile at a time
    (:func:`_flag_tile`): the pixels above the threshold with no larger
    4-neighbour (most pixels of a slope have one); the flags are read eight at a
    time, and the window test decides, only for a pixel that would enter the
    ranking. ``scratch = (col, fin, hot, keep, words)``: :func:`find_candidates`'
    buffers, ``words`` being ``keep``'s flags viewed as uint64.
    """
    h_size, w_size = hk.shape
    col, fin, hot, keep, words = scratch
    vals, idxs = rank
    m_size = vals.shape[0]
    cnt = 0
    for y0 in range(0, h_size, TILE):
        y1 = min(y0 + TILE, h_size)
        strip_max(hk, y0, y1, col, fin)
        if not _hot_tiles(col, threshold, hot, tile_max, k, y0 // TILE):
            continue
        for bx in range(hot.shape[0]):
            if not hot[bx]:
                continue
            xs = bx * TILE
            _flag_tile(hk, y0, y1, xs, min(xs + TILE, w_size), threshold, r, keep)
            for wi in range(words.shape[0]):
                if words[wi] == 0:
                    continue
                for e in range(wi * 8, wi * 8 + 8):
                    if not keep[e]:
                        continue
                    y = y0 + e // TILE
                    x = xs + e % TILE
                    v = hk[y, x]
                    idx = y * w_size + x
                    if cnt == m_size and not _ranks_before(
                        v, idx, vals[m_size - 1], idxs[m_size - 1]
                    ):
                        continue
                    if _is_peak(hk, y, x, r):
                        cnt = _insert_ranked(vals, idxs, cnt, v, idx)
    return cnt


@kernel(inline="always", no_cpython_wrapper=True)
def _hot_tiles(col, threshold, hot, tile_max, k, by):
    """Mark the tiles of strip ``by`` whose largest heat (from ``col``) is above the threshold.

    ``hot (nbx,)`` receives the marks; ``tile_max[k]`` the tiles' largest heat
    unless ``tile_max`` has no rows. Returns whether any tile is hot.
    """
    w_size = col.shape[0]
    nbx = hot.shape[0]
    store = tile_max.shape[0] > 0
    any_hot = False
    for bx in range(nbx):
        x0 = uint64(bx * TILE)
        n = uint64(min(bx * TILE + TILE, w_size) - bx * TILE)
        m = col[x0]
        for i in range(n):
            v = col[x0 + i]
            m = v if v > m else m
        hot[bx] = m > threshold
        any_hot = any_hot or hot[bx]
        if store:
            tile_max[k, by * nbx + bx] = m
    return any_hot


@kernel()
def find_candidates(heat, threshold, kernel, cand, tile_max):
    """Peaks of each joint's heatmap above ``threshold``, the strongest first.

    A pixel is a peak when no pixel of the ``kernel x kernel`` window centred
    on it (clipped at the borders) is larger: the references' max-pool NMS
    (``max_pool2d(h, kernel, 1, kernel // 2) == h``), which keeps every pixel of
    a plateau. Peaks with value ``> threshold`` are ranked by value, descending,
    ties by flat index ``y * W + x`` ascending, and the first ``M =
    cand.val.shape[1]`` are written to ``cand.val[k]`` / ``cand.idx[k]``; their
    number to ``cand.cnt[k]``. Returns whether every value of ``heat`` is finite
    (the pass reads them all; see :func:`strip_max`). On a non-finite map the
    candidates are meaningless and the caller raises.

    ``tile_max`` receives the largest heat of every ``TILE x TILE``
    tile, ``tile_max[k, by * n_tiles_x + bx]`` (the missing-joint search reuses
    it), unless it has no rows (shape ``(0, n)``).

    Rows are visited in strips of ``TILE``; a vectorised column maximum
    over the strip tells which ``TILE``-wide tiles hold any value above
    the threshold, and only those are examined, a tile at a time
    (:func:`_flag_tile`), then pixel by pixel where a flag is set. Peaks enter
    the ranking in tile order; ties are ranked by index as they go in.
    """
    n_joints, _, w_size = heat.shape
    col = np.empty(w_size, heat.dtype)
    fin = np.empty(w_size, heat.dtype)  # np.empty and loops: no np.zeros to compile
    for x in range(w_size):
        fin[x] = 0
    hot = np.empty((w_size + TILE - 1) // TILE, np.bool_)
    keep = np.empty(TILE * TILE, np.bool_)  # _flag_tile clears it before each tile
    # keep's flags eight at a time (most are zero); a view made once: each costs a call
    scratch = (col, fin, hot, keep, keep.view(np.uint64))
    for k in range(n_joints):
        rank = (cand.val[k], cand.idx[k])
        cand.cnt[k] = _joint_peaks(heat[k], threshold, kernel // 2, scratch, rank, tile_max, k)
    return all_zero(fin)


@kernel(inline="always")
def new_candidates(heat, tags, m_size):
    """Allocate the :class:`Candidates` of one image, ``m_size`` per joint (uninitialised)."""
    n_joints = heat.shape[0]
    dim = tags.shape[1]
    return Candidates(
        np.empty((n_joints, m_size), heat.dtype),
        np.empty((n_joints, m_size), np.int64),
        np.empty(n_joints, np.int64),
        np.empty((n_joints, m_size, dim), tags.dtype),
        np.empty((n_joints, m_size, 4), heat.dtype),
    )


@kernel(inline="always", no_cpython_wrapper=True)
def image_candidates(heat, tags, m_size, threshold, kernel):
    """Allocate, find and gather the :class:`Candidates` of one image (``m_size`` per joint).

    For callers that checked the maps finite beforehand (the finite flags of
    :func:`find_candidates` and :func:`gather_candidates` are dropped).
    """
    cand = new_candidates(heat, tags, m_size)
    find_candidates(heat, threshold, kernel, cand, np.empty((0, 1), heat.dtype))
    gather_candidates(heat, tags, cand)
    return cand


@kernel()
def gather_candidates(heat, tags, cand):
    """Fill ``cand.tag`` and ``cand.nb``: tags and the four clipped neighbours of each candidate.

    Returns whether every tag read is finite (NaN tags would stall the matching).
    """
    cand_idx = cand.idx
    cand_cnt = cand.cnt
    cand_tag = cand.tag
    cand_nb = cand.nb
    n_joints, h_size, w_size = heat.shape
    dim = tags.shape[1]
    finite = True
    for k in range(n_joints):
        for m in range(cand_cnt[k]):
            idx = cand_idx[k, m]
            y = idx // w_size
            x = idx % w_size
            for d in range(dim):
                t = tags[k, d, y, x]
                cand_tag[k, m, d] = t
                finite = finite and t - t == 0
            cand_nb[k, m, 0] = heat[k, y, max(x - 1, 0)]
            cand_nb[k, m, 1] = heat[k, y, min(x + 1, w_size - 1)]
            cand_nb[k, m, 2] = heat[k, max(y - 1, 0), x]
            cand_nb[k, m, 3] = heat[k, min(y + 1, h_size - 1), x]
    return finite
