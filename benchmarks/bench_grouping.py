"""OKS AP of the decoder's grouping modes on synthetic decoder-level maps.

Each scene is what a trained bottom-up network hands the decoder: 17 heatmaps
with a Gaussian peak per visible joint (random widths and heights, some joints
too weak to detect, spurious peaks) and D tag maps that carry each person's tag
around its joints (a per-person value per dimension, a per-joint offset, per-pixel
noise, and in crowds joints that carry a neighbour's tag). People are COCO stick
figures with random size, aspect, rotation, limb bends and mirroring. Where two
peaks of one joint type overlap, the stronger one owns the pixels' tags.

Four difficulty levels (parameters drawn per scene from the ranges below):

- ``clean``: 1-4 people, tags 1.5-3 apart, low noise, little overlap;
- ``medium``: 3-8 people, tags 1-2.5 apart, moderate noise, boxes overlapping up to 0.3 IoU;
- ``noisy``: 4-10 people, tags 0.6-1.8 apart, noisy tags, 5 % of joints with a
  neighbour's tag, overlapping people;
- ``crowded``: 8-20 people packed side by side (touching joints), tags 0.5-1.5 apart.

Every mode decodes the same maps; the score is pycocotools' OKS AP
(``ae.evaluate_keypoints``) against the joints the maps were drawn from (every
joint inside the map is labeled, weak ones included), plus the median decode time
per image (one thread).

Usage::

    python benchmarks/bench_grouping.py            # 300 scenes per level, D = 1 and 2
    python benchmarks/bench_grouping.py --scenes 100
    python benchmarks/bench_grouping.py --smoke    # 4 scenes, higherhrnet and default, for CI
    python benchmarks/bench_grouping.py --levels crowded --dims 2 --modes higherhrnet,default
    python benchmarks/bench_grouping.py --checkpoint runs/tiny/checkpoint.pt  # a trained network
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import associative_embedding as ae  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from scenes import _TEMPLATE as TEMPLATE  # noqa: E402  (a standing person, COCO order)

# limbs that bend: (parent, child) in COCO indices; the child and its descendants rotate
BENDS = ((5, 7), (7, 9), (6, 8), (8, 10), (11, 13), (13, 15), (12, 14), (14, 16))
CHILDREN = {7: (9,), 8: (10,), 13: (15,), 14: (16,)}

# per level: (low, high) ranges drawn per scene
LEVELS = {
    "clean": {
        "people": (1, 4),
        "height": (0.35, 0.8),
        "gap": (1.5, 3.0),
        "joint_noise": (0.03, 0.1),
        "pixel_noise": (0.02, 0.06),
        "swap": 0.0,
        "spurious": (0, 1),
        "weak": 0.05,
        "max_iou": 0.1,
        "packed": False,
    },
    "medium": {
        "people": (3, 8),
        "height": (0.25, 0.6),
        "gap": (1.0, 2.5),
        "joint_noise": (0.08, 0.18),
        "pixel_noise": (0.04, 0.1),
        "swap": 0.01,
        "spurious": (0, 3),
        "weak": 0.1,
        "max_iou": 0.3,
        "packed": False,
    },
    "noisy": {
        "people": (4, 10),
        "height": (0.25, 0.6),
        "gap": (0.6, 1.8),
        "joint_noise": (0.15, 0.3),
        "pixel_noise": (0.05, 0.12),
        "swap": 0.05,
        "spurious": (2, 6),
        "weak": 0.15,
        "max_iou": 0.6,
        "packed": False,
    },
    "crowded": {
        "people": (8, 20),
        "height": (0.2, 0.45),
        "gap": (0.5, 1.5),
        "joint_noise": (0.12, 0.25),
        "pixel_noise": (0.05, 0.1),
        "swap": 0.05,
        "spurious": (3, 8),
        "weak": 0.15,
        "max_iou": 1.0,
        "packed": True,
    },
}


def _pose(rng, height, center):
    """Joints (17, 2) of one random person: bent limbs, aspect, rotation, mirroring."""
    pts = TEMPLATE.copy()
    for parent, child in BENDS:
        angle = rng.normal(0.0, 0.5)
        c, s = np.cos(angle), np.sin(angle)
        origin = pts[parent]
        for j in (child, *CHILDREN.get(child, ())):
            v = pts[j] - origin
            pts[j] = origin + np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])
    pts[:, 0] *= rng.uniform(0.7, 1.3)
    if rng.random() < 0.5:
        pts[:, 0] *= -1  # seen from the back
    angle = rng.normal(0.0, 0.25)
    c, s = np.cos(angle), np.sin(angle)
    pts = pts @ np.array([[c, s], [-s, c]])
    pts = pts * (height / 1.8) + rng.normal(0.0, 0.02 * height, pts.shape)
    return pts + center


def _box(pts):
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return np.concatenate([lo, hi])


def _iou(a, b):
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area - inter)


def _place_people(rng, cfg, n, size):
    """Joint positions (n, 17, 2) in heatmap pixels, spread or packed as the level asks."""
    people, boxes = [], []
    tries = 0
    while len(people) < n and tries < 50 * n:
        tries += 1
        height = rng.uniform(*cfg["height"]) * size
        if cfg["packed"] and people:
            # next to someone already placed: shoulder to shoulder or a row behind
            anchor = people[rng.integers(len(people))].mean(axis=0)
            offset = rng.normal(0.0, 1.0, 2) * np.array([0.35, 0.25]) * height
            center = anchor + offset
        else:
            center = rng.uniform(0.1, 0.9, 2) * size
        pts = _pose(rng, height, center)
        box = _box(pts)
        if cfg["packed"]:
            if any(
                np.linalg.norm(p.mean(axis=0) - pts.mean(axis=0)) < 0.12 * height for p in people
            ):
                continue
        elif any(_iou(box, b) > cfg["max_iou"] for b in boxes):
            continue
        inside = (pts >= 0).all(axis=1) & (pts < size - 1).all(axis=1)
        if inside.sum() < 6:
            continue
        people.append(pts)
        boxes.append(box)
    return np.array(people).reshape(-1, 17, 2)


def make_scene(rng, level, dim, size=128, dtype=np.float32):
    """One scene of a level: ``heat (17, H, W)``, ``tags (17, D, H, W)`` and the truth.

    The truth is ``(joints (P, 17, 2), visible (P, 17))`` in the decoder's
    coordinates (pixel ``(i, j)`` at ``(j + 0.5, i + 0.5)``).
    """
    cfg = LEVELS[level]
    k_joints = 17
    n = int(rng.integers(cfg["people"][0], cfg["people"][1] + 1))
    people = _place_people(rng, cfg, n, size)
    n = len(people)
    sigma = rng.uniform(1.0, 2.5)
    joint_noise = rng.uniform(*cfg["joint_noise"])
    pixel_noise = rng.uniform(*cfg["pixel_noise"])
    gaps = rng.uniform(*cfg["gap"], size=n)
    base = np.cumsum(gaps)
    base = rng.permutation(base - base.mean())
    person_tag = base[:, None] + rng.normal(0.0, 0.1, (n, dim))  # per dimension
    heat = (rng.random((k_joints, size, size)) * 0.03).astype(np.float64)
    spread = max(abs(base).max(initial=1.0), 1.0)
    tags = rng.uniform(-spread, spread, (k_joints, dim, 1, 1)) + rng.normal(
        0.0, 0.3, (k_joints, dim, size, size)
    )
    owner = np.zeros((k_joints, size, size))
    radius = int(np.ceil(3 * sigma))
    yy, xx = np.mgrid[0:size, 0:size]
    visible = (people >= 0).all(axis=2) & (people < size - 1).all(axis=2)

    def splat(k, x, y, amp, tag):
        x0, x1 = max(int(x) - radius, 0), min(int(x) + radius + 2, size)
        y0, y1 = max(int(y) - radius, 0), min(int(y) + radius + 2, size)
        if x0 >= x1 or y0 >= y1:
            return
        g = amp * np.exp(
            -((xx[y0:y1, x0:x1] - x) ** 2 + (yy[y0:y1, x0:x1] - y) ** 2) / (2 * sigma**2)
        )
        win = (g > owner[k, y0:y1, x0:x1]) & (g > 0.02 * amp)
        owner[k, y0:y1, x0:x1] = np.where(win, g, owner[k, y0:y1, x0:x1])
        heat[k, y0:y1, x0:x1] = np.maximum(heat[k, y0:y1, x0:x1], g)
        noise = rng.normal(0.0, pixel_noise, (dim, y1 - y0, x1 - x0))
        region = tags[k, :, y0:y1, x0:x1]
        tags[k, :, y0:y1, x0:x1] = np.where(win, tag[:, None, None] + noise, region)

    centers = people.mean(axis=1) if n else np.zeros((0, 2))
    for p in range(n):
        for k in range(k_joints):
            if not visible[p, k]:
                continue
            x, y = people[p, k]
            amp = rng.uniform(0.02, 0.09) if rng.random() < cfg["weak"] else rng.uniform(0.35, 1)
            tag = person_tag[p] + rng.normal(0.0, joint_noise, dim)
            if n > 1 and rng.random() < cfg["swap"]:  # the tag of the nearest other person
                dist = np.linalg.norm(centers - people[p, k], axis=1)
                dist[p] = np.inf
                tag = person_tag[int(np.argmin(dist))] + rng.normal(0.0, joint_noise, dim)
            splat(k, x, y, amp, tag)
    n_spurious = int(rng.integers(cfg["spurious"][0], cfg["spurious"][1] + 1))
    for _ in range(n_spurious):
        k = int(rng.integers(k_joints))
        x, y = rng.uniform(0, size - 1, 2)
        tag = rng.uniform(-spread, spread, dim)
        splat(k, x, y, rng.uniform(0.12, 0.5), tag)
    truth = (people + 0.5, visible)
    return heat.astype(dtype), tags.astype(dtype), truth


def make_level(seed, level, dim, n_scenes, size=128):
    """``n_scenes`` scenes of a level: lists of heatmaps, tags and truths."""
    rng = np.random.default_rng(seed)
    return [make_scene(rng, level, dim, size) for _ in range(n_scenes)]


def coco_truth(scenes, size):
    """COCO ground truth of the scenes (area: 0.6 of each person's joint box)."""
    images, annotations = [], []
    for i, (_, _, (joints, visible)) in enumerate(scenes):
        images.append({"id": i + 1, "width": size, "height": size})
        for p in range(joints.shape[0]):
            kp = np.zeros((17, 3))
            kp[:, :2] = joints[p]
            kp[:, 2] = np.where(visible[p], 2, 0)
            kp[~visible[p], :2] = 0
            pts = joints[p][visible[p]]
            x0, y0 = pts.min(axis=0)
            w, h = np.ptp(pts, axis=0)
            w = max(w, 0.3 * h)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": 1,
                    "iscrowd": 0,
                    "keypoints": kp.ravel().tolist(),
                    "num_keypoints": int(visible[p].sum()),
                    "bbox": [float(x0), float(y0), float(w), float(h)],
                    "area": float(0.6 * w * h),
                }
            )
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person"}],
    }


def evaluate(scenes, decode_one, size):
    """OKS AP of ``decode_one(heat, tags) -> Poses`` on the scenes, and ms per image."""
    results, times = [], []
    for i, (heat, tags, _) in enumerate(scenes):
        t0 = time.perf_counter()
        poses = decode_one(heat, tags)
        times.append(time.perf_counter() - t0)
        results += ae.to_coco_results(poses, i + 1)
    stats = ae.evaluate_keypoints(coco_truth(scenes, size), results)
    return stats["AP"], 1000 * statistics.median(times)


def library_mode(base, **options):
    config = dataclasses.replace(base, **options)

    def run(heat, tags):
        return ae.decode(heat[None], tags[None], config, num_threads=1)[0]

    return run


_REF = ae.DecodeConfig.preset("higherhrnet")
_DEFAULT = ae.DecodeConfig()
_REGROUP = {"tag_cost": "tiebreak", "regroup": 3}
_SPATIAL = {**_REGROUP, "spatial_weight": 1.5, "spatial_gate": 0.6}
# the crowd grouping as it was before it became the default: HigherHRNet's quarter-pixel
# rule and missing-joint fill, the crowd options of 0.1.0.dev0
_CROWD_ONLY = {
    **_SPATIAL,
    "spatial_limbs": "auto",
    "refine_window": 1.0,
    "min_score": 0.02,
    "pose_nms": 0.9,
}
# the references' grouping ("higherhrnet"), the library's defaults ("default"), the steps
# between them, and the defaults with one rule changed
MODES = {
    "higherhrnet": library_mode(_REF),
    "default": library_mode(_DEFAULT),
    "tiebreak": library_mode(_REF, tag_cost="tiebreak"),
    "exact": library_mode(_REF, tag_cost="exact"),
    "regroup": library_mode(_REF, **_REGROUP),
    "spatial": library_mode(_REF, **_SPATIAL),
    "limbs": library_mode(_REF, **_SPATIAL, spatial_limbs="auto"),
    "crowd-only": library_mode(_REF, **_CROWD_ONLY),
    "default-reference-adjust": library_mode(_DEFAULT, adjust_rule="reference"),
    "default-not-exclusive": library_mode(_DEFAULT, refine_exclusive=False),
    "default-nms-0.7": library_mode(_DEFAULT, pose_nms=0.7),
    "default-exact": library_mode(_DEFAULT, tag_cost="exact"),
    "default-no-limbs": library_mode(_DEFAULT, spatial_limbs=None),
    "default-no-gate": library_mode(_DEFAULT, spatial_gate=None),
    "default-no-spatial": library_mode(_DEFAULT, spatial_gate=None, spatial_weight=0.0),
    "default-window-0.5": library_mode(_DEFAULT, refine_window=0.5),
    "default-tag-gate": library_mode(_DEFAULT, refine_tag_gate=True),
    "default-no-nms": library_mode(_DEFAULT, pose_nms=None),
    "default-no-min-score": library_mode(_DEFAULT, min_score=0.0),
}


# held-out scenes for the trained network: the training distribution (1-4 people), and
# crowds it never saw (up to 8 smaller, more overlapping people)
TRAINED_SCENES = {
    "held-out": {},
    "crowded held-out": {"max_people": 8, "height_range": (0.35, 0.7), "max_overlap": 0.6},
}


def trained(checkpoint, num_images):
    """AP of the higherhrnet preset vs the defaults on a trained hourglass's held-out images."""
    import sys
    from pathlib import Path

    hg = Path(__file__).resolve().parents[1] / "examples" / "hourglass"
    sys.path.insert(0, str(hg))
    from evaluate import evaluate_synthetic, load_model

    model, config, train_args = load_model(checkpoint)
    threshold = train_args.get("detection_threshold") or 0.1
    configs = {
        "higherhrnet": dataclasses.asdict(_REF),
        "default": dataclasses.asdict(_DEFAULT),
    }
    common = dict(
        num_images=num_images,
        project=bool(train_args.get("project", False)),
        subpixel=train_args.get("subpixel") or "quarter",
    )
    print(f"checkpoint {checkpoint}: {num_images} held-out images (seed 1) per row; OKS AP")
    print("| scenes | higherhrnet | default | difference |")
    print("|---|---|---|---|")
    rows = [(name, scene, False) for name, scene in TRAINED_SCENES.items()]
    rows.append(("GT detections (held-out)", {}, True))
    for name, scene, gt in rows:
        aps = []
        for extra in configs.values():
            stats = evaluate_synthetic(
                model,
                config,
                seed=1,
                scene=scene,
                gt_heatmaps=gt,
                render=train_args.get("render", "reference"),
                sigma=train_args.get("sigma"),
                decode_options={**extra, "detection_threshold": threshold},
                **common,
            )
            aps.append(stats["AP"])
        print(f"| {name} | {aps[0]:.3f} | {aps[1]:.3f} | {aps[1] - aps[0]:+.3f} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=300, help="scenes per level and D")
    parser.add_argument("--size", type=int, default=128, help="heatmap side in pixels")
    parser.add_argument("--smoke", action="store_true", help="a few scenes, for CI")
    parser.add_argument("--levels", default=",".join(LEVELS))
    parser.add_argument("--dims", default="1,2")
    parser.add_argument("--modes", default=None, help="default: all (--smoke: higherhrnet,default)")
    parser.add_argument(
        "--checkpoint",
        help="a train.py checkpoint of the hourglass example: measure the higherhrnet preset "
        "against the defaults on its "
        "held-out synthetic images instead (normal, crowded, and GT detections)",
    )
    parser.add_argument("--images", type=int, default=300, help="held-out images (--checkpoint)")
    args = parser.parse_args(argv)
    if args.checkpoint:
        trained(args.checkpoint, 8 if args.smoke else args.images)
        return
    n_scenes = 4 if args.smoke else args.scenes
    levels = args.levels.split(",")
    dims = [int(d) for d in args.dims.split(",")]
    modes = (args.modes or ("higherhrnet,default" if args.smoke else ",".join(MODES))).split(",")
    ae.warmup(["float32", "float64"])  # the synthetic scenes are float64
    print(f"{n_scenes} scenes per level, {args.size}x{args.size} heatmaps, K=17; AP (ms/image)")
    header = ["level", "D", *modes]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for level in levels:
        for dim in dims:
            seed = 1000 * (list(LEVELS).index(level) + 1) + dim
            scenes = make_level(seed, level, dim, n_scenes, args.size)
            cells = []
            for mode in modes:
                for heat, tags, _ in scenes[:2]:
                    MODES[mode](heat, tags)  # compile / warm caches outside the timing
                ap, ms = evaluate(scenes, MODES[mode], args.size)
                cells.append(f"{ap:.3f} ({ms:.2f})")
            print(f"| {level} | {dim} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
