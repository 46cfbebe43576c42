"""Evaluate a trained hourglass by COCO OKS AP (synthetic held-out images or COCO).

Test pipeline (pose-ae-train ``test.py``, HigherHRNet ``tools/valid.py`` and
``lib/core/inference.py``):
each image is resized so that its long side fits the square network input
(``input_size * scale``, rounded up to the network's multiple) and zero-padded;
the network runs on it and on its mirror image at every scale; ``ae.aggregate``
averages the heatmaps (resized to the scale-1 output) and stacks the scale-1
tags of both passes as tag dimensions (D = 2 with flip); ``ae.decode`` (adjust and
refine on) groups the joints; the poses are mapped back to image pixels and
scored by pycocotools' ``COCOeval`` (OKS, COCO sigmas).

Usage::

    python examples/hourglass/evaluate.py --checkpoint DIR/checkpoint.pt --data synthetic \\
        --output DIR
    python examples/hourglass/evaluate.py --checkpoint ckpt.pt --data coco \\
        --val-json person_keypoints_val2017.json --val-images val2017/ --output DIR

Coordinates: poses come out of ``ae.decode`` in heatmap pixels with the
pixel-centre convention (pixel ``(i, j)``'s value sits at ``x = j + 0.5``,
``y = i + 0.5``); this file maps them to continuous image pixels
(``x_image = x_heatmap * stride / r`` with ``r`` the letterbox resize factor) and
writes COCO results in COCO's convention (pixel centres at integers: minus 0.5).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from model import HourglassConfig, PoseNet, split_outputs
from options import add_mpii_arguments

import associative_embedding as ae

SKELETON = ae.COCO_KEYPOINTS

#: decoder options of the example: HigherHRNet's settings, every field. On this small
#: network's own output they measured better than the library's defaults (the crowd
#: grouping), which win on crowded decoder-level scenes (docs: "Accuracy: grouping
#: modes"); the example's published figures use them. Pass decode_options to change.
DECODE_OPTIONS: dict = dataclasses.asdict(ae.DecodeConfig.preset("higherhrnet"))


def letterbox(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """Resize ``image`` (H, W, 3) so its long side is ``side`` and pad to a square.

    Returns the (side, side, 3) uint8 input and the resize factor ``r``: continuous
    image coordinates times ``r`` are input coordinates (top-left anchored).
    """
    from PIL import Image

    h, w = image.shape[:2]
    r = side / max(h, w)
    if (h, w) == (side, side):
        return image, 1.0
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    resized = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
    out = np.zeros((side, side, 3), np.uint8)
    out[:nh, :nw] = resized
    # the exact factor of the content actually placed (rounding of nh, nw)
    return out, r


def to_input(images_uint8: torch.Tensor, device, channels_last: bool = True) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [0, 1] on ``device``."""
    x = images_uint8.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def mirror(x: torch.Tensor, shift: int = 0) -> torch.Tensor:
    """Mirror (B, C, H, W) images left-right, then shift them ``shift`` pixels left.

    The shift drops the mirrored image's first ``shift`` columns (the original's last)
    and zero-fills the vacated right-hand columns, the value the network's zero padding
    gives the original image. With ``shift = config.flip_shift`` the network's maps of
    the mirrored image, mirrored back, lie on the same grid as those of the original
    (see :attr:`model.HourglassConfig.flip_shift`); pose-ae-train, HigherHRNet and mmpose
    (``shift_heatmap=False``) mirror without a shift, which on the ``tiny`` preset
    places the joints of the flip test 0.5 input pixels to the left on average and
    costs about 0.02 AP (examples/hourglass/README.md).
    """
    if shift < 0 or shift >= x.shape[-1]:
        raise ValueError(f"shift must be in [0, {x.shape[-1]}), got {shift}")
    m = x.flip(-1)
    if shift:
        m = F.pad(m[..., shift:], (0, shift))
    return m.contiguous(memory_format=torch.channels_last)


# the shift test's input shifts (dx, dy) in input pixels
SHIFTS = ((0, 0), (1, 0), (0, 1), (1, 1))


def shift_test_applies(project: bool, scales) -> bool:
    """Whether :func:`network_maps` can run the shift test: projected maps, scale 1 only."""
    return bool(project) and tuple(scales) == (1.0,)


def shift_image(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Move the content of ``x`` (..., H, W) by ``dx`` pixels right and ``dy`` down.

    Negative shifts move it left and up. The vacated rows and columns are zero (the
    network's padding) when ``dx`` and ``dy`` are both >= 0; otherwise they keep the
    values ``x`` has there (the edge of a map shifted back).
    """
    h, w = x.shape[-2:]
    if abs(dx) >= w or abs(dy) >= h:
        raise ValueError(f"shift ({dx}, {dy}) must be smaller than the size ({h}, {w})")
    out = torch.zeros_like(x) if dx >= 0 and dy >= 0 else x.clone()
    src_y = slice(max(0, -dy), h - max(0, dy))
    dst_y = slice(max(0, dy), h - max(0, -dy))
    src_x = slice(max(0, -dx), w - max(0, dx))
    dst_x = slice(max(0, dx), w - max(0, -dx))
    out[..., dst_y, dst_x] = x[..., src_y, src_x]
    return out


def _autocast(device: torch.device, amp: str):
    if amp == "none" or device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast("cuda", dtype=dtype)


@torch.no_grad()
def network_maps(
    model: torch.nn.Module,
    config: HourglassConfig,
    images: list[np.ndarray],
    *,
    scales=(1.0,),
    flip: bool = True,
    device="cpu",
    amp: str = "none",
    project: bool = False,
    flip_shift: int | None = None,
    shift_test: bool = False,
    _input_shift: tuple[int, int] = (0, 0),
):
    """Run the network at several scales (and mirrored), aggregate with ``ae.aggregate``.

    Parameters
    ----------
    images : list of (H, W, 3) uint8 arrays.
    scales : input scales relative to ``config.input_size``; the first tag scale is 1.0
        (or the first scale if 1.0 is absent).
    project : decode at input resolution (maps upsampled ``output_stride`` times,
        HigherHRNet's PROJECT2IMAGE) instead of at the output resolution.
    flip_shift : input pixels by which the mirrored image is shifted left (see
        :func:`mirror`); None: ``config.flip_shift`` (1), 0: the references' flip test.
    shift_test : also run the network on the input shifted by one input pixel right,
        down, and both (:func:`shift_image`), shift those maps back and average them with
        the unshifted ones: four times the passes. A network whose output stride is 2
        samples the shifted inputs on the other phases of its grid; the average places the
        joints as if at stride 1. Needs ``project`` (maps at input resolution, where the
        shift is a whole map pixel) and the single scale 1.0.

    Returns
    -------
    heatmaps : (B, K, h, w) float32 tensor on the CPU
    tags : (B, K, D, h, w), D = tag_dim x (2 if flip else 1)
    factors : (B,) letterbox factors r (continuous image px x r = input px)
    map_stride : input pixels per map pixel
    """
    if shift_test:
        if not shift_test_applies(project, scales):
            raise ValueError(
                "shift_test needs project=True and scales=(1.0,), got "
                f"project={project}, scales={tuple(scales)}"
            )
        options = dict(flip=flip, device=device, amp=amp, project=True, flip_shift=flip_shift)
        heatmaps = tags = None
        for dx, dy in SHIFTS:
            hm, tg, factors, map_stride = network_maps(
                model, config, images, **options, _input_shift=(dx, dy)
            )
            hm, tg = shift_image(hm, -dx, -dy), shift_image(tg, -dx, -dy)
            heatmaps = hm if heatmaps is None else heatmaps + hm
            tags = tg if tags is None else tags + tg
        return heatmaps / len(SHIFTS), tags / len(SHIFTS), factors, map_stride
    device = torch.device(device)
    shift = config.flip_shift if flip_shift is None else flip_shift
    multiple = config.stem_stride * 2**config.depth
    base = config.output_size
    size = (config.input_size, config.input_size) if project else (base, base)
    factors = None
    outputs, flipped = [], []
    for s in scales:
        side = max(multiple, math.ceil(s * config.input_size / multiple) * multiple)
        boxed = [letterbox(im, side) for im in images]
        if s == scales[0]:
            # factors for the first scale, rescaled to scale 1 (base input side)
            factors = np.array([r * config.input_size / side for _, r in boxed])
        x = to_input(torch.from_numpy(np.stack([b for b, _ in boxed])), device)
        if _input_shift != (0, 0):
            x = shift_image(x, *_input_shift).contiguous(memory_format=torch.channels_last)
        passes = [x, mirror(x, shift)] if flip else [x]
        for j, inp in enumerate(passes):
            with _autocast(device, amp):
                out = model(inp)[:, -1]  # last stack only
            hm, tg = split_outputs(out.float(), config.num_joints, config.tag_dim)
            (outputs if j == 0 else flipped).append((hm.cpu(), tg.cpu()))
    tag_scales = tuple(i for i, s in enumerate(scales) if abs(s - 1.0) < 1e-6) or (0,)
    heatmaps, tags = ae.aggregate(
        outputs,
        size,
        flipped=flipped if flip else None,
        flip_index=SKELETON.flip_index,
        tag_scales=tag_scales,
    )
    if tags.ndim == 4:
        tags = tags.unsqueeze(2)
    map_stride = config.input_size / size[0]
    return heatmaps, tags, factors, map_stride


def image_transform(factor: float, map_stride: float) -> np.ndarray:
    """2x3 affine from decoded heatmap pixels to COCO image pixels.

    ``x_image = x_heatmap * map_stride / factor`` in continuous pixels, then minus 0.5
    for COCO's convention (pixel centres at integers).
    """
    s = map_stride / factor
    return np.array([[s, 0.0, -0.5], [0.0, s, -0.5]])


def poses_to_image(poses, factor: float, map_stride: float) -> np.ndarray:
    """Keypoints (P, K, 3) in heatmap pixels -> continuous image pixels (scores kept)."""
    kp = np.array(poses.keypoints, np.float64, copy=True)
    kp[..., :2] *= map_stride / factor
    return kp


def print_stats(stats: dict) -> None:
    """The COCO summary, as pycocotools prints it."""
    for name in ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"):
        print(f"  {name:5s} {stats[name]:.4f}")


def predict(
    model,
    config,
    images: list[np.ndarray],
    *,
    decode_options=None,
    gt_heatmaps=None,
    subpixel="quarter",
    **maps,
):
    """Poses in continuous image pixels for a batch of images.

    ``maps``: the options of :func:`network_maps` (``scales``, ``flip``,
    ``flip_shift``, ``device``, ``amp``, ``project``); ``decode_options`` override
    :data:`DECODE_OPTIONS` for ``ae.decode``.

    ``gt_heatmaps`` (B, K, h, w) replaces the network's heatmaps by ground truth
    (the paper's "GT detections" experiment: grouping quality alone). ``subpixel``:
    ``"quarter"`` keeps ``ae.decode``'s quarter-pixel adjustment (the references),
    ``"dark"`` then moves the joints with ``ae.Poses.refine_dark`` on the same maps.

    Returns one dict per image: ``poses`` (``ae.Poses`` in decoded-map pixels),
    ``transform`` (2x3, decoded-map pixels -> COCO image pixels), ``keypoints``
    (P, K, 3) in continuous image pixels, and the decoded ``heatmaps`` (K, h, w) and
    ``tags`` (K, D, h, w).
    """
    heatmaps, tags, factors, map_stride = network_maps(model, config, images, **maps)
    if gt_heatmaps is not None:
        heatmaps = torch.as_tensor(gt_heatmaps, dtype=torch.float32)
    options = {**DECODE_OPTIONS, **(decode_options or {})}
    poses = ae.decode(heatmaps, tags, **options)
    if subpixel == "dark":
        poses = [p.refine_dark(heatmaps[b]) for b, p in enumerate(poses)]
    elif subpixel != "quarter":
        raise ValueError(f"subpixel must be 'quarter' or 'dark', got {subpixel!r}")
    return [
        {
            "poses": p,
            "transform": image_transform(f, map_stride),
            "keypoints": poses_to_image(p, f, map_stride),
            "heatmaps": heatmaps[b],
            "tags": tags[b],
        }
        for b, (p, f) in enumerate(zip(poses, factors, strict=True))
    ]


def score(
    model,
    config,
    batches,
    gt: dict,
    *,
    output: Path | None = None,
    results_name: str = "results.json",
    prefix: str = "",
    verbose: bool = False,
    **options,
) -> dict:
    """The scoring loop of both evaluators: predict, write COCO results, run COCOeval.

    ``batches`` yields ``(image_ids, images, extra)``: COCO image ids, the images
    (H, W, 3) uint8 and extra keyword arguments of :func:`predict` for that batch
    (such as ``gt_heatmaps``); ``options`` go to every :func:`predict` call. ``gt``
    is the COCO ground truth of exactly these images. With ``output``, writes the
    results as ``results_name`` and the pictures of the first image
    (``{prefix}skeletons.png``, ``{prefix}tags.png``) there. Returns the
    ``ae.evaluate_keypoints`` summary.
    """
    was_training = model.training
    model.eval()
    results, shown = [], None
    try:
        for ids, images, extra in batches:
            preds = predict(model, config, images, **options, **extra)
            for image_id, image, pred in zip(ids, images, preds, strict=True):
                results += ae.to_coco_results(pred["poses"], image_id, transform=pred["transform"])
                if shown is None:
                    shown = (image, pred)
    finally:
        model.train(was_training)
    stats = ae.evaluate_keypoints(gt, results)
    if verbose:
        print_stats(stats)
    if output is not None:
        output = Path(output)
        output.mkdir(parents=True, exist_ok=True)
        (output / results_name).write_text(json.dumps(results))
        if shown is not None:
            save_pictures(shown, output, prefix=prefix, tag_dim=config.tag_dim)
    return stats


def evaluate_synthetic(
    model,
    config,
    *,
    seed: int = 1,
    num_images: int = 500,
    batch_size: int = 16,
    project=False,
    gt_heatmaps: bool = False,
    output: Path | None = None,
    verbose: bool = False,
    scene: dict | None = None,
    render: str = "reference",
    sigma: float | None = None,
    **options,
) -> dict:
    """OKS AP of ``model`` on held-out synthetic images ``0 .. num_images - 1`` of ``seed``.

    ``options`` go to :func:`predict` (test scales, flip, decoder options, ...).
    With ``output``, writes ``gt.json``, ``results.json`` and the pictures
    ``skeletons.png`` and ``tags.png`` there.
    """
    from data.synthetic import SyntheticPeople, to_coco

    ds = SyntheticPeople(seed=seed, size=config.input_size, **(scene or {}))

    def ground_truth_maps(scenes) -> torch.Tensor:
        # rendered like the training targets, at the output resolution, then resized
        # like the network's maps
        h = config.output_size
        kps = ae.pad_keypoints(
            [ae.scale_keypoints(s[1], (config.input_size,) * 2, (h, h)) for s in scenes]
        )
        maps = torch.as_tensor(ae.render_heatmaps(kps, (h, h), sigma=sigma, method=render))
        if project:
            maps = F.interpolate(
                maps, size=(config.input_size,) * 2, mode="bilinear", align_corners=False
            )
        return maps

    def batches():
        for start in range(0, num_images, batch_size):
            idx = list(range(start, min(num_images, start + batch_size)))
            scenes = [ds.scene(i) for i in idx]
            extra = {"gt_heatmaps": ground_truth_maps(scenes)} if gt_heatmaps else {}
            yield [i + 1 for i in idx], [s[0] for s in scenes], extra

    gt = to_coco(ds, range(num_images))
    stats = score(
        model, config, batches(), gt, output=output, verbose=verbose, project=project, **options
    )
    if output is not None:
        (Path(output) / "gt.json").write_text(json.dumps(gt))
    return stats


def evaluate_coco(
    model,
    config,
    ann_file,
    image_dir,
    *,
    num_images: int | None = None,
    batch_size: int = 8,
    output=None,
    verbose=False,
    **options,
) -> dict:
    """OKS AP on the first ``num_images`` images of a COCO keypoint annotation file.

    ``options`` go to :func:`predict` (test scales, flip, decoder options, ...).
    With ``output``, writes ``coco_results.json`` and the pictures
    ``coco_skeletons.png`` and ``coco_tags.png`` there.
    """
    from data.coco import load_coco, read_image

    coco = load_coco(ann_file)
    img_ids = sorted(coco.getImgIds())
    if num_images:
        img_ids = img_ids[:num_images]

    def batches():
        for start in range(0, len(img_ids), batch_size):
            ids = img_ids[start : start + batch_size]
            yield ids, [read_image(coco, image_dir, i) for i in ids], {}

    gt = dict(coco.dataset)
    keep = set(img_ids)
    gt["images"] = [im for im in gt["images"] if im["id"] in keep]
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in keep]
    return score(
        model,
        config,
        batches(),
        gt,
        output=output,
        results_name="coco_results.json",
        prefix="coco_",
        verbose=verbose,
        **options,
    )


def save_pictures(
    shown, output: Path, prefix: str = "", min_score: float = 0.1, tag_dim: int = 1
) -> None:
    """Predicted skeletons on an image (``ae.draw_poses``) and its tags (``ae.plot_tags``).

    ``shown`` is ``(image (H, W, 3) uint8, prediction dict of predict())``; people
    scoring below ``min_score`` are left out. With ``tag_dim >= 2`` the tags are
    drawn as points in the plane of the network's first two tag dimensions.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image, pred = shown
    keep = np.asarray(pred["poses"].scores) >= min_score
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.set_axis_off()
    ae.draw_poses(image, pred["keypoints"][keep], SKELETON, ax=ax)
    fig.tight_layout()
    fig.savefig(output / f"{prefix}skeletons.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    heatmaps = pred["heatmaps"].numpy()
    ae.plot_tags(
        pred["tags"].numpy(),
        np.asarray(pred["poses"].keypoints)[keep],
        SKELETON,
        ax=ax,
        heatmaps=heatmaps,
        dim=(0, 1) if tag_dim >= 2 else 0,
    )
    ax.set_title("tags of the detected people (grey: all candidates)")
    fig.tight_layout()
    fig.savefig(output / f"{prefix}tags.png")
    plt.close(fig)


def load_model(checkpoint: str | Path, device="cpu") -> tuple[PoseNet, HourglassConfig, dict]:
    """Rebuild the network from a ``train.py`` checkpoint; also return its training settings."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    config = HourglassConfig.from_dict(state["config"])
    model = PoseNet(config)
    # the weights' moving average when training kept one (train.py --ema), else the weights
    model.load_state_dict(state["ema"] if state.get("ema") is not None else state["model"])
    model = model.to(device).to(memory_format=torch.channels_last).eval()
    return model, config, state.get("args", {})


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", choices=("synthetic", "coco", "mpii"), default="synthetic")
    p.add_argument("--val-json", help="COCO person_keypoints_*.json (with --data coco)")
    p.add_argument("--val-images", help="COCO images folder (with --data coco)")
    p.add_argument("--num-images", type=int, default=500)
    p.add_argument("--seed", type=int, default=1, help="synthetic held-out seed")
    p.add_argument("--scales", type=float, nargs="+", default=[1.0])
    p.add_argument("--no-flip", action="store_true")
    p.add_argument(
        "--flip-shift",
        type=int,
        default=None,
        help="input pixels the mirrored image is shifted left by (default: the network's "
        "grid offset, 1; 0: the references' flip test)",
    )
    p.add_argument(
        "--subpixel",
        choices=("quarter", "dark"),
        default=None,
        help="sub-pixel placement of the joints (default: the checkpoint's preset)",
    )
    p.add_argument(
        "--project",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="decode at input resolution (default: as the checkpoint was trained)",
    )
    p.add_argument(
        "--shift-test",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also decode the maps of the input shifted by one pixel right, down and both "
        "(needs --project; default: as the checkpoint was trained)",
    )
    p.add_argument(
        "--gt-heatmaps",
        action="store_true",
        help="ground-truth heatmaps + predicted tags (grouping quality alone)",
    )
    p.add_argument(
        "--detection-threshold",
        type=float,
        default=None,
        help="decoder detection threshold (default: the checkpoint's preset)",
    )
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none")
    p.add_argument("--output", type=Path, default=None)
    p.add_argument(
        "--single-person",
        metavar="CHECKPOINT",
        help="refine every decoded person with this single-person network (single_person.py "
        "train) and print the paper's Table 5 rows on held-out synthetic images",
    )
    add_mpii_arguments(p)
    return p.parse_args(argv)


def evaluate_mpii_groups(model, config, args, **options) -> dict:
    """MPII multi-person AP (``ae.evaluate_mpii``) on the groups of ``args.mpii_eval_split``.

    Prints the paper's Table 1 line; returns ``{"AP": Total / 100, "mpii": columns}``.
    """
    from data.mpii import evaluate_groups, load_annotations, load_groups, multi_person_groups

    images = load_annotations(args.mpii_annotations)
    groups = load_groups(args.mpii_groups)
    pairs = multi_person_groups(images, groups, train=args.mpii_eval_split == "train")
    if not pairs:
        raise SystemExit(f"no multi-person groups in the {args.mpii_eval_split} split")
    result, _ = evaluate_groups(model, config, images, pairs, args.mpii_images, **options)
    print(result.format_table("MPII multi-person AP"))
    return {"AP": result.columns["Total"] / 100, "mpii": dict(result.columns)}


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.single_person:
        import single_person

        return single_person.main(
            ["evaluate", "--checkpoint", args.checkpoint, "--single-person", args.single_person]
            + ["--num-images", str(args.num_images), "--seed", str(args.seed)]
            + (["--output", str(args.output)] if args.output else [])
        )
    model, config, train_args = load_model(args.checkpoint, args.device)
    project = args.project if args.project is not None else bool(train_args.get("project", False))
    shift_test = args.shift_test
    if shift_test is None:
        # the checkpoint's choice where it applies: not with other scales or unprojected maps
        shift_test = bool(train_args.get("shift_test", False))
        shift_test = shift_test and shift_test_applies(project, args.scales)
    threshold = args.detection_threshold
    if threshold is None:
        threshold = train_args.get("detection_threshold") or 0.1
    common = dict(
        scales=tuple(args.scales),
        flip=not args.no_flip,
        flip_shift=args.flip_shift,
        subpixel=args.subpixel or train_args.get("subpixel") or "quarter",
        device=args.device,
        amp=args.amp,
        project=project,
        shift_test=shift_test,
        decode_options={"detection_threshold": threshold},
    )
    t0 = time.time()
    if args.data == "synthetic":
        stats = evaluate_synthetic(
            model,
            config,
            seed=args.seed,
            num_images=args.num_images,
            batch_size=args.batch_size,
            gt_heatmaps=args.gt_heatmaps,
            render=train_args.get("render", "reference"),
            sigma=train_args.get("sigma"),
            output=args.output,
            verbose=True,
            **common,
        )
    elif args.data == "mpii":
        if not (args.mpii_annotations and args.mpii_groups and args.mpii_images):
            raise SystemExit("--data mpii needs --mpii-annotations, --mpii-groups, --mpii-images")
        common.pop("flip")  # network_maps mirrors with COCO's flip index: no flip for 16 joints
        common.pop("flip_shift")
        stats = evaluate_mpii_groups(model, config, args, batch_size=args.batch_size, **common)
    else:
        stats = evaluate_coco(
            model,
            config,
            args.val_json,
            args.val_images,
            num_images=args.num_images,
            batch_size=args.batch_size,
            output=args.output,
            verbose=True,
            **common,
        )
    print(f"evaluated in {time.time() - t0:.1f} s")
    print(f"AP {stats['AP']:.4f}")
    return stats


if __name__ == "__main__":
    main()
