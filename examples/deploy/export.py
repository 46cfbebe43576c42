"""Export the hourglass example's test-time model (network, flip test, aggregation) to ONNX.

Usage::

    python examples/deploy/export.py --checkpoint runs/tiny/checkpoint.pt --output deploy/
    python examples/deploy/export.py --output deploy/          # a fresh tiny hourglass

writes into the output folder

- ``model.onnx``: ``ae.MultiScaleFlip`` around the network (and the shift test when
  the checkpoint was trained with it), input ``images`` (B, 3, H, W) float32 RGB / 255
  with B, H and W dynamic (H and W multiples of 32 for the tiny preset), outputs
  ``heatmaps`` (B, K, H', W') and ``tags`` (B, K, D, H', W'); its metadata entry
  ``associative_embedding`` holds the decoder settings ``infer.py`` reads;
- ``images/``: the held-out synthetic images of ``examples/hourglass/evaluate.py``
  (``--data synthetic``, same ``--seed``) as PNG files, and their ground truth
  ``images/gt.json`` (COCO);
- ``eager.json``: eager PyTorch's per-image times (network, decode) on those images,
  and ``results_eager.json``: the people eager PyTorch decodes there, for
  ``infer.py`` to compare with ONNX Runtime's.

The test settings are ``evaluate.py``'s for the checkpoint: flip test with the
network's flip shift, maps at input resolution (``project``) and the shift test
as trained, the checkpoint's detection threshold and sub-pixel rule.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

HERE = Path(__file__).resolve().parent
HOURGLASS = HERE.parent / "hourglass"
for folder in (HERE, HOURGLASS):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import evaluate
from model import PoseNet, split_outputs
from pipeline import METADATA_KEY, decode_batch, to_input, to_results
from presets import PRESETS

import associative_embedding as ae


class ShiftTest(nn.Module):
    """``evaluate.network_maps(shift_test=True)`` as a Module around a test-time model.

    Runs ``model`` on the input and on the input shifted one pixel right, down and
    both (zeros filled in), shifts each output back (the vacated edge keeps the
    unshifted values, as ``evaluate.shift_image`` does) and averages the four, in
    ``evaluate.SHIFTS`` order. Written with pad, slice and concatenation, so that it
    exports with dynamic sizes.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    @staticmethod
    def shift_in(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
        if dx == dy == 0:
            return x
        h, w = x.shape[-2], x.shape[-1]
        return F.pad(x[..., : h - dy, : w - dx], (dx, 0, dy, 0))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heatmaps = tags = None
        for dx, dy in evaluate.SHIFTS:
            hm, tg = self.model(self.shift_in(images, dx, dy))
            hm, tg = _shift_image_back(hm, dx, dy), _shift_image_back(tg, dx, dy)
            heatmaps = hm if heatmaps is None else heatmaps + hm
            tags = tg if tags is None else tags + tg
        n = len(evaluate.SHIFTS)
        return heatmaps / n, tags / n


def _shift_image_back(m: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """``evaluate.shift_image(m, -dx, -dy)`` for dx, dy >= 0, without in-place writes.

    Pixel (i, j) takes (i + dy, j + dx) where that lies inside; the last ``dy`` rows
    and ``dx`` columns keep their own values.
    """
    if dx == dy == 0:
        return m
    h, w = m.shape[-2], m.shape[-1]
    inner = m[..., dy:, dx:]  # (h - dy, w - dx), moved to the top left
    top = torch.cat([inner, m[..., : h - dy, w - dx :]], dim=-1)
    return torch.cat([top, m[..., h - dy :, :]], dim=-2)


def evaluation_settings(train_args: dict) -> dict:
    """``evaluate.py``'s defaults for a checkpoint trained with ``train_args``."""
    project = bool(train_args.get("project", False))
    shift_test = bool(train_args.get("shift_test", False))
    return {
        "project": project,
        "shift_test": shift_test and evaluate.shift_test_applies(project, (1.0,)),
        "detection_threshold": train_args.get("detection_threshold") or 0.1,
        "subpixel": train_args.get("subpixel") or "quarter",
    }


def build(checkpoint: str | None, seed: int = 0):
    """The network, its config and its test settings (a fresh tiny hourglass without one)."""
    if checkpoint:
        model, config, train_args = evaluate.load_model(checkpoint)
        return model.eval(), config, evaluation_settings(train_args)
    torch.manual_seed(seed)
    config = PRESETS["tiny"].network
    model = PoseNet(config).to(memory_format=torch.channels_last).eval()
    d = PRESETS["tiny"].training
    train_args = {
        "project": d.project,
        "shift_test": d.shift_test,
        "detection_threshold": d.detection_threshold,
        "subpixel": d.subpixel,
    }
    return model, config, evaluation_settings(train_args)


def build_test_time_model(
    model: nn.Module, config, settings: dict, *, flip: bool = True, scales=(1.0,)
) -> nn.Module:
    """``ae.MultiScaleFlip`` (and :class:`ShiftTest`) as ``evaluate.network_maps`` runs them."""
    k, d = config.num_joints, config.tag_dim
    multi = ae.MultiScaleFlip(
        model,
        scales=tuple(scales),
        flip_index=evaluate.SKELETON.flip_index if flip else None,
        # the last stack's K heatmaps and K * D tags
        split=lambda out: split_outputs(out[:, -1], k, d),
        size="input" if settings["project"] else None,
        flip_shift=config.flip_shift,
        size_multiple=config.stem_stride * 2**config.depth,
    )
    if settings["shift_test"] and tuple(scales) == (1.0,):
        return ShiftTest(multi).eval()
    return multi.eval()


def export(model: nn.Module, path: Path, example: torch.Tensor, multiple: int, meta: dict):
    """``torch.onnx.export`` (the dynamo exporter) with dynamic batch and image size."""
    import onnx

    batch = torch.export.Dim("batch", min=1, max=1024)
    h = torch.export.Dim("h", min=1, max=256)
    w = torch.export.Dim("w", min=1, max=256)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["images"],
            output_names=["heatmaps", "tags"],
            dynamic_shapes={"images": {0: batch, 2: multiple * h, 3: multiple * w}},
            external_data=False,
            verbose=False,
        )
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    onnx.save(proto, str(path))


def write_synthetic(folder: Path, side: int, num_images: int, seed: int) -> None:
    """The held-out images of ``evaluate.py --data synthetic --seed SEED`` as PNG + gt.json."""
    from data.synthetic import SyntheticPeople, to_coco
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    ds = SyntheticPeople(seed=seed, size=side)
    gt = to_coco(ds, range(num_images))
    for entry in gt["images"]:
        image = ds.scene(entry["id"] - 1)[0]
        Image.fromarray(image).save(folder / entry["file_name"])
    (folder / "gt.json").write_text(json.dumps(gt))


def eager_run(model, meta, folder: Path, batch_size: int) -> tuple[dict, list[dict]]:
    """Eager PyTorch on the images of ``folder``: per-image times and COCO results."""
    from pipeline import list_images, read_image

    gt = json.loads((folder / "gt.json").read_text()) if (folder / "gt.json").exists() else None
    ids = {im["file_name"]: im["id"] for im in gt["images"]} if gt else {}
    files = list_images(folder)
    side = meta["input_size"]
    results: list[dict] = []
    net_s = dec_s = 0.0
    # warm-up: the first call pays for one-time set-up (numba's, oneDNN's)
    x, _ = to_input([read_image(files[0])], side)
    with torch.no_grad():
        hm, tg = model(torch.from_numpy(x).contiguous(memory_format=torch.channels_last))
    ae.warmup()
    decode_batch(hm.numpy(), tg.numpy(), meta)
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        x, factors = to_input([read_image(f) for f in chunk], side)
        t0 = time.perf_counter()
        with torch.no_grad():
            hm, tg = model(torch.from_numpy(x).contiguous(memory_format=torch.channels_last))
        t1 = time.perf_counter()
        poses = decode_batch(hm.numpy(), tg.numpy(), meta)
        t2 = time.perf_counter()
        net_s, dec_s = net_s + t1 - t0, dec_s + t2 - t1
        for f, p, r in zip(chunk, poses, factors, strict=True):
            image_id = ids.get(f.name, files.index(f) + 1)
            results += to_results(p, image_id, r, side / hm.shape[-1])
    n = len(files)
    timing = {
        "network_ms": 1e3 * net_s / n,
        "decode_ms": 1e3 * dec_s / n,
        "images": n,
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
    }
    return timing, results


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="train.py checkpoint (default: a fresh tiny hourglass)")
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--scales", type=float, nargs="+", default=[1.0])
    p.add_argument("--no-flip", action="store_true")
    p.add_argument("--num-images", type=int, default=100, help="held-out images to write")
    p.add_argument("--seed", type=int, default=1, help="synthetic held-out seed")
    p.add_argument("--batch-size", type=int, default=8, help="batch of the eager timing")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--detection-threshold",
        type=float,
        default=None,
        help="decoder detection threshold (default: the checkpoint's, as evaluate.py)",
    )
    p.add_argument("--no-eager", action="store_true", help="skip the eager timing and results")
    return p.parse_args(argv)


def main(argv=None) -> Path:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.output.mkdir(parents=True, exist_ok=True)
    network, config, settings = build(args.checkpoint)
    if args.detection_threshold is not None:
        settings["detection_threshold"] = args.detection_threshold
    model = build_test_time_model(
        network, config, settings, flip=not args.no_flip, scales=tuple(args.scales)
    )
    multiple = config.stem_stride * 2**config.depth
    meta = {
        "input_size": config.input_size,
        "size_multiple": multiple,
        "skeleton": "COCO_KEYPOINTS",
        # evaluate.DECODE_OPTIONS and the checkpoint's threshold
        "decode": {
            **evaluate.DECODE_OPTIONS,
            "detection_threshold": settings["detection_threshold"],
        },
        "subpixel": settings["subpixel"],
        "scales": list(args.scales),
        "flip": not args.no_flip,
        "flip_shift": config.flip_shift,
        "shift_test": isinstance(model, ShiftTest),
        "checkpoint": str(args.checkpoint) if args.checkpoint else None,
    }
    example = torch.rand(2, 3, config.input_size, config.input_size)
    path = args.output / "model.onnx"
    t0 = time.time()
    export(model, path, example, multiple, meta)
    print(f"exported {path} in {time.time() - t0:.1f} s")
    print("settings", json.dumps(meta))
    if args.num_images > 0:
        images = args.output / "images"
        write_synthetic(images, config.input_size, args.num_images, args.seed)
        print(f"wrote {args.num_images} held-out synthetic images (seed {args.seed}) to {images}")
        if not args.no_eager:
            timing, results = eager_run(model, meta, images, args.batch_size)
            (args.output / "eager.json").write_text(json.dumps(timing))
            (args.output / "results_eager.json").write_text(json.dumps(results))
            print(
                f"eager PyTorch: network {timing['network_ms']:.2f} ms/image, decode "
                f"{timing['decode_ms']:.2f} ms/image (batch {args.batch_size}, "
                f"{timing['threads']} threads)"
            )
    return path


if __name__ == "__main__":
    main()
