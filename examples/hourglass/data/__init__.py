"""Data sources for the hourglass example: synthetic crowds and COCO person keypoints.

Both yield samples ``(image (H, W, 3) uint8, keypoints (N, 17, 3) float32, mask)``
with keypoints in continuous image pixels (pixel ``(i, j)`` covers
``[j, j + 1) x [i, i + 1)``) and ``mask`` an ``(h, w)`` float32 ignore mask at the
output resolution (1 = valid) or ``None``. :func:`collate` batches them.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["collate"]


def collate(samples: list) -> dict:
    """Batch samples into ``images`` (B, H, W, 3) uint8, ``keypoints`` (B, N, K, 3), ``mask``."""
    import associative_embedding as ae

    images = torch.from_numpy(np.stack([s[0] for s in samples]))
    keypoints = ae.pad_keypoints([torch.from_numpy(np.asarray(s[1], np.float32)) for s in samples])
    masks = [s[2] for s in samples]
    mask = None
    if any(m is not None for m in masks):
        shape = next(m for m in masks if m is not None).shape
        mask = torch.from_numpy(
            np.stack([m if m is not None else np.ones(shape, np.float32) for m in masks])
        )
    return {"images": images, "keypoints": keypoints, "mask": mask}
