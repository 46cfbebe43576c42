"""Missing-joint recovery of the decoder ("refine"), an exact bounded search (numba).

For a person missing joint k, the references (HigherHRNet ``lib/core/group.py``
``refine``, pose-ae-train ``utils/group.py``, mmpose ``codecs/associative_embedding.py``)
take the pixel of the whole map maximising ``heat_k - mult * round(||tag_k -
ref||)``. Here one pass per joint computes tile statistics, and per person only
the tiles whose upper bound can still beat the best score found so far are
scanned; the answer is the same pixel, ties included.

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
from numba import njit, uint64

from ._grouping import place_joint
from ._peaks import all_zero, strip_max
from ._sums import pairwise_sum

REFINE_OFF = 0
REFINE_HIGHERHRNET = 1
REFINE_POSE_AE = 2
REFINE_MMPOSE = 3

_FM = {"nnan", "nsz"}
_BIG = 1e15  # an empty tag range [BIG, -BIG]: its distance bound is huge but finite


class RefineOptions(NamedTuple):
    """The missing-joint search's options, as the kernels read them.

    ``mode`` one of the REFINE_* codes; ``adjust`` / ``adjust_rule`` the
    quarter-pixel move of a recovered joint; ``block`` the side of the search
    tiles; ``center_shift``; ``mult`` the weight of the rounded distance, a
    scalar of the work dtype (1 for HigherHRNet and pose-ae-train, 100 for
    mmpose 1.x, whose argmin of ``round(dist) * 100 - heat`` is the same pixel);
    ``top_min`` the heat above which a tile's bound uses the tags of its peak's
    core (the detection threshold; see :func:`block_stats`). Any value gives
    the same answers; it only decides how tight the tiles' bounds are.
    """

    mode: int
    adjust: bool
    adjust_rule: int
    block: int
    center_shift: float
    mult: float
    top_min: float = 0.0


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
    ``sq (D,)`` and
    ``consts`` = ``[BIG, 0.5, top_min]`` (``top_min``: see :func:`block_stats`).
    """

    col: np.ndarray
    cols: np.ndarray
    acc: np.ndarray
    buf: np.ndarray
    sq: np.ndarray
    consts: np.ndarray


@njit(inline="always", cache=True, nogil=True, no_cfunc_wrapper=True, fastmath=_FM)
def _tile_scores(hk, tk, ref, mult, tile, scratch, pairwise):
    """``buf[...] = h - mult * round(||t - ref||)`` over ``tile = (y0, y1, x0, x1)``, row-major.

    Returns the number of pixels written to ``scratch.buf``.

    The squared distance is summed over D one by one; with ``pairwise``, as
    numpy does along a last axis (the references' search): one by one for
    D < 8, pairwise beyond. Without it, one by one for every D, as numpy sums
    over a leading axis (the crowd search). Column indices are unsigned so
    that numba emits no negative-index check and the row loops vectorise.
    """
    y0, y1, x0, x1 = tile
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


@njit(cache=True, nogil=True, no_cfunc_wrapper=True, fastmath=_FM)
def _scan_block(hk, tk, ref, mult, tile, best, best_idx, scratch):
    """Fold a tile's pixels into the running first-occurrence maximum ``(best, best_idx)``.

    If the tile's maximum score can beat ``best`` (or equal it at a smaller
    flat index), its first pixel in row-major order, which has the smallest
    flat index of the tile, is taken.
    """
    y0, _, x0, x1 = tile
    w_size = hk.shape[1]
    buf = scratch.buf
    cnt = _tile_scores(hk, tk, ref, mult, tile, scratch, True)
    m = buf[0]
    for i in range(cnt):
        v = buf[i]
        m = v if v > m else m
    if best_idx >= 0 and m < best:
        return best, best_idx
    i = 0
    while buf[i] != m:
        i += 1
    n = x1 - x0
    idx = (y0 + i // n) * w_size + x0 + i % n
    if best_idx < 0 or m > best or idx < best_idx:
        return m, idx
    return best, best_idx


@njit(cache=True, nogil=True, no_cfunc_wrapper=True, fastmath=_FM)
def _fold_strip(col, cols, block, by, d, with_hmax, hmax, lo, hi):
    """Fold strip ``by``'s column rows into its tiles' statistics, all three in one pass.

    ``lo[d, b]`` / ``hi[d, b]`` = min of ``cols[0]`` / max of ``cols[1]`` over tile b's
    columns, and with ``with_hmax`` also ``hmax[b]`` = max of ``col``.
    """
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


@njit(inline="always", cache=True, nogil=True, no_cfunc_wrapper=True)
def block_stats(hk, tk, block, stats, scratch, have_hmax):
    """Tile statistics of one joint's maps for the missing-joint search.

    Per ``block x block`` tile (numbered row-major, ``b = by * nbx + bx``): the
    largest heat ``hmax``, the range ``[lo, hi]`` of every tag dimension over
    the tile, and the range ``[lo_top, hi_top]`` over the tile's pixels with
    heat ``>= hmax / 2`` (the core of a peak, whose tags belong to one person).
    The last is computed only for tiles with ``hmax > scratch.consts[2]`` (the
    detection threshold); a tile below it gets its whole range as its top range,
    a looser but still valid bound (its pixels are rarely worth a scan).
    Results go to ``stats`` (:class:`TileStats`); with ``have_hmax``,
    ``stats.hmax`` already holds the tiles' largest heat (the peak search's
    ``tile_max``) and the heat is read only in the tiles above ``consts[2]``;
    without, a column-wise pass over the heat (``_peaks.strip_max``) finds it.
    ``scratch`` (:class:`Scratch`) holds the work rows. Each row of tiles takes
    vectorisable column-wise passes, then one fold per tile. Returns whether
    every value of ``tk`` is finite, and without ``have_hmax`` of ``hk`` too
    (see :func:`_strip_tag_ranges`; with it, the peak search checked the heat).
    """
    hmax, lo, hi, lo_top, hi_top = stats[:5]
    col = scratch.col
    cols = scratch.cols
    top_min = scratch.consts[2]
    cols[2, :] = 0
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
            _fold_strip(col, cols, block, by, d, d == 0 and not have_hmax, hmax, lo, hi)
            _top_ranges(
                hk, tk, d, y0, y1, block, by, hmax, top_min, lo, hi, lo_top, hi_top, scratch
            )
    return all_zero(cols[2])


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
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


@njit(inline="always", cache=True, nogil=True, no_cfunc_wrapper=True)
def _add_finite(cols):
    """``cols[2] += (lo - lo) + (hi - hi)`` column-wise: NaN where a strip was not finite."""
    for x in range(uint64(cols.shape[1])):
        lo_v = cols[0, x]
        hi_v = cols[1, x]
        cols[2, x] = cols[2, x] + ((lo_v - lo_v) + (hi_v - hi_v))


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _top_ranges(hk, tk, d, y0, y1, block, by, hmax, top_min, lo, hi, lo_top, hi_top, scratch):
    """``lo_top`` / ``hi_top`` of dimension d for the tiles of strip ``by`` (see block_stats).

    Over the pixels with heat ``>= hmax / 2`` of the tiles with ``hmax >
    top_min``; the other tiles take their whole range ``lo`` / ``hi``.
    ``scratch.col`` and ``scratch.acc`` hold the column minima and maxima (two
    arrays, not two rows of one, so that the compiler can vectorise the rows).
    """
    w_size = hk.shape[1]
    nbx = (w_size + block - 1) // block
    c_lo = scratch.col
    c_hi = scratch.acc
    big = scratch.consts[0]
    half = scratch.consts[1]
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


@njit(cache=True, nogil=True, no_cfunc_wrapper=True, fastmath=_FM)
def _range_cost(lo, hi, ref, mult, out, acc):
    """Lower-bound the cost of every tag box: ``out[b] = mult * round(sqrt(sum_d gap_d**2))``.

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
    if dim < 8:
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


@njit(cache=True, nogil=True, no_cfunc_wrapper=True, fastmath=_FM)
def _bounds(stats, ref, mult, scratch):
    """Upper bound of ``heat - mult * round(dist)`` in each tile.

    A pixel in the tile's top (heat >= hmax / 2) scores at most ``hmax - cost``
    over the top's tag box; any other pixel at most ``hmax / 2 - cost`` over
    the whole tile's box (float subtraction is monotone in both operands).
    """
    hmax = stats.hmax
    ub = stats.ub
    cost_all = stats.cost_all
    cost_top = stats.cost_top
    _range_cost(stats.lo, stats.hi, ref, mult, cost_all, scratch.acc)
    _range_cost(stats.lo_top, stats.hi_top, ref, mult, cost_top, scratch.acc)
    half = scratch.consts[1]
    for b in range(hmax.shape[0]):
        a = hmax[b] - cost_top[b]
        c = hmax[b] * half - cost_all[b]
        ub[b] = a if a > c else c


@njit(inline="always", cache=True, nogil=True, no_cfunc_wrapper=True)
def joint_missing(det, n_people, k):
    """Whether one of the first ``n_people`` people misses joint k (``det[p, k] == 0``)."""
    p = 0
    while p < n_people and det[p, k] != 0:
        p += 1
    return p < n_people


@njit(inline="always", cache=True, nogil=True, no_cfunc_wrapper=True)
def _block_start(b, nbx, block, w_size):
    """Flat index of the top-left pixel of tile ``b`` (the smallest index in it)."""
    return (b // nbx) * block * w_size + (b % nbx) * block


@njit(inline="always", cache=True, nogil=True, no_cfunc_wrapper=True)
def work_arrays(heat, dim, block, top_min):
    """Allocate the :class:`TileStats` and :class:`Scratch` of the search.

    For maps ``heat (S, H, W)`` (their dtype and size) with ``dim`` tag
    dimensions and tiles of ``block x block`` pixels, the top ranges computed in
    tiles with heat above ``top_min`` (:func:`block_stats`); returns ``(stats,
    scratch)``.
    """
    _, h_size, w_size = heat.shape
    nb = ((h_size + block - 1) // block) * ((w_size + block - 1) // block)
    dt = heat.dtype
    stats = TileStats(
        np.empty(nb, dt),
        np.empty((dim, nb), dt),
        np.empty((dim, nb), dt),
        np.empty((dim, nb), dt),
        np.empty((dim, nb), dt),
        np.empty(nb, dt),
        np.empty(nb, dt),
        np.empty(nb, dt),
    )
    consts = np.empty(3, dt)
    consts[0] = _BIG
    consts[1] = 0.5
    consts[2] = top_min
    scratch = Scratch(
        np.empty(w_size, dt),
        np.empty((3, w_size), dt),
        np.empty(max(nb, w_size), dt),
        np.empty(block * block, dt),
        np.empty(max(dim, 1), dt),
        consts,
    )
    return stats, scratch


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def refine_image(heat, tags, slot, n_people, cand, opts, out, tile_max):
    """Recover the missing joints of the ``n_people`` people of one image, in place.

    For person p and a joint k it misses, the pixel maximising ``heat_k -
    mult * round(||tag_k - ref_p||)`` over the whole map (first in row-major
    order on ties) is found; ``mult`` is 1 for HigherHRNet and pose-ae-train
    and 100 for mmpose 1.x, whose argmin of ``round(dist) * 100 - heat`` is
    the same pixel. ``heat (S, H, W)`` and ``tags (S, D, H, W)`` hold the maps
    of the joints some person misses, joint k at ``slot[k]``; ``cand`` holds
    the candidates of ``find_candidates``, ``out`` the :class:`People` of
    ``group_image`` (``kp``, ``ref`` and ``det`` are read; ``kp`` is written).
    ``tile_max (S, n_tiles)``, if it has rows, holds the largest heat of every
    ``block x block`` tile of each map (``_peaks.find_candidates``).

    The search is exact and avoids a full pass per person: per joint, one pass
    over its maps computes tile statistics (``block_stats``); per person, the
    best score at the joint's candidates (usually the answer) gives a first
    bound, and only tiles whose upper bound can still beat it are scanned, the
    most promising first.

    Returns False, leaving ``out`` partly written, if the maps of a joint it
    searches hold NaN or infinity (``block_stats`` sees every value); True
    otherwise. Those maps are the ones of :func:`joint_missing` joints.
    """
    _, h_size, w_size = heat.shape
    dim = tags.shape[1]
    out_kp = out.kp
    out_ref = out.ref
    out_det = out.det
    cand_idx = cand.idx
    cand_cnt = cand.cnt
    n_joints = out_kp.shape[1]
    mode = opts.mode
    block = opts.block
    mult = opts.mult
    if mode == REFINE_OFF or n_people == 0:
        return True
    nby = (h_size + block - 1) // block
    nbx = (w_size + block - 1) // block
    nb = nby * nbx
    stats, scratch = work_arrays(heat, dim, block, opts.top_min)
    sq = scratch.sq
    ub = stats.ub
    open_blocks = np.empty(nb, np.int64)
    have_hmax = tile_max.shape[0] > 0
    for k in range(n_joints):
        if not joint_missing(out_det, n_people, k):
            continue
        hk = heat[slot[k]]
        tk = tags[slot[k]]
        st = stats
        if have_hmax:
            st = TileStats(tile_max[slot[k]], *stats[1:])
        if not block_stats(hk, tk, block, st, scratch, have_hmax):
            return False
        for p in range(n_people):
            if out_det[p, k] != 0:
                continue
            ref = out_ref[p]
            # the joint's candidates: a cheap first answer
            best = hk[0, 0]
            best_idx = np.int64(-1)  # not the constant: one compiled _scan_block
            for c in range(cand_cnt[k]):
                idx = cand_idx[k, c]
                y = idx // w_size
                x = idx % w_size
                for d in range(dim):
                    a = tk[d, y, x] - ref[d]
                    sq[d] = a * a
                score = hk[y, x] - mult * np.rint(np.sqrt(pairwise_sum(sq, 0, dim)))
                if best_idx < 0 or score > best or (score == best and idx < best_idx):
                    best = score
                    best_idx = idx
            _bounds(st, ref, mult, scratch)
            n_open = 0
            for b in range(nb):
                if (
                    best_idx < 0
                    or ub[b] > best
                    or (ub[b] == best and _block_start(b, nbx, block, w_size) < best_idx)
                ):
                    open_blocks[n_open] = b
                    n_open += 1
            # scan the open tiles, largest bound first, until no bound can beat the best
            # score: a selection, not a sort, since a few scans usually settle it (the
            # order among equal bounds does not change the answer: ties go by index)
            while n_open > 0:
                i_top = 0
                for i in range(1, n_open):
                    if ub[open_blocks[i]] > ub[open_blocks[i_top]]:
                        i_top = i
                b = open_blocks[i_top]
                n_open -= 1
                open_blocks[i_top] = open_blocks[n_open]
                if best_idx >= 0 and (
                    ub[b] < best
                    or (ub[b] == best and _block_start(b, nbx, block, w_size) >= best_idx)
                ):
                    if ub[b] < best:
                        break
                    continue
                by = b // nbx
                bx = b % nbx
                y0 = by * block
                x0 = bx * block
                tile = (y0, min(y0 + block, h_size), x0, min(x0 + block, w_size))
                best, best_idx = _scan_block(hk, tk, ref, mult, tile, best, best_idx, scratch)
            y = best_idx // w_size
            x = best_idx % w_size
            val = hk[y, x]
            if mode == REFINE_MMPOSE:
                out_kp[p, k, 0] = x
                out_kp[p, k, 1] = y
                out_kp[p, k, 2] = val
                continue
            if not val > 0:
                continue
            place_joint(out_kp, p, k, hk, x, y, opts, 1 if mode == REFINE_POSE_AE else val)
    return True
