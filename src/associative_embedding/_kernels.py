"""Numba kernels of the decoder: peaks, grouping, quarter offsets, missing-joint recovery.

Everything here is ``@njit(cache=True, nogil=True)``, takes C-contiguous numpy
arrays of fixed dtypes and no Python objects, and imports neither torch nor
anything else from the package but the assignment solver. Loops meant for SIMD
add only the fast-math flags "no NaN" and "no signed zeros" (inputs are checked
finite): no reassociation and no fused multiply-adds, so values stay exact. The public wrapper is
:func:`associative_embedding.decode`; the layout of the arrays is:

- ``heat`` ``(K, H, W)`` and ``tags`` ``(K, D, H, W)`` of one image, both of one
  float dtype ``dt`` (float32 or float64), the "work dtype";
- candidates of one image: ``cand_val (K, M)`` (dt), ``cand_idx (K, M)`` (int64
  flat index ``y * W + x``), ``cand_cnt (K,)`` (int64), ``cand_tag (K, M, D)``
  (dt) and ``cand_nb (K, M, 4)`` (dt): the original heatmap's left, right, upper
  and lower neighbour of the candidate, with indices clipped to the map;
- people of one image, sorted by score: ``out_kp (P, K, 3)`` x, y, score;
  ``out_score (P,)``; ``out_tag (P, D)`` the mean tag of each person's matched
  joints; ``out_ref (P, D)`` the mean tag read at the matched joints in channel
  order (the reference tag of the missing-joint search); ``out_det (P, K)`` 1
  where joint k was matched, 0 where it is missing.

Floating-point operations follow the reference parsers' numpy code operation by
operation, so that results are equal bit for bit:

- means of tags follow numpy's ``np.mean(list_of_tags, axis=0)``: a pairwise
  sum (numpy's 8-accumulator blocks) when D == 1, a sequential sum when D > 1,
  accumulated in the work dtype, then one division;
- sums over the D tag dimensions follow numpy's pairwise sum along the last
  axis (sequential for D < 8; mmpose 1.x's fill sums its first axis, which
  differs from this in the last bit only for D >= 8);
- the person score is numpy's ``keypoints[:, 2].mean()``: a pairwise sum over K
  in the work dtype;
- matching distances are computed in float64 from tags in the work dtype
  (HigherHRNet and pose-ae-train do the same: their joint arrays are float64,
  their person means keep the tags' dtype); the missing-joint search computes
  in the work dtype, as the references do on their float32 maps;
- ``round`` is numpy's round-half-to-even (``np.rint``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

from ._munkres import munkres_assign

# --- integer codes of the options (kept in one int64 parameter vector) -------------------
MATCH_HUNGARIAN = 0
MATCH_GREEDY = 1
DIST_L2 = 0
DIST_RMS = 1
ADJUST_REFERENCE = 0
ADJUST_MMPOSE = 1
REFINE_OFF = 0
REFINE_HIGHERHRNET = 1
REFINE_POSE_AE = 2
REFINE_MMPOSE = 3

# positions in the int64 parameter vector ``ip``
IP_NMS_KERNEL = 0
IP_MATCHING = 1
IP_USE_VALUE = 2
IP_DISTANCE = 3
IP_MATCH_CAP = 4  # people taking part in matching (-1: all)
IP_IGNORE_TOO_MUCH = 5
IP_MAX_PEOPLE = 6
IP_MAX_OUT = 7  # people kept, in creation order (-1: all)
IP_ADJUST = 8
IP_ADJUST_RULE = 9
IP_REFINE = 10
IP_BLOCK = 11  # block side of the missing-joint search
IP_SIZE = 12

# positions in the float64 parameter vector ``fp``
FP_DETECTION_THRESHOLD = 0
FP_TAG_THRESHOLD = 1
FP_CENTER_SHIFT = 2
FP_SIZE = 3

# strip height and tile width of the peak search
FIND_BLOCK = 16

# the references pad the cost matrix with this value when candidates outnumber people
PAD_COST = 1e10


# --- numpy-compatible reductions ---------------------------------------------------------
@njit(cache=True, nogil=True)
def _pairwise_block(a, start, n):
    """Sum ``a[start:start + n]`` as numpy's pairwise sum does for 1 <= n <= 128."""
    if n < 8:
        res = a[start] - a[start]
        for i in range(n):
            res += a[start + i]
        return res
    r0 = a[start]
    r1 = a[start + 1]
    r2 = a[start + 2]
    r3 = a[start + 3]
    r4 = a[start + 4]
    r5 = a[start + 5]
    r6 = a[start + 6]
    r7 = a[start + 7]
    i = 8
    lim = n - (n % 8)
    while i < lim:
        r0 += a[start + i]
        r1 += a[start + i + 1]
        r2 += a[start + i + 2]
        r3 += a[start + i + 3]
        r4 += a[start + i + 4]
        r5 += a[start + i + 5]
        r6 += a[start + i + 6]
        r7 += a[start + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[start + i]
        i += 1
    return res


@njit(cache=True, nogil=True)
def pairwise_sum(a, start, n):
    """Sum ``a[start:start + n]`` in the order of numpy's pairwise summation.

    numpy's ``add.reduce`` over a contiguous axis (or a 1-D strided one) adds
    fewer than 8 numbers one after another, up to 128 numbers with 8 running
    partial sums combined as ``((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7))`` plus the
    rest, and splits longer runs in two halves (the first a multiple of 8)
    summed the same way. The result has ``a``'s dtype; ``n`` must be >= 1.
    The split is walked with an explicit stack (numba's cache does not hold
    recursive functions reliably); float addition is commutative, so the
    order in which the two halves' sums meet does not matter.
    """
    if n <= 128:
        return _pairwise_block(a, start, n)
    depth = 2 * (64 + 1)
    f_start = np.empty(depth, np.int64)
    f_n = np.empty(depth, np.int64)
    f_join = np.empty(depth, np.bool_)
    vals = np.empty(depth, a.dtype)
    nf = 0
    nv = 0
    f_start[0] = start
    f_n[0] = n
    f_join[0] = False
    nf = 1
    while nf > 0:
        nf -= 1
        s = f_start[nf]
        m = f_n[nf]
        if f_join[nf]:
            nv -= 1
            vals[nv - 1] = vals[nv - 1] + vals[nv]
        elif m <= 128:
            vals[nv] = _pairwise_block(a, s, m)
            nv += 1
        else:
            m2 = m // 2
            m2 -= m2 % 8
            f_start[nf] = s
            f_n[nf] = m
            f_join[nf] = True
            f_start[nf + 1] = s
            f_n[nf + 1] = m2
            f_join[nf + 1] = False
            f_start[nf + 2] = s + m2
            f_n[nf + 2] = m - m2
            f_join[nf + 2] = False
            nf += 3
    return vals[0]


@njit(cache=True, nogil=True)
def mean_rows(rows, n, out, buf):
    """``out[:] = np.mean(rows[:n], axis=0)`` with numpy's summation order and dtype.

    ``rows`` is ``(>= n, D)``, ``out`` ``(D,)``, ``buf`` a scratch vector of at
    least ``n`` entries, all of one dtype. numpy reduces a ``(n, 1)`` array
    pairwise and a ``(n, D > 1)`` array row after row. ``n`` must be >= 1.
    """
    dim = rows.shape[1]
    if dim == 1:
        for i in range(n):
            buf[i] = rows[i, 0]
        out[0] = pairwise_sum(buf, 0, n) / n
    else:
        for d in range(dim):
            s = rows[0, d] - rows[0, d]
            for i in range(n):
                s += rows[i, d]
            out[d] = s / n


# --- peaks --------------------------------------------------------------------------------
@njit(cache=True, nogil=True, fastmath={"nnan", "nsz"})
def find_candidates(heat, threshold, kernel, cand_val, cand_idx, cand_cnt):
    """Peaks of each joint's heatmap above ``threshold``, the strongest first.

    A pixel is a peak when no pixel of the ``kernel x kernel`` window centred
    on it (clipped at the borders) is larger: the references' max-pool NMS
    (``max_pool2d(h, kernel, 1, kernel // 2) == h``), which keeps every pixel of
    a plateau. Peaks with value ``> threshold`` are ranked by value, descending,
    ties by flat index ``y * W + x`` ascending, and the first ``M =
    cand_val.shape[1]`` are written to ``cand_val[k]`` / ``cand_idx[k]``; their
    number to ``cand_cnt[k]``.

    Rows are visited in strips of ``FIND_BLOCK``; a vectorised column maximum
    over the strip tells which ``FIND_BLOCK``-wide tiles hold any value above
    the threshold, and only those are examined pixel by pixel.
    """
    n_joints, h_size, w_size = heat.shape
    m_size = cand_val.shape[1]
    r = kernel // 2
    block = FIND_BLOCK
    nbx = (w_size + block - 1) // block
    col = np.empty(w_size, heat.dtype)
    hot = np.empty(nbx, np.bool_)
    for k in range(n_joints):
        hk = heat[k]
        cnt = 0
        for y0 in range(0, h_size, block):
            y1 = min(y0 + block, h_size)
            row = hk[y0]
            for x in range(w_size):
                col[x] = row[x]
            for y in range(y0 + 1, y1):
                row = hk[y]
                for x in range(w_size):
                    v = row[x]
                    c = col[x]
                    col[x] = v if v > c else c
            any_hot = False
            for bx in range(nbx):
                x0 = uint64(bx * block)
                n = uint64(min(bx * block + block, w_size) - bx * block)
                m = col[x0]
                for i in range(n):
                    v = col[x0 + i]
                    m = v if v > m else m
                hot[bx] = m > threshold
                any_hot = any_hot or hot[bx]
            if not any_hot:
                continue
            for y in range(y0, y1):
                wy0 = max(y - r, 0)
                wy1 = min(y + r + 1, h_size)
                for bx in range(nbx):
                    if not hot[bx]:
                        continue
                    for x in range(bx * block, min(bx * block + block, w_size)):
                        v = hk[y, x]
                        if not v > threshold:
                            continue
                        if cnt == m_size and not v > cand_val[k, m_size - 1]:
                            continue
                        wx0 = max(x - r, 0)
                        wx1 = min(x + r + 1, w_size)
                        peak = True
                        for yy in range(wy0, wy1):
                            for xx in range(wx0, wx1):
                                if hk[yy, xx] > v:
                                    peak = False
                                    break
                            if not peak:
                                break
                        if not peak:
                            continue
                        if cnt < m_size:
                            cnt += 1
                        pos = cnt - 1
                        while pos > 0 and cand_val[k, pos - 1] < v:
                            cand_val[k, pos] = cand_val[k, pos - 1]
                            cand_idx[k, pos] = cand_idx[k, pos - 1]
                            pos -= 1
                        cand_val[k, pos] = v
                        cand_idx[k, pos] = y * w_size + x
        cand_cnt[k] = cnt


@njit(cache=True, nogil=True)
def gather_candidates(heat, tags, cand_idx, cand_cnt, cand_tag, cand_nb):
    """Tags and the four heatmap neighbours (indices clipped) at every candidate."""
    n_joints, h_size, w_size = heat.shape
    dim = tags.shape[1]
    for k in range(n_joints):
        for m in range(cand_cnt[k]):
            idx = cand_idx[k, m]
            y = idx // w_size
            x = idx % w_size
            for d in range(dim):
                cand_tag[k, m, d] = tags[k, d, y, x]
            cand_nb[k, m, 0] = heat[k, y, max(x - 1, 0)]
            cand_nb[k, m, 1] = heat[k, y, min(x + 1, w_size - 1)]
            cand_nb[k, m, 2] = heat[k, max(y - 1, 0), x]
            cand_nb[k, m, 3] = heat[k, min(y + 1, h_size - 1), x]


# --- quarter offset -----------------------------------------------------------------------
@njit(cache=True, nogil=True)
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


# --- grouping -----------------------------------------------------------------------------
@njit(cache=True, nogil=True)
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
def group_image(
    cand_val,
    cand_idx,
    cand_cnt,
    cand_tag,
    cand_nb,
    h_size,
    w_size,
    order,
    ip,
    fp,
    out_kp,
    out_score,
    out_tag,
    out_ref,
    out_det,
):
    """Group one image's candidates into people; write them sorted by score.

    Walks the joint types in ``order``. The candidates of the first joint type
    with any start one person each; later joint types are matched to the
    people that take part in matching (the first ``ip[IP_MATCH_CAP]`` in
    creation order, or all) by the Hungarian method on the cost
    ``round(dist) * 100 - value`` (or ``dist``), solved with the same choices as
    munkres 1.1.4, or greedily; a candidate joins its person when the raw
    distance is below the tag threshold and otherwise starts a new one. Returns
    the number of people written (at most ``out_kp.shape[0]``).
    """
    n_joints, m_size = cand_val.shape
    dim = cand_tag.shape[2]
    matching = ip[IP_MATCHING]
    use_value = ip[IP_USE_VALUE] != 0
    use_rms = ip[IP_DISTANCE] == DIST_RMS
    match_cap = ip[IP_MATCH_CAP]
    ignore_too_much = ip[IP_IGNORE_TOO_MUCH] != 0
    max_people = ip[IP_MAX_PEOPLE]
    max_out = ip[IP_MAX_OUT]
    tag_threshold = fp[FP_TAG_THRESHOLD]

    cap = n_joints * m_size
    joint_of = np.full((max(cap, 1), n_joints), -1, np.int64)
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
            col_of_row = np.full(n_rows, -1, np.int64)
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
    return write_people(
        joint_of, n_keep, cand_val, cand_idx, cand_tag, cand_nb, h_size, w_size, order, ip, fp,
        out_kp, out_score, out_tag, out_ref, out_det, out_pix,
    )  # fmt: skip


@njit(cache=True, nogil=True)
def write_people(
    joint_of,
    n_keep,
    cand_val,
    cand_idx,
    cand_tag,
    cand_nb,
    h_size,
    w_size,
    order,
    ip,
    fp,
    out_kp,
    out_score,
    out_tag,
    out_ref,
    out_det,
    out_pix,
):
    """Write the first ``n_keep`` people of ``joint_of (P, K)`` (candidate rows, -1: none).

    People are sorted by score (the pairwise mean of the K detection values,
    0 where missing; stable), then written as ``_kernels``' layout describes:
    adjusted coordinates, the mean tag of their candidates in joint ``order``
    (the order they joined), the reference tag over the detected joints in
    channel order; ``out_pix (P, K)`` receives the flat pixel index of each
    detected joint (-1 where missing). Returns the number written (at most
    ``out_kp.shape[0]``).
    """
    n_joints = cand_val.shape[0]
    dim = cand_tag.shape[2]
    adjust = ip[IP_ADJUST] != 0
    adjust_rule = ip[IP_ADJUST_RULE]
    shift = fp[FP_CENTER_SHIFT]
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
    rank = np.argsort(-scores, kind="mergesort")
    ref_rows = np.empty((max(n_joints, 1), dim), cand_tag.dtype)
    for i in range(n_keep):
        p = rank[i]
        out_score[i] = scores[p]
        n_mem = 0
        for j in range(n_joints):
            k = order[j]
            r = joint_of[p, k]
            if r >= 0:
                for d in range(dim):
                    ref_rows[n_mem, d] = cand_tag[k, r, d]
                n_mem += 1
        mean_rows(ref_rows, n_mem, out_tag[i], buf)
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


# --- missing-joint recovery ---------------------------------------------------------------
# Loops over rows of pixels and over blocks are written for LLVM's vectoriser. Their only
# fast-math flags are "no NaN" and "no signed zeros" (the inputs are checked finite): no
# reassociation, no contraction into fused multiply-adds, so every value is the IEEE result
# of the same operations numpy performs, and min/max reductions may use SIMD.
_FM = {"nnan", "nsz"}
_BIG = 1e15  # an empty tag range [BIG, -BIG]: its distance bound is huge but finite


@njit(cache=True, nogil=True, fastmath=_FM)
def _tile_scores(hk, tk, ref, mult, y0, y1, x0, x1, buf, acc, sq):
    """``buf[...] = h - mult * round(||t - ref||)`` over a tile, row-major; returns the count.

    The squared distance is summed over D as numpy does along a last axis:
    one by one for D < 8, pairwise beyond. Column indices are unsigned so
    that numba emits no negative-index check and the row loops vectorise.
    """
    n = uint64(x1 - x0)
    ux0 = uint64(x0)
    dim = ref.shape[0]
    cnt = uint64(0)
    for y in range(y0, y1):
        hrow = hk[y]
        if dim == 1:
            r0 = ref[0]
            t0 = tk[0, y]
            for i in range(n):
                x = ux0 + i
                a = t0[x] - r0
                buf[cnt + i] = hrow[x] - mult * np.rint(np.sqrt(a * a))
        elif dim == 2:
            r0 = ref[0]
            r1 = ref[1]
            t0 = tk[0, y]
            t1 = tk[1, y]
            for i in range(n):
                x = ux0 + i
                a = t0[x] - r0
                b = t1[x] - r1
                buf[cnt + i] = hrow[x] - mult * np.rint(np.sqrt(a * a + b * b))
        elif dim < 8:
            r0 = ref[0]
            t0 = tk[0, y]
            for i in range(n):
                a = t0[ux0 + i] - r0
                acc[i] = a * a
            for d in range(1, dim):
                rd = ref[d]
                td = tk[d, y]
                for i in range(n):
                    a = td[ux0 + i] - rd
                    acc[i] = acc[i] + a * a
            for i in range(n):
                buf[cnt + i] = hrow[ux0 + i] - mult * np.rint(np.sqrt(acc[i]))
        else:
            for i in range(n):
                for d in range(dim):
                    a = tk[d, y, ux0 + i] - ref[d]
                    sq[d] = a * a
                buf[cnt + i] = hrow[ux0 + i] - mult * np.rint(np.sqrt(pairwise_sum(sq, 0, dim)))
        cnt += n
    return cnt


@njit(cache=True, nogil=True, fastmath=_FM)
def _scan_block(hk, tk, ref, mult, y0, y1, x0, x1, w_size, best, best_idx, buf, acc, sq):
    """Fold a tile's pixels into the running first-occurrence maximum ``(best, best_idx)``.

    If the tile's maximum score can beat ``best`` (or equal it at a smaller
    flat index), its first pixel in row-major order, which has the smallest
    flat index of the tile, is taken.
    """
    cnt = _tile_scores(hk, tk, ref, mult, y0, y1, x0, x1, buf, acc, sq)
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
    if best_idx < 0 or m > best or idx < best_idx:
        return m, idx
    return best, best_idx


@njit(cache=True, nogil=True, fastmath=_FM)
def _fold_tiles(col, block, nbx, out, row_of_tiles, take_max):
    """``out[row_of_tiles * nbx + bx]`` = max (or min) of ``col`` over each tile's columns."""
    w_size = col.shape[0]
    for bx in range(nbx):
        x0 = uint64(bx * block)
        n = uint64(min(bx * block + block, w_size) - bx * block)
        m = col[x0]
        if take_max:
            for i in range(n):
                v = col[x0 + i]
                m = v if v > m else m
        else:
            for i in range(n):
                v = col[x0 + i]
                m = v if v < m else m
        out[row_of_tiles * nbx + bx] = m


@njit(cache=True, nogil=True, fastmath=_FM)
def block_stats(hk, tk, block, consts, hmax, lo, hi, lo_top, hi_top, col, col_lo, col_hi, col_top):
    """Tile statistics of one joint's maps for the missing-joint search.

    Per ``block x block`` tile (numbered row-major, ``b = by * nbx + bx``): the
    largest heat ``hmax``, the range ``[lo, hi]`` of every tag dimension over
    the tile, and the range ``[lo_top, hi_top]`` over the tile's pixels with
    heat ``>= hmax / 2`` (the core of a peak, whose tags belong to one person).
    ``consts`` holds ``[BIG, 0.5]`` in the maps' dtype; ``col*`` are scratch
    rows of W (and ``(D, W)``) entries. Each row of tiles takes vectorisable
    column-wise passes, then one fold per tile.
    """
    h_size, w_size = hk.shape
    dim = tk.shape[0]
    big = consts[0]
    half = consts[1]
    nby = (h_size + block - 1) // block
    nbx = (w_size + block - 1) // block
    for by in range(nby):
        y0 = by * block
        y1 = min(y0 + block, h_size)
        row = hk[y0]
        for x in range(w_size):
            col[x] = row[x]
        for y in range(y0 + 1, y1):
            row = hk[y]
            for x in range(w_size):
                v = row[x]
                c = col[x]
                col[x] = v if v > c else c
        _fold_tiles(col, block, nbx, hmax, by, True)
        for bx in range(nbx):
            x0 = uint64(bx * block)
            n = uint64(min(bx * block + block, w_size) - bx * block)
            t = hmax[by * nbx + bx] * half
            for i in range(n):
                col_top[x0 + i] = t
        for d in range(dim):
            cl = col_lo[d]
            ch = col_hi[d]
            row = tk[d, y0]
            for x in range(w_size):
                cl[x] = row[x]
                ch[x] = row[x]
            for y in range(y0 + 1, y1):
                row = tk[d, y]
                for x in range(w_size):
                    v = row[x]
                    a = cl[x]
                    z = ch[x]
                    cl[x] = v if v < a else a
                    ch[x] = v if v > z else z
            _fold_tiles(cl, block, nbx, lo[d], by, False)
            _fold_tiles(ch, block, nbx, hi[d], by, True)
            for x in range(w_size):
                cl[x] = big
                ch[x] = -big
            for y in range(y0, y1):
                row = tk[d, y]
                hrow = hk[y]
                for x in range(w_size):
                    top = hrow[x] >= col_top[x]
                    v = row[x]
                    a = cl[x]
                    z = ch[x]
                    cl[x] = v if (top and v < a) else a
                    ch[x] = v if (top and v > z) else z
            _fold_tiles(cl, block, nbx, lo_top[d], by, False)
            _fold_tiles(ch, block, nbx, hi_top[d], by, True)


@njit(cache=True, nogil=True, fastmath=_FM)
def _range_cost(lo, hi, ref, mult, out, acc):
    """Lower-bound the cost of every tag box: ``out[b] = mult * round(sqrt(sum_d gap_d**2))``.

    ``gap_d`` is the distance from ``ref[d]`` to ``[lo[d, b], hi[d, b]]`` (0
    inside). It bounds ``mult * round(||t - ref||)`` from below for every tag
    ``t`` in the box, being computed with the same (monotone) float operations
    as the cost itself.
    """
    nb = out.shape[0]
    dim = ref.shape[0]
    z = ref[0] - ref[0]
    r0 = ref[0]
    lo0 = lo[0]
    hi0 = hi[0]
    if dim == 1:
        for b in range(nb):
            g = max(max(lo0[b] - r0, r0 - hi0[b]), z)
            out[b] = mult * np.rint(np.sqrt(g * g))
        return
    if dim == 2:
        r1 = ref[1]
        lo1 = lo[1]
        hi1 = hi[1]
        for b in range(nb):
            g = max(max(lo0[b] - r0, r0 - hi0[b]), z)
            e = max(max(lo1[b] - r1, r1 - hi1[b]), z)
            out[b] = mult * np.rint(np.sqrt(g * g + e * e))
        return
    if dim < 8:
        for b in range(nb):
            g = max(max(lo0[b] - r0, r0 - hi0[b]), z)
            acc[b] = g * g
        for d in range(1, dim):
            rd = ref[d]
            lod = lo[d]
            hid = hi[d]
            for b in range(nb):
                g = max(max(lod[b] - rd, rd - hid[b]), z)
                acc[b] = acc[b] + g * g
        for b in range(nb):
            out[b] = mult * np.rint(np.sqrt(acc[b]))
        return
    sq = np.empty(dim, acc.dtype)
    for b in range(nb):
        for d in range(dim):
            g = max(max(lo[d, b] - ref[d], ref[d] - hi[d, b]), z)
            sq[d] = g * g
        out[b] = mult * np.rint(np.sqrt(pairwise_sum(sq, 0, dim)))


@njit(cache=True, nogil=True, fastmath=_FM)
def _bounds(hmax, lo, hi, lo_top, hi_top, ref, mult, consts, ub, cost_all, cost_top, acc):
    """Upper bound of ``heat - mult * round(dist)`` in each tile.

    A pixel in the tile's top (heat >= hmax / 2) scores at most ``hmax - cost``
    over the top's tag box; any other pixel at most ``hmax / 2 - cost`` over
    the whole tile's box (float subtraction is monotone in both operands).
    """
    _range_cost(lo, hi, ref, mult, cost_all, acc)
    _range_cost(lo_top, hi_top, ref, mult, cost_top, acc)
    half = consts[1]
    for b in range(hmax.shape[0]):
        a = hmax[b] - cost_top[b]
        c = hmax[b] * half - cost_all[b]
        ub[b] = a if a > c else c


@njit(cache=True, nogil=True)
def _block_start(b, nbx, block, w_size):
    """Flat index of the top-left pixel of tile ``b`` (the smallest index in it)."""
    return (b // nbx) * block * w_size + (b % nbx) * block


@njit(cache=True, nogil=True)
def refine_image(
    heat, tags, slot, n_people, ip, fp, mult_arr, cand_idx, cand_cnt, out_kp, out_ref, out_det
):
    """Recover the missing joints of the ``n_people`` people of one image, in place.

    For person p and a joint k it misses, the pixel maximising ``heat_k -
    mult * round(||tag_k - ref_p||)`` over the whole map (first in row-major
    order on ties) is found; ``mult`` is 1 for HigherHRNet and pose-ae-train
    and 100 for mmpose 1.x, whose argmin of ``round(dist) * 100 - heat`` is
    the same pixel. ``heat (S, H, W)`` and ``tags (S, D, H, W)`` hold the maps
    of the joints some person misses, joint k at ``slot[k]``; ``cand_idx`` /
    ``cand_cnt`` are the candidates of ``find_candidates``.

    The search is exact and avoids a full pass per person: per joint, one pass
    over its maps computes tile statistics (``block_stats``); per person, the
    best score at the joint's candidates (usually the answer) gives a first
    bound, and only tiles whose upper bound can still beat it are scanned, the
    most promising first.
    """
    _, h_size, w_size = heat.shape
    dim = tags.shape[1]
    n_joints = out_kp.shape[1]
    mode = ip[IP_REFINE]
    adjust = ip[IP_ADJUST] != 0
    rule = ip[IP_ADJUST_RULE]
    block = ip[IP_BLOCK]
    shift = fp[FP_CENTER_SHIFT]
    mult = mult_arr[0]
    if mode == REFINE_OFF or n_people == 0:
        return
    nby = (h_size + block - 1) // block
    nbx = (w_size + block - 1) // block
    nb = nby * nbx
    dt = heat.dtype
    hmax = np.empty(nb, dt)
    lo = np.empty((dim, nb), dt)
    hi = np.empty((dim, nb), dt)
    lo_top = np.empty((dim, nb), dt)
    hi_top = np.empty((dim, nb), dt)
    ub = np.empty(nb, dt)
    cost_all = np.empty(nb, dt)
    cost_top = np.empty(nb, dt)
    acc = np.empty(max(nb, w_size), dt)
    col = np.empty(w_size, dt)
    col_lo = np.empty((dim, w_size), dt)
    col_hi = np.empty((dim, w_size), dt)
    col_top = np.empty(w_size, dt)
    open_blocks = np.empty(nb, np.int64)
    buf = np.empty(block * block, dt)
    sq = np.empty(max(dim, 1), dt)
    consts = np.empty(2, dt)
    consts[0] = _BIG
    consts[1] = 0.5
    for k in range(n_joints):
        needed = False
        for p in range(n_people):
            if out_det[p, k] == 0:
                needed = True
                break
        if not needed:
            continue
        hk = heat[slot[k]]
        tk = tags[slot[k]]
        block_stats(
            hk, tk, block, consts, hmax, lo, hi, lo_top, hi_top, col, col_lo, col_hi, col_top
        )
        for p in range(n_people):
            if out_det[p, k] != 0:
                continue
            ref = out_ref[p]
            # the joint's candidates: a cheap first answer
            best = hk[0, 0]
            best_idx = -1
            for c in range(cand_cnt[k]):
                idx = cand_idx[k, c]
                y = idx // w_size
                x = idx % w_size
                for d in range(dim):
                    a = tk[d, y, x] - ref[d]
                    sq[d] = a * a
                score = hk[y, x] - mult * np.rint(np.sqrt(pairwise_sum(sq, 0, dim)))
                if best_idx < 0 or score > best or (score == best and idx < best_idx):
                    best = score
                    best_idx = idx
            _bounds(hmax, lo, hi, lo_top, hi_top, ref, mult, consts, ub, cost_all, cost_top, acc)
            n_open = 0
            for b in range(nb):
                if (
                    best_idx < 0
                    or ub[b] > best
                    or (ub[b] == best and _block_start(b, nbx, block, w_size) < best_idx)
                ):
                    open_blocks[n_open] = b
                    n_open += 1
            # scan the open tiles, largest bound first (ties: smallest tile first), until
            # no bound can beat the best score
            for i in range(1, n_open):
                b = open_blocks[i]
                u = ub[b]
                j = i
                while j > 0 and ub[open_blocks[j - 1]] < u:
                    open_blocks[j] = open_blocks[j - 1]
                    j -= 1
                open_blocks[j] = b
            for i in range(n_open):
                b = open_blocks[i]
                if best_idx >= 0 and (
                    ub[b] < best
                    or (ub[b] == best and _block_start(b, nbx, block, w_size) >= best_idx)
                ):
                    if ub[b] < best:
                        break
                    continue
                by = b // nbx
                bx = b % nbx
                best, best_idx = _scan_block(
                    hk,
                    tk,
                    ref,
                    mult,
                    by * block,
                    min(by * block + block, h_size),
                    bx * block,
                    min(bx * block + block, w_size),
                    w_size,
                    best,
                    best_idx,
                    buf,
                    acc,
                    sq,
                )
            y = best_idx // w_size
            x = best_idx % w_size
            val = hk[y, x]
            if mode == REFINE_MMPOSE:
                out_kp[p, k, 0] = x
                out_kp[p, k, 1] = y
                out_kp[p, k, 2] = val
                continue
            if not val > 0:
                continue
            dx = 0.0
            dy = 0.0
            if adjust:
                dx, dy = quarter_offset(
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
            out_kp[p, k, 0] = (x + dx) + shift
            out_kp[p, k, 1] = (y + dy) + shift
            if mode == REFINE_POSE_AE:
                out_kp[p, k, 2] = 1
            else:
                out_kp[p, k, 2] = val


# --- whole images -------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def decode_image(heat, tags, order, m_size, ip, fp, mult_arr, out_kp, out_score, out_tag):
    """Decode one image (``heat (K, H, W)``, ``tags (K, D, H, W)``); return the people count."""
    n_joints, h_size, w_size = heat.shape
    dim = tags.shape[1]
    cand_val = np.empty((n_joints, m_size), heat.dtype)
    cand_idx = np.empty((n_joints, m_size), np.int64)
    cand_cnt = np.empty(n_joints, np.int64)
    cand_tag = np.empty((n_joints, m_size, dim), tags.dtype)
    cand_nb = np.empty((n_joints, m_size, 4), heat.dtype)
    find_candidates(
        heat, fp[FP_DETECTION_THRESHOLD], ip[IP_NMS_KERNEL], cand_val, cand_idx, cand_cnt
    )
    gather_candidates(heat, tags, cand_idx, cand_cnt, cand_tag, cand_nb)
    cap = out_kp.shape[0]
    out_ref = np.empty((cap, dim), tags.dtype)
    out_det = np.empty((cap, n_joints), np.uint8)
    n = group_image(
        cand_val,
        cand_idx,
        cand_cnt,
        cand_tag,
        cand_nb,
        h_size,
        w_size,
        order,
        ip,
        fp,
        out_kp,
        out_score,
        out_tag,
        out_ref,
        out_det,
    )
    if ip[IP_REFINE] != REFINE_OFF:
        slot = np.arange(n_joints)
        refine_image(
            heat, tags, slot, n, ip, fp, mult_arr, cand_idx, cand_cnt, out_kp, out_ref, out_det
        )
    return n


@njit(cache=True, nogil=True)
def decode_range(
    heat, tags, order, m_size, ip, fp, mult_arr, start, stop, out_kp, out_score, out_tag, out_n
):
    """Decode images ``start:stop`` of a batch (``heat (B, K, H, W)``, ``tags (B, K, D, H, W)``)."""
    for b in range(start, stop):
        out_n[b] = decode_image(
            heat[b], tags[b], order, m_size, ip, fp, mult_arr, out_kp[b], out_score[b], out_tag[b]
        )


@njit(cache=True, nogil=True)
def group_range(
    cand_val,
    cand_idx,
    cand_cnt,
    cand_tag,
    cand_nb,
    h_size,
    w_size,
    order,
    ip,
    fp,
    start,
    stop,
    out_kp,
    out_score,
    out_tag,
    out_ref,
    out_det,
    out_n,
):
    """Group images ``start:stop`` of a batch of candidates (leading axis B everywhere)."""
    for b in range(start, stop):
        out_n[b] = group_image(
            cand_val[b],
            cand_idx[b],
            cand_cnt[b],
            cand_tag[b],
            cand_nb[b],
            h_size,
            w_size,
            order,
            ip,
            fp,
            out_kp[b],
            out_score[b],
            out_tag[b],
            out_ref[b],
            out_det[b],
        )


@njit(cache=True, nogil=True)
def refine_range(
    heat,
    tags,
    slot,
    n_people,
    ip,
    fp,
    mult_arr,
    cand_idx,
    cand_cnt,
    start,
    stop,
    out_kp,
    out_ref,
    out_det,
):
    """Recover missing joints in images ``start:stop``; ``slot (B, K)`` indexes ``heat``."""
    for b in range(start, stop):
        refine_image(
            heat,
            tags,
            slot[b],
            n_people[b],
            ip,
            fp,
            mult_arr,
            cand_idx[b],
            cand_cnt[b],
            out_kp[b],
            out_ref[b],
            out_det[b],
        )
