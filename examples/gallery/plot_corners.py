"""
Corner pairing: boxes from two corner heatmaps and their tags
=============================================================

CornerNet (Law & Deng, 2018) detects an object's box as a pair of corners:
a heatmap of top-left corners, a heatmap of bottom-right corners, and a tag
at every corner. The two corners of one box must have similar tags, corners of
different boxes different tags: the associative-embedding loss and decoder
with K = 2 "joint types", and CornerNet's margin push.

Here the "network output" is a tag map that we fit directly with
:func:`~associative_embedding.grouping_loss` (``push="margin"``), a few hundred
steps of Adam on a free tensor, standing in for the tag head of a trained
network; the heatmaps are the targets of
:func:`~associative_embedding.render_heatmaps`. Then
:func:`~associative_embedding.decode` pairs the corners.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

import associative_embedding as ae

rng = np.random.default_rng(7)
torch.manual_seed(0)
SIZE = 64

# five overlapping boxes (x0, y0, x1, y1) in heatmap pixels
boxes = []
while len(boxes) < 5:
    x0, y0 = rng.uniform(2, SIZE - 24, size=2)
    w, h = rng.uniform(12, 30, size=2)
    if x0 + w < SIZE - 2 and y0 + h < SIZE - 2:
        boxes.append((x0, y0, x0 + w, y0 + h))
boxes = np.array(boxes)

# %%
# Corners as keypoints
# --------------------
# Each box is a "person" with two joints: 0 = top-left, 1 = bottom-right.
# ``keypoints`` has the layout ``(B, N, K, 3)`` of the keypoint loss.

keypoints = np.zeros((1, len(boxes), 2, 3), np.float32)
keypoints[0, :, 0, :2] = boxes[:, :2]
keypoints[0, :, 1, :2] = boxes[:, 2:]
keypoints[..., 2] = 1.0
heatmaps = ae.render_heatmaps(keypoints[0], (SIZE, SIZE), sigma=1.5, method="exact")[
    None
]  # (1, 2, H, W)
print(heatmaps.shape)

# %%
# Fitting the tags with the margin push
# -------------------------------------
# CornerNet's push: :math:`\max(0, 1 - \|\bar h_n - \bar h_{n'}\|)`, so the
# mean tags of two boxes end at least 1 apart, and corners of one box are
# pulled together. We start from small random tags.

tags = (0.1 * torch.randn(1, 2, SIZE, SIZE)).requires_grad_(True)
target = torch.from_numpy(keypoints)
opt = torch.optim.Adam([tags], lr=0.05)
history = []
for _ in range(200):
    pull, push = ae.grouping_loss(tags, target, push="margin", margin=1.0)
    opt.zero_grad()
    (pull + push).backward()
    opt.step()
    history.append((pull.item(), push.item()))
print(f"pull {history[-1][0]:.4f}  push {history[-1][1]:.4f}")

# %%
# Pairing the corners
# -------------------
# ``decode`` with K = 2 in the order (top-left, bottom-right). Without a
# person model there is no missing-joint recovery (``refine=False``). A box
# needs both corners, the bottom-right one below and to the right of the
# top-left one (CornerNet rejects the other pairs). With margin 1 between mean
# tags, half of it is a safe tag threshold.

(found,) = ae.decode(
    heatmaps, tags.detach().numpy(), joint_order=(0, 1), refine=False, tag_threshold=0.5,
    detection_threshold=0.3, nms_kernel=3,
)  # fmt: skip
kp = found.keypoints  # (P, 2, 3): x, y, score of each corner, in heatmap pixels
ok = (kp[:, :, 2] > 0).all(1) & (kp[:, 1, 0] > kp[:, 0, 0]) & (kp[:, 1, 1] > kp[:, 0, 1])
pred = np.concatenate([kp[ok, 0, :2], kp[ok, 1, :2]], 1)  # the convention of the input
print(f"{ok.sum()} boxes from {len(kp)} corner groups")
for box in pred[np.argsort(pred[:, 0])]:
    print("  x0 {:5.1f}  y0 {:5.1f}  x1 {:5.1f}  y1 {:5.1f}".format(*box))

# %%
# On the left the true boxes (dashed) and the decoded ones; in the middle the
# two corner heatmaps (red top-left, blue bottom-right); on the right the
# tag of each decoded corner: the two corners of a box share a tag.

fig, (a, b, c) = plt.subplots(1, 3, figsize=(11, 3.8), layout="constrained")
a.set_xlim(0, SIZE)
a.set_ylim(SIZE, 0)
a.set_aspect("equal")
colours = plt.cm.tab10(np.arange(10))
for x0, y0, x1, y1 in boxes:
    a.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ls="--", ec="0.5"))
for i, (x0, y0, x1, y1) in enumerate(pred):
    a.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=2, ec=colours[i % 10]))
a.set_title("boxes: true (dashed), decoded")
rgb = np.stack([heatmaps[0, 0], 0.3 * (heatmaps[0, 0] + heatmaps[0, 1]), heatmaps[0, 1]], -1)
b.imshow(np.clip(rgb, 0, 1), extent=(0, SIZE, SIZE, 0))  # pixel j spans [j, j + 1)
b.set_title("top-left (red), bottom-right (blue)")
for i, p in enumerate(np.flatnonzero(ok)):
    rows, cols = kp[p, :, 1].astype(int), kp[p, :, 0].astype(int)  # the corners' pixels
    corner_tags = tags.detach()[0, [0, 1], rows, cols]
    c.plot([0, 1], corner_tags.numpy(), "o-", color=colours[i % 10])
c.set_xticks([0, 1], ["top-left", "bottom-right"])
c.set_ylabel("tag")
c.set_title("corner tags per box")
plt.show()
