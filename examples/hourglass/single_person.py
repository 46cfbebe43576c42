"""Single-person refinement (the paper's Tables 4 and 5) on synthetic crowds.

"We run each detected person through the single person model, and average the
output with the predictions from our multiperson pose model" (Newell et al. 2017).
This script trains the single-person model and measures what the step does:

    # a single-person hourglass on synthetic person crops (CPU, minutes)
    python examples/hourglass/single_person.py train --output runs/single --minutes 8

    # Table 5's rows on held-out synthetic images with small people, and a
    # Table-1-style MPII line (the 17 joints mapped to MPII's 16)
    python examples/hourglass/single_person.py evaluate \\
        --checkpoint runs/tiny/model.pt --single-person runs/single/model.pt \\
        --replace-threshold 0.15 0.5 inf   # one row per rule; inf: fill missing joints only

The single-person network is the ``tiny`` hourglass without tag channels, at 64 px
input, trained on crops made the way refinement makes them at test time
(``ae.person_crops`` around a person's joints, here the ground truth jittered and
thinned like a decoder's output; ``ae.crop_people``), with heatmap targets of the
centred person only. At test time each decoded person's crop and its mirror image
go through it, and ``ae.merge_single_person`` merges the averaged heatmaps with
pose-ae-demo's rules (``main.py::refinement``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from data.synthetic import SyntheticPeople, to_coco
from evaluate import load_model, mirror, predict, print_stats, to_input
from model import HourglassConfig, PoseNet, split_outputs
from presets import PRESETS

import associative_embedding as ae

# the tiny preset's network, without tag channels, on 64 px person crops (32 px maps)
SINGLE = dataclasses.replace(PRESETS["tiny"].network, input_size=64, tag_dim=0)
SKELETON = ae.COCO_KEYPOINTS
# crops: pose-ae-demo's padding 1.3; its 60 px floor is for ~640 px COCO images, scaled
# to the 96 px synthetic images
PADDING, MIN_SIZE = 1.3, 10.0


def training_crop(rng: np.random.Generator, dataset: SyntheticPeople, index: int, size: int):
    """One training sample: a person's crop (size, size, 3) and its keypoints (1, K, 3).

    The box comes from the person's labelled joints jittered by 1.5 px and with a
    fifth of them dropped (a decoder's output is neither exact nor complete); the
    keypoints are in crop pixels with v = 0 outside the crop.
    """
    image, kps, _, _ = dataset.scene(index, silhouettes=False)
    good = np.flatnonzero((kps[..., 2] > 0).sum(1) >= 4)
    if not len(good):
        return None
    person = kps[rng.choice(good)].astype(np.float64)
    seen = person.copy()
    seen[:, 2] = (person[:, 2] > 0) & (rng.random(len(person)) > 0.2)
    seen[:, :2] += rng.normal(0, 1.5, (len(person), 2))
    seen[seen[:, 2] == 0] = [np.nan, np.nan, 0.0]
    if not (seen[:, 2] > 0).any():
        return None
    crops = ae.person_crops(seen[None], padding=PADDING * rng.uniform(0.9, 1.2), min_size=MIN_SIZE)
    crop = ae.crop_people(torch.from_numpy(image).permute(2, 0, 1).float(), crops, size)
    m = crops.to_crop(size)[0]
    kp = person.copy()
    kp[:, :2] = person[:, :2] @ m[:, :2].T + m[:, 2]
    out = (kp[:, 0] < 0) | (kp[:, 0] >= size) | (kp[:, 1] < 0) | (kp[:, 1] >= size)
    kp[out | (person[:, 2] <= 0)] = 0
    return crop[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy(), kp[None]


def train(args: argparse.Namespace) -> Path:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    config = SINGLE
    model = PoseNet(config).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    dataset = SyntheticPeople(seed=args.seed, size=96)
    rng = np.random.default_rng(args.seed)
    out_size = (config.output_size,) * 2
    t0, step, index = time.time(), 0, 0
    budget = args.minutes * 60
    args.output.mkdir(parents=True, exist_ok=True)
    while time.time() - t0 < budget:
        if time.time() - t0 > 0.8 * budget:
            for g in opt.param_groups:
                g["lr"] = args.lr_final
        samples = []
        while len(samples) < args.batch_size:
            s = training_crop(rng, dataset, index, config.input_size)
            index += 1
            if s is not None:
                samples.append(s)
        x = to_input(torch.from_numpy(np.stack([s[0] for s in samples])), "cpu")
        kp = torch.from_numpy(np.stack([s[1] for s in samples])).float()
        kp_out = ae.scale_keypoints(kp, (config.input_size,) * 2, out_size)
        target = ae.render_heatmaps(kp_out, out_size, sigma=2.0, method="exact")
        weight = 1 + 16.0 * target  # the tiny preset's positive weighting
        outputs = model(x)
        loss = (
            sum(
                ae.heatmap_loss(
                    split_outputs(outputs[:, s], config.num_joints, 0)[0], target, weight
                )
                for s in range(config.nstack)
            )
            / config.nstack
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            print(f"step {step}  {time.time() - t0:6.0f} s  loss {loss.item():.5f}", flush=True)
    path = args.output / "model.pt"
    torch.save(
        {"model": model.state_dict(), "config": config.to_dict(), "args": {"single_person": True}},
        path,
    )
    print(f"trained {step} steps in {(time.time() - t0) / 60:.1f} min -> {path}")
    return path


@torch.no_grad()
def single_person_heatmaps(model, config, image: np.ndarray, crops, *, flip: bool = True):
    """The single-person network's heatmaps of each crop: [(P, K, h, w)] per view."""
    if len(crops) == 0:
        return [np.zeros((0, config.num_joints, config.output_size, config.output_size))]
    img = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
    crop = ae.crop_people(img, crops, config.input_size)
    x = to_input(crop.permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8), "cpu")
    views = [split_outputs(model(x)[:, -1], config.num_joints, 0)[0]]
    if flip:
        hm = split_outputs(model(mirror(x, config.flip_shift))[:, -1], config.num_joints, 0)[0]
        views.append(ae.flip_maps(hm, SKELETON.flip_index))
    return [v.float().numpy() for v in views]


def refine(sp_model, sp_config, image, keypoints, scores, *, thresholds=(0.15,), **merge):
    """Merge the single-person network's view of each person into ``keypoints`` (image px).

    One merge per replace threshold (the network runs once); returns a list of Poses.
    """
    poses = ae.Poses(np.asarray(keypoints, np.float64), scores, np.zeros((len(scores), 1)))
    crops = ae.person_crops(poses, padding=PADDING, min_size=MIN_SIZE)
    views = single_person_heatmaps(sp_model, sp_config, image, crops)
    return [
        ae.merge_single_person(poses, views, crops, replace_threshold=t, **merge)
        for t in thresholds
    ]


def _split(gt: dict, keep) -> dict:
    anns = [dict(a, iscrowd=int(a["iscrowd"] or not keep(a["area"]))) for a in gt["annotations"]]
    return {**gt, "annotations": anns}


def _coco_results(keypoints, scores, image_id):
    poses = ae.Poses(np.asarray(keypoints, np.float64), scores, np.zeros((len(scores), 1)))
    return ae.to_coco_results(poses, image_id, transform=np.eye(3)[:2])


def evaluate(args: argparse.Namespace) -> dict:
    """Table 5's rows (single / multi-scale, with / without refinement) and the MPII line."""
    from data.mpii import coco_to_mpii, synthetic_groups

    torch.set_num_threads(args.threads)
    model, config, train_args = load_model(args.checkpoint)
    state = torch.load(args.single_person, map_location="cpu", weights_only=False)
    sp_config = HourglassConfig.from_dict(state["config"])
    sp_model = PoseNet(sp_config)
    sp_model.load_state_dict(state["model"])
    sp_model = sp_model.to(memory_format=torch.channels_last).eval()
    scene = {"height_range": tuple(args.height_range)}
    # images larger than the network's input, as COCO's are: at scale 1 the network sees
    # the people shrunk, the single-person crops see them at full resolution
    ds = SyntheticPeople(seed=args.seed, size=args.image_size, **scene)
    threshold = train_args.get("detection_threshold") or 0.1
    common = dict(
        flip=True,
        project=bool(train_args.get("project", False)),
        subpixel=train_args.get("subpixel") or "quarter",
        decode_options={"detection_threshold": threshold},
    )
    rows = {}
    gt = to_coco(ds, range(args.num_images))
    # the per-size split: people of the other size are ignored (crowd), as COCO's area
    # ranges do; silhouette area below / above 32^2 px
    small, larger = _split(gt, lambda a: a < 32**2), _split(gt, lambda a: a >= 32**2)
    for name, scales in (("single scale", (1.0,)), ("multi-scale", tuple(args.scales))):
        plain, mpii_preds = [], []
        refined = {t: [] for t in args.replace_threshold}
        for start in range(0, args.num_images, args.batch_size):
            idx = list(range(start, min(args.num_images, start + args.batch_size)))
            images = [ds.scene(i, silhouettes=False)[0] for i in idx]
            with torch.no_grad():
                preds = predict(model, config, images, scales=scales, **common)
            for i, image, pred in zip(idx, images, preds, strict=True):
                kp, sc = pred["keypoints"], pred["poses"].scores
                plain += _coco_results(kp, sc, i + 1)
                merged = refine(
                    sp_model,
                    sp_config,
                    image,
                    kp,
                    sc,
                    thresholds=args.replace_threshold,
                    agree_distance=args.agree,
                    min_agreement=args.min_agreement,
                )
                for t, m in zip(args.replace_threshold, merged, strict=True):
                    refined[t] += _coco_results(m.keypoints, sc, i + 1)
                mpii_preds.append(coco_to_mpii(kp)[0])
        runs = [(name, plain)] + [(f"{name} + refine >{t:g}", r) for t, r in refined.items()]
        for label, results in runs:
            rows[label] = ae.evaluate_keypoints(gt, results)
            for size, part in (("small", small), ("larger", larger)):
                rows[label][f"AP {size}"] = ae.evaluate_keypoints(part, results)["AP"]
        if name == "single scale":
            mpii_result = ae.evaluate_mpii(synthetic_groups(ds, range(args.num_images)), mpii_preds)
    print(f"\nsynthetic held-out images {args.num_images}, people {args.height_range} x image")
    n_small = sum(a["iscrowd"] == 0 for a in small["annotations"])
    print(f"people: {n_small} with area < 32^2 px, {len(gt['annotations']) - n_small} larger")
    keys = ("AP", "AP50", "AP75", "AP small", "AP larger")
    print(f"{'':26s} " + " ".join(f"{k:>9s}" for k in keys))
    for label, s in rows.items():
        vals = " ".join(f"{s[k]:9.3f}" for k in keys)
        print(f"{label:26s} {vals}")
    print("\nMPII-style multi-person AP (single scale, 17 joints mapped to MPII's 16):")
    print(mpii_result.format_table("synthetic"))
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
        table = {k: {m: float(v) for m, v in s.items()} for k, s in rows.items()}
        table["mpii"] = mpii_result.columns
        (args.output / "table5.json").write_text(json.dumps(table, indent=1))
    if args.verbose:
        for label, s in rows.items():
            print(label)
            print_stats(s)
    return {"rows": rows, "mpii": mpii_result}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the single-person network")
    t.add_argument("--output", type=Path, required=True)
    t.add_argument("--minutes", type=float, default=8.0)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--lr-final", type=float, default=2e-4)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("evaluate", help="Table 5 rows and a Table 1 line on synthetic data")
    e.add_argument("--checkpoint", required=True, help="train.py checkpoint (multi-person)")
    e.add_argument("--single-person", required=True, help="single-person checkpoint")
    e.add_argument("--num-images", type=int, default=200)
    e.add_argument("--seed", type=int, default=1, help="held-out synthetic seed")
    e.add_argument("--image-size", type=int, default=192, help="synthetic image side, px")
    e.add_argument("--height-range", type=float, nargs=2, default=[0.12, 0.5])
    e.add_argument("--scales", type=float, nargs="+", default=[1.0, 1.5, 2.0])
    e.add_argument("--agree", type=float, default=3.0, help="agree_distance, image px")
    e.add_argument(
        "--replace-threshold",
        type=float,
        nargs="+",
        default=[0.15],
        help="merge_single_person replace_threshold(s); inf: fill missing joints only",
    )
    e.add_argument("--min-agreement", type=float, default=0.2)
    e.add_argument("--batch-size", type=int, default=16)
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--output", type=Path, default=None)
    e.add_argument("--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.command == "train":
        return train(args)
    if not math.isfinite(args.agree) or args.agree < 0:
        raise SystemExit("--agree must be a non-negative number of pixels")
    return evaluate(args)


if __name__ == "__main__":
    main()
