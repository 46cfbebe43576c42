"""
Recovering missing joints (``refine``)
======================================

A joint whose heatmap peak is below ``detection_threshold`` (0.1) is not
detected. With ``refine=True`` (the default, as in HigherHRNet) the decoder
looks again, for each person and each missing joint type, at the whole
heatmap: it takes the pixel with the best heatmap value among those whose
tag is close to the person's tag, even below the threshold.

Here, in a synthetic scene (see :doc:`synthetic_scene`), we weaken three
joints to a peak of 0.05: the left knee of one person, both ankles of
another.
"""

import matplotlib.pyplot as plt
import numpy as np
from synthetic_scene import draw_scene, make_maps, make_people

import associative_embedding as ae

rng = np.random.default_rng(5)
IMAGE, MAP = 256, 64
STRIDE = IMAGE // MAP
people = make_people(rng, 3, IMAGE)
image = draw_scene(rng, people, IMAGE)
people_map = ae.scale_keypoints(people, (IMAGE, IMAGE), (MAP, MAP))
_, tags = make_maps(rng, people_map, MAP, person_tags=[0.0, 1.0, 2.0])

# %%
# Heatmaps rendered person by person, so that single joints can be weakened.

weak = {(0, 13): 0.05, (2, 15): 0.05, (2, 16): 0.05}  # (person, joint): peak value
heatmaps = np.zeros((17, MAP, MAP), dtype=np.float32)
for p, person in enumerate(people_map):
    maps = ae.render_heatmaps(person[None], (MAP, MAP))
    for k in range(17):
        heatmaps[k] = np.maximum(heatmaps[k], weak.get((p, k), 1.0) * maps[k])

# %%
# Decode twice, without and with ``refine``, and draw both. The weakened
# joints are circled.

fig, axes = plt.subplots(1, 2, figsize=(10, 5), layout="constrained")
for ax, refine in zip(axes, [False, True], strict=True):
    (poses,) = ae.decode(heatmaps[None], tags[None], refine=refine)
    ae.draw_poses(image, poses.rescale(STRIDE), ax=ax)
    for p, k in weak:
        ax.add_patch(plt.Circle(people[p, k, :2], 9, fill=False, color="yellow", lw=1.5))
    missing = int(np.isnan(poses.keypoints[..., 0]).sum())
    ax.set_title(f"refine={refine}: {missing} joints missing")
    ax.set_axis_off()
    print(f"refine={refine}: {len(poses.scores)} people, {missing} missing joints")
plt.show()

# %%
# Without ``refine`` the three weak joints are missing (NaN coordinates,
# score 0); with it they are found again, each by the person whose tag
# matches, with their low heatmap value as score. COCO's metric does not
# penalise a joint that is not in the ground truth, so filling in joints
# helps COCO AP; pass ``refine=False`` where absent joints must stay absent.
