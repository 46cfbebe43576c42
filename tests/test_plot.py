"""Tests of associative_embedding.plot, headless (Agg backend)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colors import to_rgba

import associative_embedding as ae
from associative_embedding.skeletons import COCO_KEYPOINTS, MPII_KEYPOINTS

K = COCO_KEYPOINTS.num_joints
EDGES = COCO_KEYPOINTS.edges


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def people(rng, num, size=64, k=K):
    kp = np.empty((num, k, 3))
    kp[..., :2] = rng.uniform(1.0, size - 1.0, size=(num, k, 2))
    kp[..., 2] = rng.uniform(0.2, 1.0, size=(num, k))
    return kp


def person_artists(ax):
    """{label: (LineCollection, PathCollection)} of what draw_poses drew."""
    out = {}
    for c in ax.collections:
        lines, points = out.get(c.get_label(), (None, None))
        if isinstance(c, LineCollection):
            lines = c
        elif isinstance(c, PathCollection):
            points = c
        out[c.get_label()] = (lines, points)
    return out


# --------------------------------------------------------------------------- draw_poses


def test_draw_poses_draws_every_joint_and_limb(rng):
    kp = people(rng, 3)
    ax = ae.draw_poses(np.zeros((64, 64)), kp)
    artists = person_artists(ax)
    assert list(artists) == ["person 0", "person 1", "person 2"]
    colors = set()
    for p, (lines, points) in enumerate(artists.values()):
        np.testing.assert_allclose(points.get_offsets(), kp[p, :, :2])
        segments = lines.get_segments()
        assert len(segments) == len(EDGES)
        for seg, (a, b) in zip(segments, EDGES, strict=True):
            np.testing.assert_allclose(seg, kp[p, [a, b], :2])
        (face,) = {tuple(c) for c in points.get_facecolors()}
        (line,) = {tuple(c) for c in lines.get_colors()}
        assert face == line
        colors.add(face)
    assert len(colors) == 3  # one colour per person


def test_draw_poses_skips_missing_and_weak_joints(rng):
    kp = people(rng, 2)
    kp[0, 5] = [np.nan, np.nan, 0.0]  # missing left shoulder
    kp[1, 9, 2] = 0.1  # weak left wrist
    ax = ae.draw_poses(np.zeros((64, 64)), kp, score_threshold=0.15)
    artists = person_artists(ax)
    for p, hidden in ((0, 5), (1, 9)):
        lines, points = artists[f"person {p}"]
        shown = [k for k in range(K) if k != hidden]
        np.testing.assert_allclose(points.get_offsets(), kp[p, shown, :2])
        expected = [e for e in EDGES if hidden not in e]
        assert len(lines.get_segments()) == len(expected)


def test_draw_poses_person_without_joints_takes_no_colour(rng):
    kp = people(rng, 3)
    kp[1, :, 2] = 0.0
    ax = ae.draw_poses(np.zeros((64, 64)), kp, colors=["red", "blue"])
    artists = person_artists(ax)
    assert list(artists) == ["person 0", "person 2"]
    assert tuple(artists["person 0"][1].get_facecolors()[0]) == to_rgba("red")
    assert tuple(artists["person 2"][1].get_facecolors()[0]) == to_rgba("blue")


def test_draw_poses_colours_cycle(rng):
    ax = ae.draw_poses(np.zeros((64, 64)), people(rng, 3), colors=["red", "blue"])
    faces = [tuple(pc.get_facecolors()[0]) for _, pc in person_artists(ax).values()]
    assert faces == [to_rgba("red"), to_rgba("blue"), to_rgba("red")]


def test_draw_poses_accepts_poses_like_and_tensor(rng):
    torch = pytest.importorskip("torch")
    kp = people(rng, 2)
    poses = SimpleNamespace(keypoints=torch.from_numpy(kp), scores=np.ones(2))
    image = torch.zeros(32, 48, 3)
    ax = ae.draw_poses(image, poses)
    assert len(person_artists(ax)) == 2
    assert ax.images[0].get_extent() == [0, 48, 32, 0]
    assert ax.get_xlim() == (0.0, 48.0)
    assert ax.get_ylim() == (32.0, 0.0)


def test_draw_poses_pixel_center_conventions(rng):
    kp = people(rng, 1)
    half = person_artists(ae.draw_poses(np.zeros((64, 64)), kp))["person 0"][1]
    integer = person_artists(ae.draw_poses(np.zeros((64, 64)), kp, center_shift=0.0))
    np.testing.assert_allclose(integer["person 0"][1].get_offsets(), half.get_offsets() + 0.5)


def test_draw_poses_without_skeleton_and_other_skeleton(rng):
    kp = people(rng, 1)
    lines, points = person_artists(ae.draw_poses(np.zeros((8, 8)), kp, None))["person 0"]
    assert len(lines.get_segments()) == 0
    assert len(points.get_offsets()) == K
    mpii = people(rng, 1, k=16)
    lines, _ = person_artists(ae.draw_poses(np.zeros((8, 8)), mpii, MPII_KEYPOINTS))["person 0"]
    assert len(lines.get_segments()) == len(MPII_KEYPOINTS.edges)


def test_draw_poses_images(rng):
    rgb = (rng.uniform(size=(20, 30, 3)) * 255).astype(np.uint8)
    ax = ae.draw_poses(rgb, np.zeros((0, K, 3)))
    np.testing.assert_array_equal(ax.images[0].get_array(), rgb)
    assert len(ax.collections) == 0
    grey = ae.draw_poses(rng.uniform(size=(20, 30)), np.zeros((0, K, 3)))
    assert grey.images[0].get_cmap().name == "gray"
    _, given = plt.subplots()
    assert ae.draw_poses(grey.images[0].get_array().data, people(rng, 1), ax=given) is given


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"image": np.zeros((8, 8, 2))}, ValueError, r"image must have shape .*\(8, 8, 2\)"),
        ({"image": np.zeros((8, 8), dtype=np.int32)}, TypeError, "image must have dtype"),
        ({"image": np.full((8, 8), np.nan)}, ValueError, "image contains NaN"),
        ({"image": [[0.0]]}, TypeError, "image must be a numpy.ndarray"),
        ({"poses": np.zeros((2, K, 2))}, ValueError, r"poses must have shape \(P, K, 3\)"),
        (
            {"poses": np.zeros((2, 5, 3)), "skeleton": COCO_KEYPOINTS},
            ValueError,
            "K=5 joint types but skeleton 'coco'",
        ),
        ({"image": np.full((8, 8, 3), 200.0)}, ValueError, r"image .*\[0, 1\].*200"),
        ({"image": np.full((8, 8, 4), -0.5)}, ValueError, r"image .*\[0, 1\].*-0\.5"),
        ({"poses": np.zeros((2, K, 3), dtype=int)}, TypeError, "floating-point"),
        ({"poses": [np.zeros((2, K, 3))]}, TypeError, "one element of the list"),
        ({"poses": np.full((1, K, 3), np.inf)}, ValueError, "infinite"),
        ({"poses": np.full((1, K, 3), np.nan)}, ValueError, "NaN scores"),
        ({"skeleton": "coco"}, TypeError, "skeleton must be a Skeleton"),
        ({"score_threshold": "high"}, TypeError, "score_threshold"),
        ({"linewidth": -1.0}, ValueError, "linewidth"),
        ({"center_shift": "centre"}, TypeError, "center_shift must be a real number"),
        ({"colors": "no-such-map"}, ValueError, "colors must be a colormap name"),
        ({"colors": ["notacolour"]}, ValueError, "invalid colour"),
        ({"colors": []}, ValueError, "at least one colour"),
    ],
)
def test_draw_poses_rejects_bad_input(kwargs, error, match):
    args = {"image": np.zeros((8, 8)), "poses": np.ones((1, K, 3))} | kwargs
    with pytest.raises(error, match=match):
        ae.draw_poses(args.pop("image"), args.pop("poses"), **args)


def test_draw_poses_rgb_float_images_must_be_in_unit_range(rng):
    # matplotlib clips floats to [0, 1]: a 0-255 float image would be drawn white
    rgb = rng.uniform(0, 255, size=(6, 7, 3))
    with pytest.raises(ValueError, match=r"divide it by 255"):
        ae.draw_poses(rgb, np.zeros((0, K, 3)))
    ax = ae.draw_poses(rgb / 255, np.zeros((0, K, 3)))
    np.testing.assert_array_equal(ax.images[0].get_array(), rgb / 255)
    # grey images are scaled by the colormap: any finite range draws
    grey = ae.draw_poses(rgb[..., 0], np.zeros((0, K, 3)))
    np.testing.assert_array_equal(grey.images[0].get_array(), rgb[..., 0])


@pytest.mark.parametrize("k", [14, 5])
def test_plots_of_other_joint_sets_need_no_skeleton(rng, k):
    kp = people(rng, 2, size=16, k=k)
    lines, points = person_artists(ae.draw_poses(np.zeros((16, 16)), kp))["person 0"]
    assert len(lines.get_segments()) == 0  # joints only
    np.testing.assert_allclose(points.get_offsets(), kp[0, :, :2])
    ax = ae.plot_tags(np.zeros((k, 16, 16)), kp)
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(j) for j in range(k)]
    fig = ae.show_maps(np.zeros((k, 16, 16)), np.zeros((k, 16, 16)), joints=[0, 1])
    assert [a.get_title() for a in fig.axes[2:6]] == ["joint 0", "tag", "joint 1", "tag"]
    # a skeleton made from K alone draws its edges
    chain = ae.Skeleton("chain", [f"j{j}" for j in range(k)], edges=[(0, 1), (1, 2)])
    lines, _ = person_artists(ae.draw_poses(np.zeros((16, 16)), kp, chain))["person 0"]
    assert len(lines.get_segments()) == 2
    # the built-in CrowdPose skeleton on 14 joints
    if k == 14:
        sk = ae.CROWDPOSE_KEYPOINTS
        lines, _ = person_artists(ae.draw_poses(np.zeros((16, 16)), kp, sk))["person 0"]
        assert len(lines.get_segments()) == len(sk.edges)
        labels = [
            t.get_text() for t in ae.plot_tags(np.zeros((k, 16, 16)), kp, sk).get_xticklabels()
        ]
        assert labels[-2:] == ["top head", "neck"]


def test_missing_matplotlib_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install 'associative-embedding\[plot\]'"):
        ae.draw_poses(np.zeros((8, 8)), np.ones((1, K, 3)))


# --------------------------------------------------------------------------- plot_tags


def coded_tags(k=K, d=1, h=32, w=40):
    """Tag maps whose value names the pixel: joint * 10000 + row * 100 + column (+ 0.5 * dim)."""
    kk, dd, yy, xx = np.meshgrid(
        np.arange(k), np.arange(d), np.arange(h), np.arange(w), indexing="ij"
    )
    return (kk * 10000 + yy * 100 + xx + 0.5 * dd).astype(np.float64)


def point_sets(ax):
    return {c.get_label(): c.get_offsets() for c in ax.collections}


def test_plot_tags_reads_the_tag_at_each_joint(rng):
    kp = people(rng, 2, size=32)
    kp[1, 3] = [np.nan, np.nan, 0.0]
    ax = ae.plot_tags(coded_tags(h=32, w=32)[:, 0], kp)
    pts = point_sets(ax)
    assert list(pts) == ["person 0", "person 1"]
    for p in range(2):
        ks = [k for k in range(K) if np.isfinite(kp[p, k, 0])]
        cols, rows = np.floor(kp[p, ks, 0]), np.floor(kp[p, ks, 1])
        expected = np.array(ks) * 10000 + rows * 100 + cols
        np.testing.assert_array_equal(pts[f"person {p}"][:, 0], ks)
        np.testing.assert_array_equal(pts[f"person {p}"][:, 1], expected)
        (mean_line,) = [ln for ln in ax.lines if ln.get_label() == f"mean {p}"]
        np.testing.assert_allclose(mean_line.get_ydata(), [expected.mean()] * 2)
    assert ax.get_xticklabels()[5].get_text() == "left shoulder"


def test_plot_tags_center_shift_and_dims():
    kp = np.zeros((1, K, 3))
    kp[0, :] = [3.6, 7.2, 1.0]
    tags = coded_tags(d=2)
    half = point_sets(ae.plot_tags(tags, kp, dim=1))["person 0"][:, 1]
    np.testing.assert_array_equal(half, np.arange(K) * 10000 + 7 * 100 + 3 + 0.5)
    integer = point_sets(ae.plot_tags(tags, kp, center_shift=0.0))["person 0"][:, 1]
    np.testing.assert_array_equal(integer, np.arange(K) * 10000 + 7 * 100 + 4)
    scatter = ae.plot_tags(tags, kp, dim=(1, 0))
    xy = point_sets(scatter)["person 0"]
    np.testing.assert_array_equal(xy[:, 0], xy[:, 1] + 0.5)
    (star,) = scatter.lines
    assert star.get_label() == "mean 0"
    assert scatter.get_xlabel() == "tag component 1"


def test_plot_tags_candidates_are_the_local_maxima():
    heat = np.zeros((K, 16, 16))
    heat[0, 2, 3] = 0.9
    heat[0, 10, 12] = 0.5
    heat[0, 10, 13] = 0.3  # suppressed by its stronger neighbour
    heat[4, 8, 8] = 0.05  # below the detection threshold
    heat[7, 1, 1] = heat[7, 14, 14] = 0.2
    tags = coded_tags(h=16, w=16)[:, 0]
    kp = np.zeros((0, K, 3))
    cands = point_sets(ae.plot_tags(tags, kp, heatmaps=heat))["candidates"]
    got = sorted(cands[:, 1].tolist())
    assert got == sorted([203.0, 1012.0, 70101.0, 71414.0])
    np.testing.assert_allclose(np.round(cands[:, 0]), np.floor(cands[:, 1] / 10000))
    loose = point_sets(ae.plot_tags(tags, kp, heatmaps=heat, detection_threshold=0.0, nms_kernel=1))
    assert len(loose["candidates"]) == 6


def test_plot_tags_without_mean_and_skeleton(rng):
    ax = ae.plot_tags(coded_tags()[:, 0], people(rng, 2, 32), None, show_mean=False)
    assert len(ax.lines) == 0
    assert ax.get_xticklabels()[5].get_text() == "5"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"tags": np.zeros((K, 8))}, ValueError, r"tags must have shape \(K, H, W\)"),
        ({"tags": np.zeros((K, 0, 8))}, ValueError, "H, W >= 1"),
        ({"tags": np.full((K, 8, 8), np.nan)}, ValueError, "tags contains"),
        ({"tags": np.zeros((K, 8, 8), dtype=np.int64)}, TypeError, "floating-point"),
        ({"poses": np.ones((1, 5, 3))}, ValueError, "poses has K=5 joint types but tags has K=17"),
        ({"dim": 1}, ValueError, "dim must be <= 0"),
        ({"dim": (0, 1, 2)}, ValueError, "pair of ints"),
        ({"dim": 0.5}, TypeError, "dim must be an integer"),
        ({"heatmaps": np.zeros((K, 8, 9))}, ValueError, "heatmaps must have shape"),
        ({"heatmaps": np.zeros((K, 8, 8)), "nms_kernel": 4}, ValueError, "odd"),
        ({"skeleton": MPII_KEYPOINTS}, ValueError, "skeleton 'mpii' has 16"),
        # a batch of tag maps: the message names tags, the layout, and the batch
        (
            {"tags": np.zeros((2, K, 8, 8))},
            ValueError,
            r"tags must hold the tag maps of one image, shape \(K, H, W\) or \(K, D, H, W\) "
            r"with K=17 .*got shape \(2, 17, 8, 8\).*batch.*tags\[b\]",
        ),
        (
            {"tags": np.zeros((1, K, 2, 8, 8))},
            ValueError,
            r"tags must have shape \(K, H, W\) or \(K, D, H, W\).*batch.*tags\[b\]",
        ),
        ({"skeleton": "auto", "poses": np.ones((1, 5, 3))}, ValueError, "poses has K=5"),
    ],
)
def test_plot_tags_rejects_bad_input(kwargs, error, match):
    args = {"tags": np.zeros((K, 8, 8)), "poses": np.ones((1, K, 3))} | kwargs
    with pytest.raises(error, match=match):
        ae.plot_tags(args.pop("tags"), args.pop("poses"), **args)


# --------------------------------------------------------------------------- show_maps


def test_show_maps_panels_hold_the_maps(rng):
    heat = rng.uniform(size=(K, 12, 20))
    tags = rng.normal(size=(K, 2, 12, 20))
    fig = ae.show_maps(heat, tags, joints=[0, 9], dim=1, ncols=2)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 6 + 2  # three cells of two panels, two colour bars
    titles = [ax.get_title() for ax in panels]
    assert titles == ["all joints", "tag of strongest joint", "nose", "tag", "left wrist", "tag"]
    data = [np.asarray(ax.images[0].get_array()) for ax in panels]
    np.testing.assert_array_equal(data[0], heat.max(axis=0))
    strongest = heat.argmax(axis=0)
    np.testing.assert_array_equal(
        data[1], np.take_along_axis(tags[:, 1], strongest[None], axis=0)[0]
    )
    np.testing.assert_array_equal(data[2], heat[0])
    np.testing.assert_array_equal(data[3], tags[0, 1])
    np.testing.assert_array_equal(data[5], tags[9, 1])
    assert panels[0].images[0].get_extent() == [0, 20, 12, 0]
    alpha = panels[3].images[0].get_alpha()
    np.testing.assert_allclose(alpha, 0.15 + 0.85 * heat[0] / heat.max())


def test_show_maps_defaults_and_unshaded(rng):
    heat = rng.uniform(size=(K, 8, 8))
    fig = ae.show_maps(heat, rng.normal(size=(K, 8, 8)), shade_tags=False)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 2 * (K + 1)
    assert panels[1].images[0].get_alpha() is None


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"heatmaps": np.zeros((1, K, 8, 8))}, ValueError, r"heatmaps must have shape \(K, H, W\)"),
        ({"tags": np.zeros((K, 8, 9))}, ValueError, "tags must match heatmaps"),
        ({"tags": np.zeros((K, 8, 8)), "dim": 1}, ValueError, "dim must be <= 0"),
        ({"joints": [17]}, ValueError, "joints must be <= 16"),
        ({"ncols": 0}, ValueError, "ncols must be >= 1"),
        ({"heatmaps": np.zeros((K, 0, 8)), "tags": np.zeros((K, 0, 8))}, ValueError, "H, W >= 1"),
        ({"heatmaps": np.full((K, 8, 8), np.inf)}, ValueError, "heatmaps contains"),
    ],
)
def test_show_maps_rejects_bad_input(kwargs, error, match):
    args = {"heatmaps": np.zeros((K, 8, 8)), "tags": np.zeros((K, 8, 8))} | kwargs
    with pytest.raises(error, match=match):
        ae.show_maps(args.pop("heatmaps"), args.pop("tags"), **args)


def test_plot_functions_take_decoded_poses(rng):
    heatmaps = np.zeros((1, K, 32, 32), np.float32)
    tags = np.zeros((1, K, 32, 32), np.float32)
    for row, tag in [(5, 0.0), (20, 2.0)]:
        for k in range(K):
            heatmaps[0, k, row + k % 4, 2 + k] = 1.0
        tags[0, :, row : row + 4] = tag
    (poses,) = ae.decode(heatmaps, tags)
    assert len(poses) == 2
    ax = ae.draw_poses(np.zeros((32, 32)), poses)
    assert len(person_artists(ax)) == 2
    pts = point_sets(ae.plot_tags(tags[0], poses))
    assert sorted(np.unique(v[:, 1]).tolist() for v in pts.values()) == [[0.0], [2.0]]
