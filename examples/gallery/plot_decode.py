"""
Decoding people from heatmaps and tag maps
==========================================

A synthetic scene: four stick-figure people on a 256 × 256 image. We make the
maps that a well-trained network would output for it at stride 4 (64 × 64):
a Gaussian bump in heatmap *k* at every joint of type *k*, and tag maps that
hold each person's tag around that person's joints (see
:doc:`synthetic_scene`). :func:`~associative_embedding.decode` turns the maps
back into people; :func:`~associative_embedding.draw_poses` draws them.
"""

import matplotlib.pyplot as plt
import numpy as np
from synthetic_scene import draw_scene, make_maps, make_people

import associative_embedding as ae

rng = np.random.default_rng(4)
IMAGE, MAP = 256, 64
STRIDE = IMAGE // MAP

people = make_people(rng, 4, IMAGE)  # (N, K, 3) image pixels
image = draw_scene(rng, people, IMAGE)

# %%
# The maps
# --------
# Keypoints in heatmap pixels are image pixels divided by the stride. The
# four people get the tags 0, 1, 2 and 3.

people_map = ae.scale_keypoints(people, (IMAGE, IMAGE), (MAP, MAP))
heatmaps, tags = make_maps(rng, people_map, MAP, person_tags=[0.0, 1.0, 2.0, 3.0])
print(heatmaps.shape, tags.shape)

# %%
# Decoding
# --------
# ``decode`` takes a batch, ``(B, K, H, W)`` heatmaps and tags, and returns
# one :class:`~associative_embedding.Poses` per image, in heatmap pixels.

(poses,) = ae.decode(heatmaps[None], tags[None])
print(f"{len(poses.scores)} people found")
for p in np.argsort(poses.tags[:, 0]):
    print(f"  mean tag {poses.tags[p, 0]:5.2f}   score {poses.scores[p]:.2f}")

# %%
# Drawing
# -------
# To draw on the image, bring the keypoints to image pixels:
# :meth:`Poses.rescale <associative_embedding.Poses.rescale>` multiplies them
# by the stride here (:meth:`~associative_embedding.Poses.transform` takes any
# affine map). On the right, the tag of every joint of every person found:
# each person's joints share one tag, and the people are well apart (the
# paper's Fig. 3). The grey dots are all the candidates the decoder had to
# group.

on_image = poses.rescale(STRIDE)  # heatmap pixels -> image pixels
fig, (left, right) = plt.subplots(
    1, 2, figsize=(11, 4.8), width_ratios=[1, 1.4], layout="constrained"
)
ae.draw_poses(image, on_image, ax=left)
left.set_title("decoded people")
left.set_axis_off()
ae.plot_tags(tags, poses, ax=right, heatmaps=heatmaps)
right.set_title("tag of each joint, per joint type")
plt.show()
