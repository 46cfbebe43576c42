"""A small U-Net that predicts a foreground logit and D tag channels per pixel.

Two coordinate channels (x and y in [-1, 1]) are appended to the image ("CoordConv", Liu et al.
2018): with them a network can give every pixel of a shape a tag that depends on where the
shape is, which is what tells apart two identical touching shapes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class InstanceNet(nn.Module):
    """U-Net: ``widths`` channels at scales 1, 1/2, 1/4, ...; output ``(B, 1 + D, H, W)``."""

    def __init__(self, tag_dim: int = 4, widths: tuple[int, ...] = (16, 32, 48, 64)) -> None:
        super().__init__()
        self.tag_dim = tag_dim
        self.down = nn.ModuleList()
        c_prev = 3 + 2
        for c in widths:
            self.down.append(_block(c_prev, c))
            c_prev = c
        self.up = nn.ModuleList()
        for c in reversed(widths[:-1]):
            self.up.append(_block(c_prev + c, c))
            c_prev = c
        self.head = nn.Conv2d(c_prev, 1 + tag_dim, 1)

    def forward(self, images: Tensor) -> Tensor:
        b, _, h, w = images.shape
        ys = torch.linspace(-1, 1, h, device=images.device, dtype=images.dtype)
        xs = torch.linspace(-1, 1, w, device=images.device, dtype=images.dtype)
        grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")).expand(b, 2, h, w)
        x = torch.cat([images, grid], 1)
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = nn.functional.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = nn.functional.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = block(torch.cat([x, skip], 1))
        return self.head(x)


def split_outputs(out: Tensor) -> tuple[Tensor, Tensor]:
    """Foreground logits ``(B, H, W)`` and tags ``(B, D, H, W)``."""
    return out[:, 0], out[:, 1:]
