"""Synthetic network-like outputs for the decoder benchmark.

People are COCO stick figures at random places and sizes; each joint is a
Gaussian bump in its heatmap (a few are weak, below the detection threshold, so
that missing-joint recovery has work) and the tag map carries the person's tag
around each of its joints, a background value elsewhere, plus noise.
"""

from __future__ import annotations

import numpy as np

# a standing person in unit coordinates (x right, y down), COCO joint order
_TEMPLATE = np.array(
    [
        [0.0, -0.9],
        [-0.05, -0.95],
        [0.05, -0.95],
        [-0.1, -0.9],
        [0.1, -0.9],
        [-0.2, -0.65],
        [0.2, -0.65],
        [-0.3, -0.35],
        [0.3, -0.35],
        [-0.32, -0.05],
        [0.32, -0.05],
        [-0.12, 0.0],
        [0.12, 0.0],
        [-0.14, 0.45],
        [0.14, 0.45],
        [-0.15, 0.9],
        [0.15, 0.9],
    ]
)


def make_scene(rng, n_people, size, dim, *, sigma=None, weak=0.15, dtype=np.float32):
    """Heatmaps (17, H, W) and tags (17, D, H, W) of ``n_people`` people on a square map."""
    h = w = size
    k_joints = 17
    sigma = size / 64 if sigma is None else sigma
    heat = rng.random((k_joints, h, w)) * 0.02
    tags = rng.standard_normal((k_joints, dim, h, w)) * 0.1
    best = np.zeros((k_joints, h, w))
    person_tags = (rng.permutation(n_people) - n_people / 2) * 1.5
    yy, xx = np.mgrid[0:h, 0:w]
    radius = int(np.ceil(3 * sigma))
    for p in range(n_people):
        scale = rng.uniform(0.1, 0.3) * size
        cx, cy = rng.uniform(0.1, 0.9, size=2) * size
        joints = _TEMPLATE * scale + np.array([cx, cy]) + rng.normal(0, 0.03 * scale, (17, 2))
        tag = person_tags[p] + rng.normal(0, 0.05, dim)
        for k in range(k_joints):
            x, y = joints[k]
            if not (0 <= x < w and 0 <= y < h):
                continue
            amp = 0.06 if rng.random() < weak else rng.uniform(0.6, 1.0)
            x0, x1 = max(int(x) - radius, 0), min(int(x) + radius + 1, w)
            y0, y1 = max(int(y) - radius, 0), min(int(y) + radius + 1, h)
            g = amp * np.exp(
                -((xx[y0:y1, x0:x1] - x) ** 2 + (yy[y0:y1, x0:x1] - y) ** 2) / (2 * sigma**2)
            )
            win = g > best[k, y0:y1, x0:x1]
            best[k, y0:y1, x0:x1] = np.where(win, g, best[k, y0:y1, x0:x1])
            heat[k, y0:y1, x0:x1] = np.maximum(heat[k, y0:y1, x0:x1], g)
            for d in range(dim):
                t = tags[k, d, y0:y1, x0:x1]
                tags[k, d, y0:y1, x0:x1] = np.where(
                    win & (g > 0.01 * amp), tag[d] + rng.normal(0, 0.05, t.shape), t
                )
    return heat.astype(dtype), tags.astype(dtype)


def make_batch(seed, batch, n_people, size, dim, **kw):
    """A batch (B, 17, H, W), (B, 17, D, H, W) of independent scenes."""
    rng = np.random.default_rng(seed)
    scenes = [make_scene(rng, n_people, size, dim, **kw) for _ in range(batch)]
    return np.stack([s[0] for s in scenes]), np.stack([s[1] for s in scenes])
