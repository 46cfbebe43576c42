"""The numba solver must make exactly the choices of ``munkres`` 1.1.4."""

from __future__ import annotations

import munkres
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import linear_sum_assignment

from associative_embedding._decode.munkres import linear_assignment, munkres_assign

KINDS = ("integer", "reference", "reference_padded", "float")


def test_oracle_version():
    # the parity target is munkres 1.1.x; 3.x breaks ties differently (munkres 1.1.4 vs 3.x, ``munkres.py``)
    assert munkres.__version__ == "1.1.4"


def oracle(cost: np.ndarray) -> list[tuple[int, int]]:
    return [tuple(p) for p in munkres.Munkres().compute(cost.tolist())]


def solve(cost: np.ndarray) -> list[tuple[int, int]]:
    col_of_row = np.full(cost.shape[0], 123, dtype=np.int64)
    n = munkres_assign(np.ascontiguousarray(cost, dtype=np.float64), col_of_row)
    pairs = [(i, int(j)) for i, j in enumerate(col_of_row) if j >= 0]
    assert n == len(pairs) == min(cost.shape)
    assert np.all(col_of_row >= -1)
    return pairs


def make_cost(rng: np.random.Generator, kind: str, max_size: int) -> np.ndarray:
    """Random cost matrices of the kinds the reference parsers produce, and others."""
    r, c = (int(v) for v in rng.integers(1, max_size + 1, size=2))
    if kind == "integer":
        # few distinct values: many ties
        return rng.integers(0, int(rng.integers(1, 5)), size=(r, c)).astype(np.float64)
    if kind in ("reference", "reference_padded"):
        # HigherHRNet: np.round(L2 distance) * 100 - detection value (float32 promoted)
        dist = rng.exponential(float(rng.uniform(0.3, 2.0)), size=(r, c))
        val = rng.uniform(0.0, 1.0, size=r).astype(np.float32)
        if rng.random() < 0.5:  # equal detection values in some rows
            val[rng.integers(0, r, size=r // 2)] = val[0]
        cost = np.round(dist) * 100 - val.astype(np.float64)[:, None]
        if kind == "reference_padded" and r > c:
            cost = np.concatenate((cost, np.zeros((r, r - c)) + 1e10), axis=1)
        return cost
    return rng.standard_normal((r, c)) * float(rng.uniform(0.1, 100.0))


@pytest.mark.parametrize("kind", KINDS)
def test_equals_munkres_on_random_matrices(kind):
    rng = np.random.default_rng(["integer", "reference", "reference_padded", "float"].index(kind))
    for _ in range(2000):
        cost = make_cost(rng, kind, max_size=12)
        assert solve(cost) == oracle(cost), cost


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_equals_munkres_on_larger_matrices(kind):
    rng = np.random.default_rng(100 + KINDS.index(kind))
    for _ in range(500):
        cost = make_cost(rng, kind, max_size=30)
        assert solve(cost) == oracle(cost), cost


def test_equals_munkres_when_each_row_has_its_own_minimum():
    """The solver's fast path (strict row minima in distinct columns) and its near misses."""
    rng = np.random.default_rng(11)
    for trial in range(2000):
        r = int(rng.integers(1, 13))
        c = int(rng.integers(r, 16))
        cols = rng.permutation(c)[:r]
        # separated people: the own person's rounded distance is smallest (HigherHRNet costs)
        dist = rng.integers(1, 6, size=(r, c)).astype(np.float64)
        dist[np.arange(r), cols] = 0.0
        val = rng.uniform(0.0, 1.0, size=r).astype(np.float32).astype(np.float64)
        cost = dist * 100 - val[:, None]
        if trial % 3 == 1:  # a tie with the minimum in one row
            i = int(rng.integers(0, r))
            j = int(rng.integers(0, c))
            cost[i, j] = cost[i, cols[i]]
        elif trial % 3 == 2 and r > 1:  # two rows whose minima share a column
            cost[1, cols[0]] = cost[1].min() - 1.0
        assert solve(cost) == oracle(cost), cost


@settings(max_examples=300, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 9), st.integers(1, 9)),
        elements=st.integers(-3, 3).map(float) | st.sampled_from([0.5, 1e10, -0.0, 99.25]),
    )
)
def test_equals_munkres_hypothesis(cost):
    assert solve(cost) == oracle(cost)


@pytest.mark.parametrize("kind", KINDS)
def test_total_cost_is_optimal(kind):
    rng = np.random.default_rng(7 + KINDS.index(kind))
    for _ in range(300):
        cost = make_cost(rng, kind, max_size=12)
        rows, cols = linear_assignment(cost)
        ref_rows, ref_cols = linear_sum_assignment(cost)
        assert len(rows) == len(ref_rows) == min(cost.shape)
        assert len(set(cols.tolist())) == len(cols)
        np.testing.assert_allclose(
            cost[rows, cols].sum(), cost[ref_rows, ref_cols].sum(), rtol=1e-12, atol=1e-6
        )


@pytest.mark.parametrize("shape", [(0, 0), (0, 3), (3, 0)])
def test_empty(shape):
    col_of_row = np.full(shape[0], 5, dtype=np.int64)
    assert munkres_assign(np.zeros(shape), col_of_row) == 0
    assert np.all(col_of_row == -1)
    rows, cols = linear_assignment(np.zeros(shape))
    assert rows.shape == cols.shape == (0,)


def test_one_by_one():
    assert solve(np.array([[-4.5]])) == [(0, 0)]


@pytest.mark.parametrize("shape", [(1, 1), (4, 4), (3, 6), (6, 3)])
def test_all_equal(shape):
    cost = np.full(shape, 2.0)
    got = solve(cost)
    assert got == oracle(cost)
    if shape[0] <= shape[1]:
        # no padded columns: munkres stars the leading diagonal of a constant matrix
        assert got == [(i, i) for i in range(shape[0])]


def test_single_row_and_column():
    row = np.array([[3.0, 1.0, 2.0, 1.0]])
    assert solve(row) == oracle(row) == [(0, 1)]
    col = row.T.copy()
    assert solve(col) == oracle(col) == [(1, 0)]


def test_rows_beyond_columns_get_minus_one():
    cost = np.array([[5.0], [1.0], [3.0]])
    col_of_row = np.empty(3, dtype=np.int64)
    assert munkres_assign(cost, col_of_row) == 1
    assert col_of_row.tolist() == [-1, 0, -1]


def test_ties_differ_from_scipy():
    # the point of this module: on tied costs munkres 1.1.4 and scipy choose differently
    rng = np.random.default_rng(3)
    differ = 0
    for _ in range(300):
        cost = make_cost(rng, "integer", max_size=8)
        rows, cols = linear_sum_assignment(cost)
        differ += solve(cost) != list(zip(rows.tolist(), cols.tolist(), strict=True))
    assert differ > 0


@pytest.mark.parametrize(
    "cost",
    [
        [
            [0.2, 3.0, 0.3, 0.1, 0.7],
            [0.2, 1e10, 0.3, 0.2, 0.7],
            [3.0, 0.2, 0.2, 0.1, 1e10],
            [0.2, 0.2, 1e16, 0.2, 1e16],
            [1e10, 3.0, 3.0, 0.1, 1e16],
        ],
        [
            [0.7, 1e10, 0.2, 0.1, 1e10, 1e16, 0.1],
            [3.0, 3.0, 1e16, 1e16, 3.0, 0.3, 1e10],
            [0.1, 0.1, 0.1, 0.7, 0.3, 1e10, 3.0],
            [0.3, 0.3, 3.0, 1e16, 0.7, 0.1, 1e16],
            [0.7, 1e16, 0.2, 3.0, 0.2, 0.1, 0.3],
            [0.7, 1e16, 0.3, 0.7, 0.7, 0.2, 1e10],
            [0.7, 0.1, 1e16, 1e10, 0.3, 0.3, 1e16],
        ],
    ],
)
def test_float_rounding_order(cost):
    # found by search: munkres' step 6 computes (c + m) - m on covered rows and uncovered
    # columns; skipping that no-op in exact arithmetic changes the rounding and the answer
    cost = np.array(cost)
    assert solve(cost) == oracle(cost)


def test_input_not_modified():
    rng = np.random.default_rng(4)
    cost = make_cost(rng, "reference", max_size=10)
    before = cost.copy()
    solve(cost)
    np.testing.assert_array_equal(cost, before)


def test_pure_python_path_equals_munkres():
    # the kernel stays valid Python (NUMBA_DISABLE_JIT=1): run its uncompiled body
    rng = np.random.default_rng(5)
    for kind in KINDS:
        for _ in range(10):
            cost = make_cost(rng, kind, max_size=6)
            col_of_row = np.empty(cost.shape[0], dtype=np.int64)
            getattr(munkres_assign, "py_func", munkres_assign)(cost, col_of_row)
            got = [(i, int(j)) for i, j in enumerate(col_of_row) if j >= 0]
            assert got == oracle(cost)


@pytest.mark.parametrize(
    ("cost", "match"),
    [(np.zeros(3), "shape"), (np.array([[0.0, np.nan]]), "NaN"), (np.array([[np.inf]]), "NaN")],
)
def test_linear_assignment_errors(cost, match):
    with pytest.raises(ValueError, match=match):
        linear_assignment(cost)
