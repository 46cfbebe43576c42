"""Numba kernels of the crowd grouping options (``docs/grouping_modes.md``).

The references' grouping is one greedy pass over the joint types; these kernels
add what :class:`~associative_embedding.DecodeConfig` switches on beyond it:

- in ``_matching.py`` (shared with the references' grouping): ``match_cost``, the
  matching cost of a tag distance (``tag_cost``), and ``first_pass``;
- :func:`regroup`: rounds of re-assignment of every candidate to the people of
  the previous round, with a spatial term (``regroup``, ``spatial_weight``,
  ``spatial_gate``);
- in ``_crowd_batch.py``: ``refine_crowd``, the missing-joint search inside each
  person's widened joint box, near the joints linked to the missing one, filled
  only where the tag agrees (``refine_window``, ``spatial_gate``,
  ``refine_tag_gate``); ``select_people``, a person-score threshold and a greedy
  OKS pose NMS (``min_score``, ``pose_nms``); one image or a batch end to end.

Array layouts are those of ``_peaks`` and ``_grouping`` (candidates ``(K, M, ...)`` of one
image, people ``joint_of (P, K)`` holding a candidate row or -1). Every float
operation follows ``tests/reference_crowd.py`` operation by operation, so that
results are equal bit for bit: tag means in the maps' dtype with numpy's
summation order (``mean_rows``), distances and the spatial term in float64,
the missing-joint score in the maps' dtype.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._matching import _distance, _work, assign_feasible, person_means

OTHER_SIGMA = 0.079


@njit(inline="always", cache=True, nogil=True, no_cfunc_wrapper=True)
def _joint_box(px, py, has, p):
    """Box ``(x0, x1, y0, y1)`` of person p's joints and their number."""
    x0 = np.inf
    x1 = -np.inf
    y0 = np.inf
    y1 = -np.inf
    cnt = 0
    for k in range(has.shape[1]):
        if has[p, k]:
            x0 = min(x0, px[p, k])
            x1 = max(x1, px[p, k])
            y0 = min(y0, py[p, k])
            y1 = max(y1, py[p, k])
            cnt += 1
    return x0, x1, y0, y1, cnt


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def person_scales(px, py, has, n_people, out):
    """Write each person's scale to ``out``.

    The scale is the larger side of the box of its joints (``px``, ``py``
    ``(P, K)`` float64 where ``has``), at least the median of that side over
    the people with 3 or more joints, and at least 1.
    """
    big = np.empty(max(n_people, 1), np.float64)
    n_big = 0
    for p in range(n_people):
        x0, x1, y0, y1, cnt = _joint_box(px, py, has, p)
        out[p] = max(x1 - x0, y1 - y0)
        if cnt >= 3:
            big[n_big] = out[p]
            n_big += 1
    floor = 1.0
    if n_big > 0:
        s = np.sort(big[:n_big])
        h = n_big // 2
        floor = s[h] if n_big % 2 else (s[h - 1] + s[h]) / 2
    for p in range(n_people):
        out[p] = max(out[p], floor, 1.0)


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def linked_joints(has, p, k, limbs, out):
    """Write to ``out`` person p's joints linked to type k by ``limbs``; return their number."""
    n = 0
    for j in range(has.shape[1]):
        if has[p, j] and limbs[k, j]:
            out[n] = j
            n += 1
    return n


@njit(inline="always", cache=True, nogil=True, no_cfunc_wrapper=True)
def nearest(px, py, p, refs, n_refs, x, y):
    """Distance from pixel (x, y) to the nearest of person p's joints ``refs[:n_refs]``."""
    best = np.inf
    for t in range(n_refs):
        dx = np.float64(x) - px[p, refs[t]]
        dy = np.float64(y) - py[p, refs[t]]
        best = min(best, np.sqrt(dx * dx + dy * dy))
    return best


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def near_refs(has, p, k, limbs, out):
    """Write to ``out`` the joints of person p that :func:`regroup`'s spatial term measures from.

    The joints linked to type k by ``limbs (K, K)`` if the person has one;
    else every joint of another type; type k itself only if the person has
    no other. Returns their number.
    """
    n = linked_joints(has, p, k, limbs, out)
    if n == 0:
        for j in range(has.shape[1]):
            if has[p, j] and j != k:
                out[n] = j
                n += 1
    if n == 0:
        out[0] = k
        n = 1
    return n


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def regroup(cand, w_size, order, joint_of, n_people, g, copts):
    """Re-assign every candidate to the people of the previous round; return the count.

    ``joint_of (>= P, K)`` holds the first pass's people (candidate rows, -1
    where missing) and receives the result. Each round, with the previous
    round's people fixed (their tag means, scales and joints), each joint
    type's candidates (in ``order``) are assigned to them by the munkres 1.1.4
    method. A pair is feasible if ``d < tag_threshold`` and ``s <
    spatial_gate`` (``s`` the distance to the nearest of the person's
    :func:`near_refs` over its scale, computed only where ``d`` passes
    and 0 unless ``spatial_weight > 0`` or ``spatial_gate`` is finite); the
    matrix holds the rows and columns with a feasible pair, in order, with
    cost ``match_cost(d + spatial_weight * s, v)`` where feasible and
    ``PAD_COST`` elsewhere. A candidate joins the person of its feasible
    match; the others start new people after the rest, in row order; people
    left empty are dropped. Stops after ``copts.regroup`` rounds or when nothing
    changes. ``cand``: ``Candidates``; ``g``: ``GroupOptions``; ``copts``:
    :class:`CrowdOptions`.
    """
    cand_val = cand.val
    cand_idx = cand.idx
    cand_cnt = cand.cnt
    cand_tag = cand.tag
    rounds = copts.regroup
    use_rms = g.use_rms
    use_value = g.use_value
    tag_cost = copts.tag_cost
    tag_threshold = g.tag_threshold
    spatial_weight = copts.spatial_weight
    spatial_gate = copts.spatial_gate
    n_joints, m_size = cand_val.shape
    dim = cand_tag.shape[2]
    use_spatial = spatial_weight > 0 or spatial_gate < np.inf
    total = 0
    for k in range(n_joints):
        total += cand_cnt[k]
    size = max(2 * total, n_people, 1)
    old = np.full((size, n_joints), -1, np.int64)
    fresh = np.full((size, n_joints), -1, np.int64)
    for p in range(n_people):
        for k in range(n_joints):
            old[p, k] = joint_of[p, k]
    means = np.empty((size, dim), cand_tag.dtype)
    rows = np.empty((max(n_joints, 1), dim), cand_tag.dtype)
    buf = np.empty(max(n_joints, 1), cand_tag.dtype)
    sq = np.empty(max(dim, 1), np.float64)
    px = np.zeros((size, n_joints), np.float64)
    py = np.zeros((size, n_joints), np.float64)
    has = np.zeros((size, n_joints), np.bool_)
    refs = np.empty((0, n_joints, n_joints), np.int64)
    n_refs = np.zeros((0, n_joints), np.int64)
    scale = np.ones(size, np.float64)
    dist = np.empty((max(m_size, 1), size), np.float64)
    feasible = np.zeros((max(m_size, 1), size), np.bool_)
    work = _work(m_size, size)
    n_old = n_people
    for _ in range(rounds):
        if n_old == 0:
            break
        person_means(old, n_old, cand_tag, order, means, rows, buf)
        if use_spatial:
            for p in range(n_old):
                for k in range(n_joints):
                    r = old[p, k]
                    has[p, k] = r >= 0
                    if r >= 0:
                        px[p, k] = np.float64(cand_idx[k, r] % w_size)
                        py[p, k] = np.float64(cand_idx[k, r] // w_size)
            person_scales(px, py, has, n_old, scale)
            if refs.shape[0] < n_old:  # per person and type, the joints s is measured from
                refs = np.empty((n_old, n_joints, n_joints), np.int64)
                n_refs = np.empty((n_old, n_joints), np.int64)
            for p in range(n_old):
                for k in range(n_joints):
                    n_refs[p, k] = near_refs(has, p, k, copts.limbs, refs[p, k])
        for p in range(n_old):
            for k in range(n_joints):
                fresh[p, k] = -1
        n_fresh = n_old
        for j in range(n_joints):
            k = order[j]
            n_rows = cand_cnt[k]
            if n_rows == 0:
                continue
            # feasible pairs: d < tag_threshold and s < spatial_gate
            for r in range(n_rows):
                x = np.float64(cand_idx[k, r] % w_size)
                y = np.float64(cand_idx[k, r] // w_size)
                for c in range(n_old):
                    d = _distance(cand_tag, k, r, means, c, use_rms, sq)
                    ok = d < tag_threshold
                    s = 0.0
                    if ok and use_spatial:
                        s = nearest(px, py, c, refs[c, k], n_refs[c, k], x, y) / scale[c]
                        ok = s < spatial_gate
                    feasible[r, c] = ok
                    dist[r, c] = d + spatial_weight * s
            assign_feasible(cand_val, k, n_rows, n_old, dist, feasible, use_value, tag_cost, work)
            for r in range(n_rows):
                c = work[5][r]
                if c >= 0:
                    fresh[c, k] = r
            for r in range(n_rows):
                if work[5][r] < 0:
                    for kk in range(n_joints):
                        fresh[n_fresh, kk] = -1
                    fresh[n_fresh, k] = r
                    n_fresh += 1
        n_new = 0
        changed = False
        for p in range(n_fresh):
            empty = True
            for k in range(n_joints):
                if fresh[p, k] >= 0:
                    empty = False
                    break
            if empty:
                changed = True
                continue
            for k in range(n_joints):
                if n_new >= n_old or old[n_new, k] != fresh[p, k]:
                    changed = True
                old[n_new, k] = fresh[p, k]
            n_new += 1
        changed = changed or n_new != n_old
        n_old = n_new
        if not changed:
            break
    for p in range(n_old):
        for k in range(n_joints):
            joint_of[p, k] = old[p, k]
    return n_old
