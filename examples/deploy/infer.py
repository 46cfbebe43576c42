"""Run an exported model with ONNX Runtime and decode its maps with ``ae.decode``, without torch.

Usage::

    python examples/deploy/infer.py --model deploy/model.onnx --images deploy/images \\
        --output deploy/out

reads every image of the folder (PNG, JPEG, BMP, WebP), letterboxes it to the
model's input size, runs the exported test-time model (network, flip test,
aggregation) with ONNX Runtime on batches of ``--batch-size`` images, decodes
the people with ``ae.decode`` and writes into ``--output``:

- ``results.json``: the people in COCO's keypoint results format (image ids from
  ``gt.json`` when the folder has one, else 1, 2, ... in file-name order);
- ``pictures/``: each image with its people drawn (``ae.draw_poses``; needs
  matplotlib), unless ``--no-pictures``.

With a ``gt.json`` (COCO ground truth, as ``export.py`` writes for the synthetic
held-out images) it prints the OKS AP (pycocotools). It prints the per-image time
of the network and of the decode, next to eager PyTorch's when ``export.py`` left
an ``eager.json`` beside the model, and compares the decoded people with eager
PyTorch's ``results_eager.json``.

This process never imports torch: ``import torch`` may fail here (install the
library with ``pip install --no-deps associative-embedding`` plus numpy, scipy,
numba, onnxruntime, pillow, and pycocotools, matplotlib and tqdm as needed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from pipeline import METADATA_KEY, decode_batch, list_images, read_image, to_input, to_results

import associative_embedding as ae


def load_session(path: Path, threads: int | None = None):
    """An ONNX Runtime CPU session and the model's settings (its metadata entry)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise SystemExit(f"{path} has no {METADATA_KEY!r} metadata: export it with export.py")
    return session, json.loads(meta[METADATA_KEY])


def progress(iterable, total: int, enabled: bool):
    """A tqdm bar over ``iterable`` (plain iteration without tqdm or when disabled)."""
    if enabled:
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            return tqdm(iterable, total=total, unit="batch", file=sys.stderr)
    return iterable


def draw(image: np.ndarray, keypoints: np.ndarray, path: Path) -> None:
    """Save ``image`` with the people ``keypoints`` (P, K, 3), COCO image pixels, drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = image.shape[:2]
    fig, ax = plt.subplots(figsize=(w / 50, h / 50), dpi=100)
    ax.set_axis_off()
    # COCO pixels have their centres at integers; draw_poses puts them at +0.5
    shown = keypoints.copy()
    shown[..., :2] += 0.5
    ae.draw_poses(image, shown, ae.COCO_KEYPOINTS, ax=ax)
    fig.tight_layout(pad=0)
    fig.savefig(path)
    plt.close(fig)


def compare(results: list[dict], reference: list[dict], tolerance: float = 1e-3) -> str:
    """Whether two COCO results lists hold the same people (keypoints within ``tolerance``)."""

    def by_image(rs):
        out: dict[int, list] = {}
        for r in rs:
            out.setdefault(r["image_id"], []).append(r)
        return out

    a, b = by_image(results), by_image(reference)
    if set(a) != set(b):
        return f"different: people on {len(a)} vs {len(b)} images"
    worst = 0.0
    for image_id, people in a.items():
        other = b[image_id]
        if len(people) != len(other):
            return f"different: image {image_id} has {len(people)} vs {len(other)} people"
        order = sorted(range(len(people)), key=lambda i: -people[i]["score"])
        order_ref = sorted(range(len(other)), key=lambda i: -other[i]["score"])
        for i, j in zip(order, order_ref, strict=True):
            kp = np.array(people[i]["keypoints"], float)
            kp_ref = np.array(other[j]["keypoints"], float)
            worst = max(worst, float(np.abs(kp - kp_ref).max()))
    n = sum(len(p) for p in a.values())
    verdict = "equal" if worst <= tolerance else "different"
    return f"{verdict}: {n} people on {len(a)} images, largest difference {worst:.2g}"


def run(args) -> dict:
    session, meta = load_session(args.model, args.threads)
    files = list_images(args.images)
    gt_path = args.gt or (args.images / "gt.json")
    gt = json.loads(Path(gt_path).read_text()) if Path(gt_path).exists() else None
    ids = {im["file_name"]: im["id"] for im in gt["images"]} if gt else {}
    side = args.input_size or meta["input_size"]
    if side % meta["size_multiple"]:
        raise SystemExit(f"--input-size must be a multiple of {meta['size_multiple']}, got {side}")
    pictures = None
    if args.output is not None and not args.no_pictures:
        pictures = args.output / "pictures"
        pictures.mkdir(parents=True, exist_ok=True)

    # warm-up, not timed: ONNX Runtime's first run and numba's compilation or cache load
    x, _ = to_input([read_image(files[0])], side)
    heatmaps, tags = session.run(["heatmaps", "tags"], {"images": x})
    ae.warmup()
    decode_batch(heatmaps, tags, meta)

    results: list[dict] = []
    net_s = dec_s = 0.0
    batches = range(0, len(files), args.batch_size)
    for start in progress(batches, len(batches), not args.no_progress):
        chunk = files[start : start + args.batch_size]
        images = [read_image(f) for f in chunk]
        x, factors = to_input(images, side)
        t0 = time.perf_counter()
        heatmaps, tags = session.run(["heatmaps", "tags"], {"images": x})
        t1 = time.perf_counter()
        poses = decode_batch(heatmaps, tags, meta)
        t2 = time.perf_counter()
        net_s, dec_s = net_s + t1 - t0, dec_s + t2 - t1
        map_stride = side / heatmaps.shape[-1]  # input pixels per map pixel
        for f, image, p, r in zip(chunk, images, poses, factors, strict=True):
            image_id = ids.get(f.name, start + chunk.index(f) + 1)
            people = to_results(p, image_id, r, map_stride)
            results += people
            if pictures is not None:
                keep = [q for q in people if q["score"] >= args.min_score]
                k = heatmaps.shape[1]
                kps = np.array([q["keypoints"] for q in keep], float).reshape(len(keep), k, 3)
                draw(image, kps, pictures / f"{f.stem}.png")
    n = len(files)
    summary: dict = {
        "images": n,
        "people": len(results),
        "network_ms": 1e3 * net_s / n,
        "decode_ms": 1e3 * dec_s / n,
    }
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
        (args.output / "results.json").write_text(json.dumps(results))

    eager_path = args.model.parent / "eager.json"
    eager = json.loads(eager_path.read_text()) if eager_path.exists() else None
    threads = args.threads or "all cores"
    print(f"{n} images, {len(results)} people, batches of {args.batch_size}")
    print(f"ONNX Runtime threads: {threads}")
    print(f"{'per image':12s} {'network ms':>11s} {'decode ms':>10s}")
    print(f"{'ONNX Runtime':12s} {summary['network_ms']:11.2f} {summary['decode_ms']:10.2f}")
    if eager is not None:
        print(f"{'eager torch':12s} {eager['network_ms']:11.2f} {eager['decode_ms']:10.2f}")
        print(f"  (eager: export.py, batches of {eager['batch_size']}, {eager['threads']} threads)")
        summary["eager"] = eager
    reference = args.model.parent / "results_eager.json"
    if reference.exists() and side == meta["input_size"]:
        verdict = compare(results, json.loads(reference.read_text()))
        print(f"decoded people vs eager PyTorch: {verdict}")
        summary["same_as_eager"] = verdict.startswith("equal")
    if gt is not None:
        stats = ae.evaluate_keypoints(gt, results)
        summary["AP"] = stats["AP"]
        print(f"AP {stats['AP']:.4f}")
    summary["torch_imported"] = "torch" in sys.modules
    return summary


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True, help="model.onnx from export.py")
    p.add_argument("--images", type=Path, required=True, help="folder of images")
    p.add_argument("--gt", type=Path, help="COCO ground truth (default: IMAGES/gt.json if any)")
    p.add_argument("--output", type=Path, help="folder for results.json and pictures/")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--input-size",
        type=int,
        help="square network input side (default: the training size; a multiple of the "
        "network's size multiple)",
    )
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads")
    p.add_argument("--min-score", type=float, default=0.1, help="people drawn in pictures/")
    p.add_argument("--no-pictures", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.batch_size < 1:
        p.error(f"--batch-size must be at least 1, got {args.batch_size}")
    return args


def main(argv=None) -> dict:
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
