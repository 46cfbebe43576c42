"""MPII Human Pose for the multi-person benchmark (the paper's Table 1).

Reads the official annotation file ``mpii_human_pose_v1_u12_1.mat`` (variable
``RELEASE``) and the multi-person test groups ``groups_v12.mat`` (variable
``groups``) of the MPII toolkit with :func:`scipy.io.loadmat`, and follows the
benchmark's protocol (the toolkit's ``getMultiPersonGroups.m`` and its README):

- the unit of evaluation is a *group*: the people of one test image that are
  estimated together; groups that contain a rectangle of ``single_person`` are not
  multi-person groups;
- at test time each group is cropped around the box of its people's ``objpos``
  (the rough body centres), at the mean of their ``scale``\\ s; no person's own
  position or scale may be used (:func:`group_crop`);
- predictions come back in image pixels, 16 joints per person, and are scored by
  ``ae.evaluate_mpii``.

Coordinates: MPII's are MATLAB's 1-based pixel coordinates (pixel ``(1, 1)`` is
centred on ``(1, 1)``); here they become the library's continuous pixels (pixel
``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``) by subtracting 0.5, and
:func:`write_annotations` adds it back. Joint ``id`` s 0-15 are the rows of
``ae.MPII_KEYPOINTS``.

The real files cannot be downloaded here; :func:`write_annotations` and
:func:`write_groups` write files of the same structure (used by the tests and the
synthetic demo).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "MPIIImage",
    "MPIIKeypoints",
    "MPIIPerson",
    "coco_to_mpii",
    "evaluate_groups",
    "ground_truth_groups",
    "group_crop",
    "load_annotations",
    "load_groups",
    "multi_person_groups",
    "synthetic_groups",
    "write_annotations",
    "write_groups",
]

K = 16
# MATLAB pixel centres at integers from 1 -> continuous pixels
MATLAB_OFFSET = 0.5


@dataclass
class MPIIPerson:
    """One annotated rectangle of an MPII image, in continuous image pixels.

    ``keypoints`` (16, 3): x, y, v with v = 2 visible, 1 annotated but occluded,
    0 not annotated; ``head_box`` (4,): x1, y1, x2, y2; ``objpos`` (2,) rough body
    centre; ``scale``: person height / 200 px (MPII's convention). Fields missing in
    the file are NaN.
    """

    keypoints: np.ndarray
    head_box: np.ndarray
    objpos: np.ndarray
    scale: float


@dataclass
class MPIIImage:
    """One entry of ``RELEASE.annolist``: file name, split and people."""

    name: str
    train: bool
    people: list[MPIIPerson] = field(default_factory=list)
    single_person: list[int] = field(default_factory=list)  # 0-based rectangle indices


# ----------------------------------------------------------------------------- reading


def _items(x) -> list:
    """The elements of a MATLAB struct/cell array read with squeeze_me=False."""
    if x is None:
        return []
    arr = np.asarray(x, dtype=object) if not isinstance(x, np.ndarray) else x
    return list(arr.ravel(order="F")) if arr.size else []


def _scalar(x, default=np.nan) -> float:
    if x is None:
        return default
    if isinstance(x, str):
        return float(x) if x.strip() else default
    arr = np.asarray(x)
    if arr.size == 0:
        return default
    v = arr.ravel()[0]
    if isinstance(v, str):
        return float(v) if v.strip() else default
    if isinstance(v, np.ndarray):
        return _scalar(v, default)
    return float(v)


def _field(s, name):
    return getattr(s, name, None) if s is not None else None


def _string(x) -> str:
    arr = np.asarray(x)
    if arr.size == 0:
        return ""
    v = arr.ravel()[0]
    return str(v) if not isinstance(v, np.ndarray) else _string(v)


def _person(rect) -> MPIIPerson:
    kp = np.zeros((K, 3), np.float64)
    kp[:, :2] = np.nan
    annopoints = _items(_field(rect, "annopoints"))
    points = _items(_field(annopoints[0], "point")) if annopoints else []
    for pt in points:
        j = int(_scalar(_field(pt, "id")))
        if not 0 <= j < K:
            raise ValueError(f"MPII joint id must be in 0..15, got {j}")
        vis = _scalar(_field(pt, "is_visible"), default=1.0)
        kp[j] = (
            _scalar(_field(pt, "x")) - MATLAB_OFFSET,
            _scalar(_field(pt, "y")) - MATLAB_OFFSET,
            2.0 if vis > 0 else 1.0,
        )
    head = np.array([_scalar(_field(rect, n)) - MATLAB_OFFSET for n in ("x1", "y1", "x2", "y2")])
    objpos = _items(_field(rect, "objpos"))
    pos = np.full(2, np.nan)
    if objpos:
        pos = np.array([_scalar(_field(objpos[0], n)) - MATLAB_OFFSET for n in ("x", "y")])
    return MPIIPerson(kp, head, pos, _scalar(_field(rect, "scale")))


def load_annotations(path) -> list[MPIIImage]:
    """Read ``mpii_human_pose_v1_u12_1.mat`` into one :class:`MPIIImage` per image."""
    from scipy.io import loadmat

    release = loadmat(str(path), squeeze_me=False, struct_as_record=False)["RELEASE"]
    release = _items(release)[0]
    annolist = _items(release.annolist)
    train = np.asarray(release.img_train).ravel()
    single = _items(release.single_person)
    if len(train) != len(annolist):
        raise ValueError(f"RELEASE.img_train has {len(train)} entries for {len(annolist)} images")
    images = []
    for i, entry in enumerate(annolist):
        image = _items(_field(entry, "image"))
        name = _string(_field(image[0], "name")) if image else ""
        people = [_person(r) for r in _items(_field(entry, "annorect"))]
        sp = [int(v) - 1 for v in np.asarray(single[i]).ravel()] if i < len(single) else []
        images.append(MPIIImage(name, bool(train[i]), people, sp))
    return images


def load_groups(path) -> list[list[list[int]]]:
    """Read ``groups_v12.mat``: per image, its groups as lists of 0-based rectangle indices."""
    from scipy.io import loadmat

    groups = loadmat(str(path), squeeze_me=False)["groups"]
    out = []
    for per_image in _items(groups):
        out.append([[int(v) - 1 for v in np.asarray(g).ravel()] for g in _items(per_image)])
    return out


def multi_person_groups(images: list[MPIIImage], groups, *, train: bool = False):
    """The toolkit's ``getMultiPersonGroups.m``: ``(image index, rectangle indices)`` pairs.

    Images of the requested split; a group counts when none of its rectangles is a
    ``single_person`` one (MATLAB's ``if ~ismember(ridxs, single)`` is true only when
    it holds for every element).
    """
    if len(groups) != len(images):
        raise ValueError(f"groups has {len(groups)} entries for {len(images)} images")
    out = []
    for i, (image, per_image) in enumerate(zip(images, groups, strict=True)):
        if image.train != train:
            continue
        single = set(image.single_person)
        for g in per_image:
            if g and not any(r in single for r in g):
                out.append((i, list(g)))
    return out


def group_crop(people: list[MPIIPerson], *, margin: float = 125.0) -> tuple[np.ndarray, float]:
    """Centre and side (image pixels) of the square crop of one group.

    The benchmark's rule: the box of the group's ``objpos`` and the mean ``scale``;
    the square is centred on the box and its side is the box's longer side plus
    ``2 * margin * mean scale`` (``margin`` in MPII's 200-px person-height units:
    125 leaves half a person height plus 25 % around each body centre).
    """
    pos = np.array([p.objpos for p in people], np.float64)
    scales = np.array([p.scale for p in people], np.float64)
    if not len(pos) or not np.isfinite(pos).all() or not np.isfinite(scales).all():
        raise ValueError("every person of a group needs objpos and scale")
    lo, hi = pos.min(0), pos.max(0)
    scale = float(scales.mean())
    side = float(max(hi - lo)) + 2 * margin * scale
    return (lo + hi) / 2, side


def ground_truth_groups(images: list[MPIIImage], pairs) -> list[dict]:
    """``ae.evaluate_mpii`` ground truth for ``(image index, rectangle indices)`` pairs."""
    out = []
    for i, rects in pairs:
        people = [images[i].people[r] for r in rects]
        kp = np.stack([p.keypoints for p in people]) if people else np.zeros((0, K, 3))
        boxes = np.stack([p.head_box for p in people]) if people else np.zeros((0, 4))
        flags = kp.copy()
        flags[..., 2] = (kp[..., 2] > 0).astype(np.float64)
        out.append({"keypoints": flags, "head_boxes": boxes})
    return out


# ----------------------------------------------------------------------------- writing


def _struct_array(records: list[dict], fields: list[str]) -> np.ndarray:
    """A 1 x n MATLAB struct array (savemat writes structured object arrays as structs)."""
    arr = np.empty((1, len(records)), dtype=[(f, object) for f in fields])
    for j, rec in enumerate(records):
        for f in fields:
            arr[0, j][f] = rec.get(f, np.zeros((0, 0)))
    return arr


def write_annotations(path, images: list[MPIIImage]) -> None:
    """Write images in the structure of ``mpii_human_pose_v1_u12_1.mat`` (``RELEASE``).

    Only the fields this module reads: ``annolist(i).image.name``,
    ``annolist(i).annorect(r).{x1, y1, x2, y2, scale, objpos.{x, y},
    annopoints.point(p).{x, y, id, is_visible}}``, ``img_train`` and
    ``single_person`` (1-based, MATLAB coordinates).
    """
    from scipy.io import savemat

    annolist = []
    for image in images:
        rects = []
        for p in image.people:
            pts = [
                {
                    "x": float(p.keypoints[j, 0] + MATLAB_OFFSET),
                    "y": float(p.keypoints[j, 1] + MATLAB_OFFSET),
                    "id": j,
                    "is_visible": int(p.keypoints[j, 2] > 1),
                }
                for j in range(K)
                if p.keypoints[j, 2] > 0
            ]
            rect = {
                n: float(v + MATLAB_OFFSET)
                for n, v in zip(("x1", "y1", "x2", "y2"), p.head_box, strict=True)
            }
            rect["scale"] = float(p.scale)
            rect["objpos"] = _struct_array(
                [
                    {
                        "x": float(p.objpos[0] + MATLAB_OFFSET),
                        "y": float(p.objpos[1] + MATLAB_OFFSET),
                    }
                ],
                ["x", "y"],
            )
            point = _struct_array(pts, ["x", "y", "id", "is_visible"])
            rect["annopoints"] = _struct_array([{"point": point}], ["point"])
            rects.append(rect)
        annolist.append(
            {
                "image": _struct_array([{"name": image.name}], ["name"]),
                "annorect": _struct_array(
                    rects, ["x1", "y1", "x2", "y2", "scale", "objpos", "annopoints"]
                ),
            }
        )
    single = np.empty((len(images), 1), dtype=object)
    for i, image in enumerate(images):
        single[i, 0] = np.array([[r + 1] for r in image.single_person], np.float64).reshape(-1, 1)
    release = {
        "annolist": _struct_array(annolist, ["image", "annorect"]),
        "img_train": np.array([[int(im.train) for im in images]], np.float64),
        "single_person": single,
    }
    savemat(str(path), {"RELEASE": release})


def write_groups(path, groups: list[list[list[int]]]) -> None:
    """Write ``groups_v12.mat``'s structure: a cell per image of 1-based index vectors."""
    from scipy.io import savemat

    cells = np.empty((len(groups), 1), dtype=object)
    for i, per_image in enumerate(groups):
        inner = np.empty((1, len(per_image)), dtype=object)
        for g, rects in enumerate(per_image):
            inner[0, g] = np.array([[r + 1 for r in rects]], np.float64)
        cells[i, 0] = inner
    savemat(str(path), {"groups": cells})


# ----------------------------------------------------------------------------- training


class MPIIKeypoints(torch.utils.data.Dataset):
    """MPII training images as ``(image (S, S, 3) uint8, keypoints (N, 16, 3), None)``.

    Each sample is a square crop around one annotated person (a random one when
    training) of side ``context * 200 * scale`` (its neighbours are in view and
    labelled too), with COCO-style augmentation (scale, rotation, flip with
    ``ae.MPII_KEYPOINTS.flip_index``); keypoints come out in continuous input pixels
    with v = 0 outside the crop.
    """

    def __init__(
        self,
        images: list[MPIIImage],
        image_dir,
        input_size: int,
        *,
        train: bool = True,
        seed: int = 0,
        context: float = 2.0,
        scale_range=(0.75, 1.25),
        rotation: float = 30.0,
        flip: float = 0.5,
    ):
        from associative_embedding import MPII_KEYPOINTS

        self.items = [
            (i, r)
            for i, im in enumerate(images)
            if im.train == train
            for r, p in enumerate(im.people)
            if (p.keypoints[:, 2] > 0).any() and np.isfinite(p.objpos).all()
        ]
        self.images, self.image_dir = images, Path(image_dir)
        self.input_size, self.train, self.seed = input_size, train, seed
        self.context, self.scale_range, self.rotation, self.flip = (
            context,
            scale_range,
            rotation,
            flip,
        )
        self.flip_index = list(MPII_KEYPOINTS.flip_index)
        self.calls = 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, n: int):
        from PIL import Image

        from .coco import affine_matrix, warp

        i, r = self.items[n]
        image = self.images[i]
        person = image.people[r]
        pil = Image.open(self.image_dir / image.name).convert("RGB")
        side = self.context * 200 * person.scale
        rot, flip = 0.0, False
        if self.train:
            rng = np.random.default_rng([self.seed, int(n), self.calls])
            self.calls += 1
            side *= rng.uniform(*self.scale_range)
            rot = rng.uniform(-self.rotation, self.rotation)
            flip = rng.random() < self.flip
        m = affine_matrix(person.objpos, side, rot, self.input_size, flip)
        out = np.asarray(warp(pil, m, self.input_size))
        kp = np.stack([p.keypoints for p in image.people]).astype(np.float64)
        labelled = kp[..., 2] > 0
        xy1 = np.concatenate([np.nan_to_num(kp[..., :2]), np.ones_like(kp[..., :1])], -1)
        kp[..., :2] = (xy1 @ m.T)[..., :2]
        kp[~labelled] = 0
        if flip:
            kp = kp[:, self.flip_index]
        s = self.input_size
        outside = (kp[..., 0] < 0) | (kp[..., 0] >= s) | (kp[..., 1] < 0) | (kp[..., 1] >= s)
        kp[outside] = 0
        kp = kp[(kp[..., 2] > 0).any(1)]
        return out, kp.astype(np.float32), None


# ----------------------------------------------------------------------------- synthetic


def coco_to_mpii(keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic people's 17 COCO joints -> 16 MPII joints and head rectangles.

    For the stick figures of ``data.synthetic`` (and for 17-joint predictions): the
    limbs map one to one; pelvis and thorax are the hips' and shoulders' midpoints;
    the head is the circle through the ears (centre their midpoint, radius half
    their distance): head top and upper neck are its top and bottom along the
    axis perpendicular to the ears' line, the head rectangle its bounding box.
    ``keypoints`` (N, 17, 3) with x, y, v or score; a derived joint takes the
    smaller value of its sources (0, i.e. missing, when one is missing). Returns
    ``(N, 16, 3)`` and head boxes ``(N, 4)`` (NaN without both ears).
    """
    kp = np.asarray(keypoints, np.float64)
    n = kp.shape[0]
    out = np.zeros((n, K, 3))
    out[..., :2] = np.nan
    # MPII id <- COCO id for the limbs
    for m_id, c_id in (
        (0, 16), (1, 14), (2, 12), (3, 11), (4, 13), (5, 15),
        (10, 10), (11, 8), (12, 6), (13, 5), (14, 7), (15, 9),
    ):  # fmt: skip
        out[:, m_id] = kp[:, c_id]

    def mid(a, b):
        xy = (kp[:, a, :2] + kp[:, b, :2]) / 2
        v = np.minimum(kp[:, a, 2], kp[:, b, 2])
        return np.concatenate([xy, v[:, None]], -1)

    out[:, 6] = mid(11, 12)
    out[:, 7] = mid(5, 6)
    ears = mid(3, 4)
    c, v = ears[:, :2], ears[:, 2]
    half = (kp[:, 3, :2] - kp[:, 4, :2]) / 2  # left ear - right ear: image-right
    r = np.hypot(half[:, 0], half[:, 1])
    up = np.stack([half[:, 1], -half[:, 0]], -1) / np.where(r > 0, r, 1.0)[:, None]
    out[:, 9, :2] = c + up * r[:, None]
    out[:, 8, :2] = c - up * r[:, None]
    out[:, 9, 2] = out[:, 8, 2] = v
    boxes = np.concatenate([c - r[:, None], c + r[:, None]], -1)
    missing = out[..., 2] <= 0
    out[missing] = [np.nan, np.nan, 0.0]
    boxes[v <= 0] = np.nan
    return out, boxes


def synthetic_groups(dataset, indices) -> list[dict]:
    """``ae.evaluate_mpii`` ground truth of synthetic images: one group per image."""
    out = []
    for i in indices:
        _, kps, _, _ = dataset.scene(i, silhouettes=False)
        kp, boxes = coco_to_mpii(kps)
        keep = np.isfinite(boxes).all(1)  # people whose head is in the image
        flags = np.nan_to_num(kp[keep], nan=0.0)
        flags[..., 2] = (kp[keep][..., 2] > 0).astype(np.float64)
        out.append({"keypoints": flags, "head_boxes": boxes[keep]})
    return out


# ----------------------------------------------------------------------------- evaluation


def evaluate_groups(
    model,
    config,
    images: list[MPIIImage],
    pairs,
    image_dir,
    *,
    batch_size: int = 8,
    margin: float = 125.0,
    **options,
):
    """``ae.evaluate_mpii`` of ``model`` on MPII groups, with the benchmark's group crops.

    Each group's crop (:func:`group_crop`, resampled to the network's input size) is
    passed to ``evaluate.predict`` (``options``: scales, flip, decoder options); the
    poses are mapped back to image pixels. Returns ``(result, predictions)``.
    """
    from evaluate import predict
    from PIL import Image

    import associative_embedding as ae

    from .coco import affine_matrix, warp

    # evaluate.network_maps mirrors with the COCO flip index: no flip test for 16 joints
    # until it takes the skeleton's
    options.setdefault("flip", False)
    decode = {"joint_order": ae.MPII_KEYPOINTS.joint_order, **options.pop("decode_options", {})}
    s = config.input_size
    was_training = model.training
    model.eval()
    preds = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        crops, inverses = [], []
        for i, rects in chunk:
            center, side = group_crop([images[i].people[r] for r in rects], margin=margin)
            m = affine_matrix(center, side, 0.0, s, False)
            pil = Image.open(Path(image_dir) / images[i].name).convert("RGB")
            crops.append(np.asarray(warp(pil, m, s)))
            inverses.append(np.linalg.inv(m)[:2])
        outputs = predict(model, config, crops, decode_options=decode, **options)
        for pred, inv in zip(outputs, inverses, strict=True):
            poses = ae.Poses(pred["keypoints"], pred["poses"].scores, pred["poses"].tags)
            preds.append(poses.transform(inv).keypoints)
    model.train(was_training)
    return ae.evaluate_mpii(ground_truth_groups(images, pairs), preds), preds
