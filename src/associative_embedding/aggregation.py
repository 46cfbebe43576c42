"""Test-time aggregation of heatmaps and tag maps over scales and horizontal flips.

At test time the reference implementations run the network on an image at
several scales and on its mirror image, then merge the outputs before parsing
(Newell et al. 2017, §4; HigherHRNet ``lib/core/inference.py``; mmpose 0.x
``core/evaluation/bottom_up_eval.py``): heatmaps are resized to one size and
averaged, tag maps are resized and concatenated along the tag dimension D, so
that each joint carries one tag vector made of all its views.

:func:`flip_maps` undoes the mirror on the outputs of a flipped image and
:func:`aggregate` does the merging.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ._validation import (
    check_finite,
    check_float_array,
    check_int,
    check_layout,
    check_size,
    is_tensor,
    shape_str,
    to_torch,
)

__all__ = ["aggregate", "flip_maps"]

_LAYOUTS = ("BKHW", "BKDHW")


def _check_flip_index(flip_index: Any, k: int, name: str = "flip_index") -> list[int]:
    """Validate a flip index against K joint types; return it as a list of ints."""
    if isinstance(flip_index, np.ndarray) or is_tensor(flip_index):
        if flip_index.ndim != 1:
            raise ValueError(
                f"{name} must be one-dimensional (K,), got shape {shape_str(flip_index.shape)}"
            )
        if is_tensor(flip_index):
            if flip_index.is_floating_point() or flip_index.is_complex():
                raise TypeError(f"{name} must hold integers, got dtype {flip_index.dtype}")
        elif flip_index.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integers, got dtype {flip_index.dtype}")
        flip_index = flip_index.tolist()
    if isinstance(flip_index, str) or not isinstance(flip_index, Sequence):
        raise TypeError(
            f"{name} must be a sequence of K ints (e.g. COCO_KEYPOINTS.flip_index), "
            f"got {type(flip_index).__name__}"
        )
    index = [check_int(v, f"{name}[{i}]") for i, v in enumerate(flip_index)]
    if len(index) != k:
        raise ValueError(f"{name} must have length K={k} (the maps' axis 1), got {len(index)}")
    if sorted(index) != list(range(k)):
        raise ValueError(f"{name} must be a permutation of range(K) with K={k}, got {index}")
    return index


def _check_maps(x: Any, name: str) -> str:
    """Check a float map of layout (B, K, H, W) or (B, K, D, H, W); return the layout."""
    check_float_array(x, name)
    layout = check_layout(x, name, _LAYOUTS)
    if x.shape[1] == 0:
        raise ValueError(
            f"{name} must have at least one joint type (K >= 1), got shape {shape_str(x.shape)}"
        )
    check_finite(x, name)
    return layout


def _check_heatmaps(x: Any, name: str) -> None:
    check_float_array(x, name)
    check_layout(x, name, ("BKHW",))
    _check_maps(x, name)


def _flip(maps: Any, index: list[int], shift: bool) -> Any:
    """Mirror along W and permute K (validated inputs)."""
    if is_tensor(maps):
        out = maps.index_select(1, torch.as_tensor(index, device=maps.device)).flip(-1)
        if shift and out.shape[-1] > 1:
            out = torch.cat((out[..., :1], out[..., :-1]), dim=-1)
        return out
    out = np.ascontiguousarray(maps[:, index, ..., ::-1])
    if shift and out.shape[-1] > 1:
        out[..., 1:] = out[..., :-1].copy()
    return out


def flip_maps(maps: Any, flip_index: Sequence[int], *, shift: bool = False) -> Any:
    """Undo a horizontal flip on heatmaps or tag maps.

    A network run on a mirrored image sees every left joint as a right one and
    vice versa. This mirrors its output maps back along the width axis W and
    permutes the joint axis K with ``flip_index``, so that the result lines up,
    joint for joint and pixel for pixel, with the output on the original image.

    Parameters
    ----------
    maps : ndarray or Tensor, shape (B, K, H, W) or (B, K, D, H, W)
        Float maps computed on horizontally flipped images.
    flip_index : sequence of int, length K
        ``flip_index[k]`` is the joint that joint ``k`` becomes in a mirrored
        image, e.g. ``COCO_KEYPOINTS.flip_index``; a permutation of
        ``range(K)``. Output joint ``k`` is taken from input channel
        ``flip_index[k]``.
    shift : bool, default False
        If True, move the result one pixel to the right after mirroring
        (column ``x`` takes column ``x - 1``; column 0 keeps its value), as
        mmpose's ``shift_heatmap`` option for top-down models does. The
        bottom-up references (HigherHRNet, mmpose) do not shift.

    Returns
    -------
    ndarray or Tensor
        Same type, dtype, device and shape as ``maps``; a new array
        (C-contiguous for numpy), never a view of ``maps``. Gradients flow
        through for tensors.

    Raises
    ------
    TypeError
        If ``maps`` is not a float ndarray or Tensor, or ``flip_index`` is not
        a sequence of integers.
    ValueError
        If ``maps`` has another number of dimensions, K = 0, or NaN or
        infinite values, or if ``flip_index`` is not a permutation of
        ``range(K)``.

    Notes
    -----
    ``flip_maps(flip_maps(m, f), f)`` equals ``m`` for an involutive flip
    index (``f[f[k]] == k``, true of every left/right swap); without ``shift``
    the result is ``maps[:, flip_index, ..., ::-1]``.

    Mirroring lines the maps up only if the network samples the mirrored image
    on the mirrored grid. A stride-2 convolution with an odd kernel and
    symmetric padding (the 7×7 stem of the stacked hourglass, HigherHRNet's
    3×3 stem) centres output pixel ``j`` on input pixel ``2j``, so the grids of
    the two passes differ by one input pixel per such layer (times the stride
    before it); a trained network then places the joints of the mirrored pass
    that far off. ``shift`` moves whole map pixels; shifting the mirrored
    *input* by the offset instead is exact at any stride (see
    ``examples/hourglass/evaluate.py``, ``mirror``: +0.026 AP there).

    Examples
    --------
    >>> import numpy as np
    >>> import associative_embedding as ae
    >>> maps = np.arange(12, dtype=np.float32).reshape(1, 2, 2, 3)
    >>> ae.flip_maps(maps, [1, 0])[0, 0].tolist()
    [[8.0, 7.0, 6.0], [11.0, 10.0, 9.0]]
    """
    _check_maps(maps, "maps")
    if not isinstance(shift, bool):
        raise TypeError(f"shift must be a bool, got {type(shift).__name__}")
    index = _check_flip_index(flip_index, int(maps.shape[1]))
    return _flip(maps, index, shift)


def _as_pair(entry: Any, name: str) -> tuple[Any, Any]:
    if isinstance(entry, np.ndarray) or is_tensor(entry):
        raise TypeError(
            f"{name} must be a (heatmaps, tags) pair, got a single "
            f"{type(entry).__name__}; wrap one scale in a list: [(heatmaps, tags)]"
        )
    if isinstance(entry, str) or not isinstance(entry, Sequence) or len(entry) != 2:
        raise TypeError(f"{name} must be a (heatmaps, tags) pair, got {type(entry).__name__}")
    return entry[0], entry[1]


def _check_tag_scales(tag_scales: Any, n_scales: int) -> list[int]:
    if isinstance(tag_scales, str):
        if tag_scales != "all":
            raise ValueError(f"tag_scales must be 'all' or a sequence of ints, got {tag_scales!r}")
        return list(range(n_scales))
    if not isinstance(tag_scales, Sequence):
        raise TypeError(
            f"tag_scales must be 'all' or a sequence of ints, got {type(tag_scales).__name__}"
        )
    scales = [
        check_int(s, f"tag_scales[{i}]", low=0, high=n_scales - 1) for i, s in enumerate(tag_scales)
    ]
    if not scales:
        raise ValueError("tag_scales must name at least one scale, got an empty sequence")
    if len(set(scales)) != len(scales):
        raise ValueError(f"tag_scales must not repeat a scale, got {tuple(scales)}")
    return scales


def _resize(x: torch.Tensor, size: tuple[int, int], align_corners: bool) -> torch.Tensor:
    """Bilinearly resize (B, K, D, h, w) to (B, K, D, H, W) as torch's interpolate does."""
    b, k, d, h, w = x.shape
    if (h, w) == size:  # interpolate is the identity here; skip the work
        return x
    out = F.interpolate(
        x.reshape(b, k * d, h, w), size=size, mode="bilinear", align_corners=align_corners
    )
    return out.reshape(b, k, d, *size)


def aggregate(
    outputs: Sequence[tuple[Any, Any]],
    size: tuple[int, int] | None = None,
    *,
    flipped: Sequence[tuple[Any, Any]] | None = None,
    flip_index: Sequence[int] | None = None,
    tag_scales: Sequence[int] | str = (0,),
    align_corners: bool = False,
) -> tuple[Any, Any]:
    """Merge heatmaps and tag maps from several scales and optional flips.

    For each scale ``s`` the heatmaps are resized to ``size``; with flip test
    the un-flipped outputs of the mirrored image (see :func:`flip_maps`) are
    resized too and the two are averaged. The per-scale results are summed in
    the order given and divided by the number of scales. The tag maps of the
    scales in ``tag_scales`` are resized to ``size`` and concatenated along the
    tag dimension D, in the order ``[tag_scales[0] original, tag_scales[0]
    flipped, tag_scales[1] original, ...]``.

    Parameters
    ----------
    outputs : sequence of (heatmaps, tags) pairs, one per scale
        ``heatmaps``: float ndarray or Tensor, shape (B, K, h_s, w_s), in the
        heatmap pixels of scale ``s``. ``tags``: shape (B, K, h_s, w_s)
        (1-D tags) or (B, K, D_s, h_s, w_s), or None for a scale that is not
        in ``tag_scales``. B and K must agree across scales.
    size : (int, int) or None, default None
        Output size (H, W) in pixels. None means the size of the first
        scale's heatmaps. HigherHRNet and mmpose (``project2image``) resize to
        the network input size at scale 1, i.e. 4× the stride-4 maps.
    flipped : sequence of (heatmaps, tags) pairs or None, default None
        Outputs of the network on horizontally mirrored images, parallel to
        ``outputs`` (same length and shapes), as the network returned them:
        they are un-flipped here with :func:`flip_maps`. A ``tags`` entry may
        be None where the ``outputs`` entry is None.
    flip_index : sequence of int or None, default None
        Length K, e.g. ``COCO_KEYPOINTS.flip_index``; required with
        ``flipped``, ignored without it.
    tag_scales : sequence of int or 'all', default (0,)
        Indices into ``outputs`` of the scales whose tags are kept. The
        references keep the tags of scale 1 only; pass that scale's index.
    align_corners : bool, default False
        ``align_corners`` of :func:`torch.nn.functional.interpolate` (bilinear);
        False as in HigherHRNet and mmpose.

    Returns
    -------
    heatmaps : ndarray or Tensor, shape (B, K, H, W)
        Averaged heatmaps.
    tags : ndarray or Tensor, shape (B, K, D_total, H, W)
        Concatenated tags, always 5-D; D_total is the sum of D over the kept
        scales, doubled with flip (e.g. 2 for 1-D tags, one scale, flip).

    Raises
    ------
    TypeError
        If an argument has the wrong kind: ``outputs`` entries that are not
        pairs, non-float maps, numpy and torch mixed, a non-integer
        ``flip_index`` or ``size``.
    ValueError
        If shapes disagree (rank, B or K across scales, tags vs heatmaps
        spatial size, ``flipped`` vs ``outputs``), maps hold NaN or infinity,
        tensors sit on different devices, ``flipped`` is given without
        ``flip_index``, ``flip_index`` is not a permutation of ``range(K)``,
        ``size`` is not positive, or ``tag_scales`` is empty, repeats a scale,
        is out of range or selects a scale whose tags are None.

    Notes
    -----
    Types: numpy in, numpy out; torch in, torch out on the same device (all
    inputs must be of one kind and, for tensors, on one device). The
    computation uses :func:`torch.nn.functional.interpolate`; inputs of mixed
    float dtypes are promoted to a common dtype, never lowered. Gradients flow
    through for tensors. The outputs never share memory with the inputs.

    The order of operations follows HigherHRNet and mmpose 0.x with
    ``project2image`` so that the sums round the same way: flip back at the
    network's resolution, resize each map, ``(original + flipped) / 2``, sum
    over scales in the order given (the references go from the largest scale
    down), divide by the number of scales. pose-ae-train instead sums all
    views, divides by twice the number of scales, clips to 1 and resizes with
    OpenCV; that variant is not reproduced here.

    Examples
    --------
    >>> import numpy as np
    >>> import associative_embedding as ae
    >>> rng = np.random.default_rng(0)
    >>> hm = rng.random((1, 17, 32, 32), dtype=np.float32)
    >>> tag = rng.random((1, 17, 32, 32), dtype=np.float32)
    >>> flip = (ae.flip_maps(hm, ae.COCO_KEYPOINTS.flip_index),
    ...         ae.flip_maps(tag, ae.COCO_KEYPOINTS.flip_index))
    >>> heatmaps, tags = ae.aggregate([(hm, tag)], size=(64, 64), flipped=[flip],
    ...                               flip_index=ae.COCO_KEYPOINTS.flip_index)
    >>> heatmaps.shape, tags.shape
    ((1, 17, 64, 64), (1, 17, 2, 64, 64))
    """
    if isinstance(outputs, str) or not isinstance(outputs, Sequence):
        raise TypeError(
            f"outputs must be a sequence of (heatmaps, tags) pairs, got {type(outputs).__name__}"
        )
    if len(outputs) == 0:
        raise ValueError("outputs must hold at least one (heatmaps, tags) pair, got none")
    n_scales = len(outputs)
    pairs = [_as_pair(entry, f"outputs[{s}]") for s, entry in enumerate(outputs)]
    flip_pairs = None
    if flipped is not None:
        if isinstance(flipped, str) or not isinstance(flipped, Sequence):
            raise TypeError(
                "flipped must be None or a sequence of (heatmaps, tags) pairs, "
                f"got {type(flipped).__name__}"
            )
        if len(flipped) != n_scales:
            raise ValueError(
                f"flipped must have one pair per scale of outputs ({n_scales}), got {len(flipped)}"
            )
        flip_pairs = [_as_pair(entry, f"flipped[{s}]") for s, entry in enumerate(flipped)]
        if flip_index is None:
            raise ValueError("flip_index is required with flipped, e.g. COCO_KEYPOINTS.flip_index")
    if not isinstance(align_corners, bool):
        raise TypeError(f"align_corners must be a bool, got {type(align_corners).__name__}")
    scales = _check_tag_scales(tag_scales, n_scales)

    # every map: kind, dtype, layout, B and K, finiteness, tags vs heatmaps, flipped vs original
    first = pairs[0][0]
    _check_heatmaps(first, "outputs[0][0] (heatmaps)")
    b, k = int(first.shape[0]), int(first.shape[1])
    named: list[tuple[str, Any]] = []
    for s in range(n_scales):
        views = [("outputs", pairs[s])]
        if flip_pairs is not None:
            views.append(("flipped", flip_pairs[s]))
        hm0 = pairs[s][0]
        for arg, (hm, tag) in views:
            name = f"{arg}[{s}][0] (heatmaps)"
            _check_heatmaps(hm, name)
            if (int(hm.shape[0]), int(hm.shape[1])) != (b, k):
                raise ValueError(
                    f"{name} must have B={b} and K={k} as outputs[0][0], got shape "
                    f"{shape_str(hm.shape)}"
                )
            if tuple(hm.shape) != tuple(hm0.shape):
                raise ValueError(
                    f"{name} must have the shape of outputs[{s}][0], {shape_str(hm0.shape)}, "
                    f"got {shape_str(hm.shape)}"
                )
            named.append((name, hm))
            tname = f"{arg}[{s}][1] (tags)"
            if tag is None:
                if s in scales:
                    raise ValueError(
                        f"{tname} is None but scale {s} is in tag_scales={tuple(scales)}"
                    )
                continue
            _check_maps(tag, tname)
            if tuple(tag.shape[:2]) != (b, k) or tuple(tag.shape[-2:]) != tuple(hm.shape[-2:]):
                raise ValueError(
                    f"{tname} must have shape (B, K, h, w) or (B, K, D, h, w) with "
                    f"(B, K, h, w) = {shape_str((b, k, *hm.shape[-2:]))} as its heatmaps, "
                    f"got {shape_str(tag.shape)}"
                )
            tag0 = pairs[s][1]
            if tag0 is not None and tuple(tag.shape) != tuple(tag0.shape):
                raise ValueError(
                    f"{tname} must have the shape of outputs[{s}][1], {shape_str(tag0.shape)}, "
                    f"got {shape_str(tag.shape)}"
                )
            named.append((tname, tag))
    index = _check_flip_index(flip_index, k) if flip_pairs is not None else None

    use_torch = is_tensor(named[0][1])
    device = named[0][1].device if use_torch else None
    for name, x in named:
        if is_tensor(x) != use_torch:
            raise TypeError(
                f"{name} is a {type(x).__name__} but {named[0][0]} is a "
                f"{type(named[0][1]).__name__}; pass all maps as numpy arrays or all as tensors"
            )
        if use_torch and x.device != device:
            raise ValueError(f"{name} is on {x.device} but {named[0][0]} is on {device}")
    out_size = (int(pairs[0][0].shape[-2]), int(pairs[0][0].shape[-1]))
    if size is not None:
        out_size = check_size(size)

    heatmaps, tags = _merge(
        pairs, flip_pairs, index, scales, out_size, align_corners, convert=to_torch
    )
    if use_torch:
        return heatmaps, tags
    return heatmaps.numpy(), tags.numpy()


def _merge(
    pairs: Sequence[tuple[Any, Any]],
    flip_pairs: Sequence[tuple[Any, Any]] | None,
    index: list[int] | None,
    tag_scales: Sequence[int],
    size: tuple[Any, Any],
    align_corners: bool,
    convert: Any = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Average the heatmaps and stack the tags of validated maps (the core of aggregate).

    No checks and no data-dependent branches, so that a traced or exported
    module (:class:`~associative_embedding.MultiScaleFlip`) can run it: ``pairs``
    and ``flip_pairs`` hold tensors (or arrays with ``convert``), ``index`` is the
    validated flip index (None without ``flip_pairs``), ``size`` the output
    (H, W), plain or symbolic ints.
    """
    maps = [x for pair in [*pairs, *(flip_pairs or ())] for x in pair if x is not None]
    tensors = {id(x): (convert(x) if convert is not None else x) for x in maps}
    dtype = tensors[id(maps[0])].dtype
    for t in tensors.values():
        dtype = torch.promote_types(dtype, t.dtype)

    def prepare(x: Any, unflip: bool) -> torch.Tensor:
        t = tensors[id(x)].to(dtype)
        if t.ndim == 4:
            t = t.unsqueeze(2)
        if unflip:
            t = _flip(t, index, False)
        return _resize(t, size, align_corners)

    heat_sum = None
    tag_list = []
    for s, (hm, _) in enumerate(pairs):
        avg = prepare(hm, False)
        if flip_pairs is not None:
            avg = (avg + prepare(flip_pairs[s][0], True)) / 2.0
        heat_sum = avg if heat_sum is None else heat_sum + avg
    for s in tag_scales:
        tag_list.append(prepare(pairs[s][1], False))
        if flip_pairs is not None:
            tag_list.append(prepare(flip_pairs[s][1], True))
    heatmaps = (heat_sum / float(len(pairs))).squeeze(2)
    tags = torch.cat(tag_list, dim=2)
    return heatmaps, tags
