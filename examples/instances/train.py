"""Instance segmentation with associative embedding, against connected components, on a CPU.

A small U-Net (``net.py``) predicts for every pixel a foreground logit and a D-dimensional tag.
It is trained on synthetic images of touching and overlapping shapes of one colour
(``shapes.py``) with a foreground loss (binary cross-entropy) plus the library's grouping loss
over the instance label maps, ``ae.instance_grouping_loss``. On held-out images its pixels are
grouped into instances with ``ae.decode_instances`` and scored by COCO mask AP (pycocotools,
``iouType="segm"``), next to the baseline that needs no tags: the connected components of the
same predicted foreground, which merge every pair of touching shapes.

Usage (about 5 minutes on an idle 2-core CPU; at most 10 under load)::

    python examples/instances/train.py --output DIR

It ends by printing two lines::

    connected components mask AP <value>
    mask AP <value>

and writes ``labels.png`` (image, ground truth, connected components, ours on held-out images),
``log.csv`` (step, loss terms, seconds), ``results.json`` (both APs, AP50, AP75, timings) and
``model.pt`` (the trained weights) into ``DIR``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
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

from net import InstanceNet, split_outputs
from shapes import make_batch

import associative_embedding as ae


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", type=Path, required=True, help="folder for pictures and logs")
    p.add_argument("--steps", type=int, default=900, help="training steps")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--size", type=int, default=64, help="image side in pixels")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--tag-dim", type=int, default=4)
    p.add_argument("--widths", type=int, nargs="+", default=[16, 32, 48, 64])
    p.add_argument("--tag-weight", type=float, default=1.0, help="weight of pull + push")
    p.add_argument("--push", choices=["exp", "margin"], default="exp")
    p.add_argument("--tag-threshold", type=float, default=1.0, help="decode_instances")
    p.add_argument("--min-size", type=int, default=10, help="smallest instance, in pixels")
    p.add_argument("--val-images", type=int, default=200)
    p.add_argument("--max-minutes", type=float, default=8.5, help="stop training after this")
    p.add_argument(
        "--threads", type=int, default=1,
        help="torch threads (1: robust on a shared CPU, where 2 threads can be several times "
        "slower; 2 is faster on an idle machine)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def train(args: argparse.Namespace, log_path: Path) -> tuple[InstanceNet, dict]:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = InstanceNet(args.tag_dim, tuple(args.widths))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    warm = max(1, args.steps // 20)

    def lr_factor(i: int) -> float:  # linear warm-up, then cosine to 2 % of lr
        if i < warm:
            return (i + 1) / warm
        return 0.02 + 0.49 * (1 + math.cos(math.pi * (i - warm) / max(args.steps - warm, 1)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    criterion = ae.InstanceGroupingLoss(push=args.push)
    model.train()
    start = time.perf_counter()
    step = 0
    with open(log_path, "w", newline="") as f:
        log = csv.writer(f)
        log.writerow(["step", "seconds", "foreground", "pull", "push"])
        for step in range(1, args.steps + 1):
            images, labels = make_batch(rng, args.batch_size, args.size)
            images, labels = torch.from_numpy(images), torch.from_numpy(labels)
            fg_logit, tags = split_outputs(model(images))
            fg_loss = F.binary_cross_entropy_with_logits(fg_logit, (labels > 0).float())
            pull, push = criterion(tags, labels)
            loss = fg_loss + args.tag_weight * (pull + push)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            seconds = time.perf_counter() - start
            if step % 25 == 0 or step == args.steps:
                row = [step, round(seconds, 1), fg_loss.item(), pull.item(), push.item()]
                log.writerow([f"{v:.4g}" if isinstance(v, float) else v for v in row])
                f.flush()
                print(
                    f"step {step}/{args.steps}  {seconds:6.1f} s  foreground {fg_loss.item():.4f}"
                    f"  pull {pull.item():.4f}  push {push.item():.4f}",
                    flush=True,
                )
            if seconds > 60 * args.max_minutes:
                print(f"time budget reached after {step} steps", flush=True)
                break
    return model, {"steps": step, "train_seconds": time.perf_counter() - start}


@torch.no_grad()
def predict(model: InstanceNet, images: np.ndarray, batch: int = 50) -> tuple[np.ndarray, ...]:
    model.eval()
    probs, tags = [], []
    for i in range(0, len(images), batch):
        fg_logit, tag = split_outputs(model(torch.from_numpy(images[i : i + batch])))
        probs.append(torch.sigmoid(fg_logit).numpy())
        tags.append(tag.numpy())
    return np.concatenate(probs), np.concatenate(tags)


def connected_components(prob: np.ndarray, min_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Baseline: 4-connected components of ``prob > 0.5``; (label map, scores) per image."""
    from scipy import ndimage

    out = []
    for p in prob:
        cc, n = ndimage.label(p > 0.5)
        areas = np.bincount(cc.ravel(), minlength=n + 1)[1:]
        keep = np.flatnonzero(areas >= min_size) + 1
        relabel = np.zeros(n + 1, np.int64)
        relabel[keep] = np.arange(1, len(keep) + 1)
        cc = relabel[cc]
        sums = np.bincount(cc.ravel(), weights=p.ravel(), minlength=len(keep) + 1)[1:]
        out.append((cc, sums / np.maximum(areas[keep - 1], 1)))
    return out


def mask_ap(gt_labels: np.ndarray, predictions: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """COCO mask AP (pycocotools, iouType "segm") of label maps with per-instance scores."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def rle(mask: np.ndarray) -> dict:
        return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))

    images, anns, dets = [], [], []
    h, w = gt_labels.shape[1:]
    for i, (gt, (pred, scores)) in enumerate(zip(gt_labels, predictions, strict=True)):
        images.append({"id": i, "height": h, "width": w})
        for lab in np.unique(gt[gt > 0]):
            r = rle(gt == lab)
            anns.append({
                "id": len(anns) + 1, "image_id": i, "category_id": 1, "segmentation": r,
                "area": float(mask_utils.area(r)), "bbox": mask_utils.toBbox(r).tolist(),
                "iscrowd": 0,
            })  # fmt: skip
        for p, score in enumerate(scores):
            dets.append({
                "image_id": i, "category_id": 1, "segmentation": rle(pred == p + 1),
                "score": float(score),
            })  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1}]}
        coco.createIndex()
        if not dets:
            return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
        ev = COCOeval(coco, coco.loadRes(dets), iouType="segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"AP": float(ev.stats[0]), "AP50": float(ev.stats[1]), "AP75": float(ev.stats[2])}


def colour(labels: np.ndarray) -> np.ndarray:
    palette = np.random.default_rng(3).uniform(0.25, 1.0, size=(256, 3))
    palette[0] = 0.0
    return palette[labels % 256]


def save_pictures(path: Path, images, gt, cc, ours, n: int = 4) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = ["image", "ground truth", "connected components", "associative embedding"]
    fig, axes = plt.subplots(n, 4, figsize=(6.4, 1.6 * n), dpi=80)
    for i in range(n):
        panels = [images[i].transpose(1, 2, 0), colour(gt[i]), colour(cc[i][0]), colour(ours[i])]
        for j, panel in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize=8)
    fig.tight_layout(pad=0.3)
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model, info = train(args, args.output / "log.csv")

    val_images, val_labels = make_batch(np.random.default_rng(10_000 + args.seed),
                                        args.val_images, args.size)  # fmt: skip
    prob, tags = predict(model, val_images)
    cc = connected_components(prob, args.min_size)
    ae.decode_instances(prob[:1], tags[:1])  # compile the kernel, or load it from numba's cache
    start = time.perf_counter()
    decoded = ae.decode_instances(
        prob, tags, tag_threshold=args.tag_threshold, min_size=args.min_size
    )
    decode_ms = 1000 * (time.perf_counter() - start) / max(len(decoded), 1)
    ours = [(inst.labels, inst.scores) for inst in decoded]
    result = {
        "connected_components": mask_ap(val_labels, cc),
        "associative_embedding": mask_ap(val_labels, ours),
        **info,
        "decode_ms_per_image": decode_ms,
        "total_seconds": time.perf_counter() - t0,
        "torch_threads": args.threads,
    }
    (args.output / "results.json").write_text(json.dumps(result, indent=2))
    torch.save(model.state_dict(), args.output / "model.pt")
    save_pictures(args.output / "labels.png", val_images, val_labels, cc,
                  [inst.labels for inst in decoded])  # fmt: skip
    print(
        f"trained {info['steps']} steps in {info['train_seconds'] / 60:.1f} min; "
        f"total {result['total_seconds'] / 60:.1f} min"
    )
    print(f"connected components mask AP {result['connected_components']['AP']:.3f}")
    print(f"mask AP {result['associative_embedding']['AP']:.3f}")
    return result


if __name__ == "__main__":
    main()
