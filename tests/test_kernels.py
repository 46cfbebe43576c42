"""The numba kernels of the decoder against plain numpy loops."""

from __future__ import annotations

import numpy as np
import pytest

from associative_embedding._decode import missing as _refine
from associative_embedding._decode import peaks as _peaks
from associative_embedding._decode import people as _grouping
from associative_embedding._decode import sums as _sums
from associative_embedding._decode import tiles as _tiles
from associative_embedding._decode.missing import RefineOptions
from associative_embedding._decode.peaks import Candidates
from associative_embedding._decode.people import People
from tests.reference_parser import quarter, top_k

DTYPES = [np.float32, np.float64]


# --- numpy-compatible sums ------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_pairwise_sum_matches_numpy_add_reduce(dtype, rng):
    lengths = [*range(1, 20), 31, 32, 33, 127, 128, 129, 130, 200, 256, 257, 1000, 4099]
    for n in lengths:
        for _ in range(5):
            a = (rng.standard_normal(n + 3) * 10 ** rng.uniform(-3, 3, n + 3)).astype(dtype)
            got = _sums.pairwise_sum(a, 3, n)
            want = np.add.reduce(a[3:])
            assert got == want, (n, got, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [1, 2, 3, 9])
def test_mean_rows_matches_np_mean_of_a_list(dtype, dim, rng):
    for n in range(1, 20):
        rows = (rng.standard_normal((n + 2, dim)) * 7).astype(dtype)
        out = np.empty(dim, dtype)
        buf = np.empty(n, dtype)
        _sums.mean_rows(rows, n, out, buf)
        want = np.mean([rows[i] for i in range(n)], axis=0)
        assert out.dtype == want.dtype
        np.testing.assert_array_equal(out, want)


# --- peaks ----------------------------------------------------------------------------------
def _tile_max(heat, block):
    """(K, n_tiles) largest value of each block x block tile, numbered row-major (numpy)."""
    k, h, w = heat.shape
    return np.array(
        [
            [
                heat[j, y : y + block, x : x + block].max()
                for y in range(0, h, block)
                for x in range(0, w, block)
            ]
            for j in range(k)
        ],
        heat.dtype,
    ).reshape(k, -1)


def _candidates(heat, threshold, kernel, m, tile_max=None):
    k = heat.shape[0]
    val = np.empty((k, m), heat.dtype)
    idx = np.empty((k, m), np.int64)
    cnt = np.empty(k, np.int64)
    unused = np.empty((k, m, 1), heat.dtype), np.empty((k, m, 4), heat.dtype)
    if tile_max is None:
        tile_max = np.empty((0, 1), heat.dtype)
    _peaks.find_candidates(heat, threshold, kernel, Candidates(val, idx, cnt, *unused), tile_max)
    return val, idx, cnt


def _reference_candidates(heat, threshold, kernel, m):
    """Plain NMS + top-k (reference_parser.top_k), then the threshold."""
    tags = np.zeros((heat.shape[0], 1, *heat.shape[1:]), heat.dtype)
    _, loc, val = top_k(heat, tags, m, kernel)
    idx = loc[..., 1] * heat.shape[2] + loc[..., 0]
    keep = val > threshold
    return [(val[k][keep[k]], idx[k][keep[k]]) for k in range(heat.shape[0])]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", [1, 3, 5, 7])
def test_find_candidates_matches_plain_nms_and_topk(dtype, kernel, rng):
    for trial in range(40):
        k, h, w = int(rng.integers(1, 4)), int(rng.integers(1, 40)), int(rng.integers(1, 40))
        heat = rng.random((k, h, w))
        if trial % 2:  # coarse values: plateaus and equal peaks
            heat = np.round(heat * 4) / 4
        heat = heat.astype(dtype)
        m = min(int(rng.integers(1, 12)), h * w)
        threshold = float(rng.choice([0.0, 0.1, 0.5]))
        want_max = _tile_max(heat, _peaks.TILE)
        tile_max = np.full_like(want_max, np.nan)
        val, idx, cnt = _candidates(heat, threshold, kernel, m, tile_max)
        for j, (rv, ri) in enumerate(_reference_candidates(heat, threshold, kernel, m)):
            assert cnt[j] == len(rv)
            np.testing.assert_array_equal(val[j, : cnt[j]], rv)
            np.testing.assert_array_equal(idx[j, : cnt[j]], ri)
        np.testing.assert_array_equal(tile_max, want_max)


def test_plateau_pixels_are_all_peaks_and_ties_rank_by_index():
    heat = np.zeros((1, 6, 7), np.float32)
    heat[0, 2, 2:4] = 0.7  # a two-pixel plateau: both are window maxima
    heat[0, 5, 6] = 0.7  # an equal, separate peak (later flat index)
    heat[0, 0, 0] = 0.9
    val, idx, cnt = _candidates(heat, 0.1, 3, 10)
    assert cnt[0] == 4
    assert val[0, :4].tolist() == pytest.approx([0.9, 0.7, 0.7, 0.7])
    assert idx[0, :4].tolist() == [0, 2 * 7 + 2, 2 * 7 + 3, 5 * 7 + 6]


def test_constant_and_empty_maps():
    flat = np.full((1, 3, 4), 0.5, np.float32)
    _, idx, cnt = _candidates(flat, 0.1, 5, 5)  # every pixel is a plateau peak
    assert cnt[0] == 5
    assert idx[0].tolist() == [0, 1, 2, 3, 4]
    _val, idx, cnt = _candidates(np.zeros((2, 5, 5), np.float32), 0.0, 3, 4)
    assert cnt.tolist() == [0, 0]  # values must be > threshold


def test_gather_candidates_reads_tags_and_clipped_neighbours(rng):
    heat = rng.random((2, 5, 6)).astype(np.float32)
    tags = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    idx = np.array([[0, 29, 13], [5, 24, 0]], np.int64)
    cnt = np.array([3, 2], np.int64)
    ctag = np.zeros((2, 3, 3), np.float32)
    nb = np.zeros((2, 3, 4), np.float32)
    _peaks.gather_candidates(
        heat, tags, Candidates(np.zeros((2, 3), np.float32), idx, cnt, ctag, nb)
    )
    for k in range(2):
        for m in range(cnt[k]):
            y, x = divmod(int(idx[k, m]), 6)
            np.testing.assert_array_equal(ctag[k, m], tags[k, :, y, x])
            want = [
                heat[k, y, max(x - 1, 0)],
                heat[k, y, min(x + 1, 5)],
                heat[k, max(y - 1, 0), x],
                heat[k, min(y + 1, 4), x],
            ]
            np.testing.assert_array_equal(nb[k, m], want)


# --- quarter offset -------------------------------------------------------------------------
@pytest.mark.parametrize("rule", ["reference", "mmpose"])
def test_quarter_offset_matches_the_reference_rules_everywhere(rule, rng):
    code = _grouping.ADJUST_REFERENCE if rule == "reference" else _grouping.ADJUST_MMPOSE
    for h, w in [(1, 1), (1, 5), (4, 1), (3, 3), (6, 7)]:
        tmp = np.round(rng.random((h, w)) * 3).astype(np.float32)  # many ties
        for y in range(h):
            for x in range(w):
                nb = (
                    tmp[y, max(x - 1, 0)],
                    tmp[y, min(x + 1, w - 1)],
                    tmp[max(y - 1, 0), x],
                    tmp[min(y + 1, h - 1), x],
                )
                got = _grouping.quarter_offset(nb, (x, y), (h, w), code)
                assert got == quarter(tmp, x, y, rule), (h, w, y, x)


# --- missing-joint search -------------------------------------------------------------------
def _brute_force(hk, tk, ref, mult):
    """argmax of ``h - mult * round(||t - ref||)`` over the map, first on ties (numpy)."""
    t = np.ascontiguousarray(np.moveaxis(tk, 0, 2))  # (H, W, D) as HigherHRNet lays tags out
    dist = ((t - ref[None, None, :]) ** 2).sum(axis=2) ** 0.5
    score = hk - np.round(dist) * mult
    return int(np.argmax(score))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block", [1, 2, 3, 5, 16])
@pytest.mark.parametrize("mode", [_refine.REFINE_HIGHERHRNET, _refine.REFINE_MMPOSE])
def test_refine_finds_the_full_scan_argmax(dtype, block, mode, rng):
    mult_value = 100 if mode == _refine.REFINE_MMPOSE else 1
    for trial in range(12):
        k, h, w = int(rng.integers(1, 4)), int(rng.integers(1, 30)), int(rng.integers(1, 30))
        dim = int(rng.choice([1, 2, 3, 9]))
        heat = rng.random((k, h, w)) * rng.choice([0.0, 0.2, 1.0, 3.0])
        tags = rng.standard_normal((k, dim, h, w)) * 2
        if trial % 3 == 0:  # coarse values: ties in score everywhere
            heat = np.round(heat * 2) / 2
            tags = np.round(tags)
        heat = heat.astype(dtype)
        tags = tags.astype(dtype)
        n = int(rng.integers(1, 6))
        ref = (rng.standard_normal((n, dim)) * 2).astype(dtype)
        det = (rng.random((n, k)) < 0.3).astype(np.uint8)
        kp = np.zeros((n, k, 3), dtype)
        kp[..., :2] = np.nan
        m = 4
        _val, idx, cnt = _candidates(heat, 0.1, 3, m)
        top_min = float(rng.choice([0.0, 0.1, 0.5, 10.0]))  # any value: the same answers
        mult = np.dtype(dtype).type(mult_value)
        opts = RefineOptions(mode, False, 0, block, 0.0, mult, top_min)
        cand = Candidates(_val, idx, cnt, np.zeros((k, m, dim), dtype), np.zeros((k, m, 4), dtype))
        out = People(kp, np.zeros(n, dtype), ref, ref.copy(), det)
        # the tiles' largest heat from the caller (the peak search's), or computed here
        tile_max = _tile_max(heat, block) if trial % 2 else np.empty((0, 1), dtype)
        _refine.refine_image(heat, tags, np.arange(k), n, cand, opts, out, tile_max)
        for p in range(n):
            for j in range(k):
                if det[p, j]:
                    assert np.isnan(kp[p, j, 0])
                    continue
                best = _brute_force(heat[j], tags[j], ref[p], mult_value)
                y, x = divmod(best, w)
                value = heat[j, y, x]
                if mode == _refine.REFINE_HIGHERHRNET and not value > 0:
                    assert np.isnan(kp[p, j, 0])
                    assert kp[p, j, 2] == 0
                else:
                    assert (kp[p, j, 0], kp[p, j, 1], kp[p, j, 2]) == (x, y, value), (p, j)


def test_refine_reads_only_the_slots_of_needed_joints(rng):
    heat = rng.random((3, 8, 9)).astype(np.float32)
    tags = rng.standard_normal((3, 1, 8, 9)).astype(np.float32)
    det = np.array([[1, 0, 1]], np.uint8)  # only joint 1 is missing
    ref = np.zeros((1, 1), np.float32)
    kp = np.full((1, 3, 3), np.nan, np.float32)
    opts = RefineOptions(_refine.REFINE_MMPOSE, False, 0, 4, 0.0, np.float32(100))
    slot = np.array([-1, 0, -1])  # the other joints' maps are not passed at all
    empty = np.zeros((3, 1), np.int64)
    no_vals = np.zeros((3, 1), np.float32)
    cand = Candidates(
        no_vals, empty, np.zeros(3, np.int64), no_vals[..., None], np.zeros((3, 1, 4), np.float32)
    )
    out = People(kp, np.zeros(1, np.float32), ref, ref, det)
    _refine.refine_image(
        heat[1:2], tags[1:2], slot, 1, cand, opts, out, np.empty((0, 1), np.float32)
    )
    y, x = divmod(_brute_force(heat[1], tags[1], ref[0], 100), 9)
    assert kp[0, 1].tolist() == [x, y, heat[1, y, x]]


@pytest.mark.parametrize("block", [1, 3, 16])
@pytest.mark.parametrize("top_min", [-1.0, 0.6, 0.9])
@pytest.mark.parametrize("have_hmax", [False, True])
def test_block_stats_match_numpy(block, top_min, have_hmax, rng):
    h, w, dim = 21, 35, 2
    hk = rng.random((h, w)).astype(np.float32)
    tk = rng.standard_normal((dim, h, w)).astype(np.float32)
    nby, nbx = -(-h // block), -(-w // block)
    opts = RefineOptions(_refine.REFINE_HIGHERHRNET, False, 0, block, 0.0, np.float32(1), top_min)
    stats, scratch = _tiles.work_arrays(hk[None], dim, opts)
    if have_hmax:  # given by the caller: kept as it is, and used for the top ranges
        stats.hmax[:] = _tile_max(hk[None], block)[0]
    assert _tiles.block_stats(hk, tk, stats, scratch, have_hmax)
    hmax, lo, hi, lo_top, hi_top = stats.hmax, stats.lo, stats.hi, stats.lo_top, stats.hi_top
    for by in range(nby):
        for bx in range(nbx):
            b = by * nbx + bx
            tile = (slice(by * block, (by + 1) * block), slice(bx * block, (bx + 1) * block))
            assert hmax[b] == hk[tile].max()
            top = hk[tile] >= hk[tile].max() * np.float32(0.5)
            if not hk[tile].max() > top_min:  # below top_min: the whole tile's range
                top = np.ones_like(top)
            for d in range(dim):
                assert lo[d, b] == tk[d][tile].min()
                assert hi[d, b] == tk[d][tile].max()
                assert lo_top[d, b] == tk[d][tile][top].min()
                assert hi_top[d, b] == tk[d][tile][top].max()


def _own_body(dispatcher, args) -> str:
    """The optimised LLVM IR of the kernel's own function for ``args``' types."""
    import re

    from numba import njit, typeof

    # compiled afresh with the kernel's own options (numba keeps no IR of cached code)
    options = {k: v for k, v in dispatcher.targetoptions.items() if k != "nopython"}
    fresh = njit(**options)(dispatcher.py_func)
    sig = tuple(typeof(a) for a in args)
    fresh.compile(sig)
    ir = fresh.inspect_llvm(sig)
    name = dispatcher.py_func.__name__
    bodies = re.findall(r"define [^\n]*@\"?_ZN[^\n(]*?" + name + r"[^\n]*\n.*?\n}\n", ir, re.S)
    assert len(bodies) == 1, f"{name}: {len(bodies)} definitions"
    return bodies[0]


def test_the_per_strip_kernels_update_no_reference_counts():
    """The tile statistics' kernels, called per strip of every map, take no refcount updates.

    numba increfs every array a function is passed and decrefs it on return;
    its pruning pass drops those pairs only in functions without a raise path.
    Python's error model gives every integer division one (the numpy model,
    ``_decode/jit.py``, does not): with it, ``_top_ranges`` held 9 of each.
    """
    f32 = np.float32
    hk = np.zeros((16, 16), f32)
    tk = np.zeros((1, 16, 16), f32)
    rows = np.zeros((1, 1), f32)
    top = (np.zeros(1, f32), rows, rows, rows, rows)
    work = (np.zeros(16, f32), np.zeros(16, f32), f32(0.1), f32(1e15), f32(0.5))
    cols = np.zeros((3, 16), f32)
    col = np.zeros(16, f32)
    calls = [
        (_tiles._top_ranges, (hk, tk, 0, (0, 0, 16), 16, top, work)),
        (_tiles._strip_tag_ranges, (tk, 0, 0, 16, cols)),
        (_tiles._fold_strip, (col, cols, 16, 0, 0, True, (col, rows, rows))),
    ]
    for dispatcher, args in calls:
        body = _own_body(dispatcher, args)
        assert "@NRT_incref" not in body and "@NRT_decref" not in body, dispatcher.__name__


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_passes_over_the_maps_report_non_finite_values(dtype, bad, rng):
    k, h, w, dim, block = 2, 19, 37, 2, 4
    for _ in range(10):
        heat = rng.random((k, h, w)).astype(dtype)
        tags = rng.standard_normal((k, dim, h, w)).astype(dtype)
        opts = RefineOptions(_refine.REFINE_HIGHERHRNET, False, 0, block, 0.0, dtype(1), 0.0)
        stats, scratch = _tiles.work_arrays(heat, dim, opts)
        fin = np.empty(w, dtype)
        cand = Candidates(
            np.empty((k, 3), dtype),
            np.empty((k, 3), np.int64),
            np.empty(k, np.int64),
            np.empty((k, 3, dim), dtype),
            np.empty((k, 3, 4), dtype),
        )
        no_max = np.empty((0, 1), dtype)
        have_hmax = bool(rng.integers(0, 2))
        assert _peaks.find_candidates(heat, 0.1, 3, cand, no_max)
        assert _peaks.gather_candidates(heat, tags, cand)
        assert _tiles.block_stats(heat[1], tags[1], stats, scratch, have_hmax)
        assert _peaks.rows_finite(tags[1].reshape(dim * h, w), fin)
        j, y, x = int(rng.integers(0, k)), int(rng.integers(0, h)), int(rng.integers(0, w))
        bad_heat = heat.copy()
        bad_heat[j, y, x] = bad
        assert not _peaks.find_candidates(bad_heat, 0.1, 3, cand, no_max)
        d = int(rng.integers(0, dim))
        bad_tags = tags.copy()
        bad_tags[j, d, y, x] = bad
        assert _tiles.block_stats(heat[j], bad_tags[j], stats, scratch, have_hmax) is False
        assert _peaks.rows_finite(bad_tags[j].reshape(dim * h, w), fin) is False
        assert _peaks.find_candidates(heat, 0.1, 3, cand, no_max)
        at_candidate = y * w + x in cand.idx[j, : cand.cnt[j]]
        assert _peaks.gather_candidates(heat, bad_tags, cand) is not at_candidate
        i = cand.idx[j, 0]
        bad_tags[j, d, i // w, i % w] = bad
        assert _peaks.gather_candidates(heat, bad_tags, cand) is False


CHILD_COMPILES = """
import json
import numpy as np
import associative_embedding as ae
from associative_embedding._decode import matching as _matching
heat = np.zeros((1, 17, 32, 32), np.float32)
heat[0, :, 10, 12] = 1.0
heat[0, :9, 20, 5] = 0.8
tags = np.zeros((1, 17, 32, 32), np.float32)
tags[0, :, 20, 5] = 3.0
n_plain = len(ae.decode(heat, tags, "higherhrnet")[0])  # the references' kernels
plain = len(_matching.assign_feasible.signatures)
n_crowd = len(ae.decode(heat, tags, ae.DecodeConfig.preset("crowd"))[0])
crowd = len(_matching.assign_feasible.signatures)
print(json.dumps([n_plain, plain, n_crowd, crowd]))
"""


@pytest.mark.slow
def test_plain_decode_does_not_compile_the_crowd_assignment(tmp_path):
    """A first plain decode leaves the crowd assignment uncompiled; the crowd preset compiles it.

    Run in a fresh interpreter with an empty numba cache, so nothing compiled by
    other tests (or loaded from a cache) hides what the plain decode compiled, and
    with one compiling process, so that the decoding process compiles (no
    background process; the first decode would otherwise be interpreted).
    """
    import json
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "NUMBA_CACHE_DIR": str(tmp_path),
        "ASSOCIATIVE_EMBEDDING_COMPILE_PROCESSES": "1",
    }
    out = subprocess.run(
        [sys.executable, "-c", CHILD_COMPILES], capture_output=True, text=True, env=env, check=True
    )
    n_plain, plain, n_crowd, crowd = json.loads(out.stdout.strip().splitlines()[-1])
    assert (n_plain, n_crowd) == (2, 2)
    assert plain == 0
    assert crowd >= 1
