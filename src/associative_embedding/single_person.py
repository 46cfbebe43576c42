"""Single-person refinement of decoded people (Newell et al. 2017, §4, Tables 4 and 5).

"We run each detected person through the single person model, and average the
output with the predictions from our multiperson pose model." The only public
code of this step is princeton-vl/pose-ae-demo's ``main.py::refinement``; the
functions here split it into its parts:

1. :func:`person_crops`: a square box around each decoded person's joints.
2. :func:`crop_people`: the crops of one image for all people at once (torch,
   any device), at the single-person network's input size.
3. :func:`merge_single_person`: the single-person network's heatmaps of those
   crops (averaged over crop resolutions and mirror images) merged back into
   the people with pose-ae-demo's rules.

Coordinates are continuous image pixels, pixel ``j`` covering ``[j, j+1)``, as
everywhere in the library: decode, then map the poses to image pixels with
:meth:`Poses.transform` or :meth:`Poses.rescale` before calling these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ._validation import (
    check_finite,
    check_float_array,
    check_int,
    check_number,
    check_pose_keypoints,
    is_tensor,
    shape_str,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .poses import Poses

__all__ = ["PersonCrops", "crop_people", "merge_single_person", "person_crops"]


def _size_pair(size: Any, name: str = "size") -> tuple[int, int]:
    """Read an int ``s`` or a pair ``(height, width)`` of positive ints."""
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise ValueError(f"{name} must be an int or (height, width), got {size!r}")
        return check_int(size[0], f"{name}[0]", low=1), check_int(size[1], f"{name}[1]", low=1)
    s = check_int(size, name, low=1)
    return s, s


@dataclass(frozen=True, slots=True)
class PersonCrops:
    """Square boxes around people, in image pixels.

    Parameters
    ----------
    centers : ndarray, shape (P, 2)
        Box centres ``x, y`` (float64, image pixels); NaN for a person without
        detected joints (no box).
    sizes : ndarray, shape (P,)
        Box sides (float64, image pixels, > 0); NaN where there is no box.

    Raises
    ------
    ValueError
        If the shapes disagree, a side is not positive, or only one of a
        person's centre and side is NaN.

    See Also
    --------
    person_crops : Makes them from decoded people.

    Examples
    --------
    >>> import numpy as np
    >>> from associative_embedding import PersonCrops
    >>> crops = PersonCrops(np.array([[50.0, 40.0]]), np.array([20.0]))
    >>> crops.to_crop(10)[0].tolist()             # box [40, 60) x [30, 50) -> [0, 10)^2
    [[0.5, 0.0, -20.0], [0.0, 0.5, -15.0]]
    >>> crops.to_image(10)[0] @ [5.0, 5.0, 1.0]   # the crop's centre
    array([50., 40.])
    """

    centers: np.ndarray
    sizes: np.ndarray

    def __post_init__(self) -> None:
        c, s = self.centers, self.sizes
        for name, arr in (("centers", c), ("sizes", s)):
            if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f":
                raise TypeError(f"{name} must be a float numpy.ndarray, got {type(arr).__name__}")
        if c.ndim != 2 or c.shape[1] != 2 or s.shape != (c.shape[0],):
            raise ValueError(
                "centers (P, 2) and sizes (P,) must agree, got "
                f"{shape_str(c.shape)} and {shape_str(s.shape)}"
            )
        none = np.isnan(s)
        if (np.isnan(c).any(axis=1) != none).any():
            raise ValueError("a person's centre and side must both be NaN (no box) or neither")
        if np.isinf(c).any() or np.isinf(s).any() or (s[~none] <= 0).any():
            raise ValueError("sizes must be positive and finite, centers finite (or NaN)")

    def __len__(self) -> int:
        return int(self.sizes.shape[0])

    @property
    def valid(self) -> np.ndarray:
        """Bool array, shape (P,): whether each person has a box."""
        return ~np.isnan(self.sizes)

    def to_image(self, size: int | tuple[int, int]) -> np.ndarray:
        """Affine matrices from a map covering each box to image pixels.

        Parameters
        ----------
        size : int or (int, int)
            The map's side, or its ``(height, width)``, in its pixels: a crop
            of the network's input size, or its heatmaps (the box always maps
            onto the whole map, so a network of stride s needs no extra term).

        Returns
        -------
        ndarray, shape (P, 2, 3)
            ``[x, y] = m @ [u, v, 1]`` for map coordinates ``u, v`` (float64;
            NaN rows for people without a box).
        """
        h, w = _size_pair(size)
        p = len(self)
        m = np.zeros((p, 2, 3))
        m[:, 0, 0] = self.sizes / w
        m[:, 1, 1] = self.sizes / h
        m[:, :, 2] = self.centers - self.sizes[:, None] / 2
        return m

    def to_crop(self, size: int | tuple[int, int]) -> np.ndarray:
        """Affine matrices from image pixels to each crop's pixels (inverse of :meth:`to_image`).

        Parameters
        ----------
        size : int or (int, int)
            The crop's side, or its ``(height, width)``.

        Returns
        -------
        ndarray, shape (P, 2, 3)
            ``[u, v] = m @ [x, y, 1]`` (float64; NaN rows without a box).
        """
        h, w = _size_pair(size)
        p = len(self)
        m = np.zeros((p, 2, 3))
        m[:, 0, 0] = w / self.sizes
        m[:, 1, 1] = h / self.sizes
        origin = self.centers - self.sizes[:, None] / 2
        m[:, 0, 2] = -origin[:, 0] * m[:, 0, 0]
        m[:, 1, 2] = -origin[:, 1] * m[:, 1, 1]
        return m


def _keypoints(poses: Any, name: str = "poses") -> np.ndarray:
    kp = getattr(poses, "keypoints", poses)
    if not isinstance(kp, np.ndarray):
        raise TypeError(f"{name} must be Poses or an ndarray (P, K, 3), got {type(poses).__name__}")
    return check_pose_keypoints(kp, name)


def _detected(kp: np.ndarray) -> np.ndarray:
    """pose-ae-demo's ``pts[:, 2] > 0``, with coordinates known."""
    return (kp[..., 2] > 0) & np.isfinite(kp[..., 0]) & np.isfinite(kp[..., 1])


def person_crops(poses: Any, *, padding: float = 1.3, min_size: float = 60.0) -> PersonCrops:
    """Square boxes around each person's detected joints (pose-ae-demo's refinement crop).

    The box is centred on the middle of the bounding box of the person's
    detected joints (score > 0) and its side is ``padding * max(width, height,
    min_size)``: pose-ae-demo's ``scale = max(max(x2 - x1, y2 - y1), 60) * 1.3 / 200``
    in its 200-pixel units.

    Parameters
    ----------
    poses : Poses or ndarray, shape (P, K, 3)
        People in image pixels (``x, y, score``).
    padding : float, default 1.3
        Box side over the joints' extent (> 0).
    min_size : float, default 60.0
        Smallest extent in image pixels before ``padding`` (>= 0); 60 is
        pose-ae-demo's value for COCO images of about 640 pixels.

    Returns
    -------
    PersonCrops
        One box per person; NaN for a person without detected joints.

    Raises
    ------
    TypeError
        If ``poses`` is neither Poses nor a float ndarray.
    ValueError
        If ``poses`` is not (P, K, 3) or holds Inf / NaN scores, or an option
        is out of range.

    See Also
    --------
    crop_people : Cuts the boxes out of the image.

    Examples
    --------
    >>> import numpy as np
    >>> from associative_embedding import person_crops
    >>> kp = np.array([[[10.0, 20.0, 0.9], [50.0, 120.0, 0.8], [np.nan, np.nan, 0.0]]])
    >>> crops = person_crops(kp)
    >>> crops.centers.tolist(), crops.sizes.tolist()
    ([[30.0, 70.0]], [130.0])
    """
    kp = _keypoints(poses)
    pad = check_number(padding, "padding", low=0.0, low_inclusive=False)
    floor = check_number(min_size, "min_size", low=0.0)
    det = _detected(kp)
    has = det.any(axis=1)
    x = np.where(det, kp[..., 0], np.nan)
    y = np.where(det, kp[..., 1], np.nan)
    centers = np.full((kp.shape[0], 2), np.nan)
    sizes = np.full(kp.shape[0], np.nan)
    if has.any():
        x1, x2 = np.nanmin(x[has], axis=1), np.nanmax(x[has], axis=1)
        y1, y2 = np.nanmin(y[has], axis=1), np.nanmax(y[has], axis=1)
        centers[has] = np.stack([(x1 + x2) / 2, (y1 + y2) / 2], axis=1)
        sizes[has] = np.maximum(np.maximum(x2 - x1, y2 - y1), floor) * pad
        if (sizes[has] <= 0).any():
            raise ValueError(
                "a person's joints all sit on one point and min_size is 0: its box has side "
                "0; give min_size > 0"
            )
    return PersonCrops(centers, sizes)


def crop_people(image: Any, crops: PersonCrops, size: int | tuple[int, int]) -> torch.Tensor:
    """Cut every person's box out of one image, resampled to the network's input size.

    All crops are taken at once with :func:`torch.nn.functional.grid_sample`
    (bilinear, zeros outside the image) on the image's device: the crop's pixel
    ``(row v, column u)`` is the image at ``to_image(size) @ [u + 0.5, v + 0.5, 1]``
    (pixel centres). Unlike pose-ae-demo's ``crop`` (an integer-pixel copy then
    ``cv2.resize``), nothing is rounded to whole pixels; like it, nothing is
    low-pass filtered before downsampling.

    Parameters
    ----------
    image : ndarray or Tensor, shape (C, H, W)
        One image (float, any device), channels first.
    crops : PersonCrops
        The boxes, in this image's pixels.
    size : int or (int, int)
        Output side, or ``(height, width)``, in pixels.

    Returns
    -------
    Tensor, shape (P, C, h, w)
        The crops, in the image's dtype and on its device; all zeros for a
        person without a box.

    Raises
    ------
    TypeError
        If ``image`` is not a float ndarray or Tensor, or ``crops`` is not
        :class:`PersonCrops`.
    ValueError
        If ``image`` is not (C, H, W) or holds NaN / Inf.

    See Also
    --------
    person_crops : The boxes.
    merge_single_person : Uses the network's heatmaps of these crops.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from associative_embedding import PersonCrops, crop_people
    >>> image = torch.arange(16.0).reshape(1, 4, 4)
    >>> crops = PersonCrops(np.array([[1.0, 1.0]]), np.array([2.0]))   # the top-left 2x2
    >>> crop_people(image, crops, 2)[0, 0].tolist()
    [[0.0, 1.0], [4.0, 5.0]]
    """
    import torch
    import torch.nn.functional as F

    check_float_array(image, "image")
    if not isinstance(crops, PersonCrops):
        raise TypeError(f"crops must be PersonCrops, got {type(crops).__name__}")
    if image.ndim != 3:
        raise ValueError(f"image must have shape (C, H, W), got shape {shape_str(image.shape)}")
    check_finite(image, "image")
    h, w = _size_pair(size)
    img = image if is_tensor(image) else torch.from_numpy(np.ascontiguousarray(image))
    c, ih, iw = img.shape
    p = len(crops)
    valid = crops.valid
    # normalised coordinates (align_corners=False): x_img = xn_out * s / 2 + cx
    theta = np.zeros((p, 2, 3))
    s = np.where(valid, crops.sizes, 0.0)
    cx = np.where(valid, crops.centers[:, 0], 0.0)
    cy = np.where(valid, crops.centers[:, 1], 0.0)
    theta[:, 0, 0] = s / iw
    theta[:, 1, 1] = s / ih
    theta[:, 0, 2] = 2 * cx / iw - 1
    theta[:, 1, 2] = 2 * cy / ih - 1
    t = torch.as_tensor(theta, dtype=img.dtype, device=img.device)
    if p == 0:
        return img.new_zeros((0, c, h, w))
    grid = F.affine_grid(t, [p, c, h, w], align_corners=False)
    out = F.grid_sample(
        img.unsqueeze(0).expand(p, c, ih, iw),
        grid,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )
    if not valid.all():
        out[torch.as_tensor(~valid, device=out.device)] = 0
    return out


def _mean_heatmaps(heatmaps: Any, p: int, k: int) -> np.ndarray:
    """Average (P, K, h, w) maps of several views, resized to the first one's size."""
    views = list(heatmaps) if isinstance(heatmaps, Sequence) else [heatmaps]
    if not views:
        raise ValueError("heatmaps must hold at least one (P, K, h, w) array")
    for i, v in enumerate(views):
        label = f"heatmaps[{i}]" if isinstance(heatmaps, Sequence) else "heatmaps"
        check_float_array(v, label)
        if v.ndim != 4 or tuple(v.shape[:2]) != (p, k):
            raise ValueError(
                f"{label} must have shape (P, K, h, w) with P={p}, K={k} (the poses'), "
                f"got shape {shape_str(v.shape)}"
            )
        check_finite(v, label)
    size = tuple(int(s) for s in views[0].shape[2:])
    if all(tuple(v.shape[2:]) == size for v in views) and not any(is_tensor(v) for v in views):
        return np.mean([np.asarray(v, dtype=np.float64) for v in views], axis=0)
    import torch
    import torch.nn.functional as F

    acc = None
    for v in views:
        t = v if is_tensor(v) else torch.from_numpy(np.asarray(v))
        t = t.detach().to("cpu", torch.float64)
        if tuple(t.shape[2:]) != size and t.numel():
            t = F.interpolate(t, size=size, mode="bilinear", align_corners=False)
        acc = t if acc is None else acc + t
    return (acc / len(views)).numpy()


def merge_single_person(
    poses: Any,
    heatmaps: Any,
    crops: PersonCrops,
    *,
    replace_threshold: float = 0.15,
    agree_distance: float = 10.0,
    min_agreement: float = 0.2,
    adjust: bool = True,
) -> Poses:
    """Merge a single-person network's heatmaps of each person's crop into the people.

    pose-ae-demo's ``refinement`` rules: the heatmaps of all views of a
    person's crop are averaged; for each joint the maximum of its map gives a
    position (mapped back to the image) and a value. A joint takes the new
    position and value when it was missing, or when the value exceeds
    ``replace_threshold``. If fewer than ``min_agreement`` of the joints the
    person already had lie within ``agree_distance`` of their new position,
    the single-person network is taken to have looked at someone else and the
    whole person is left as it was.

    Parameters
    ----------
    poses : Poses or ndarray, shape (P, K, 3)
        The decoded people in image pixels, as given to :func:`person_crops`.
    heatmaps : ndarray or Tensor, shape (P, K, h, w), or a sequence of them
        The single-person network's heatmaps of each person's crop, one array
        per view (crop resolutions; mirror images already mirrored back with
        :func:`flip_maps`). Each map must cover the crop's box exactly. Views
        of other sizes are resized to the first one's (bilinear) before the
        average.
    crops : PersonCrops
        The boxes the crops were cut from.
    replace_threshold : float, default 0.15
        A detected joint is replaced when the new value exceeds this
        (pose-ae-demo's 0.15); ``inf`` only fills missing joints.
    agree_distance : float, default 10.0
        Image pixels: a detected joint agrees when its new position is closer
        than this (pose-ae-demo's 10 pixels, for COCO images of about 640
        pixels; scale it with your images).
    min_agreement : float, default 0.2
        The person is reverted when the fraction of agreeing detected joints
        is below this (pose-ae-demo's 0.2). 0 never reverts.
    adjust : bool, default True
        Move each maximum a quarter pixel toward its higher neighbour along x
        and y (pose-ae-demo's ``adjustKeypoint``; ties go toward lower
        coordinates) before mapping it to the image.

    Returns
    -------
    Poses
        New people (float64 keypoints); scores and tags are kept. A missing
        joint whose new value is not positive stays missing (NaN, score 0).
        People without a box are returned unchanged.

    Raises
    ------
    TypeError
        If an argument has the wrong kind.
    ValueError
        If the shapes disagree with the poses, the maps hold NaN / Inf, or an
        option is out of range.

    See Also
    --------
    person_crops, crop_people : The crops this merges back.

    Notes
    -----
    The maximum of a map is its first maximal pixel in row-major order
    (``numpy.argmax``); pixel ``(i, j)`` sits at ``(j + 0.5, i + 0.5)`` in
    map coordinates, which :meth:`PersonCrops.to_image` maps to the image.
    pose-ae-demo writes a missing joint's new position even when its value is
    0; here it stays missing then, the library's convention for missing
    joints.

    Examples
    --------
    >>> import numpy as np
    >>> from associative_embedding import PersonCrops, merge_single_person
    >>> kp = np.array([[[12.0, 12.0, 0.9], [np.nan, np.nan, 0.0]]])
    >>> crops = PersonCrops(np.array([[10.0, 10.0]]), np.array([8.0]))  # box [6, 14)^2
    >>> hm = np.zeros((1, 2, 4, 4))
    >>> hm[0, 0, 3, 3] = 0.9                       # joint 0 where it was
    >>> hm[0, 1, 0, 1] = 0.5                       # joint 1 found
    >>> merged = merge_single_person(kp, hm, crops, adjust=False)
    >>> merged.keypoints.tolist()
    [[[13.0, 13.0, 0.9], [9.0, 7.0, 0.5]]]
    """
    from ._decode.people import ADJUST_REFERENCE, quarter_offsets
    from .poses import Poses

    kp = _keypoints(poses)
    if not isinstance(crops, PersonCrops):
        raise TypeError(f"crops must be PersonCrops, got {type(crops).__name__}")
    p, k, _ = kp.shape
    if len(crops) != p:
        raise ValueError(f"crops must have one box per person (P={p}), got {len(crops)}")
    thr = (
        float("inf")
        if replace_threshold == float("inf")
        else check_number(replace_threshold, "replace_threshold")
    )
    dist_max = check_number(agree_distance, "agree_distance", low=0.0)
    agree_min = check_number(min_agreement, "min_agreement", low=0.0, high=1.0)
    if not isinstance(adjust, bool):
        raise TypeError(f"adjust must be a bool, got {type(adjust).__name__}")
    hm = _mean_heatmaps(heatmaps, p, k)
    scores = getattr(poses, "scores", np.zeros(p))
    tags = getattr(poses, "tags", np.zeros((p, 0)))
    out = kp.astype(np.float64, copy=True)
    if p == 0 or k == 0:
        return Poses(out, scores, tags)
    h, w = hm.shape[2:]
    flat = hm.reshape(p, k, h * w)
    idx = np.argmax(flat, axis=2)
    val = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
    i, j = np.divmod(idx, w)
    u = j + 0.5
    v = i + 0.5
    if adjust:  # the decoder's rule, the references' (ties move by -0.25)
        shift = np.empty((p * k, 2))
        maps = np.ascontiguousarray(hm.reshape(p * k, h, w))
        quarter_offsets(maps, j.reshape(-1), i.reshape(-1), ADJUST_REFERENCE, shift)
        u = u + shift[:, 0].reshape(p, k)
        v = v + shift[:, 1].reshape(p, k)
    m = crops.to_image((h, w))
    x = m[:, None, 0, 0] * u + m[:, None, 0, 1] * v + m[:, None, 0, 2]
    y = m[:, None, 1, 0] * u + m[:, None, 1, 1] * v + m[:, None, 1, 2]
    det = _detected(kp)
    with np.errstate(invalid="ignore"):
        close = np.sqrt((x - kp[..., 0]) ** 2 + (y - kp[..., 1]) ** 2) < dist_max
    n_det = det.sum(axis=1)
    agree = np.where(n_det > 0, (close & det).sum(axis=1) / np.maximum(n_det, 1), 1.0)
    keep_person = crops.valid & ~(agree < agree_min)
    replace = (~det | (val > thr)) & (val > 0) & keep_person[:, None]
    out[..., 0] = np.where(replace, x, out[..., 0])
    out[..., 1] = np.where(replace, y, out[..., 1])
    out[..., 2] = np.where(replace, val, out[..., 2])
    return Poses(out, scores, tags)
