"""
Multi-scale and flip testing
============================

At test time the image can go through the network several times: at a few
scales and mirrored. :func:`~associative_embedding.aggregate` merges the
outputs: heatmaps are resized to one size and **averaged**; tag maps are
resized and **concatenated**, so that every pixel carries a tag *vector* with
one component per view. The decoder is the same for both.

We simulate the network's outputs on a synthetic scene (see
:doc:`synthetic_scene`) at scales 0.5, 1 and 2, each also mirrored (six
views). Every view has its own flaws, as real outputs do:

- each has a few spurious blobs (up to 0.4 high) and a few joints detected
  only weakly;
- in the original view at scale 1, persons 0 and 1 have nearly equal tags;
  in the mirrored view it is persons 2 and 3. (Tag values are free: each
  forward pass may place people differently on the tag axis.)
"""

import matplotlib.pyplot as plt
import numpy as np
from synthetic_scene import K, draw_scene, make_people

import associative_embedding as ae

rng = np.random.default_rng(2)
IMAGE, MAP = 256, 64
FLIP = ae.COCO_KEYPOINTS.flip_index
people = make_people(rng, 4, IMAGE)
image = draw_scene(rng, people, IMAGE)


def network(people_map, size, scale, person_tags):
    """Fake network output (heatmaps, tags) for people given in map pixels."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    # sub-pixel Gaussians, 1.5 pixels wide at scale 1, as wide in the image at every scale
    heat = ae.render_heatmaps(people_map, (size, size), sigma=1.5 * scale, method="exact")
    for _ in range(6):  # spurious blobs on random joint types
        k, (x, y) = rng.integers(K), rng.uniform(0, size, 2)
        blob = rng.uniform(0.15, 0.4) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (4.5 * scale**2))
        heat[k] = np.maximum(heat[k], blob)
    nearest = np.hypot(xx - people_map[..., 0, None, None], yy - people_map[..., 1, None, None])
    tags = np.asarray(person_tags)[nearest.argmin(axis=0)] + rng.normal(0, 0.1, heat.shape)
    return heat[None].astype(np.float32), tags[None].astype(np.float32)


def view(scale, flipped, person_tags):
    """What the network sees at one scale, maybe mirrored (map pixels)."""
    size = int(MAP * scale)
    seen = ae.scale_keypoints(people, (IMAGE, IMAGE), (size, size))
    if flipped:  # the mirror image: x -> W - x, and left and right joints swap
        seen = seen[:, FLIP]
        seen[..., 0] = size - seen[..., 0]
    weak = rng.uniform(size=seen.shape[:2]) < 0.1  # weak detections in this view
    heat, tags = network(seen, size, scale, person_tags)
    for p, k in zip(*np.nonzero(weak), strict=True):
        x, y = np.floor(seen[p, k, :2]).astype(int)
        heat[0, k, max(y - 3, 0) : y + 4, max(x - 3, 0) : x + 4] *= 0.08
    return heat, tags


scales = [0.5, 1.0, 2.0]
original = [view(s, False, [0.0, 0.3, 1.5, 2.7]) for s in scales]
mirrored = [view(s, True, [0.0, 1.4, 2.6, 2.9]) for s in scales]

# %%
# One view: scale 1, not mirrored
# ---------------------------------
# ``decode`` on the plain output at scale 1.

single_heat, single_tags = original[1]
(single,) = ae.decode(single_heat, single_tags)

# %%
# All six views
# -------------
# ``aggregate`` resizes every view to 64 × 64, flips the mirrored ones back
# (with the skeleton's ``flip_index``), averages the heatmaps, and keeps the
# tags of scale 1 (``tag_scales=(1,)``, as HigherHRNet does): the original and
# the mirrored tag, so D = 2.

heatmaps, tags = ae.aggregate(
    original, size=(MAP, MAP), flipped=mirrored, flip_index=FLIP, tag_scales=(1,)
)
print("aggregated:", heatmaps.shape, tags.shape)
(merged,) = ae.decode(heatmaps, tags)

# %%
# Pictures: the people found from one view and from all six, and the 2-D tags
# of the joints of the people found from all six: each component alone
# confuses two people, the pair does not.

fig, axes = plt.subplots(1, 3, figsize=(14, 4.8), width_ratios=[1, 1, 1.05], layout="constrained")
for ax, poses, title in [(axes[0], single, "one view"), (axes[1], merged, "six views")]:
    ae.draw_poses(image, poses.rescale(IMAGE / MAP), ax=ax)
    ax.set_title(f"{title}: {len(poses.scores)} people decoded")
    ax.set_axis_off()
    print(f"{title}: {len(poses.scores)} people")
ae.plot_tags(tags[0], merged, dim=(0, 1), ax=axes[2])
axes[2].set_title("2-D tags (original, mirrored) of each joint")
plt.show()
