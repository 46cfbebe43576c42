"""
Tags per joint type (the paper's Fig. 3)
========================================

Newell et al. plot, for every person in an image, the tag of each of its
joints against the joint type: when the network is trained, each person's
joints sit on one horizontal line and different people on different lines.
:func:`~associative_embedding.plot_tags` draws that picture for any image,
given the tag maps and people (decoded, or ground truth).

Here two versions of the same synthetic scene (see :doc:`synthetic_scene`):
tags as a well-trained network gives them, and noisy tags, whose lines
overlap. The decoder groups joints by tag, so overlapping tags mean mixed-up
people.
"""

import matplotlib.pyplot as plt
import numpy as np
from synthetic_scene import draw_scene, make_maps, make_people

import associative_embedding as ae

rng = np.random.default_rng(11)
IMAGE, MAP = 256, 64
people = make_people(rng, 4, IMAGE)
image = draw_scene(rng, people, IMAGE)
people_map = ae.scale_keypoints(people, (IMAGE, IMAGE), (MAP, MAP))

fig, axes = plt.subplots(2, 2, figsize=(11, 9), width_ratios=[1, 1.4])
for row, noise in zip(axes, [0.08, 0.45], strict=True):
    heatmaps, tags = make_maps(rng, people_map, MAP, [0.0, 1.0, 2.0, 3.0], tag_noise=noise)
    (poses,) = ae.decode(heatmaps[None], tags[None])
    print(f"tag noise {noise}: {len(poses.scores)} people found")
    on_image = poses.keypoints.copy()
    on_image[..., :2] *= IMAGE / MAP
    ae.draw_poses(image, on_image, ax=row[0])
    row[0].set_axis_off()
    row[0].set_title(f"tag noise {noise}: {len(poses.scores)} people decoded")
    # the true people (in heatmap pixels) with the tags the maps give them
    ae.plot_tags(tags, people_map, ax=row[1])
    row[1].set_title("tags at the true joints, one colour per true person")
fig.tight_layout()
plt.show()

# %%
# With well-separated tags (top) the decoder finds the four people. With
# noisy tags (bottom) the tags of different people overlap, and some joints
# end up with the wrong person or start people of their own. Training longer,
# or with a larger weight on the grouping loss, separates the tags.
