"""A codec and a loss for mmpose 1.x, registered in its registries on import.

``import associative_embedding.mmpose`` (or ``custom_imports =
dict(imports=["associative_embedding.mmpose"])`` in an mmpose config) adds:

- :class:`FastAssociativeEmbedding` to ``mmpose.registry.KEYPOINT_CODECS``: the
  constructor arguments and the encoding of mmpose 1.3.2's
  ``AssociativeEmbedding`` codec (``mmpose/codecs/associative_embedding.py``),
  decoding with :func:`associative_embedding.decode` for the whole batch in one
  call. With the default ``grouping="mmpose-1.x"`` it finds the same people,
  joints and scores as mmpose's codec.
- :class:`FastAssociativeEmbeddingLoss` to ``mmpose.registry.MODELS``: the
  arguments, values and gradients of mmpose 1.3.2's
  ``AssociativeEmbeddingLoss`` (``mmpose/models/losses/ae_loss.py``), computed
  by :func:`associative_embedding.grouping_loss` for the whole batch at once
  instead of Python loops over images, people and joints.

mmpose is never imported by ``import associative_embedding``; this module needs
it (``pip install "associative-embedding[mmpose]"``) and raises
:class:`ImportError` saying so when it is missing.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

try:
    from mmpose.codecs import AssociativeEmbedding as _MmposeAssociativeEmbedding
    from mmpose.registry import KEYPOINT_CODECS, MODELS
except ImportError as _err:  # pragma: no cover - exercised only without mmpose
    raise ImportError(
        "associative_embedding.mmpose needs mmpose 1.x (tested with mmpose 1.3.2, "
        "mmengine 0.10.7 and mmcv-lite 2.2.0): pip install "
        '"associative-embedding[mmpose]" (pin your torch version in the same command). '
        "mmpose's heads and training also need mmcv built with its compiled ops instead "
        f"of mmcv-lite; see the 'Inside mmpose' page of the documentation. ({_err})"
    ) from _err

from ._validation import shape_str
from .config import DecodeConfig
from .decoding import decode
from .loss import grouping_loss

__all__ = ["BottomupHeatmapMSELoss", "FastAssociativeEmbedding", "FastAssociativeEmbeddingLoss"]


def _grouping_config(grouping: Any) -> DecodeConfig:
    """Return the base :class:`DecodeConfig` that ``grouping`` names."""
    if isinstance(grouping, DecodeConfig):
        return grouping
    if isinstance(grouping, str):
        if grouping == "default":
            return DecodeConfig()
        return DecodeConfig.preset(grouping)
    if isinstance(grouping, Mapping):
        options = dict(grouping)
        preset = options.pop("preset", None)
        if preset is None:
            return DecodeConfig(**options)
        return DecodeConfig.preset(preset, **options)
    raise TypeError(
        "grouping must be a preset name (e.g. 'mmpose-1.x', 'crowd', 'default'), a "
        f"DecodeConfig or a dict of DecodeConfig options, got {type(grouping).__name__}"
    )


@KEYPOINT_CODECS.register_module(force=True)
class FastAssociativeEmbedding(_MmposeAssociativeEmbedding):
    """mmpose 1.x's associative-embedding codec, decoding with :func:`.decode`.

    A drop-in for mmpose's ``AssociativeEmbedding`` codec (``type=
    "FastAssociativeEmbedding"`` in a config): the same arguments, the same
    encoding, and a ``batch_decode`` that groups the whole batch in one call
    of the library's numba decoder. With ``grouping="mmpose-1.x"`` (the
    default) it returns the people mmpose 1.3.2's codec returns, joint for
    joint, listed by instance score (highest first) rather than in the order
    mmpose's grouping created them.

    Parameters
    ----------
    input_size : tuple of int
        Input image size ``(w, h)`` in pixels.
    heatmap_size : tuple of int
        Heatmap size ``(W, H)`` in pixels. Decoded coordinates are multiplied
        by ``input_size / heatmap_size`` (mmpose's ``scale_factor``).
    sigma : float, optional
        Gaussian σ of the heatmap targets in heatmap pixels; default
        ``sqrt(W * H) / 64`` (mmpose's default).
    use_udp : bool, default False
        Must be False: mmpose's UDP decoding (DARK-UDP refinement) is not
        implemented here; use mmpose's own codec for it.
    decode_keypoint_order : sequence of int, default ()
        Order in which joint types are grouped, a permutation of ``range(K)``
        (:class:`~associative_embedding.DecodeConfig` ``joint_order``). Empty:
        the COCO order for K = 17, else ``range(K)`` (mmpose's codec requires
        the order).
    decode_nms_kernel : int, default 5
        Max-pool window of the heatmap NMS, odd (``nms_kernel``).
    decode_gaussian_kernel : int, default 3
        Kept for compatibility; only mmpose's UDP decoding uses it.
    decode_keypoint_thr : float, default 0.1
        Detection threshold on heatmap values (``detection_threshold``).
    decode_tag_thr : float, default 1.0
        Tag distance below which a candidate joins a person (``tag_threshold``).
    decode_topk : int, default 30
        Candidates per joint type (``max_people``).
    decode_center_shift : float, default 0.0
        Added to x and y of detected joints, in heatmap pixels
        (``center_shift``; mmpose's COCO config uses 0.5).
    decode_max_instances : int, optional
        Keep only the first people in creation order (``max_instances``).
    grouping : str, DecodeConfig or dict, default "mmpose-1.x"
        This library's grouping: a name for
        :meth:`~associative_embedding.DecodeConfig.preset` (``"mmpose-1.x"``:
        mmpose 1.3.2's results; ``"crowd"``: the grouping this library measures
        best in crowds), ``"default"`` for ``DecodeConfig()``, a
        :class:`~associative_embedding.DecodeConfig`, or a dict of its options
        with an optional ``"preset"`` key (the form an mmengine config holds).
        The ``decode_*`` arguments above override the matching options.

    Raises
    ------
    TypeError
        If ``grouping`` is of another kind.
    ValueError
        If ``use_udp`` is True, or the decoding options are out of range.

    Notes
    -----
    ``encode`` is mmpose's (Gaussian heatmaps with patch side ``6σ+1`` around
    the rounded joint, keypoint indices ``[y * W + x, visible]`` per person and
    joint, keypoint weights), with the index loop vectorised. Unlike mmpose's
    codec it also declares ``keypoint_indices`` in ``label_mapping_table``, so
    that ``PackPoseInputs`` hands them to ``AssociativeEmbeddingHead.loss``
    (mmpose 1.3.2's packing drops them, one reason its training pipeline is
    empty).

    With a grouping whose ``refine_mode`` does not fill every missing joint
    (e.g. ``"crowd"``), a missing joint is reported at ``(0, 0)`` with score
    0, as mmpose's grouping leaves it before its fill step.

    Examples
    --------
    >>> import torch
    >>> from associative_embedding.mmpose import FastAssociativeEmbedding
    >>> codec = FastAssociativeEmbedding(input_size=(64, 64), heatmap_size=(16, 16))
    >>> heatmaps = torch.zeros(1, 2, 16, 16)
    >>> heatmaps[0, :, 4, 5] = 0.9              # one joint of each type
    >>> tags = torch.zeros(1, 2, 16, 16)        # (B, L*K, H, W), L = 1
    >>> keypoints, scores, instance_scores = codec.batch_decode(heatmaps, tags)
    >>> keypoints[0].tolist()                   # one person, in input pixels (x 4)
    [[[20.0, 16.0], [20.0, 16.0]]]
    >>> [round(float(s), 2) for s in instance_scores[0]]
    [0.9]
    """

    # PackPoseInputs' defaults plus the indices the head's loss reads
    label_mapping_table = dict(  # noqa: RUF012 - mmpose's class-level table
        keypoint_labels="keypoint_labels",
        keypoint_weights="keypoint_weights",
        keypoints_visible_weights="keypoints_visible_weights",
        keypoint_indices="keypoint_indices",
    )

    def __init__(
        self,
        input_size: tuple[int, int],
        heatmap_size: tuple[int, int],
        sigma: float | None = None,
        use_udp: bool = False,
        decode_keypoint_order: Sequence[int] = (),
        decode_nms_kernel: int = 5,
        decode_gaussian_kernel: int = 3,
        decode_keypoint_thr: float = 0.1,
        decode_tag_thr: float = 1.0,
        decode_topk: int = 30,
        decode_center_shift: float = 0.0,
        decode_max_instances: int | None = None,
        grouping: str | DecodeConfig | Mapping[str, Any] = "mmpose-1.x",
    ) -> None:
        if use_udp:
            raise ValueError(
                "use_udp=True (mmpose's DARK-UDP decoding) is not supported by "
                "FastAssociativeEmbedding; use mmpose's AssociativeEmbedding codec for it"
            )
        super().__init__(
            input_size=input_size,
            heatmap_size=heatmap_size,
            sigma=sigma,
            use_udp=False,
            decode_keypoint_order=list(decode_keypoint_order),
            decode_nms_kernel=decode_nms_kernel,
            decode_gaussian_kernel=decode_gaussian_kernel,
            decode_keypoint_thr=decode_keypoint_thr,
            decode_tag_thr=decode_tag_thr,
            decode_topk=decode_topk,
            decode_center_shift=decode_center_shift,
            decode_max_instances=decode_max_instances,
        )
        self.grouping = grouping
        self._buffer: np.ndarray | None = None
        self._buffer_lock = threading.Lock()
        order = tuple(int(k) for k in decode_keypoint_order) or None
        self.decode_config = dataclasses.replace(
            _grouping_config(grouping),
            max_people=decode_topk,
            detection_threshold=decode_keypoint_thr,
            tag_threshold=decode_tag_thr,
            nms_kernel=decode_nms_kernel,
            center_shift=decode_center_shift,
            max_instances=decode_max_instances,
            joint_order=order,
        )

    def __getstate__(self) -> dict[str, Any]:
        """Pickle and deep-copy without the tag buffer and its lock."""
        state = self.__dict__.copy()
        state["_buffer"] = None
        del state["_buffer_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._buffer_lock = threading.Lock()

    @property
    def support_batch_decoding(self) -> bool:
        """True: mmpose's heads call :meth:`batch_decode` with the whole batch."""
        return True

    def _encode_keypoint_indices(
        self, heatmap_size: tuple[int, int], keypoints: np.ndarray, keypoints_visible: np.ndarray
    ) -> np.ndarray:
        """Compute mmpose's ``[y * W + x, visible]`` per person and joint, without a Python loop.

        ``x, y`` are the joint's heatmap coordinates plus 0.5, truncated towards
        zero (mmpose's ``astype(np.int64)``); visible means ``keypoints_visible
        > 0.5`` and inside the map.
        """
        w, h = heatmap_size
        n, k = keypoints.shape[:2]
        xy = (keypoints[..., :2] + 0.5).astype(np.int64)
        x, y = xy[..., 0], xy[..., 1]
        visible = (keypoints_visible > 0.5) & (x >= 0) & (x < w) & (y >= 0) & (y < h)
        out = np.empty((n, k, 2), np.int64)
        out[..., 0] = y * w + x
        out[..., 1] = visible
        return out

    def batch_decode(
        self, batch_heatmaps: Tensor, batch_tags: Tensor
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """Decode people from a batch of heatmaps and tag maps in one call.

        Parameters
        ----------
        batch_heatmaps : Tensor or ndarray, shape (B, K, H, W)
            Detection heatmaps, float, any device.
        batch_tags : Tensor or ndarray, shape (B, L*K, H, W)
            Tag maps in mmpose's layout: channel ``l * K + k`` holds tag
            dimension l of joint type k (L = 2 after mmpose's flip test).

        Returns
        -------
        keypoints : list of ndarray, shape (N, K, 2)
            float32 ``x, y`` per image in input-image pixels (heatmap pixels
            times ``scale_factor``), people sorted by instance score.
        keypoint_scores : list of ndarray, shape (N, K)
            float32 joint scores (heatmap values).
        instance_scores : list of ndarray, shape (N,)
            float32 mean of the K scores before missing joints are filled.

        Raises
        ------
        TypeError
            If the inputs are not float tensors or arrays of one kind.
        ValueError
            If the shapes disagree, the tag channels are not a multiple of K,
            or the maps hold NaN or infinity.
        """
        heat, tags = batch_heatmaps, batch_tags
        # CPU tensors as numpy views: decode's numpy path (CUDA tensors keep its torch path,
        # NMS and top-k on the device)
        if isinstance(heat, Tensor):
            heat = heat.detach()
            heat = heat.numpy() if heat.device.type == "cpu" else heat
        if isinstance(tags, Tensor):
            tags = tags.detach()
            tags = tags.numpy() if tags.device.type == "cpu" else tags
        for name, arr in (("batch_heatmaps", heat), ("batch_tags", tags)):
            if not isinstance(arr, (Tensor, np.ndarray)):
                raise TypeError(
                    f"{name} must be a torch.Tensor or numpy.ndarray, got {type(arr).__name__}"
                )
            if arr.ndim != 4:
                raise ValueError(
                    f"{name} must have shape (B, C, H, W), got shape {shape_str(arr.shape)}"
                )
        b, k, h, w = heat.shape
        c = tags.shape[1]
        if tags.shape[0] != b or tuple(tags.shape[2:]) != (h, w) or k == 0 or c % k or c == 0:
            raise ValueError(
                f"batch_tags must have shape (B, L*K, H, W) = ({b}, L*{k}, {h}, {w}) to match "
                f"batch_heatmaps {shape_str(heat.shape)}, got {shape_str(tags.shape)}"
            )
        dim = c // k
        # mmpose's channel l*K + k -> the library's (B, K, L, H, W)
        if isinstance(tags, Tensor):
            tags = tags.reshape(b, dim, k, h, w).transpose(1, 2)
        elif dim == 1:
            tags = tags.reshape(b, k, 1, h, w)
        if isinstance(tags, np.ndarray) and dim > 1:
            # one C-order copy into a buffer kept between calls: decode would convert the
            # strided view more slowly, and a fresh array of a 512 x 512 batch costs more in
            # page faults than in copying
            view = tags.reshape(b, dim, k, h, w).transpose(0, 2, 1, 3, 4)
            with self._buffer_lock:
                buffer = self._buffer
                if buffer is None or buffer.shape != view.shape or buffer.dtype != view.dtype:
                    buffer = self._buffer = np.empty(view.shape, view.dtype)
                np.copyto(buffer, view)
                poses = decode(heat, buffer, self.decode_config)
        else:
            poses = decode(heat, tags, self.decode_config)
        scale = np.asarray(self.scale_factor, np.float32)
        keypoints, scores, instance_scores = [], [], []
        for p in poses:
            kp = p.keypoints.astype(np.float32, copy=False)
            missing = ~np.isfinite(kp[..., :2])
            xy = np.where(missing, np.float32(0), kp[..., :2])
            keypoints.append(xy * scale)
            scores.append(np.ascontiguousarray(kp[..., 2]))
            instance_scores.append(p.scores.astype(np.float32, copy=False))
        return keypoints, scores, instance_scores

    def decode(self, heatmaps: Any, tags: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decode one image: :meth:`batch_decode` of a batch of one.

        Parameters
        ----------
        heatmaps : ndarray or Tensor, shape (K, H, W)
            Detection heatmaps.
        tags : ndarray or Tensor, shape (L*K, H, W)
            Tag maps, channel ``l * K + k``.

        Returns
        -------
        tuple of ndarray
            ``keypoints`` (N, K, 2), ``keypoint_scores`` (N, K) and
            ``instance_scores`` (N,), as one image of :meth:`batch_decode`.

        Raises
        ------
        ValueError
            If the inputs are not 3-dimensional or their shapes disagree.
        """
        for name, arr in (("heatmaps", heatmaps), ("tags", tags)):
            if getattr(arr, "ndim", None) != 3:
                raise ValueError(
                    f"{name} must have 3 dimensions (C, H, W), got "
                    f"{shape_str(arr.shape) if hasattr(arr, 'shape') else type(arr).__name__}"
                )
        (keypoints,), (scores,), (instance_scores,) = self.batch_decode(heatmaps[None], tags[None])
        return keypoints, scores, instance_scores


def _padded_indices(keypoint_indices: Any, batch: int, device: torch.device) -> Tensor:
    """Pad mmpose's keypoint indices, (B, N, K, 2) or B tensors (N_i, K, 2), to one tensor."""
    if isinstance(keypoint_indices, (Tensor, Sequence)):
        items = list(keypoint_indices)
    else:
        raise TypeError(
            "keypoint_indices must be a Tensor (B, N, K, 2) or a list of B Tensors "
            f"(N_i, K, 2), got {type(keypoint_indices).__name__}"
        )
    if len(items) != batch:
        raise ValueError(
            f"keypoint_indices must hold one entry per image, B = {batch}, got {len(items)}"
        )
    items = [torch.as_tensor(t, device=device) for t in items]
    for i, t in enumerate(items):
        if t.ndim != 3 or t.shape[-1] != 2 or t.dtype.is_floating_point:
            raise ValueError(
                f"keypoint_indices[{i}] must be an integer tensor of shape (N, K, 2), got "
                f"{t.dtype} of shape {shape_str(t.shape)}"
            )
    k = items[0].shape[1]
    if any(t.shape[1] != k for t in items):
        raise ValueError(
            "keypoint_indices must have the same K for every image, got "
            f"{[int(t.shape[1]) for t in items]}"
        )
    n = max(int(t.shape[0]) for t in items)
    out = torch.zeros(batch, n, k, 2, dtype=torch.int64, device=device)
    for i, t in enumerate(items):
        out[i, : t.shape[0]] = t.to(torch.int64)
    return out


@MODELS.register_module(force=True)
class FastAssociativeEmbeddingLoss(nn.Module):
    """mmpose 1.x's ``AssociativeEmbeddingLoss``, vectorised over the batch.

    The same arguments, values and gradients as mmpose 1.3.2's loss, which
    differs from :func:`associative_embedding.grouping_loss`'s defaults in
    three ways reproduced here: per image, the push term sums
    ``exp(-Δ_l²)`` over every ordered pair of people *including* each person
    with itself (a constant ``L`` per person, no gradient) and over each tag
    dimension ``l`` separately, divided by ``N (N - 1) + 1e-6``; the pull is
    divided by ``N + 1e-6``; and the images' terms are summed, not averaged.

    Parameters
    ----------
    loss_weight : float, default 1.0
        Weight of both terms (mmpose's COCO config: 1e-3).
    push_loss_factor : float, default 0.5
        Extra factor of the push term.

    Examples
    --------
    >>> import torch
    >>> from associative_embedding.mmpose import FastAssociativeEmbeddingLoss
    >>> tags = torch.zeros(1, 2, 4, 4)                    # (B, L*K, H, W): K = 2, L = 1
    >>> tags[0, :, :, 2:] = 1.0
    >>> indices = [torch.tensor([[[0, 1], [5, 1]],      # person 0: pixels 0 and 5
    ...                          [[15, 1], [10, 1]]])]  # person 1: pixels 15 and 10
    >>> pull, push = FastAssociativeEmbeddingLoss()(tags, indices)
    >>> round(float(pull), 6), round(float(push), 6)
    (0.0, 0.683939)
    """

    def __init__(self, loss_weight: float = 1.0, push_loss_factor: float = 0.5) -> None:
        super().__init__()
        self.loss_weight = float(loss_weight)
        self.push_loss_factor = float(push_loss_factor)

    def forward(self, tags: Tensor, keypoint_indices: Any) -> tuple[Tensor, Tensor]:
        """Compute ``(pull, push)``, each summed over the batch.

        Parameters
        ----------
        tags : Tensor, shape (B, L*K, H, W)
            Tag maps in mmpose's layout, channel ``l * K + k``.
        keypoint_indices : Tensor (B, N, K, 2) or list of B Tensors (N_i, K, 2)
            mmpose's ``[y * W + x, visible]`` per person and joint (the
            codec's ``keypoint_indices``); a joint counts when ``visible != 0``.

        Returns
        -------
        tuple of Tensor
            ``pull * loss_weight`` and ``push * loss_weight *
            push_loss_factor``, scalars attached to the graph of ``tags``.

        Raises
        ------
        TypeError
            If ``tags`` is not a floating tensor or the indices are of another kind.
        ValueError
            If the shapes disagree, a counted index is outside ``[0, H * W)``,
            or a tag at a counted joint is NaN or infinite.
        """
        if not isinstance(tags, Tensor) or not tags.is_floating_point():
            raise TypeError(
                f"tags must be a floating torch.Tensor, got "
                f"{getattr(tags, 'dtype', type(tags).__name__)}"
            )
        if tags.ndim != 4:
            raise ValueError(
                f"tags must have shape (B, L*K, H, W), got shape {shape_str(tags.shape)}"
            )
        b, c, h, w = tags.shape
        if b == 0:
            zero = tags.sum() * 0.0
            return zero, zero
        index = _padded_indices(keypoint_indices, b, tags.device)
        k = index.shape[2]
        if k == 0 or c % k:
            raise ValueError(
                f"tags has {c} channels, not a multiple of the K = {k} joints of keypoint_indices"
            )
        dim = c // k
        visible = index[..., 1] != 0
        pos = index[..., 0]
        bad = visible & ((pos < 0) | (pos >= h * w))
        if bool(bad.any()):
            raise ValueError(
                f"keypoint_indices holds {int(bad.sum())} visible index(es) outside "
                f"[0, H*W) = [0, {h * w})"
            )
        # each index as a keypoint at its pixel's centre, read back by int() truncation
        acc = torch.promote_types(tags.dtype, torch.float32)
        pos = torch.where(visible, pos, torch.zeros_like(pos))
        keypoints = torch.stack(
            [(pos % w).to(acc) + 0.5, (pos // w).to(acc) + 0.5, visible.to(acc)], dim=-1
        )
        # one "image" per (image, tag dimension): the library's push is exp(-||Δ||²), mmpose's
        # a sum over dimensions of exp(-Δ_l²)
        per_dim = tags.reshape(b * dim, k, h, w)
        pull_bl, push_bl = grouping_loss(
            per_dim, keypoints.repeat_interleave(dim, dim=0), reduction="none"
        )
        people = visible.any(-1).sum(-1).to(pull_bl.dtype)  # (B,)
        eps = 1e-6
        # library pull per dimension: (1/N) sum_n mean_k; mmpose: sum_n mean_{k,l} / (N + eps)
        pull = pull_bl.view(b, dim).mean(1) * people / (people + eps)
        # library push per dimension: 0.5 * sum_{n != n'} / (N (N - 1)); mmpose adds the N
        # diagonal terms of each dimension and divides by N (N - 1) + eps
        pairs = people * (people - 1)
        off_diagonal = 2.0 * push_bl.view(b, dim).sum(1) * pairs
        push = torch.where(
            people > 1, (off_diagonal + people * dim) / (pairs + eps), torch.zeros_like(people)
        )
        return pull.sum() * self.loss_weight, push.sum() * (
            self.loss_weight * self.push_loss_factor
        )

    def extra_repr(self) -> str:
        """Options shown in ``repr``."""
        return f"loss_weight={self.loss_weight:.6g}, push_loss_factor={self.push_loss_factor:.6g}"


@MODELS.register_module(force=True)
class BottomupHeatmapMSELoss(nn.Module):
    """mmpose's ``KeypointMSELoss`` for bottom-up heads: the heatmap mask, no keypoint weights.

    mmpose 1.3.2's ``AssociativeEmbeddingHead.loss`` hands its keypoint loss the
    per-person keypoint weights of the batch concatenated, shape ``(sum of N_i,
    K)``; ``KeypointMSELoss`` (``mmpose/models/losses/heatmap_loss.py``) uses them
    whatever its ``use_target_weight`` says and asserts that they have shape ``(B,
    K)``, so training stops unless every batch holds exactly one person per image.
    This loss is ``KeypointMSELoss`` given no weights: the mean squared error over
    all heatmap pixels, times the mask (crowds and people without keypoints, from
    ``BottomupGetHeatmapMask``) when there is one.

    Parameters
    ----------
    skip_empty_channel : bool, default False
        Leave out heatmap channels whose target is all zero (as mmpose's).
    loss_weight : float, default 1.0
        Factor of the loss.

    Examples
    --------
    >>> import torch
    >>> from associative_embedding.mmpose import BottomupHeatmapMSELoss
    >>> out, target = torch.ones(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    >>> mask = torch.zeros(2, 1, 4, 4)
    >>> mask[..., :2] = 1                          # the left half counts
    >>> float(BottomupHeatmapMSELoss()(out, target, torch.ones(5, 3), mask))
    0.5
    """

    def __init__(self, skip_empty_channel: bool = False, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.skip_empty_channel = bool(skip_empty_channel)
        self.loss_weight = float(loss_weight)

    def forward(
        self,
        output: Tensor,
        target: Tensor,
        target_weights: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """Mean squared error of ``output`` and ``target`` under ``mask``.

        Parameters
        ----------
        output, target : Tensor, shape (B, K, H, W)
            Predicted and target heatmaps.
        target_weights : Tensor, optional
            Ignored (the head's per-person keypoint weights).
        mask : Tensor, shape (B, K or 1, H, W), optional
            1 where a pixel counts, 0 where it does not.

        Returns
        -------
        Tensor
            The scalar loss times ``loss_weight``.

        Raises
        ------
        ValueError
            If the shapes of ``output``, ``target`` and ``mask`` disagree.
        """
        del target_weights  # per person, not per image: see the class docstring
        if output.shape != target.shape:
            raise ValueError(
                f"output and target must have the same shape, got {shape_str(output.shape)} "
                f"and {shape_str(target.shape)}"
            )
        if mask is not None and (
            mask.ndim != target.ndim
            or any(m not in (t, 1) for m, t in zip(mask.shape, target.shape, strict=True))
        ):
            raise ValueError(
                f"mask of shape {shape_str(mask.shape)} does not broadcast to target "
                f"{shape_str(target.shape)}"
            )
        if self.skip_empty_channel:
            keep = (target != 0).flatten(2).any(dim=2)[..., None, None].to(target.dtype)
            mask = keep if mask is None else mask * keep
        if mask is None:
            loss = torch.nn.functional.mse_loss(output, target)
        else:
            loss = (torch.nn.functional.mse_loss(output, target, reduction="none") * mask).mean()
        return loss * self.loss_weight

    def extra_repr(self) -> str:
        """Options shown in ``repr``."""
        return f"skip_empty_channel={self.skip_empty_channel}, loss_weight={self.loss_weight:.6g}"
