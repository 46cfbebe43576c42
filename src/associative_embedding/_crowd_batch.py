"""Numba kernels of the crowd options, second half: refine, selection, whole images.

The missing-joint search inside each person's window (``refine_window``,
``refine_tag_gate``), person selection (``min_score``, ``pose_nms``), and one
image or a batch end to end with every crowd option.

The first half, the matching (``tag_cost``, ``regroup`` with its spatial term), is in
``_crowd.py``; ``tests/reference_crowd.py`` is the slow plain-Python version of both.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ._crowd import _joint_box, linked_joints, nearest, person_scales, regroup
from ._grouping import People, place_joint, write_people
from ._matching import first_pass
from ._peaks import image_candidates
from ._refine import (
    REFINE_OFF,
    REFINE_POSE_AE,
    _tile_scores,
    block_stats,
    refine_image,
    work_arrays,
)


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _pixel_score(hk, tk, ref, y, x):
    """Return ``(heat - round(d), d)`` at pixel (x, y), as ``_refine._tile_scores`` computes it."""
    a = tk[0, y, x] - ref[0]
    s = a * a
    for d in range(1, tk.shape[0]):
        a = tk[d, y, x] - ref[d]
        s = s + a * a
    dist = np.sqrt(s)
    return hk[y, x] - np.rint(dist), dist


@njit(inline="always", cache=True, nogil=True, no_cfunc_wrapper=True)
def _tile_cost(lo, hi, b, ref):
    """Lower bound of ``round(||t - ref||)`` over the tag box ``[lo[:, b], hi[:, b]]``.

    The gap to the box in each dimension, squared and summed one by one as
    ``_refine._tile_scores`` sums the squares: every operation is monotone, so no
    tag in the box has a smaller rounded distance.
    """
    z = ref[0] - ref[0]
    g = max(max(lo[0, b] - ref[0], ref[0] - hi[0, b]), z)
    s = g * g
    for d in range(1, ref.shape[0]):
        g = max(max(lo[d, b] - ref[d], ref[d] - hi[d, b]), z)
        s = s + g * g
    return np.rint(np.sqrt(s))


@njit(inline="always", cache=True, nogil=True, no_cfunc_wrapper=True)
def _tile_bound(hmax, lo, hi, lo_top, hi_top, b, ref, half):
    """Upper bound of ``heat - round(||tag - ref||)`` in tile b (as ``_refine._bounds``).

    The arrays are those of ``_refine.TileStats``.
    """
    h = hmax[b]
    a = h - _tile_cost(lo_top, hi_top, b, ref)
    c = h * half - _tile_cost(lo, hi, b, ref)
    return a if a > c else c


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def refine_crowd(heat, tags, n_people, cand, out, out_pix, copts, r, tag_threshold):
    """Recover missing joints inside each person's window, where the tag agrees; in place.

    ``out_pix (P, K)`` holds the flat pixel index of each detected joint (-1
    where missing), ``out_ref (P, D)`` the reference tags (mean of the tags at
    the detected pixels). For person p and a missing joint k, the pixel
    maximising ``heat_k - round(||tag_k - ref_p||)`` (work dtype, squares
    summed over D one by one; first in row-major order) is searched in the
    box of p's detected pixels widened by ``window`` times p's scale
    (:func:`person_scales`; the whole map if ``window < 0``), and when
    ``spatial_gate`` is finite and p has detected joints linked to k by
    ``limbs``, among the pixels whose distance to the nearest of them over
    p's scale is below ``spatial_gate``; it is filled if its heat is > 0 and,
    with ``tag_gate``, its distance is ``< tag_threshold``. No pixel passing
    the gate leaves the joint missing. People whose score is not above
    ``min_score`` are skipped (:func:`select_people` drops them).

    The search is exact and bounded as ``_refine.refine_image``'s: per joint
    type, tile statistics of its maps (``_refine.block_stats``); per person,
    the best score at the type's candidates ``cand`` inside the search box
    and the gate gives a first answer, and only the tiles of the box whose
    upper bound can still beat it are scanned, the most promising first, a
    row at a time, the gate tested only where a pixel would win.
    ``heat (K, H, W)`` and ``tags (K, D, H, W)`` are the image's maps; ``out``
    the ``People`` record; ``copts`` the :class:`CrowdOptions` (``refine_window``,
    ``refine_tag_gate``), ``r`` the ``RefineOptions`` (adjust rule, centre shift,
    score 1 for pose-ae-train, tile side, ``top_min``, ``mult`` = 1).
    """
    out_kp = out.kp
    out_ref = out.ref
    window = copts.refine_window
    tag_gate = copts.refine_tag_gate
    unit_score = r.mode == REFINE_POSE_AE
    if n_people == 0:
        return
    _, h_size, w_size = heat.shape
    dim = tags.shape[1]
    n_joints = out_kp.shape[1]
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
    gate = copts.spatial_gate
    scale = np.ones(n_people, np.float64)
    if window >= 0 or gate < np.inf:
        person_scales(px, py, has, n_people, scale)
    # each searched person's box (x0, x1, y0, y1), inclusive
    box = np.empty((n_people, 4), np.int64)
    searched = np.zeros(n_people, np.bool_)
    for p in range(n_people):
        searched[p] = out.score[p] > copts.min_score  # scores do not change here
        box[p, 0] = 0
        box[p, 1] = w_size - 1
        box[p, 2] = 0
        box[p, 3] = h_size - 1
        if window >= 0:
            m = window * scale[p]
            lx, hx, ly, hy, _ = _joint_box(px, py, has, p)
            box[p, 0] = max(int(np.floor(lx - m)), 0)
            box[p, 1] = min(int(np.ceil(hx + m)), w_size - 1)
            box[p, 2] = max(int(np.floor(ly - m)), 0)
            box[p, 3] = min(int(np.ceil(hy + m)), h_size - 1)
    block = r.block
    nbx = (w_size + block - 1) // block
    stats, scratch = work_arrays(heat, dim, block, r.top_min)
    half = scratch.consts[1]
    hmax, lo, hi, lo_top, hi_top = stats[:5]  # locals: no tuple access in the loops
    refs = np.empty(n_joints, np.int64)
    buf = scratch.buf
    cand_idx = cand.idx
    for k in range(n_joints):
        missing = False
        for p in range(n_people):
            if searched[p] and not has[p, k]:
                missing = True
                break
        if not missing:
            continue
        hk = heat[k]
        tk = tags[k]
        block_stats(hk, tk, block, stats, scratch, False)
        for p in range(n_people):
            if not searched[p] or has[p, k]:
                continue
            ref = out_ref[p]
            sp = scale[p]
            x0 = box[p, 0]
            x1 = box[p, 1]
            y0 = box[p, 2]
            y1 = box[p, 3]
            n_refs = linked_joints(has, p, k, copts.limbs, refs) if gate < np.inf else 0
            if n_refs > 0:  # only rows and columns that can pass the gate
                reach = gate * sp
                cy0 = np.inf
                cy1 = -np.inf
                cx0 = np.inf
                cx1 = -np.inf
                for t in range(n_refs):
                    cy0 = min(cy0, py[p, refs[t]])
                    cy1 = max(cy1, py[p, refs[t]])
                    cx0 = min(cx0, px[p, refs[t]])
                    cx1 = max(cx1, px[p, refs[t]])
                y0 = max(y0, int(np.floor(cy0 - reach)) - 1)
                y1 = min(y1, int(np.ceil(cy1 + reach)) + 1)
                x0 = max(x0, int(np.floor(cx0 - reach)) - 1)
                x1 = min(x1, int(np.ceil(cx1 + reach)) + 1)
            # the type's candidates inside the box and the gate: a first answer
            best = hk[0, 0]
            best_idx = -1
            for c in range(cand.cnt[k]):
                idx = cand_idx[k, c]
                y = idx // w_size
                x = idx % w_size
                if x < x0 or x > x1 or y < y0 or y > y1:
                    continue
                s, _ = _pixel_score(hk, tk, ref, y, x)
                if (best_idx < 0 or s > best or (s == best and idx < best_idx)) and (
                    n_refs == 0 or nearest(px, py, p, refs, n_refs, x, y) / sp < gate
                ):
                    best = s
                    best_idx = idx
            # the box's tiles, row-major, scanned if their bound can beat the best score
            for ty in range(y0 // block, y1 // block + 1):
                for tx in range(x0 // block, x1 // block + 1):
                    b = ty * nbx + tx
                    ty0 = max(ty * block, y0)
                    ty1 = min(ty * block + block - 1, y1)
                    tx0 = max(tx * block, x0)
                    tx1 = min(tx * block + block - 1, x1)
                    first = ty0 * w_size + tx0
                    if best_idx >= 0:
                        u = hmax[b]  # no score is above the heat
                        if u < best or (u == best and first > best_idx):
                            continue
                        u = _tile_bound(hmax, lo, hi, lo_top, hi_top, b, ref, half)
                        if u < best or (u == best and first > best_idx):
                            continue
                    # r.mult is 1: the crowd search takes refine_mode higherhrnet or pose-ae-train
                    tile = (ty0, ty1 + 1, tx0, tx1 + 1)
                    n = _tile_scores(hk, tk, ref, r.mult, tile, scratch, False)
                    width = tx1 - tx0 + 1
                    for j in range(n):
                        v = buf[j]
                        if best_idx >= 0 and v < best:
                            continue
                        y = ty0 + j // width
                        x = tx0 + j % width
                        idx = y * w_size + x
                        # the gate only where the pixel would win
                        if (best_idx < 0 or v > best or idx < best_idx) and (
                            n_refs == 0 or nearest(px, py, p, refs, n_refs, x, y) / sp < gate
                        ):
                            best = v
                            best_idx = idx
            if best_idx < 0:
                continue
            by = best_idx // w_size
            bx = best_idx % w_size
            val = hk[by, bx]
            if not val > 0:
                continue
            if tag_gate:
                _, bdist = _pixel_score(hk, tk, ref, by, bx)
                if not np.float64(bdist) < tag_threshold:
                    continue
            place_joint(out_kp, p, k, hk, bx, by, r, 1 if unit_score else val)


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def select_people(out_kp, out_score, out_tag, n_people, min_score, nms_threshold, sigmas):
    """Keep the people scoring above ``min_score`` that no kept one duplicates; return the count.

    People are in score order. With ``nms_threshold >= 0``, person i is
    dropped if its OKS with a person kept before it exceeds the threshold:
    ``sum_k exp(-d_k**2 / (2 * area * (2 * sigma_k)**2)) / J`` over the J
    joints both have (none: not a duplicate), ``area`` the product of the
    sides of the kept person's joint box, at least 1 (float64). Kept people
    move to the front of the arrays, in order.
    """
    n_joints = out_kp.shape[1]
    kept = np.empty(max(n_people, 1), np.int64)
    n_kept = 0
    for i in range(n_people):
        if not out_score[i] > min_score:
            continue
        dup = False
        if nms_threshold >= 0:
            for t in range(n_kept):
                j = kept[t]
                x0 = np.inf
                x1 = -np.inf
                y0 = np.inf
                y1 = -np.inf
                for k in range(n_joints):
                    ax = np.float64(out_kp[j, k, 0])
                    if np.isfinite(ax):
                        ay = np.float64(out_kp[j, k, 1])
                        x0 = min(x0, ax)
                        x1 = max(x1, ax)
                        y0 = min(y0, ay)
                        y1 = max(y1, ay)
                area = max((x1 - x0) * (y1 - y0), 1.0)
                total = 0.0
                count = 0
                for k in range(n_joints):
                    ax = np.float64(out_kp[j, k, 0])
                    bx = np.float64(out_kp[i, k, 0])
                    if np.isfinite(ax) and np.isfinite(bx):
                        ddx = ax - bx
                        ddy = np.float64(out_kp[j, k, 1]) - np.float64(out_kp[i, k, 1])
                        d2 = ddx * ddx + ddy * ddy
                        s2 = 2.0 * sigmas[k]
                        total += np.exp(-d2 / (2.0 * area * (s2 * s2)))
                        count += 1
                if count > 0 and total / count > nms_threshold:
                    dup = True
                    break
        if dup:
            continue
        kept[n_kept] = i
        n_kept += 1
    for t in range(n_kept):
        i = kept[t]
        if i != t:
            out_kp[t] = out_kp[i]
            out_score[t] = out_score[i]
            out_tag[t] = out_tag[i]
    return n_kept


# --- whole images -------------------------------------------------------------------------
class CrowdOptions(NamedTuple):
    """The crowd options, as the kernels read them (built by ``decoding._crowd_options``).

    ``tag_cost`` a TAG_COST_* code; ``regroup`` rounds; ``spatial_weight``;
    ``spatial_gate`` (inf: off); ``limbs`` ``(K, K)`` bool, the joint types
    linked by a limb (all False: any other type); ``refine_window`` (< 0: the whole map);
    ``refine_tag_gate``; ``crowd_refine`` whether :func:`refine_crowd` replaces
    the references' search; ``min_score``; ``pose_nms`` (< 0: off); ``sigmas``
    ``(K,)`` float64, the OKS constants of the pose NMS.
    """

    tag_cost: int
    regroup: int
    spatial_weight: float
    spatial_gate: float
    limbs: np.ndarray
    refine_window: float
    refine_tag_gate: bool
    crowd_refine: bool
    min_score: float
    pose_nms: float
    sigmas: np.ndarray


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def decode_image_crowd(heat, tags, order, opts, copts, out):
    """Decode one image with the crowd options into the People record ``out``; return P.

    Candidates as ``_batch.decode_image``; :func:`first_pass`, then
    :func:`regroup`; ``_grouping.write_people``; the missing-joint search
    (:func:`refine_crowd` with a window or tag gate, else
    ``_refine.refine_image``); :func:`select_people`.
    """
    n_joints, h_size, w_size = heat.shape
    m_size = opts.max_candidates
    cand = image_candidates(heat, tags, m_size, opts.detection_threshold, opts.nms_kernel)
    g = opts.group
    joint_of = np.empty((max(n_joints * m_size, 1), n_joints), np.int64)
    n = first_pass(cand, order, g, copts.tag_cost, joint_of, True)
    if copts.regroup > 0:
        n = regroup(cand, w_size, order, joint_of, n, g, copts)
    n_keep = n if g.max_out < 0 else min(n, g.max_out)
    out_pix = np.empty((out.kp.shape[0], n_joints), np.int64)
    n = write_people(joint_of, n_keep, cand, h_size, w_size, order, g, out, out_pix)
    r = opts.refine
    if r.mode != REFINE_OFF:
        if copts.crowd_refine:
            refine_crowd(heat, tags, n, cand, out, out_pix, copts, r, g.tag_threshold)
        else:
            slot = np.empty(n_joints, np.int64)
            for k in range(n_joints):
                slot[k] = k
            refine_image(heat, tags, slot, n, cand, r, out, np.empty((0, 1), heat.dtype))
    return select_people(
        out.kp, out.score, out.tag, n, copts.min_score, copts.pose_nms, copts.sigmas
    )


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def decode_range_crowd(heat, tags, order, opts, copts, span, out, out_n):
    """:func:`decode_image_crowd` on images ``span = (start, stop)`` of a batch."""
    for b in range(span[0], span[1]):
        people = People(out.kp[b], out.score[b], out.tag[b], out.ref[b], out.det[b])
        out_n[b] = decode_image_crowd(heat[b], tags[b], order, opts, copts, people)
