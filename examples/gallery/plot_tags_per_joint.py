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

fig, axes = plt.subplots(2, 2, figsize=(11, 9), width_ratios=[1, 1.4], layout="constrained")
for row, noise in zip(axes, [0.08, 0.4], strict=True):
    heatmaps, tags = make_maps(rng, people_map, MAP, [0.0, 1.0, 2.0, 3.0], tag_noise=noise)
    (poses,) = ae.decode(heatmaps[None], tags[None])
    print(f"tag noise {noise}: {len(poses.scores)} people found")
    ae.draw_poses(image, poses.rescale(IMAGE / MAP), ax=row[0])
    row[0].set_axis_off()
    row[0].set_title(f"tag noise {noise}: {len(poses.scores)} people decoded")
    ae.plot_tags(tags, poses, ax=row[1], heatmaps=heatmaps)
    row[1].set_title("tag of each joint of each person decoded")
plt.show()

# %%
# With well-separated tags (top) the decoder finds the four people, and each
# person's joints lie on one line. With noisy tags (bottom) the tags of
# different people overlap (grey dots: every candidate joint); some joints
# end up with the wrong person or start people of their own. Training longer,
# or with a larger weight on the grouping loss, separates the tags.
