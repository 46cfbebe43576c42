"""Synthetic crowds of people with COCO keypoints, generated on the fly.

Each image shows 1 to ``max_people`` cartoon people on a textured background with
distractor shapes. A person is a 17-joint COCO skeleton (nose, eyes, ears,
shoulders, elbows, wrists, hips, knees, ankles) with random proportions, pose
(arm and leg angles, bent elbows and knees, head turn, body lean), size and
colours (skin, shirt, trousers), drawn as thick limbs with dark outlines, a head
with eyes, nose and ears, hands and feet. People are placed so that they overlap
and touch (bounding boxes may overlap up to ``max_overlap`` IoU), are drawn back to
front so later people occlude earlier ones, and may be cut by the image border.

Annotations follow COCO: per person ``keypoints`` (17, 3) with x, y in continuous
image coordinates (pixel ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``, its centre is
``(j + 0.5, i + 0.5)``) and v = 2 (visible), 1 (labelled but hidden behind another
person or a distractor) or 0 (outside the image: not labelled); ``area`` = the
person's silhouette in pixels (as drawn alone, clipped to the image), ``bbox`` =
the silhouette's box. The generator is deterministic: image ``i`` of a
:class:`SyntheticPeople` with seed ``s`` is always the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["SyntheticPeople", "render_scene", "sample_person", "to_coco"]

K = 17
# joint indices (COCO order)
NOSE, LEYE, REYE, LEAR, REAR = 0, 1, 2, 3, 4
LSHO, RSHO, LELB, RELB, LWRI, RWRI = 5, 6, 7, 8, 9, 10
LHIP, RHIP, LKNE, RKNE, LANK, RANK = 11, 12, 13, 14, 15, 16

SKIN = np.array(
    [
        [255, 224, 196],
        [241, 194, 125],
        [224, 172, 105],
        [198, 134, 66],
        [141, 85, 36],
        [90, 56, 37],
    ],
    np.float64,
)


@dataclass
class Person:
    """One drawn person: joints (17, 2) in image pixels plus drawing parameters."""

    joints: np.ndarray
    height: float
    head_radius: float
    limb_width: float
    skin: tuple
    shirt: tuple
    trousers: tuple
    hair: tuple
    outline: tuple
    facing: int  # +1 frontal: the person's left is on the image right


def _rot(v: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _color(rng: np.random.Generator, base=None, jitter=40.0) -> tuple:
    if base is None:
        base = rng.uniform(0, 255, 3)
    return tuple(int(c) for c in np.clip(base + rng.normal(0, jitter, 3), 0, 255))


def sample_person(rng: np.random.Generator, height: float, center: np.ndarray) -> Person:
    """Sample a person of the given height (pixels) with its hip centre at ``center``."""
    h = height
    prop = lambda mean: mean * h * rng.uniform(0.9, 1.1)  # noqa: E731
    torso, shoulder_w, hip_w = prop(0.30), prop(0.24), prop(0.16)
    upper_arm, forearm = prop(0.17), prop(0.155)
    thigh, shin = prop(0.24), prop(0.23)
    neck, head_r = prop(0.06), prop(0.075)
    lean = rng.normal(0, 0.25)
    lean = float(np.clip(lean, -0.6, 0.6))
    up = _rot(np.array([0.0, -1.0]), lean)  # image y points down
    right_dir = _rot(np.array([1.0, 0.0]), lean)  # image-right direction of the body frame
    hip_c = np.asarray(center, np.float64)
    sho_c = hip_c + up * torso
    j = np.zeros((K, 2))
    # frontal: the person's left side appears on the image right
    j[LSHO], j[RSHO] = sho_c + right_dir * shoulder_w / 2, sho_c - right_dir * shoulder_w / 2
    j[LHIP], j[RHIP] = hip_c + right_dir * hip_w / 2, hip_c - right_dir * hip_w / 2
    down = -up
    for sho, elb, wri, side in ((LSHO, LELB, LWRI, 1), (RSHO, RELB, RWRI, -1)):
        # arm angle from hanging down, outwards positive; elbow bend
        a = rng.uniform(-0.3, 2.6) if rng.random() < 0.8 else rng.uniform(-0.6, 3.0)
        bend = rng.uniform(-0.3, 2.2) * (1 if rng.random() < 0.7 else -1)
        d1 = _rot(down, side * -a)  # rotate towards the person's side
        j[elb] = j[sho] + d1 * upper_arm
        j[wri] = j[elb] + _rot(d1, side * -bend) * forearm
    for hip, kne, ank, side in ((LHIP, LKNE, LANK, 1), (RHIP, RKNE, RANK, -1)):
        a = rng.uniform(-0.25, 0.7) if rng.random() < 0.85 else rng.uniform(-0.5, 1.6)
        bend = rng.uniform(0, 1.4) if rng.random() < 0.6 else 0.0
        d1 = _rot(down, side * -a)
        j[kne] = j[hip] + d1 * thigh
        j[ank] = j[kne] + _rot(d1, side * bend * rng.choice([-1, 1])) * shin
    # head: tilted, turned (yaw shifts the face features sideways)
    tilt = lean + rng.normal(0, 0.2)
    hup = _rot(np.array([0.0, -1.0]), tilt)
    hright = _rot(np.array([1.0, 0.0]), tilt)
    head_c = sho_c + up * neck + hup * head_r
    yaw = rng.uniform(-0.45, 0.45)
    r = head_r
    j[NOSE] = head_c + hright * (yaw * r * 0.9) - hup * (0.2 * r)
    j[LEYE] = head_c + hright * ((0.38 + yaw * 0.8) * r) + hup * (0.18 * r)
    j[REYE] = head_c + hright * ((-0.38 + yaw * 0.8) * r) + hup * (0.18 * r)
    j[LEAR] = head_c + hright * ((1.0 - max(yaw, 0) * 0.5) * r) + hup * (0.05 * r)
    j[REAR] = head_c + hright * ((-1.0 - min(yaw, 0) * 0.5) * r) + hup * (0.05 * r)
    skin = _color(rng, SKIN[rng.integers(len(SKIN))], 12)
    outline = _color(rng, np.array([30.0, 30.0, 30.0]), 15)
    return Person(
        joints=j,
        height=h,
        head_radius=r,
        limb_width=max(2.0, prop(0.065)),
        skin=skin,
        shirt=_color(rng),
        trousers=_color(rng),
        hair=_color(rng, np.array([60.0, 40.0, 20.0]), 40),
        outline=outline,
        facing=1,
    )


def _pt(p) -> tuple:
    # continuous coordinates -> PIL's pixel-index coordinates
    return (float(p[0]) - 0.5, float(p[1]) - 0.5)


def _capsule(draw: ImageDraw.ImageDraw, a, b, width: float, fill, outline=None) -> None:
    w = max(1, round(width))
    if outline is not None:
        _capsule(draw, a, b, width + 2, outline)
    draw.line([_pt(a), _pt(b)], fill=fill, width=w)
    for p in (a, b):
        r = width / 2
        x, y = _pt(p)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)


def _disk(draw: ImageDraw.ImageDraw, c, r: float, fill, outline=None) -> None:
    x, y = _pt(c)
    draw.ellipse([x - r, y - r, x + r, y + r], fill=fill, outline=outline)


def draw_person(draw: ImageDraw.ImageDraw, p: Person, fill=None) -> None:
    """Draw ``p``; ``fill`` overrides every colour (for silhouettes)."""
    j, w = p.joints, p.limb_width
    col = lambda c: fill if fill is not None else c  # noqa: E731
    ol = col(p.outline)
    # legs (trousers) with feet
    for hip, kne, ank in ((LHIP, LKNE, LANK), (RHIP, RKNE, RANK)):
        _capsule(draw, j[hip], j[kne], w * 1.25, col(p.trousers), ol)
        _capsule(draw, j[kne], j[ank], w * 1.1, col(p.trousers), ol)
        _disk(draw, j[ank], w * 0.75, col(p.outline))
    # torso polygon (shirt)
    poly = [j[LSHO], j[RSHO], j[RHIP], j[LHIP]]
    draw.polygon([_pt(q) for q in poly], fill=col(p.shirt), outline=ol)
    # neck and head
    head_c = (j[LEAR] + j[REAR]) / 2
    neck_base = (j[LSHO] + j[RSHO]) / 2
    _capsule(draw, neck_base, head_c, w * 0.9, col(p.skin))
    _disk(draw, head_c, p.head_radius, col(p.skin), ol)
    for e in (LEAR, REAR):
        _disk(draw, j[e], max(1.0, p.head_radius * 0.28), col(p.skin), ol)
    if fill is None:
        for e in (LEYE, REYE):
            _disk(draw, j[e], max(0.8, p.head_radius * 0.16), (20, 20, 20))
        _disk(draw, j[NOSE], max(0.8, p.head_radius * 0.14), _color_dark(p.skin))
    # arms: upper arm in the shirt colour, forearm skin, hand
    for sho, elb, wri in ((LSHO, LELB, LWRI), (RSHO, RELB, RWRI)):
        _capsule(draw, j[sho], j[elb], w, col(p.shirt), ol)
        _capsule(draw, j[elb], j[wri], w * 0.85, col(p.skin), ol)
        _disk(draw, j[wri], w * 0.65, col(p.skin), ol)


def _color_dark(c) -> tuple:
    return tuple(int(v * 0.55) for v in c)


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    # low-frequency colour field + stripes + noise
    g = rng.integers(2, 7)
    field = rng.uniform(0, 255, (g, g, 3)).astype(np.uint8)
    img = Image.fromarray(field).resize((size, size), Image.BILINEAR)
    arr = np.asarray(img, np.float32)
    if rng.random() < 0.5:
        f = rng.uniform(0.05, 0.4)
        ang = rng.uniform(0, math.pi)
        yy, xx = np.mgrid[:size, :size]
        stripes = np.sin((xx * math.cos(ang) + yy * math.sin(ang)) * f)
        arr += (stripes[..., None] * rng.uniform(10, 40, 3)).astype(np.float32)
    arr += rng.normal(0, rng.uniform(3, 12), (size, size, 1)).astype(np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _distractor(rng: np.random.Generator, size: int) -> tuple:
    """Sample a distractor shape: (kind, coordinates, colour, line width)."""
    kind = int(rng.integers(4))
    c = _color(rng)
    x, y = rng.uniform(-0.1, 1.1, 2) * size
    s = rng.uniform(0.05, 0.3) * size
    if kind == 0:
        return kind, [x, y, x + s, y + s * rng.uniform(0.3, 2)], c, 0
    if kind == 1:
        return kind, [x, y, x + s, y + s * rng.uniform(0.5, 1.5)], c, 0
    if kind == 2:
        x2, y2 = x + rng.normal(0, s), y + rng.normal(0, s)
        return kind, [(x, y), (x2, y2)], c, int(rng.integers(1, max(2, int(s / 4))))
    # skin-coloured blob: looks like a head or a hand
    c = _color(rng, SKIN[rng.integers(len(SKIN))], 12)
    r = s * 0.25
    return 1, [x - r, y - r, x + r, y + r], c, 0


def _draw_distractor(draw: ImageDraw.ImageDraw, spec: tuple, fill=None) -> None:
    kind, xy, c, width = spec
    c = c if fill is None else fill
    if kind == 0:
        draw.rectangle(xy, fill=c)
    elif kind == 1:
        draw.ellipse(xy, fill=c)
    else:
        draw.line(xy, fill=c, width=width)


def render_scene(
    rng: np.random.Generator,
    size: int = 128,
    max_people: int = 4,
    height_range=(0.45, 0.95),
    max_overlap: float = 0.4,
    truncation: float = 0.15,
    silhouettes: bool = True,
):
    """Render one image and its annotations.

    ``silhouettes=False`` skips drawing each person alone for ``areas`` and ``boxes``
    (training needs neither): the image and keypoints are the same, ``areas`` and
    ``boxes`` come back as NaN.

    Returns
    -------
    image : (size, size, 3) uint8
    keypoints : (N, 17, 3) float32, x, y in continuous image pixels, v in {0, 1, 2}
    areas : (N,) float32 silhouette areas in pixels
    boxes : (N, 4) float32 silhouette boxes [x, y, w, h]
    """
    img = _background(rng, size)
    draw = ImageDraw.Draw(img)
    for _ in range(rng.integers(0, 4)):
        _draw_distractor(draw, _distractor(rng, size))
    n_target = int(rng.integers(1, max_people + 1))
    people: list[Person] = []
    boxes: list[np.ndarray] = []
    for _ in range(n_target * 8):
        if len(people) == n_target:
            break
        h = rng.uniform(*height_range) * size
        # hip centre: the body spans about [-0.5h, +0.5h] around it vertically
        margin = -truncation * h if rng.random() < 0.3 else 0.25 * h
        cx = rng.uniform(margin * 0.5, size - margin * 0.5)
        cy = rng.uniform(0.45 * h + min(margin, 0), size - 0.45 * h - min(margin, 0))
        p = sample_person(rng, h, np.array([cx, cy]))
        lo, hi = p.joints.min(0) - p.head_radius, p.joints.max(0) + p.head_radius
        box = np.concatenate([lo, hi])
        if any(_iou(box, b) > max_overlap for b in boxes):
            continue
        # reject people mostly outside the image
        inside = ((p.joints >= 0) & (p.joints < size)).all(1).mean()
        if inside < 0.6:
            continue
        people.append(p)
        boxes.append(box)
    # ownership map: which person (or occluder) is on top at each pixel
    owner = Image.new("I", (size, size), 0)
    odraw = ImageDraw.Draw(owner)
    solo_areas, solo_boxes = [], []
    for i, p in enumerate(people):
        draw_person(draw, p)
        draw_person(odraw, p, fill=i + 1)
        if not silhouettes:
            solo_areas.append(math.nan)
            solo_boxes.append([math.nan] * 4)
            continue
        sil = Image.new("1", (size, size), 0)
        draw_person(ImageDraw.Draw(sil), p, fill=1)
        m = np.asarray(sil, bool)
        solo_areas.append(float(m.sum()))
        ys, xs = np.nonzero(m)
        if len(xs):
            solo_boxes.append(
                [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            )
        else:
            solo_boxes.append([0, 0, 0, 0])
    # foreground distractors occlude people
    for _ in range(rng.integers(0, 3) if rng.random() < 0.5 else 0):
        spec = _distractor(rng, size)
        _draw_distractor(draw, spec)
        _draw_distractor(odraw, spec, fill=0)  # covers people: no owner there
    own = np.asarray(owner, np.int64)
    n = len(people)
    kps = np.zeros((n, K, 3), np.float32)
    for i, p in enumerate(people):
        xy = p.joints
        kps[i, :, :2] = xy
        inside = (xy[:, 0] >= 0) & (xy[:, 0] < size) & (xy[:, 1] >= 0) & (xy[:, 1] < size)
        for k in range(K):
            if not inside[k]:
                kps[i, k] = 0
                continue
            px, py = int(xy[k, 0]), int(xy[k, 1])
            kps[i, k, 2] = 2.0 if own[py, px] == i + 1 else 1.0
    keep = (kps[:, :, 2] > 0).sum(1) > 0
    arr = np.asarray(img, np.uint8).copy()
    return (
        arr,
        kps[keep],
        np.asarray(solo_areas, np.float32).reshape(-1)[keep],
        np.asarray(solo_boxes, np.float32).reshape(-1, 4)[keep],
    )


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


class SyntheticPeople:
    """An endless, deterministic data set of synthetic crowd images.

    Parameters
    ----------
    seed : int
        Image ``i`` is rendered from ``numpy.random.default_rng([seed, i])``.
    size : int
        Square image side in pixels.
    length : int
        Number of images reported by ``len`` (indexing beyond it still works).
    **scene : dict
        Passed to :func:`render_scene` (``max_people``, ``height_range``,
        ``max_overlap``, ``truncation``).
    """

    def __init__(self, seed: int = 0, size: int = 128, length: int = 10**9, **scene):
        self.seed, self.size, self.length, self.options = seed, size, length, scene

    def __len__(self) -> int:
        return self.length

    def scene(self, i: int, silhouettes: bool = True):
        """Return ``(image (S, S, 3) uint8, keypoints (N, 17, 3), areas (N,), boxes (N, 4))``.

        ``silhouettes=False``: areas and boxes are NaN (see :func:`render_scene`).
        """
        rng = np.random.default_rng([self.seed, int(i)])
        return render_scene(rng, self.size, silhouettes=silhouettes, **self.options)

    def __getitem__(self, i: int):
        """Training sample ``(image (S, S, 3) uint8, keypoints (N, 17, 3), None)`` (no mask)."""
        image, keypoints, _, _ = self.scene(i, silhouettes=False)
        return image, keypoints, None


def to_coco(dataset: SyntheticPeople, indices) -> dict:
    """COCO ground-truth dict (``images``, ``annotations``, ``categories``) for some images.

    Keypoints are written in COCO's convention (pixel centres at integers), i.e.
    continuous coordinates minus 0.5; image ids are ``index + 1``.
    """
    from associative_embedding import COCO_KEYPOINTS

    images, anns = [], []
    for i in indices:
        _, kps, areas, boxes = dataset.scene(i)
        img_id = int(i) + 1
        images.append(
            {
                "id": img_id,
                "width": dataset.size,
                "height": dataset.size,
                "file_name": f"synthetic_{int(i):06d}.png",
            }
        )
        for kp, area, box in zip(kps, areas, boxes, strict=True):
            coco_kp = kp.copy()
            coco_kp[:, :2] -= 0.5
            coco_kp[kp[:, 2] == 0] = 0
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": img_id,
                    "category_id": 1,
                    "iscrowd": 0,
                    "area": float(area),
                    "bbox": [float(v) for v in box],
                    "keypoints": [round(float(v), 2) for v in coco_kp.reshape(-1)],
                    "num_keypoints": int((kp[:, 2] > 0).sum()),
                }
            )
    cat = {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(COCO_KEYPOINTS.keypoints),
        "skeleton": [[a + 1, b + 1] for a, b in COCO_KEYPOINTS.edges],
    }
    return {"images": images, "annotations": anns, "categories": [cat]}
