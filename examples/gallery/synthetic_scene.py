"""
Synthetic scenes (the helper the examples import)
=================================================

The gallery's examples need no data set and no trained network: they draw
stick-figure people on a plain image and make the maps that a well-trained
network would output for them. This module, imported by every example (keep
it next to them when you download one), does that in three steps:

- ``make_people``: people as COCO keypoints ``(N, 17, 3)`` in image
  pixels, ``x, y, v``;
- ``draw_scene``: an RGB picture of them;
- ``make_maps``: detection heatmaps (Gaussian bumps, with
  :func:`~associative_embedding.render_heatmaps`) and tag maps that hold each
  person's tag, plus noise, around that person's joints.

It is not executed on its own.
"""

import numpy as np

import associative_embedding as ae

K = ae.COCO_KEYPOINTS.num_joints

# A standing person facing the camera in COCO's joint order, in units of body
# height; +x is the image's right, which is the person's left.
TEMPLATE = np.array(
    [
        [0.00, -0.40],  # nose
        [0.03, -0.43], [-0.03, -0.43],  # eyes (left, right)
        [0.06, -0.41], [-0.06, -0.41],  # ears
        [0.11, -0.27], [-0.11, -0.27],  # shoulders
        [0.16, -0.10], [-0.16, -0.10],  # elbows
        [0.18, 0.05], [-0.18, 0.05],  # wrists
        [0.07, 0.02], [-0.07, 0.02],  # hips
        [0.08, 0.25], [-0.08, 0.25],  # knees
        [0.08, 0.47], [-0.08, 0.47],  # ankles
    ]
)  # fmt: skip


def make_people(rng, n, size=256, heights=(100, 150)):
    """``n`` people side by side, ``(n, K, 3)``: x, y in image pixels, v = 2 (visible)."""
    people = np.full((n, K, 3), 2.0)
    p = 0
    while p < n:
        height = rng.uniform(*heights)
        x = (p + 0.5) * size / n + rng.uniform(-0.04, 0.04) * size
        y = rng.uniform(0.5 * height + 8, size - 0.5 * height - 8)
        pose = TEMPLATE + rng.normal(0, 0.015, TEMPLATE.shape)
        for shoulder, elbow, wrist, side in ((5, 7, 9, 1), (6, 8, 10, -1)):
            angle = side * rng.uniform(-0.3, 1.5)  # raise the arm sideways, radians
            rot = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
            pose[[elbow, wrist]] = (pose[[elbow, wrist]] - pose[shoulder]) @ rot.T + pose[shoulder]
        people[p, :, :2] = [x, y] + height * pose
        if people[p, :, :2].min() > 4 and people[p, :, :2].max() < size - 4:
            p += 1  # inside the image: keep this one
    return people


def draw_scene(rng, people, size=256):
    """An RGB image ``(size, size, 3)`` in [0, 1] with the people as pale stick figures."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5  # pixel centres
    grey = 0.22 + 0.12 * yy / size + rng.normal(0, 0.02, (size, size))
    for person in people:
        for a, b in ae.COCO_KEYPOINTS.edges:
            (x0, y0), (x1, y1) = person[a, :2], person[b, :2]
            t = ((xx - x0) * (x1 - x0) + (yy - y0) * (y1 - y0)) / ((x1 - x0) ** 2 + (y1 - y0) ** 2)
            t = np.clip(t, 0.0, 1.0)
            grey[np.hypot(xx - x0 - t * (x1 - x0), yy - y0 - t * (y1 - y0)) < 2.5] = 0.75
        head = np.hypot(xx - person[0, 0], yy - person[0, 1] + 2)
        grey[head < 0.05 * (person[15, 1] - person[0, 1])] = 0.75
    return np.clip(np.stack([grey * 0.95, grey, grey * 1.08], axis=-1), 0.0, 1.0)


def make_maps(rng, people, size, person_tags, *, tag_noise=0.1, sigma=None):
    """Heatmaps and tag maps ``(K, size, size)`` of people given in map pixels.

    Near joint ``k`` of a person, tag map ``k`` holds that person's tag plus
    Gaussian noise of standard deviation ``tag_noise``: that is how a trained
    network's tags look around joints. Far from every joint the tags fade into
    a smooth random field: there, a real network's tags are untrained.
    """
    from scipy.ndimage import zoom

    heatmaps = ae.render_heatmaps(people, (size, size), sigma=sigma)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5  # pixel centres
    x, y = people[:, :, 0, None, None], people[:, :, 1, None, None]
    dist = np.hypot(xx - x, yy - y)  # (N, K, H, W): distance to each person's joint
    near = np.asarray(person_tags, dtype=float)[dist.argmin(axis=0)]
    spread = np.ptp(person_tags) if len(person_tags) > 1 else 1.0
    field = zoom(rng.uniform(-0.5, 1.5, (K, 5, 5)) * spread, (1, size / 5, size / 5), order=3)
    weight = np.exp(-(dist.min(axis=0) ** 2) / (2 * (0.06 * size) ** 2))
    tags = weight * near + (1 - weight) * field + rng.normal(0.0, tag_noise, near.shape)
    return heatmaps.astype(np.float32), tags.astype(np.float32)
