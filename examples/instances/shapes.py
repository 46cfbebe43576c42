"""Synthetic images of touching and overlapping shapes, all of one colour.

Every image has 2-5 filled shapes (discs, ellipses, squares, triangles) of a single colour on a
noisy background of another colour, so that no pixel's colour says which shape it belongs to.
Most shapes are placed against an earlier one, overlapping it or touching it, and later shapes
cover earlier ones. A placement that would hide more than half of any shape is drawn again, so
every shape keeps at least half of its area visible.

``make_image(rng, size)`` returns the image ``(3, H, W)`` float32 in [0, 1] and the instance label
map ``(H, W)`` int64 (0 = background, 1..N = shapes in drawing order).
"""

from __future__ import annotations

import math

import numpy as np

KINDS = ("disc", "ellipse", "square", "triangle")


def _shape_mask(kind: str, cy: float, cx: float, r: float, angle: float, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dy, dx = yy - cy, xx - cx
    cos, sin = math.cos(angle), math.sin(angle)
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy  # shape frame
    if kind == "disc":
        return dx * dx + dy * dy <= r * r
    if kind == "ellipse":
        return (u / r) ** 2 + (v / (0.6 * r)) ** 2 <= 1.0
    if kind == "square":
        half = 0.8 * r
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    # equilateral triangle with circumradius r: inside all three half-planes
    inside = np.ones((size, size), bool)
    for k in range(3):
        a = angle + 2 * math.pi * k / 3
        inside &= math.cos(a) * dx + math.sin(a) * dy <= 0.5 * r
    return inside


def make_image(
    rng: np.random.Generator, size: int = 64, touching: float = 0.8
) -> tuple[np.ndarray, np.ndarray]:
    """One image and its instance labels; ``touching`` = share of shapes placed against another."""
    n_target = int(rng.integers(2, 6))
    labels = np.zeros((size, size), np.int64)
    full_areas: list[int] = []
    centres: list[tuple[float, float, float]] = []
    for _ in range(n_target):
        for _attempt in range(20):
            kind = KINDS[int(rng.integers(len(KINDS)))]
            r = float(rng.uniform(0.12, 0.22) * size)
            if centres and rng.random() < touching:
                cy0, cx0, r0 = centres[int(rng.integers(len(centres)))]
                a = rng.uniform(0, 2 * math.pi)
                dist = (r0 + r) * rng.uniform(0.55, 1.0)  # overlapping ... just touching
                cy, cx = cy0 + dist * math.sin(a), cx0 + dist * math.cos(a)
            else:
                cy, cx = rng.uniform(0.15, 0.85, size=2) * size
            mask = _shape_mask(kind, cy, cx, r, float(rng.uniform(0, 2 * math.pi)), size)
            area = int(mask.sum())
            if area < 0.6 * math.pi * r * r * 0.5:  # mostly outside the image
                continue
            new = np.where(mask, len(full_areas) + 1, labels)
            visible = np.bincount(new.ravel(), minlength=len(full_areas) + 2)[1:]
            if all(visible[i] >= 0.5 * full_areas[i] for i in range(len(full_areas))):
                labels = new
                full_areas.append(area)
                centres.append((cy, cx, r))
                break
    # colours: one for every shape, another for the background, both noisy
    shape_colour = rng.uniform(0.2, 1.0, size=3)
    back_colour = rng.uniform(0.0, 1.0, size=3)
    while np.abs(shape_colour - back_colour).sum() < 0.6:
        back_colour = rng.uniform(0.0, 1.0, size=3)
    image = np.where(labels[None] > 0, shape_colour[:, None, None], back_colour[:, None, None])
    # brightness blotches (the same for the three channels: no change of hue) and pixel noise,
    # both independent of the shapes
    shade = rng.normal(0, 0.06, size=(1, size // 8 + 1, size // 8 + 1))
    shade = shade.repeat(8, 1).repeat(8, 2)[:, :size, :size]
    image = image + shade + rng.normal(0, 0.05, size=image.shape)
    return np.clip(image, 0, 1).astype(np.float32), labels


def make_batch(rng: np.random.Generator, n: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images ``(n, 3, H, W)`` and label maps ``(n, H, W)``."""
    images, labels = zip(*(make_image(rng, size) for _ in range(n)), strict=True)
    return np.stack(images), np.stack(labels)
