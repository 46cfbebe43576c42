"""COCO person keypoints for training (pycocotools); ``evaluate.py`` scores on COCO.

Training samples follow pose-ae-train's ``data/coco_pose/dp.py`` and HigherHRNet's
``lib/dataset/COCOKeypoints.py``:

- images with at least one person annotation with ``num_keypoints > 0``;
- ignore mask from ``ae.coco_ignore_mask`` (HigherHRNet's ``COCOKeypoints.get_mask``):
  0 inside crowd regions (``iscrowd`` RLEs) and inside the segmentation of people
  with no labelled keypoint, 1 elsewhere; rendered with pycocotools at image
  resolution, warped like the image to the output resolution and re-binarised at
  0.5; it masks the heatmap loss only;
- augmentation: one affine warp to the square input: random scale
  ``max(h, w) / 200 * U(0.75, 1.25)`` (of 200 px "person scale" units, as in
  pose-ae-train), rotation ``U(-30, 30)`` degrees, centre jitter ``U(-40, 40) * scale``
  pixels, horizontal flip with probability 0.5 (joints permuted with
  ``ae.COCO_KEYPOINTS.flip_index``); joints that leave the input become unlabelled;
- keypoints come out in continuous input pixels (COCO's integer pixel centres
  plus 0.5), ready for ``ae.scale_keypoints`` and ``ae.render_heatmaps``.

Without ``train`` the warp is the identity letterbox (long side fits the input).
"""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = ["CocoKeypoints", "load_coco", "read_image"]


def load_coco(ann_file):
    """A pycocotools ``COCO`` index of ``ann_file``, without its progress messages."""
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(ann_file))


def read_image(coco, image_dir, image_id: int) -> np.ndarray:
    """Image ``image_id`` of the ``COCO`` index as (H, W, 3) uint8 RGB."""
    info = coco.loadImgs(image_id)[0]
    return np.asarray(Image.open(Path(image_dir) / info["file_name"]).convert("RGB"))


def affine_matrix(center, scale_px: float, rotation_deg: float, out_size: int, flip: bool):
    """3x3 matrix taking continuous image pixels to continuous output pixels.

    The square of side ``scale_px`` around ``center`` (rotated by ``rotation_deg``)
    maps onto ``[0, out_size)^2``; ``flip`` mirrors the output horizontally.
    """
    s = out_size / scale_px
    a = math.radians(rotation_deg)
    c, si = math.cos(a) * s, math.sin(a) * s
    cx, cy = center
    m = np.array(
        [
            [c, si, -c * cx - si * cy + out_size / 2],
            [-si, c, si * cx - c * cy + out_size / 2],
            [0, 0, 1],
        ]
    )
    if flip:
        m = np.array([[-1, 0, out_size], [0, 1, 0], [0, 0, 1]]) @ m
    return m


def warp(image: Image.Image, m: np.ndarray, size: int, resample=Image.BILINEAR) -> Image.Image:
    """Warp a PIL image with the continuous-pixel affine ``m`` to ``size x size``."""
    inv = np.linalg.inv(m)
    # PIL samples the input at inv @ (x + 0.5, y + 0.5) - 0.5 for output pixel (x, y)
    # when given continuous coordinates; pass the top two rows of the inverse.
    data = (inv[0, 0], inv[0, 1], inv[0, 2], inv[1, 0], inv[1, 1], inv[1, 2])
    return image.transform((size, size), Image.AFFINE, data, resample=resample)


class CocoKeypoints(torch.utils.data.Dataset):
    """COCO person keypoints as ``(image (S, S, 3) uint8, keypoints (N, 17, 3), mask (s, s))``.

    Parameters
    ----------
    ann_file : path to ``person_keypoints_*.json``.
    image_dir : folder with the images named by ``file_name``.
    input_size : S, square network input side.
    output_size : s, side of the output maps (the mask's resolution).
    train : random augmentation (else the identity letterbox).
    seed : augmentation of item ``i`` draws from ``default_rng([seed, i, epoch])``.
    """

    def __init__(
        self,
        ann_file,
        image_dir,
        input_size: int,
        output_size: int,
        *,
        train=True,
        seed: int = 0,
        scale_range=(0.75, 1.25),
        rotation: float = 30.0,
        translate: float = 40.0,
        flip: float = 0.5,
    ):
        from associative_embedding import COCO_KEYPOINTS

        self.coco = load_coco(ann_file)
        self.image_dir = Path(image_dir)
        self.input_size, self.output_size = input_size, output_size
        self.train, self.seed = train, seed
        self.scale_range, self.rotation, self.translate, self.flip = (
            scale_range,
            rotation,
            translate,
            flip,
        )
        self.flip_index = list(COCO_KEYPOINTS.flip_index)
        ids = []
        for img_id in sorted(self.coco.getImgIds()):
            anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=img_id))
            if not train or any(
                a.get("num_keypoints", 0) > 0 and not a.get("iscrowd") for a in anns
            ):
                ids.append(img_id)
        self.ids = ids
        self.calls = 0

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, i: int):
        """Image (H, W, 3) uint8, keypoints (N, 17, 3) continuous image px, valid mask (H, W)."""
        import associative_embedding as ae

        img_id = self.ids[i]
        image = read_image(self.coco, self.image_dir, img_id)
        h, w = image.shape[:2]
        anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=img_id))
        valid = ae.coco_ignore_mask(anns, h, w)  # 0 on crowds and keypoint-less people
        kps = []
        for a in anns:
            if a.get("iscrowd") or a.get("num_keypoints", 0) == 0:
                continue
            kp = np.asarray(a["keypoints"], np.float32).reshape(-1, 3)
            kp[:, :2] += 0.5  # COCO integer pixel centres -> continuous
            kp[kp[:, 2] == 0] = 0
            kps.append(kp)
        kps = np.stack(kps) if kps else np.zeros((0, 17, 3), np.float32)
        return image, kps, valid

    def __getitem__(self, i: int):
        image, kps, valid = self.load(i)
        h, w = image.shape[:2]
        s_in, s_out = self.input_size, self.output_size
        if self.train:
            rng = np.random.default_rng([self.seed, int(i), self.calls])
            self.calls += 1
            scale = max(h, w) * rng.uniform(*self.scale_range)
            center = np.array([w / 2, h / 2]) + rng.uniform(-1, 1, 2) * self.translate * (
                scale / 200
            )
            rot = rng.uniform(-self.rotation, self.rotation)
            flip = rng.random() < self.flip
            m = affine_matrix(center, scale, rot, s_in, flip)
        else:
            r = s_in / max(h, w)
            m = np.diag([r, r, 1.0])
            flip = False
        out = np.asarray(warp(Image.fromarray(image), m, s_in))
        m_out = np.diag([s_out / s_in, s_out / s_in, 1.0]) @ m
        mask = np.asarray(warp(Image.fromarray((valid * 255).astype(np.uint8)), m_out, s_out))
        mask = (mask >= 128).astype(np.float32)
        kp = kps.copy()
        if len(kp):
            xy1 = np.concatenate([kp[..., :2], np.ones_like(kp[..., :1])], -1)
            kp[..., :2] = (xy1 @ m.T)[..., :2]
            if flip:
                kp = kp[:, self.flip_index]
            outside = (
                (kp[..., 0] < 0) | (kp[..., 0] >= s_in) | (kp[..., 1] < 0) | (kp[..., 1] >= s_in)
            )
            kp[outside] = 0
            kp = kp[(kp[..., 2] > 0).any(1)]
        return out, kp.astype(np.float32), mask
