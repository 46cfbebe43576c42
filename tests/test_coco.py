"""Tests of associative_embedding.coco on a generated tiny COCO ground truth."""

from __future__ import annotations

import copy
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("pycocotools")

import associative_embedding as ae
from associative_embedding.skeletons import COCO_KEYPOINTS
from tests.conftest import rle_counts

K = 17
SIGMAS = np.array(COCO_KEYPOINTS.sigmas)


def make_gt(rng, people_per_image=(2, 1, 3), size=400):
    """A small COCO keypoint ground truth: people of medium and large area."""
    images, annotations = [], []
    ann_id = 0
    for image_id, count in enumerate(people_per_image, start=10):
        images.append(
            {"id": image_id, "width": size, "height": size, "file_name": f"{image_id}.jpg"}
        )
        for _ in range(count):
            ann_id += 1
            w, h = rng.uniform(30, 150), rng.uniform(60, 200)
            x0, y0 = rng.uniform(0, size - w), rng.uniform(0, size - h)
            kp = np.zeros((K, 3))
            kp[:, 0] = x0 + rng.uniform(0, w, K)
            kp[:, 1] = y0 + rng.uniform(0, h, K)
            kp[:, 2] = 2
            hidden = rng.uniform(size=K) < 0.15
            kp[hidden] = 0  # unlabeled joints are 0, 0, 0 in COCO
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": 1,
                    "iscrowd": 0,
                    "keypoints": kp.ravel().tolist(),
                    "num_keypoints": int((~hidden).sum()),
                    "bbox": [x0, y0, w, h],
                    "area": w * h,
                }
            )
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_KEYPOINTS.keypoints)}],
    }


def predictions_from_gt(gt, image_id, score=0.9):
    """GT people of one image as decoder output (P, K, 3): unlabeled joints missing."""
    people = []
    for a in gt["annotations"]:
        if a["image_id"] != image_id:
            continue
        kp = np.array(a["keypoints"], dtype=float).reshape(K, 3)
        out = np.empty((K, 3))
        labeled = kp[:, 2] > 0
        out[labeled] = np.c_[kp[labeled, :2], np.full(labeled.sum(), score)]
        out[~labeled] = [np.nan, np.nan, 0.0]
        people.append(out)
    return np.array(people).reshape(-1, K, 3)


def all_results(gt, transform_people=None, **kwargs):
    results = []
    for image in gt["images"]:
        people = predictions_from_gt(gt, image["id"])
        if transform_people is not None:
            people = transform_people(image["id"], people)
        results += ae.to_coco_results(people, image["id"], **kwargs)
    return results


def oks(gt_ann, dt_keypoints, sigmas=SIGMAS):
    """Object keypoint similarity, written from the COCO definition."""
    g = np.array(gt_ann["keypoints"], dtype=float).reshape(-1, 3)
    d = np.array(dt_keypoints, dtype=float).reshape(-1, 3)
    labeled = g[:, 2] > 0
    dist2 = ((g[:, :2] - d[:, :2]) ** 2).sum(axis=1)
    e = dist2 / (2 * gt_ann["area"] * (2 * sigmas) ** 2)
    return float(np.exp(-e[labeled]).mean())


# --------------------------------------------------------------------------- to_coco_results


def test_to_coco_results_format_and_json(rng):
    kp = rng.uniform(0, 50, size=(3, K, 3))
    kp[1, 4] = [np.nan, np.nan, 0.0]
    out = ae.to_coco_results(kp, np.int64(5), category_id=2)
    assert len(out) == 3
    for p, r in enumerate(out):
        assert set(r) == {"image_id", "category_id", "keypoints", "score"}
        assert r["image_id"] == 5
        assert type(r["image_id"]) is int
        assert r["category_id"] == 2
        assert len(r["keypoints"]) == 3 * K
        assert all(type(v) is float for v in r["keypoints"][0::3] + r["keypoints"][1::3])
        assert all(type(v) is int for v in r["keypoints"][2::3])
        assert r["score"] == pytest.approx(kp[p, :, 2].mean())
    flat = np.array(out[1]["keypoints"]).reshape(K, 3)
    assert flat[4, 2] == 0
    assert (np.delete(flat[:, 2], 4) == 1).all()
    np.testing.assert_allclose(
        np.delete(flat, 4, axis=0)[:, :2], np.delete(kp[1], 4, axis=0)[:, :2]
    )
    json.dumps(out)


def test_to_coco_results_missing_joints(rng):
    kp = rng.uniform(0, 50, size=(1, K, 3))
    kp[0, [0, 3]] = [np.nan, np.nan, 0.0]
    kp[0, 7, 2] = 0.0  # a joint with coordinates but score 0 is missing too
    missing = [0, 3, 7]
    found = [k for k in range(K) if k not in missing]
    mean = kp[0, found, :2].mean(axis=0)
    by_mean = np.array(ae.to_coco_results(kp, 1)[0]["keypoints"]).reshape(K, 3)
    np.testing.assert_allclose(by_mean[missing], [[*mean, 0]] * 3)
    by_zero = np.array(ae.to_coco_results(kp, 1, missing="zero")[0]["keypoints"]).reshape(K, 3)
    np.testing.assert_array_equal(by_zero[missing], np.zeros((3, 3)))
    np.testing.assert_allclose(by_zero[found, :2], kp[0, found, :2])


def test_to_coco_results_drops_people_without_joints(rng):
    kp = rng.uniform(0, 50, size=(3, K, 3))
    kp[1, :, 2] = 0.0
    out = ae.to_coco_results(kp, 1)
    assert len(out) == 2
    np.testing.assert_allclose(out[1]["keypoints"][0:2], kp[2, 0, :2])
    assert ae.to_coco_results(np.zeros((0, K, 3)), 1) == []


def test_to_coco_results_scores_from_poses_and_argument(rng):
    kp = rng.uniform(0, 50, size=(2, K, 3))
    poses = SimpleNamespace(keypoints=kp, scores=np.array([0.25, 0.75]))
    assert [r["score"] for r in ae.to_coco_results(poses, 1)] == [0.25, 0.75]
    out = ae.to_coco_results(poses, 1, scores=[0.5, 0.125])
    assert [r["score"] for r in out] == [0.5, 0.125]


def test_to_coco_results_transforms(rng):
    kp = rng.uniform(0, 50, size=(2, K, 3))
    kp[0, 2] = [np.nan, np.nan, 0.0]
    affine = np.array([[4.0, 0.5, 10.0], [-0.25, 4.0, -3.0]])
    expected_xy = kp[..., :2] @ affine[:, :2].T + affine[:, 2]
    by_matrix = ae.to_coco_results(kp, 1, affine)
    by_callable = ae.to_coco_results(kp, 1, lambda xy: xy @ affine[:, :2].T + affine[:, 2])
    for out in (by_matrix, by_callable):
        flat = np.array([r["keypoints"] for r in out]).reshape(2, K, 3)
        np.testing.assert_allclose(flat[1, :, :2], expected_xy[1])
        np.testing.assert_allclose(np.delete(flat[0], 2, 0)[:, :2], np.delete(expected_xy[0], 2, 0))
        # the missing joint sits at the mean of the transformed detected joints
        np.testing.assert_allclose(flat[0, 2, :2], np.delete(expected_xy[0], 2, 0).mean(axis=0))


def test_to_coco_results_tensor_input(rng):
    torch = pytest.importorskip("torch")
    kp = rng.uniform(0, 50, size=(2, K, 3))
    from_tensor = ae.to_coco_results(SimpleNamespace(keypoints=torch.from_numpy(kp)), 3)
    assert from_tensor == ae.to_coco_results(kp, 3)


@pytest.mark.parametrize(
    ("poses", "kwargs", "error", "match"),
    [
        (np.zeros((2, K, 2)), {}, ValueError, r"poses must have shape \(P, K, 3\)"),
        (np.zeros((2, K, 3), dtype=int), {}, TypeError, "floating-point"),
        ([np.zeros((K, 3))], {}, TypeError, "poses must be a Poses"),
        (np.full((1, K, 3), np.inf), {}, ValueError, "infinite"),
        (np.full((1, K, 3), np.nan), {}, ValueError, "NaN scores"),
        (np.ones((1, K, 3)), {"image_id": 1.5}, TypeError, "image_id must be an integer"),
        (np.ones((1, K, 3)), {"image_id": True}, TypeError, "image_id must be an integer"),
        (np.ones((1, K, 3)), {"category_id": "person"}, TypeError, "category_id"),
        (np.ones((1, K, 3)), {"missing": "drop"}, ValueError, "missing must be one of"),
        (np.ones((1, K, 3)), {"scores": [1.0, 2.0]}, ValueError, r"scores must have shape \(P,\)"),
        (np.ones((1, K, 3)), {"scores": [np.nan]}, ValueError, "scores contains NaN"),
        (np.ones((1, K, 3)), {"scores": ["a"]}, TypeError, "scores must be real numbers"),
        (np.ones((1, K, 3)), {"transform": np.eye(3)}, ValueError, "2x3 affine"),
        (np.ones((1, K, 3)), {"transform": [[1, 0, 0], [0, 1, 0]]}, TypeError, "transform must be"),
        (
            np.ones((1, K, 3)),
            {"transform": np.full((2, 3), np.nan)},
            ValueError,
            "transform contains NaN",
        ),
        (
            np.ones((1, K, 3)),
            {"transform": lambda xy: xy[:, :1]},
            ValueError,
            r"transform must return an array of shape \(M, 2\)",
        ),
    ],
)
def test_to_coco_results_rejects_bad_input(poses, kwargs, error, match):
    args = {"image_id": 1} | kwargs
    with pytest.raises(error, match=match):
        ae.to_coco_results(poses, args.pop("image_id"), **args)


# --------------------------------------------------------------------------- evaluate_keypoints


def test_perfect_predictions_score_one(rng):
    gt = make_gt(rng)
    stats = ae.evaluate_keypoints(gt, all_results(gt))
    assert list(stats) == ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]
    areas = [a["area"] for a in gt["annotations"]]
    assert any(32**2 < a <= 96**2 for a in areas)
    assert any(a > 96**2 for a in areas)
    for name, value in stats.items():
        assert value == pytest.approx(1.0), name


def test_known_oks_gives_known_ap(rng):
    # one person, every labeled joint moved so that its OKS term is exactly 0.72:
    # AP counts the OKS thresholds 0.50 ... 0.70 (5 of 10), AP50 = 1, AP75 = 0
    gt = make_gt(rng, people_per_image=(1,))
    ann = gt["annotations"][0]
    g = np.array(ann["keypoints"], dtype=float).reshape(K, 3)
    d = np.sqrt(-np.log(0.72) * 2 * ann["area"] * (2 * SIGMAS) ** 2)
    angle = rng.uniform(0, 2 * np.pi, K)
    pred = np.c_[g[:, 0] + d * np.cos(angle), g[:, 1] + d * np.sin(angle), np.ones(K)]
    results = ae.to_coco_results(pred[None], ann["image_id"])
    assert oks(ann, results[0]["keypoints"]) == pytest.approx(0.72)
    stats = ae.evaluate_keypoints(gt, results)
    assert stats["AP"] == pytest.approx(0.5)
    assert stats["AP50"] == pytest.approx(1.0)
    assert stats["AP75"] == pytest.approx(0.0)
    assert stats["AR"] == pytest.approx(0.5)


def test_perturbed_and_missing_predictions_score_less(rng):
    gt = make_gt(rng)

    def jitter(_, people):
        return people + np.r_[rng.normal(0, 6, 2), 0.0]

    noisy = ae.evaluate_keypoints(gt, all_results(gt, jitter))
    assert 0.0 < noisy["AP"] < 1.0

    def drop_first(_, people):
        return people[1:]

    dropped = ae.evaluate_keypoints(gt, all_results(gt, drop_first))
    assert dropped["AR"] < 1.0
    assert dropped["AP"] < 1.0

    def lose_labeled_joints(_, people):
        people = people.copy()
        people[:, :8] = [np.nan, np.nan, 0.0]
        return people

    for missing in ("mean", "zero"):
        stats = ae.evaluate_keypoints(gt, all_results(gt, lose_labeled_joints, missing=missing))
        assert stats["AP"] < 1.0


def test_score_order_matters(rng):
    # a false positive scored above the true people lowers AP; scored below, it does not
    gt = make_gt(rng, people_per_image=(1,))
    image_id = gt["images"][0]["id"]
    true = ae.to_coco_results(predictions_from_gt(gt, image_id, score=0.5), image_id)
    far = rng.uniform(0, 5, size=(1, K, 3)) + np.array([300.0, 300.0, 0.0])
    for fp_score, expect_one in ((0.9, False), (0.1, True)):
        fp = ae.to_coco_results(far, image_id, scores=[fp_score])
        stats = ae.evaluate_keypoints(gt, true + fp)
        assert (stats["AP"] == pytest.approx(1.0)) is expect_one


def test_empty_results(rng):
    gt = make_gt(rng)
    stats = ae.evaluate_keypoints(gt, [])
    assert stats["AP"] == 0.0
    assert stats["AR"] == 0.0
    empty_gt = make_gt(rng, people_per_image=(0, 0))
    assert all(math.isnan(v) for v in ae.evaluate_keypoints(empty_gt, []).values())


def test_paths_coco_objects_image_ids_and_no_mutation(rng, tmp_path, capsys):
    from pycocotools.coco import COCO

    gt = make_gt(rng)
    results = all_results(gt)
    kept = copy.deepcopy(results)
    gt_path, res_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(gt))
    res_path.write_text(json.dumps(results))
    by_dict = ae.evaluate_keypoints(gt, results)
    assert results == kept  # pycocotools adds "area", "bbox", "id": not to our dicts
    assert capsys.readouterr().out == ""
    by_path = ae.evaluate_keypoints(str(gt_path), res_path)
    coco = COCO(str(gt_path))
    capsys.readouterr()
    by_object = ae.evaluate_keypoints(coco, results, verbose=True)
    assert "Average Precision" in capsys.readouterr().out
    assert by_dict == by_path == by_object

    # drop image 11's results: on all images it lowers AR, on the others it does not matter
    others = [r for r in results if r["image_id"] != 11]
    assert ae.evaluate_keypoints(gt, others)["AR"] < 1.0
    subset = ae.evaluate_keypoints(gt, others, image_ids=[10, 12])
    assert subset["AR"] == pytest.approx(1.0)


def test_custom_sigmas(rng):
    # larger sigmas forgive a fixed error more
    gt = make_gt(rng)

    def shift(_, people):
        return people + np.array([3.0, -2.0, 0.0])

    results = all_results(gt, shift)
    tight = ae.evaluate_keypoints(gt, results)
    loose = ae.evaluate_keypoints(gt, results, sigmas=SIGMAS * 4)
    assert loose["AP"] > tight["AP"]
    assert loose["AP"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("gt_change", "results_change", "kwargs", "error", "match"),
    [
        (
            None,
            lambda r: [*r, {**r[0], "image_id": 999}],
            {},
            ValueError,
            r"not in gt_json: \[999\]",
        ),
        (None, lambda r: r[0], {}, TypeError, "results must be a list"),
        (None, lambda r: [*r, 5], {}, TypeError, r"results\[\d+\] must be a dict"),
        (None, lambda r: [{"image_id": 10}], {}, ValueError, "has no 'category_id'"),
        (None, lambda r: [{**r[0], "keypoints": [0.0] * 9}], {}, ValueError, "3 \\* K = 51"),
        (None, lambda r: [{**r[0], "score": "high"}], {}, TypeError, "score"),
        (None, None, {"sigmas": [0.1] * 16}, ValueError, "3 \\* K = 48"),
        (None, None, {"sigmas": [-0.1] * 17}, ValueError, "positive and finite"),
        (None, None, {"sigmas": np.ones((17, 2))}, ValueError, "1-D sequence"),
        (
            None,
            None,
            {"image_ids": [10, 404]},
            ValueError,
            r"image_ids are not in gt_json: \[404\]",
        ),
        (lambda g: 3, None, {}, TypeError, "gt_json must be a path"),
        (lambda g: {"images": []}, None, {}, ValueError, "'annotations' list"),
    ],
)
def test_evaluate_keypoints_rejects_bad_input(rng, gt_change, results_change, kwargs, error, match):
    gt = make_gt(rng)
    results = all_results(gt)
    if gt_change is not None:
        gt = gt_change(gt)
    if results_change is not None:
        results = results_change(results)
    with pytest.raises(error, match=match):
        ae.evaluate_keypoints(gt, results, **kwargs)


def test_decoded_people_round_trip(rng):
    # ground truth in image pixels -> ideal maps at stride 4 -> decode -> COCO results
    gt = make_gt(rng, people_per_image=(3,), size=256)
    image_id = gt["images"][0]["id"]
    people = predictions_from_gt(gt, image_id, score=1.0)
    labeled = np.isfinite(people[..., 0])
    on_map = np.where(labeled[..., None], people / [4.0, 4.0, 1.0], 0.0)
    heatmaps = ae.render_heatmaps(on_map, (64, 64))
    yy, xx = np.mgrid[0:64, 0:64] + 0.5
    dist = np.hypot(xx - on_map[..., 0, None, None], yy - on_map[..., 1, None, None])
    dist[~labeled] = np.inf  # (N, K, H, W)
    tags = (3.0 * dist.argmin(axis=0)).astype(np.float32)  # tag map k: nearest person's number
    (poses,) = ae.decode(heatmaps[None], tags[None], refine=False)
    results = ae.to_coco_results(poses, image_id, transform=np.array([[4.0, 0, 0], [0, 4.0, 0]]))
    assert len(results) == len(poses) == 3
    assert [r["score"] for r in results] == pytest.approx(poses.scores.tolist())
    flat = np.array([r["keypoints"] for r in results]).reshape(3, K, 3)
    found = np.isfinite(poses.keypoints[..., 0])
    np.testing.assert_allclose(flat[..., :2][found], poses.rescale(4.0).keypoints[..., :2][found])
    stats = ae.evaluate_keypoints(gt, results)
    assert stats["AP50"] == pytest.approx(1.0)
    assert stats["AR50"] == pytest.approx(1.0)


# --------------------------------------------------------------------------- coco_ignore_mask


def _decode(rle):
    """pycocotools' decode, without its numpy-2 copy-keyword deprecation warning."""
    import warnings

    from pycocotools import mask as mask_utils

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        return mask_utils.decode(rle)


def higherhrnet_mask(annotations, height, width):
    """HigherHRNet ``COCOKeypoints.get_mask`` (lib/dataset/COCOKeypoints.py), line by line."""
    from pycocotools import mask as mask_utils

    m = np.zeros((height, width))
    for obj in annotations:
        if obj["iscrowd"]:
            rle = mask_utils.frPyObjects(obj["segmentation"], height, width)
            m += _decode(rle)
        elif obj["num_keypoints"] == 0:
            rles = mask_utils.frPyObjects(obj["segmentation"], height, width)
            for rle in rles:
                m += _decode(rle)
    return m < 0.5


def rle_region(counts, height, width):
    """Decode uncompressed RLE counts with a plain loop (the inverse of rle_counts)."""
    flat = np.zeros(height * width, bool)
    pos, value = 0, False
    for n in counts:
        flat[pos : pos + n] = value
        pos, value = pos + n, not value
    return flat.reshape((width, height)).T


def star_polygon(rng, height, width):
    """A random star-shaped polygon (flat x, y list) inside the image."""
    n = int(rng.integers(3, 9))
    cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = rng.uniform(1, max(1.5, 0.3 * min(height, width)), n)
    xy = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
    return np.clip(xy, 0, [width, height]).ravel().tolist()


def random_annotations(rng, height, width):
    """People with keypoints, people without (polygons) and crowds (uncompressed RLE)."""
    anns = []
    for _ in range(int(rng.integers(0, 6))):
        kind = rng.choice(["person", "unlabelled", "crowd"])
        if kind == "crowd":
            region = np.zeros((height, width), bool)
            for _ in range(int(rng.integers(1, 3))):
                y0, x0 = rng.integers(0, height), rng.integers(0, width)
                region[y0 : y0 + rng.integers(1, 20), x0 : x0 + rng.integers(1, 20)] = True
            seg = {"counts": rle_counts(region), "size": [height, width]}
            anns.append({"iscrowd": 1, "num_keypoints": 0, "segmentation": seg})
        else:
            polygons = [star_polygon(rng, height, width) for _ in range(rng.integers(1, 3))]
            labelled = int(rng.integers(1, 17)) if kind == "person" else 0
            anns.append({"iscrowd": 0, "num_keypoints": labelled, "segmentation": polygons})
    return anns


def test_coco_ignore_mask_follows_higherhrnet(rng):
    for _ in range(40):
        height, width = (int(v) for v in rng.integers(1, 60, size=2))
        anns = random_annotations(rng, height, width)
        mask = ae.coco_ignore_mask(anns, height, width)
        assert mask.shape == (height, width) and mask.dtype == np.float32
        np.testing.assert_array_equal(mask, higherhrnet_mask(anns, height, width))


def polygon_region(poly, height, width):
    """Pixels whose centre (j + 0.5, i + 0.5) is inside ``poly`` (even-odd rule), and the
    centres' distance to the polygon's boundary, with plain loops over the edges."""
    xy = np.reshape(poly, (-1, 2))
    yy, xx = np.mgrid[0:height, 0:width] + 0.5
    inside = np.zeros((height, width), bool)
    dist = np.full((height, width), np.inf)
    for (x0, y0), (x1, y1) in zip(xy, np.roll(xy, -1, axis=0), strict=True):
        crosses = (y0 > yy) != (y1 > yy)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x0 + (yy - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (xx < x_at)
        length2 = (x1 - x0) ** 2 + (y1 - y0) ** 2
        t = np.clip(((xx - x0) * (x1 - x0) + (yy - y0) * (y1 - y0)) / max(length2, 1e-12), 0, 1)
        dist = np.minimum(dist, np.hypot(xx - (x0 + t * (x1 - x0)), yy - (y0 + t * (y1 - y0))))
    return inside, dist


def test_coco_ignore_mask_regions(rng):
    """Independent of pycocotools: crowds by a plain RLE loop, polygons by pixel centres
    (compared half a pixel or more from the polygon's edges, where rasterisers agree)."""
    height, width = 48, 64
    for _ in range(10):
        anns = random_annotations(rng, height, width)
        mask = ae.coco_ignore_mask(anns, height, width)
        ignored = np.zeros((height, width), bool)
        unsure = np.zeros((height, width), bool)
        for a in anns:
            if a["iscrowd"]:
                ignored |= rle_region(a["segmentation"]["counts"], height, width)
            elif a["num_keypoints"] == 0:
                for poly in a["segmentation"]:
                    inside, dist = polygon_region(poly, height, width)
                    ignored |= inside
                    unsure |= dist < 0.5
        np.testing.assert_array_equal(mask[~unsure], (~ignored[~unsure]).astype(np.float32))
        assert unsure.mean() < 0.5  # most pixels are compared


def test_coco_ignore_mask_other_segmentation_forms(rng):
    from pycocotools import mask as mask_utils

    height, width = 30, 40
    region = np.zeros((height, width), np.uint8, order="F")
    region[5:12, 20:33] = 1
    compressed = mask_utils.encode(region)
    compressed_str = {**compressed, "counts": compressed["counts"].decode()}
    poly = [[2.0, 2.0, 12.0, 2.0, 12.0, 9.0, 2.0, 9.0]]
    poly_region = higherhrnet_mask(
        [{"iscrowd": 0, "num_keypoints": 0, "segmentation": poly}], 30, 40
    )
    expected = (~region.astype(bool) & poly_region).astype(np.float32)
    for crowd_seg in (
        compressed,
        compressed_str,
        {"counts": rle_counts(region.astype(bool)), "size": [30, 40]},
    ):
        anns = [
            {"iscrowd": 1, "segmentation": crowd_seg},
            {"iscrowd": 0, "num_keypoints": 0, "segmentation": poly},
        ]
        np.testing.assert_array_equal(ae.coco_ignore_mask(anns, height, width), expected)
    # a crowd given as polygons, an unlabelled person given as RLE; num_keypoints read from
    # the keypoints when absent
    anns = [
        {"iscrowd": 1, "segmentation": poly},
        {"segmentation": compressed, "keypoints": [0] * 51},
        {"segmentation": [star_polygon(rng, 30, 40)], "keypoints": [5, 5, 2] + [0] * 48},
        {"iscrowd": 0, "num_keypoints": 0, "segmentation": []},  # nothing to mask
    ]
    np.testing.assert_array_equal(ae.coco_ignore_mask(anns, height, width), expected)
    np.testing.assert_array_equal(ae.coco_ignore_mask([], 3, 2), np.ones((3, 2), np.float32))
    np.testing.assert_array_equal(ae.coco_ignore_mask((), 3, 2), np.ones((3, 2), np.float32))


@pytest.mark.parametrize(
    ("annotations", "size", "error", "match"),
    [
        ([], (0, 5), ValueError, "height must be >= 1"),
        ([], (5, 2.5), TypeError, "width must be an integer"),
        ({"iscrowd": 1}, (5, 5), TypeError, "annotations must be a sequence of dicts"),
        (["x"], (5, 5), TypeError, r"annotations\[0\] must be a dict, got str"),
        ([{"iscrowd": 1}], (5, 5), ValueError, r"annotations\[0\] .*no 'segmentation'"),
        ([{"iscrowd": 0, "segmentation": []}], (5, 5), ValueError, "num_keypoints"),
        (
            [{"iscrowd": 0, "num_keypoints": 0, "segmentation": [[0, 0, 4, 0, 4]]}],
            (5, 5),
            ValueError,
            r"annotations\[0\]\['segmentation'\]\[0\] .*even number .* at least 6.*got 5",
        ),
        (
            [{"iscrowd": 0, "num_keypoints": 0, "segmentation": [[0, 0, 4, 0, 4, float("nan")]]}],
            (5, 5),
            ValueError,
            "NaN or infinite",
        ),
        (
            [{"iscrowd": 1, "segmentation": {"counts": [25], "size": [5, 6]}}],
            (5, 5),
            ValueError,
            r"size \[5, 6\] .* height, width = \(5, 5\)",
        ),
        (
            [{"iscrowd": 1, "segmentation": {"counts": [20], "size": [5, 5]}}],
            (5, 5),
            ValueError,
            "counts that sum to 20, not to the image.s 25 pixels",
        ),
        ([{"iscrowd": 1, "segmentation": "abc"}], (5, 5), TypeError, "polygons .* or an RLE dict"),
    ],
)
def test_coco_ignore_mask_rejects_bad_input(annotations, size, error, match):
    with pytest.raises(error, match=match):
        ae.coco_ignore_mask(annotations, *size)


def test_ground_truth_without_area_raises_saying_what_to_pass(rng):
    gt = make_gt(rng, people_per_image=(2,), size=256)
    del gt["annotations"][1]["area"]
    image_id = gt["images"][0]["id"]
    results = [{"image_id": image_id, "category_id": 1, "keypoints": [0.0] * (3 * K), "score": 1.0}]
    with pytest.raises(ValueError, match=r"annotations'\]\[1\].*no 'area'.*bbox width \* height"):
        ae.evaluate_keypoints(gt, results)
    del gt["annotations"][0]["num_keypoints"]
    with pytest.raises(ValueError, match=r"annotations'\]\[0\].*no 'num_keypoints'"):
        ae.evaluate_keypoints(gt, results)
