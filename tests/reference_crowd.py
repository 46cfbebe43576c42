"""A slow, plain-Python version of the decoder's crowd grouping options (the test oracle).

Every rule is written with Python loops and small numpy expressions, in the
order ``docs/grouping_modes.md`` states it; ``associative_embedding.decode``
must give the same people bit for bit when any of these options is set.
Candidates come from ``reference_parser.top_k`` and the quarter-pixel
adjustment from ``reference_parser.quarter``. Options beyond
``reference_parser.DEFAULTS`` (``DecodeConfig`` fields of the same names):

``tag_cost``
    Matching cost of candidate tag distance ``d`` and detection value ``v``:
    ``"rounded"`` ``round(d) * 100 - v`` (the references), ``"tiebreak"``
    ``(round(d) * 100 + d) - v``, ``"exact"`` ``d * 100 - v``.
``regroup``
    Rounds of re-assignment to the final people (see :func:`group`).
``spatial_weight``, ``spatial_gate``, ``spatial_limbs``
    The spatial term of the re-assignment rounds (see :func:`near`).
``refine_window``, ``refine_tag_gate``
    Missing-joint search inside the person's widened joint box, and only where
    the tag distance is below ``tag_threshold`` (see :func:`refine_all`).
``min_score``, ``pose_nms``
    Drop people whose score is not above ``min_score``; greedy OKS pose NMS.
"""

from __future__ import annotations

import numpy as np
from munkres import Munkres

from tests.reference_parser import COCO_ORDER, DEFAULTS, quarter, top_k

CROWD_DEFAULTS = {
    **DEFAULTS,
    "tag_cost": "rounded",
    "regroup": 0,
    "spatial_weight": 0.0,
    "spatial_gate": None,
    "spatial_limbs": None,
    "refine_window": None,
    "refine_tag_gate": False,
    "refine_exclusive": False,
    "min_score": 0.0,
    "pose_nms": None,
}

# pycocotools' COCO sigmas: the OKS constants of the pose NMS when K == 17 (else 0.079)
COCO_SIGMAS = [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062]
COCO_SIGMAS += [0.107, 0.107, 0.087, 0.087, 0.089, 0.089]


def solve(cost, solver):
    """Column of every row (-1: none) of the munkres 1.1.4 assignment of ``cost``."""
    out = np.full(cost.shape[0], -1, np.int64)
    if solver == "munkres":
        for r, c in Munkres().compute(cost.tolist()):
            out[r] = c
    else:  # the library's compiled copy of the same solver, for speed in the benchmark
        from associative_embedding._decode.munkres import linear_assignment

        rows, cols = linear_assignment(cost)
        out[rows] = cols
    return out


def distance(a, b, o):
    """float64 tag distance of two (D,) tags: ``np.sum`` of the squares, ``/ D`` for RMS."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    s = np.sum(diff * diff)
    if o["tag_distance"] == "rms":
        s = s / len(diff)
    return float(np.sqrt(s))


def cost_of(d, value, o):
    """The matching cost of tag distance ``d`` and detection value ``value``."""
    v = value if o["use_detection_value"] else 0.0
    if o["tag_cost"] == "rounded":
        return float(np.rint(d)) * 100.0 - v if o["use_detection_value"] else d
    if o["tag_cost"] == "tiebreak":
        return (float(np.rint(d)) * 100.0 + d) - v
    return d * 100.0 - v


def person_mean(person, tag_k, order):
    """Mean tag of a person's joints as the references take it: ``np.mean`` of the
    tags in ``order`` (the order they joined), in the maps' dtype."""
    return np.mean([tag_k[k, person[k]] for k in order if person[k] >= 0], axis=0)


def new_person(k_joints, k, r):
    person = np.full(k_joints, -1, np.int64)
    person[k] = r
    return person


def assign(tag_k, val_k, k, n_rows, means, o, solver):
    """Hungarian assignment of joint type k's candidates to ``means``; (columns, distances)."""
    n_cols = len(means)
    dist = np.zeros((n_rows, n_cols))
    cost = np.full((n_rows, max(n_rows, n_cols)), 1e10)
    for r in range(n_rows):
        for c in range(n_cols):
            dist[r, c] = distance(tag_k[k, r], means[c], o)
            cost[r, c] = cost_of(dist[r, c], float(val_k[k, r]), o)
    return solve(cost, solver), dist


def assign_feasible(val_k, k, total, feasible, o, solver):
    """Assignment over the feasible pairs: {row: person}.

    The feasible pairs form a bipartite graph; each connected component
    (numbered by its first row) is solved alone, its rows and columns in
    order, with cost ``cost_of(total)`` where feasible and 1e10 elsewhere; a
    row is matched only to a feasible column.
    """
    n_rows, n_cols = total.shape
    row_comp = [-1] * n_rows
    col_comp = [-1] * n_cols
    n_comp = 0
    for r0 in range(n_rows):
        if row_comp[r0] >= 0 or not feasible[r0].any():
            continue
        row_comp[r0] = n_comp
        todo = [r0]
        while todo:
            r = todo.pop()
            for c in range(n_cols):
                if feasible[r, c] and col_comp[c] < 0:
                    col_comp[c] = n_comp
                    for r2 in range(n_rows):
                        if feasible[r2, c] and row_comp[r2] < 0:
                            row_comp[r2] = n_comp
                            todo.append(r2)
        n_comp += 1
    match = {}
    for comp in range(n_comp):
        rows = [r for r in range(n_rows) if row_comp[r] == comp]
        cols = [c for c in range(n_cols) if col_comp[c] == comp]
        cost = np.full((len(rows), max(len(rows), len(cols))), 1e10)
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                if feasible[r, c]:
                    cost[i, j] = cost_of(total[r, c], float(val_k[k, r]), o)
        for i, j in enumerate(solve(cost, solver)):
            if 0 <= j < len(cols) and feasible[rows[i], cols[j]]:
                match[rows[i]] = cols[j]
    return match


def scales(people, loc_k):
    """Person scale: the larger side of its joints' box, at least the median side over
    the people with 3 or more joints, and at least 1 pixel."""
    sides = []
    for p in people:
        xs = [float(loc_k[k, p[k], 0]) for k in range(len(p)) if p[k] >= 0]
        ys = [float(loc_k[k, p[k], 1]) for k in range(len(p)) if p[k] >= 0]
        sides.append(max(max(xs) - min(xs), max(ys) - min(ys)))
    big = sorted(s for s, p in zip(sides, people, strict=True) if (p >= 0).sum() >= 3)
    floor = 1.0
    if big:
        n = len(big)
        floor = big[n // 2] if n % 2 else (big[n // 2 - 1] + big[n // 2]) / 2
    return [max(s, floor, 1.0) for s in sides]


# COCO's limbs, the "auto" spatial_limbs when K == 17 (mmpose's coco.py skeleton_info)
COCO_LIMBS = [(15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6)]
COCO_LIMBS += [(5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5)]
COCO_LIMBS += [(4, 6)]


def near(person, k, x, y, loc_k, scale, limbs=()):
    """Distance from pixel (x, y) to the person's nearest joint linked to type k by a limb
    of ``limbs`` (pairs of types); if it has none, its nearest joint of another type
    than k (its joint k if it has no other); divided by the person's scale."""
    linked = {b for a, b in limbs if a == k} | {a for a, b in limbs if b == k}
    others = [j for j in range(len(person)) if person[j] >= 0 and j in linked]
    others = others or [j for j in range(len(person)) if person[j] >= 0 and j != k] or [k]
    best = np.inf
    for j in others:
        dx = float(x) - float(loc_k[j, person[j], 0])
        dy = float(y) - float(loc_k[j, person[j], 1])
        best = min(best, float(np.sqrt(dx * dx + dy * dy)))
    return best / scale


def limbs_fit(people, loc_k, limbs, gate):
    """Whether the first pass's people fit the limbs: median limb length over size < 0.55 gate.

    Over people with 3 joints or more; a person's size is the larger side of
    its joint box (at least 1); with no limb measured they fit.
    """
    pairs = sorted({(min(a, b), max(a, b)) for a, b in limbs})
    vals = []
    for person in people:
        ks = [k for k in range(len(person)) if person[k] >= 0]
        if len(ks) < 3:
            continue
        pts = {k: np.asarray(loc_k[k, person[k]], np.float64) for k in ks}
        xy = np.array(list(pts.values()))
        size = max(np.ptp(xy[:, 0]), np.ptp(xy[:, 1]), 1.0)
        vals += [
            float(np.hypot(*(pts[a] - pts[b]))) / size for a, b in pairs if a in pts and b in pts
        ]
    return not vals or float(np.median(vals)) < 0.55 * gate


def group(tag_k, loc_k, val_k, n_valid, o, solver):
    """People as arrays of candidate rows per joint type (-1: missing).

    First pass: the references' joint-by-joint matching with ``tag_cost``; with
    a cost other than ``"rounded"`` the assignment runs over the feasible pairs
    (``d < tag_threshold``) only (:func:`assign_feasible`).
    Then up to ``regroup`` rounds: with the people of the previous round fixed
    (their means, scales and joints), every joint type's candidates are
    assigned afresh to them. A pair is feasible if ``d < tag_threshold`` and
    ``s < spatial_gate`` (``s`` from :func:`near`); the assignment runs over the
    rows and columns that have a feasible pair, with cost ``cost_of(d +
    spatial_weight * s)`` where feasible and 1e10 elsewhere; a candidate joins
    the person of its feasible match, the others start new people (appended
    in joint order, then row order); people left with no joint are dropped.
    Rounds stop when nothing changes.
    """
    k_joints = tag_k.shape[0]
    order = o["joint_order"]
    cap = o["max_people"] if o["match_people"] == "first" else None
    if o["max_instances"] is not None and o["max_instances_mode"] == "matching":
        cap = o["max_instances"] if cap is None else min(cap, o["max_instances"])
    people = []
    for k in order:
        n_rows = n_valid[k]
        if n_rows == 0:
            continue
        if not people:
            people = [new_person(k_joints, k, r) for r in range(n_rows)]
            continue
        if o["ignore_too_much"] and len(people) >= o["max_people"]:
            continue
        n_cols = len(people) if cap is None else min(len(people), cap)
        means = [person_mean(people[c], tag_k, order) for c in range(n_cols)]
        if o["tag_cost"] == "rounded":  # the references: every pair takes part
            col_of_row, dist = assign(tag_k, val_k, k, n_rows, means, o, solver)
            match = {
                r: c
                for r, c in enumerate(col_of_row)
                if 0 <= c < n_cols and dist[r, c] < o["tag_threshold"]
            }
        else:  # only the feasible pairs, d < tag_threshold
            dist = np.array([[distance(tag_k[k, r], m, o) for m in means] for r in range(n_rows)])
            match = assign_feasible(val_k, k, dist, dist < o["tag_threshold"], o, solver)
        for r in range(n_rows):
            if r in match:
                people[match[r]][k] = r
            else:
                people.append(new_person(k_joints, k, r))
    gate = np.inf if o["spatial_gate"] is None else o["spatial_gate"]
    limbs = o["spatial_limbs"] or ()
    if limbs == "auto":
        limbs = COCO_LIMBS if k_joints == 17 else ()
    if gate < np.inf and not limbs_fit(people, loc_k, limbs, gate):
        o = {**o, "spatial_weight": 0.0, "spatial_gate": None}  # they do not fit the limbs
        gate = np.inf
    spatial = o["spatial_weight"] > 0 or o["spatial_gate"] is not None
    for _ in range(o["regroup"]):
        old = people
        means = [person_mean(p, tag_k, order) for p in old]
        sc = scales(old, loc_k) if spatial else None
        fresh = [np.full(k_joints, -1, np.int64) for _ in old]
        for k in order:
            n_rows = n_valid[k]
            if n_rows == 0:
                continue
            feasible = np.zeros((n_rows, len(old)), bool)
            total = np.zeros((n_rows, len(old)))
            for r in range(n_rows):
                for c in range(len(old)):
                    d = distance(tag_k[k, r], means[c], o)
                    s = near(old[c], k, *loc_k[k, r], loc_k, sc[c], limbs) if spatial else 0.0
                    feasible[r, c] = d < o["tag_threshold"] and s < gate
                    total[r, c] = d + o["spatial_weight"] * s
            match = assign_feasible(val_k, k, total, feasible, o, solver)
            for r, c in match.items():
                fresh[c][k] = r
            matched = set(match)
            fresh += [new_person(k_joints, k, r) for r in range(n_rows) if r not in matched]
        people = [p for p in fresh if (p >= 0).any()]
        if len(people) == len(old) and all(
            np.array_equal(a, b) for a, b in zip(people, old, strict=True)
        ):
            break
    if o["max_instances"] is not None:
        people = people[: o["max_instances"]]
    return people, o


def crowd_parse(heat, tags, solver="munkres", **options):
    """Decode one image: ``heat`` (K, H, W), ``tags`` (K, D, H, W) of one float dtype.

    Returns ``(keypoints (P, K, 3), scores (P,), tags (P, D))`` sorted by score,
    in the dtype of the inputs, like ``reference_parser.reference_parse``.
    """
    o = {**CROWD_DEFAULTS, **options}
    k_joints = heat.shape[0]
    dim = tags.shape[1]
    if o["joint_order"] is None:
        o["joint_order"] = COCO_ORDER if k_joints == 17 else list(range(k_joints))
    if o["spatial_limbs"] == "auto" and k_joints != 17:  # no known limbs: no spatial term
        o["spatial_weight"], o["spatial_gate"] = 0.0, None
    dtype = heat.dtype
    tag_k, loc_k, val_k = top_k(heat, tags, o["max_people"], o["nms_kernel"])
    n_valid = [int((val_k[k] > o["detection_threshold"]).sum()) for k in range(k_joints)]
    people, o = group(tag_k, loc_k, val_k, n_valid, o, solver)
    n = len(people)
    kp = np.zeros((n, k_joints, 3), dtype)
    kp[:, :, :2] = np.nan
    pix = np.full((n, k_joints, 2), -1, np.int64)
    scores = np.zeros(n, dtype)
    ptags = np.zeros((n, dim), dtype)
    for i, person in enumerate(people):
        for k in range(k_joints):
            r = person[k]
            if r < 0:
                continue
            x, y = loc_k[k, r]
            dx, dy = quarter(heat[k], x, y, o["adjust_rule"]) if o["adjust"] else (0.0, 0.0)
            kp[i, k] = ((x + dx) + o["center_shift"], (y + dy) + o["center_shift"], val_k[k, r])
            pix[i, k] = (x, y)
        scores[i] = kp[i, :, 2].mean()
        ptags[i] = person_mean(person, tag_k, o["joint_order"])
    order = np.argsort(-scores, kind="stable")
    kp, pix, scores, ptags = kp[order], pix[order], scores[order], ptags[order]
    held = peaks_of(pix)
    if o["refine"] and n:
        held = refine_all(heat, tags, kp, pix, o)
    keep = [i for i in range(n) if scores[i] > o["min_score"]]
    if o["pose_nms"] is not None:
        keep = [keep[i] for i in pose_nms(kp[keep], o["pose_nms"])]
    if o["refine_exclusive"]:
        keep = merge_fragments(kp, pix, held, keep, scores, ptags, o["tag_threshold"])
        keep = drop_duplicates(held, keep)
        drop_copies(kp, pix, held, keep)
    return kp[keep], scores[keep], ptags[keep]


def peaks_of(pix):
    """Per joint type, the peak each person holds: {person: (x, y)} of its detected pixels."""
    n, k_joints, _ = pix.shape
    return [{i: tuple(pix[i, k]) for i in range(n) if pix[i, k, 0] >= 0} for k in range(k_joints)]


def fragments(i, j, pix, held, ptags, tag_threshold):
    """Whether person i is a fragment of person j (one person split in two by the grouping).

    Detected joint types disjoint, one filled a joint on a peak the other
    holds, mean tags closer than ``tag_threshold`` (float64).
    """
    k_joints = pix.shape[1]
    if any(pix[i, k, 0] >= 0 and pix[j, k, 0] >= 0 for k in range(k_joints)):
        return False
    if not any(i in held[k] and held[k][i] == held[k].get(j) for k in range(k_joints)):
        return False
    sq = sum((float(a) - float(b)) ** 2 for a, b in zip(ptags[i], ptags[j], strict=True))
    return float(np.sqrt(sq)) < tag_threshold


def merge_fragments(kp, pix, held, keep, scores, ptags, tag_threshold):
    """Merge each kept person into the first one above it it is a fragment of; re-rank.

    The merged person takes the fragment's detected joints, its score becomes
    the mean over K of its detected values, its tag the mean of both tags
    weighted by their detected joints. Returns the people left, by score.
    """
    left = []
    for i in keep:
        j = next((j for j in left if fragments(i, j, pix, held, ptags, tag_threshold)), None)
        if j is None:
            left.append(i)
            continue
        n_i = int((pix[i, :, 0] >= 0).sum())
        n_j = int((pix[j, :, 0] >= 0).sum())
        for d in range(ptags.shape[1]):
            total = float(ptags[j, d]) * n_j + float(ptags[i, d]) * n_i
            ptags[j, d] = total / (n_i + n_j)
        for k in range(kp.shape[1]):
            if pix[i, k, 0] >= 0:
                kp[j, k] = kp[i, k]
                pix[j, k] = pix[i, k]
                held[k][j] = held[k][i]
        scores[j] = np.where(pix[j, :, 0] >= 0, kp[j, :, 2], 0).astype(kp.dtype).mean()
    return sorted(left, key=lambda i: -scores[i])


def drop_duplicates(held, keep):
    """Drop each kept person with over half of its joints on the peaks of one above it."""
    left = []
    for i in keep:
        mine = {k: held[k][i] for k in range(len(held)) if i in held[k]}
        if not any(
            2 * sum(held[k].get(j) == at for k, at in mine.items()) > len(mine) for j in left
        ):
            left.append(i)
    return left


def drop_copies(kp, pix, held, keep):
    """Strip the copied joints of the kept people with more copies than detected joints.

    A copy: a filled joint on a peak a person kept before it (higher score)
    holds, by detection or fill. ``held`` from :func:`refine_all`.
    """
    for t, i in enumerate(keep):
        copies = [
            k
            for k in range(kp.shape[1])
            if pix[i, k, 0] < 0
            and i in held[k]
            and any(j in held[k] and held[k][j] == held[k][i] for j in keep[:t])
        ]
        if len(copies) > int((pix[i, :, 0] >= 0).sum()):
            for k in copies:
                kp[i, k] = (np.nan, np.nan, 0)


def refine_all(heat, tags, kp, pix, o):
    """Missing-joint recovery of every person, in score order.

    As the references (``reference_parser.refine_person``): the reference tag is
    the mean of the tags at the person's detected pixels, the best pixel
    maximises ``heat - round(||tag - ref||)`` (first in row-major order), and
    is filled if its heat is > 0. With ``refine_window``, only pixels inside the
    box of the person's detected joints widened by ``refine_window`` times its
    scale (:func:`scales` over the people's detected pixels) compete; with
    ``refine_tag_gate`` a pixel is filled only if ``||tag - ref|| <
    tag_threshold``; with ``spatial_gate``, if the person has detected joints
    linked to k by a limb, only pixels whose :func:`near` (over the person's
    detected pixels) is below it compete, and none passing leaves the joint
    missing. Returns, per joint type, the peak each person holds ({person: (x,
    y)}): its detected pixel, or with ``refine_exclusive`` its filled joint's
    :func:`uphill` peak.
    """
    n, k_joints, _ = kp.shape
    h, w = heat.shape[1:]
    detected = pix[:, :, 0] >= 0
    if o["refine_mode"] not in ("higherhrnet", "pose-ae-train"):
        raise ValueError("the crowd refine options take refine_mode higherhrnet or pose-ae-train")
    gate = o["spatial_gate"]
    limbs = o["spatial_limbs"] or ()
    if limbs == "auto":
        limbs = COCO_LIMBS if k_joints == 17 else ()
    loc = pix.transpose(1, 0, 2)  # loc[k, i]: pixel of person i's joint k
    if o["refine_window"] is not None or gate is not None:
        sc = scales([np.where(detected[i], i, -1) for i in range(n)], loc)
    held = peaks_of(pix)
    for i in range(n):
        ref = np.mean(
            [tags[k, :, pix[i, k, 1], pix[i, k, 0]] for k in range(k_joints) if detected[i, k]], 0
        )
        x0, x1, y0, y1 = 0, w - 1, 0, h - 1
        if o["refine_window"] is not None:
            m = o["refine_window"] * sc[i]
            xs = pix[i, detected[i], 0]
            ys = pix[i, detected[i], 1]
            x0 = max(int(np.floor(xs.min() - m)), 0)
            x1 = min(int(np.ceil(xs.max() + m)), w - 1)
            y0 = max(int(np.floor(ys.min() - m)), 0)
            y1 = min(int(np.ceil(ys.max() + m)), h - 1)
        for k in range(k_joints):
            if detected[i, k]:
                continue
            dist = np.sqrt(((tags[k] - ref[:, None, None]) ** 2).sum(axis=0))
            score = heat[k] - np.round(dist)
            win = score[y0 : y1 + 1, x0 : x1 + 1].astype(np.float64)
            linked = [j for a, b in limbs for j in (a, b) if k in (a, b) and j != k]
            if gate is not None and any(detected[i, j] for j in linked):
                person = np.where(detected[i], i, -1)
                for yy in range(y0, y1 + 1):
                    for xx in range(x0, x1 + 1):
                        if not near(person, k, xx, yy, loc, sc[i], limbs) < gate:
                            win[yy - y0, xx - x0] = -np.inf
                if np.isneginf(win).all():
                    continue
            yy, xx = np.unravel_index(np.argmax(win), win.shape)
            y, x = yy + y0, xx + x0
            val = heat[k, y, x]
            if not val > 0:
                continue
            if o["refine_tag_gate"] and not float(dist[y, x]) < o["tag_threshold"]:
                continue
            if o["refine_exclusive"]:
                held[k][i] = uphill(heat[k], x, y)
            dx, dy = quarter(heat[k], x, y, o["adjust_rule"]) if o["adjust"] else (0.0, 0.0)
            kp[i, k, 0] = (x + dx) + o["center_shift"]
            kp[i, k, 1] = (y + dy) + o["center_shift"]
            kp[i, k, 2] = 1 if o["refine_mode"] == "pose-ae-train" else val
    return held


def uphill(hk, x, y):
    """(x, y) of the local maximum reached by steepest ascent over the 8 neighbours.

    Each step goes to the largest neighbour (the first in row-major order on
    ties) while it is strictly larger than the current pixel.
    """
    h, w = hk.shape
    while True:
        window = [
            (hk[yy, xx], yy, xx)
            for yy in range(max(y - 1, 0), min(y + 2, h))
            for xx in range(max(x - 1, 0), min(x + 2, w))
        ]
        best = max(window, key=lambda t: t[0])  # max keeps the first of equal values
        if not best[0] > hk[y, x]:
            return (x, y)
        y, x = best[1], best[2]


def pose_nms(kp, threshold):
    """Greedy OKS NMS over poses sorted by score; indices of the poses kept.

    A pose is dropped if its OKS with a kept one exceeds ``threshold``. The
    OKS of pose b against a kept pose a, over the J joints both have:
    ``sum(exp(-d**2 / (2 * area * (2 * sigma)**2))) / J``, with ``area`` the
    product of the sides of a's joint box (at least 1) and ``sigma``
    pycocotools' COCO constants when K == 17, else 0.079 for every joint.
    Poses with no joint in common are never duplicates.
    """
    n, k_joints, _ = kp.shape
    sig = COCO_SIGMAS if k_joints == 17 else [0.079] * k_joints
    out = []
    for i in range(n):
        dup = False
        for j in out:
            a, b = kp[j].astype(np.float64), kp[i].astype(np.float64)
            xs = [a[k, 0] for k in range(k_joints) if np.isfinite(a[k, 0])]
            ys = [a[k, 1] for k in range(k_joints) if np.isfinite(a[k, 0])]
            area = max((max(xs) - min(xs)) * (max(ys) - min(ys)), 1.0)
            total, count = 0.0, 0
            for k in range(k_joints):
                if np.isfinite(a[k, 0]) and np.isfinite(b[k, 0]):
                    d2 = (a[k, 0] - b[k, 0]) ** 2 + (a[k, 1] - b[k, 1]) ** 2
                    total += float(np.exp(-d2 / (2.0 * area * (2.0 * sig[k]) ** 2)))
                    count += 1
            if count and total / count > threshold:
                dup = True
                break
        if not dup:
            out.append(i)
    return out
