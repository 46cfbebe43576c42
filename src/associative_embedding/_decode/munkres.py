"""A numba linear-assignment solver that makes the same choices as ``munkres`` 1.1.4.

The reference parsers (pose-ae-train, HigherHRNet, mmpose) match each joint
type's candidates to the people found so far with
``munkres.Munkres().compute(cost)`` on integer-rounded costs
``round(distance) * 100 - detection_value``. Such costs tie often, and among
equally cheap assignments each solver picks its own: scipy's
``linear_sum_assignment`` and ``munkres`` 3.x choose differently from
``munkres`` 1.1.4, the version the reference results were produced with.

:func:`munkres_assign` follows ``munkres`` 1.1.4 step by step: it pads the
matrix with zeros to a square, subtracts row minima, stars zeros greedily in
row-major order, searches for uncovered zeros with the same wrap-around scan
that resumes where the previous search stopped (keeping the *last* uncovered
zero of the first row that has one), builds the same augmenting paths, and
adjusts the matrix with the same float64 operations in the same order (a
covered row first gains the minimum, then an uncovered column loses it, so
``(c + m) - m`` is rounded exactly as in the Python code). Its output therefore
equals ``Munkres().compute(cost.tolist())`` bit for bit on every finite input,
ties included.

This module needs only numpy and numba, so the decoder kernels can call the
solver from compiled code.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .jit import kernel

__all__ = ["linear_assignment", "munkres_assign"]

# munkres 1.1.4 starts its minimum search at sys.maxsize == 2**63 - 1 (a Python int).
# No float64 lies strictly between 2**63 - 1 and 2**63, so comparing floats with
# 2.0**63 gives the same answers as comparing them with the int.
_MAXSIZE = 9223372036854775808.0


@kernel()
def _find_a_zero(c, row_covered, col_covered, i0, j0):
    """Scan for an uncovered zero as munkres 1.1.4 ``__find_a_zero`` does, from ``(i0, j0)``.

    Within the first row (in cyclic order from ``i0``) that holds an uncovered
    zero, the scan keeps going to the end of the row and returns the *last*
    uncovered zero met in cyclic column order from ``j0``. Returns ``(-1, -1)``
    if there is none.
    """
    n = c.shape[0]
    row = -1
    col = -1
    i = i0
    done = False
    while not done:
        if not row_covered[i]:  # a covered row holds no candidate: skip its scan
            j = j0
            while True:
                if c[i, j] == 0.0 and not col_covered[j]:
                    row = i
                    col = j
                    done = True
                j = (j + 1) % n
                if j == j0:
                    break
        i = (i + 1) % n
        if i == i0:
            done = True
    return row, col


class _State(NamedTuple):
    """The working state of :func:`munkres_assign` on an ``n x n`` padded matrix.

    ``c (n, n)`` the reduced costs; ``marked (n, n)`` int8, 1 = star, 2 =
    prime; ``row_covered``, ``col_covered (n,)`` bool; ``path (2n + 1, 2)``
    the augmenting path of step 5.
    """

    c: np.ndarray
    marked: np.ndarray
    row_covered: np.ndarray
    col_covered: np.ndarray
    path: np.ndarray


@kernel()
def _unique_minima(cost, col_of_row):
    """Assign each row its minimum if every minimum is strict and in a column of its own.

    Then that assignment is the only optimal one, and munkres reaches it in
    step 2: step 1 leaves one zero per row (x - min is 0 only for x == min),
    step 2 stars them all (distinct columns) and stars the padded zero rows in
    the columns left, step 3 finds every column covered. Returns whether it
    applied; ``col_of_row`` is left all -1 otherwise. For R <= C.
    """
    n_rows, n_cols = cost.shape
    for i in range(n_rows):
        j_min = 0
        for j in range(1, n_cols):
            if cost[i, j] < cost[i, j_min]:
                j_min = j
        unique = True
        for j in range(n_cols):
            if j != j_min and cost[i, j] == cost[i, j_min]:
                unique = False
        for i2 in range(i):
            if col_of_row[i2] == j_min:
                unique = False
        if not unique:
            col_of_row[:n_rows] = -1
            return False
        col_of_row[i] = j_min
    return True


@kernel()
def _new_state(cost):
    """Run steps 0 to 2: pad with zeros to a square, subtract row minima, star zeros."""
    n_rows, n_cols = cost.shape
    n = max(n_rows, n_cols)
    # np.empty and loops, not np.zeros: each np.zeros signature is one more compiled
    # function on a first call
    st = _State(
        np.empty((n, n), np.float64),
        np.empty((n, n), np.int8),
        np.empty(n, np.bool_),
        np.empty(n, np.bool_),
        np.empty((2 * n + 1, 2), np.int64),
    )
    c = st.c
    for i in range(n):
        for j in range(n):
            c[i, j] = cost[i, j] if i < n_rows and j < n_cols else 0.0
            st.marked[i, j] = 0
    st.row_covered[:] = False
    st.col_covered[:] = False
    st.path[:] = 0
    # step 1: subtract each row's minimum (Python's min keeps the first of equal values)
    for i in range(n):
        minval = c[i, 0]
        for j in range(1, n):
            if c[i, j] < minval:
                minval = c[i, j]
        for j in range(n):
            c[i, j] -= minval
    # step 2: star the first uncovered zero of each row, in row-major order
    for i in range(n):
        for j in range(n):
            if c[i, j] == 0.0 and not st.col_covered[j] and not st.row_covered[i]:
                st.marked[i, j] = 1
                st.col_covered[j] = True
                st.row_covered[i] = True
                break
    st.row_covered[:] = False
    st.col_covered[:] = False
    return st


@kernel()
def _cover_starred(st):
    """Step 3: cover the starred columns; return how many are covered."""
    n = st.c.shape[0]
    count = 0
    for i in range(n):
        for j in range(n):
            if st.marked[i, j] == 1 and not st.col_covered[j]:
                st.col_covered[j] = True
                count += 1
    return count


@kernel()
def _shift_uncovered(st):
    """Step 6: add the smallest uncovered value to covered rows, take it from uncovered columns."""
    c = st.c
    n = c.shape[0]
    minval = _MAXSIZE
    for i in range(n):
        for j in range(n):
            if not st.row_covered[i] and not st.col_covered[j] and minval > c[i, j]:
                minval = c[i, j]
    for i in range(n):
        covered = st.row_covered[i]
        for j in range(n):
            if covered:
                c[i, j] += minval
            if not st.col_covered[j]:
                c[i, j] -= minval


@kernel()
def _prime_zeros(st):
    """Step 4 (with step 6 when no uncovered zero is left): return the unstarred prime.

    Primes uncovered zeros; where the prime's row has a star, covers the row
    and uncovers the star's column; stops at a prime with no star in its row.
    """
    row = np.int64(0)  # not the constant 0: one compiled _find_a_zero
    col = np.int64(0)
    while True:
        row, col = _find_a_zero(st.c, st.row_covered, st.col_covered, row, col)
        if row < 0:
            _shift_uncovered(st)
            row = np.int64(0)  # back to step 4, which starts its search at (0, 0) again
            col = np.int64(0)
            continue
        st.marked[row, col] = 2
        star_col = _first_in_row(st.marked, row, 1)
        if star_col < 0:
            return row, col
        col = star_col
        st.row_covered[row] = True
        st.col_covered[col] = False


@kernel(inline="always")
def _first_in_row(marked, i, mark):
    """Return the first column j with ``marked[i, j] == mark``, or -1."""
    for j in range(marked.shape[1]):
        if marked[i, j] == mark:
            return j
    return -1


@kernel(inline="always")
def _first_in_col(marked, j, mark):
    """Return the first row i with ``marked[i, j] == mark``, or -1."""
    for i in range(marked.shape[0]):
        if marked[i, j] == mark:
            return i
    return -1


@kernel()
def _augment(st, row, col):
    """Step 5: flip the path of alternating primes and stars from the prime ``(row, col)``.

    Then uncover everything and erase the primes.
    """
    path = st.path
    marked = st.marked
    count = 0
    path[0, 0] = row
    path[0, 1] = col
    while True:
        star_row = _first_in_col(marked, path[count, 1], 1)
        if star_row < 0:
            break
        count += 1
        path[count, 0] = star_row
        path[count, 1] = path[count - 1, 1]
        count += 1
        path[count, 0] = path[count - 1, 0]
        path[count, 1] = _first_in_row(marked, path[count, 0], 2)
    for k in range(count + 1):
        if marked[path[k, 0], path[k, 1]] == 1:
            marked[path[k, 0], path[k, 1]] = 0
        else:
            marked[path[k, 0], path[k, 1]] = 1
    st.row_covered[:] = False
    st.col_covered[:] = False
    for i in range(marked.shape[0]):
        for j in range(marked.shape[1]):
            if marked[i, j] == 2:
                marked[i, j] = 0


@kernel()
def munkres_assign(cost, col_of_row):
    """Solve a linear assignment exactly as ``munkres.Munkres().compute`` (1.1.4) does.

    Parameters
    ----------
    cost : float64[:, ::1], shape (R, C)
        Finite costs; R, C >= 0. Not modified.
    col_of_row : int64[::1], shape (R,)
        Output, written in place: ``col_of_row[i]`` is the column that
        ``Munkres().compute(cost.tolist())`` pairs with row ``i``, or -1 if row
        ``i`` gets no column (only possible when R > C: munkres pads to a square
        and drops pairs with padded indices).

    Returns
    -------
    int
        The number of assigned rows, ``min(R, C)``.

    Notes
    -----
    munkres raises ``IndexError`` for R == 0; here nothing is assigned and 0 is
    returned. Costs must be finite and below 2**63 in magnitude (munkres' own
    limits); NaN or infinity give undefined results.
    """
    n_rows, n_cols = cost.shape
    col_of_row[:n_rows] = -1
    if n_rows == 0 or n_cols == 0:
        return 0
    if n_rows <= n_cols and _unique_minima(cost, col_of_row):
        return n_rows
    st = _new_state(cost)
    while _cover_starred(st) < st.c.shape[0]:
        row, col = _prime_zeros(st)
        _augment(st, row, col)
    assigned = 0
    for i in range(n_rows):
        j = _first_in_row(st.marked, i, 1)
        if 0 <= j < n_cols:
            col_of_row[i] = j
            assigned += 1
    return assigned


def linear_assignment(cost):
    """Solve ``cost`` with :func:`munkres_assign`; return ``(rows, cols)`` like scipy.

    Parameters
    ----------
    cost : array_like, shape (R, C)
        Finite costs, converted to C-contiguous float64.

    Returns
    -------
    rows, cols : ndarray of int64, shape (min(R, C),)
        The assigned pairs, rows increasing; the same pairs, in the same order,
        as ``munkres.Munkres().compute(cost.tolist())`` (1.1.4).

    Raises
    ------
    ValueError
        If ``cost`` is not 2-D or holds NaN or infinity.
    """
    arr = np.ascontiguousarray(cost, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"cost must have shape (R, C), got shape {arr.shape}")
    if arr.size and not np.isfinite(arr).all():
        raise ValueError("cost contains NaN or infinite values")
    col_of_row = np.empty(arr.shape[0], dtype=np.int64)
    munkres_assign(arr, col_of_row)
    rows = np.flatnonzero(col_of_row >= 0)
    return rows.astype(np.int64), col_of_row[rows]
