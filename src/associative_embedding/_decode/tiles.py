"""Tile statistics and scores shared by both missing-joint searches (numba).

The search for a missing joint k of a person with reference tag ``ref`` looks
for the pixel maximising ``heat_k - mult * round(||tag_k - ref||)``. Each map
is cut into ``block x block`` tiles (numbered row-major, ``b = by * nbx +
bx``); :func:`block_stats` computes per tile the largest heat and the range of
every tag dimension, :func:`tile_bounds` turns them into an upper bound of the
score inside each tile, :func:`tile_scores` scores a tile's pixels and
:func:`pixel_score` one pixel, all with the same float operations, so that a
bound never undercuts a score. ``missing.refine_image`` (the references' search
over the whole map) and ``missing.refine_crowd`` (inside a person's window)
both use them.

Loops over rows of pixels and over blocks are written for LLVM's vectoriser. Their only
fast-math flags are "no NaN" and "no signed zeros" (the inputs are checked finite): no
reassociation, no contraction into fused multiply-adds, so every value is the IEEE result
of the same operations numpy performs, and min/max reductions may use SIMD. The pass
over all pixels (:func:`block_stats`) has no fast-math flags: it also checks the tags
finite, which "no NaN" would let the compiler fold away.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import uint64

from .jit import kernel
from .peaks import all_zero, strip_max
from .sums import pairwise_sum

_FM = {"nnan", "nsz"}
_BIG = 1e15  # an empty tag range [BIG, -BIG]: its distance bound is huge but finite


class TileStats(NamedTuple):
    """Per-tile statistics of one joint's maps (``nb`` tiles, D tag dimensions).

    ``hmax (nb,)`` the largest heat; ``lo``, ``hi (D, nb)`` the range of each tag
    dimension; ``lo_top``, ``hi_top (D, nb)`` the range over the pixels with heat
    ``>= hmax / 2``; ``ub``, ``cost_all``, ``cost_top (nb,)`` the per-person bound
    and its two parts.
    """

    hmax: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    lo_top: np.ndarray
    hi_top: np.ndarray
    ub: np.ndarray
    cost_all: np.ndarray
    cost_top: np.ndarray


class Scratch(NamedTuple):
    """Work arrays of the search, all of the work dtype.

    ``col (W,)`` (a strip's column maxima of the heat, then the top pixels' column
    minima of a tag dimension), ``cols (3, W)`` (a strip's column minima and
    maxima of one tag dimension, and the finite test's column sums), ``acc
    (max(nb, W),)`` (also the top pixels' column maxima), ``buf (block**2,)``,
    ``sq (D,)``; four scalars of the work dtype: ``big`` (an empty tag range
    is ``[big, -big]``), ``half`` (0.5), ``top_min`` (see :func:`block_stats`)
    and ``mult`` (the weight of the rounded distance in a score); ``block``
    the side of the tiles and ``tiles (n_tiles,)`` int64, the tiles a search
    has still to scan.
    """

    col: np.ndarray
    cols: np.ndarray
    acc: np.ndarray
    buf: np.ndarray
    sq: np.ndarray
    big: float
    half: float
    top_min: float
    mult: float
    block: int
    tiles: np.ndarray


@kernel(inline="always", fastmath=_FM)
def tile_scores(hk, tk, ref, tile, scratch, pairwise):
    """``buf[...] = h - mult * round(||t - ref||)`` over ``tile = (y0, y1, x0, x1)``, row-major.

    Returns the number of pixels written to ``scratch.buf``.

    The squared distance is summed over D one by one; with ``pairwise``, as
    numpy does along a last axis (the references' search): one by one for
    D < 8, pairwise beyond. Without it, one by one for every D, as numpy sums
    over a leading axis (the crowd search). Column indices are unsigned so
    that numba emits no negative-index check and the row loops vectorise.
    """
    y0, y1, x0, x1 = tile
    mult = scratch.mult
    buf = scratch.buf
    acc = scratch.acc
    sq = scratch.sq
    n = uint64(x1 - x0)
    ux0 = uint64(x0)
    dim = ref.shape[0]
    cnt = uint64(0)
    for yy in range(y0, y1):
        y = uint64(yy)  # two-dimensional indexing: a row view costs two reference counts
        if dim == 1:
            r0 = ref[0]
            for i in range(n):
                x = ux0 + i
                a = tk[0, y, x] - r0
                buf[cnt + i] = hk[y, x] - mult * np.rint(np.sqrt(a * a))
        elif dim == 2:
            r0 = ref[0]
            r1 = ref[1]
            for i in range(n):
                x = ux0 + i
                a = tk[0, y, x] - r0
                b = tk[1, y, x] - r1
                buf[cnt + i] = hk[y, x] - mult * np.rint(np.sqrt(a * a + b * b))
        elif dim < 8 or not pairwise:
            r0 = ref[0]
            for i in range(n):
                a = tk[0, y, ux0 + i] - r0
                acc[i] = a * a
            for d in range(1, dim):
                rd = ref[d]
                for i in range(n):
                    a = tk[d, y, ux0 + i] - rd
                    acc[i] = acc[i] + a * a
            for i in range(n):
                buf[cnt + i] = hk[y, ux0 + i] - mult * np.rint(np.sqrt(acc[i]))
        else:
            for i in range(n):
                for d in range(dim):
                    a = tk[d, y, ux0 + i] - ref[d]
                    sq[d] = a * a
                buf[cnt + i] = hk[y, ux0 + i] - mult * np.rint(np.sqrt(pairwise_sum(sq, 0, dim)))
        cnt += n
    return cnt


@kernel(inline="always")
def pixel_score(hk, tk, ref, pixel, sq, mult, pairwise):
    """Return ``(heat - mult * round(d), d)`` at ``pixel = (y, x)``, as :func:`tile_scores`.

    ``mult`` is ``scratch.mult`` and ``sq`` (D,) ``scratch.sq``, passed alone:
    numba inlines this per pixel, and every array handed to an inlined
    function costs two reference-count updates per call (the whole ``Scratch``
    record, six arrays, made the references' search 5 % slower).

    ``d = ||tag - ref||`` in the work dtype, the squares summed one by one, or
    with ``pairwise`` as numpy sums along a last axis (one by one for D < 8).
    """
    y, x = pixel
    dim = ref.shape[0]
    a = tk[0, y, x] - ref[0]
    s = a * a
    if pairwise and dim >= 8:
        for d in range(dim):
            a = tk[d, y, x] - ref[d]
            sq[d] = a * a
        s = pairwise_sum(sq, 0, dim)
    else:
        for d in range(1, dim):
            a = tk[d, y, x] - ref[d]
            s = s + a * a
    dist = np.sqrt(s)
    return hk[y, x] - mult * np.rint(dist), dist


@kernel(fastmath=_FM, no_cpython_wrapper=True)
def _fold_strip(col, cols, block, by, d, with_hmax, ranges):
    """Fold strip ``by``'s column rows into its tiles' statistics, all three in one pass.

    ``ranges = (hmax, lo, hi)`` of :class:`TileStats` (the arrays alone: each
    array a kernel is passed costs reference counts on every call).
    ``lo[d, b]`` / ``hi[d, b]`` = min of ``cols[0]`` / max of ``cols[1]`` over
    tile b's columns, and with ``with_hmax`` also ``hmax[b]`` = max of ``col``.
    """
    hmax, lo, hi = ranges
    w_size = col.shape[0]
    nbx = (w_size + block - 1) // block
    for bx in range(nbx):
        x0 = uint64(bx * block)
        n = uint64(min(bx * block + block, w_size) - bx * block)
        b = by * nbx + bx
        m = col[x0]
        lo_m = cols[0, x0]
        hi_m = cols[1, x0]
        for i in range(n):
            x = x0 + i
            v = col[x]
            m = v if v > m else m
            v = cols[0, x]
            lo_m = v if v < lo_m else lo_m
            v = cols[1, x]
            hi_m = v if v > hi_m else hi_m
        if with_hmax:
            hmax[b] = m
        lo[d, b] = lo_m
        hi[d, b] = hi_m


@kernel(inline="always")
def block_stats(hk, tk, stats, scratch, have_hmax):
    """Tile statistics of one joint's maps for the missing-joint search.

    Per ``block x block`` tile (numbered row-major, ``b = by * nbx + bx``): the
    largest heat ``hmax``, the range ``[lo, hi]`` of every tag dimension over
    the tile, and the range ``[lo_top, hi_top]`` over the tile's pixels with
    heat ``>= hmax / 2`` (the core of a peak, whose tags belong to one person).
    The last is computed only for tiles with ``hmax > scratch.top_min`` (the
    detection threshold); a tile below it gets its whole range as its top range,
    a looser but still valid bound (its pixels are rarely worth a scan).
    Results go to ``stats`` (:class:`TileStats`); with ``have_hmax``,
    ``stats.hmax`` already holds the tiles' largest heat (the peak search's
    ``tile_max``) and the heat is read only in the tiles above ``top_min``;
    without, a column-wise pass over the heat (``_peaks.strip_max``) finds it.
    ``scratch`` (:class:`Scratch`) holds the work rows. Each row of tiles takes
    vectorisable column-wise passes, then one fold per tile. Returns whether
    every value of ``tk`` is finite, and without ``have_hmax`` of ``hk`` too
    (see :func:`_strip_tag_ranges`; with it, the peak search checked the heat).
    """
    block = scratch.block
    col = scratch.col
    cols = scratch.cols
    cols[2, :] = 0
    ranges = (stats.hmax, stats.lo, stats.hi)
    top = (stats.hmax, stats.lo, stats.hi, stats.lo_top, stats.hi_top)
    work = (scratch.col, scratch.acc, scratch.top_min, scratch.big, scratch.half)
    h_size = hk.shape[0]
    dim = tk.shape[0]
    nby = (h_size + block - 1) // block
    for by in range(nby):
        y0 = by * block
        y1 = min(y0 + block, h_size)
        if not have_hmax:  # the strip's column maxima of the heat, folded with d == 0
            strip_max(hk, y0, y1, col, cols[2])
        for d in range(dim):
            _strip_tag_ranges(tk, d, y0, y1, cols)
            _fold_strip(col, cols, block, by, d, d == 0 and not have_hmax, ranges)
            _top_ranges(hk, tk, d, (by, y0, y1), block, top, work)
    return all_zero(cols[2])


@kernel(no_cpython_wrapper=True)
def _strip_tag_ranges(tk, d, y0, y1, cols):
    """Column-wise over rows ``y0:y1`` of tag dimension d: the tag range ``cols[0:2]``.

    One vectorised pass over a strip of ``tk (D, H, W)``, indexed in three
    dimensions, not through row views: in numba a view costs two atomic
    reference-count updates, more than the arithmetic of a row. The column
    maxima keep a NaN once met (``v != v`` selects it; no later comparison
    replaces it), an infinity is its own extreme, so a strip is finite exactly
    when its column minima and maxima are; their ``v - v`` is added to
    ``cols[2]`` (no fast-math flags here: "no NaN" would fold it to 0).
    """
    w = uint64(tk.shape[2])
    uy0 = uint64(y0)
    for x in range(w):
        v = tk[d, uy0, x]
        cols[0, x] = v
        cols[1, x] = v
    for y in range(uy0 + uint64(1), uint64(y1)):
        for x in range(w):
            v = tk[d, y, x]
            lo_v = cols[0, x]
            hi_v = cols[1, x]
            cols[0, x] = v if v < lo_v else lo_v
            cols[1, x] = v if (v > hi_v) | (v != v) else hi_v
    _add_finite(cols)


@kernel(inline="always", no_cpython_wrapper=True)
def _add_finite(cols):
    """``cols[2] += (lo - lo) + (hi - hi)`` column-wise: NaN where a strip was not finite."""
    for x in range(uint64(cols.shape[1])):
        lo_v = cols[0, x]
        hi_v = cols[1, x]
        cols[2, x] = cols[2, x] + ((lo_v - lo_v) + (hi_v - hi_v))


@kernel(no_cpython_wrapper=True)
def _top_ranges(hk, tk, d, strip, block, top, work):
    """``lo_top`` / ``hi_top`` of dimension d for the tiles of a strip (see block_stats).

    ``strip = (by, y0, y1)``: the strip's number and rows; ``top = (hmax, lo,
    hi, lo_top, hi_top)`` of :class:`TileStats`; ``work = (c_lo, c_hi,
    top_min, big, half)`` of :class:`Scratch` (``col``, ``acc`` and its
    scalars; the arrays alone, see :func:`_fold_strip`). Over the pixels with
    heat ``>= hmax / 2`` of the tiles with ``hmax > top_min``; the other tiles
    take their whole range ``lo`` / ``hi``. ``c_lo`` and ``c_hi`` hold the
    column minima and maxima (two arrays, not two rows of one, so that the
    compiler can vectorise the rows).
    """
    w_size = hk.shape[1]
    nbx = (w_size + block - 1) // block
    by, y0, y1 = strip
    hmax, lo, hi, lo_top, hi_top = top
    c_lo, c_hi, top_min, big, half = work
    for bx in range(nbx):
        b = by * nbx + bx
        if not hmax[b] > top_min:
            lo_top[d, b] = lo[d, b]
            hi_top[d, b] = hi[d, b]
            continue
        x0 = uint64(bx * block)
        n = uint64(min(bx * block + block, w_size) - bx * block)
        t = hmax[b] * half
        for i in range(n):
            c_lo[i] = big
            c_hi[i] = -big
        for y in range(uint64(y0), uint64(y1)):
            for i in range(n):
                x = x0 + i
                v = tk[d, y, x]
                top = hk[y, x] >= t
                lo_v = v if top else big
                hi_v = v if top else -big
                a = c_lo[i]
                z = c_hi[i]
                c_lo[i] = lo_v if lo_v < a else a
                c_hi[i] = hi_v if hi_v > z else z
        m_lo = c_lo[0]
        m_hi = c_hi[0]
        for i in range(n):
            v = c_lo[i]
            m_lo = v if v < m_lo else m_lo
            v = c_hi[i]
            m_hi = v if v > m_hi else m_hi
        lo_top[d, b] = m_lo
        hi_top[d, b] = m_hi


@kernel(fastmath=_FM, no_cpython_wrapper=True)
def _range_cost(lo, hi, ref, mult, out, acc, pairwise):
    """Lower-bound the cost of every tag box: ``out[b] = mult * round(sqrt(sum_d gap_d**2))``.

    The squares are summed as :func:`tile_scores` sums them (``pairwise``).

    ``gap_d`` is the distance from ``ref[d]`` to ``[lo[d, b], hi[d, b]]`` (0
    inside). It bounds ``mult * round(||t - ref||)`` from below for every tag
    ``t`` in the box, being computed with the same (monotone) float operations
    as the cost itself.
    """
    nb = out.shape[0]
    dim = ref.shape[0]
    z = ref[0] - ref[0]
    r0 = ref[0]
    lo0 = lo[0]
    hi0 = hi[0]
    if dim == 1:
        for b in range(nb):
            g = max(max(lo0[b] - r0, r0 - hi0[b]), z)
            out[b] = mult * np.rint(np.sqrt(g * g))
        return
    if dim == 2:
        r1 = ref[1]
        lo1 = lo[1]
        hi1 = hi[1]
        for b in range(nb):
            g = max(max(lo0[b] - r0, r0 - hi0[b]), z)
            e = max(max(lo1[b] - r1, r1 - hi1[b]), z)
            out[b] = mult * np.rint(np.sqrt(g * g + e * e))
        return
    if dim < 8 or not pairwise:
        for b in range(nb):
            g = max(max(lo0[b] - r0, r0 - hi0[b]), z)
            acc[b] = g * g
        for d in range(1, dim):
            rd = ref[d]
            lod = lo[d]
            hid = hi[d]
            for b in range(nb):
                g = max(max(lod[b] - rd, rd - hid[b]), z)
                acc[b] = acc[b] + g * g
        for b in range(nb):
            out[b] = mult * np.rint(np.sqrt(acc[b]))
        return
    sq = np.empty(dim, acc.dtype)
    for b in range(nb):
        for d in range(dim):
            g = max(max(lo[d, b] - ref[d], ref[d] - hi[d, b]), z)
            sq[d] = g * g
        out[b] = mult * np.rint(np.sqrt(pairwise_sum(sq, 0, dim)))


@kernel(fastmath=_FM)
def tile_bounds(stats, ref, scratch, pairwise):
    """``stats.ub[b]``: an upper bound of ``heat - mult * round(dist)`` in each tile b.

    ``pairwise``: the distances are summed as :func:`tile_scores` sums them.

    A pixel in the tile's top (heat >= hmax / 2) scores at most ``hmax - cost``
    over the top's tag box; any other pixel at most ``hmax / 2 - cost`` over
    the whole tile's box (float subtraction is monotone in both operands).
    """
    hmax = stats.hmax
    ub = stats.ub
    cost_all = stats.cost_all
    cost_top = stats.cost_top
    mult = scratch.mult
    _range_cost(stats.lo, stats.hi, ref, mult, cost_all, scratch.acc, pairwise)
    _range_cost(stats.lo_top, stats.hi_top, ref, mult, cost_top, scratch.acc, pairwise)
    half = scratch.half
    for b in range(hmax.shape[0]):
        a = hmax[b] - cost_top[b]
        c = hmax[b] * half - cost_all[b]
        ub[b] = a if a > c else c


@kernel(inline="always")
def block_start(b, nbx, block, w_size):
    """Flat index of the top-left pixel of tile ``b`` (the smallest index in it)."""
    return (b // nbx) * block * w_size + (b % nbx) * block


@kernel(inline="always")
def work_arrays(heat, dim, r):
    """Allocate the :class:`TileStats` and :class:`Scratch` of the search.

    For maps ``heat (S, H, W)`` (their dtype and size) with ``dim`` tag
    dimensions and the ``missing.RefineOptions`` ``r``: tiles of ``r.block``
    pixels a side, top ranges computed in tiles with heat above ``r.top_min``
    (:func:`block_stats`), scores weighted by ``r.mult``. Returns ``(stats,
    scratch)``.
    """
    _, h_size, w_size = heat.shape
    block = r.block
    nb = ((h_size + block - 1) // block) * ((w_size + block - 1) // block)
    dt = heat.dtype
    stats = TileStats(
        hmax=np.empty(nb, dt),
        lo=np.empty((dim, nb), dt),
        hi=np.empty((dim, nb), dt),
        lo_top=np.empty((dim, nb), dt),
        hi_top=np.empty((dim, nb), dt),
        ub=np.empty(nb, dt),
        cost_all=np.empty(nb, dt),
        cost_top=np.empty(nb, dt),
    )
    consts = np.empty(4, dt)  # the scalars in the work dtype
    consts[0] = _BIG
    consts[1] = 0.5
    consts[2] = r.top_min
    consts[3] = r.mult
    scratch = Scratch(
        col=np.empty(w_size, dt),
        cols=np.empty((3, w_size), dt),
        acc=np.empty(max(nb, w_size), dt),
        buf=np.empty(block * block, dt),
        sq=np.empty(max(dim, 1), dt),
        big=consts[0],
        half=consts[1],
        top_min=consts[2],
        mult=consts[3],
        block=block,
        tiles=np.empty(nb, np.int64),
    )
    return stats, scratch
