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

import math
from typing import NamedTuple

import numpy as np

from .jit import kernel
from .matching import AssignWork, _distance, assign_feasible, new_work, person_means
from .sums import pairwise_sum

OTHER_SIGMA = 0.079


@kernel(inline="always")
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


@kernel(no_cpython_wrapper=True)
def _median(vals, n):
    """Return the median of ``vals[:n]`` (n >= 1) as ``np.median`` does; sort ``vals[:n]`` in place.

    A Shell sort (gaps 1, 4, 13, ...): the median does not depend on how the
    values are sorted, and numba's ``np.sort``/``np.median`` would compile
    their own sorts and error paths into every kernel that uses them.
    """
    gap = 1
    while gap < n // 3:
        gap = 3 * gap + 1
    while gap > 0:
        for i in range(gap, n):
            v = vals[i]
            j = i
            while j >= gap and vals[j - gap] > v:
                vals[j] = vals[j - gap]
                j -= gap
            vals[j] = v
        gap //= 3
    h = n // 2
    return vals[h] if n % 2 else (vals[h - 1] + vals[h]) / 2


@kernel(no_cpython_wrapper=True)
def _copy_rows(joint_of, n, size):
    """Return a ``(size, K)`` int64 table: rows 0..n-1 of ``joint_of``, the other rows -1."""
    n_joints = joint_of.shape[1]
    out = np.empty((size, n_joints), np.int64)
    for p in range(size):
        for k in range(n_joints):
            out[p, k] = joint_of[p, k] if p < n else -1
    return out


@kernel()
def person_scales(px, py, has, n_people, out):
    """Write each person's scale to ``out``.

    The scale is the larger side of the box of its joints (``px``, ``py``
    ``(P, K)`` float64 where ``has``), at least the median of that side over
    the people with 3 or more joints, and at least 1.
    """
    big = np.empty(max(n_people, 1), np.float64)
    n_big = np.int64(0)  # not a literal: one compile of _median
    for p in range(n_people):
        x0, x1, y0, y1, cnt = joint_box(px, py, has, p)
        out[p] = max(x1 - x0, y1 - y0)
        if cnt >= 3:
            big[n_big] = out[p]
            n_big += 1
    floor = _median(big, n_big) if n_big > 0 else 1.0
    for p in range(n_people):
        out[p] = max(out[p], floor, 1.0)


@kernel()
def linked_joints(has, p, k, limbs, out):
    """Write to ``out`` person p's joints linked to type k by ``limbs``; return their number."""
    n = 0
    for j in range(has.shape[1]):
        if has[p, j] and limbs[k, j]:
            out[n] = j
            n += 1
    return n


@kernel(inline="always")
def nearest(px, py, p, refs, n_refs, x, y):
    """Distance from pixel (x, y) to the nearest of person p's joints ``refs[:n_refs]``."""
    best = np.inf
    for t in range(n_refs):
        dx = np.float64(x) - px[p, refs[t]]
        dy = np.float64(y) - py[p, refs[t]]
        best = min(best, np.sqrt(dx * dx + dy * dy))
    return best


@kernel()
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


# the spatial gate applies where the image's people fit the skeleton: the median of their
# limbs' lengths over their sizes below this fraction of the gate (real poses: 0.15-0.3 with
# COCO's limbs; joints placed at random in a box, or another skeleton's order: 0.35-0.65)
LIMB_FIT = 0.55


@kernel()
def limbs_fit(cand, joint_of, n_people, w_size, copts):
    """Whether the people of the first pass fit the limbs the spatial term measures.

    Over the people with 3 joints or more: each limb of ``copts.limbs`` both
    of whose joints a person has, its length over the person's size (the
    larger side of its joint box, at least 1), float64. The people fit when
    the median is below ``LIMB_FIT * spatial_gate`` (or no limb is measured).
    """
    n_joints = joint_of.shape[1]
    vals = np.empty(max(n_people * n_joints * n_joints, 1), np.float64)
    px = np.empty(n_joints, np.float64)
    py = np.empty(n_joints, np.float64)
    m = np.int64(0)  # not a literal: one compile of _limb_ratios and _median
    for p in range(n_people):
        cnt = 0
        for k in range(n_joints):
            r = joint_of[p, k]
            if r >= 0:
                px[k] = np.float64(cand.idx[k, r] % w_size)
                py[k] = np.float64(cand.idx[k, r] // w_size)
                cnt += 1
        if cnt < 3:
            continue
        m = _limb_ratios(joint_of[p], px, py, copts.limbs, vals, m)
    if m == 0:
        return True
    return _median(vals, m) < LIMB_FIT * copts.spatial_gate


@kernel(no_cpython_wrapper=True)
def _limb_ratios(rows, px, py, limbs, vals, m):
    """Append to ``vals[m:]`` the person's limb lengths over its size; return the new count.

    ``rows (K,)`` its candidate rows (-1: missing), ``px``, ``py (K,)`` its joints' pixels.
    """
    n_joints = rows.shape[0]
    x0 = np.inf
    x1 = -np.inf
    y0 = np.inf
    y1 = -np.inf
    for k in range(n_joints):
        if rows[k] >= 0:
            x0 = min(x0, px[k])
            x1 = max(x1, px[k])
            y0 = min(y0, py[k])
            y1 = max(y1, py[k])
    size = max(x1 - x0, y1 - y0, 1.0)
    for a in range(n_joints):
        for b in range(a + 1, n_joints):
            if limbs[a, b] and rows[a] >= 0 and rows[b] >= 0:
                dx = px[a] - px[b]
                dy = py[a] - py[b]
                vals[m] = np.sqrt(dx * dx + dy * dy) / size
                m += 1
    return m


@kernel()
def without_spatial(copts):
    """``copts`` with the spatial term and gate off (weight 0, gate infinite)."""
    return CrowdOptions(
        copts.tag_cost,
        copts.regroup,
        0.0,
        np.inf,
        copts.limbs,
        copts.refine_window,
        copts.refine_tag_gate,
        copts.refine_exclusive,
        copts.crowd_refine,
        copts.min_score,
        copts.pose_nms,
        copts.sigmas,
    )


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


@kernel(no_cpython_wrapper=True)
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


@kernel()
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


@kernel(no_cpython_wrapper=True)
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


@kernel(no_cpython_wrapper=True)
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


@kernel(inline="always", no_cpython_wrapper=True)
def _has_joint(joint_of, p):
    """Whether person p of ``joint_of (P, K)`` has a joint."""
    for k in range(joint_of.shape[1]):
        if joint_of[p, k] >= 0:
            return True
    return False


@kernel(no_cpython_wrapper=True)
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


@kernel()
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
    n_cand = 0
    for k in range(n_joints):
        n_cand += cand.cnt[k]
    size = max(2 * n_cand, n_people, 1)
    old = _copy_rows(joint_of, n_people, size)
    fresh = _copy_rows(joint_of, np.int64(0), size)  # not a literal
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
    for p in range(n_old):
        for k in range(n_joints):
            joint_of[p, k] = old[p, k]
    return n_old


class CrowdOptions(NamedTuple):
    """The crowd options, as the kernels read them (built by ``options.build``).

    ``tag_cost`` a TAG_COST_* code; ``regroup`` rounds; ``spatial_weight``;
    ``spatial_gate`` (inf: off); ``limbs`` ``(K, K)`` bool, the joint types
    linked by a limb (all False: any other type); ``refine_window`` (< 0: the whole map);
    ``refine_tag_gate``; ``refine_exclusive`` (no filled joint on a peak
    another returned person holds); ``crowd_refine`` whether ``missing.refine_crowd`` replaces
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
    refine_exclusive: bool
    crowd_refine: bool
    min_score: float
    pose_nms: float
    sigmas: np.ndarray


@kernel(no_cpython_wrapper=True)
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


@kernel(no_cpython_wrapper=True)
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
            total += math.exp(-d2 / (2.0 * area * (s2 * s2)))  # libm's, as compiled
            count += 1
    return total / count if count > 0 else -1.0


@kernel(no_cpython_wrapper=True)
def _held_elsewhere(out, peaks, kept, t, k):
    """Whether kept person ``kept[t]``'s filled joint k sits on a peak a higher one holds.

    Holding: a detection or a fill there by a person kept before it (of
    higher score).
    """
    i = kept[t]
    for u in range(t):
        if peaks[kept[u], k] == peaks[i, k]:
            return True
    return False


@kernel(no_cpython_wrapper=True)
def _drop_copies(out, peaks, kept):
    """Strip the copied joints of the ``kept`` people made mostly of copies.

    A copy is a filled joint on a peak a person of higher score holds
    (``peaks (P, K)``: each joint's peak, flat index, -1 where missing). A
    person with more copies than detected joints (a spurious detection's
    "person" filled from the real people) loses them; the others keep theirs
    (in a crowd two people's joints can share a peak). A removed joint
    becomes missing (NaN, score 0).
    """
    copied = np.empty(peaks.shape[1], np.bool_)
    for t in range(kept.shape[0]):
        i = kept[t]
        n_copies = 0
        n_own = 0
        for k in range(peaks.shape[1]):
            n_own += out.det[i, k] != 0
            filled = out.det[i, k] == 0 and peaks[i, k] >= 0
            copied[k] = filled and _held_elsewhere(out, peaks, kept, t, k)
            n_copies += copied[k]
        if n_copies <= n_own:
            continue
        for k in range(peaks.shape[1]):
            if copied[k]:
                out.kp[i, k, 0] = np.nan
                out.kp[i, k, 1] = np.nan
                out.kp[i, k, 2] = 0


@kernel(no_cpython_wrapper=True)
def _drop_duplicates(peaks, kept):
    """Drop each kept person with over half of its joints on the peaks of one above it.

    ``peaks (P, K)``: each joint's peak (flat index, -1 where missing); the
    people left stay in order in ``kept``. Returns their count.
    """
    left = 0
    for t in range(kept.shape[0]):
        i = kept[t]
        n_i = 0
        for k in range(peaks.shape[1]):
            n_i += peaks[i, k] >= 0
        duplicate = False
        for u in range(left):
            shared = 0
            for k in range(peaks.shape[1]):
                shared += peaks[i, k] >= 0 and peaks[i, k] == peaks[kept[u], k]
            if 2 * shared > n_i:
                duplicate = True
                break
        if not duplicate:
            kept[left] = i
            left += 1
    return left


@kernel(no_cpython_wrapper=True)
def _fragments(out, peaks, i, j, tag_threshold):
    """Whether person i is a fragment of person j: one person the grouping split in two.

    Their detected joint types are disjoint, their mean tags closer than
    ``tag_threshold`` (float64), and one of them filled a joint on a peak the
    other holds (the fills found each other's joints).
    """
    shared = False
    for k in range(peaks.shape[1]):
        if out.det[i, k] != 0 and out.det[j, k] != 0:
            return False
        if peaks[i, k] >= 0 and peaks[i, k] == peaks[j, k]:
            shared = True
    if not shared:
        return False
    sq = 0.0
    for d in range(out.tag.shape[1]):
        diff = np.float64(out.tag[i, d]) - np.float64(out.tag[j, d])
        sq += diff * diff
    return np.sqrt(sq) < tag_threshold


@kernel()
def _merge(out, peaks, i, j):
    """Move fragment i's detected joints into person j; rescore j, average the tags.

    j's score becomes the mean over K of the detected values (as
    ``people.write_people`` scores), its tag the mean of the two tags
    weighted by their detected joints (float64, rounded once).
    """
    n_joints = peaks.shape[1]
    n_i = 0
    n_j = 0
    for k in range(n_joints):
        n_i += out.det[i, k] != 0
        n_j += out.det[j, k] != 0
    for d in range(out.tag.shape[1]):
        total = np.float64(out.tag[j, d]) * n_j + np.float64(out.tag[i, d]) * n_i
        out.tag[j, d] = total / (n_i + n_j)
    values = np.empty(n_joints, out.score.dtype)
    for k in range(n_joints):
        if out.det[i, k] != 0:
            for c in range(out.kp.shape[2]):
                out.kp[j, k, c] = out.kp[i, k, c]
            out.det[j, k] = 1
            peaks[j, k] = peaks[i, k]
        values[k] = out.kp[j, k, 2] if out.det[j, k] != 0 else 0
    out.score[j] = pairwise_sum(values, 0, n_joints) / n_joints


@kernel(no_cpython_wrapper=True)
def _merge_fragments(out, peaks, kept, tag_threshold):
    """Merge each kept person that is a :func:`_fragments` of one above it; return the count.

    In score order, a person merges into the first person above it it is a
    fragment of; the people left are re-ranked by score (stable) in ``kept``.
    """
    n_kept = kept.shape[0]
    left = 0
    for t in range(n_kept):
        i = kept[t]
        merged = False
        for u in range(left):
            if _fragments(out, peaks, i, kept[u], tag_threshold):
                _merge(out, peaks, i, kept[u])
                merged = True
                break
        if not merged:
            kept[left] = i
            left += 1
    for t in range(1, left):  # insertion sort by score, descending, stable
        i = kept[t]
        pos = t
        while pos > 0 and out.score[kept[pos - 1]] < out.score[i]:
            kept[pos] = kept[pos - 1]
            pos -= 1
        kept[pos] = i
    return left


@kernel()
def select_people(out, n_people, copts, peaks, tag_threshold):
    """Keep the people scoring above ``min_score`` that no kept one duplicates; return the count.

    ``out`` is the image's ``People`` record, in score order; ``copts`` the
    :class:`CrowdOptions`. With ``pose_nms >= 0``, person i is dropped if its
    :func:`pose_oks` with a person kept before it exceeds ``pose_nms``. With
    ``refine_exclusive``, kept people that are fragments of one above them
    are merged into it (:func:`_merge_fragments`), people with over half of
    their joints on the peaks of one above them are dropped
    (:func:`_drop_duplicates`), and people made mostly of copies lose them
    (:func:`_drop_copies`; ``peaks
    (P, K)`` the peak of every joint). Kept people move to the front of the
    arrays, in score order.
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
    if copts.refine_exclusive:
        n_kept = _merge_fragments(out, peaks, kept[:n_kept], tag_threshold)
        n_kept = _drop_duplicates(peaks, kept[:n_kept])
        _drop_copies(out, peaks, kept[:n_kept])
    _gather_people(out, kept[:n_kept])
    return n_kept


@kernel(no_cpython_wrapper=True)
def _gather_people(out, order):
    """Move people ``order (N,)`` (distinct) to rows 0..N-1 of ``kp``, ``score``, ``tag``."""
    n = order.shape[0]
    kp = np.empty((n, out.kp.shape[1], out.kp.shape[2]), out.kp.dtype)
    score = np.empty(n, out.score.dtype)
    tag = np.empty((n, out.tag.shape[1]), out.tag.dtype)
    for i in range(n):
        p = order[i]
        score[i] = out.score[p]
        for k in range(kp.shape[1]):
            for c in range(kp.shape[2]):
                kp[i, k, c] = out.kp[p, k, c]
        for d in range(tag.shape[1]):
            tag[i, d] = out.tag[p, d]
    for i in range(n):
        out.score[i] = score[i]
        for k in range(kp.shape[1]):
            for c in range(kp.shape[2]):
                out.kp[i, k, c] = kp[i, k, c]
        for d in range(tag.shape[1]):
            out.tag[i, d] = tag[i, d]
