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
from ._refine import REFINE_OFF, REFINE_POSE_AE, refine_image


@njit(cache=True, nogil=True)
def _row_scores(h_row, t_row, ref, x0, x1, sbuf, dbuf):
    """Score pixels x0..x1 of one row: ``heat - round(||tag - ref||)``; return their number.

    ``h_row (W,)``, ``t_row (D, W)``; writes the scores to ``sbuf`` and the
    distances to ``dbuf`` (work dtype, squares summed over D one by one) from
    index 0.
    """
    n = x1 - x0 + 1
    t0 = t_row[0]
    r0 = ref[0]
    for i in range(n):
        a = t0[x0 + i] - r0
        sbuf[i] = a * a
    for d in range(1, t_row.shape[0]):
        td = t_row[d]
        rd = ref[d]
        for i in range(n):
            a = td[x0 + i] - rd
            sbuf[i] = sbuf[i] + a * a
    for i in range(n):
        dist = np.sqrt(sbuf[i])
        dbuf[i] = dist
        sbuf[i] = h_row[x0 + i] - np.rint(dist)
    return n


@njit(cache=True, nogil=True)
def refine_crowd(heat, tags, n_people, out, out_pix, copts, r, tag_threshold):
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
    with ``tag_gate``, its distance is ``< tag_threshold``. The first pixel
    of the search is the best until a better one comes; none passing the
    gate leaves the joint missing. Scores are computed a row at a time and
    the gate only where a pixel would win. People whose score is not above
    ``min_score`` are skipped (:func:`select_people` drops them).
    ``heat (K, H, W)`` and ``tags (K, D, H, W)`` are the image's maps; ``out``
    the ``People`` record; ``copts`` the :class:`CrowdOptions` (``refine_window``,
    ``refine_tag_gate``), ``r`` the ``RefineOptions`` (adjust rule, centre shift,
    score 1 for pose-ae-train).
    """
    out_kp = out.kp
    out_ref = out.ref
    window = copts.refine_window
    tag_gate = copts.refine_tag_gate
    unit_score = r.mode == REFINE_POSE_AE
    if n_people == 0:
        return
    _, h_size, w_size = heat.shape
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
    refs = np.empty(n_joints, np.int64)
    sbuf = np.empty(w_size, heat.dtype)
    dbuf = np.empty(w_size, heat.dtype)
    for p in range(n_people):
        if not out.score[p] > copts.min_score:
            continue  # dropped by select_people (scores do not change here)
        x0 = 0
        x1 = w_size - 1
        y0 = 0
        y1 = h_size - 1
        if window >= 0:
            m = window * scale[p]
            lx, hx, ly, hy, _ = _joint_box(px, py, has, p)
            x0 = max(int(np.floor(lx - m)), 0)
            x1 = min(int(np.ceil(hx + m)), w_size - 1)
            y0 = max(int(np.floor(ly - m)), 0)
            y1 = min(int(np.ceil(hy + m)), h_size - 1)
        ref = out_ref[p]
        sp = scale[p]
        for k in range(n_joints):
            if has[p, k]:
                continue
            hk = heat[k]
            tk = tags[k]
            n_refs = linked_joints(has, p, k, copts.limbs, refs) if gate < np.inf else 0
            ly0 = y0
            ly1 = y1
            lx0 = x0
            lx1 = x1
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
                ly0 = max(y0, int(np.floor(cy0 - reach)) - 1)
                ly1 = min(y1, int(np.ceil(cy1 + reach)) + 1)
                lx0 = max(x0, int(np.floor(cx0 - reach)) - 1)
                lx1 = min(x1, int(np.ceil(cx1 + reach)) + 1)
            best = hk[0, 0]
            by = -1
            bx = -1
            bdist = hk[0, 0]
            for y in range(ly0, ly1 + 1):
                n = _row_scores(hk[y], tk[:, y], ref, lx0, lx1, sbuf, dbuf)
                for i in range(n):
                    # the gate only where the pixel would win
                    if (by < 0 or sbuf[i] > best) and (
                        n_refs == 0 or nearest(px, py, p, refs, n_refs, lx0 + i, y) / sp < gate
                    ):
                        best = sbuf[i]
                        by = y
                        bx = lx0 + i
                        bdist = dbuf[i]
            if by < 0:
                continue
            val = hk[by, bx]
            if not val > 0:
                continue
            if tag_gate and not np.float64(bdist) < tag_threshold:
                continue
            place_joint(out_kp, p, k, hk, bx, by, r, 1 if unit_score else val)


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
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
    n = first_pass(cand, order, g, copts.tag_cost, joint_of)
    if copts.regroup > 0:
        n = regroup(cand, w_size, order, joint_of, n, g, copts)
    n_keep = n if g.max_out < 0 else min(n, g.max_out)
    out_pix = np.empty((out.kp.shape[0], n_joints), np.int64)
    n = write_people(joint_of, n_keep, cand, h_size, w_size, order, g, out, out_pix)
    r = opts.refine
    if r.mode != REFINE_OFF:
        if copts.crowd_refine:
            refine_crowd(heat, tags, n, out, out_pix, copts, r, g.tag_threshold)
        else:
            slot = np.empty(n_joints, np.int64)
            for k in range(n_joints):
                slot[k] = k
            refine_image(heat, tags, slot, n, cand, r, out)
    return select_people(
        out.kp, out.score, out.tag, n, copts.min_score, copts.pose_nms, copts.sigmas
    )


@njit(cache=True, nogil=True)
def decode_range_crowd(heat, tags, order, opts, copts, span, out, out_n):
    """:func:`decode_image_crowd` on images ``span = (start, stop)`` of a batch."""
    for b in range(span[0], span[1]):
        people = People(out.kp[b], out.score[b], out.tag[b], out.ref[b], out.det[b])
        out_n[b] = decode_image_crowd(heat[b], tags[b], order, opts, copts, people)
