"""Numba kernels of the crowd grouping options (``docs/grouping_modes.md``).

The references' grouping is one greedy pass over the joint types; these kernels
add what :class:`~associative_embedding.DecodeConfig` switches on beyond it:

- :func:`match_cost`: the matching cost of a tag distance (``tag_cost``);
- :func:`regroup`: rounds of re-assignment of every candidate to the people of
  the previous round, with a spatial term (``regroup``, ``spatial_weight``,
  ``spatial_gate``);
- in ``_crowd_batch.py``: ``refine_crowd``, the missing-joint search inside each
  person's widened joint box, filled only where the tag agrees (``refine_window``,
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

from ._grouping import PAD_COST, _distance, member_mean
from ._munkres import munkres_assign

TAG_COST_ROUNDED = 0
TAG_COST_TIEBREAK = 1
TAG_COST_EXACT = 2

# the OKS sigma of the pose NMS for joint sets other than COCO's (COCO's median limb value)
OTHER_SIGMA = 0.079


@njit(cache=True, nogil=True)
def match_cost(dist, value, use_value, tag_cost):
    """Return the matching cost of a (float64) tag distance and a detection value.

    ``TAG_COST_ROUNDED``: ``round(d) * 100 - v`` (or ``d`` without the value);
    ``TAG_COST_TIEBREAK``: ``(round(d) * 100 + d) - v``; ``TAG_COST_EXACT``:
    ``d * 100 - v``. Without ``use_value``, ``v`` is 0.
    """
    v = value if use_value else 0.0
    if tag_cost == TAG_COST_ROUNDED:
        if use_value:
            return np.rint(dist) * 100.0 - v
        return dist
    if tag_cost == TAG_COST_TIEBREAK:
        return (np.rint(dist) * 100.0 + dist) - v
    return dist * 100.0 - v


@njit(cache=True, nogil=True)
def person_means(joint_of, n_people, cand_tag, order, means, rows, buf):
    """``means[p]`` = numpy mean of person p's candidate tags in joint ``order``."""
    for p in range(n_people):
        member_mean(joint_of, p, cand_tag, order, rows, buf, means[p])


@njit(cache=True, nogil=True)
def _work(m_size, n_cols):
    """Scratch arrays of :func:`assign_feasible` for up to M rows and ``n_cols`` columns."""
    m = max(m_size, 1)
    c = max(n_cols, 1)
    return (
        np.empty(c, np.int64),  # component of each column
        np.empty(m, np.int64),  # component of each row
        np.empty(m, np.int64),  # rows of a component / the search stack
        np.empty(c, np.int64),  # columns of a component
        np.empty(m, np.int64),  # munkres' answer
        np.empty(m, np.int64),  # match: the person of each row, -1
    )


@njit(cache=True, nogil=True)
def assign_feasible(cand_val, k, n_rows, n_cols, total, feasible, use_value, tag_cost, work):
    """Assign joint k's candidates to people over the feasible pairs only.

    The feasible pairs (``feasible (>= R, >= C)``) form a bipartite graph;
    each of its connected components (numbered by their first row) is solved
    on its own by the munkres 1.1.4 method, rows and columns in order, with
    cost ``match_cost(total[r, c], v)`` where feasible and ``PAD_COST``
    elsewhere. ``work`` comes from :func:`_work`; its last array, ``match``,
    receives the person of each row, -1 if it has no feasible match.
    """
    col_comp, row_comp, sub_row, sub_col, col_of_row, match = work
    for c in range(n_cols):
        col_comp[c] = -1
    for r in range(n_rows):
        row_comp[r] = -1
        match[r] = -1
    n_comp = 0
    for r0 in range(n_rows):
        if row_comp[r0] >= 0:
            continue
        has_pair = False
        for c in range(n_cols):
            if feasible[r0, c]:
                has_pair = True
                break
        if not has_pair:
            continue
        row_comp[r0] = n_comp
        sub_row[0] = r0
        top = 1
        while top > 0:
            top -= 1
            r = sub_row[top]
            for c in range(n_cols):
                if feasible[r, c] and col_comp[c] < 0:
                    col_comp[c] = n_comp
                    for r2 in range(n_rows):
                        if feasible[r2, c] and row_comp[r2] < 0:
                            row_comp[r2] = n_comp
                            sub_row[top] = r2
                            top += 1
        n_comp += 1
    for comp in range(n_comp):
        n_sub_r = 0
        for r in range(n_rows):
            if row_comp[r] == comp:
                sub_row[n_sub_r] = r
                n_sub_r += 1
        n_sub_c = 0
        for c in range(n_cols):
            if col_comp[c] == comp:
                sub_col[n_sub_c] = c
                n_sub_c += 1
        width = max(n_sub_r, n_sub_c)
        cost = np.empty((n_sub_r, width), np.float64)
        for i in range(n_sub_r):
            r = sub_row[i]
            val = np.float64(cand_val[k, r])
            for jj in range(width):
                cost[i, jj] = PAD_COST
                if jj < n_sub_c and feasible[r, sub_col[jj]]:
                    cost[i, jj] = match_cost(total[r, sub_col[jj]], val, use_value, tag_cost)
        munkres_assign(cost, col_of_row[:n_sub_r])
        for i in range(n_sub_r):
            jj = col_of_row[i]
            r = sub_row[i]
            if 0 <= jj < n_sub_c and feasible[r, sub_col[jj]]:
                match[r] = sub_col[jj]


@njit(cache=True, nogil=True)
def first_pass(cand, order, g, tag_cost, joint_of):
    """Group joint by joint as the references do, with ``match_cost``; return the count.

    As ``_grouping.group_image``: the first joint type (in ``order``) with
    candidates starts one person per candidate; each later one is assigned to
    the first ``match_cap`` people (all if < 0) and a candidate joins its
    person if ``d < tag_threshold``, else starts a new one. With
    ``TAG_COST_ROUNDED`` the assignment runs over every pair, as the
    references'; otherwise over the feasible pairs (``d < tag_threshold``)
    only (:func:`assign_feasible`). ``cand`` is a ``Candidates`` record, ``g``
    the ``GroupOptions``; ``joint_of (>= K * M, K)`` receives the candidate
    rows (-1 where missing).
    """
    cand_val = cand.val
    cand_cnt = cand.cnt
    cand_tag = cand.tag
    match_cap = g.match_cap
    ignore_too_much = g.ignore_too_much
    max_people = g.max_people
    use_rms = g.use_rms
    use_value = g.use_value
    tag_threshold = g.tag_threshold
    n_joints, m_size = cand_val.shape
    dim = cand_tag.shape[2]
    cap = joint_of.shape[0]
    means = np.empty((max(cap, 1), dim), cand_tag.dtype)
    rows = np.empty((max(n_joints, 1), dim), cand_tag.dtype)
    buf = np.empty(max(n_joints, 1), cand_tag.dtype)
    sq = np.empty(max(dim, 1), np.float64)
    work = _work(m_size, cap)
    for p in range(cap):
        for k in range(n_joints):
            joint_of[p, k] = -1
    n_people = 0
    for j in range(n_joints):
        k = order[j]
        n_rows = cand_cnt[k]
        if n_rows == 0:
            continue
        if n_people == 0:
            for r in range(n_rows):
                joint_of[n_people, k] = r
                n_people += 1
            continue
        if ignore_too_much and n_people >= max_people:
            continue
        n_cols = n_people if match_cap < 0 else min(n_people, match_cap)
        person_means(joint_of, n_cols, cand_tag, order, means, rows, buf)
        dist = np.empty((n_rows, n_cols), np.float64)
        for r in range(n_rows):
            for c in range(n_cols):
                dist[r, c] = _distance(cand_tag, k, r, means, c, use_rms, sq)
        match = work[5]
        if tag_cost == TAG_COST_ROUNDED:  # the references' assignment over every pair
            width = max(n_rows, n_cols)
            cost = np.empty((n_rows, width), np.float64)
            for r in range(n_rows):
                val = np.float64(cand_val[k, r])
                for c in range(n_cols):
                    cost[r, c] = match_cost(dist[r, c], val, use_value, tag_cost)
                for c in range(n_cols, width):
                    cost[r, c] = PAD_COST
            munkres_assign(cost, match[:n_rows])
            for r in range(n_rows):
                c = match[r]
                if not (0 <= c < n_cols and dist[r, c] < tag_threshold):
                    match[r] = -1
        else:
            feasible = np.empty((n_rows, n_cols), np.bool_)
            for r in range(n_rows):
                for c in range(n_cols):
                    feasible[r, c] = dist[r, c] < tag_threshold
            assign_feasible(cand_val, k, n_rows, n_cols, dist, feasible, use_value, tag_cost, work)
        for r in range(n_rows):
            if match[r] >= 0:
                joint_of[match[r], k] = r
            else:
                joint_of[n_people, k] = r
                n_people += 1
    return n_people


@njit(inline="always", cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def _near(px, py, has, p, k, x, y, scale):
    """Return the distance from (x, y) to person p's nearest joint, over its scale.

    Joints of type k do not count unless the person has no other.
    """
    n_joints = has.shape[1]
    best = np.inf
    for j in range(n_joints):
        if has[p, j] and j != k:
            dx = x - px[p, j]
            dy = y - py[p, j]
            best = min(best, np.sqrt(dx * dx + dy * dy))
    if best == np.inf:
        dx = x - px[p, k]
        dy = y - py[p, k]
        best = np.sqrt(dx * dx + dy * dy)
    return best / scale


@njit(cache=True, nogil=True)
def regroup(cand, w_size, order, joint_of, n_people, g, copts):
    """Re-assign every candidate to the people of the previous round; return the count.

    ``joint_of (>= P, K)`` holds the first pass's people (candidate rows, -1
    where missing) and receives the result. Each round, with the previous
    round's people fixed (their tag means, scales and joints), each joint
    type's candidates (in ``order``) are assigned to them by the munkres 1.1.4
    method. A pair is feasible if ``d < tag_threshold`` and ``s <
    spatial_gate`` (``s`` from :func:`_near`, computed only where ``d`` passes
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
                        s = _near(px, py, has, c, k, x, y, scale[c])
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
