"""Sums in numpy's order, compiled with numba (a kernel module of the decoder).

The decoder's results equal the reference parsers' numpy code bit for bit, so
its means of tags and its person scores add numbers in the order numpy's
``add.reduce`` does:

- means of tags follow numpy's ``np.mean(list_of_tags, axis=0)``: a pairwise
  sum (numpy's 8-accumulator blocks) when D == 1, a sequential sum when D > 1,
  accumulated in the work dtype, then one division;
- sums over the D tag dimensions follow numpy's pairwise sum along the last
  axis (sequential for D < 8);
- the person score is numpy's ``keypoints[:, 2].mean()``: a pairwise sum over K
  in the work dtype.
"""

from __future__ import annotations

import numpy as np

from .jit import kernel


@kernel(inline="always", no_cpython_wrapper=True)
def _sequential_sum(a, start, n):
    """Sum ``a[start:start + n]`` one after another, in ``a``'s dtype (numpy's order for n < 8)."""
    res = a[start] - a[start]
    for i in range(n):
        res += a[start + i]
    return res


@kernel(no_cpython_wrapper=True)
def _pairwise_block(a, start, n):
    """Sum ``a[start:start + n]`` as numpy's pairwise sum does for 1 <= n <= 128.

    Compiled on its own rather than inlined by numba: :func:`_pairwise_sum` calls
    it twice, and two inlined copies cost numba's front end twice (about 0.5 s of
    a first call); LLVM still inlines it.
    """
    if n < 8:
        return _sequential_sum(a, start, n)
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


@kernel(inline="always")
def pairwise_sum(a, start, n):
    """Sum ``a[start:start + n]`` in the order of numpy's pairwise summation.

    Fewer than 8 numbers (a distance over D < 8 tag dimensions, the usual case)
    are added here, one after another as numpy does, without a call. Longer
    runs go to :func:`_pairwise_sum` with ``start`` and ``n`` made plain int64:
    numba compiles a function once per argument type, and a constant argument
    (``0``) has a type of its own, so each call site with constants would
    compile the sum again.
    """
    if n < 8:
        return _sequential_sum(a, start, n)
    return _pairwise_sum(a, np.int64(start), np.int64(n))


@kernel(no_cpython_wrapper=True)
def _pairwise_sum(a, start, n):
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


@kernel(inline="always")
def mean_rows(rows, n, out, buf):
    """``out[:] = np.mean(rows[:n], axis=0)`` with numpy's summation order and dtype.

    Row after row here, without a call, where numpy adds one after another: D > 1,
    or fewer than 8 rows (a pairwise sum of fewer than 8 numbers is sequential).
    Otherwise (D = 1) :func:`_mean_rows`, with ``n`` made plain int64.
    """
    dim = rows.shape[1]
    if dim > 1 or n < 8:
        for d in range(dim):
            s = rows[0, d] - rows[0, d]
            for i in range(n):
                s += rows[i, d]
            out[d] = s / n
    else:
        _mean_rows(rows, np.int64(n), out, buf)


@kernel(no_cpython_wrapper=True)
def _mean_rows(rows, n, out, buf):
    """``out[0] = np.mean(rows[:n], axis=0)[0]`` for D = 1: numpy's pairwise sum, then a division.

    ``rows`` is ``(>= n, 1)``, ``out`` ``(1,)``, ``buf`` a scratch vector of at
    least ``n`` entries, all of one dtype; ``n`` must be >= 1. numpy reduces a
    ``(n, 1)`` array pairwise (a ``(n, D > 1)`` one row after row, which
    :func:`mean_rows` adds itself).
    """
    for i in range(n):
        buf[i] = rows[i, 0]
    out[0] = _pairwise_sum(buf, np.int64(0), n) / n
