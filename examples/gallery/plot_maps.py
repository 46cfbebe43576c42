"""
Heatmaps and tag maps side by side
==================================

What the network outputs for one image: a detection heatmap and a tag map per
joint type. :func:`~associative_embedding.show_maps` shows them in pairs: each
heatmap above its tag map. The first pair sums up all joint types (the
maximum of the heatmaps, and at each pixel the tag of the joint type whose
heatmap is highest there).

Tags only matter where the heatmap is high: that is where the loss trains
them and where the decoder reads them. ``show_maps`` therefore fades the tag
maps to black where the heatmap is low. The maps here are synthetic (see
:doc:`synthetic_scene`): three people with tags -1, 0 and 1.
"""

import matplotlib.pyplot as plt
import numpy as np
from synthetic_scene import make_maps, make_people

import associative_embedding as ae

rng = np.random.default_rng(7)
people = make_people(rng, 3, size=64, heights=(28, 40))  # directly in map pixels
heatmaps, tags = make_maps(rng, people, 64, person_tags=[-1.0, 0.0, 1.0], sigma=2.0)

# %%
# The nose, the shoulders, the wrists and the ankles. Each person's joints
# share one colour in the tag maps: blue, white or red.

ae.show_maps(heatmaps, tags, joints=[0, 5, 6, 9, 10, 15, 16], ncols=4)
plt.show()

# %%
# Without fading, the tag maps show their values everywhere; in a real
# network the tags far from every joint are untrained and carry no meaning.

ae.show_maps(heatmaps, tags, joints=[9, 10], shade_tags=False)
plt.show()
