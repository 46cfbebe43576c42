"""Missing-joint recovery of the decoder ("refine"): two exact bounded searches (numba).

For a person missing joint k, the references (HigherHRNet ``lib/core/group.py``
``refine``, pose-ae-train ``utils/group.py``, mmpose ``codecs/associative_embedding.py``)
take the pixel of the whole map maximising ``heat_k - mult * round(||tag_k -
ref||)`` (:func:`refine_image`); the crowd options search inside a window
around the person, near the joints linked to k, and fill only where the tag
agrees (:func:`refine_crowd`). Both find the same pixel, ties included, as a
scan of every pixel would: one pass per joint computes tile statistics, and
per person only the tiles whose upper bound can still beat the best score found
so far are scanned (:mod:`.tiles` holds the bounds and scores both use).

Boxes of pixels are half-open ranges ``(x0, x1, y0, y1)``: columns ``x0 <= x <
x1``, rows ``y0 <= y < y1``, like numpy slices.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .crowd import joint_box, linked_joints, nearest, person_scales
from .jit import kernel
from .people import place_joint
from .tiles import (
    _FM,
    TileStats,
    block_start,
    block_stats,
    pixel_score,
    tile_bounds,
    tile_scores,
    work_arrays,
)

REFINE_OFF = 0
REFINE_HIGHERHRNET = 1
REFINE_POSE_AE = 2
REFINE_MMPOSE = 3


class RefineOptions(NamedTuple):
    """The missing-joint search's options, as the kernels read them.

    ``mode`` one of the REFINE_* codes; ``adjust`` / ``adjust_rule`` the
    quarter-pixel move of a recovered joint; ``block`` the side of the search
    tiles; ``center_shift``; ``mult`` the weight of the rounded distance, a
    scalar of the work dtype (1 for HigherHRNet and pose-ae-train, 100 for
    mmpose 1.x, whose argmin of ``round(dist) * 100 - heat`` is the same pixel);
    ``top_min`` the heat above which a tile's bound uses the tags of its peak's
    core (the detection threshold; see ``tiles.block_stats``). Any value gives
    the same answers; it only decides how tight the tiles' bounds are.
    """

    mode: int
    adjust: bool
    adjust_rule: int
    block: int
    center_shift: float
    mult: float
    top_min: float = 0.0


class Gate(NamedTuple):
    """The spatial gate of one person's crowd search (``spatial_gate``).

    A pixel passes if ``n_refs == 0`` or its distance to the nearest of the
    person's joints ``refs[:n_refs]`` (positions ``px``, ``py (P, K)``
    float64), over the person's ``scale``, is below ``limit``.
    """

    px: np.ndarray
    py: np.ndarray
    p: int
    refs: np.ndarray
    n_refs: int
    scale: float
    limit: float


@kernel(inline="always", no_cpython_wrapper=True)
def _passes(gate, x, y):
    """Whether pixel ``(x, y)`` passes the :class:`Gate`."""
    if gate.n_refs == 0:
        return True
    return nearest(gate.px, gate.py, gate.p, gate.refs, gate.n_refs, x, y) / gate.scale < gate.limit


@kernel(inline="always")
def joint_missing(det, n_people, k):
    """Whether one of the first ``n_people`` people misses joint k (``det[p, k] == 0``)."""
    p = 0
    while p < n_people and det[p, k] != 0:
        p += 1
    return p < n_people


@kernel(inline="always", no_cpython_wrapper=True)
def _beats(v, idx, best, best_idx):
    """Whether score ``v`` at flat index ``idx`` beats the running first maximum."""
    return best_idx < 0 or v > best or (v == best and idx < best_idx)


@kernel(inline="always", no_cpython_wrapper=True)
def _tile_beats(bound, b, grid, best, best_idx):
    """Whether tile b's bound can beat ``(best, best_idx)``: :func:`_beats` at its first pixel.

    ``grid = (nbx, block, w_size)``. The first pixel's index (a division) is
    computed only on a tie, which is rare.
    """
    if best_idx < 0 or bound > best:
        return True
    return bound == best and block_start(b, grid[0], grid[1], grid[2]) < best_idx


@kernel(fastmath=_FM, no_cpython_wrapper=True)
def _scan_block(hk, tk, ref, tile, best, best_idx, scratch):
    """Fold a tile's pixels into the running first-occurrence maximum ``(best, best_idx)``.

    If the tile's maximum score can beat ``best`` (or equal it at a smaller
    flat index), its first pixel in row-major order, which has the smallest
    flat index of the tile, is taken.
    """
    y0, _, x0, x1 = tile
    w_size = hk.shape[1]
    buf = scratch.buf
    cnt = tile_scores(hk, tk, ref, tile, scratch, True)
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
    if _beats(m, idx, best, best_idx):
        return m, idx
    return best, best_idx


# --- the references' search over the whole map ----------------------------------------------
@kernel(inline="always", no_cpython_wrapper=True)
def _best_candidate(hk, tk, ref, cand_idx, sq, mult):
    """Return the best ``(score, flat index)`` among a joint type's candidates ``cand_idx``.

    ``(hk[0, 0], -1)`` when there are none. ``sq`` and ``mult``: as
    :func:`~.tiles.pixel_score` takes them.
    """
    w_size = hk.shape[1]
    best = hk[0, 0]
    best_idx = np.int64(-1)  # not the constant: one compiled _scan_block
    for c in range(cand_idx.shape[0]):
        idx = cand_idx[c]
        score, _ = pixel_score(hk, tk, ref, (idx // w_size, idx % w_size), sq, mult, True)
        if _beats(score, idx, best, best_idx):
            best = score
            best_idx = idx
    return best, best_idx


@kernel(inline="always", no_cpython_wrapper=True)
def _bounded_search(hk, tk, ref, first, stats, scratch):
    """Flat index of the best pixel of the whole map, starting from the answer ``first``.

    Only the tiles whose bound (:func:`~.tiles.tile_bounds`) can beat the best
    score so far are scanned, largest bound first, until no bound can: a
    selection, not a sort, since a few scans usually settle it (the order
    among equal bounds does not change the answer: ties go by index).
    """
    h_size, w_size = hk.shape
    block = scratch.block
    nbx = (w_size + block - 1) // block
    grid = (nbx, block, w_size)
    ub = stats.ub
    open_tiles = scratch.tiles
    best, best_idx = first
    tile_bounds(stats, ref, scratch, True)
    n_open = 0
    for b in range(ub.shape[0]):
        if _tile_beats(ub[b], b, grid, best, best_idx):
            open_tiles[n_open] = b
            n_open += 1
    while n_open > 0:
        i_top = 0
        for i in range(1, n_open):
            if ub[open_tiles[i]] > ub[open_tiles[i_top]]:
                i_top = i
        b = open_tiles[i_top]
        n_open -= 1
        open_tiles[i_top] = open_tiles[n_open]
        if best_idx >= 0 and ub[b] < best:
            break
        if not _tile_beats(ub[b], b, grid, best, best_idx):
            continue
        y0 = (b // nbx) * block
        x0 = (b % nbx) * block
        tile = (y0, min(y0 + block, h_size), x0, min(x0 + block, w_size))
        best, best_idx = _scan_block(hk, tk, ref, tile, best, best_idx, scratch)
    return best_idx


@kernel(inline="always", no_cpython_wrapper=True)
def _fill(out_kp, p, k, hk, idx, opts):
    """Write the joint found at flat index ``idx`` of ``hk`` as the reference ``opts.mode`` does.

    mmpose 1.x: always, at the integer pixel, scored by its heat. HigherHRNet
    and pose-ae-train: only if its heat is > 0, adjusted and shifted, scored
    by its heat or 1.
    """
    w_size = hk.shape[1]
    y = idx // w_size
    x = idx % w_size
    val = hk[y, x]
    if opts.mode == REFINE_MMPOSE:
        out_kp[p, k, 0] = x
        out_kp[p, k, 1] = y
        out_kp[p, k, 2] = val
    elif val > 0:
        place_joint(out_kp, p, k, hk, (x, y), opts, 1 if opts.mode == REFINE_POSE_AE else val)


@kernel(inline="always", no_cpython_wrapper=True)
def _with_tile_max(stats, tile_max, k):
    """``stats`` with ``hmax`` = row k of the peak search's ``tile_max``, if it has rows."""
    if tile_max.shape[0] == 0:
        return stats
    return TileStats(
        tile_max[k],
        stats.lo,
        stats.hi,
        stats.lo_top,
        stats.hi_top,
        stats.ub,
        stats.cost_all,
        stats.cost_top,
    )


@kernel()
def refine_image(heat, tags, slot, n_people, cand, opts, out, tile_max):
    """Recover the missing joints of the ``n_people`` people of one image, in place.

    For person p and a joint k it misses, the pixel maximising ``heat_k -
    mult * round(||tag_k - ref_p||)`` over the whole map (first in row-major
    order on ties) is found; ``mult`` is 1 for HigherHRNet and pose-ae-train
    and 100 for mmpose 1.x, whose argmin of ``round(dist) * 100 - heat`` is
    the same pixel. ``heat (S, H, W)`` and ``tags (S, D, H, W)`` hold the maps
    of the joints some person misses, joint k at ``slot[k]``; ``cand`` holds
    the candidates of ``find_candidates``, ``out`` the ``People`` of
    ``group_image`` (``kp``, ``ref`` and ``det`` are read; ``kp`` is written).
    ``tile_max (S, n_tiles)``, if it has rows, holds the largest heat of every
    ``block x block`` tile of each map (``peaks.find_candidates``).

    Per joint, one pass over its maps computes tile statistics
    (``tiles.block_stats``); per person, the best score at the joint's
    candidates (usually the answer) gives a first bound, and only tiles whose
    upper bound can still beat it are scanned (:func:`_bounded_search`).

    Returns False, leaving ``out`` partly written, if the maps of a joint it
    searches hold NaN or infinity (``block_stats`` sees every value); True
    otherwise. Those maps are the ones of :func:`joint_missing` joints.
    """
    if opts.mode == REFINE_OFF or n_people == 0:
        return True
    stats, scratch = work_arrays(heat, tags.shape[1], opts)
    have_hmax = tile_max.shape[0] > 0
    for k in range(out.kp.shape[1]):
        if not joint_missing(out.det, n_people, k):
            continue
        hk = heat[slot[k]]
        tk = tags[slot[k]]
        st = _with_tile_max(stats, tile_max, slot[k])
        if not block_stats(hk, tk, st, scratch, have_hmax):
            return False
        cand_k = cand.idx[k, : cand.cnt[k]]
        for p in range(n_people):
            if out.det[p, k] != 0:
                continue
            ref = out.ref[p]
            first = _best_candidate(hk, tk, ref, cand_k, scratch.sq, scratch.mult)
            idx = _bounded_search(hk, tk, ref, first, st, scratch)
            _fill(out.kp, p, k, hk, idx, opts)
    return True


# --- the crowd search inside each person's window --------------------------------------------
@kernel(inline="always", no_cpython_wrapper=True)
def _box_around(x_lo, x_hi, y_lo, y_hi, margin, shape):
    """Return the pixels within ``margin`` of the float box ``[x_lo, x_hi] x [y_lo, y_hi]``.

    A half-open box clipped to a map of ``shape = (H, W)``.
    """
    h_size, w_size = shape
    return (
        max(int(np.floor(x_lo - margin)), 0),
        min(int(np.ceil(x_hi + margin)) + 1, w_size),
        max(int(np.floor(y_lo - margin)), 0),
        min(int(np.ceil(y_hi + margin)) + 1, h_size),
    )


@kernel(no_cpython_wrapper=True)
def _search_box(px, py, has, p, margin, shape):
    """Person p's search box: its joints' box widened by ``margin`` (< 0: the whole map)."""
    if margin < 0:
        return 0, shape[1], 0, shape[0]
    x_lo, x_hi, y_lo, y_hi, _ = joint_box(px, py, has, p)
    return _box_around(x_lo, x_hi, y_lo, y_hi, margin, shape)


@kernel(no_cpython_wrapper=True)
def _gated_box(box, gate, shape):
    """``box`` cut to the pixels that can pass the :class:`Gate`.

    Those lie within ``limit * scale`` of one of the gate's joints; one pixel
    more on each side covers the rounding of the gate's division by the scale.
    """
    if gate.n_refs == 0:
        return box
    x_lo = np.inf
    x_hi = -np.inf
    y_lo = np.inf
    y_hi = -np.inf
    for t in range(gate.n_refs):
        j = gate.refs[t]
        x_lo = min(x_lo, gate.px[gate.p, j])
        x_hi = max(x_hi, gate.px[gate.p, j])
        y_lo = min(y_lo, gate.py[gate.p, j])
        y_hi = max(y_hi, gate.py[gate.p, j])
    g = _box_around(x_lo, x_hi, y_lo, y_hi, gate.limit * gate.scale + 1.0, shape)
    return max(box[0], g[0]), min(box[1], g[1]), max(box[2], g[2]), min(box[3], g[3])


@kernel(no_cpython_wrapper=True)
def _first_answer(hk, tk, ref, cand_idx, box, gate, scratch):
    """Return the best ``(score, flat index)`` of the candidates in ``box`` passing ``gate``.

    ``(hk[0, 0], -1)`` when none does.
    """
    w_size = hk.shape[1]
    x0, x1, y0, y1 = box
    best = hk[0, 0]
    best_idx = -1
    for c in range(cand_idx.shape[0]):
        idx = cand_idx[c]
        y = idx // w_size
        x = idx % w_size
        if x < x0 or x >= x1 or y < y0 or y >= y1:
            continue
        s, _ = pixel_score(hk, tk, ref, (y, x), scratch.sq, scratch.mult, False)
        if _beats(s, idx, best, best_idx) and _passes(gate, x, y):
            best = s
            best_idx = idx
    return best, best_idx


@kernel(no_cpython_wrapper=True)
def _scan_tile_gated(hk, tk, ref, tile, first, scratch, gate):
    """Fold the pixels of ``tile`` (half-open) that pass ``gate`` into the running maximum.

    The gate is tested only where a pixel would win.
    """
    w_size = hk.shape[1]
    y0, _, x0, x1 = tile
    best, best_idx = first
    buf = scratch.buf
    n = tile_scores(hk, tk, ref, tile, scratch, False)
    width = x1 - x0
    for j in range(n):
        v = buf[j]
        if best_idx >= 0 and v < best:
            continue
        y = y0 + j // width
        x = x0 + j % width
        idx = y * w_size + x
        if _beats(v, idx, best, best_idx) and _passes(gate, x, y):
            best = v
            best_idx = idx
    return best, best_idx


@kernel(no_cpython_wrapper=True)
def _scan_window(hk, tk, ref, box, first, stats, scratch, gate):
    """Flat index of the best pixel of ``box`` passing ``gate``, from the answer ``first``.

    The tiles meeting the box, row-major, each scanned (its part inside the
    box) only if its bound can beat the best score so far; -1 if no pixel passes.
    """
    w_size = hk.shape[1]
    block = scratch.block
    nbx = (w_size + block - 1) // block
    x0, x1, y0, y1 = box
    best, best_idx = first
    if x0 >= x1 or y0 >= y1:
        return best_idx
    tile_bounds(stats, ref, scratch, False)
    for ty in range(y0 // block, (y1 - 1) // block + 1):
        for tx in range(x0 // block, (x1 - 1) // block + 1):
            b = ty * nbx + tx
            tile = (
                max(ty * block, y0),
                min(ty * block + block, y1),
                max(tx * block, x0),
                min(tx * block + block, x1),
            )
            first_idx = tile[0] * w_size + tile[2]
            if not _beats(min(stats.hmax[b], stats.ub[b]), first_idx, best, best_idx):
                continue
            best, best_idx = _scan_tile_gated(hk, tk, ref, tile, (best, best_idx), scratch, gate)
    return best_idx


@kernel(no_cpython_wrapper=True)
def _joint_positions(out_pix, n_people, w_size):
    """Pixel columns, rows (float64) and presence ``(P, K)`` of the detected joints."""
    n_joints = out_pix.shape[1]
    px = np.zeros((n_people, n_joints), np.float64)
    py = np.zeros((n_people, n_joints), np.float64)
    has = np.zeros((n_people, n_joints), np.bool_)
    for p in range(n_people):
        for k in range(n_joints):
            idx = out_pix[p, k]
            has[p, k] = idx >= 0
            if idx >= 0:
                px[p, k] = np.float64(idx % w_size)
                py[p, k] = np.float64(idx // w_size)
    return px, py, has


@kernel(no_cpython_wrapper=True)
def _accept(hk, tk, ref, idx, opts, scratch):
    """Whether the crowd search fills the pixel it found at flat index ``idx``.

    Its heat must be > 0 and, with ``refine_tag_gate``, its tag distance below
    ``tag_threshold``.
    """
    w_size = hk.shape[1]
    pixel = (idx // w_size, idx % w_size)
    if not hk[pixel] > 0:
        return False
    if not opts.crowd.refine_tag_gate:
        return True
    _, dist = pixel_score(hk, tk, ref, pixel, scratch.sq, scratch.mult, False)
    return np.float64(dist) < opts.group.tag_threshold


@kernel(no_cpython_wrapper=True)
def climb(hk, idx):
    """Return the local maximum of ``hk`` that steepest ascent from ``idx`` reaches (flat).

    Each step moves to the largest of the 8 neighbours (clipped to the map;
    the first in row-major order among equal ones) while it is strictly
    larger than the current pixel: the peak whose slope the pixel lies on.
    """
    h_size, w_size = hk.shape
    y = idx // w_size
    x = idx % w_size
    while True:
        by = y
        bx = x
        for yy in range(max(y - 1, 0), min(y + 2, h_size)):
            for xx in range(max(x - 1, 0), min(x + 2, w_size)):
                if hk[yy, xx] > hk[by, bx]:
                    by = yy
                    bx = xx
        if by == y and bx == x:
            return y * w_size + x
        y = by
        x = bx


@kernel()
def refine_crowd(heat, tags, n_people, cand, out, out_pix, opts, tile_max):
    """Recover missing joints inside each person's window, where the tag agrees; in place.

    ``out_pix (P, K)`` holds the flat pixel index of each detected joint (-1
    where missing), ``out.ref (P, D)`` the reference tags. For person p and a
    missing joint k, the pixel maximising ``heat_k - round(||tag_k - ref_p||)``
    (work dtype, squares summed over D one by one; first in row-major order)
    is searched in the box of p's detected pixels widened by
    ``refine_window`` times p's scale (``crowd.person_scales``; the whole map
    if ``refine_window < 0``) and, when ``spatial_gate`` is finite and p has
    detected joints linked to k by ``limbs``, among the pixels that pass
    their :class:`Gate`. It is filled if its heat is > 0 and, with
    ``refine_tag_gate``, its distance is ``< tag_threshold``; no pixel passing
    the gate leaves the joint missing. With ``refine_exclusive``,
    ``out_pix[p, k]`` receives the peak a filled joint lies on (:func:`climb`),
    so that ``crowd.select_people`` can remove it where another person holds
    that peak. People whose score is not above ``min_score`` are skipped
    (``crowd.select_people`` drops them). ``tile_max (K, n_tiles)``, if it has
    rows, holds the peak search's largest heat of every tile, as for
    :func:`refine_image`.

    Returns ``(finite, searched)``: ``searched (K,)`` marks the joints whose
    maps the search read whole (the tile statistics), ``finite`` whether their
    tags are finite (False stops the search).

    The steps: the search box (:func:`_search_box`, :func:`_gated_box`), a
    first answer from the type's candidates (:func:`_first_answer`), and the
    box's tiles whose bound can beat it (:func:`_scan_window`). ``opts`` is
    the ``DecodeOptions`` record (its ``crowd``, ``refine`` and ``group``).
    """
    copts = opts.crowd
    searched = np.zeros(heat.shape[0], np.bool_)
    if n_people == 0:
        return True, searched
    shape = heat.shape[1:]
    px, py, has = _joint_positions(out_pix, n_people, shape[1])
    scale = np.ones(n_people, np.float64)
    if copts.refine_window >= 0 or copts.spatial_gate < np.inf:
        person_scales(px, py, has, n_people, scale)
    stats, scratch = work_arrays(heat, tags.shape[1], opts.refine)
    refs = np.empty(has.shape[1], np.int64)
    for k in range(has.shape[1]):
        hk = heat[k]
        tk = tags[k]
        st = _with_tile_max(stats, tile_max, k)
        for p in range(n_people):
            if has[p, k] or not out.score[p] > copts.min_score:  # scores do not change here
                continue
            if not searched[k]:
                if not block_stats(hk, tk, st, scratch, tile_max.shape[0] > 0):
                    return False, searched
                searched[k] = True
            n_refs = (
                linked_joints(has, p, k, copts.limbs, refs) if copts.spatial_gate < np.inf else 0
            )
            gate = Gate(px, py, p, refs, n_refs, scale[p], copts.spatial_gate)
            margin = copts.refine_window * scale[p] if copts.refine_window >= 0 else -1.0
            box = _gated_box(_search_box(px, py, has, p, margin, shape), gate, shape)
            ref = out.ref[p]
            first = _first_answer(hk, tk, ref, cand.idx[k, : cand.cnt[k]], box, gate, scratch)
            idx = _scan_window(hk, tk, ref, box, first, st, scratch, gate)
            if idx < 0 or not _accept(hk, tk, ref, idx, opts, scratch):
                continue
            if copts.refine_exclusive:  # the peak it holds, for crowd.select_people
                out_pix[p, k] = climb(hk, idx)
            x = idx % shape[1]
            y = idx // shape[1]
            unit = opts.refine.mode == REFINE_POSE_AE
            place_joint(out.kp, p, k, hk, (x, y), opts.refine, 1 if unit else hk[y, x])
    return True, searched
