"""Render -> decode round trip: where ``ae.decode`` puts the joints ``ae.render_heatmaps`` drew.

Joints at uniformly random sub-pixel positions (``x, y`` in map pixels, pixel ``j``
covering ``[j, j + 1)``) are rendered as Gaussian targets, one person per joint, far
enough apart not to touch, each with its own tag; the maps are decoded and every
decoded joint is compared with the joint it came from. Printed per render method and
map size: the mean signed error per axis and the median absolute error, for the
defaults and for HigherHRNet's preset (whose quarter-pixel rule moves symmetric peaks
by -0.25 px). Also the OKS AP of whole people (random COCO stick figures at least 32
map pixels tall, perfect heatmaps and tags) decoded with the defaults.

Usage::

    python benchmarks/bench_roundtrip.py            # 2,000 joints per row
    python benchmarks/bench_roundtrip.py --joints 200 --smoke
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenes import _TEMPLATE

import associative_embedding as ae

SIZES = (64, 128, 256)
METHODS = ("reference", "exact")


def joint_maps(rng, size, n_per_map, method):
    """One map of isolated joints: heatmaps (1, 1, H, W), tags, and the joints (N, 2)."""
    sigma = ae.default_sigma(size, size)
    gap = int(np.ceil(8 * sigma)) + 2
    cells = size // gap
    picks = rng.choice(cells * cells, size=min(n_per_map, cells * cells), replace=False)
    origin = np.stack([picks % cells, picks // cells], axis=1) * gap + gap / 2
    xy = origin + rng.uniform(-0.5, 0.5, (len(picks), 2))
    people = np.zeros((len(picks), 1, 3), np.float32)
    people[:, 0, :2] = xy
    people[:, 0, 2] = 1
    heat = ae.render_heatmaps(people, (size, size), method=method)[None]
    tags = np.zeros_like(heat)
    for n, (x, y) in enumerate(xy):  # each joint's own tag around it
        y0, x0 = int(y) - gap // 2, int(x) - gap // 2
        tags[0, 0, max(y0, 0) : y0 + gap, max(x0, 0) : x0 + gap] = 3.0 * n
    return heat, tags, xy


def errors(size, method, n_joints, config, seed=0):
    """Signed errors (N, 2) of decoded joints against the rendered ones."""
    rng = np.random.default_rng(seed)
    out = []
    while sum(len(e) for e in out) < n_joints:
        heat, tags, xy = joint_maps(rng, size, 25, method)  # max_people: 30 per type
        (poses,) = ae.decode(heat, tags, config)
        got = poses.keypoints[:, 0, :2].astype(np.float64)
        if len(got) != len(xy):
            raise AssertionError(f"{len(xy)} joints rendered, {len(got)} people decoded")
        nearest = np.argmin(((got[:, None] - xy[None]) ** 2).sum(-1), axis=0)
        out.append(got[nearest] - xy)
    return np.concatenate(out)[:n_joints]


def random_people(rng, size, n_people, min_height=32.0):
    """COCO stick figures (N, 17, 3) at least ``min_height`` map pixels tall, boxes apart.

    Up to ``n_people``: fewer where they do not fit side by side.
    """
    people = []
    tries = 0
    while len(people) < n_people and tries < 1000:
        tries += 1
        height = rng.uniform(min_height, 0.8 * size)
        centre = rng.uniform(0.2 * size, 0.8 * size, 2)
        joints = _TEMPLATE * height / 1.8 + centre + rng.normal(0, 0.02 * height, (17, 2))
        if (joints < 1).any() or (joints > size - 1).any():
            continue
        box = np.r_[joints.min(0), joints.max(0)]
        if any(
            min(box[2], b[2]) > max(box[0], b[0]) and min(box[3], b[3]) > max(box[1], b[1])
            for b in (p[1] for p in people)
        ):
            continue
        people.append((joints, box))
    kp = np.zeros((len(people), 17, 3), np.float32)
    for n, (joints, _) in enumerate(people):
        kp[n, :, :2] = joints
        kp[n, :, 2] = 1
    return kp


def perfect_maps(kp, size, method="exact"):
    """Heatmaps and tags (D = 1) of people ``kp``: the tag of the nearest person's joint."""
    heat = ae.render_heatmaps(kp, (size, size), method=method)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    tags = np.zeros((17, 1, size, size), np.float32)
    for k in range(17):
        d = (xx[None] - kp[:, k, 0, None, None]) ** 2 + (yy[None] - kp[:, k, 1, None, None]) ** 2
        tags[k, 0] = 2.0 * np.argmin(d, axis=0)
    return heat, tags


def people_ap(n_images, size, seed=0, method="exact"):
    """OKS AP of perfect maps of 1-4 people (fewer where they do not fit) decoded with the
    defaults."""
    rng = np.random.default_rng(seed)
    images, annotations, results = [], [], []
    for i in range(n_images):
        kp = random_people(rng, size, int(rng.integers(1, 5)))
        heat, tags = perfect_maps(kp, size, method)
        (poses,) = ae.decode(heat[None], tags[None])
        images.append({"id": i + 1, "width": size, "height": size})
        for p in kp:
            w, h = np.ptp(p[:, :2], axis=0)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": 1,
                    "iscrowd": 0,
                    "keypoints": np.c_[p[:, :2], np.full(17, 2)].ravel().tolist(),
                    "num_keypoints": 17,
                    "bbox": [*p[:, :2].min(0).tolist(), float(w), float(h)],
                    "area": float(w * h),
                }
            )
        results += ae.to_coco_results(poses, i + 1)
    truth = {"images": images, "annotations": annotations, "categories": [{"id": 1}]}
    return ae.evaluate_keypoints(truth, results)["AP"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--joints", type=int, default=2000, help="joints per row")
    parser.add_argument("--images", type=int, default=50, help="images for the people AP")
    parser.add_argument("--smoke", action="store_true", help="a few joints, for CI")
    args = parser.parse_args(argv)
    n = 50 if args.smoke else args.joints
    configs = {"default": ae.DecodeConfig(), "higherhrnet": ae.DecodeConfig.preset("higherhrnet")}
    print(f"{n} joints per row; error = decoded - rendered, map pixels")
    print("| method | map | preset | mean error x | mean error y | median abs error |")
    print("| --- | --- | --- | --- | --- | --- |")
    for method in METHODS:
        for size in SIZES:
            for name, config in configs.items():
                e = errors(size, method, n, config)
                med = np.median(np.abs(e))
                print(
                    f"| {method} | {size}x{size} | {name} | {e[:, 0].mean():+.4f} | "
                    f"{e[:, 1].mean():+.4f} | {med:.4f} |",
                    flush=True,
                )
    images = 4 if args.smoke else args.images
    for size in (64, 128):
        print(
            f"people >= 32 px tall, perfect maps {size}x{size}, defaults: OKS AP "
            f"{people_ap(images, size):.4f} ({images} images)"
        )


if __name__ == "__main__":
    main()
