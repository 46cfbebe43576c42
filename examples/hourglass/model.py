"""Stacked hourglass for bottom-up multi-person pose (Newell, Huang & Deng, NIPS 2017).

A port of ``princeton-vl/pose-ae-train``'s ``PoseNet`` (``models/posenet.py``,
``models/layers.py``):

- stem: 7x7 stride-2 conv, 3x3 conv, 2x2 max-pool, two 3x3 convs -> stride 4;
- ``nstack`` hourglasses; every level runs one 3x3 conv on the skip branch and
  one 3x3 conv down (``f -> f + increase``) and one back up (``f + increase -> f``),
  so the features widen with depth (256 -> 384 -> 512 -> 640 -> 768 by default);
  the branches meet by nearest-neighbour upsampling and addition;
- after each hourglass two 3x3 convs and a 1x1 prediction conv; between stacks the
  prediction and the features are merged back by 1x1 convs and added to the input
  of the stack (residual link across each hourglass);
- output ``2K`` channels per stack (``K`` heatmaps then ``K * D`` tags), all stacks
  returned for intermediate supervision.

``residual=True`` adds identity shortcuts (ResNet's, and the residual modules of
the original stacked hourglass) around every conv or pair of convs whose input and
output widths match: each level's skip conv (``x + up1(x)``), the innermost conv,
the stem's two convs at 1/4 and the two feature convs after each hourglass. It adds
no parameters; pose-ae-train and mmpose's ``HourglassAENet`` have none.

``bn=True`` adds BatchNorm after every conv (conv -> BN -> ReLU, the order of
mmpose's ``HourglassAENet``); pose-ae-train has none. Two ways to get maps at half
the input resolution (a 1/4 map is too coarse to place joints within COCO's OKS
tolerance on small images): ``stem_stride=2`` drops the stem's max-pool, so the
hourglasses run at 1/2; ``head_upsample=2`` keeps them at 1/4 and adds a final head,
as HigherHRNet does: the last hourglass's features are upsampled (nearest) and added
to the stem's 1/2-resolution features (1x1 conv), then a 3x3 conv and the 1x1
prediction; the earlier stacks' 1/4 predictions are upsampled bilinearly for their
intermediate supervision. The ``tiny`` preset uses the head: 2.2x cheaper per image
on a CPU than running the hourglasses at 1/2.

Images are ``(B, 3, H, W)`` float tensors in [0, 1] (pose-ae-train feeds RGB / 255
with no mean/std normalisation). H and W must be divisible by
``stem_stride * 2**depth``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["HourglassConfig", "PoseNet", "split_outputs"]


@dataclass(frozen=True)
class HourglassConfig:
    """Network and input geometry of one preset.

    Attributes
    ----------
    nstack : number of stacked hourglasses (pose-ae-train: 4).
    inp_dim : feature width entering each hourglass (pose-ae-train: 256).
    increase : channels added per hourglass level (pose-ae-train: 128).
    depth : number of down-samplings inside each hourglass (pose-ae-train: 4).
    num_joints : K, heatmap channels.
    tag_dim : D, tag channels per joint (output has ``K * (1 + D)`` channels).
    bn : BatchNorm after every conv (mmpose) or none (pose-ae-train).
    stem_channels : widths of the stem's first two convs (pose-ae-train: 64, 128).
    stem_stride : 4 (pose-ae-train) or 2 (stem without max-pool).
    head_upsample : 1 (pose-ae-train) or 2: a final head predicts at twice the
        hourglasses' resolution from their features and the stem's 1/2 features
        (needs ``stem_stride=4``).
    head_dim : width of that head (0: ``inp_dim``); a narrower head takes the
        hourglasses' features through a 1x1 convolution before upsampling them.
    residual : identity shortcuts around the convs whose widths match (pose-ae-train:
        none).
    head_interpolation : how the upsampling head enlarges the hourglasses' features:
        ``"nearest"`` or ``"bilinear"`` (``align_corners=False``).
    input_size : square training input side in pixels.
    """

    nstack: int = 4
    inp_dim: int = 256
    increase: int = 128
    depth: int = 4
    num_joints: int = 17
    tag_dim: int = 1
    bn: bool = False
    stem_channels: tuple[int, int] = (64, 128)
    stem_stride: int = 4
    head_upsample: int = 1
    head_dim: int = 0
    residual: bool = False
    head_interpolation: str = "nearest"
    input_size: int = 512

    @property
    def output_stride(self) -> int:
        """Input pixels per output pixel."""
        return self.stem_stride // self.head_upsample

    @property
    def output_size(self) -> int:
        """Side of the output maps in pixels."""
        return self.input_size // self.output_stride

    @property
    def flip_shift(self) -> int:
        """Input pixels by which a mirrored image is shifted left for the flip test.

        The stem's 7x7 stride-2 conv (padding 3) centres its output pixel ``j`` on input
        pixel ``2j``, not between pixels ``2j`` and ``2j + 1``; max-pooling and nearest
        upsampling keep that grid. The network therefore samples a mirrored image on a
        grid one input pixel away from the original's, and a trained network, which
        has learnt to undo its own grid offset, places the joints of the mirrored pass
        one input pixel off once its maps are mirrored back. Shifting the mirrored
        image left by this many pixels (zero fill, the padding the original pass sees)
        makes the two passes line up exactly (tested with mirror-symmetric kernels).
        """
        return 1  # one stride-2 conv with an odd kernel, at full resolution

    @property
    def out_channels(self) -> int:
        """Channels predicted per stack: K heatmaps + K * D tags."""
        return self.num_joints * (1 + self.tag_dim)

    def to_dict(self) -> dict:
        """Plain dict (for checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> HourglassConfig:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["stem_channels"] = tuple(d["stem_channels"])
        # checkpoints written before these fields existed
        d.setdefault("head_upsample", 1)
        d.setdefault("head_dim", 0)
        d.setdefault("residual", False)
        d.setdefault("head_interpolation", "nearest")
        return cls(**d)

    def replace(self, **changes) -> HourglassConfig:
        """Copy with some fields changed."""
        return replace(self, **changes)


class Conv(nn.Module):
    """k x k conv (same padding) -> optional BN -> optional ReLU."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, *, bn=False, relu=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding=(k - 1) // 2, bias=not bn)
        self.bn = nn.BatchNorm2d(cout) if bn else None
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.relu:
            x = F.relu(x, inplace=True)
        return x


class Hourglass(nn.Module):
    """One recursive hourglass level: f channels here, f + increase one level down.

    ``residual``: ``x + up1(x)`` on the skip branch and ``y + low2(y)`` around the
    innermost conv.
    """

    def __init__(self, depth: int, f: int, increase: int, *, bn: bool, residual: bool = False):
        super().__init__()
        nf = f + increase
        self.residual = residual
        self.up1 = Conv(f, f, 3, bn=bn)
        self.low1 = Conv(f, nf, 3, bn=bn)
        self.low2 = (
            Hourglass(depth - 1, nf, increase, bn=bn, residual=residual)
            if depth > 1
            else Conv(nf, nf, 3, bn=bn)
        )
        self.low3 = Conv(nf, f, 3, bn=bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up1 = self.up1(x)
        low1 = self.low1(F.max_pool2d(x, 2))
        low2 = self.low2(low1)
        if self.residual:
            up1 = up1 + x
            if not isinstance(self.low2, Hourglass):
                low2 = low2 + low1
        low = self.low3(low2)
        return up1 + F.interpolate(low, scale_factor=2, mode="nearest")


class PoseNet(nn.Module):
    """Stacked hourglass predicting K heatmaps and K * D tag maps per stack.

    Parameters
    ----------
    config : HourglassConfig

    Forward
    -------
    images : (B, 3, H, W) float in [0, 1]
    returns : (B, nstack, K * (1 + D), H / s, W / s), s = ``config.output_stride``
    """

    def __init__(self, config: HourglassConfig):
        super().__init__()
        if config.stem_stride not in (2, 4):
            raise ValueError(f"stem_stride must be 2 or 4, got {config.stem_stride}")
        if config.head_upsample not in (1, 2) or (
            config.head_upsample == 2 and config.stem_stride != 4
        ):
            raise ValueError(
                "head_upsample must be 1, or 2 with stem_stride 4, got "
                f"head_upsample={config.head_upsample}, stem_stride={config.stem_stride}"
            )
        if config.head_interpolation not in ("nearest", "bilinear"):
            raise ValueError(
                "head_interpolation must be 'nearest' or 'bilinear', got "
                f"{config.head_interpolation!r}"
            )
        self.config = config
        c = config
        c1, c2 = c.stem_channels
        # the stem up to 1/2 resolution, then (stem_stride 4) the pool, then two convs
        self.pre_half = nn.Sequential(Conv(3, c1, 7, 2, bn=c.bn), Conv(c1, c2, 3, bn=c.bn))
        stem = [nn.MaxPool2d(2, 2)] if c.stem_stride == 4 else []
        stem += [Conv(c2, c2, 3, bn=c.bn), Conv(c2, c.inp_dim, 3, bn=c.bn)]
        self.pre = nn.Sequential(*stem)
        # a shortcut around the stem's last two convs needs equal widths
        self.pre_residual = c.residual and c2 == c.inp_dim
        self.hgs = nn.ModuleList(
            Hourglass(c.depth, c.inp_dim, c.increase, bn=c.bn, residual=c.residual)
            for _ in range(c.nstack)
        )
        self.features = nn.ModuleList(
            nn.Sequential(
                Conv(c.inp_dim, c.inp_dim, 3, bn=c.bn), Conv(c.inp_dim, c.inp_dim, 3, bn=c.bn)
            )
            for _ in range(c.nstack)
        )
        # with the head, the last stack predicts through it only (no unused layers: DDP)
        n_outs = c.nstack if c.head_upsample == 1 else c.nstack - 1
        self.outs = nn.ModuleList(
            Conv(c.inp_dim, c.out_channels, 1, relu=False) for _ in range(n_outs)
        )
        self.head_reduce = None
        if c.head_upsample == 2:
            hd = c.head_dim or c.inp_dim
            if hd != c.inp_dim:
                self.head_reduce = Conv(c.inp_dim, hd, 1, bn=c.bn, relu=False)
            self.head_skip = Conv(c2, hd, 1, bn=c.bn, relu=False)
            self.head = nn.Sequential(
                Conv(hd, hd, 3, bn=c.bn), Conv(hd, c.out_channels, 1, relu=False)
            )
        self.merge_features = nn.ModuleList(
            Conv(c.inp_dim, c.inp_dim, 1, relu=False) for _ in range(c.nstack - 1)
        )
        self.merge_preds = nn.ModuleList(
            Conv(c.out_channels, c.inp_dim, 1, relu=False) for _ in range(c.nstack - 1)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        multiple = self.config.stem_stride * 2**self.config.depth
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        if images.shape[2] % multiple or images.shape[3] % multiple:
            raise ValueError(
                f"images H and W must be multiples of {multiple}, got {tuple(images.shape[2:])}"
            )
        half = self.pre_half(images)
        if self.pre_residual:
            x = self.pre[0](half) if self.config.stem_stride == 4 else half
            x = x + self.pre[-1](self.pre[-2](x))
        else:
            x = self.pre(half)
        preds = []
        last = self.config.nstack - 1
        for i in range(self.config.nstack):
            hg = self.hgs[i](x)
            feature = self.features[i](hg)
            if self.config.residual:
                feature = feature + hg
            if i == last and self.config.head_upsample == 2:
                if self.head_reduce is not None:
                    feature = self.head_reduce(feature)
                if self.config.head_interpolation == "bilinear":
                    up = F.interpolate(
                        feature, scale_factor=2, mode="bilinear", align_corners=False
                    )
                else:
                    up = F.interpolate(feature, scale_factor=2, mode="nearest")
                preds.append(self.head(up + self.head_skip(half)))
                break
            pred = self.outs[i](feature)
            if i < last:
                x = x + self.merge_preds[i](pred) + self.merge_features[i](feature)
            if self.config.head_upsample == 2:
                # intermediate supervision at the output resolution
                pred = F.interpolate(pred, scale_factor=2, mode="bilinear", align_corners=False)
            preds.append(pred)
        return torch.stack(preds, 1)


def split_outputs(
    outputs: torch.Tensor, num_joints: int, tag_dim: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split (..., K * (1 + D), H, W) into heatmaps (..., K, H, W) and tags.

    Tags come out as (..., K, H, W) for D = 1 and (..., K, D, H, W) otherwise
    (the library's tag layouts).
    """
    k = num_joints
    rest = outputs.shape[-3] - k * (1 + tag_dim)
    # one split (its gradient is one concatenation) rather than two slices (each a
    # zero-filled gradient of the whole tensor)
    heatmaps, tags, _ = outputs.split([k, k * tag_dim, rest], dim=-3)
    if tag_dim > 1:
        tags = tags.unflatten(-3, (k, tag_dim))
    return heatmaps, tags
