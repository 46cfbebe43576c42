"""Single-person refinement against slow references of pose-ae-demo's main.py::refinement."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import associative_embedding as ae
from tests.conftest import DEVICES

# --------------------------------------------------------------------------------------
# slow references
# --------------------------------------------------------------------------------------


def _ref_box(person, padding=1.3, min_size=60.0):
    """pose-ae-demo: bbox of joints with score > 0, side max(max(w, h), 60) * 1.3."""
    pts = [(x, y) for x, y, s in person if s > 0 and math.isfinite(x) and math.isfinite(y)]
    if not pts:
        return (math.nan, math.nan), math.nan
    xs = [q[0] for q in pts]
    ys = [q[1] for q in pts]
    x1, x2, y1, y2 = min(xs), max(xs), min(ys), max(ys)
    side = max(max(x2 - x1, y2 - y1), min_size) * padding
    return ((x1 + x2) / 2, (y1 + y2) / 2), side


def _ref_crop(image, center, side, h, w):
    """Bilinear sampling at each output pixel's centre, zeros outside, plain loops."""
    c, ih, iw = image.shape
    out = np.zeros((c, h, w))
    if not math.isfinite(side):
        return out
    x0, y0 = center[0] - side / 2, center[1] - side / 2

    def pixel(ch, r, q):
        return image[ch, r, q] if 0 <= r < ih and 0 <= q < iw else 0.0

    for v in range(h):
        for u in range(w):
            x = x0 + (u + 0.5) * side / w - 0.5  # to index space: pixel q's centre at q + 0.5
            y = y0 + (v + 0.5) * side / h - 0.5
            qx, qy = math.floor(x), math.floor(y)
            fx, fy = x - qx, y - qy
            for ch in range(c):
                out[ch, v, u] = (
                    pixel(ch, qy, qx) * (1 - fx) * (1 - fy)
                    + pixel(ch, qy, qx + 1) * fx * (1 - fy)
                    + pixel(ch, qy + 1, qx) * (1 - fx) * fy
                    + pixel(ch, qy + 1, qx + 1) * fx * fy
                )
    return out


def _ref_merge(kp, hm, centers, sides, thr=0.15, dist=10.0, agree_min=0.2, adjust=True):
    """pose-ae-demo's refinement loop, person by person, joint by joint."""
    out = kp.copy()
    p, k, h, w = hm.shape
    for n in range(p):
        if not math.isfinite(sides[n]):
            continue
        pred = kp[n].copy()
        old = pred.copy()
        agree = []
        for j in range(k):
            m = hm[n, j]
            best, bi, bj = -math.inf, 0, 0
            for r in range(h):
                for q in range(w):
                    if m[r, q] > best:
                        best, bi, bj = m[r, q], r, q
            u, v = bj + 0.5, bi + 0.5
            if adjust:
                u += 0.25 if m[bi, min(bj + 1, w - 1)] > m[bi, max(bj - 1, 0)] else -0.25
                v += 0.25 if m[min(bi + 1, h - 1), bj] > m[max(bi - 1, 0), bj] else -0.25
            x = centers[n][0] - sides[n] / 2 + u * sides[n] / w
            y = centers[n][1] - sides[n] / 2 + v * sides[n] / h
            detected = pred[j, 2] > 0 and math.isfinite(pred[j, 0])
            if detected:
                agree.append((pred[j, 0] - x) ** 2 + (pred[j, 1] - y) ** 2 < dist**2)
            if (not detected or best > thr) and best > 0:
                pred[j] = (x, y, best)
        if agree and sum(agree) / len(agree) < agree_min:
            pred = old
        out[n] = pred
    return out


# --------------------------------------------------------------------------------------


def _random_poses(rng, p=5, k=6, extent=200.0):
    kp = np.concatenate([rng.uniform(0, extent, (p, k, 2)), rng.uniform(0, 1, (p, k, 1))], -1)
    missing = rng.random((p, k)) < 0.3
    kp[missing] = [np.nan, np.nan, 0.0]
    kp[1:, 0] = np.r_[rng.uniform(0, extent, 2), 0.5]  # everyone else has a joint
    kp[0] = [np.nan, np.nan, 0.0]  # one person without joints: no box
    return kp


@pytest.mark.parametrize("trial", range(5))
def test_person_crops_match_reference(rng, trial):
    kp = _random_poses(rng)
    if trial == 1:
        kp[1, :, :2] = kp[1, :1, :2]  # all joints on one point: min_size decides
        kp[1, :, 2] = 0.5
    crops = ae.person_crops(kp, padding=1.2 + trial * 0.1, min_size=20.0 * trial)
    for n in range(len(kp)):
        center, side = _ref_box(kp[n], 1.2 + trial * 0.1, 20.0 * trial)
        np.testing.assert_allclose(crops.centers[n], center, rtol=0, atol=1e-12)
        np.testing.assert_allclose(crops.sizes[n], side, rtol=1e-15)
    assert not crops.valid[0] and crops.valid[1:].all()


def test_crop_matrices_are_inverse(rng):
    crops = ae.person_crops(_random_poses(rng))
    for size in (64, (48, 32)):
        to_img, to_crop = crops.to_image(size), crops.to_crop(size)
        pts = rng.uniform(-10, 80, (3, 2))
        for n in np.flatnonzero(crops.valid):
            back = to_img[n] @ np.c_[(to_crop[n] @ np.c_[pts, np.ones(3)].T).T, np.ones(3)].T
            np.testing.assert_allclose(back.T, pts, atol=1e-9)
        # the box's corners land on the crop's corners
        n = 1
        h, w = (size, size) if isinstance(size, int) else size
        x0, y0 = crops.centers[n] - crops.sizes[n] / 2
        x1, y1 = crops.centers[n] + crops.sizes[n] / 2
        np.testing.assert_allclose(to_crop[n] @ [x0, y0, 1], [0, 0], atol=1e-9)
        np.testing.assert_allclose(to_crop[n] @ [x1, y1, 1], [w, h], atol=1e-9)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("size", [8, (6, 10)])
def test_crop_people_matches_bilinear_reference(rng, device, size):
    image = rng.normal(size=(2, 30, 40))
    kp = _random_poses(rng, p=4, k=5, extent=45.0)
    crops = ae.person_crops(kp, min_size=5.0)
    got = ae.crop_people(torch.from_numpy(image).to(device), crops, size)
    h, w = (size, size) if isinstance(size, int) else size
    assert got.shape == (4, 2, h, w)
    assert got.device.type == device and got.dtype == torch.float64
    for n in range(4):
        want = _ref_crop(image, crops.centers[n], crops.sizes[n], h, w)
        np.testing.assert_allclose(got[n].cpu().numpy(), want, atol=1e-12)


def test_crop_people_accepts_numpy_and_empty(rng):
    image = rng.normal(size=(3, 10, 10)).astype(np.float32)
    crops = ae.person_crops(np.zeros((0, 4, 3)))
    out = ae.crop_people(image, crops, 4)
    assert out.shape == (0, 3, 4, 4) and out.dtype == torch.float32


@pytest.mark.parametrize("adjust", [True, False])
@pytest.mark.parametrize("trial", range(6))
def test_merge_matches_pose_ae_demo_reference(rng, trial, adjust):
    p, k, h, w = 6, 7, 9, 8
    kp = _random_poses(rng, p, k, extent=60.0)
    crops = ae.person_crops(kp, min_size=10.0)
    hm = rng.uniform(0, 1, (p, k, h, w)) ** 4
    hm[:, 0] = 0.0  # an all-zero map: stays missing / ties at pixel 0
    hm[:, 1, :, :] = np.round(hm[:, 1] * 4) / 4  # plateaus: first maximum, adjust ties
    # move some people's maps so their joints agree (peaks at the old positions)
    u = crops.to_crop((h, w))
    for n in range(1, p, 2):
        for j in range(k):
            if kp[n, j, 2] > 0:
                cx, cy = u[n] @ [kp[n, j, 0], kp[n, j, 1], 1.0]
                hm[n, j, min(int(cy), h - 1), min(int(cx), w - 1)] = 2.0
    dist = [10.0, 3.0, 30.0][trial % 3]
    got = ae.merge_single_person(kp, hm, crops, agree_distance=dist, adjust=adjust)
    want = _ref_merge(kp, hm, crops.centers, crops.sizes, dist=dist, adjust=adjust)
    np.testing.assert_allclose(got.keypoints, want, rtol=0, atol=1e-12)
    assert np.isnan(got.keypoints[0]).any()  # the person without a box is unchanged


def test_merge_rules_by_hand():
    # box [0, 8)^2 on a 4x4 map: map pixel (i, j) sits at image (2j + 1, 2i + 1)
    crops = ae.PersonCrops(np.array([[4.0, 4.0]]), np.array([8.0]))
    kp = np.array([[[1.0, 1.0, 0.9], [5.0, 5.0, 0.9], [np.nan, np.nan, 0.0]]])
    hm = np.zeros((1, 3, 4, 4))
    hm[0, 0, 0, 0] = 0.1  # agrees, low value: kept as it was
    hm[0, 1, 3, 3] = 0.5  # 2.8 px away, value 0.5 > 0.15: replaced
    hm[0, 2, 1, 2] = 0.05  # missing: filled whatever its value
    out = ae.merge_single_person(kp, hm, crops, adjust=False, agree_distance=2.0)
    assert out.keypoints.tolist() == [[[1.0, 1.0, 0.9], [7.0, 7.0, 0.5], [5.0, 3.0, 0.05]]]
    # inf: only the missing joint is filled
    out = ae.merge_single_person(
        kp, hm, crops, adjust=False, agree_distance=2.0, replace_threshold=float("inf")
    )
    assert out.keypoints.tolist() == [[[1.0, 1.0, 0.9], [5.0, 5.0, 0.9], [5.0, 3.0, 0.05]]]
    # 1 of 2 detected joints agree: reverted when at least 60 % must agree
    out = ae.merge_single_person(kp, hm, crops, adjust=False, agree_distance=2.0, min_agreement=0.6)
    np.testing.assert_array_equal(out.keypoints, kp)


def test_merge_averages_views_and_keeps_scores_and_tags(rng):
    kp = _random_poses(rng, 3, 4, extent=50.0)
    poses = ae.Poses(kp, np.array([0.3, 0.2, 0.1]), rng.normal(size=(3, 2)))
    crops = ae.person_crops(poses)
    a = rng.uniform(0, 1, (3, 4, 8, 8))
    b = rng.uniform(0, 1, (3, 4, 8, 8))
    c = rng.uniform(0, 1, (3, 4, 5, 5))
    merged = ae.merge_single_person(poses, [a, torch.from_numpy(b), c], crops)
    c_up = F.interpolate(torch.from_numpy(c), size=(8, 8), mode="bilinear", align_corners=False)
    mean = (a + b + c_up.numpy()) / 3
    np.testing.assert_allclose(
        merged.keypoints, ae.merge_single_person(poses, mean, crops).keypoints
    )
    np.testing.assert_array_equal(merged.scores, poses.scores)
    np.testing.assert_array_equal(merged.tags, poses.tags)


def test_merge_empty():
    crops = ae.person_crops(np.zeros((0, 3, 3)))
    out = ae.merge_single_person(np.zeros((0, 3, 3)), np.zeros((0, 3, 4, 4)), crops)
    assert len(out) == 0


def test_errors(rng):
    kp = _random_poses(rng, 2, 3)
    crops = ae.person_crops(kp)
    hm = np.zeros((2, 3, 4, 4))
    with pytest.raises(TypeError, match="poses must be Poses or an ndarray"):
        ae.person_crops([[1, 2, 3]])
    with pytest.raises(ValueError, match="padding must be >"):
        ae.person_crops(kp, padding=0)
    with pytest.raises(ValueError, match="side 0"):
        ae.person_crops(np.array([[[1.0, 1.0, 1.0]]]), min_size=0.0)
    with pytest.raises(ValueError, match="image must have shape \\(C, H, W\\)"):
        ae.crop_people(np.zeros((4, 4)), crops, 4)
    bad = np.zeros((1, 4, 4))
    bad[0, 1, 2] = np.nan
    with pytest.raises(ValueError, match="image contains 1 NaN"):
        ae.crop_people(bad, crops, 4)
    with pytest.raises(TypeError, match="crops must be PersonCrops"):
        ae.crop_people(np.zeros((1, 4, 4)), "box", 4)
    with pytest.raises(ValueError, match="size must be >= 1"):
        ae.crop_people(np.zeros((1, 4, 4)), crops, 0)
    with pytest.raises(ValueError, match="P=2, K=3"):
        ae.merge_single_person(kp, np.zeros((2, 4, 4, 4)), crops)
    with pytest.raises(ValueError, match="heatmaps\\[1\\] contains"):
        ae.merge_single_person(kp, [hm, hm * np.nan], crops)
    with pytest.raises(ValueError, match="at least one"):
        ae.merge_single_person(kp, [], crops)
    with pytest.raises(ValueError, match="one box per person"):
        ae.merge_single_person(kp, hm, ae.person_crops(kp[:1]))
    with pytest.raises(ValueError, match="min_agreement must be <= 1"):
        ae.merge_single_person(kp, hm, crops, min_agreement=2.0)
    with pytest.raises(TypeError, match="adjust must be a bool"):
        ae.merge_single_person(kp, hm, crops, adjust=1)
    with pytest.raises(ValueError, match="both be NaN"):
        ae.PersonCrops(np.array([[np.nan, 1.0]]), np.array([2.0]))
    with pytest.raises(ValueError, match="positive"):
        ae.PersonCrops(np.array([[1.0, 1.0]]), np.array([-2.0]))
