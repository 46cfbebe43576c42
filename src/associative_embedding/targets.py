"""Training targets: Gaussian heatmaps, padded keypoint tensors, joint indices.

Coordinates are ``x`` (column) and ``y`` (row) in pixels of the map the target
is for (heatmap pixels, not image pixels: convert with :func:`scale_keypoints`).
Keypoint arrays have a last axis ``(x, y, v)``; a joint is labelled when
``v > 0``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from numba import njit

from ._validation import (
    check_choice,
    check_float_array,
    check_int,
    check_layout,
    check_number,
    check_size,
    host,
    is_tensor,
    shape_str,
    warn_off_map,
)

__all__ = ["joint_indices", "pad_keypoints", "render_heatmaps", "scale_keypoints"]

RenderMethod = Literal["reference", "exact"]


def _check_keypoints(keypoints: Any, name: str, layouts: list[str]) -> str:
    check_float_array(keypoints, name)
    layout = check_layout(keypoints, name, layouts)
    if keypoints.shape[-1] != 3:
        raise ValueError(
            f"{name} must have a last axis (x, y, v) of length 3, "
            f"got shape {shape_str(keypoints.shape)}"
        )
    return layout


def _check_labelled_finite(kp: np.ndarray, name: str) -> None:
    v = kp[..., 2]
    if not np.isfinite(v).all():
        raise ValueError(f"{name} contains NaN or infinite visibility values")
    lab = v > 0
    if not np.isfinite(kp[..., :2][lab]).all():
        raise ValueError(f"{name} contains NaN or infinite x, y in labelled joints (v > 0)")


def render_heatmaps(
    keypoints: Any,
    size: tuple[int, int],
    *,
    sigma: float | None = None,
    method: RenderMethod = "reference",
    center_shift: float = 0.5,
) -> Any:
    r"""Render Gaussian heatmap targets, one channel per joint type.

    Parameters
    ----------
    keypoints : ndarray or Tensor, shape (N, K, 3) or (B, N, K, 3)
        People as ``x, y, v`` in heatmap pixels; joints with ``v <= 0`` are
        skipped, and so are joints outside the map.
    size : tuple of int
        Output size ``(H, W)`` in pixels.
    sigma : float, optional
        Gaussian standard deviation in heatmap pixels. Default
        :func:`default_sigma`: the references' :math:`\sqrt{HW}/64`
        (pose-ae-train and HigherHRNet's ``output_res/64``, mmpose 1.x's
        :math:`\sqrt{WH}/64`; 1, 2, 4, 8 at 64, 128, 256, 512 px) rounded to a
        multiple of 1/3 and at least 2/3, so that every default target has a
        single-pixel peak the decoder detects (see Notes).
    method : {"reference", "exact"}, default "reference"
        ``"reference"``: pose-ae-train / HigherHRNet's ``HeatmapGenerator``.
        The joint snaps to the truncated pixel ``(int(x), int(y))`` (so the
        peak of a joint at ``x`` lies at pixel ``floor(x)``, whose centre is
        ``floor(x) + 0.5`` in the parsers' convention); a patch of side
        ``6σ+3`` of :math:`\exp(-((c-c_0)^2+(r-r_0)^2)/(2σ^2))` with
        :math:`c_0 = r_0 = 3σ+1` is placed with its corner at
        ``round(int(x) - 3σ - 1)`` (NumPy rounding, half to even); a joint is
        skipped unless ``0 <= int(x) < W`` and ``0 <= int(y) < H`` (``int``
        truncates towards zero, so ``x = -0.5`` counts, as in the
        references). With a σ that is not a multiple of 1/3 the patch centre
        falls between pixels and the top of the Gaussian is a flat 2×2 block
        (the references' behaviour; e.g. their σ = 0.5 of a 32×32 map, where
        :func:`default_sigma` gives 2/3):
        pass an integer σ for single-pixel peaks. ``"exact"``: the
        untruncated Gaussian
        :math:`\exp(-((j + c - x)^2 + (i + c - y)^2)/(2σ^2))` at every pixel
        (row i, column j), with ``c = center_shift``, for joints whose
        nearest pixel is on the map; a joint within 0.001 px of the boundary
        between two pixels (an integer coordinate with ``center_shift=0.5``)
        is moved 0.001 px into its nearest pixel (the one containing it), so
        that its peak is one pixel and not a tie of two or four.
    center_shift : float, default 0.5
        ``"exact"`` only: where the centre of pixel j lies, ``j + center_shift``.
        The default 0.5 is the library's convention (pixel j covers
        ``[j, j+1)``, as :func:`decode` reports and :func:`grouping_loss`
        reads); 0.0 makes integer coordinates pixel centres.

    Returns
    -------
    ndarray or Tensor, shape (K, H, W) or (B, K, H, W)
        float32 targets with peak value 1; overlapping people take the
        element-wise maximum. Same kind as ``keypoints`` (a tensor stays on
        its device).

    Raises
    ------
    TypeError
        If ``keypoints`` is not a floating array or ``size`` is not a pair of
        integers.
    ValueError
        If shapes or options are invalid, or labelled joints hold NaN/Inf.

    Notes
    -----
    The decoder's non-maximum suppression keeps every pixel of a plateau, as
    the references' does: a target whose top is a flat 2×2 block decodes as
    four people. The references' renderer makes such blocks whenever ``3σ``
    is not an integer (their default σ is 0.5 at 32 px, 1.5 at 96 px); the
    exact Gaussian makes them for joints on pixel boundaries; and a σ below
    about 0.6 px leaves a joint on a pixel corner with a peak below the
    detection threshold (``exp(-0.25/σ²)``: 0.018 at σ = 0.25, the references'
    default at 16 px). The defaults avoid all three, so rendered targets decode
    to exactly their people at every map size.

    Examples
    --------
    >>> import numpy as np
    >>> import associative_embedding as ae
    >>> person = np.zeros((1, 2, 3), np.float32)
    >>> person[0, 0] = (5.7, 3.2, 1)     # joint 0 labelled; joint 1 not (v = 0)
    >>> hm = ae.render_heatmaps(person, (8, 8), sigma=1.0)
    >>> hm.shape
    (2, 8, 8)
    >>> [int(i) for i in np.unravel_index(hm[0].argmax(), hm[0].shape)], float(hm[1].max())
    ([3, 5], 0.0)
    """
    layout = _check_keypoints(keypoints, "keypoints", ["NK3", "BNK3"])
    h, w = check_size(size)
    check_choice(method, "method", ("reference", "exact"))
    c = check_number(center_shift, "center_shift")
    s = (
        default_sigma(h, w)
        if sigma is None
        else check_number(sigma, "sigma", low=0.0, low_inclusive=False)
    )
    tensor = is_tensor(keypoints)
    kp = host(keypoints, np.float64)
    if layout == "NK3":
        kp = kp[None]
    _check_labelled_finite(kp, "keypoints")
    lab = kp[..., 2] > 0
    x, y = kp[..., 0], kp[..., 1]
    off = lab & ~((x >= 0) & (x < w) & (y >= 0) & (y < h))
    warn_off_map(int(lab.sum()), int(off.sum()), (h, w), "keypoints")
    out = _render(kp, h, w, s, method, c)
    if layout == "NK3":
        out = out[0]
    if tensor:
        import torch

        return torch.from_numpy(out).to(keypoints.device)
    return out


# how far inside its nearest pixel an exact target's centre is kept, in pixels: the two
# pixels beside it then differ by a factor exp(_TIE_GAP / sigma**2), distinct in float32
# for every sigma below 30 px
_TIE_GAP = 1e-3


def default_sigma(height: int, width: int) -> float:
    r"""Return the default Gaussian σ of :func:`render_heatmaps` for an ``H x W`` map.

    The references' :math:`\sqrt{HW}/64` rounded to the nearest multiple of 1/3
    (half to even) and at least 2/3: with ``3σ`` an integer the references' patch
    is centred on a pixel (peak 1 on one pixel), and σ >= 2/3 keeps the peak of an
    exact target on a pixel corner at ``exp(-0.25/σ²) >= 0.57``.

    Parameters
    ----------
    height, width : int
        Map size in heatmap pixels (>= 1).

    Returns
    -------
    float
        σ in heatmap pixels.

    Raises
    ------
    ValueError
        If a size is below 1.

    Examples
    --------
    >>> from associative_embedding import default_sigma
    >>> [round(default_sigma(s, s), 4) for s in (16, 32, 64, 96, 128, 512)]
    [0.6667, 0.6667, 1.0, 1.3333, 2.0, 8.0]
    """
    h = check_int(height, "height", low=1)
    w = check_int(width, "width", low=1)
    return max(round(3.0 * math.sqrt(h * w) / 64.0) / 3.0, 2.0 / 3.0)


# float32 rounds exp(-t) to 0 for t > 103.97 (half the smallest subnormal, e^-103.28):
# pixels farther than this many sigmas from a joint add nothing to its map
_EXP_ZERO = 104.0


def _render(
    kp: np.ndarray, h: int, w: int, sigma: float, method: str, center_shift: float
) -> np.ndarray:
    """Render (B, N, K, 3) float64 keypoints into (B, K, H, W) float32 maps."""
    b, n, k, _ = kp.shape
    out = np.zeros((b, k, h, w), np.float32)
    if b * n * k == 0:
        return out
    lab = kp[..., 2] > 0
    x = np.where(lab, kp[..., 0], 0.0)
    y = np.where(lab, kp[..., 1], 0.0)
    if method == "reference":
        xi, yi = np.trunc(x), np.trunc(y)
        valid = lab & (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        patch = len(np.arange(0, 6 * sigma + 3, 1, dtype=np.float64))
        # the patch's corner (NumPy rounding, half to even) and its exclusive far corner
        ox, oy = np.round(xi - 3 * sigma - 1), np.round(yi - 3 * sigma - 1)
        br_x, br_y = np.round(xi + 3 * sigma + 2), np.round(yi + 3 * sigma + 2)
        c0, r0 = np.maximum(ox, 0), np.maximum(oy, 0)
        c1 = np.minimum(np.minimum(br_x, ox + patch), w)
        r1 = np.minimum(np.minimum(br_y, oy + patch), h)
        centre = 3 * sigma + 1
    else:
        # nearest pixel of (x, y) when pixel j's centre is j + center_shift
        near_x = np.floor(x - center_shift + 0.5)
        near_y = np.floor(y - center_shift + 0.5)
        valid = lab & (near_x >= 0) & (near_x < w) & (near_y >= 0) & (near_y < h)
        # keep each joint _TIE_GAP inside its nearest pixel: a single-pixel peak
        lo_x, lo_y = (
            near_x + (center_shift - 0.5 + _TIE_GAP),
            near_y + (center_shift - 0.5 + _TIE_GAP),
        )
        ox = np.clip(x, lo_x, lo_x + (1.0 - 2 * _TIE_GAP))
        oy = np.clip(y, lo_y, lo_y + (1.0 - 2 * _TIE_GAP))
        reach = sigma * math.sqrt(2.0 * _EXP_ZERO) + 1.0  # in pixels, with a pixel to spare
        c0 = np.maximum(np.floor(x - center_shift - reach), 0)
        r0 = np.maximum(np.floor(y - center_shift - reach), 0)
        c1 = np.minimum(np.ceil(x - center_shift + reach) + 1, w)
        r1 = np.minimum(np.ceil(y - center_shift + reach) + 1, h)
        centre = 0.0
    windows = np.stack([r0, r1, c0, c1], -1)
    windows = np.where(valid[..., None], windows, 0).astype(np.int64)
    origins = np.ascontiguousarray(np.stack([oy, ox], -1), dtype=np.float64)
    _splat(
        np.ascontiguousarray(windows),
        origins,
        float(centre),
        float(center_shift),
        method == "exact",
        2.0 * sigma**2,
        out,
    )
    return out


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _splat(windows, origins, centre, shift, exact, denom, out):  # pragma: no cover
    """Max each joint's Gaussian into ``out`` (B, K, H, W) over its window.

    ``windows`` (B, N, K, 4) int64: rows [r0, r1), columns [c0, c1) (empty when the
    joint is skipped); ``origins`` (B, N, K, 2) float64 ``(oy, ox)``.
    ``"reference"`` (``exact`` False): ``(oy, ox)`` is the references' patch corner
    and the value ``exp(-(((c - ox) - centre)^2 + ((r - oy) - centre)^2) / denom)``,
    operation for operation as ``HeatmapGenerator`` computes its patch. ``"exact"``:
    ``(oy, ox)`` is the joint ``(y, x)`` and the value the product of the Gaussian's
    separable factors ``exp(-((r + shift) - y)^2 * inv) * exp(-((c + shift) - x)^2 * inv)``
    with ``inv = 1 / denom`` (float64). Each value is rounded to float32 once; pixels
    outside a window would round to 0.
    """
    nb, nn, nk, _ = windows.shape
    ex = np.empty(out.shape[3], np.float64)
    for bi in range(nb):
        for p in range(nn):
            for k in range(nk):
                window = windows[bi, p, k]
                origin = (origins[bi, p, k, 0], origins[bi, p, k, 1])
                if exact:
                    _splat_exact(window, origin, shift, 1.0 / denom, ex, out[bi, k])
                else:
                    _splat_reference(window, origin, centre, denom, out[bi, k])


@njit(cache=True, nogil=True, no_cfunc_wrapper=True, no_cpython_wrapper=True)
def _splat_exact(window, origin, shift, inv, ex, plane):  # pragma: no cover
    """Max the separable Gaussian of joint ``origin = (y, x)`` into ``plane`` (``"exact"``)."""
    r0, r1, c0, c1 = window[0], window[1], window[2], window[3]
    oy, ox = origin
    for c in range(c0, c1):
        dx = (c + shift) - ox
        ex[c] = np.exp(-(dx * dx) * inv)
    for r in range(r0, r1):
        dy = (r + shift) - oy
        ey = np.exp(-(dy * dy) * inv)
        for c in range(c0, c1):
            v = np.float32(ey * ex[c])
            if v > plane[r, c]:
                plane[r, c] = v


@njit(cache=True, nogil=True, no_cfunc_wrapper=True, no_cpython_wrapper=True)
def _splat_reference(window, origin, centre, denom, plane):  # pragma: no cover
    """Max the references' patch with corner ``origin = (oy, ox)`` into ``plane``."""
    r0, r1, c0, c1 = window[0], window[1], window[2], window[3]
    oy, ox = origin
    for r in range(r0, r1):
        dy = (r - oy) - centre
        dy2 = dy * dy
        for c in range(c0, c1):
            dx = (c - ox) - centre
            v = np.float32(np.exp(-(dx * dx + dy2) / denom))
            if v > plane[r, c]:
                plane[r, c] = v


def pad_keypoints(
    people: Sequence[Any],
    *,
    max_people: int | None = None,
    num_joints: int | None = None,
) -> Any:
    """Stack ragged per-image annotations into one padded keypoint tensor.

    Parameters
    ----------
    people : sequence of ndarray or Tensor, each of shape (N_i, K, 3)
        One array of people per image (``x, y, v``); ``N_i`` may be 0.
    max_people : int, optional
        Pad every image to exactly this many people (fixed shapes for
        ``torch.compile`` or DDP). Default: the largest ``N_i``.
    num_joints : int, optional
        K, needed only when ``people`` is empty or every array is empty
        and shape-less; otherwise checked against the arrays.

    Returns
    -------
    ndarray or Tensor, shape (B, N, K, 3)
        float32, zero-padded (padding people have ``v = 0`` everywhere, which
        the losses ignore). A tensor (on the first tensor's device) if any
        input is a tensor, else a numpy array.

    Raises
    ------
    TypeError
        If an element is not a floating array/tensor.
    ValueError
        If K differs between images, an image has more than ``max_people``
        people, or K cannot be determined.

    Examples
    --------
    >>> import numpy as np
    >>> import associative_embedding as ae
    >>> batch = ae.pad_keypoints([np.ones((2, 17, 3)), np.ones((0, 17, 3))])
    >>> batch.shape, float(batch[1, :, :, 2].sum())
    ((2, 2, 17, 3), 0.0)
    """
    if isinstance(people, (str, bytes)) or not isinstance(people, Sequence):
        raise TypeError(
            f"people must be a sequence of (N_i, K, 3) arrays, got {type(people).__name__}"
        )
    arrays = []
    device = None
    for i, p in enumerate(people):
        name = f"people[{i}]"
        _check_keypoints(p, name, ["NK3"])
        if is_tensor(p):
            device = p.device if device is None else device
        arrays.append(host(p, np.float32))
    ks = {a.shape[1] for a in arrays}
    if num_joints is not None:
        ks.add(check_int(num_joints, "num_joints", low=1))
    if len(ks) > 1:
        shapes = ", ".join(shape_str(a.shape) for a in arrays)
        raise ValueError(
            f"people must all have the same K (num_joints={num_joints}), got shapes {shapes}"
        )
    if not ks:
        raise ValueError("people is empty: pass num_joints to build a (0, N, K, 3) batch")
    k = ks.pop()
    counts = [a.shape[0] for a in arrays]
    n = max(counts, default=0)
    if max_people is not None:
        cap = check_int(max_people, "max_people", low=0)
        for i, c in enumerate(counts):
            if c > cap:
                raise ValueError(
                    f"people[{i}] has {c} people, more than max_people={cap}; "
                    "raise max_people or drop people"
                )
        n = cap
    out = np.zeros((len(arrays), n, k, 3), np.float32)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = a
    if device is not None:
        import torch

        return torch.from_numpy(out).to(device)
    return out


def scale_keypoints(
    keypoints: Any,
    from_size: tuple[int, int],
    to_size: tuple[int, int],
    *,
    center_shift: float = 0.5,
    pixel_center: float | None = None,
) -> Any:
    """Map keypoints between two resolutions of the same view, e.g. image to heatmap.

    Parameters
    ----------
    keypoints : ndarray or Tensor, shape (..., 3)
        ``x, y, v``; only ``x`` and ``y`` change (NaN stays NaN).
    from_size, to_size : tuple of int
        ``(H, W)`` of the source and destination grids in pixels.
    center_shift : float, default 0.5
        Where the centre of pixel ``j`` sits in ``keypoints``' convention,
        ``j + center_shift``, as in :class:`DecodeConfig` and
        :func:`render_heatmaps`. With 0.5 (continuous coordinates whose origin
        is the top-left corner of the first pixel, as the references' affine
        warps produce and :func:`decode` reports), ``x' = x · W_to / W_from``.
        With 0.0 integers name pixel centres and ``x' = (x + 0.5) · W_to /
        W_from - 0.5``. Likewise for ``y`` with H.
    pixel_center : float, optional
        Deprecated (it meant the opposite: ``pixel_center = 0.5 -
        center_shift``); use ``center_shift``. Still accepted, with a
        :class:`DeprecationWarning`, until the next release.

    Returns
    -------
    ndarray or Tensor, shape (..., 3)
        Same kind, dtype and device as ``keypoints``.

    Raises
    ------
    TypeError
        If ``keypoints`` is not a floating array or a size is not a pair of ints.
    ValueError
        If the last axis is not 3.

    Examples
    --------
    >>> import numpy as np
    >>> import associative_embedding as ae
    >>> kp = np.array([[[256.0, 128.0, 1.0]]])      # image pixels, 512x512 image
    >>> ae.scale_keypoints(kp, (512, 512), (128, 128)).tolist()
    [[[64.0, 32.0, 1.0]]]
    """
    check_float_array(keypoints, "keypoints")
    if keypoints.ndim < 1 or keypoints.shape[-1] != 3:
        raise ValueError(
            "keypoints must have a last axis (x, y, v) of length 3, "
            f"got shape {shape_str(keypoints.shape)}"
        )
    fh, fw = check_size(from_size, "from_size")
    th, tw = check_size(to_size, "to_size")
    shift = check_number(center_shift, "center_shift")
    if pixel_center is not None:
        if shift != 0.5:
            raise TypeError("pass center_shift only; pixel_center is its deprecated opposite")
        warnings.warn(
            "scale_keypoints(pixel_center=c) is deprecated: use center_shift=0.5 - c "
            "(the convention decode and render_heatmaps name center_shift)",
            DeprecationWarning,
            stacklevel=2,
        )
        shift = 0.5 - check_number(pixel_center, "pixel_center")
    c = 0.5 - shift
    out = keypoints.clone() if is_tensor(keypoints) else keypoints.copy()
    out[..., 0] = (keypoints[..., 0] + c) * (tw / fw) - c
    out[..., 1] = (keypoints[..., 1] + c) * (th / fh) - c
    return out


def joint_indices(
    keypoints: Any,
    size: tuple[int, int],
    *,
    max_people: int = 30,
    tag_per_joint: bool = True,
) -> np.ndarray:
    """Packed joint-index array of pose-ae-train and HigherHRNet (``JointsGenerator``).

    Our losses take padded ``(B, N, K, 3)`` keypoints directly; this array is
    for code that consumes the references' format.

    Parameters
    ----------
    keypoints : ndarray or Tensor, shape (N, K, 3) or (B, N, K, 3)
        People in heatmap pixels.
    size : tuple of int
        ``(H, W)`` of the tag map.
    max_people : int, default 30
        Number of person slots (the references' ``MAX_NUM_PEOPLE``).
    tag_per_joint : bool, default True
        Flat index into the (K, H, W) tag volume, ``k·H·W + y·W + x``
        (``TAG_PER_JOINT``); if False, into one (H, W) map, ``y·W + x``.

    Returns
    -------
    ndarray, shape (max_people, K, 2) or (B, max_people, K, 2)
        int64 ``(index, 1)`` rows. For person slot n the labelled joints
        inside the map (``int`` truncation, as the references) are *packed*
        into rows 0, 1, ... in joint order; the rest are ``(0, 0)``.

    Raises
    ------
    TypeError
        If ``keypoints`` is not a floating array.
    ValueError
        If an image has more than ``max_people`` people (the references fail
        with an IndexError there), or inputs are malformed.

    Examples
    --------
    >>> import numpy as np
    >>> import associative_embedding as ae
    >>> kp = np.array([[[1.0, 2.0, 0.0], [3.0, 1.0, 1.0]]])   # (N=1, K=2, 3)
    >>> ae.joint_indices(kp, (4, 4), max_people=2).tolist()
    [[[23, 1], [0, 0]], [[0, 0], [0, 0]]]
    """
    layout = _check_keypoints(keypoints, "keypoints", ["NK3", "BNK3"])
    h, w = check_size(size)
    cap = check_int(max_people, "max_people", low=0)
    if not isinstance(tag_per_joint, (bool, np.bool_)):
        raise TypeError(f"tag_per_joint must be a bool, got {type(tag_per_joint).__name__}")
    kp = host(keypoints, np.float64)
    if layout == "NK3":
        kp = kp[None]
    _check_labelled_finite(kp, "keypoints")
    b, n, k, _ = kp.shape
    lab = kp[..., 2] > 0
    if n > cap and lab[:, cap:].any():
        img = int(np.nonzero(lab[:, cap:].any((1, 2)))[0][0])
        raise ValueError(
            f"keypoints image {img} has labelled people beyond max_people={cap} slots; "
            "raise max_people"
        )
    xi = np.trunc(np.where(lab, kp[..., 0], -1)).astype(np.int64)
    yi = np.trunc(np.where(lab, kp[..., 1], -1)).astype(np.int64)
    ok = lab & (xi >= 0) & (yi >= 0) & (xi < w) & (yi < h)
    flat = yi * w + xi
    if tag_per_joint:
        flat = flat + np.arange(k, dtype=np.int64) * (h * w)
    out = np.zeros((b, cap, k, 2), np.int64)
    # packed position of each valid joint within its person: running count along K
    slot = np.cumsum(ok, axis=-1) - 1
    bi, ni, ki = np.nonzero(ok[:, :cap])
    out[bi, ni, slot[bi, ni, ki], 0] = flat[bi, ni, ki]
    out[bi, ni, slot[bi, ni, ki], 1] = 1
    return out[0] if layout == "NK3" else out
