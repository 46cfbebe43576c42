"""A test-time model: a network run at several scales and mirrored, merged in one graph.

:class:`MultiScaleFlip` wraps a network in a :class:`torch.nn.Module` that does
what HigherHRNet's ``tools/valid.py`` and ``lib/core/inference.py`` (and
mmpose 0.x ``bottom_up_eval.py``) do around the network at test time: resize
the input to each scale, run the network on it and on its mirror image, split
its output into heatmaps and tags, and merge them with the same code as
:func:`~associative_embedding.aggregate`. The module has no data-dependent
branch, so :func:`torch.onnx.export` exports the whole test-time pipeline with a
dynamic batch size and image size; the numba decoder
(:func:`~associative_embedding.decode`) stays outside the graph.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._validation import check_int, check_size
from .aggregation import _check_flip_index, _merge

__all__ = ["MultiScaleFlip"]


def _check_scales(scales: Any) -> tuple[float, ...]:
    if isinstance(scales, str) or not isinstance(scales, Sequence):
        raise TypeError(
            f"scales must be a sequence of positive numbers, got {type(scales).__name__}"
        )
    if len(scales) == 0:
        raise ValueError("scales must hold at least one scale, got an empty sequence")
    out = []
    for i, s in enumerate(scales):
        if isinstance(s, bool) or not isinstance(s, numbers.Real):
            raise TypeError(f"scales[{i}] must be a number, got {type(s).__name__}")
        if not math.isfinite(float(s)) or float(s) <= 0:
            raise ValueError(f"scales[{i}] must be positive and finite, got {s}")
        out.append(float(s))
    if len(set(out)) != len(out):
        raise ValueError(f"scales must not repeat a scale, got {tuple(out)}")
    return tuple(out)


def _scaled_side(side: Any, scale: float, multiple: int) -> Any:
    """``max(multiple, ceil(side * scale / multiple) * multiple)`` for plain or symbolic ints."""
    n = math.ceil(side * scale / multiple)
    return torch.sym_max(n, 1) * multiple


class MultiScaleFlip(nn.Module):
    """Run a network at several scales and on the mirrored image; merge as ``aggregate``.

    For each scale ``s`` the input images are resized (bilinearly, in the
    graph) to ``max(m, ceil(s * H / m) * m)`` by ``max(m, ceil(s * W / m) * m)``
    pixels with ``m = size_multiple`` (scale 1 is passed through unchanged); the
    network runs on them and, with ``flip_index``, on their mirror images; its
    output is split into heatmaps and tags, and the whole set is merged exactly
    as :func:`~associative_embedding.aggregate` merges it: heatmaps resized to
    one size and averaged over views, the tags of ``tag_scales`` resized and
    concatenated along the tag dimension D.

    Parameters
    ----------
    network : torch.nn.Module
        Maps images (B, C, h, w) to its output; registered as a submodule, so
        ``state_dict``, ``.to()`` and ``.eval()`` reach it.
    scales : sequence of float, default (1.0,)
        Input scales relative to the input images, e.g. ``(2.0, 1.0, 0.5)``.
        Heatmaps are summed in this order (the references go from the largest
        scale down).
    flip_index : sequence of int or None, default None
        Length K, e.g. ``COCO_KEYPOINTS.flip_index``: also run the network on
        the mirror images and average their un-flipped maps with the
        originals (:func:`~associative_embedding.flip_maps`). None: no flip
        test.
    num_joints : int or None, default None
        K. With it, the network's output is one tensor (B, K * (1 + D), h, w)
        holding K heatmaps then K * D tag channels, joint-major (channel
        ``K + k * D + d`` is tag dimension ``d`` of joint ``k``; the layout of
        pose-ae-train and HigherHRNet). Further channels are ignored.
    tag_dim : int, default 1
        D, tag channels per joint, with ``num_joints``.
    split : callable or None, default None
        ``split(output) -> (heatmaps, tags)`` for any other output format, e.g.
        ``lambda out: split_outputs(out[:, -1], K, D)`` for a stacked network
        whose last stack is used. ``heatmaps``: (B, K, h, w); ``tags``:
        (B, K, h, w) or (B, K, D, h, w). Excludes ``num_joints``. Without
        ``split`` and ``num_joints`` the network must return that pair itself.
    size : None, 'input' or (int, int), default None
        Size (H', W') of the merged maps in pixels. None: the size of the first
        scale's heatmaps (:func:`~associative_embedding.aggregate`'s default);
        ``'input'``: the input images' (H, W), i.e. the maps resized to input
        pixels (HigherHRNet's ``PROJECT2IMAGE``, mmpose's ``project2image``);
        a fixed pair makes the output size static.
    tag_scales : sequence of int or 'all' or None, default None
        Indices into ``scales`` of the scales whose tags are kept, as in
        :func:`~associative_embedding.aggregate`. None: the scale 1.0 when it
        is listed, else the first scale (the references keep scale 1's tags).
    align_corners : bool, default False
        ``align_corners`` of the bilinear resizing of the maps, as in
        :func:`~associative_embedding.aggregate`. The input images are always
        resized with ``align_corners=False``.
    flip_shift : int, default 0
        Input pixels by which the mirror image is moved left (its first
        ``flip_shift`` columns dropped, zeros filled in on the right) before
        the network sees it. 0 is the references' flip test; a network whose
        stride-2 layers sample the mirrored image on a grid one input pixel
        away from the original's needs 1 (see
        :func:`~associative_embedding.flip_maps`, Notes).
    size_multiple : int, default 1
        The m above: the network's input sides must be multiples of it (e.g. 32
        for a stride-4 hourglass with 3 down-samplings, 64 for HigherHRNet).

    Raises
    ------
    TypeError
        If ``network`` is not a Module, ``split`` is not callable, or an
        option has the wrong kind.
    ValueError
        If ``scales`` is empty, repeats a scale or holds a value that is not
        positive, ``flip_index`` is not a permutation of ``range(K)``, both
        ``split`` and ``num_joints`` are given, or ``tag_scales``, ``size``,
        ``tag_dim``, ``flip_shift`` or ``size_multiple`` is out of range.

    See Also
    --------
    associative_embedding.aggregate : The merge, on maps already computed.
    associative_embedding.decode : Parses the merged maps into people.

    Notes
    -----
    Shape: ``forward(images)`` takes float images (B, C, H, W), normalised as
    the network expects, and returns ``heatmaps`` (B, K, H', W') and ``tags``
    (B, K, D_total, H', W'), always 5-D, with D_total = D x number of tag
    scales x (2 with flip, else 1), in the network's dtype and on its device.
    Coordinates are those of the merged maps: with ``size='input'`` one map
    pixel is one input pixel.

    For the maps of the network at each scale, the result equals
    ``aggregate(outputs, size, flipped=flipped, flip_index=flip_index,
    tag_scales=tag_scales, align_corners=align_corners)`` bit for bit: the
    merge is the same code. Unlike HigherHRNet, which resizes the original
    image to each scale with OpenCV, the scales are resized here from the
    input tensor, inside the graph.

    The module checks its options when built, not the values of its input:
    :func:`~associative_embedding.aggregate` reports NaN in the maps, an
    exported graph cannot. Images whose sides are not multiples of what the
    network needs fail in the network.

    Export (``torch.onnx.export``; the dynamo exporter, which needs the
    ``onnxscript`` package, is what the tests run)::

        model = ae.MultiScaleFlip(net, flip_index=ae.COCO_KEYPOINTS.flip_index,
                                  num_joints=17, size="input").eval()
        batch, h, w = (torch.export.Dim(n) for n in ("batch", "h", "w"))
        torch.onnx.export(model, (images,), "model.onnx",
                          input_names=["images"], output_names=["heatmaps", "tags"],
                          dynamic_shapes={"images": {0: batch, 2: 32 * h, 3: 32 * w}})

    Examples
    --------
    >>> import torch
    >>> import associative_embedding as ae
    >>> net = torch.nn.Conv2d(3, 17 * 2, 3, padding=1)  # K heatmaps, K tags
    >>> model = ae.MultiScaleFlip(net, scales=(1.0, 0.5), num_joints=17,
    ...                           flip_index=ae.COCO_KEYPOINTS.flip_index).eval()
    >>> heatmaps, tags = model(torch.rand(2, 3, 64, 48))
    >>> tuple(heatmaps.shape), tuple(tags.shape)
    ((2, 17, 64, 48), (2, 17, 2, 64, 48))
    """

    def __init__(
        self,
        network: nn.Module,
        *,
        scales: Sequence[float] = (1.0,),
        flip_index: Sequence[int] | None = None,
        num_joints: int | None = None,
        tag_dim: int = 1,
        split: Callable[[Any], tuple[torch.Tensor, torch.Tensor]] | None = None,
        size: str | tuple[int, int] | None = None,
        tag_scales: Sequence[int] | str | None = None,
        align_corners: bool = False,
        flip_shift: int = 0,
        size_multiple: int = 1,
    ) -> None:
        super().__init__()
        if not isinstance(network, nn.Module):
            raise TypeError(f"network must be a torch.nn.Module, got {type(network).__name__}")
        self.network = network
        self.scales = _check_scales(scales)
        if split is not None and not callable(split):
            raise TypeError(f"split must be callable or None, got {type(split).__name__}")
        if split is not None and num_joints is not None:
            raise ValueError("pass split or num_joints, not both")
        self.split = split
        self.num_joints = None if num_joints is None else check_int(num_joints, "num_joints", low=1)
        self.tag_dim = check_int(tag_dim, "tag_dim", low=1)
        self.flip_index: list[int] | None = None
        if flip_index is not None:
            n = len(flip_index) if self.num_joints is None else self.num_joints
            self.flip_index = _check_flip_index(flip_index, n)
        if size is None or size == "input":
            self.size: str | tuple[int, int] | None = size
        elif isinstance(size, str):
            raise ValueError(f"size must be None, 'input' or (H, W), got {size!r}")
        else:
            self.size = check_size(size)
        self.tag_scales = self._resolve_tag_scales(tag_scales)
        if not isinstance(align_corners, bool):
            raise TypeError(f"align_corners must be a bool, got {type(align_corners).__name__}")
        self.align_corners = align_corners
        self.flip_shift = check_int(flip_shift, "flip_shift", low=0)
        self.size_multiple = check_int(size_multiple, "size_multiple", low=1)

    def _resolve_tag_scales(self, tag_scales: Any) -> list[int]:
        from .aggregation import _check_tag_scales

        if tag_scales is None:
            return [self.scales.index(1.0)] if 1.0 in self.scales else [0]
        return _check_tag_scales(tag_scales, len(self.scales))

    def extra_repr(self) -> str:
        """Describe the options for ``print(module)``."""
        return (
            f"scales={self.scales}, flip={self.flip_index is not None}, size={self.size!r}, "
            f"tag_scales={tuple(self.tag_scales)}, flip_shift={self.flip_shift}, "
            f"size_multiple={self.size_multiple}"
        )

    def _split(self, output: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if self.split is not None:
            output = self.split(output)
        elif self.num_joints is not None:
            if not isinstance(output, torch.Tensor) or output.ndim != 4:
                raise ValueError(
                    f"{name}: with num_joints the network must return one (B, C, h, w) tensor, "
                    f"got {_describe(output)}"
                )
            k, d = self.num_joints, self.tag_dim
            if output.shape[1] < k * (1 + d):
                raise ValueError(
                    f"{name} must have at least K * (1 + D) = {k * (1 + d)} channels "
                    f"(K={k}, D={d}), got shape {tuple(output.shape)}"
                )
            heatmaps = output[:, :k]
            tags = output[:, k : k * (1 + d)]
            if d > 1:
                tags = tags.unflatten(1, (k, d))
            return heatmaps, tags
        if not isinstance(output, (tuple, list)) or len(output) != 2:
            raise TypeError(
                f"{name} must be a (heatmaps, tags) pair (or pass num_joints or split), "
                f"got {_describe(output)}"
            )
        heatmaps, tags = output
        if not isinstance(heatmaps, torch.Tensor) or heatmaps.ndim != 4:
            raise ValueError(f"{name}: heatmaps must be (B, K, h, w), got {_describe(heatmaps)}")
        if not isinstance(tags, torch.Tensor) or tags.ndim not in (4, 5):
            raise ValueError(
                f"{name}: tags must be (B, K, h, w) or (B, K, D, h, w), got {_describe(tags)}"
            )
        if tags.shape[:2] != heatmaps.shape[:2] or tags.shape[-2:] != heatmaps.shape[-2:]:
            raise ValueError(
                f"{name}: tags {tuple(tags.shape)} and heatmaps {tuple(heatmaps.shape)} must "
                "agree in B, K, h and w"
            )
        if self.flip_index is not None and heatmaps.shape[1] != len(self.flip_index):
            raise ValueError(
                f"{name}: heatmaps have K={heatmaps.shape[1]} joint types but flip_index has "
                f"length {len(self.flip_index)}"
            )
        return heatmaps, tags

    def _mirror(self, x: torch.Tensor) -> torch.Tensor:
        m = x.flip(-1)
        if self.flip_shift:
            m = F.pad(m[..., self.flip_shift :], (0, self.flip_shift))
        return m

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the network on every view of ``images`` and merge its maps.

        Parameters
        ----------
        images : Tensor, shape (B, C, H, W)
            Float images as the network takes them.

        Returns
        -------
        heatmaps : Tensor, shape (B, K, H', W')
            Heatmaps averaged over scales and flips.
        tags : Tensor, shape (B, K, D_total, H', W')
            Tags of ``tag_scales``, original then mirrored, along D.
        """
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
        if images.ndim != 4 or not images.is_floating_point():
            raise ValueError(
                f"images must be a float (B, C, H, W) tensor, got shape {tuple(images.shape)} "
                f"and dtype {images.dtype}"
            )
        h, w = images.shape[-2], images.shape[-1]
        flip = self.flip_index is not None
        outputs, flipped = [], []
        for s in self.scales:
            x = images
            if s != 1.0:
                m = self.size_multiple
                side = (_scaled_side(h, s, m), _scaled_side(w, s, m))
                x = F.interpolate(images, size=side, mode="bilinear", align_corners=False)
            outputs.append(self._split(self.network(x), f"network output at scale {s}"))
            if flip:
                out = self.network(self._mirror(x))
                flipped.append(self._split(out, f"network output at scale {s}, mirrored"))
        if self.size is None:
            size = (outputs[0][0].shape[-2], outputs[0][0].shape[-1])
        elif self.size == "input":
            size = (h, w)
        else:
            size = self.size
        return _merge(
            outputs,
            flipped if flip else None,
            self.flip_index,
            self.tag_scales,
            size,
            self.align_corners,
        )


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)}"
    return f"a {type(x).__name__}"
