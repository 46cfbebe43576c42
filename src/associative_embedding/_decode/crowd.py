"""Numba kernels of the crowd grouping options (the "Grouping modes" page).

The references' grouping is one pass over the joint types; these kernels add
what :class:`~associative_embedding.DecodeConfig` switches on beyond it:

- :func:`regroup`: rounds of re-assignment of every candidate to the people of
  the previous round, with a spatial term (``regroup``, ``spatial_weight``,
  ``spatial_gate``); the cost of a tag distance (``tag_cost``) and the first
  pass are ``matching.match_cost`` and ``matching.first_pass``;
- :func:`select_people`: a person-score threshold and a greedy OKS pose NMS
  (``min_score``, ``pose_nms``);
- the geometry the crowd's missing-joint search (``missing.refine_crowd``)
  shares: :func:`joint_box`, :func:`person_scales`, :func:`linked_joints`,
  :func:`nearest`.

Array layouts are those of ``peaks`` and ``people`` (candidates ``(K, M, ...)`` of one
image, people ``joint_of (P, K)`` holding a candidate row or -1). Every float
operation follows ``tests/reference_crowd.py`` operation by operation, so that
results are equal bit for bit: tag means in the maps' dtype with numpy's
summation order (``mean_rows``), distances and the spatial term in float64,
the missing-joint score in the maps' dtype.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from .matching import AssignWork, _distance, assign_feasible, new_work, person_means

OTHER_SIGMA = 0.079


@njit(inline="always", cache=True, nogil=True, no_cfunc_wrapper=True)
def joint_box(px, py, has, p):
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
        x0, x1, y0, y1, cnt = joint_box(px, py, has, p)
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


class Round(NamedTuple):
    """The work arrays of :func:`regroup`'s rounds, for up to ``size`` people.

    ``means (size, D)`` the people's mean tags (the tags' dtype); ``px``,
    ``py (size, K)`` float64 and ``has (size, K)`` their joints' pixels;
    ``scale (size,)`` their scales; ``refs (size, K, K)`` and ``n_refs
    (size, K)`` per person and joint type the joints the spatial term is
    measured from (:func:`near_refs`), allocated for the people of a round
    (:func:`_spatial_state`); ``dist`` and ``feasible (M, size)`` one joint
    type's cost matrix; ``work`` the ``matching.AssignWork`` of the assignment.
    """

    means: np.ndarray
    px: np.ndarray
    py: np.ndarray
    has: np.ndarray
    scale: np.ndarray
    refs: np.ndarray
    n_refs: np.ndarray
    dist: np.ndarray
    feasible: np.ndarray
    work: AssignWork


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _new_round(cand, size):
    """Allocate the :class:`Round` arrays for ``size`` people."""
    n_joints, m_size = cand.val.shape
    dim = cand.tag.shape[2]
    return Round(
        np.empty((size, dim), cand.tag.dtype),
        np.zeros((size, n_joints), np.float64),
        np.zeros((size, n_joints), np.float64),
        np.zeros((size, n_joints), np.bool_),
        np.ones(size, np.float64),
        np.empty((0, n_joints, n_joints), np.int64),
        np.empty((0, n_joints), np.int64),
        np.empty((max(m_size, 1), size), np.float64),
        np.zeros((max(m_size, 1), size), np.bool_),
        new_work(m_size, size),
    )


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _spatial_state(cand, w_size, old, n_old, limbs, rnd):
    """Each person's joint pixels, scale and, per joint type, :func:`near_refs`.

    Returns ``rnd``, with ``refs`` and ``n_refs`` grown to ``n_old`` people.
    """
    n_joints = old.shape[1]
    if rnd.refs.shape[0] < n_old:
        rnd = Round(
            rnd.means,
            rnd.px,
            rnd.py,
            rnd.has,
            rnd.scale,
            np.empty((n_old, n_joints, n_joints), np.int64),
            np.empty((n_old, n_joints), np.int64),
            rnd.dist,
            rnd.feasible,
            rnd.work,
        )
    for p in range(n_old):
        for k in range(n_joints):
            r = old[p, k]
            rnd.has[p, k] = r >= 0
            if r >= 0:
                rnd.px[p, k] = np.float64(cand.idx[k, r] % w_size)
                rnd.py[p, k] = np.float64(cand.idx[k, r] // w_size)
    person_scales(rnd.px, rnd.py, rnd.has, n_old, rnd.scale)
    for p in range(n_old):
        for k in range(n_joints):
            rnd.n_refs[p, k] = near_refs(rnd.has, p, k, limbs, rnd.refs[p, k])
    return rnd


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _cost_matrix(cand, k, w_size, n_old, opts, rnd):
    """Joint type k's feasible pairs and costs against the previous round's people.

    A pair is feasible if ``d < tag_threshold`` and ``s < spatial_gate``; its
    cost is ``d + spatial_weight * s`` (``s`` only where ``d`` passes and the
    spatial term is on; else 0).
    """
    g = opts.group
    copts = opts.crowd
    use_spatial = copts.spatial_weight > 0 or copts.spatial_gate < np.inf
    sq = np.empty(max(cand.tag.shape[2], 1), np.float64)
    for r in range(cand.cnt[k]):
        x = np.float64(cand.idx[k, r] % w_size)
        y = np.float64(cand.idx[k, r] // w_size)
        for c in range(n_old):
            d = _distance(cand.tag, k, r, rnd.means, c, g.use_rms, sq)
            ok = d < g.tag_threshold
            s = 0.0
            if ok and use_spatial:
                s = nearest(rnd.px, rnd.py, c, rnd.refs[c, k], rnd.n_refs[c, k], x, y)
                s = s / rnd.scale[c]
                ok = s < copts.spatial_gate
            rnd.feasible[r, c] = ok
            rnd.dist[r, c] = d + copts.spatial_weight * s


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _compact(fresh, n_fresh, old, n_old):
    """Move ``fresh``'s non-empty people into ``old``, in order; return ``(count, changed)``."""
    n_joints = old.shape[1]
    n_new = 0
    changed = False
    for p in range(n_fresh):
        if not _has_joint(fresh, p):
            changed = True
            continue
        for k in range(n_joints):
            if n_new >= n_old or old[n_new, k] != fresh[p, k]:
                changed = True
            old[n_new, k] = fresh[p, k]
        n_new += 1
    return n_new, changed or n_new != n_old


@njit(inline="always", cache=True, nogil=True, no_cfunc_wrapper=True)
def _has_joint(joint_of, p):
    """Whether person p of ``joint_of (P, K)`` has a joint."""
    for k in range(joint_of.shape[1]):  # noqa: SIM110 - a loop numba compiles
        if joint_of[p, k] >= 0:
            return True
    return False


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _one_round(cand, w_size, order, old, n_old, opts, rnd, fresh):
    """Assign every candidate to the people ``old[:n_old]``; the result into ``fresh``.

    Returns the number of rows of ``fresh``: the old people's slots (some may
    be left empty), then one new person per candidate without a feasible match.
    """
    n_joints = old.shape[1]
    work = rnd.work
    for p in range(n_old):
        for k in range(n_joints):
            fresh[p, k] = -1
    n_fresh = n_old
    for j in range(n_joints):
        k = order[j]
        n_rows = cand.cnt[k]
        if n_rows == 0:
            continue
        _cost_matrix(cand, k, w_size, n_old, opts, rnd)
        costs = (rnd.dist, rnd.feasible, opts.group.use_value, opts.crowd.tag_cost)
        assign_feasible(cand.val[k], n_rows, n_old, costs, work)
        for r in range(n_rows):
            c = work.match[r]
            if c >= 0:
                fresh[c, k] = r
        for r in range(n_rows):
            if work.match[r] < 0:
                fresh[n_fresh, :] = -1
                fresh[n_fresh, k] = r
                n_fresh += 1
    return n_fresh


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def regroup(cand, w_size, order, joint_of, n_people, opts):
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
    left empty are dropped. Stops after ``crowd.regroup`` rounds or when nothing
    changes. ``cand``: ``Candidates``; ``opts``: ``DecodeOptions`` (its
    ``group`` and ``crowd`` records).
    """
    copts = opts.crowd
    n_joints = cand.val.shape[0]
    dim = cand.tag.shape[2]
    size = max(2 * cand.cnt.sum(), n_people, 1)
    old = np.full((size, n_joints), -1, np.int64)
    fresh = np.full((size, n_joints), -1, np.int64)
    old[:n_people] = joint_of[:n_people]
    rnd = _new_round(cand, size)
    rows = np.empty((max(n_joints, 1), dim), cand.tag.dtype)
    buf = np.empty(max(n_joints, 1), cand.tag.dtype)
    use_spatial = copts.spatial_weight > 0 or copts.spatial_gate < np.inf
    n_old = n_people
    for _ in range(copts.regroup):
        if n_old == 0:
            break
        person_means(old, n_old, cand.tag, order, rnd.means, rows, buf)
        if use_spatial:
            rnd = _spatial_state(cand, w_size, old, n_old, copts.limbs, rnd)
        n_fresh = _one_round(cand, w_size, order, old, n_old, opts, rnd, fresh)
        n_old, changed = _compact(fresh, n_fresh, old, n_old)
        if not changed:
            break
    joint_of[:n_old] = old[:n_old]
    return n_old


class CrowdOptions(NamedTuple):
    """The crowd options, as the kernels read them (built by ``options.build``).

    ``tag_cost`` a TAG_COST_* code; ``regroup`` rounds; ``spatial_weight``;
    ``spatial_gate`` (inf: off); ``limbs`` ``(K, K)`` bool, the joint types
    linked by a limb (all False: any other type); ``refine_window`` (< 0: the whole map);
    ``refine_tag_gate``; ``crowd_refine`` whether ``missing.refine_crowd`` replaces
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
def _box_area(kp):
    """Product of the sides of the box of one person's joints ``kp (K, 3)``, at least 1."""
    x0 = np.inf
    x1 = -np.inf
    y0 = np.inf
    y1 = -np.inf
    for k in range(kp.shape[0]):
        ax = np.float64(kp[k, 0])
        if np.isfinite(ax):
            ay = np.float64(kp[k, 1])
            x0 = min(x0, ax)
            x1 = max(x1, ax)
            y0 = min(y0, ay)
            y1 = max(y1, ay)
    return max((x1 - x0) * (y1 - y0), 1.0)


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def pose_oks(kept, other, sigmas):
    """OKS of person ``other`` against person ``kept`` (``(K, 3)`` each), float64.

    ``sum_k exp(-d_k**2 / (2 * area * (2 * sigma_k)**2)) / J`` over the J
    joints both have, ``area`` the kept person's :func:`_box_area`; -1 when
    they share no joint.
    """
    area = _box_area(kept)
    total = 0.0
    count = 0
    for k in range(kept.shape[0]):
        ax = np.float64(kept[k, 0])
        bx = np.float64(other[k, 0])
        if np.isfinite(ax) and np.isfinite(bx):
            ddx = ax - bx
            ddy = np.float64(kept[k, 1]) - np.float64(other[k, 1])
            d2 = ddx * ddx + ddy * ddy
            s2 = 2.0 * sigmas[k]
            total += np.exp(-d2 / (2.0 * area * (s2 * s2)))
            count += 1
    return total / count if count > 0 else -1.0


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def select_people(out, n_people, copts):
    """Keep the people scoring above ``min_score`` that no kept one duplicates; return the count.

    ``out`` is the image's ``People`` record, in score order; ``copts`` the
    :class:`CrowdOptions`. With ``pose_nms >= 0``, person i is dropped if its
    :func:`pose_oks` with a person kept before it exceeds ``pose_nms``. Kept
    people move to the front of the arrays, in order.
    """
    kept = np.empty(max(n_people, 1), np.int64)
    n_kept = 0
    for i in range(n_people):
        if not out.score[i] > copts.min_score:
            continue
        dup = False
        if copts.pose_nms >= 0:
            for t in range(n_kept):
                if pose_oks(out.kp[kept[t]], out.kp[i], copts.sigmas) > copts.pose_nms:
                    dup = True
                    break
        if not dup:
            kept[n_kept] = i
            n_kept += 1
    for t in range(n_kept):
        i = kept[t]
        if i != t:
            out.kp[t] = out.kp[i]
            out.score[t] = out.score[i]
            out.tag[t] = out.tag[i]
    return n_kept
