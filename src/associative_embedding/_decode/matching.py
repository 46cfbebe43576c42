"""The joint-by-joint matching pass of the decoder (numba), shared by every grouping mode.

The joint types are visited in ``order``; the first with candidates starts one
person per candidate, each later one is assigned to the people found so far
and a candidate too far from its match starts a person. With the references'
cost (``TAG_COST_ROUNDED``) the assignment runs over every pair, as
pose-ae-train ``utils/group.py``, HigherHRNet ``lib/core/group.py`` and mmpose
``codecs/associative_embedding.py`` do, bit for bit: matching distances in
float64 from tags in the work dtype, person means in numpy's summation order
(``sums``), ``round`` as numpy's round-half-to-even; the solver makes the
choices of munkres 1.1.4. The crowd costs assign over the feasible pairs only
(:func:`assign_feasible`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .jit import kernel
from .munkres import munkres_assign
from .sums import mean_rows, pairwise_sum

MATCH_HUNGARIAN = 0
MATCH_GREEDY = 1
TAG_COST_ROUNDED = 0
TAG_COST_TIEBREAK = 1
TAG_COST_EXACT = 2

# the references pad the cost matrix with this value when candidates outnumber people
PAD_COST = 1e10


class GroupOptions(NamedTuple):
    """The grouping options, as the kernels read them (built by ``options.build``).

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


@kernel(inline="always")
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


@kernel(inline="always")
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


@kernel(inline="always")
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


@kernel(inline="always")
def person_means(joint_of, n_people, cand_tag, order, means, rows, buf):
    """``means[p]`` = numpy mean of person p's candidate tags in joint ``order``."""
    for p in range(n_people):
        member_mean(joint_of, p, cand_tag, order, rows, buf, means[p])


class AssignWork(NamedTuple):
    """Scratch of :func:`assign_feasible` and :func:`first_pass` (int64 arrays).

    ``col_comp (C,)`` the component of each column; ``row_comp (M,)`` of each
    row; ``sub_row (M,)`` the rows of a component (first the search stack);
    ``sub_col (C,)`` its columns; ``col_of_row (M,)`` munkres' answer;
    ``match (M,)`` the result: the person of each row, -1 for none.
    """

    col_comp: np.ndarray
    row_comp: np.ndarray
    sub_row: np.ndarray
    sub_col: np.ndarray
    col_of_row: np.ndarray
    match: np.ndarray


@kernel(inline="always")
def new_work(m_size, n_cols):
    """:class:`AssignWork` for up to M rows and ``n_cols`` columns."""
    m = max(m_size, 1)
    c = max(n_cols, 1)
    return AssignWork(
        np.empty(c, np.int64),
        np.empty(m, np.int64),
        np.empty(m, np.int64),
        np.empty(c, np.int64),
        np.empty(m, np.int64),
        np.empty(m, np.int64),
    )


@kernel(no_cpython_wrapper=True)
def _grow_component(feasible, n_rows, n_cols, r0, comp, work):
    """Label with ``comp`` every row and column connected to row ``r0`` by feasible pairs."""
    work.row_comp[r0] = comp
    stack = work.sub_row
    stack[0] = r0
    top = 1
    while top > 0:
        top -= 1
        r = stack[top]
        for c in range(n_cols):
            if not feasible[r, c] or work.col_comp[c] >= 0:
                continue
            work.col_comp[c] = comp
            for r2 in range(n_rows):
                if feasible[r2, c] and work.row_comp[r2] < 0:
                    work.row_comp[r2] = comp
                    stack[top] = r2
                    top += 1


@kernel(no_cpython_wrapper=True)
def _components(feasible, n_rows, n_cols, work):
    """Label the components of the feasible pairs by their first row; return their count.

    Rows without a feasible pair belong to none (-1).
    """
    work.col_comp[:n_cols] = -1
    work.row_comp[:n_rows] = -1
    work.match[:n_rows] = -1
    n_comp = np.int64(0)  # not a literal: one compile of _grow_component
    for r0 in range(n_rows):
        if work.row_comp[r0] >= 0:
            continue
        for c in range(n_cols):
            if feasible[r0, c]:
                _grow_component(feasible, n_rows, n_cols, r0, n_comp, work)
                n_comp += 1
                break
    return n_comp


@kernel(inline="always", no_cpython_wrapper=True)
def _members(comp_of, n, comp, out):
    """Write the indices i < n with ``comp_of[i] == comp`` to ``out``, in order; their count."""
    cnt = np.int64(0)  # not a literal: one compile of _solve_component
    for i in range(n):
        if comp_of[i] == comp:
            out[cnt] = i
            cnt += 1
    return cnt


@kernel(no_cpython_wrapper=True)
def _solve_component(vals, n_sub_r, n_sub_c, costs, work):
    """Assign the rows ``work.sub_row[:n_sub_r]`` to the columns ``work.sub_col[:n_sub_c]``.

    With one row (every column of its component is feasible), munkres 1.1.4
    stars the first zero of the row less its minimum, the first minimum;
    padding rows of zeros take the other columns. Otherwise munkres on the
    square-padded matrix, ``PAD_COST`` where infeasible.
    """
    total, feasible, use_value, tag_cost = costs
    sub_row = work.sub_row
    sub_col = work.sub_col
    if n_sub_r == 1:
        r = sub_row[0]
        val = np.float64(vals[r])
        best = 0
        best_cost = match_cost(total[r, sub_col[0]], val, use_value, tag_cost)
        for jj in range(1, n_sub_c):
            v = match_cost(total[r, sub_col[jj]], val, use_value, tag_cost)
            if v < best_cost:
                best_cost = v
                best = jj
        work.match[r] = sub_col[best]
        return
    width = max(n_sub_r, n_sub_c)
    cost = np.full((n_sub_r, width), PAD_COST, np.float64)
    for i in range(n_sub_r):
        r = sub_row[i]
        val = np.float64(vals[r])
        for jj in range(n_sub_c):
            if feasible[r, sub_col[jj]]:
                cost[i, jj] = match_cost(total[r, sub_col[jj]], val, use_value, tag_cost)
    col_of_row = work.col_of_row[:n_sub_r]
    munkres_assign(cost, col_of_row)
    for i in range(n_sub_r):
        jj = col_of_row[i]
        r = sub_row[i]
        if 0 <= jj < n_sub_c and feasible[r, sub_col[jj]]:
            work.match[r] = sub_col[jj]


@kernel()
def assign_feasible(vals, n_rows, n_cols, costs, work):
    """Assign a joint type's candidates to people over the feasible pairs only.

    ``vals (>= R,)`` are the candidates' detection values; ``costs = (total,
    feasible, use_value, tag_cost)``: the tag distances ``total`` and the
    feasible pairs ``feasible`` (``(>= R, >= C)`` each) and the cost options of
    :func:`match_cost`. The feasible pairs form a bipartite graph; each of its
    connected components (numbered by their first row) is solved on its own
    by the munkres 1.1.4 method, rows and columns in order, with cost
    ``match_cost(total[r, c], v)`` where feasible and ``PAD_COST`` elsewhere.
    ``work.match`` (:class:`AssignWork`) receives the person of each row, -1
    if it has no feasible match.
    """
    feasible = costs[1]
    n_comp = _components(feasible, n_rows, n_cols, work)
    for comp in range(n_comp):
        n_sub_r = _members(work.row_comp, n_rows, comp, work.sub_row)
        n_sub_c = _members(work.col_comp, n_cols, comp, work.sub_col)
        _solve_component(vals, n_sub_r, n_sub_c, costs, work)


@kernel()
def first_pass(cand, order, g, tag_cost, joint_of, crowd_costs):
    """Group joint by joint as the references do, with ``match_cost``; return the count.

    The first joint type (in ``order``) with candidates starts one person per
    candidate; each later one is assigned to the first ``match_cap`` people
    (all if < 0) and a candidate joins its person if ``d < tag_threshold``,
    else starts a new one. ``g.matching == MATCH_GREEDY`` (the paper's text):
    each person, in creation order, takes the first unclaimed candidate (the
    strongest) within the threshold. Otherwise, with ``TAG_COST_ROUNDED`` the
    assignment runs over every pair, as the references'; with the crowd costs
    over the feasible pairs (``d < tag_threshold``) only
    (:func:`assign_feasible`). ``cand`` is a ``Candidates`` record, ``g``
    the ``GroupOptions``; ``joint_of (>= K * M, K)`` receives the candidate
    rows (-1 where missing). ``crowd_costs`` is None on the references' path:
    ``tag_cost`` is then ``TAG_COST_ROUNDED`` and numba drops the crowd branch
    at compile time (an argument typed None prunes its ``is None`` tests), so a
    first call does not compile :func:`assign_feasible`; the crowd decoder
    passes True.
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
    work = new_work(m_size, cap)
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
        match = work.match
        if g.matching == MATCH_GREEDY:
            for r in range(n_rows):
                match[r] = -1
            for c in range(n_cols):
                for r in range(n_rows):
                    if match[r] < 0 and dist[r, c] < tag_threshold:
                        match[r] = c
                        break
        elif crowd_costs is None or tag_cost == TAG_COST_ROUNDED:  # the references' assignment
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
            feasible = dist < tag_threshold
            assign_feasible(
                cand_val[k], n_rows, n_cols, (dist, feasible, use_value, tag_cost), work
            )
        for r in range(n_rows):
            if match[r] >= 0:
                joint_of[match[r], k] = r
            else:
                joint_of[n_people, k] = r
                n_people += 1
    return n_people
