"""The grouping loss over instance label maps (instance segmentation).

Newell et al. frame instance segmentation as the same detect-and-group problem
as pose: every pixel of an object is a "joint" of that object, so the pull
term draws the tags of an instance's pixels towards the instance's mean tag
and the push term separates the mean tags of different instances. This module
computes that loss for a batch of per-pixel tags ``(B, D, H, W)`` and integer
instance label maps ``(B, H, W)`` with segment reductions (``index_add``): no
Python loop over images or instances, memory linear in ``B·H·W·D``.

The push penalties and their defaults are those of :func:`grouping_loss`; the
hinge pull of De Brabandere, Neven & Van Gool (2017, "Semantic Instance
Segmentation with a Discriminative Loss Function") is available through
``delta_v``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ._validation import check_choice, check_float_array, check_int, check_number, shape_str
from .loss import (
    _PUSHES,
    _REDUCTIONS,
    PullPush,
    PushKind,
    Reduction,
    _is_compiling,
    _push_term,
    _reduce,
)

__all__ = ["InstanceGroupingLoss", "instance_grouping_loss"]


def _check_options(
    push: str,
    sigma: float,
    margin: float,
    delta_v: float,
    reduction: str,
    max_pixels: int | None,
) -> tuple[float, float, float, int | None]:
    check_choice(push, "push", _PUSHES)
    check_choice(reduction, "reduction", _REDUCTIONS)
    s = check_number(sigma, "sigma", low=0.0, low_inclusive=False)
    m = check_number(margin, "margin", low=0.0, low_inclusive=False)
    v = check_number(delta_v, "delta_v", low=0.0)
    cap = None if max_pixels is None else check_int(max_pixels, "max_pixels", low=1)
    return s, m, v, cap


def _check_inputs(tags: Any, labels: Any, generator: Any) -> None:
    check_float_array(tags, "tags", allow_numpy=False)
    if not isinstance(labels, Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise TypeError(
            f"labels must have an integer dtype (0 = background, < 0 = ignore), got {labels.dtype}"
        )
    if tags.ndim != 4:
        raise ValueError(f"tags must have shape (B, D, H, W), got shape {shape_str(tags.shape)}")
    if tags.shape[1] < 1:
        raise ValueError(
            f"tags must have a tag dimension D >= 1, got shape {shape_str(tags.shape)}"
        )
    b, _, h, w = tags.shape
    if tuple(labels.shape) != (b, h, w):
        raise ValueError(
            f"labels must have shape (B, H, W) = ({b}, {h}, {w}) to match tags (B, D, H, W) "
            f"{shape_str(tags.shape)}, got shape {shape_str(labels.shape)}"
        )
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")


def _segments(labels: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """Give the (image, label) segments of the labelled pixels.

    Returns, for the labelled pixels (label > 0) in row-major order over
    B, H, W, their image and their flat position ``y * W + x``, each pixel's
    segment id in ``0..S-1``; then each segment's image index (sorted
    ascending), and S.
    """
    b, h, w = labels.shape
    flat = labels.reshape(b, h * w)
    img, pos = torch.nonzero(flat > 0, as_tuple=True)
    if img.numel() == 0:
        return img, pos, img, img, 0
    lab = flat[img, pos].long()
    top = int(lab.max()) + 1
    key = img * top + lab
    if b * top <= max(4 * img.numel(), 1 << 16):
        # small ids: a dense table of present (image, label) keys, no sort
        present = torch.zeros(b * top, dtype=torch.bool, device=labels.device)
        present[key] = True
        uniq = torch.nonzero(present).squeeze(1)
        seg = (torch.cumsum(present, 0) - 1)[key]
    else:  # sparse ids (e.g. 10**9): sort the keys
        uniq, seg = torch.unique(key, sorted=True, return_inverse=True)
    return img, pos, seg, uniq // top, int(uniq.numel())


def _sample(seg: Tensor, n_seg: int, cap: int, generator: torch.Generator | None) -> Tensor:
    """Boolean mask keeping at most ``cap`` uniformly drawn pixels of each segment."""
    # a random order, then a stable sort by segment: within a segment the order stays random
    device = generator.device if generator is not None else None
    r = torch.rand(seg.shape[0], generator=generator, device=device)
    order = torch.argsort(r.to(seg.device))
    order = order[torch.argsort(seg[order], stable=True)]
    counts = torch.bincount(seg, minlength=n_seg)
    start = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(seg)
    rank[order] = torch.arange(seg.shape[0], device=seg.device) - start[seg[order]]
    return rank < cap


def _pixel_selection(
    labels: Tensor, cap: int | None, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """Labelled (and, with ``cap``, sampled) pixels: image, position, segment; segment images."""
    img, pos, seg, seg_img, n_seg = _segments(labels)
    if cap is not None and n_seg:
        keep = _sample(seg, n_seg, cap, generator)
        if not bool(keep.all()):
            img, pos, seg = img[keep], pos[keep], seg[keep]
    return img, pos, seg, seg_img, n_seg


def instance_grouping_loss(
    tags: Tensor,
    labels: Tensor,
    *,
    push: PushKind = "exp",
    sigma: float = 2**-0.5,
    margin: float = 1.0,
    delta_v: float = 0.0,
    reduction: Reduction = "mean",
    max_pixels: int | None = None,
    generator: torch.Generator | None = None,
) -> PullPush:
    r"""Associative-embedding grouping loss over instance label maps.

    Every labelled pixel is a member of its instance: pull draws the pixels'
    tags to their instance's mean tag, push separates the mean tags of
    different instances of the same image.

    Parameters
    ----------
    tags : Tensor, shape (B, D, H, W)
        Predicted per-pixel tags (D-dimensional embeddings). Any floating
        dtype; the loss is accumulated in at least float32 (also under
        autocast).
    labels : Tensor of int, shape (B, H, W)
        Instance ids per pixel, at the resolution of ``tags``: ``0`` is
        background and ``< 0`` is ignored (neither counts in this loss), any
        positive value is an instance of that image. Ids need not be
        consecutive; the same id in two images names two instances. Moved to
        ``tags.device`` if needed.
    push : {"exp", "margin"}, default "exp"
        Penalty of a pair of instances whose mean tags differ by
        :math:`\Delta`, as in :func:`grouping_loss`: ``"exp"`` is
        :math:`\exp(-\|\Delta\|^2 / (2\sigma^2))`, ``"margin"`` is
        :math:`\max(0, m - \|\Delta\|)` (the hinge push of HigherHRNet's
        ``'max'`` loss and CornerNet).
    sigma : float, default 2**-0.5
        Width of the ``"exp"`` push (the default gives :math:`\exp(-\|\Delta\|^2)`,
        as :func:`grouping_loss`).
    margin : float, default 1.0
        Margin :math:`m` of the ``"margin"`` push.
    delta_v : float, default 0.0
        Hinge of the pull (De Brabandere et al. 2017's :math:`\delta_v`): a
        pixel is pulled only while it is farther than ``delta_v`` from its
        instance's mean, with penalty :math:`\max(0, \|h_i - \bar h_n\| -
        \delta_v)^2 / D`. ``0`` gives the plain squared distance of
        :func:`grouping_loss`.
    reduction : {"mean", "sum", "none"}, default "mean"
        Reduction over images. ``"none"`` returns per-image terms of shape
        (B,); ``"mean"`` averages over all B images, including those without
        instances (as :func:`grouping_loss`).
    max_pixels : int, optional
        Per instance, use at most this many pixels, drawn uniformly without
        replacement (for large maps). The instance's mean and its pull are then
        computed from the drawn pixels only. ``None`` (default) uses every pixel.
    generator : torch.Generator, optional
        Random source of the draw of ``max_pixels``; on the CPU or on the
        device of ``tags``.

    Returns
    -------
    PullPush
        Named tuple ``(pull, push)`` of tensors in the accumulation dtype:
        scalars, or shape (B,) for ``reduction="none"``. Images without
        instances give 0 for both terms, images with one instance push 0. Both
        terms stay attached to the graph of ``tags``.

    Raises
    ------
    TypeError
        If ``tags`` is not a floating tensor, ``labels`` not an integer tensor,
        an option has the wrong type, or ``generator`` is not a
        :class:`torch.Generator`.
    ValueError
        If a shape is wrong or inconsistent, an option is unknown or out of
        range, or ``tags`` holds NaN/Inf at a labelled pixel.

    See Also
    --------
    InstanceGroupingLoss : The same loss as a :class:`torch.nn.Module`.
    grouping_loss : The loss over keypoints; same push and normalisation.
    decode_instances : Groups the pixels of a prediction into instances.

    Notes
    -----
    For image b with instances n = 1..N, pixel sets :math:`S_n` and mean tags
    :math:`\bar h_n = \frac{1}{|S_n|}\sum_{i \in S_n} h_i`:

    .. math::

        L_{pull} = \frac{1}{N}\sum_n \frac{1}{|S_n|}\sum_{i \in S_n}
                   \frac{\max(0, \|h_i - \bar h_n\| - \delta_v)^2}{D}, \qquad
        L_{push} = \frac{1}{2}\,\frac{1}{N(N-1)}\sum_{n \ne n'}
                   \operatorname{penalty}(\bar h_n - \bar h_{n'}).

    Cost: the pull is a few segment sums (``index_add``) over the labelled
    pixels, linear in ``B·H·W·D`` in time and memory; the push compares the
    mean tags of all pairs of instances of an image, ``B·N²·D`` for at most N
    instances per image.

    Every instance weighs the same in the pull whatever its area, and the
    normalisation is that of :func:`grouping_loss`'s default ("reference")
    with the instance's pixels as its joints. De Brabandere et al.'s
    discriminative loss has no division by D (multiply the pull weight by D)
    and a squared hinge push :math:`\max(0, 2\delta_d - \|\Delta\|)^2`, for
    which ``push="margin"`` with ``margin`` = :math:`2\delta_d` is the
    unsquared analogue.

    Examples
    --------
    >>> import torch
    >>> import associative_embedding as ae
    >>> tags = torch.zeros(1, 1, 2, 4)
    >>> tags[0, 0, :, 2:] = 1.0                       # right half has tag 1
    >>> labels = torch.tensor([[[1, 1, 2, 2], [1, 1, 2, 0]]])
    >>> pull, push = ae.instance_grouping_loss(tags, labels)
    >>> round(float(pull), 6), round(float(push), 6)
    (0.0, 0.18394)
    """
    _, _, v, cap = _check_options(push, sigma, margin, delta_v, reduction, max_pixels)
    _check_inputs(tags, labels, generator)
    b, d, h, w = (int(s) for s in tags.shape)
    labels = labels.to(tags.device)
    acc = torch.promote_types(tags.dtype, torch.float32)

    img, pos, seg, seg_img, n_seg = _pixel_selection(labels, cap, generator)
    # (n, D) tags of the selected pixels only: memory linear in the labelled pixels
    rows = tags.reshape(b, d, h * w).transpose(1, 2)[img, pos].to(acc)
    if not _is_compiling() and rows.numel() and not bool(torch.isfinite(rows.detach()).all()):
        bad = int((~torch.isfinite(rows.detach()).all(-1)).sum())
        raise ValueError(f"tags contains NaN or infinite values at {bad} labelled pixel(s)")

    count = torch.zeros(n_seg, dtype=acc, device=tags.device).index_add_(
        0, seg, torch.ones(seg.shape[0], dtype=acc, device=tags.device)
    )
    safe_count = count.clamp(min=1)
    mean = torch.zeros(n_seg, d, dtype=acc, device=tags.device).index_add_(0, seg, rows)
    mean = mean / safe_count.unsqueeze(1)  # (S, D)
    delta = rows - mean[seg]
    if v > 0:
        # vector_norm's gradient at 0 is 0: no NaN for a pixel exactly at its mean
        dist = torch.clamp(torch.linalg.vector_norm(delta, dim=1) - v, min=0.0) ** 2
    else:
        dist = (delta**2).sum(1)
    seg_pull = torch.zeros(n_seg, dtype=acc, device=tags.device).index_add_(0, seg, dist)
    seg_pull = seg_pull / (safe_count * d)

    # per image: N instances; pad the mean tags into (B, N, D) for the pairwise push
    n_inst = torch.bincount(seg_img, minlength=b)  # (B,)
    num = n_inst.to(acc)
    pull = torch.zeros(b, dtype=acc, device=tags.device).index_add_(0, seg_img, seg_pull)
    pull = pull / num.clamp(min=1)  # attached to the graph through rows, even if empty

    n_max = int(n_inst.max()) if b and n_seg else 0
    if n_max < 2:
        push_term = torch.zeros(b, dtype=acc, device=tags.device) + 0.0 * mean.sum()
    else:
        first = torch.cumsum(n_inst, 0) - n_inst
        slot = torch.arange(n_seg, device=tags.device) - first[seg_img]
        padded = torch.zeros(b, n_max, d, dtype=acc, device=tags.device)
        padded = padded.index_put((seg_img, slot), mean)
        present = torch.zeros(b, n_max, dtype=torch.bool, device=tags.device)
        present[seg_img, slot] = True
        push_term = _push_term(padded, present, (push, sigma, margin), "reference")

    return PullPush(_reduce(pull, reduction), _reduce(push_term, reduction))


class InstanceGroupingLoss(nn.Module):
    r"""Grouping loss over instance label maps, as a module.

    Stores validated options and calls :func:`instance_grouping_loss` in
    ``forward``; the options and equations are documented there.

    Parameters
    ----------
    push : {"exp", "margin"}, default "exp"
        Push penalty between the mean tags of two instances.
    sigma : float, default 2**-0.5
        Width of the ``"exp"`` push.
    margin : float, default 1.0
        Margin of the ``"margin"`` push.
    delta_v : float, default 0.0
        Hinge of the pull (0: plain squared distance).
    reduction : {"mean", "sum", "none"}, default "mean"
        Reduction over images.
    max_pixels : int, optional
        Pixels drawn per instance (``None``: all of them).

    Raises
    ------
    ValueError
        If an option is unknown or out of range (checked at construction).
    TypeError
        If an option has the wrong type.

    See Also
    --------
    instance_grouping_loss : The functional form, with the equations.

    Notes
    -----
    Shapes: ``tags`` (B, D, H, W) floating; ``labels`` (B, H, W) integer,
    0 = background, < 0 = ignore. Returns a :class:`PullPush` of scalars, or of
    (B,) tensors with ``reduction="none"``. ``forward`` also takes the
    ``generator`` of the pixel draw.

    Examples
    --------
    >>> import torch
    >>> import associative_embedding as ae
    >>> criterion = ae.InstanceGroupingLoss(push="margin", delta_v=0.1)
    >>> tags = torch.randn(2, 4, 16, 16, requires_grad=True)
    >>> labels = torch.zeros(2, 16, 16, dtype=torch.long)
    >>> labels[0, :8, :8], labels[0, 8:, 8:] = 1, 2      # image 1 is all background
    >>> pull, push = criterion(tags, labels)
    >>> (pull + push).backward()
    >>> tags.grad.shape
    torch.Size([2, 4, 16, 16])
    """

    def __init__(
        self,
        *,
        push: PushKind = "exp",
        sigma: float = 2**-0.5,
        margin: float = 1.0,
        delta_v: float = 0.0,
        reduction: Reduction = "mean",
        max_pixels: int | None = None,
    ) -> None:
        super().__init__()
        s, m, v, cap = _check_options(push, sigma, margin, delta_v, reduction, max_pixels)
        self.push: PushKind = push
        self.sigma = s
        self.margin = m
        self.delta_v = v
        self.reduction: Reduction = reduction
        self.max_pixels = cap

    def forward(
        self, tags: Tensor, labels: Tensor, generator: torch.Generator | None = None
    ) -> PullPush:
        """Compute ``(pull, push)``; see :func:`instance_grouping_loss`.

        Parameters
        ----------
        tags : Tensor, shape (B, D, H, W)
            Predicted per-pixel tags.
        labels : Tensor of int, shape (B, H, W)
            Instance ids, 0 = background, < 0 = ignore.
        generator : torch.Generator, optional
            Random source of the per-instance pixel draw (``max_pixels``).

        Returns
        -------
        PullPush
            The pull and push terms.
        """
        return instance_grouping_loss(
            tags,
            labels,
            push=self.push,
            sigma=self.sigma,
            margin=self.margin,
            delta_v=self.delta_v,
            reduction=self.reduction,
            max_pixels=self.max_pixels,
            generator=generator,
        )

    def extra_repr(self) -> str:
        """Options shown in ``repr``."""
        return (
            f"push={self.push!r}, sigma={self.sigma:.6g}, margin={self.margin:.6g}, "
            f"delta_v={self.delta_v:.6g}, reduction={self.reduction!r}, "
            f"max_pixels={self.max_pixels!r}"
        )
