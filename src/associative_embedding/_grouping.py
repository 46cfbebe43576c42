"""Grouping of the decoder: joint-by-joint matching of candidates to people (numba).

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
from numba import njit

from ._munkres import munkres_assign
from ._sums import mean_rows, pairwise_sum

MATCH_HUNGARIAN = 0
MATCH_GREEDY = 1
ADJUST_REFERENCE = 0
ADJUST_MMPOSE = 1

# the references pad the cost matrix with this value when candidates outnumber people
PAD_COST = 1e10


class GroupOptions(NamedTuple):
    """The grouping options, as the kernels read them (built by ``decoding._options``).

    ``matching`` MATCH_HUNGARIAN or MATCH_GREEDY; ``use_value`` the cost
    ``round(dist) * 100 - value``; ``use_rms`` divide the squared distance by D;
    ``match_cap`` people taking part in matching (-1: all); ``ignore_too_much``
    skip a joint type once ``max_people`` people exist; ``max_out`` people kept,
    in creation order (-1: all); ``adjust`` / ``adjust_rule`` the quarter-pixel
    move; ``tag_threshold``; ``center_shift`` added to output coordinates.
    """

    matching: int
    use_value: bool
    use_rms: bool
    match_cap: int
    ignore_too_much: bool
    max_people: int
    max_out: int
    adjust: bool
    adjust_rule: int
    tag_threshold: float
    center_shift: float


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


@njit(inline="always", cache=True, nogil=True)
def quarter_offset(left, right, up, down, x, y, h_size, w_size, rule):
    """Return the ±0.25 px shift towards the larger neighbour, as ``(dx, dy)``.

    ``rule`` ADJUST_REFERENCE (pose-ae-train, HigherHRNet, mmpose 0.x): +0.25
    if the right (lower) neighbour is strictly larger than the left (upper)
    one, else -0.25, so ties move by -0.25; neighbours are clipped to the map.
    ADJUST_MMPOSE (mmpose 1.x ``refine_keypoints``): 0.25 times the sign of the
    difference (0 on ties), and no x-shift unless ``1 < x < W - 1`` and
    ``y > 0``, no y-shift unless ``1 < y < H - 1`` and ``x > 0``.
    """
    if rule == ADJUST_REFERENCE:
        dx = 0.25 if right > left else -0.25
        dy = 0.25 if down > up else -0.25
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


@njit(inline="always", cache=True, nogil=True)
def quarter_at(hk, x, y, rule):
    """:func:`quarter_offset` of pixel ``(x, y)`` of one heatmap ``hk (H, W)``."""
    h_size, w_size = hk.shape
    return quarter_offset(
        hk[y, max(x - 1, 0)],
        hk[y, min(x + 1, w_size - 1)],
        hk[max(y - 1, 0), x],
        hk[min(y + 1, h_size - 1), x],
        x,
        y,
        h_size,
        w_size,
        rule,
    )


# --- grouping -----------------------------------------------------------------------------
@njit(inline="always", cache=True, nogil=True)
def _distance(cand_tag, k, r, means, c, use_rms, sq):
    """float64 distance between candidate ``r`` of joint ``k`` and person mean ``c``."""
    dim = means.shape[1]
    for d in range(dim):
        diff = np.float64(cand_tag[k, r, d]) - np.float64(means[c, d])
        sq[d] = diff * diff
    s = pairwise_sum(sq, 0, dim)
    if use_rms:
        s = s / dim
    return np.sqrt(s)


@njit(cache=True, nogil=True)
def group_image(cand, h_size, w_size, order, opts, out):
    """Group one image's candidates into people; write them sorted by score.

    Walks the joint types in ``order``. The candidates of the first joint type
    with any start one person each; later joint types are matched to the
    people that take part in matching (the first ``opts.match_cap`` in
    creation order, or all) by the Hungarian method on the cost
    ``round(dist) * 100 - value`` (or ``dist``), solved with the same choices as
    munkres 1.1.4, or greedily; a candidate joins its person when the raw
    distance is below the tag threshold and otherwise starts a new one. Returns
    the number of people written (at most ``out.kp.shape[0]``).
    """
    cand_val = cand.val
    cand_cnt = cand.cnt
    cand_tag = cand.tag
    out_kp = out.kp
    n_joints, m_size = cand_val.shape
    dim = cand_tag.shape[2]
    matching = opts.matching
    use_value = opts.use_value
    use_rms = opts.use_rms
    match_cap = opts.match_cap
    ignore_too_much = opts.ignore_too_much
    max_people = opts.max_people
    max_out = opts.max_out
    tag_threshold = opts.tag_threshold

    cap = n_joints * m_size
    joint_of = np.empty((max(cap, 1), n_joints), np.int64)
    joint_of[:] = -1
    members = np.empty((max(cap, 1), n_joints, dim), cand_tag.dtype)
    n_members = np.zeros(max(cap, 1), np.int64)
    means = np.empty((max(cap, 1), dim), cand_tag.dtype)
    buf = np.empty(max(n_joints, 1), cand_tag.dtype)
    sq = np.empty(max(dim, 1), np.float64)
    n_people = 0

    for j in range(n_joints):
        k = order[j]
        n_rows = cand_cnt[k]
        if n_rows == 0:
            continue
        if n_people > 0:
            if ignore_too_much and n_people >= max_people:
                continue
            n_cols = n_people if match_cap < 0 else min(n_people, match_cap)
            for c in range(n_cols):
                mean_rows(members[c], n_members[c], means[c], buf)
            dist = np.empty((n_rows, n_cols), np.float64)
            for r in range(n_rows):
                for c in range(n_cols):
                    dist[r, c] = _distance(cand_tag, k, r, means, c, use_rms, sq)
            col_of_row = np.empty(n_rows, np.int64)
            col_of_row[:] = -1
            if matching == MATCH_HUNGARIAN:
                width = max(n_rows, n_cols)
                cost = np.empty((n_rows, width), np.float64)
                for r in range(n_rows):
                    val = np.float64(cand_val[k, r])
                    for c in range(n_cols):
                        if use_value:
                            cost[r, c] = np.rint(dist[r, c]) * 100.0 - val
                        else:
                            cost[r, c] = dist[r, c]
                    for c in range(n_cols, width):
                        cost[r, c] = PAD_COST
                munkres_assign(cost, col_of_row)
            else:
                claimed = np.zeros(n_rows, np.bool_)
                for c in range(n_cols):
                    for r in range(n_rows):
                        if not claimed[r] and dist[r, c] < tag_threshold:
                            claimed[r] = True
                            col_of_row[r] = c
                            break
            for r in range(n_rows):
                c = col_of_row[r]
                if 0 <= c < n_cols and dist[r, c] < tag_threshold:
                    p = c
                else:
                    p = n_people
                    n_people += 1
                joint_of[p, k] = r
                for d in range(dim):
                    members[p, n_members[p], d] = cand_tag[k, r, d]
                n_members[p] += 1
        else:
            for r in range(n_rows):
                p = n_people
                n_people += 1
                joint_of[p, k] = r
                for d in range(dim):
                    members[p, 0, d] = cand_tag[k, r, d]
                n_members[p] = 1

    n_keep = n_people if max_out < 0 else min(n_people, max_out)
    out_pix = np.empty((max(min(n_keep, out_kp.shape[0]), 1), n_joints), np.int64)
    return write_people(joint_of, n_keep, cand, h_size, w_size, order, opts, out, out_pix)


@njit(cache=True, nogil=True)
def member_mean(joint_of, p, cand_tag, order, rows, buf, out):
    """``out`` = numpy mean of person p's candidate tags, taken in joint ``order``.

    ``joint_of (P, K)`` holds candidate rows (-1: none); ``rows (>= K, D)`` and
    ``buf (>= K,)`` are scratch. Person p must have a joint.
    """
    dim = cand_tag.shape[2]
    n = 0
    for j in range(order.shape[0]):
        k = order[j]
        r = joint_of[p, k]
        if r >= 0:
            for d in range(dim):
                rows[n, d] = cand_tag[k, r, d]
            n += 1
    mean_rows(rows, n, out, buf)


@njit(cache=True, nogil=True)
def place_joint(out_kp, p, k, hk, x, y, r, score):
    """Write a recovered joint at pixel ``(x, y)`` of map ``hk``: adjusted, shifted, scored.

    ``r`` is the ``RefineOptions`` record (``adjust``, ``adjust_rule``,
    ``center_shift``).
    """
    dx = 0.0
    dy = 0.0
    if r.adjust:
        dx, dy = quarter_at(hk, x, y, r.adjust_rule)
    out_kp[p, k, 0] = (x + dx) + r.center_shift
    out_kp[p, k, 1] = (y + dy) + r.center_shift
    out_kp[p, k, 2] = score


@njit(cache=True, nogil=True)
def write_people(joint_of, n_keep, cand, h_size, w_size, order, opts, out, out_pix):
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
            y = idx // w_size
            x = idx % w_size
            dx = 0.0
            dy = 0.0
            if adjust:
                dx, dy = quarter_offset(
                    cand_nb[k, r, 0],
                    cand_nb[k, r, 1],
                    cand_nb[k, r, 2],
                    cand_nb[k, r, 3],
                    x,
                    y,
                    h_size,
                    w_size,
                    adjust_rule,
                )
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
