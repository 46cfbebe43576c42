"""The crowd grouping options of ae.decode against a slow plain-Python oracle, and their promises."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from associative_embedding.decoding import DecodeConfig, warmup
from associative_embedding.decoding import decode as _decode
from tests.reference_crowd import crowd_parse
from tests.reference_parser import reference_parse

HIGHERHRNET = DecodeConfig.preset("higherhrnet")


def decode(heatmaps, tags, config=None, **options):
    """``ae.decode`` with HigherHRNet's settings unless given a config: this module checks
    parity with the references, whose settings were the defaults before 0.1."""
    return _decode(heatmaps, tags, HIGHERHRNET if config is None else config, **options)


@pytest.fixture(scope="session", autouse=True)
def _compiled():
    warmup(["float32", "float64"])  # the tests decode both


def crowd_scene(rng, k, size, d, n_people, dtype, coarse=False):
    """People as clusters of Gaussian peaks with noisy, close tags, plus spurious peaks."""
    h = w = size
    heat = rng.random((k, h, w)) * 0.05
    tags = rng.standard_normal((k, d, h, w)) * 2
    yy, xx = np.mgrid[0:h, 0:w]
    centres = rng.uniform(0, size, (n_people, 2))
    person_tags = rng.uniform(-0.6, 0.6, (n_people, 1)) * n_people + rng.normal(
        0, 0.1, (n_people, d)
    )
    for p in range(n_people):
        radius = rng.uniform(2, size / 3)
        for j in range(k):
            if rng.random() < 0.15:
                continue
            x, y = centres[p] + rng.uniform(-radius, radius, 2)
            amp = rng.uniform(0.02, 0.09) if rng.random() < 0.15 else rng.uniform(0.2, 1.0)
            g = amp * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * rng.uniform(0.5, 1.5) ** 2))
            own = g > heat[j]
            heat[j] = np.maximum(heat[j], g)
            tag = person_tags[p] + rng.normal(0, 0.3, d)
            tags[j] = np.where(
                own & (g > 0.01), tag[:, None, None] + rng.normal(0, 0.05, (d, h, w)), tags[j]
            )
    for _ in range(int(rng.integers(0, 4))):  # spurious detections
        j = int(rng.integers(k))
        heat[j, rng.integers(h), rng.integers(w)] = rng.uniform(0.11, 0.5)
    if coarse:  # ties everywhere: equal values, equal distances
        heat = np.round(heat * 8) / 8
        tags = np.round(tags * 4) / 4
    return heat.astype(dtype), tags.astype(dtype)


def assert_same(poses, ref):
    for got, want in zip((poses.keypoints, poses.scores, poses.tags), ref, strict=True):
        assert got.dtype == want.dtype
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def oracle_options(config):
    """The DecodeConfig's fields as the oracle's keyword options."""
    return dataclasses.asdict(config)


CROWD = DecodeConfig.preset("crowd")
CROWD_KEYS = {
    "tag_cost",
    "regroup",
    "spatial_weight",
    "spatial_gate",
    "spatial_limbs",
    "refine_window",
    "refine_tag_gate",
    "min_score",
    "pose_nms",
}

OPTION_SETS = [
    {"tag_cost": "tiebreak"},
    {"tag_cost": "exact"},
    {"tag_cost": "exact", "use_detection_value": False},
    {"regroup": 3},
    {"regroup": 1, "tag_cost": "tiebreak", "match_people": "all"},
    {"regroup": 3, "tag_cost": "exact", "spatial_weight": 1.0},
    {"regroup": 2, "spatial_gate": 0.7, "tag_distance": "rms"},
    {"regroup": 3, "tag_cost": "exact", "spatial_weight": 2.0, "spatial_gate": 0.5},
    {"regroup": 3, "tag_cost": "exact", "spatial_weight": 1.0, "spatial_limbs": "auto"},
    {"regroup": 2, "spatial_weight": 2.0, "spatial_gate": 0.6, "spatial_limbs": ((0, 1), (2, 1))},
    {"regroup": 3, "max_instances": 4, "max_people": 5},
    {"refine_window": 0.5},
    {"refine_window": 0.0, "refine_mode": "pose-ae-train", "adjust_rule": "mmpose"},
    {"refine_tag_gate": True},
    {"refine_tag_gate": True, "refine_window": 1.0, "adjust": False, "center_shift": 0.0},
    {"min_score": 0.05},
    {"pose_nms": 0.5},
    {"pose_nms": 0.9, "min_score": 0.01, "refine": False},
    oracle_options(CROWD),
    {**oracle_options(CROWD), "ignore_too_much": True, "max_people": 3},
]


@pytest.mark.parametrize(
    "options",
    OPTION_SETS,
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items() if k in CROWD_KEYS),
)
@pytest.mark.parametrize("seed", range(3))
def test_equals_the_slow_oracle(options, seed):
    rng = np.random.default_rng(seed)
    for trial in range(4):
        k = int(rng.choice([3, 5, 17]))
        size = int(rng.integers(8, 40))
        d = int(rng.choice([1, 2, 3]))
        dtype = [np.float32, np.float64][trial % 2]
        n_people = int(rng.integers(0, 9))
        heat, tags = crowd_scene(rng, k, size, d, n_people, dtype, coarse=trial == 3)
        (poses,) = decode(heat[None], tags[None], num_threads=1, **options)
        assert_same(poses, crowd_parse(heat, tags, **options))


@pytest.mark.slow
@pytest.mark.parametrize("d", [1, 2, 8])
def test_crowd_search_on_larger_maps_equals_the_slow_oracle(d):
    # maps of several search tiles per side, ties (coarse maps) and a long tag vector
    rng = np.random.default_rng(100 + d)
    for trial in range(4):
        size = int(rng.integers(40, 72))
        heat, tags = crowd_scene(rng, 17, size, d, 8, np.float32, coarse=trial % 2 == 1)
        options = oracle_options(CROWD) if trial < 2 else {"refine_window": 0.3}
        (poses,) = decode(heat[None], tags[None], num_threads=1, **options)
        assert_same(poses, crowd_parse(heat, tags, **options))


@pytest.mark.parametrize("seed", range(3))
def test_rounded_cost_without_extras_equals_the_references(seed):
    """The crowd kernels with the references' cost give the references' people."""
    rng = np.random.default_rng(100 + seed)
    for trial in range(4):
        dtype = [np.float32, np.float64][trial % 2]
        heat, tags = crowd_scene(rng, 17, 32, int(rng.integers(1, 4)), 8, dtype, trial == 3)
        for options in ({}, {"match_people": "all"}, {"refine_mode": "mmpose"}):
            (poses,) = decode(heat[None], tags[None], min_score=-1.0, **options)
            assert_same(poses, reference_parse(heat, tags, **options))


def _person(heat, tags, k_joints, centre, tag, amp=1.0):
    """Write one person: a peak per joint on a small circle around ``centre``."""
    for k in range(k_joints):
        angle = 2 * np.pi * k / k_joints
        x = round(centre[0] + 8 * np.cos(angle))
        y = round(centre[1] + 8 * np.sin(angle))
        heat[k, y, x] = amp
        tags[k, :, y, x] = tag
    return heat, tags


def _pixels(poses, k):
    kp = poses.keypoints[:, k, :2]
    return [tuple(p) for p in kp[np.isfinite(kp[:, 0])].tolist()]


@pytest.mark.parametrize("ghost_tag", [5.0, 0.1])
def test_no_ghost_people_in_crowd_mode(ghost_tag):
    """A weak extra detection must not become a person made of other people's joints.

    Two people, tags 0 and 2, and one weak extra nose near the first person;
    with a foreign tag (5) it is unmatched, with the first person's tag (0.1)
    it loses the first person's nose slot. Either way the references start a
    person from it and fill its other joints by copying the real people's
    joints at full score. In the crowd preset the person-score threshold drops
    it (a person made of one weak joint scores below it), and the first person
    gets its joints back.
    """
    k_joints = 17
    heat = np.zeros((k_joints, 40, 60), np.float32)
    tags = np.full((k_joints, 1, 40, 60), 9.0, np.float32)
    _person(heat, tags, k_joints, (15, 20), 0.0)
    _person(heat, tags, k_joints, (45, 20), 2.0)
    heat[0, 30, 15] = 0.15  # the weak extra detection
    tags[0, :, 30, 15] = ghost_tag
    (ref,) = decode(heat[None], tags[None])
    assert len(ref) == 3
    shared = sum(
        _pixels(ref, k).count(p) > 1 for k in range(k_joints) for p in set(_pixels(ref, k))
    )
    assert shared > 0  # the references' ghost: a joint held by two people
    (crowd,) = decode(heat[None], tags[None], DecodeConfig.preset("crowd"))
    for k in range(k_joints):
        pixels = _pixels(crowd, k)
        assert len(pixels) == len(set(pixels))  # no joint held by two people
    real = [p for p in range(len(crowd)) if np.isfinite(crowd.keypoints[p, :, 0]).all()]
    assert len(real) == 2  # both people whole


def test_tag_offset_does_not_change_the_people(rng):
    """Adding a constant to every tag moves the person tags by it and changes nothing else."""
    for _ in range(5):
        heat, tags = crowd_scene(rng, 17, 32, 2, 8, np.float64)
        tags = np.round(tags * 64) / 64  # exact sums after the offset
        (a,) = decode(heat[None], tags[None], CROWD)
        (b,) = decode(heat[None], (tags + 16.0)[None], CROWD)
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_allclose(b.tags, a.tags + 16.0, atol=1e-9)


def test_people_order_in_the_image_does_not_change_the_people(rng):
    """Mirroring the maps left-right mirrors the people: the result does not depend on
    which person comes first in row-major order."""
    for _ in range(5):
        heat, tags = crowd_scene(rng, 17, 31, 2, 8, np.float64)
        options = {**CROWD_OPTIONS, "adjust": False, "center_shift": 0.5}
        (a,) = decode(heat[None], tags[None], **options)
        (b,) = decode(heat[None, :, :, ::-1], tags[None, :, :, :, ::-1], **options)
        assert len(a) == len(b)
        mirrored = b.keypoints.copy()
        mirrored[..., 0] = heat.shape[2] - mirrored[..., 0]
        key = lambda kp: sorted(np.nan_to_num(kp, nan=-1.0).round(6).reshape(len(kp), -1).tolist())  # noqa: E731
        assert key(a.keypoints) == key(mirrored)
        np.testing.assert_array_equal(np.sort(a.scores), np.sort(b.scores))


CROWD_OPTIONS = oracle_options(CROWD)


def test_crowd_preset_and_defaults():
    assert DecodeConfig() == CROWD  # the defaults are the crowd grouping
    reference = DecodeConfig.preset("higherhrnet")
    assert reference.tag_cost == "rounded" and reference.regroup == 0
    assert reference.adjust_rule == "reference" and not reference.refine_exclusive
    assert CROWD.adjust_rule == "symmetric" and CROWD.refine_exclusive
    cfg = DecodeConfig.preset("crowd", regroup=1)
    assert cfg.regroup == 1 and cfg.tag_cost == CROWD.tag_cost
    assert CROWD.pose_nms is not None and CROWD.refine_window is not None
    assert CROWD.min_score > 0


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"tag_cost": "fuzzy"}, ValueError, "tag_cost"),
        ({"tag_cost": "exact", "matching": "greedy"}, ValueError, "tag_cost"),
        ({"regroup": -1}, ValueError, "regroup"),
        ({"regroup": 1.5}, TypeError, "regroup"),
        ({"spatial_weight": -1.0}, ValueError, "spatial_weight"),
        ({"spatial_gate": 0.0}, ValueError, "spatial_gate"),
        ({"refine_window": -0.5}, ValueError, "refine_window"),
        ({"refine_tag_gate": 1}, TypeError, "refine_tag_gate"),
        ({"refine_window": 0.5, "refine_mode": "mmpose"}, ValueError, "refine_mode"),
        ({"min_score": float("nan")}, ValueError, "min_score"),
        ({"pose_nms": 1.5}, ValueError, "pose_nms"),
        ({"pose_nms": "high"}, TypeError, "pose_nms"),
        ({"spatial_limbs": "coco"}, ValueError, "spatial_limbs"),
        ({"spatial_limbs": 3}, TypeError, "spatial_limbs"),
        ({"spatial_limbs": [(0, 0)]}, ValueError, "spatial_limbs"),
        ({"spatial_limbs": [(0, 1, 2)]}, ValueError, "spatial_limbs"),
        ({"spatial_limbs": [(0, -1)]}, ValueError, "spatial_limbs"),
        ({"spatial_limbs": ["ab"]}, TypeError, "spatial_limbs"),
    ],
)
def test_bad_crowd_options_raise_naming_the_option(options, error, match):
    with pytest.raises(error, match=match):
        DecodeConfig(**options)


def test_spatial_limbs_forms(rng):
    """A Skeleton gives its edges; "auto" is COCO's limbs at K = 17; a limb beyond K fails."""
    from associative_embedding import COCO_KEYPOINTS

    cfg = DecodeConfig(spatial_limbs=COCO_KEYPOINTS)
    assert cfg.spatial_limbs == tuple(tuple(e) for e in COCO_KEYPOINTS.edges)
    heat, tags = crowd_scene(rng, 17, 32, 2, 8, np.float64)
    options = {**CROWD_OPTIONS, "spatial_gate": 0.4}
    (auto,) = decode(heat[None], tags[None], **{**options, "spatial_limbs": "auto"})
    (coco,) = decode(heat[None], tags[None], **{**options, "spatial_limbs": cfg.spatial_limbs})
    assert_same(auto, (coco.keypoints, coco.scores, coco.tags))
    heat5, tags5 = crowd_scene(rng, 5, 16, 1, 2, np.float32)
    with pytest.raises(ValueError, match=r"spatial_limbs.*K=5"):
        decode(heat5[None], tags5[None], regroup=1, spatial_limbs=[(0, 7)])


def test_tensors_decode_like_arrays_with_crowd_options(rng):
    import torch

    heat, tags = crowd_scene(rng, 17, 24, 2, 6, np.float32)
    (a,) = decode(heat[None], tags[None], CROWD)
    (b,) = decode(torch.from_numpy(heat[None]), torch.from_numpy(tags[None]), CROWD)
    assert_same(b, (a.keypoints, a.scores, a.tags))


# --- the defaults on a trained network's kind of output: no ghosts -----------------------
# a standing person in unit coordinates (x right, y down), COCO joint order
_STANDING = np.array(
    [
        [0.0, -0.9], [-0.05, -0.95], [0.05, -0.95], [-0.1, -0.9], [0.1, -0.9],
        [-0.2, -0.65], [0.2, -0.65], [-0.3, -0.35], [0.3, -0.35], [-0.32, -0.05],
        [0.32, -0.05], [-0.12, 0.0], [0.12, 0.0], [-0.14, 0.45], [0.14, 0.45],
        [-0.15, 0.9], [0.15, 0.9],
    ]
)  # fmt: skip


def ghost_scene(rng, n_spurious, size=128):
    """Three people, 40-70 px tall, and weak spurious peaks with random tags.

    What a trained network leaves: the people's joints are strong Gaussian
    peaks carrying their person's tag; ``n_spurious`` peaks of 0.11-0.3 at
    random places and joint types carry random tags in the people's range;
    the tags elsewhere are noise around a per-type offset. Returns heatmaps
    (17, H, W), tags (17, 1, H, W) and the true joints (3, 17, 2).
    """
    heat = rng.random((17, size, size)) * 0.02
    tags = rng.normal(0, 0.3, (17, 1, size, size)) + rng.uniform(-3, 3, (17, 1, 1, 1))
    yy, xx = np.mgrid[0:size, 0:size]
    truth = []
    for p in range(3):
        height = rng.uniform(40, 70)
        centre = ((p + 0.5) * size / 3 + rng.uniform(-5, 5), size / 2 + rng.uniform(-10, 10))
        joints = _STANDING * height / 1.8 + centre
        for k, (x, y) in enumerate(joints):
            g = rng.uniform(0.6, 1.0) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 8.0)
            heat[k] = np.maximum(heat[k], g)
            win = g > 0.05
            tags[k, 0, win] = p * 1.5 - 1.5 + rng.normal(0, 0.05, win.sum())
        truth.append(joints + 0.5)
    for _ in range(n_spurious):
        k, (x, y) = rng.integers(17), rng.uniform(0, size, 2)
        g = rng.uniform(0.11, 0.3) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 4.5)
        heat[k] = np.maximum(heat[k], g)
        win = g > 0.02
        tags[k, 0, win] = rng.uniform(-3, 3) + rng.normal(0, 0.05, win.sum())
    return heat.astype(np.float32), tags.astype(np.float32), np.array(truth)


def _owners(poses, truth, radius=3.0):
    """Per person and joint, the true person whose joint it sits on (-1: none, -2: missing)."""
    kp = poses.keypoints[:, :, :2]
    dist = np.linalg.norm(kp[:, None] - truth[None], axis=-1)  # (P, 3, K)
    owner = np.where(dist.min(axis=1) < radius, dist.argmin(axis=1), -1)
    return np.where(np.isfinite(kp[..., 0]), owner, -2)


@pytest.mark.parametrize("seed", range(6))
def test_defaults_return_no_ghost_skeletons(seed):
    """Three people and weak spurious peaks: the defaults give the three, ranked first,
    no person stretched over several people, no duplicate, and a drawing of just them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from associative_embedding import draw_poses

    heat, tags, truth = ghost_scene(np.random.default_rng(seed), n_spurious=12)
    (poses,) = _decode(heat[None], tags[None])
    owners = _owners(poses, truth)
    # the three people first, each mostly its own true person's joints
    firsts = []
    for p in range(3):
        own = owners[p][owners[p] >= 0]
        assert own.size >= 12, (p, owners[p])
        firsts.append(int(np.bincount(own).argmax()))
    assert sorted(firsts) == [0, 1, 2]
    # no stretched skeleton: nobody holds joints of two different people
    for p in range(len(poses)):
        assert len(set(owners[p][owners[p] >= 0].tolist())) <= 1, (p, owners[p])
    # no duplicate: no joint held by two people
    kp = poses.keypoints
    for k in range(17):
        xy = kp[np.isfinite(kp[:, k, 0]), k, :2]
        gaps = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(len(xy)) * 99
        assert (gaps >= 0.5).all(), k
    # the people of spurious peaks only score far below the real ones
    spurious = [p for p in range(3, len(poses)) if not (owners[p] >= 0).any()]
    for p in spurious:
        assert poses.scores[p] < 0.25 * poses.scores[:3].min()
    # the drawing: just the three
    ax = draw_poses(np.zeros((128, 128)), poses)
    assert {c.get_label() for c in ax.collections} == {"person 0", "person 1", "person 2"}
    plt.close(ax.figure)


def test_the_references_draw_ghost_skeletons_on_the_same_scene():
    """HigherHRNet's settings on the scene above: ghosts filled with the real people's
    joints, stretched across them, and drawn (what the defaults avoid)."""
    heat, tags, truth = ghost_scene(np.random.default_rng(0), n_spurious=12)
    (poses,) = _decode(heat[None], tags[None], HIGHERHRNET)
    owners = _owners(poses, truth)
    stretched = [p for p in range(len(poses)) if len(set(owners[p][owners[p] >= 0])) > 1]
    assert len(poses) > 3 and stretched


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 13, 14, 40, 41, 200])
def test_median_kernel_equals_numpy(n):
    """``crowd._median`` (a Shell sort, compiled) gives ``np.median`` and sorts in place."""
    from numba import njit

    from associative_embedding._decode.crowd import _median

    @njit
    def call(vals, m):
        return _median(vals, m)

    rng = np.random.default_rng(n)
    for trial in range(20):
        vals = rng.standard_normal(n + 3)
        if trial % 2:
            vals = np.round(vals, 1)  # ties
        expected = np.median(vals[:n])
        work = vals.copy()
        assert call(work, n) == expected
        assert np.array_equal(work[:n], np.sort(vals[:n]))
        assert np.array_equal(work[n:], vals[n:])
