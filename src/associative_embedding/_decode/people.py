"""Grouping of the decoder: people from the matched candidates, written by score (numba).

The kernels follow the reference parsers' numpy code operation by operation
(pose-ae-train ``utils/group.py``, HigherHRNet ``lib/core/group.py``, mmpose
``codecs/associative_embedding.py``), so that results are equal bit for bit:
matching distances are computed in float64 from tags in the work dtype (the
references' joint arrays are float64, their person means keep the tags'
dtype); means and scores are summed in numpy's order (:mod:`._sums`); ``round``
is numpy's round-half-to-even (``np.rint``).

People of one image are written, sorted by score, into a :class:`People` record:
``kp (P, K, 3)`` x, y, score; ``score (P,)``; ``tag (P, D)`` the mean tag of each
person's matched joints; ``ref (P, D)`` the mean tag read at the matched joints
in channel order (the reference tag of the missing-joint search); ``det (P,
K)`` uint8, 1 where joint k was matched, 0 where it is missing.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .jit import kernel
from .matching import TAG_COST_ROUNDED, first_pass, member_mean
from .sums import mean_rows, pairwise_sum

ADJUST_REFERENCE = 0
ADJUST_MMPOSE = 1
ADJUST_SYMMETRIC = 2


class People(NamedTuple):
    """Decoded people of one image (or a batch, with a leading B axis); see the module doc."""

    kp: np.ndarray
    score: np.ndarray
    tag: np.ndarray
    ref: np.ndarray
    det: np.ndarray


def empty_people(lead: tuple[int, ...], cap: int, k: int, d: int, dtype: np.dtype) -> People:
    """Allocate a :class:`People` record with leading axes ``lead`` for ``cap`` people."""
    return People(
        np.empty((*lead, cap, k, 3), dtype),
        np.empty((*lead, cap), dtype),
        np.empty((*lead, cap, d), dtype),
        np.empty((*lead, cap, d), dtype),
        np.zeros((*lead, cap, k), np.uint8),
    )


@kernel(inline="always")
def quarter_offset(nb, pixel, shape, rule):
    """Return the ±0.25 px shift towards the larger neighbour, as ``(dx, dy)``.

    ``nb = (left, right, up, down)``: the heat of the pixel's four neighbours
    (clipped to the map); ``pixel = (x, y)``; ``shape = (H, W)``.

    ``rule`` ADJUST_REFERENCE (pose-ae-train, HigherHRNet, mmpose 0.x): +0.25
    if the right (lower) neighbour is strictly larger than the left (upper)
    one, else -0.25, so ties move by -0.25; neighbours are clipped to the map.
    ADJUST_SYMMETRIC (this library's default): as the reference rule, but ties
    do not move, so a symmetric peak stays at its pixel's centre.
    ADJUST_MMPOSE (mmpose 1.x ``refine_keypoints``): 0.25 times the sign of the
    difference (0 on ties), and no x-shift unless ``1 < x < W - 1`` and
    ``y > 0``, no y-shift unless ``1 < y < H - 1`` and ``x > 0``.
    """
    left, right, up, down = nb
    x, y = pixel
    h_size, w_size = shape
    if rule == ADJUST_REFERENCE:
        dx = 0.25 if right > left else -0.25
        dy = 0.25 if down > up else -0.25
        return dx, dy
    if rule == ADJUST_SYMMETRIC:
        dx = 0.25 if right > left else (-0.25 if right < left else 0.0)
        dy = 0.25 if down > up else (-0.25 if down < up else 0.0)
        return dx, dy
    dx = 0.0
    dy = 0.0
    if 1 < x < w_size - 1 and 0 < y < h_size:
        if right > left:
            dx = 0.25
        elif right < left:
            dx = -0.25
    if 1 < y < h_size - 1 and 0 < x < w_size:
        if down > up:
            dy = 0.25
        elif down < up:
            dy = -0.25
    return dx, dy


@kernel(inline="always", no_cpython_wrapper=True)
def quarter_at(hk, x, y, rule):
    """:func:`quarter_offset` of pixel ``(x, y)`` of one heatmap ``hk (H, W)``."""
    h_size, w_size = hk.shape
    nb = (
        hk[y, max(x - 1, 0)],
        hk[y, min(x + 1, w_size - 1)],
        hk[max(y - 1, 0), x],
        hk[min(y + 1, h_size - 1), x],
    )
    return quarter_offset(nb, (x, y), (h_size, w_size), rule)


@kernel()
def quarter_offsets(maps, xs, ys, rule, out):
    """``out[n] = (dx, dy)``: :func:`quarter_at` of pixel ``(xs[n], ys[n])`` of ``maps[n]``.

    ``maps (N, H, W)``, ``xs``, ``ys (N,)`` int64, ``out (N, 2)`` float64: the
    rule for callers outside the decoder (``single_person.merge_single_person``).
    """
    for n in range(maps.shape[0]):
        dx, dy = quarter_at(maps[n], xs[n], ys[n], rule)
        out[n, 0] = dx
        out[n, 1] = dy


# --- grouping -----------------------------------------------------------------------------
@kernel(inline="always")
def group_image(cand, h_size, w_size, order, opts, out):
    """Group one image's candidates into people; write them sorted by score.

    The references' matching pass (``_matching.first_pass`` with the rounded
    cost ``round(dist) * 100 - value``, or ``dist``, solved with the choices of
    munkres 1.1.4, or greedily), then :func:`write_people`. Returns the number
    of people written (at most ``out.kp.shape[0]``).
    """
    n_joints, m_size = cand.val.shape
    joint_of = np.empty((max(n_joints * m_size, 1), n_joints), np.int64)
    n_people = first_pass(cand, order, opts, TAG_COST_ROUNDED, joint_of, None)
    n_keep = n_people if opts.max_out < 0 else min(n_people, opts.max_out)
    out_pix = np.empty((max(min(n_keep, out.kp.shape[0]), 1), n_joints), np.int64)
    return write_people(joint_of, n_keep, cand, (h_size, w_size), order, opts, out, out_pix)


@kernel()
def place_joint(out_kp, p, k, hk, pixel, r, score):
    """Write a recovered joint at ``pixel = (x, y)`` of map ``hk``: adjusted, shifted, scored.

    ``r`` is the ``RefineOptions`` record (``adjust``, ``adjust_rule``,
    ``center_shift``).
    """
    x, y = pixel
    dx = 0.0
    dy = 0.0
    if r.adjust:
        dx, dy = quarter_at(hk, x, y, r.adjust_rule)
    out_kp[p, k, 0] = (x + dx) + r.center_shift
    out_kp[p, k, 1] = (y + dy) + r.center_shift
    out_kp[p, k, 2] = score


@kernel()
def write_people(joint_of, n_keep, cand, shape, order, opts, out, out_pix):
    """Write the first ``n_keep`` people of ``joint_of (P, K)`` (candidate rows, -1: none).

    People are ranked by score (the pairwise mean of the K detection values,
    0 where missing; ties in creation order) and written into ``out`` as the
    module doc describes: adjusted coordinates, the mean tag of their
    candidates in joint ``order`` (the order they joined), the reference tag
    over the matched joints in channel order. ``out_pix (P, K)`` receives the
    flat pixel index of each matched joint (-1 where missing). Returns the
    number written (at most ``out.kp.shape[0]``).
    """
    cand_val = cand.val
    cand_idx = cand.idx
    cand_tag = cand.tag
    cand_nb = cand.nb
    out_kp = out.kp
    out_score = out.score
    out_tag = out.tag
    out_ref = out.ref
    out_det = out.det
    n_joints = cand_val.shape[0]
    dim = cand_tag.shape[2]
    adjust = opts.adjust
    adjust_rule = opts.adjust_rule
    shift = opts.center_shift
    buf = np.empty(max(n_joints, 1), cand_tag.dtype)
    n_keep = min(n_keep, out_kp.shape[0])
    scores = np.empty(n_keep, out_score.dtype)
    joint_scores = np.empty(max(n_joints, 1), out_score.dtype)
    for p in range(n_keep):
        for k in range(n_joints):
            r = joint_of[p, k]
            if r >= 0:
                joint_scores[k] = cand_val[k, r]
            else:
                joint_scores[k] = 0
        scores[p] = pairwise_sum(joint_scores, 0, n_joints) / n_joints
    # rank by score, descending, ties in creation order (a stable insertion sort: P is small)
    rank = np.empty(n_keep, np.int64)
    for p in range(n_keep):
        s_p = scores[p]
        i = p
        while i > 0 and scores[rank[i - 1]] < s_p:
            rank[i] = rank[i - 1]
            i -= 1
        rank[i] = p
    ref_rows = np.empty((max(n_joints, 1), dim), cand_tag.dtype)
    for i in range(n_keep):
        p = rank[i]
        out_score[i] = scores[p]
        member_mean(joint_of, p, cand_tag, order, ref_rows, buf, out_tag[i])
        n_det = 0
        for k in range(n_joints):
            r = joint_of[p, k]
            if r < 0:
                out_kp[i, k, 0] = np.nan
                out_kp[i, k, 1] = np.nan
                out_kp[i, k, 2] = 0
                out_det[i, k] = 0
                out_pix[i, k] = -1
                continue
            idx = cand_idx[k, r]
            y = idx // shape[1]
            x = idx % shape[1]
            dx = 0.0
            dy = 0.0
            if adjust:
                nb = (cand_nb[k, r, 0], cand_nb[k, r, 1], cand_nb[k, r, 2], cand_nb[k, r, 3])
                dx, dy = quarter_offset(nb, (x, y), shape, adjust_rule)
            out_kp[i, k, 0] = (x + dx) + shift
            out_kp[i, k, 1] = (y + dy) + shift
            out_kp[i, k, 2] = cand_val[k, r]
            out_det[i, k] = 1
            out_pix[i, k] = idx
            for d in range(dim):
                ref_rows[n_det, d] = cand_tag[k, r, d]
            n_det += 1
        mean_rows(ref_rows, n_det, out_ref[i], buf)
    return n_keep
