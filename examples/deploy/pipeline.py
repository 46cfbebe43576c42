"""The torch-free half of the deploy example: images in, people out.

Shared by ``export.py`` (which runs it on eager PyTorch's maps) and ``infer.py``
(which runs it on ONNX Runtime's), so that the two decode the same way. Nothing
here imports torch: numpy, Pillow and ``associative_embedding``'s decoder only.

The pipeline, as ``examples/hourglass/evaluate.py`` runs it:

1. letterbox each image to the network's square input (long side fitted,
   zero padding right and below), RGB / 255 in (B, 3, S, S) float32;
2. the test-time model (network, flip test, shift test, aggregation; in the ONNX
   graph) gives heatmaps (B, K, h, w) and tags (B, K, D, h, w);
3. ``ae.decode`` (and ``Poses.refine_dark`` with the ``dark`` sub-pixel rule)
   gives people in map pixels (pixel centres at +0.5);
4. the poses are mapped to image pixels (``x_image = x_map * map_stride / r``)
   and written as COCO results (pixel centres at integers: minus 0.5).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

import associative_embedding as ae

__all__ = [
    "METADATA_KEY",
    "decode_batch",
    "image_transform",
    "letterbox",
    "list_images",
    "read_image",
    "to_input",
    "to_results",
]

#: key of the ONNX model's metadata entry holding the test settings (a JSON object)
METADATA_KEY = "associative_embedding"

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def letterbox(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """Resize ``image`` (H, W, 3) so its long side is ``side`` and pad to a square.

    The same as ``examples/hourglass/evaluate.py``'s ``letterbox`` (Pillow's bilinear
    resize, content top-left, zeros elsewhere). Returns the (side, side, 3) uint8
    input and the factor ``r``: continuous image pixels times ``r`` are input pixels.
    """
    h, w = image.shape[:2]
    r = side / max(h, w)
    if (h, w) == (side, side):
        return image, 1.0
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    resized = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
    out = np.zeros((side, side, 3), np.uint8)
    out[:nh, :nw] = resized
    return out, r


def to_input(images: list[np.ndarray], side: int) -> tuple[np.ndarray, np.ndarray]:
    """Letterboxed network input (B, 3, side, side) float32 in [0, 1] and the factors (B,)."""
    boxed = [letterbox(im, side) for im in images]
    x = np.stack([b for b, _ in boxed]).transpose(0, 3, 1, 2).astype(np.float32) / 255
    return np.ascontiguousarray(x), np.array([r for _, r in boxed])


def decode_batch(heatmaps: np.ndarray, tags: np.ndarray, settings: dict) -> list[ae.Poses]:
    """People in map pixels for a batch of merged maps, with the model's decoder settings.

    ``heatmaps`` (B, K, h, w), ``tags`` (B, K, D, h, w) float32 (numpy arrays or
    tensors); ``settings`` is the model's metadata (``decode`` options for
    ``ae.decode``, ``subpixel`` "quarter" or "dark").
    """
    poses = ae.decode(heatmaps, tags, **settings["decode"])
    if settings["subpixel"] == "dark":
        poses = [p.refine_dark(heatmaps[b]) for b, p in enumerate(poses)]
    return poses


def image_transform(factor: float, map_stride: float) -> np.ndarray:
    """2x3 affine from map pixels (centres at +0.5) to COCO image pixels (centres at 0)."""
    s = map_stride / factor
    return np.array([[s, 0.0, -0.5], [0.0, s, -0.5]])


def to_results(poses: ae.Poses, image_id: int, factor: float, map_stride: float) -> list[dict]:
    """COCO keypoint results of one image's people."""
    return ae.to_coco_results(poses, image_id, transform=image_transform(factor, map_stride))


def list_images(folder: Path) -> list[Path]:
    """The image files of ``folder``, sorted by name."""
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def read_image(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def write_json(path: Path, value) -> None:
    """Write ``value`` as JSON."""
    Path(path).write_text(json.dumps(value))
