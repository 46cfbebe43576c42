"""Training losses: the associative-embedding grouping loss and the heatmap loss.

The grouping loss (Newell, Huang & Deng 2017, §3.2) pulls the tags of one
person's joints towards that person's mean tag and pushes the mean tags of
different people apart. It is computed for a whole batch at once from a padded
``(B, N, K, 3)`` keypoint tensor: there is no Python loop over images, people
or joints.

Every public implementation normalises the loss differently (see the
``normalization`` and ``push`` options of :func:`grouping_loss`); the default
reproduces the values of pose-ae-train's C loss and HigherHRNet's ``AELoss``,
which produced the published COCO numbers.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from ._validation import (
    check_choice,
    check_float_array,
    check_layout,
    check_number,
    shape_str,
    warn_off_map,
)

__all__ = [
    "AssociativeEmbeddingLoss",
    "HeatmapLoss",
    "PullPush",
    "grouping_loss",
    "heatmap_loss",
]

Reduction = Literal["mean", "sum", "none"]
PushKind = Literal["exp", "margin"]
Normalization = Literal["reference", "paper"]
Rounding = Literal["trunc", "floor", "round"]

_REDUCTIONS = ("mean", "sum", "none")
_PUSHES = ("exp", "margin")
_NORMALIZATIONS = ("reference", "paper")
_ROUNDINGS = ("trunc", "floor", "round")


class PullPush(NamedTuple):
    """The two terms of the grouping loss.

    Attributes
    ----------
    pull : Tensor
        Pull term: scalar for ``reduction="mean"``/``"sum"``, shape (B,) for ``"none"``.
    push : Tensor
        Push term, same shape as ``pull``.
    """

    pull: Tensor
    push: Tensor


def _check_options(
    push: str, sigma: float, margin: float, normalization: str, reduction: str, rounding: str
) -> tuple[float, float]:
    check_choice(push, "push", _PUSHES)
    check_choice(normalization, "normalization", _NORMALIZATIONS)
    check_choice(reduction, "reduction", _REDUCTIONS)
    check_choice(rounding, "rounding", _ROUNDINGS)
    s = check_number(sigma, "sigma", low=0.0, low_inclusive=False)
    m = check_number(margin, "margin", low=0.0, low_inclusive=False)
    return s, m


def _push_term(
    mean: Tensor, present: Tensor, penalty_of: tuple[str, float, float], normalization: str
) -> Tensor:
    r"""Return the push term ``(B,)`` of mean tags ``mean (B, N, D)`` in slots ``present``.

    ``penalty_of = (push, sigma, margin)``: the penalty of a pair's difference
    :math:`\Delta` is ``exp(-||Δ||² / (2σ²))`` (``"exp"``) or ``max(0, margin -
    ||Δ||)`` (``"margin"``). ``"reference"``: half the mean over ordered
    pairs of different present slots (0 with fewer than two); ``"paper"``:
    the sum over all pairs of present slots, diagonal included, over
    :math:`N^2`. The one definition of the push, for :func:`grouping_loss` and
    ``instance_grouping_loss``.
    """
    push, sigma, margin = penalty_of
    diff = mean.unsqueeze(2) - mean.unsqueeze(1)  # (B, N, N, D)
    pair = present.unsqueeze(2) & present.unsqueeze(1)  # (B, N, N)
    if push == "exp":
        sq_dist = (diff**2).sum(-1)
        penalty = torch.exp(-sq_dist / (2.0 * float(sigma) ** 2))
    else:
        # vector_norm's gradient at 0 is 0 (no NaN for identical mean tags)
        penalty = torch.clamp(float(margin) - torch.linalg.vector_norm(diff, dim=-1), min=0.0)
    num = present.sum(-1).to(mean.dtype)  # (B,)
    if normalization == "reference":
        eye = torch.eye(mean.shape[1], dtype=torch.bool, device=mean.device)
        total = torch.where(pair & ~eye, penalty, torch.zeros_like(penalty)).sum((-1, -2))
        return 0.5 * total / (num * (num - 1)).clamp(min=1)
    total = torch.where(pair, penalty, torch.zeros_like(penalty)).sum((-1, -2))
    return total / (num.clamp(min=1) ** 2)


def _reduce(per_image: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        # mean over zero images is 0 (not NaN) and stays attached to the graph
        return per_image.sum() / max(per_image.shape[0], 1)
    if reduction == "sum":
        return per_image.sum()
    return per_image


def _is_compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and compiler.is_compiling())


def _gather_person_tags(
    tags: Tensor, keypoints: Tensor, mask: Tensor | None, rounding: str
) -> tuple[Tensor, Tensor]:
    """Gather the tag vector at every labelled joint.

    Returns the gathered tags (B, N, K, D) in the accumulation dtype and the
    validity weights (B, N, K) (1.0 where the joint counts, 0.0 elsewhere).
    """
    b, k = tags.shape[0], tags.shape[1]
    h, w = tags.shape[-2], tags.shape[-1]
    d = tags.shape[2] if tags.ndim == 5 else 1
    flat = tags.reshape(b, k, d, h * w)

    xy = keypoints[..., :2]
    labelled = keypoints[..., 2] > 0
    if rounding == "round":
        pix = torch.floor(xy + 0.5)
    elif rounding == "floor":
        pix = torch.floor(xy)
    else:
        pix = torch.trunc(xy)
    # non-finite coordinates of unlabelled joints must not poison the index
    pix = torch.where(labelled.unsqueeze(-1), pix, torch.zeros_like(pix))
    xi, yi = pix[..., 0], pix[..., 1]
    valid = labelled & (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    xi = torch.where(valid, xi, torch.zeros_like(xi)).long()
    yi = torch.where(valid, yi, torch.zeros_like(yi)).long()
    index = yi * w + xi  # (B, N, K)

    n = keypoints.shape[1]
    b_idx = torch.arange(b, device=tags.device).view(b, 1, 1).expand(b, n, k)
    k_idx = torch.arange(k, device=tags.device).view(1, 1, k).expand(b, n, k)
    if mask is not None:
        keep = mask.reshape(b, h * w)[b_idx, index] > 0
        valid = valid & keep
    # advanced indices separated by a slice: their broadcast dims come first -> (B, N, K, D)
    gathered = flat[b_idx, k_idx, :, index]
    acc = torch.promote_types(gathered.dtype, torch.float32)
    return gathered.to(acc), valid.to(acc)


def grouping_loss(
    tags: Tensor,
    keypoints: Tensor,
    mask: Tensor | None = None,
    *,
    push: PushKind = "exp",
    sigma: float = 2**-0.5,
    margin: float = 1.0,
    normalization: Normalization = "reference",
    reduction: Reduction = "mean",
    rounding: Rounding = "trunc",
) -> PullPush:
    r"""Associative-embedding grouping loss (pull and push terms).

    Parameters
    ----------
    tags : Tensor, shape (B, K, H, W) or (B, K, D, H, W)
        Predicted tag maps, one per joint type, with 1-D or D-dimensional tags.
        Any floating dtype; the loss is accumulated in at least float32 (also
        under autocast).
    keypoints : Tensor, shape (B, N, K, 3)
        Annotated people, padded to N per image: ``x, y`` in tag-map pixels
        (x = column, y = row) and a visibility ``v``; a joint is labelled when
        ``v > 0``. People with no labelled joint are padding and are ignored.
        Coordinates follow the library's convention: pixel (row i, column j)
        covers ``[j, j+1) × [i, i+1)`` and its centre is ``(j + 0.5, i + 0.5)``
        (the references' convention, the one :func:`decode` reports with its
        default ``center_shift=0.5`` and :func:`render_heatmaps` renders). The
        tag is read at column ``int(x)``, row ``int(y)`` (truncation towards
        zero, as HigherHRNet's and mmpose's joint indices): the pixel that
        contains the keypoint, and pixel 0 for a keypoint less than one pixel
        outside the left or top border; see ``rounding``. Joints that fall
        further outside the map do not count. Moved to ``tags.device`` if needed.
    mask : Tensor, shape (B, H, W), optional
        Ignore mask: joints on pixels where ``mask <= 0`` do not count (the
        references' crowd masks use 1 = valid, 0 = ignore).
    push : {"exp", "margin"}, default "exp"
        Push penalty of a pair of people whose mean tags differ by
        :math:`\Delta`: ``"exp"`` is :math:`\exp(-\|\Delta\|^2 / (2\sigma^2))`
        (pose-ae-train, HigherHRNet ``'exp'``); ``"margin"`` is
        :math:`\max(0, m - \|\Delta\|)` (HigherHRNet ``'max'``, CornerNet).
    sigma : float, default 2**-0.5
        Width of the ``"exp"`` push. The default gives the references'
        :math:`\exp(-\|\Delta\|^2)`; the paper writes :math:`\sigma = 1`.
    margin : float, default 1.0
        Margin :math:`m` of the ``"margin"`` push (HigherHRNet and CornerNet use 1).
    normalization : {"reference", "paper"}, default "reference"
        ``"reference"`` (default; the values of pose-ae-train's C loss and of
        HigherHRNet's ``AELoss``, which produced the published COCO results):
        a person's pull is the mean over its labelled joints of
        :math:`\|h_k - \bar h_n\|^2 / D`, averaged over people; push is
        ``0.5 ×`` the mean of the penalty over ordered pairs of distinct
        people (0 with fewer than two people).
        ``"paper"``: Newell et al. literally, pull
        :math:`\frac1N \sum_n \sum_k \|\bar h_n - h_k\|^2` (a sum over joints,
        no division by D) and push :math:`\frac1{N^2}\sum_n\sum_{n'}` of the
        penalty over all ordered pairs *including* :math:`n = n'` (each
        diagonal term is a constant: 1 for ``"exp"``, ``margin`` for
        ``"margin"``; it carries no gradient). Pass ``sigma=1.0`` for the
        paper's σ.
    reduction : {"mean", "sum", "none"}, default "mean"
        Reduction over images. ``"none"`` returns per-image terms of shape
        (B,). ``"mean"`` averages over all B images, including those without
        people (as the references average over the batch).
    rounding : {"trunc", "floor", "round"}, default "trunc"
        How a continuous keypoint selects its pixel: ``"trunc"`` (``int(x)``,
        the joint index of pose-ae-train, HigherHRNet and mmpose 0.x: the pixel
        that contains it, with ``-1 < x < 0`` counted at pixel 0),
        ``"floor"`` (the pixel that contains it; joints left of or above the
        map never count) or ``"round"`` (the nearest pixel, for
        coordinates whose integers are pixel centres, as mmpose 1.x rounds).

    Returns
    -------
    PullPush
        Named tuple ``(pull, push)`` of tensors in the accumulation dtype.
        Images with no labelled person give 0 for both terms; images with one
        person give push 0 (``"reference"``). Both terms stay attached to the
        graph of ``tags``.

    Raises
    ------
    TypeError
        If ``tags``, ``keypoints`` or ``mask`` is not a floating tensor.
    ValueError
        If a shape is wrong or inconsistent, an option is unknown or out of
        range, ``keypoints`` holds NaN/Inf in a labelled joint or in ``v``, or
        a gathered tag is NaN/Inf.

    See Also
    --------
    AssociativeEmbeddingLoss : The same loss as a :class:`torch.nn.Module`.

    Notes
    -----
    For image b with people n = 1..N (each with at least one counted joint)
    and :math:`K_n` counted joints, :math:`\bar h_n = \frac{1}{K_n}\sum_k h_k(x_{nk})`.
    With ``normalization="reference"``:

    .. math::

        L_{pull} = \frac{1}{N}\sum_n \frac{1}{K_n}\sum_k
                   \frac{\|h_k(x_{nk}) - \bar h_n\|^2}{D}, \qquad
        L_{push} = \frac{1}{2}\,\frac{1}{N(N-1)}\sum_{n \ne n'}
                   \exp\!\left(-\frac{\|\bar h_n - \bar h_{n'}\|^2}{2\sigma^2}\right).

    The paper weights both terms by 1e-3 against a heatmap MSE averaged over
    pixels. Short training runs may need a larger weight for the tags to
    separate: with all tags equal the ``"exp"`` push has zero gradient.

    Mapping to other implementations: mmpose 1.x sums over the batch
    (``reduction="sum"``) and, for D > 1, sums per-dimension push terms;
    CornerNet's push has no factor 0.5 (use a push weight of 2) and is summed
    over images.

    Examples
    --------
    >>> import torch
    >>> import associative_embedding as ae
    >>> tags = torch.zeros(1, 2, 4, 4)
    >>> tags[0, :, :, 2:] = 1.0                  # right half of the map has tag 1
    >>> people = torch.tensor([[[[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]],
    ...                         [[3.0, 3.0, 1.0], [2.0, 2.0, 1.0]]]])  # (B=1, N=2, K=2, 3)
    >>> pull, push = ae.grouping_loss(tags, people)
    >>> round(float(pull), 6), round(float(push), 6)
    (0.0, 0.18394)
    """
    _check_options(push, sigma, margin, normalization, reduction, rounding)
    check_float_array(tags, "tags", allow_numpy=False)
    check_float_array(keypoints, "keypoints", allow_numpy=False)
    layout = check_layout(tags, "tags", ["BKHW", "BKDHW"])
    check_layout(keypoints, "keypoints", ["BNK3"])
    b, k = tags.shape[0], tags.shape[1]
    h, w = tags.shape[-2], tags.shape[-1]
    kk = keypoints.shape[2]
    if layout == "BKHW" and keypoints.shape[0] == b and 0 < kk < k and k % kk == 0:
        raise ValueError(
            f"tags of shape {shape_str(tags.shape)} has {k} channels, {k // kk} times the "
            f"K = {kk} joints of keypoints {shape_str(keypoints.shape)}: tags must have shape "
            f"(B, K, H, W) or (B, K, D, H, W); for tags flattened to (B, D*K, H, W) with "
            f"channel d*K + k (mmpose), pass tags.view(B, D, K, H, W).transpose(1, 2)"
        )
    if keypoints.shape[0] != b or keypoints.shape[2] != k or keypoints.shape[3] != 3:
        raise ValueError(
            f"keypoints must have shape (B, N, K, 3) = ({b}, N, {k}, 3) to match tags "
            f"{layout} {shape_str(tags.shape)}, got shape {shape_str(keypoints.shape)}"
        )
    if layout == "BKDHW" and tags.shape[2] == 0:
        raise ValueError(
            f"tags must have a tag dimension D >= 1, got shape {shape_str(tags.shape)}"
        )
    keypoints = keypoints.to(tags.device)
    if mask is not None:
        if not isinstance(mask, Tensor):
            raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
        check_layout(mask, "mask", ["BHW"])
        if tuple(mask.shape) != (b, h, w):
            raise ValueError(
                f"mask must have shape (B, H, W) = ({b}, {h}, {w}), got {shape_str(mask.shape)}"
            )
        mask = mask.to(tags.device)
    if not _is_compiling():
        labelled = keypoints[..., 2] > 0
        bad_v = ~torch.isfinite(keypoints[..., 2])
        bad_xy = labelled & ~torch.isfinite(keypoints[..., :2]).all(-1)
        x, y = keypoints[..., 0], keypoints[..., 1]
        off = labelled & ~((x >= 0) & (x < w) & (y >= 0) & (y < h))
        n_bad, n_labelled, n_off = torch.stack(
            [(bad_v | bad_xy).sum(), labelled.sum(), off.sum()]
        ).tolist()  # one transfer from the device
        if n_bad:
            raise ValueError(
                "keypoints contains NaN or infinite values in v or in the x, y of labelled "
                f"joints ({n_bad} joint(s))"
            )
        warn_off_map(n_labelled, n_off, (h, w), "keypoints")

    d = tags.shape[2] if layout == "BKDHW" else 1
    person_tags, weight = _gather_person_tags(tags, keypoints, mask, rounding)
    if not _is_compiling():
        bad = (weight > 0) & ~torch.isfinite(person_tags).all(-1)
        if bool(bad.any()):
            raise ValueError(
                f"tags contains NaN or infinite values at {int(bad.sum())} labelled joint(s)"
            )
    # zero the tags of non-counted joints so that NaN/Inf there cannot leak into sums
    person_tags = torch.where(weight.unsqueeze(-1) > 0, person_tags, torch.zeros_like(person_tags))

    count = weight.sum(-1)  # (B, N) joints per person
    present = count > 0  # (B, N)
    safe_count = count.clamp(min=1)
    mean = (person_tags * weight.unsqueeze(-1)).sum(2) / safe_count.unsqueeze(-1)  # (B, N, D)
    sq = ((person_tags - mean.unsqueeze(2)) ** 2).sum(-1) * weight  # (B, N, K)
    num_people = present.sum(-1).to(mean.dtype)  # (B,)
    safe_people = num_people.clamp(min=1)

    if normalization == "reference":
        pull_person = sq.sum(-1) / (safe_count * d)
    else:
        pull_person = sq.sum(-1)
    pull = (pull_person * present).sum(-1) / safe_people

    push_term = _push_term(mean, present, (push, sigma, margin), normalization)
    return PullPush(_reduce(pull, reduction), _reduce(push_term, reduction))


class AssociativeEmbeddingLoss(nn.Module):
    r"""Associative-embedding grouping loss as a module.

    Stores validated options and calls :func:`grouping_loss` in ``forward``;
    the options and their sources are documented there.

    Parameters
    ----------
    push : {"exp", "margin"}, default "exp"
        Push penalty.
    sigma : float, default 2**-0.5
        Width of the ``"exp"`` push (the references' :math:`\exp(-\|\Delta\|^2)`).
    margin : float, default 1.0
        Margin of the ``"margin"`` push.
    normalization : {"reference", "paper"}, default "reference"
        ``"reference"``: pose-ae-train / HigherHRNet values. ``"paper"``: the
        paper's formula literally.
    reduction : {"mean", "sum", "none"}, default "mean"
        Reduction over images.
    rounding : {"trunc", "floor", "round"}, default "trunc"
        How a keypoint selects its tag pixel.

    Raises
    ------
    ValueError
        If an option is unknown or out of range (checked at construction).

    See Also
    --------
    grouping_loss : The functional form, with the equations.

    Notes
    -----
    Shapes: ``tags`` (B, K, H, W) or (B, K, D, H, W); ``keypoints`` (B, N, K, 3)
    in tag-map pixels; optional ``mask`` (B, H, W). Returns a
    :class:`PullPush` of scalars, or of (B,) tensors with ``reduction="none"``.

    Examples
    --------
    >>> import torch
    >>> import associative_embedding as ae
    >>> criterion = ae.AssociativeEmbeddingLoss()
    >>> tags = torch.randn(2, 17, 32, 32, requires_grad=True)
    >>> keypoints = torch.zeros(2, 3, 17, 3)     # 3 people slots per image
    >>> keypoints[0, :2, :, :2] = torch.rand(2, 17, 2) * 31
    >>> keypoints[0, :2, :, 2] = 1               # image 0: two labelled people
    >>> pull, push = criterion(tags, keypoints)  # image 1 has nobody
    >>> (1e-3 * (pull + push)).backward()
    >>> tags.grad.shape
    torch.Size([2, 17, 32, 32])
    """

    def __init__(
        self,
        *,
        push: PushKind = "exp",
        sigma: float = 2**-0.5,
        margin: float = 1.0,
        normalization: Normalization = "reference",
        reduction: Reduction = "mean",
        rounding: Rounding = "trunc",
    ) -> None:
        super().__init__()
        s, m = _check_options(push, sigma, margin, normalization, reduction, rounding)
        self.push: PushKind = push
        self.sigma = s
        self.margin = m
        self.normalization: Normalization = normalization
        self.reduction: Reduction = reduction
        self.rounding: Rounding = rounding

    def forward(self, tags: Tensor, keypoints: Tensor, mask: Tensor | None = None) -> PullPush:
        """Compute ``(pull, push)``; see :func:`grouping_loss`.

        Parameters
        ----------
        tags : Tensor, shape (B, K, H, W) or (B, K, D, H, W)
            Predicted tag maps.
        keypoints : Tensor, shape (B, N, K, 3)
            Padded people: x, y in tag-map pixels, v > 0 labelled.
        mask : Tensor, shape (B, H, W), optional
            Ignore mask, 0 = ignore.

        Returns
        -------
        PullPush
            The pull and push terms.
        """
        return grouping_loss(
            tags,
            keypoints,
            mask,
            push=self.push,
            sigma=self.sigma,
            margin=self.margin,
            normalization=self.normalization,
            reduction=self.reduction,
            rounding=self.rounding,
        )

    def extra_repr(self) -> str:
        """Options shown in ``repr``."""
        return (
            f"push={self.push!r}, sigma={self.sigma:.6g}, margin={self.margin:.6g}, "
            f"normalization={self.normalization!r}, reduction={self.reduction!r}, "
            f"rounding={self.rounding!r}"
        )


def heatmap_loss(
    heatmaps: Tensor,
    targets: Tensor,
    mask: Tensor | None = None,
    *,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Masked mean squared error between predicted and target heatmaps.

    Parameters
    ----------
    heatmaps : Tensor, shape (B, K, H, W)
        Predicted detection heatmaps.
    targets : Tensor, shape (B, K, H, W)
        Target heatmaps, e.g. from :func:`render_heatmaps`.
    mask : Tensor, shape (B, H, W) or (B, K, H, W), optional
        Per-pixel weight, 1 = valid, 0 = ignore (crowd regions, unlabelled
        people). Broadcast over joints when (B, H, W).
    reduction : {"mean", "sum", "none"}, default "mean"
        Reduction over images; ``"none"`` gives shape (B,).

    Returns
    -------
    Tensor
        Per image, :math:`\frac{1}{KHW}\sum_{k,y,x} m\,(\hat y - y)^2`
        (pose-ae-train's ``HeatmapLoss`` and HigherHRNet's: the divisor is
        the full map size K·H·W, not the number of unmasked pixels), reduced
        over images. Accumulated in at least float32.

    Raises
    ------
    TypeError
        If an input is not a floating tensor.
    ValueError
        If shapes disagree, ``reduction`` is unknown, or ``targets``/``mask``
        hold NaN/Inf.

    See Also
    --------
    HeatmapLoss : The same loss as a module.

    Examples
    --------
    >>> import torch
    >>> import associative_embedding as ae
    >>> pred = torch.zeros(1, 1, 2, 2)
    >>> target = torch.ones(1, 1, 2, 2)
    >>> float(ae.heatmap_loss(pred, target))
    1.0
    >>> mask = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    >>> float(ae.heatmap_loss(pred, target, mask))
    0.25
    """
    check_choice(reduction, "reduction", _REDUCTIONS)
    check_float_array(heatmaps, "heatmaps", allow_numpy=False)
    check_float_array(targets, "targets", allow_numpy=False)
    check_layout(heatmaps, "heatmaps", ["BKHW"])
    if tuple(targets.shape) != tuple(heatmaps.shape):
        raise ValueError(
            f"targets must have the shape of heatmaps (B, K, H, W) = {shape_str(heatmaps.shape)}, "
            f"got {shape_str(targets.shape)}"
        )
    targets = targets.to(heatmaps.device)
    b, k, h, w = heatmaps.shape
    if mask is not None:
        check_float_array(mask, "mask", allow_numpy=False)
        layout = check_layout(mask, "mask", ["BHW", "BKHW"])
        want = (b, h, w) if layout == "BHW" else (b, k, h, w)
        if tuple(mask.shape) != want:
            raise ValueError(
                f"mask must have shape {shape_str(want)} ({', '.join(layout)}), "
                f"got {shape_str(mask.shape)}"
            )
        mask = mask.to(heatmaps.device)
        if layout == "BHW":
            mask = mask.unsqueeze(1)
    if not _is_compiling():
        for name, x in (("targets", targets), ("mask", mask)):
            if x is not None and x.numel() and not bool(torch.isfinite(x).all()):
                raise ValueError(f"{name} contains NaN or infinite values")
    acc = torch.promote_types(heatmaps.dtype, torch.float32)
    err = (heatmaps.to(acc) - targets.to(acc)) ** 2
    if mask is not None:
        err = err * mask.to(acc)
    per_image = err.reshape(b, -1).sum(-1) / max(k * h * w, 1)
    return _reduce(per_image, reduction)


class HeatmapLoss(nn.Module):
    """Masked heatmap MSE as a module; see :func:`heatmap_loss`.

    Parameters
    ----------
    reduction : {"mean", "sum", "none"}, default "mean"
        Reduction over images.

    Raises
    ------
    ValueError
        If ``reduction`` is unknown (checked at construction).

    See Also
    --------
    heatmap_loss : The functional form.

    Examples
    --------
    >>> import torch
    >>> import associative_embedding as ae
    >>> criterion = ae.HeatmapLoss(reduction="none")
    >>> criterion(torch.zeros(2, 17, 8, 8), torch.ones(2, 17, 8, 8)).tolist()
    [1.0, 1.0]
    """

    def __init__(self, *, reduction: Reduction = "mean") -> None:
        super().__init__()
        check_choice(reduction, "reduction", _REDUCTIONS)
        self.reduction: Reduction = reduction

    def forward(self, heatmaps: Tensor, targets: Tensor, mask: Tensor | None = None) -> Tensor:
        """Compute the masked MSE; see :func:`heatmap_loss`.

        Parameters
        ----------
        heatmaps : Tensor, shape (B, K, H, W)
            Predicted heatmaps.
        targets : Tensor, shape (B, K, H, W)
            Target heatmaps.
        mask : Tensor, shape (B, H, W) or (B, K, H, W), optional
            1 = valid, 0 = ignore.

        Returns
        -------
        Tensor
            The reduced loss.
        """
        return heatmap_loss(heatmaps, targets, mask, reduction=self.reduction)

    def extra_repr(self) -> str:
        """Options shown in ``repr``."""
        return f"reduction={self.reduction!r}"
