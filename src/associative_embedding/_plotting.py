"""Input checks and small drawing helpers shared by :mod:`associative_embedding.plot`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._validation import check_number, check_pose_keypoints, host, shape_str
from .skeletons import COCO_KEYPOINTS, Skeleton


def _pyplot() -> Any:
    """Import :mod:`matplotlib.pyplot`, or explain how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - exercised only without matplotlib
        raise ImportError(
            "associative_embedding.plot needs matplotlib: pip install 'associative-embedding[plot]'"
        ) from exc
    return plt


# --------------------------------------------------------------------------- inputs


def _as_numpy(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a numpy array (tensors are detached and copied to the CPU)."""
    x = host(x)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray or torch.Tensor, got {type(x).__name__}")
    return x


def _float_array(x: Any, name: str, layouts: Sequence[str]) -> np.ndarray:
    """Return ``x`` as a finite floating-point array with one of ``layouts``."""
    arr = _as_numpy(x, name)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must have a floating-point dtype, got {arr.dtype}")
    if not any(arr.ndim == len(layout) for layout in layouts):
        wanted = " or ".join("(" + ", ".join(layout) + ")" for layout in layouts)
        hint = _batch_hint(name) if arr.ndim > max(map(len, layouts)) else ""
        raise ValueError(f"{name} must have shape {wanted}, got shape {shape_str(arr.shape)}{hint}")
    if arr.size and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")
    return arr


def _keypoints(poses: Any, name: str = "poses") -> np.ndarray:
    """Keypoints ``(P, K, 3)`` of a ``Poses``-like object or of a plain array.

    Missing joints may have NaN coordinates; their score must then be 0.
    """
    kp = poses.keypoints if hasattr(poses, "keypoints") else poses
    if isinstance(kp, list | tuple):
        raise TypeError(
            f"{name} must be a Poses (one image) or an array of shape (P, K, 3), got a "
            f"{type(kp).__name__}; for a batch, pass one element of the list that decode returns"
        )
    label = f"{name}.keypoints" if hasattr(poses, "keypoints") else name
    return check_pose_keypoints(_as_numpy(kp, label), label)


def _person_scores(poses: Any, kp: np.ndarray) -> np.ndarray:
    """Each person's score ``(P,)``: ``poses.scores``, else the mean joint score over K.

    The mean over K, missing joints counting 0, is the decoder's score when
    no joint was filled in; a plain keypoint array carries no other.
    """
    scores = getattr(poses, "scores", None)
    if scores is not None:
        return check_pose_scores(_as_numpy(scores, "poses.scores"), kp.shape[0])
    if kp.shape[1] == 0:
        return np.zeros(kp.shape[0])
    return np.where(np.isfinite(kp[..., 0]), kp[..., 2], 0.0).mean(axis=1)


def _visible(
    kp: np.ndarray, score_threshold: float, person_scores: np.ndarray, person_threshold: float
) -> np.ndarray:
    """Return the joints that are drawn, ``(P, K)`` bool.

    Finite, scoring above ``score_threshold``, of a person scoring above
    ``person_threshold``.
    """
    joint = np.isfinite(kp[..., 0]) & np.isfinite(kp[..., 1]) & (kp[..., 2] > score_threshold)
    return joint & (person_scores > person_threshold)[:, None]


def check_pose_scores(scores: np.ndarray, n_people: int) -> np.ndarray:
    """Check ``poses.scores``: shape ``(P,)`` matching the keypoints, finite."""
    if scores.shape != (n_people,):
        raise ValueError(
            f"poses.scores must have shape (P,) = ({n_people},) to match poses.keypoints, "
            f"got {shape_str(scores.shape)}"
        )
    if not np.isfinite(scores).all():
        raise ValueError("poses.scores contains NaN or infinite values")
    return scores


def _resolve_skeleton(skeleton: Any, num_joints: int, what: str) -> Skeleton | None:
    """Return the skeleton to draw with: ``"auto"`` is COCO's for K = 17, else none."""
    if isinstance(skeleton, str) and skeleton == "auto":
        return COCO_KEYPOINTS if num_joints == COCO_KEYPOINTS.num_joints else None
    if skeleton is None:
        return None
    if not isinstance(skeleton, Skeleton):
        raise TypeError(
            f"skeleton must be a Skeleton, None or 'auto', got {type(skeleton).__name__} "
            f"{skeleton!r}"
        )
    if skeleton.num_joints != num_joints:
        raise ValueError(
            f"{what} has K={num_joints} joint types but skeleton {skeleton.name!r} has "
            f"{skeleton.num_joints}"
        )
    return skeleton


def _joint_names(skeleton: Skeleton | None, num_joints: int, prefix: str = "") -> list[str]:
    """Labels of the joint types: the skeleton's names (spaces for ``_``) or numbers."""
    if skeleton is None:
        return [f"{prefix}{k}" for k in range(num_joints)]
    return [name.replace("_", " ") for name in skeleton.keypoints]


def _image(image: Any) -> np.ndarray:
    """Return a drawable picture: (H, W), (H, W, 3) or (H, W, 4), uint8 or finite floats.

    RGB(A) floats must lie in [0, 1]: matplotlib clips them there, so a float image in
    0-255 would be drawn white and a normalised one (negative values) washed out.
    """
    img = _as_numpy(image, "image")
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise ValueError(
            "image must have shape (H, W), (H, W, 3) or (H, W, 4), "
            f"got shape {shape_str(img.shape)}"
        )
    if img.dtype != np.uint8 and img.dtype.kind != "f":
        raise TypeError(f"image must have dtype uint8 or a floating-point dtype, got {img.dtype}")
    if img.dtype.kind == "f" and img.size:
        if not np.isfinite(img).all():
            raise ValueError("image contains NaN or infinite values")
        lo, hi = float(img.min()), float(img.max())
        if img.ndim == 3 and (lo < 0.0 or hi > 1.0):
            raise ValueError(
                "image must have values in [0, 1] as an RGB(A) float image, got values in "
                f"[{lo:g}, {hi:g}] (matplotlib would clip them, drawing a 0-255 image white): "
                "divide it by 255, pass it as uint8, or undo its normalisation"
            )
    return img


def _batch_hint(name: str) -> str:
    """Return a hint for a batch passed where one image's maps are expected."""
    return f"; is it a batch (B, ...)? pass the maps of one image, {name}[b]"


def _person_colors(num: int, colors: Any) -> list[tuple[float, float, float, float]]:
    """``num`` RGBA colours: from ``colors`` (a list, or a colormap name) or tab10/tab20."""
    import matplotlib as mpl
    from matplotlib.colors import to_rgba

    if colors is None:
        colors = "tab10" if num <= 10 else "tab20"
    if isinstance(colors, str):
        try:
            cmap = mpl.colormaps[colors]
        except KeyError as exc:
            raise ValueError(
                f"colors must be a colormap name or a list of colours, got {colors!r}"
            ) from exc
        n = getattr(cmap, "N", 256)
        if n <= 20:  # qualitative map: cycle through its entries
            return [cmap(i % n) for i in range(num)]
        return [cmap(x) for x in np.linspace(0.0, 1.0, max(num, 1))][:num]
    colors = list(colors)
    if not colors:
        raise ValueError("colors must name at least one colour, got an empty sequence")
    try:
        rgba = [to_rgba(c) for c in colors]
    except ValueError as exc:
        raise ValueError(f"colors holds an invalid colour: {exc}") from exc
    return [rgba[i % len(rgba)] for i in range(num)]


def _offset(center_shift: float) -> float:
    """Shift that brings points to the drawing's convention (pixel centres at +0.5)."""
    return 0.5 - check_number(center_shift, "center_shift")


# --------------------------------------------------------------------------- plot_tags


def _tags_at(maps: np.ndarray, kp: np.ndarray, visible: np.ndarray, shift: float) -> np.ndarray:
    """Per-joint tags ``(P, K, D)`` read from ``maps`` ``(K, D, H, W)``; NaN where hidden."""
    k_, d_, h, w = maps.shape
    p_ = kp.shape[0]
    out = np.full((p_, k_, d_), np.nan)
    pp, kk = np.nonzero(visible)
    col = np.clip(np.floor(kp[pp, kk, 0] + shift).astype(np.int64), 0, w - 1)
    row = np.clip(np.floor(kp[pp, kk, 1] + shift).astype(np.int64), 0, h - 1)
    out[pp, kk] = maps[kk, :, row, col]
    return out


def _candidates(heat: np.ndarray, threshold: float, kernel: int) -> tuple[np.ndarray, ...]:
    """Local maxima of each heatmap above ``threshold``: joint, row and column indices."""
    from scipy.ndimage import maximum_filter

    peak = maximum_filter(heat, size=(1, kernel, kernel), mode="constant", cval=-np.inf)
    return np.nonzero((heat == peak) & (heat > threshold))
