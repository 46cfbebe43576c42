from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import associative_embedding as ae
from associative_embedding.targets import default_sigma

# the random people of these tests put many joints off the map on purpose (they check the
# masking); the warning for keypoints in the wrong units is tested on its own below
pytestmark = pytest.mark.filterwarnings("ignore:.*labelled joints of keypoints lie outside")


def brute_reference_heatmaps(joints, h, w, sigma):
    """HigherHRNet HeatmapGenerator written out per joint and per pixel (HigherHRNet ``lib/dataset/target_generators/target_generators.py``; pose-ae-train ``data/coco_pose/dp.py``)."""
    k = joints.shape[1]
    hms = np.zeros((k, h, w), np.float32)
    size = 6 * sigma + 3
    n_patch = len(np.arange(0, size, 1))
    x0 = y0 = 3 * sigma + 1
    for person in joints:
        for idx, pt in enumerate(person):
            if not pt[2] > 0:
                continue
            x, y = int(pt[0]), int(pt[1])
            if x < 0 or y < 0 or x >= w or y >= h:
                continue
            ul = int(np.round(x - 3 * sigma - 1)), int(np.round(y - 3 * sigma - 1))
            br = int(np.round(x + 3 * sigma + 2)), int(np.round(y + 3 * sigma + 2))
            for r in range(max(0, ul[1]), min(br[1], h)):
                for c in range(max(0, ul[0]), min(br[0], w)):
                    a, b = r - ul[1], c - ul[0]
                    if a >= n_patch or b >= n_patch:
                        continue
                    g = math.exp(-((b - x0) ** 2 + (a - y0) ** 2) / (2 * sigma**2))
                    hms[idx, r, c] = max(hms[idx, r, c], np.float32(g))
    return hms


def brute_exact_heatmaps(joints, h, w, sigma, shift=0.5):
    """Pixel (r, c) has its centre at (c + shift, r + shift)."""
    k = joints.shape[1]
    hms = np.zeros((k, h, w), np.float32)
    for person in joints:
        for idx, (x, y, v) in enumerate(person):
            near_c, near_r = math.floor(x - shift + 0.5), math.floor(y - shift + 0.5)
            if not v > 0 or not (0 <= near_c < w and 0 <= near_r < h):
                continue
            for r in range(h):
                for c in range(w):
                    g = math.exp(-((c + shift - x) ** 2 + (r + shift - y) ** 2) / (2 * sigma**2))
                    hms[idx, r, c] = max(hms[idx, r, c], np.float32(g))
    return hms


def random_people(rng, n, k, h, w):
    kp = np.zeros((n, k, 3))
    kp[..., 0] = rng.uniform(-3, w + 3, size=(n, k))
    kp[..., 1] = rng.uniform(-3, h + 3, size=(n, k))
    kp[..., 2] = rng.choice([0, 1, 2], size=(n, k))
    return kp


@pytest.mark.parametrize("sigma", [1.0, 2.0, 1.5, 0.7, 2.3])
def test_reference_rendering_equals_brute_force(rng, sigma):
    for _ in range(5):
        h, w = int(rng.integers(5, 20)), int(rng.integers(5, 20))
        kp = random_people(rng, int(rng.integers(0, 4)), 3, h, w)
        got = ae.render_heatmaps(kp, (h, w), sigma=sigma)
        np.testing.assert_allclose(
            got, brute_reference_heatmaps(kp, h, w, sigma), rtol=1e-6, atol=1e-7
        )


def test_reference_rendering_default_sigma_and_peak():
    kp = np.array([[[10.7, 20.2, 1.0]]])
    hm = ae.render_heatmaps(kp, (64, 64))  # sigma = 64 / 64 = 1
    np.testing.assert_allclose(hm, brute_reference_heatmaps(kp, 64, 64, 1.0), rtol=1e-6)
    assert hm.dtype == np.float32
    assert hm[0, 20, 10] == 1.0  # peak at the truncated location
    hm128 = ae.render_heatmaps(kp * 2, (128, 128))  # sigma 2: 15-pixel patch
    assert np.count_nonzero(hm128[0].max(0)) == 15


def test_exact_rendering_equals_brute_force(rng):
    for sigma in [0.8, 2.0]:
        kp = random_people(rng, 3, 2, 9, 12)
        got = ae.render_heatmaps(kp, (9, 12), sigma=sigma, method="exact")
        np.testing.assert_allclose(
            got, brute_exact_heatmaps(kp, 9, 12, sigma), rtol=1e-6, atol=1e-7
        )


def dense_exact_heatmaps(joints, h, w, sigma, shift):
    """Every joint's sub-pixel Gaussian evaluated on the whole map with numpy."""
    k = joints.shape[1]
    hms = np.zeros((k, h, w), np.float32)
    cols, rows = np.arange(w) + shift, np.arange(h) + shift
    for person in joints:
        for idx, (x, y, v) in enumerate(person):
            near_c, near_r = math.floor(x - shift + 0.5), math.floor(y - shift + 0.5)
            if v > 0 and 0 <= near_c < w and 0 <= near_r < h:
                d2 = (cols[None, :] - x) ** 2 + (rows[:, None] - y) ** 2
                g = np.exp(-d2 / (2 * sigma**2)).astype(np.float32)
                hms[idx] = np.maximum(hms[idx], g)
    return hms


@pytest.mark.parametrize("sigma", [0.5, 0.9, 2.0])
@pytest.mark.parametrize("shift", [0.5, 0.0])
def test_exact_rendering_on_large_maps_is_the_whole_map_gaussian(rng, sigma, shift):
    # the renderer evaluates each joint only where float32 can hold its value (within
    # about 14.4 sigma): with atol=0, every pixel it skips must be exactly 0 in the
    # whole-map evaluation too, and every tail value it computes must agree
    h, w = 70, 90
    kp = random_people(rng, 4, 3, h, w)
    got = ae.render_heatmaps(kp, (h, w), sigma=sigma, method="exact", center_shift=shift)
    want = dense_exact_heatmaps(kp, h, w, sigma, shift)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)
    assert (want > 0).sum() > 0 and ((want > 0) & (want < 1e-30)).any()  # tails reached


def test_reference_rendering_on_large_maps_equals_brute_force(rng):
    for sigma in [2.0, 1.7, 3.0]:
        kp = random_people(rng, 6, 4, 128, 96)
        got = ae.render_heatmaps(kp, (128, 96), sigma=sigma)
        np.testing.assert_allclose(
            got, brute_reference_heatmaps(kp, 128, 96, sigma), rtol=1e-6, atol=0
        )


def test_overlap_takes_max_and_batched_torch_matches_numpy(rng):
    a = random_people(rng, 3, 4, 16, 16)
    b = random_people(rng, 1, 4, 16, 16)
    batch = ae.pad_keypoints([a, b])
    for method in ["reference", "exact"]:
        np_batch = ae.render_heatmaps(batch, (16, 20), method=method)
        np.testing.assert_array_equal(
            np_batch[0], ae.render_heatmaps(batch[0], (16, 20), method=method)
        )
        t = ae.render_heatmaps(torch.from_numpy(batch), (16, 20), method=method)
        assert isinstance(t, torch.Tensor)
        assert t.dtype == torch.float32
        np.testing.assert_array_equal(t.numpy(), np_batch)
    # two people on the same joint: max, not sum
    two = np.array([[[5.0, 5.0, 1.0]], [[6.0, 5.0, 1.0]]])
    hm = ae.render_heatmaps(two, (12, 12), sigma=1.0)
    assert hm.max() == 1.0
    assert hm[0, 5, 5] == 1.0
    assert hm[0, 5, 6] == 1.0


def test_render_errors():
    with pytest.raises(
        ValueError, match=r"keypoints must have shape \(N, K, 3\) or \(B, N, K, 3\)"
    ):
        ae.render_heatmaps(np.zeros((3, 3)), (8, 8))
    with pytest.raises(ValueError, match="last axis"):
        ae.render_heatmaps(np.zeros((1, 3, 2)), (8, 8))
    with pytest.raises(TypeError, match="keypoints must have a floating-point dtype"):
        ae.render_heatmaps(np.zeros((1, 3, 3), np.int32), (8, 8))
    with pytest.raises(TypeError, match=r"size must be a pair \(H, W\)"):
        ae.render_heatmaps(np.zeros((1, 3, 3)), 8)
    with pytest.raises(ValueError, match=r"size\[0\] \(H\) must be >= 1"):
        ae.render_heatmaps(np.zeros((1, 3, 3)), (0, 8))
    with pytest.raises(ValueError, match="method must be one of"):
        ae.render_heatmaps(np.zeros((1, 3, 3)), (8, 8), method="udp")
    with pytest.raises(ValueError, match="sigma must be > 0"):
        ae.render_heatmaps(np.zeros((1, 3, 3)), (8, 8), sigma=-1)
    bad = np.ones((1, 1, 3))
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite x, y in labelled joints"):
        ae.render_heatmaps(bad, (8, 8))
    bad[0, 0, 2] = 0  # NaN on an unlabelled joint is fine
    assert ae.render_heatmaps(bad, (8, 8)).max() == 0


def test_pad_keypoints(rng):
    people = [rng.random((2, 5, 3)), rng.random((0, 5, 3)), rng.random((4, 5, 3))]
    out = ae.pad_keypoints(people)
    assert out.shape == (3, 4, 5, 3)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[2], people[2].astype(np.float32))
    assert not out[0, 2:].any()
    assert not out[1].any()
    fixed = ae.pad_keypoints(people, max_people=6)
    assert fixed.shape == (3, 6, 5, 3)
    t = ae.pad_keypoints([torch.from_numpy(p) for p in people])
    assert isinstance(t, torch.Tensor)
    np.testing.assert_array_equal(t.numpy(), out)
    assert ae.pad_keypoints([], num_joints=17).shape == (0, 0, 17, 3)
    with pytest.raises(ValueError, match=r"people\[2\] has 4 people, more than max_people=3"):
        ae.pad_keypoints(people, max_people=3)
    with pytest.raises(ValueError, match="same K"):
        ae.pad_keypoints([rng.random((1, 5, 3)), rng.random((1, 4, 3))])
    with pytest.raises(ValueError, match="pass num_joints"):
        ae.pad_keypoints([])
    with pytest.raises(TypeError, match=r"people\[0\] must have a floating-point dtype"):
        ae.pad_keypoints([np.zeros((1, 5, 3), np.int64)])
    with pytest.raises(TypeError, match="people must be a sequence"):
        ae.pad_keypoints(np.zeros((1, 1, 5, 3)))


def test_scale_keypoints():
    kp = np.array([[10.0, 20.0, 1.0], [np.nan, np.nan, 0.0]])
    out = ae.scale_keypoints(kp, (400, 200), (100, 50))
    np.testing.assert_array_equal(out[0], [2.5, 5.0, 1.0])
    assert np.isnan(out[1, :2]).all()
    centre = ae.scale_keypoints(kp, (400, 200), (100, 50), center_shift=0.0)
    np.testing.assert_allclose(centre[0], [(10.5 / 4) - 0.5, (20.5 / 4) - 0.5, 1.0])
    back = ae.scale_keypoints(centre, (100, 50), (400, 200), center_shift=0.0)
    np.testing.assert_allclose(back[0], kp[0])
    t = ae.scale_keypoints(torch.from_numpy(kp), (400, 200), (100, 50))
    np.testing.assert_array_equal(t.numpy()[0], out[0])
    assert kp[0, 0] == 10.0  # input untouched
    with pytest.raises(ValueError, match="last axis"):
        ae.scale_keypoints(np.zeros((2, 2)), (4, 4), (2, 2))


def brute_joint_indices(joints, res_h, res_w, max_people, tag_per_joint=True):
    """HigherHRNet ``target_generators.py::JointsGenerator``, per person and joint."""
    out = np.zeros((max_people, joints.shape[1], 2), np.int64)
    for i in range(len(joints)):
        tot = 0
        for idx, pt in enumerate(joints[i]):
            x, y = int(pt[0]), int(pt[1])
            if pt[2] > 0 and x >= 0 and y >= 0 and x < res_w and y < res_h:
                flat = y * res_w + x + (idx * res_h * res_w if tag_per_joint else 0)
                out[i][tot] = (flat, 1)
                tot += 1
    return out


def test_scale_keypoints_old_pixel_center_keyword_warns_and_means_the_opposite():
    kp = np.array([[[10.0, 6.0, 1.0]]])
    want = ae.scale_keypoints(kp, (40, 40), (10, 10), center_shift=0.0)
    with pytest.warns(DeprecationWarning, match="center_shift=0.5 - c"):
        old = ae.scale_keypoints(kp, (40, 40), (10, 10), pixel_center=0.5)
    np.testing.assert_array_equal(old, want)
    with pytest.raises(TypeError, match="center_shift only"):
        ae.scale_keypoints(kp, (40, 40), (10, 10), center_shift=0.0, pixel_center=0.5)


def test_joint_indices_equal_reference_generator(rng):
    for tag_per_joint in [True, False]:
        for _ in range(10):
            kp = random_people(rng, int(rng.integers(0, 6)), 4, 7, 9)
            got = ae.joint_indices(kp, (7, 9), max_people=6, tag_per_joint=tag_per_joint)
            np.testing.assert_array_equal(got, brute_joint_indices(kp, 7, 9, 6, tag_per_joint))
    batch = ae.pad_keypoints([random_people(rng, 2, 4, 7, 9), random_people(rng, 3, 4, 7, 9)])
    assert ae.joint_indices(batch, (7, 9)).shape == (2, 30, 4, 2)
    with pytest.raises(ValueError, match="beyond max_people=2"):
        ae.joint_indices(np.ones((3, 4, 3)), (7, 9), max_people=2)


def _separated_people(rng, n, k, h, w, gap):
    """n people of k joints at random sub-pixel positions, same-type joints >= gap apart."""
    kp = np.zeros((n, k, 3))
    kp[..., 2] = 1
    for j in range(k):
        placed = []
        for p in range(n):
            for _ in range(1000):
                x, y = rng.uniform(0, w), rng.uniform(0, h)
                if rng.random() < 0.3:  # integer coordinates: pixel corners
                    x, y = float(np.floor(x)), float(np.floor(y))
                if all(np.hypot(x - a, y - b) >= gap for a, b in placed):
                    break
            else:
                raise AssertionError("could not place the people")
            placed.append((x, y))
            kp[p, j, :2] = x, y
    return kp


@pytest.mark.parametrize("method", ["reference", "exact"])
@pytest.mark.parametrize("size", [16, 24, 32, 48, 64, 96, 100, 128, 160, 192, 256, 384, 512])
def test_rendered_targets_decode_to_exactly_their_people_with_the_defaults(rng, method, size):
    h, w = size, size + int(rng.integers(0, 3)) * (size // 8)
    sigma = default_sigma(h, w)
    k = 3
    for trial in range(6):
        n = 1 if trial == 0 or size < 32 else int(rng.integers(1, 4))
        kp = _separated_people(rng, n, k, h, w, gap=5 * sigma + 4)
        if trial == 0:
            kp[0, :, :2] = 10.0 if size > 10 else 5.0  # the case: all joints at (10, 10)
        heat = ae.render_heatmaps(kp, (h, w), method=method)
        tags = np.zeros((k, h, w), np.float32)
        for p in range(n):  # person p's tag 3p around each of its joints
            for j in range(k):
                cx, cy = int(kp[p, j, 0]), int(kp[p, j, 1])
                tags[j, max(cy - 2, 0) : cy + 3, max(cx - 2, 0) : cx + 3] = 3.0 * p
        (poses,) = ae.decode(heat[None], tags[None])
        assert len(poses) == n, (method, size, trial, n)
        for person in poses.keypoints:
            p = int(np.argmin([np.abs(person[:, :2] - kp[q, :, :2]).max() for q in range(n)]))
            np.testing.assert_array_less(np.abs(person[:, :2] - kp[p, :, :2]), 1.0)


def test_default_sigma_keeps_the_references_at_their_sizes_and_fixes_the_others():
    assert [default_sigma(s, s) for s in (64, 128, 256, 512)] == [1.0, 2.0, 4.0, 8.0]
    for s in (16, 32, 96, 160, 100):
        sigma = default_sigma(s, s)
        assert sigma >= 2 / 3 and abs(3 * sigma - round(3 * sigma)) < 1e-12
    # peak 1 on one pixel at 32 px (the references' sigma 0.5 gives a flat 2x2 block of 0.37)
    hm = ae.render_heatmaps(np.array([[[10.0, 10.0, 1.0]]]), (32, 32))
    assert hm.max() == 1.0 and (hm == hm.max()).sum() == 1
    exact = ae.render_heatmaps(np.array([[[10.0, 10.0, 1.0]]]), (32, 32), method="exact")
    assert (exact == exact.max()).sum() == 1 and np.unravel_index(exact.argmax(), (1, 32, 32)) == (
        0,
        10,
        10,
    )
    with pytest.raises(ValueError, match="height must be >= 1"):
        default_sigma(0, 5)


# --- wrong units, and the render -> decode round trip ------------------------------------
def test_keypoints_in_image_pixels_warn_naming_scale_keypoints():
    people = np.array([[[300.0, 200.0, 1.0], [310.0, 40.0, 1.0], [5.0, 5.0, 1.0]]])
    with pytest.warns(UserWarning, match="2 of the 3 labelled joints.*scale_keypoints"):
        ae.render_heatmaps(people, (64, 64))
    tags = torch.zeros(1, 3, 64, 64)
    with pytest.warns(UserWarning, match="scale_keypoints"):
        ae.grouping_loss(tags, torch.from_numpy(people[None]).float())
    inside = people.copy()
    inside[0, :2, :2] = 20.0
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ae.render_heatmaps(inside, (64, 64))  # most joints on the map: no warning
        ae.grouping_loss(tags, torch.from_numpy(inside[None]).float())


def _roundtrip_bench():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_roundtrip.py"
    spec = importlib.util.spec_from_file_location("bench_roundtrip", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("method", ["reference", "exact"])
@pytest.mark.parametrize("size", [64, 128, 256])
def test_render_then_decode_is_unbiased(method, size):
    """Joints at random sub-pixel positions come back where they were drawn, no bias."""
    bench = _roundtrip_bench()
    err = bench.errors(size, method, 4000, ae.DecodeConfig(), seed=size)  # mean: +-0.005
    assert np.abs(err.mean(axis=0)).max() <= 0.02
    if method == "reference":
        # the renderer puts a joint's peak on pixel floor(x) and the decoder reports that
        # pixel's centre, floor(x) + 0.5: the error is the rendering's own rounding, whose
        # median over uniform positions is 0.25 (tested exactly just below)
        assert np.median(np.abs(err)) <= 0.25 + 0.015
    else:
        assert np.median(np.abs(err)) <= 0.15
    biased = bench.errors(size, method, 4000, ae.DecodeConfig.preset("higherhrnet"), seed=size)
    if method == "reference":  # the references' rule moves every symmetric peak up and left
        np.testing.assert_allclose(biased, err - 0.25, atol=1e-6)


def test_decoded_joint_is_the_centre_of_the_rendered_peak_pixel():
    """The pixel convention, once: pixel j covers [j, j + 1) and its centre is j + 0.5."""
    rng = np.random.default_rng(3)
    xy = rng.uniform(8, 56, (20, 2))
    for x, y in xy:
        person = np.array([[[x, y, 1.0]]], np.float32)
        heat = ae.render_heatmaps(person, (64, 64))[None]
        (poses,) = ae.decode(heat, np.zeros_like(heat))
        got = poses.keypoints[0, 0, :2].astype(np.float64)
        want = np.floor(np.array([x, y], np.float64)) + 0.5  # reference: the peak pixel
        np.testing.assert_allclose(got, want, atol=1e-6)
        (shifted,) = ae.decode(heat, np.zeros_like(heat), center_shift=0.0)
        np.testing.assert_allclose(shifted.keypoints[0, 0, :2], want - 0.5, atol=1e-6)


@pytest.mark.parametrize("size", [64, 128])
def test_perfect_targets_of_people_decode_to_those_people(size):
    pytest.importorskip("pycocotools", reason="OKS AP needs pycocotools (the coco extra)")
    ap = _roundtrip_bench().people_ap(12, size, seed=size)
    assert ap >= 0.99
