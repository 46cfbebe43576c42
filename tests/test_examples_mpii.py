"""The hourglass example's MPII data (examples/hourglass/data/mpii.py): .mat files, groups."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import associative_embedding as ae

ROOT = Path(__file__).resolve().parents[1]
HG = ROOT / "examples" / "hourglass"
if str(HG) not in sys.path:
    sys.path.insert(0, str(HG))

from data import mpii  # noqa: E402
from data.synthetic import SyntheticPeople  # noqa: E402

pytest.importorskip("scipy.io")


def _person(rng, missing=0.2):
    kp = np.zeros((16, 3))
    kp[:, :2] = rng.uniform(0, 200, (16, 2)).round(2)
    kp[:, 2] = rng.choice([1.0, 2.0], 16)
    gone = rng.random(16) < missing
    kp[gone] = [np.nan, np.nan, 0.0]
    top = rng.uniform(0, 180, 2).round(2)
    head = np.r_[top, top + rng.uniform(5, 20, 2).round(2)]
    return mpii.MPIIPerson(kp, head, rng.uniform(20, 180, 2).round(2), float(rng.uniform(0.5, 3)))


def _images(rng, n=5):
    images = []
    for i in range(n):
        people = [_person(rng) for _ in range(int(rng.integers(1, 5)))]
        single = [0] if i == 2 else []
        images.append(mpii.MPIIImage(f"{i:09d}.jpg", bool(i % 2), people, single))
    return images


def test_annotations_round_trip(tmp_path, rng):
    images = _images(rng)
    mpii.write_annotations(tmp_path / "mpii_human_pose_v1_u12_1.mat", images)
    back = mpii.load_annotations(tmp_path / "mpii_human_pose_v1_u12_1.mat")
    assert len(back) == len(images)
    for a, b in zip(images, back, strict=True):
        assert (a.name, a.train, a.single_person) == (b.name, b.train, b.single_person)
        assert len(a.people) == len(b.people)
        for p, q in zip(a.people, b.people, strict=True):
            np.testing.assert_allclose(q.keypoints, p.keypoints, atol=1e-9)
            np.testing.assert_allclose(q.head_box, p.head_box, atol=1e-9)
            np.testing.assert_allclose(q.objpos, p.objpos, atol=1e-9)
            assert q.scale == pytest.approx(p.scale)


def test_file_has_the_official_structure(tmp_path, rng):
    from scipy.io import loadmat

    images = _images(rng, 2)
    mpii.write_annotations(tmp_path / "a.mat", images)
    rel = loadmat(str(tmp_path / "a.mat"), struct_as_record=False, squeeze_me=True)["RELEASE"]
    rect = rel.annolist[0].annorect
    rect = rect[0] if isinstance(rect, np.ndarray) else rect
    p0 = images[0].people[0]
    # MATLAB's 1-based pixel coordinates in the file
    assert rect.x1 == pytest.approx(p0.head_box[0] + 0.5)
    pts = rect.annopoints.point
    first = pts[0] if isinstance(pts, np.ndarray) else pts
    j = int(first.id)
    assert first.x == pytest.approx(p0.keypoints[j, 0] + 0.5)
    assert rel.annolist[1].image.name == images[1].name
    assert list(np.atleast_1d(rel.img_train)) == [0, 1]


def test_groups_round_trip_and_protocol(tmp_path, rng):
    images = _images(rng)
    groups = [[list(range(len(im.people)))] for im in images]
    groups[4] = [[0], list(range(1, len(images[4].people)))] if len(images[4].people) > 1 else [[0]]
    mpii.write_groups(tmp_path / "groups_v12.mat", groups)
    back = mpii.load_groups(tmp_path / "groups_v12.mat")
    assert back == groups
    pairs = mpii.multi_person_groups(images, back, train=False)
    # test images 0, 2, 4; image 2's group holds its single-person rectangle 0
    assert [i for i, _ in pairs] == [0] + [4] * len(groups[4])
    gt = mpii.ground_truth_groups(images, pairs)
    assert gt[0]["keypoints"].shape == (len(images[0].people), 16, 3)
    assert set(np.unique(gt[0]["keypoints"][..., 2])) <= {0.0, 1.0}
    # the annotation is its own perfect prediction (AP 0 for a joint nobody has)
    preds = [np.stack([images[i].people[r].keypoints for r in rects]) for i, rects in pairs]
    result = ae.evaluate_mpii(gt, preds)
    for name, ap in result.ap.items():
        assert ap == (100.0 if result.num_ground_truth[name] else 0.0)


def test_group_crop_uses_objpos_and_mean_scale():
    people = [
        mpii.MPIIPerson(np.zeros((16, 3)), np.zeros(4), np.array([10.0, 50.0]), 1.0),
        mpii.MPIIPerson(np.zeros((16, 3)), np.zeros(4), np.array([110.0, 70.0]), 2.0),
    ]
    center, side = mpii.group_crop(people, margin=100.0)
    assert center.tolist() == [60.0, 60.0]
    assert side == 100.0 + 2 * 100.0 * 1.5
    with pytest.raises(ValueError, match="objpos and scale"):
        mpii.group_crop([])


def test_training_samples(tmp_path, rng):
    from PIL import Image

    images = _images(rng, 2)
    for im in images:
        Image.fromarray(rng.integers(0, 255, (200, 220, 3), dtype=np.uint8)).save(
            tmp_path / im.name
        )
    ds = mpii.MPIIKeypoints(images, tmp_path, 64, train=True)
    assert len(ds) == len(images[1].people)
    image, kp, mask = ds[0]
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8 and mask is None
    assert kp.shape[1:] == (16, 3)
    inside = kp[..., 2] > 0
    assert ((kp[..., :2][inside] >= 0) & (kp[..., :2][inside] < 64)).all()
    # evaluation crops: identity warp without augmentation puts objpos at the centre
    ds = mpii.MPIIKeypoints(images, tmp_path, 64, train=False)
    assert len(ds) == len(images[0].people)


def test_synthetic_mpii_people():
    ds = SyntheticPeople(seed=3, size=96)
    gt = mpii.synthetic_groups(ds, range(4))
    assert len(gt) == 4
    for g in gt:
        assert g["keypoints"].shape[1:] == (16, 3)
        assert (g["head_boxes"][:, 2:] > g["head_boxes"][:, :2]).all()
    _, kps, _, _ = ds.scene(0, silhouettes=False)
    kp, _ = mpii.coco_to_mpii(kps)
    # limbs map one to one; pelvis and thorax are midpoints; the head top is above the ears
    lab = kps[:, 16, 2] > 0
    np.testing.assert_allclose(kp[lab, 0, :2], kps[lab, 16, :2])
    assert np.isnan(kp[~lab, 0, :2]).all() and (kp[~lab, 0, 2] == 0).all()
    lab = (kps[:, 11, 2] > 0) & (kps[:, 12, 2] > 0)
    np.testing.assert_allclose(kp[lab, 6, :2], (kps[lab, 11, :2] + kps[lab, 12, :2]) / 2)
    ears_y = (kps[:, 3, 1] + kps[:, 4, 1]) / 2
    ok = kp[:, 9, 2] > 0
    assert (kp[ok, 9, 1] < ears_y[ok]).all() and (kp[ok, 8, 1] > ears_y[ok]).all()
    preds = []
    for i in range(4):
        _, kps, _, _ = ds.scene(i, silhouettes=False)
        p, b = mpii.coco_to_mpii(kps)
        preds.append(p[np.isfinite(b).all(1)])
    assert ae.evaluate_mpii(gt, preds).columns["Total"] == 100.0


def test_single_person_crops_and_refine(rng):
    import single_person as sp
    import torch
    from model import PoseNet

    ds = SyntheticPeople(seed=2, size=96)
    sample = None
    for i in range(10):
        sample = sp.training_crop(rng, ds, i, sp.SINGLE.input_size)
        if sample is not None:
            break
    crop, kp = sample
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    assert kp.shape == (1, 17, 3)
    inside = kp[0, :, 2] > 0
    assert inside.any() and ((kp[0, inside, :2] >= 0) & (kp[0, inside, :2] < 64)).all()
    torch.manual_seed(0)
    net = PoseNet(sp.SINGLE).eval()
    image, kps, _, _ = ds.scene(0, silhouettes=False)
    people = kps.astype(np.float64)
    people[people[..., 2] == 0] = [np.nan, np.nan, 0.0]
    views = sp.single_person_heatmaps(net, sp.SINGLE, image, ae.person_crops(people))
    assert len(views) == 2 and views[0].shape == (len(people), 17, 32, 32)
    merged = sp.refine(net, sp.SINGLE, image, people, np.ones(len(people)), thresholds=(0.15, 1e9))
    assert [m.keypoints.shape for m in merged] == [people.shape] * 2


@pytest.mark.slow
def test_train_and_evaluate_on_mpii_files(tmp_path, rng):
    """``train.py --data mpii`` and ``evaluate.py --data mpii`` on generated MPII files."""
    from PIL import Image

    from tests.test_examples_hourglass import _run, _train_args

    images = _images(rng, 4)
    for im in images:
        im.train = True  # the released file has no test joints: score a train subset
        Image.fromarray(rng.integers(0, 255, (200, 220, 3), dtype=np.uint8)).save(
            tmp_path / im.name
        )
    mpii.write_annotations(tmp_path / "mpii_human_pose_v1_u12_1.mat", images)
    mpii.write_groups(tmp_path / "groups_v12.mat", [[list(range(len(im.people)))] for im in images])
    files = [
        "--mpii-annotations",
        str(tmp_path / "mpii_human_pose_v1_u12_1.mat"),
        "--mpii-groups",
        str(tmp_path / "groups_v12.mat"),
        "--mpii-images",
        str(tmp_path),
        "--mpii-eval-split",
        "train",
    ]
    out = _run(_train_args(tmp_path / "run", "--data", "mpii", *files)).stdout
    assert "MPII multi-person AP" in out and "Total" in out
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    out = _run(
        [
            str(HG / "evaluate.py"),
            "--checkpoint",
            str(checkpoint),
            "--data",
            "mpii",
            "--device",
            "cpu",
            *files,
        ]
    ).stdout
    assert "Head" in out and "Ankle" in out and "AP " in out


@pytest.mark.slow
def test_evaluate_with_a_single_person_network(tmp_path):
    """``evaluate.py --single-person CHECKPOINT`` prints the paper's Table 5 rows."""
    from tests.test_examples_hourglass import _run, _train_args

    _run(_train_args(tmp_path / "multi"))
    _run(
        [
            str(HG / "single_person.py"),
            "train",
            "--output",
            str(tmp_path / "sp"),
            "--minutes",
            "0.05",
            "--threads",
            "1",
            "--batch-size",
            "2",
        ]
    )
    sp = next((tmp_path / "sp").glob("*.pt"))
    out = _run(
        [
            str(HG / "evaluate.py"),
            "--checkpoint",
            str(tmp_path / "multi" / "checkpoint.pt"),
            "--single-person",
            str(sp),
            "--num-images",
            "2",
            "--device",
            "cpu",
        ]
    ).stdout
    assert "refine" in out
